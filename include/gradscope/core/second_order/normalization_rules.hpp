// Second-order rules of batch norm and layer norm (see second_order/support.hpp), in closed
// form like their backward passes. Writing r = 1/sqrt(var + eps) and u = (x' - mean(x')) r
// (means over the batch for batch norm, over the features for layer norm), the normalised
// input moves as
//
//     xhat' = u + xhat rho,    rho = r'/r = -mean(xhat u),
//
// and y = xhat gamma + beta moves as y' = xhat' gamma + xhat gamma' + beta'. The forward rule
// keeps xhat' (tangent_saved) and rho (tangent_aux) for the backward rule. Batch norm in
// evaluation mode normalises by constants: xhat' = x' r and rho = 0.
#pragma once

#include "../ops/normalization.hpp"
#include "support.hpp"

namespace gradscope::detail {

// Direction of the statistics: over the rows (batch norm) or over the columns (layer norm).
enum class StatsAxis { batch, features };

// Per-statistic mean of an array expression, as a [1 x n] row (batch) or [B x 1] column.
template <StatsAxis axis, class A>
auto stat_mean(const A& a) {
    if constexpr (axis == StatsAxis::batch) {
        return (a.colwise().sum() / static_cast<typename A::Scalar>(a.rows())).eval();
    } else {
        return (a.rowwise().sum() / static_cast<typename A::Scalar>(a.cols())).eval();
    }
}

// A per-statistic row or column stretched over the [B x n] shape.
template <StatsAxis axis, class A>
auto spread(const A& stat, Index rows, Index cols) {
    if constexpr (axis == StatsAxis::batch) {
        return stat.row(0).colwise().replicate(rows);
    } else {
        return stat.col(0).rowwise().replicate(cols);
    }
}

template <class T, StatsAxis axis>
void normalization_tangent_forward(Node<T>& node, bool batch_statistics) {
    const Node<T>& x = *node.inputs[0];
    const Node<T>& gamma = *node.inputs[1];
    const Node<T>& beta = *node.inputs[2];
    const auto xhat = std::as_const(node.saved).view().array();
    const auto r = std::as_const(node.aux).view().array();
    const Index rows = xhat.rows();
    const Index cols = xhat.cols();
    auto y = new_tangent(node).array();
    y.setZero();
    if (has_tangent(x)) {
        node.tangent_saved.resize(node.shape());
        auto xhat_t = node.tangent_saved.view().array();
        const auto xt = tangent_of(x).array();
        if (batch_statistics) {
            xhat_t =
                (xt - spread<axis>(stat_mean<axis>(xt), rows, cols)) * spread<axis>(r, rows, cols);
            node.tangent_aux.resize(std::as_const(node.aux).shape());
            auto rho = node.tangent_aux.view().array();
            rho = -stat_mean<axis>((xhat * xhat_t).eval());
            xhat_t +=
                xhat * spread<axis>(std::as_const(node.tangent_aux).view().array(), rows, cols);
        } else {
            xhat_t = xt * spread<axis>(r, rows, cols);
        }
        y += std::as_const(node.tangent_saved).view().array() *
             down_rows(value_of(gamma).array(), rows);
    }
    if (has_tangent(gamma)) y += xhat * down_rows(tangent_of(gamma).array(), rows);
    if (has_tangent(beta)) y += down_rows(tangent_of(beta).array(), rows);
}

// With dh = g gamma and k = r (per statistic), the training-mode backward is
//     dx = k (dh - mean(dh) - xhat mean(dh xhat)),
// so, with dh' = g' gamma + g gamma' and k' = k rho,
//     dx' = k rho (dh - mean(dh) - xhat mean(dh xhat))
//         + k (dh' - mean(dh') - xhat' mean(dh xhat) - xhat mean(dh' xhat + dh xhat')).
// In evaluation mode dx = k dh and dx' = k dh'. For the affine parameters,
//     dgamma' = colsum(g' xhat + g xhat'),  dbeta' = colsum(g').
template <class T, StatsAxis axis>
void normalization_tangent_backward(Node<T>& node, bool batch_statistics) {
    Node<T>& x = *node.inputs[0];
    Node<T>& gamma = *node.inputs[1];
    Node<T>& beta = *node.inputs[2];
    const auto g = grad_of(node).array();
    const auto gt = grad_tangent_of(node).array();
    const auto xhat = std::as_const(node.saved).view().array();
    const bool moves = has_tangent(x);
    const auto xhat_t = std::as_const(node.tangent_saved).view().array();
    const Index rows = g.rows();
    const Index cols = g.cols();
    if (gamma.requires_grad) {
        if (moves) {
            accumulate_tangent(gamma, (gt * xhat + g * xhat_t).colwise().sum().matrix());
        } else {
            accumulate_tangent(gamma, (gt * xhat).colwise().sum().matrix());
        }
    }
    accumulate_tangent(beta, gt.colwise().sum().matrix());
    if (!x.requires_grad) return;

    const auto gamma_rows = down_rows(value_of(gamma).array(), rows);
    const auto k = spread<axis>(std::as_const(node.aux).view().array(), rows, cols);
    PooledMatrix<T> dh(node.shape()), dh_t(node.shape()), dx_t(node.shape());
    dh.view() = (g * gamma_rows).matrix();
    dh_t.view() = (gt * gamma_rows).matrix();
    if (has_tangent(gamma)) dh_t.view().array() += g * down_rows(tangent_of(gamma).array(), rows);
    const auto d = std::as_const(dh).view().array();
    const auto dt = std::as_const(dh_t).view().array();
    auto out = dx_t.view().array();
    if (!batch_statistics) {
        out = k * dt;
    } else {
        const auto dot = stat_mean<axis>((d * xhat).eval());
        if (moves) {
            const auto rho =
                spread<axis>(std::as_const(node.tangent_aux).view().array(), rows, cols);
            const auto dot_t = stat_mean<axis>((dt * xhat + d * xhat_t).eval());
            out = k * rho *
                      (d - spread<axis>(stat_mean<axis>(d), rows, cols) -
                       xhat * spread<axis>(dot, rows, cols)) +
                  k * (dt - spread<axis>(stat_mean<axis>(dt), rows, cols) -
                       xhat_t * spread<axis>(dot, rows, cols) -
                       xhat * spread<axis>(dot_t, rows, cols));
        } else {
            const auto dot_t = stat_mean<axis>((dt * xhat).eval());
            out = k * (dt - spread<axis>(stat_mean<axis>(dt), rows, cols) -
                       xhat * spread<axis>(dot_t, rows, cols));
        }
    }
    accumulate_tangent(x, std::as_const(dx_t).view());
}

template <class T>
void batch_norm_tangent_forward(Node<T>& node) {
    normalization_tangent_forward<T, StatsAxis::batch>(
        node, node.template attr<NormAttr>().batch_statistics);
}
template <class T>
void batch_norm_tangent_backward(Node<T>& node) {
    normalization_tangent_backward<T, StatsAxis::batch>(
        node, node.template attr<NormAttr>().batch_statistics);
}
template <class T>
void layer_norm_tangent_forward(Node<T>& node) {
    normalization_tangent_forward<T, StatsAxis::features>(node, true);
}
template <class T>
void layer_norm_tangent_backward(Node<T>& node) {
    normalization_tangent_backward<T, StatsAxis::features>(node, true);
}

}  // namespace gradscope::detail
