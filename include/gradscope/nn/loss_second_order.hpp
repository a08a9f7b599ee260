// Second-order rules of the fused losses (see core/second_order/support.hpp). A loss's backward
// sends up * local to each input, where up is what reaches an element (the seed times the
// reduction's scale, or the seed's own entry for Reduction::none) and local is the element's
// derivative; its tangent is up' * local + up * local', and local' is the element's second
// derivative applied to the inputs' tangents.
#pragma once

#include "../core/second_order/support.hpp"
#include "loss_binary.hpp"
#include "loss_cross_entropy.hpp"
#include "loss_regression.hpp"

#include <utility>

namespace gradscope::detail {

// The loss's tangent from its elements' first-order change `change` (an array of the
// elements' shape): the change itself per element, or its scaled sum.
template <class T, class Change>
void set_loss_tangent(Node<T>& loss, const Change& change) {
    const LossAttr& attr = loss.template attr<LossAttr>();
    MatrixView<T> out = new_tangent(loss);
    if (attr.per_element) {
        out = change.matrix();
    } else {
        out(0, 0) = static_cast<T>(change.sum() * static_cast<T>(attr.scale));
    }
}

// Sends sign * (up' * local + up * local_change) to `input`'s grad_tangent.
template <class T, class Local, class LocalChange>
void accumulate_loss_tangent(const Node<T>& loss, Node<T>& input, const Local& local,
                             const LocalChange& local_change, T sign) {
    if (!input.requires_grad) return;
    const LossAttr& attr = loss.template attr<LossAttr>();
    const auto g = grad_of(loss);
    const auto gt = grad_tangent_of(loss);
    if (attr.per_element) {
        accumulate_tangent(input,
                           (sign * (gt.array() * local + g.array() * local_change)).matrix());
    } else {
        const T scale = static_cast<T>(attr.scale);
        accumulate_tangent(input,
                           (sign * scale * (gt(0, 0) * local + g(0, 0) * local_change)).matrix());
    }
}

// d' = p' - t' for the regression losses, into `out`.
template <class T>
void difference_tangent(const Node<T>& node, PooledMatrix<T>& out) {
    const Node<T>& p = *node.inputs[0];
    const Node<T>& t = *node.inputs[1];
    out.resize(p.shape());
    MatrixView<T> d = out.view();
    if (has_tangent(p)) {
        d = tangent_of(p);
    } else {
        d.setZero();
    }
    if (has_tangent(t)) d -= tangent_of(t);
}

// The second derivative of each regression loss at d (0 on L1's and the linear pieces).
template <class T>
void regression_curvature(RegressionKind kind, double parameter, ConstMatrixView<T> d,
                          MatrixView<T> out) {
    const T k = static_cast<T>(parameter);
    if (kind == RegressionKind::absolute) {
        out.setZero();
    } else if (kind == RegressionKind::squared) {
        out.setConstant(T(2));
    } else if (kind == RegressionKind::huber) {
        out = (d.array().abs() <= k).select(T(1), Matrix<T>::Zero(d.rows(), d.cols())).matrix();
    } else {
        out = (d.array().abs() < k).select(T(1) / k, Matrix<T>::Zero(d.rows(), d.cols())).matrix();
    }
}

template <class T>
void regression_tangent_forward(Node<T>& node) {
    const auto& attr = node.template attr<RegressionAttr>();
    const auto d = std::as_const(node.saved).view().array();
    PooledMatrix<T> dt;
    difference_tangent(node, dt);
    with_regression<Want::derivative>(attr.kind, attr.loss.parameter, d, [&](const auto& local) {
        set_loss_tangent(node, (local * std::as_const(dt).view().array()).eval());
    });
}

template <class T>
void regression_tangent_backward(Node<T>& node) {
    const auto& attr = node.template attr<RegressionAttr>();
    const ConstMatrixView<T> d = std::as_const(node.saved).view();
    PooledMatrix<T> dt, curvature(Shape{d.rows(), d.cols()});
    difference_tangent(node, dt);
    regression_curvature<T>(attr.kind, attr.loss.parameter, d, curvature.view());
    const auto change = std::as_const(curvature).view().array() * std::as_const(dt).view().array();
    with_regression<Want::derivative>(
        attr.kind, attr.loss.parameter, d.array(), [&](const auto& local) {
            accumulate_loss_tangent(node, *node.inputs[0], local, change, T(1));
            accumulate_loss_tangent(node, *node.inputs[1], local, change, T(-1));
        });
}

// Cross-entropy. Per row (Note [Cross-entropy options]), the gradient is
//     G = c p - (1 - e) w_y onehot(y) - (e / C) w,    c = (1 - e) w_y + (e / C) W,
// so the row's loss moves by G . z', and G moves by c p', with p' = p (z' - p . z').
struct CrossEntropyRow {
    Index label;  // ignored_row for an ignored row
    double c;     // the factor of p in G
    double target_weight;
};

template <class T>
CrossEntropyRow cross_entropy_row(const Node<T>& node, Index i) {
    const LossAttr& attr = node.template attr<LossAttr>();
    const auto aux = std::as_const(node.aux).view();
    const Index rows = node.saved.shape().rows;
    const Index classes = node.saved.shape().cols;
    const auto label = static_cast<Index>(aux(i, 0));
    if (label == ignored_row) return {label, 0.0, 0.0};
    const double smoothing = attr.extra;
    const double target_weight = (1.0 - smoothing) * static_cast<double>(aux(rows + label, 0));
    return {label, target_weight + smoothing / static_cast<double>(classes) * attr.total,
            target_weight};
}

template <class T>
void cross_entropy_tangent_forward(Node<T>& node) {
    const LossAttr& attr = node.template attr<LossAttr>();
    const auto probs = std::as_const(node.saved).view();
    const auto aux = std::as_const(node.aux).view();
    const auto zt = tangent_of(*node.inputs[0]);
    const Index rows = probs.rows();
    const Index classes = probs.cols();
    const auto weight = aux.col(0).segment(rows, classes).transpose();
    const double spread = attr.extra / static_cast<double>(classes);
    PooledMatrix<T> change(Shape{rows, 1});
    MatrixView<T> per_row = change.view();
    for (Index i = 0; i < rows; ++i) {
        const CrossEntropyRow row = cross_entropy_row(node, i);
        if (row.label == ignored_row) {
            per_row(i, 0) = T(0);
            continue;
        }
        double moved = row.c * static_cast<double>(probs.row(i).dot(zt.row(i))) -
                       row.target_weight * static_cast<double>(zt(i, row.label));
        if (spread != 0.0) moved -= spread * static_cast<double>(weight.dot(zt.row(i)));
        per_row(i, 0) = static_cast<T>(moved);
    }
    set_loss_tangent(node, std::as_const(change).view().array());
}

template <class T>
void cross_entropy_tangent_backward(Node<T>& node) {
    Node<T>& logits = *node.inputs[0];
    if (!logits.requires_grad) return;
    const LossAttr& attr = node.template attr<LossAttr>();
    const auto g = grad_of(node);
    const auto gt = grad_tangent_of(node);
    const auto probs = std::as_const(node.saved).view();
    const auto aux = std::as_const(node.aux).view();
    const Index rows = probs.rows();
    const Index classes = probs.cols();
    const auto weight = aux.col(0).segment(rows, classes).transpose();
    const T spread = static_cast<T>(attr.extra / static_cast<double>(classes));
    const bool moves = has_tangent(logits);
    MatrixView<T> slot = grad_tangent_slot(logits);
    for (Index i = 0; i < rows; ++i) {
        const CrossEntropyRow row = cross_entropy_row(node, i);
        if (row.label == ignored_row) continue;
        const T up = attr.per_element ? g(i, 0) : g(0, 0) * static_cast<T>(attr.scale);
        const T up_t = attr.per_element ? gt(i, 0) : gt(0, 0) * static_cast<T>(attr.scale);
        const T c = static_cast<T>(row.c);
        // up' G
        slot.row(i) += (up_t * c) * probs.row(i);
        if (spread != T(0)) slot.row(i) -= (up_t * spread) * weight;
        slot(i, row.label) -= up_t * static_cast<T>(row.target_weight);
        // up c p'
        if (moves) {
            const auto zt = tangent_of(logits).row(i);
            const T mean_zt = probs.row(i).dot(zt);
            slot.row(i).array() += (up * c) * probs.row(i).array() * (zt.array() - mean_zt);
        }
    }
}

// Binary cross-entropy with logits, per element (loss_binary.hpp):
//     dx = w [(1 - t) s(x) - p t s(-x)],   dt = w [(p - 1) softplus(-x) - x],
// whose derivatives are
//     d2/dx2 = w s(x) s(-x) (1 - t + p t),   d2/dxdt = -w (s(x) + p s(-x)),   d2/dt2 = 0.
template <class T, class F>
void with_bce_terms(const Node<T>& node, F&& f) {
    const auto x = value_of(*node.inputs[0]).array();
    const auto t = value_of(*node.inputs[1]).array();
    const Index rows = x.rows();
    const auto p = std::as_const(node.aux).view().row(0).array().replicate(rows, 1);
    const auto s = (T(1) + (-x).exp()).inverse();
    const auto s_neg = (T(1) + x.exp()).inverse();
    with_element_weights(node, Shape{rows, x.cols()}, [&](const auto& w) {
        f(w * ((T(1) - t) * s - p * t * s_neg), w * ((p - T(1)) * softplus_of_negative(x) - x),
          w * s * s_neg * (T(1) - t + p * t), -w * (s + p * s_neg));
    });
}

template <class T>
void bce_tangent_forward(Node<T>& node) {
    const Node<T>& x = *node.inputs[0];
    const Node<T>& t = *node.inputs[1];
    with_bce_terms(node, [&](const auto& dx, const auto& dt, const auto&, const auto&) {
        if (has_tangent(x) && has_tangent(t)) {
            set_loss_tangent(node,
                             (dx * tangent_of(x).array() + dt * tangent_of(t).array()).eval());
        } else if (has_tangent(x)) {
            set_loss_tangent(node, (dx * tangent_of(x).array()).eval());
        } else {
            set_loss_tangent(node, (dt * tangent_of(t).array()).eval());
        }
    });
}

template <class T>
void bce_tangent_backward(Node<T>& node) {
    Node<T>& x = *node.inputs[0];
    Node<T>& t = *node.inputs[1];
    const Shape s = x.shape();
    PooledMatrix<T> xt, tt;
    const auto tangent_or_zero = [&](const Node<T>& n, PooledMatrix<T>& buffer) {
        buffer.resize(s);
        if (has_tangent(n)) {
            buffer.view() = tangent_of(n);
        } else {
            buffer.view().setZero();
        }
        return std::as_const(buffer).view().array();
    };
    const auto x_t = tangent_or_zero(x, xt);
    const auto t_t = tangent_or_zero(t, tt);
    with_bce_terms(node, [&](const auto& dx, const auto& dt, const auto& dxx, const auto& dxt) {
        accumulate_loss_tangent(node, x, dx, (dxx * x_t + dxt * t_t).eval(), T(1));
        accumulate_loss_tangent(node, t, dt, (dxt * x_t).eval(), T(1));
    });
}

// The losses' rules, found by their backward function (see core/second_order.hpp).
template <class T>
const TangentRule<T>* loss_tangent_rule(BackwardFn<T> backward) {
    static constexpr TangentRule<T> regression_rule{&regression_tangent_forward<T>,
                                                    &regression_tangent_backward<T>};
    static const std::pair<BackwardFn<T>, TangentRule<T>> table[] = {
        {&regression_backward<T, RegressionKind::squared>, regression_rule},
        {&regression_backward<T, RegressionKind::absolute>, regression_rule},
        {&regression_backward<T, RegressionKind::huber>, regression_rule},
        {&regression_backward<T, RegressionKind::smooth_l1>, regression_rule},
        {&cross_entropy_backward<T>,
         {&cross_entropy_tangent_forward<T>, &cross_entropy_tangent_backward<T>}},
        {&bce_backward<T>, {&bce_tangent_forward<T>, &bce_tangent_backward<T>}},
    };
    for (const auto& [fn, rule] : table) {
        if (fn == backward) return &rule;
    }
    return nullptr;
}

}  // namespace gradscope::detail
