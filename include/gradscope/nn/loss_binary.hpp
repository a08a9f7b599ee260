// Binary cross-entropy of targets in [0, 1] under sigmoid(logits), with PyTorch's pos_weight
// and weight, as one fused node that never overflows.
//
// With softplus(u) = log(1 + exp(u)) = max(u, 0) + log1p(exp(-|u|)), -log sigmoid(x) =
// softplus(-x) and -log(1 - sigmoid(x)) = softplus(x) = x + softplus(-x), so an element with
// target t, positive-class weight p and element weight w costs
//
//     w [p t softplus(-x) + (1 - t) softplus(x)] = w [(1 - t) x + (1 + (p - 1) t) softplus(-x)],
//
// whose terms stay finite for any finite x. Its derivatives are
//     d/dx = w [(1 - t) sigmoid(x) - p t sigmoid(-x)],    d/dt = w [(p - 1) softplus(-x) - x],
// the first written so that nothing cancels: sigmoid(x) = 1e-22 at x = -50 stays 1e-22.
// The mean divides by the element count, not by the sum of w (PyTorch 1.13 does the same), so
// w = 2 everywhere doubles the mean.
#pragma once

#include "loss_reduction.hpp"

#include <string>
#include <vector>

namespace gradscope {

// In the order of PyTorch's BCEWithLogitsLoss keywords (weight, reduction, pos_weight), so that
// designated initialisers written in that order compile.
struct BCEWithLogitsOptions {
    // PyTorch's weight: a rescaling of each element's whole loss, finite and >= 0, broadcast
    // to the logits' [r x n] shape. Accepted shapes: [1 x 1] (one for all), [1 x n] (one per
    // column, as PyTorch's 1-D weight of n entries), [r x 1] (one per row, e.g. per sample)
    // and [r x n]; anything else is a shape_error. Empty (0 x 0): all 1. It is a constant: no
    // gradient flows to it, and PyTorch 1.13 too refuses a weight that requires grad.
    Matrix<double> weight{};
    Reduction reduction = Reduction::mean;
    // One weight per column (class) for the positive term, finite and >= 0; empty: all 1.
    // Above 1 it favours recall: PyTorch's advice is negatives / positives of that class.
    std::vector<double> pos_weight{};
};

namespace detail {

// softplus(-x), stably.
template <class X>
auto softplus_of_negative(const X& x) {
    using T = typename X::Scalar;
    return (-x).max(T(0)) + (-x.abs()).exp().log1p();
}

// Calls f with the element weights as an array of the logits' shape: the broadcast copy in
// `saved`, or a constant 1 when no weight was given (so the common case reads no buffer).
template <class T, class F>
void with_element_weights(const Node<T>& node, Shape s, F&& f) {
    using Array = Eigen::Array<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    if (node.saved.has_storage()) {
        f(std::as_const(node.saved).view().array());
    } else {
        f(Array::Constant(s.rows, s.cols, T(1)));
    }
}

// Inputs: logits, targets (both values read). aux: the [1 x C] positive weights; saved: the
// element weights at the logits' shape, or nothing.
template <class T>
void bce_backward(Node<T>& node) {
    const auto x = value_of(*node.inputs[0]).array();
    const auto t = value_of(*node.inputs[1]).array();
    const Index rows = x.rows();
    const auto p = std::as_const(node.aux).view().row(0).array().replicate(rows, 1);
    // sigmoid(u) = 1 / (1 + exp(-u)): exp overflowing to infinity gives 0, as it must
    const auto sigmoid = (T(1) + (-x).exp()).inverse();
    const auto sigmoid_of_negative = (T(1) + x.exp()).inverse();
    with_element_weights(node, Shape{rows, x.cols()}, [&](const auto& w) {
        accumulate_loss_grad(node, *node.inputs[0],
                             w * ((T(1) - t) * sigmoid - p * t * sigmoid_of_negative), T(1));
        accumulate_loss_grad(node, *node.inputs[1], w * ((p - T(1)) * softplus_of_negative(x) - x),
                             T(1));
    });
}

// The shapes PyTorch's broadcasting stretches to the logits' that a 2-D batch needs; a [1 x n]
// weight on [1 x n] logits is both a row and the full shape, which is the same thing.
inline bool weight_fits(Shape w, Shape logits) {
    return w == logits || w.is_scalar() || (w.rows == 1 && w.cols == logits.cols) ||
           (w.cols == 1 && w.rows == logits.rows);
}

inline void check_bce_weight(const char* op, const Matrix<double>& weight, Shape logits) {
    const Shape w{weight.rows(), weight.cols()};
    if (!weight_fits(w, logits)) {
        throw shape_error(std::string(op) + ": weight " + to_string(w) +
                          " does not broadcast to logits " + to_string(logits) + "; it must be " +
                          "[1x1], [1x" + std::to_string(logits.cols) + "], [" +
                          std::to_string(logits.rows) + "x1] or " + to_string(logits));
    }
    for (Index i = 0; i < w.rows; ++i) {
        for (Index j = 0; j < w.cols; ++j) {
            const std::string what = "weight(" + std::to_string(i) + ", " + std::to_string(j) + ")";
            check_non_negative(op, what.c_str(), weight(i, j));
        }
    }
}

}  // namespace detail

template <class T>
Tensor<T> binary_cross_entropy_with_logits(const Tensor<T>& logits, const Tensor<T>& targets,
                                           const BCEWithLogitsOptions& options = {}) {
    const char* op = "binary_cross_entropy_with_logits";
    Node<T>& x = logits.node();
    Node<T>& t = targets.node();
    const Shape s = x.shape();
    if (s != t.shape())
        detail::throw_shapes(op, "logits and targets differ in shape", s, t.shape());
    if (!options.pos_weight.empty() && static_cast<Index>(options.pos_weight.size()) != s.cols) {
        throw shape_error(std::string(op) + ": pos_weight has " +
                          std::to_string(options.pos_weight.size()) + " entries for " +
                          std::to_string(s.cols) + " columns (logits " + to_string(s) +
                          "); it needs one per column");
    }
    for (std::size_t c = 0; c < options.pos_weight.size(); ++c) {
        const std::string what = "pos_weight[" + std::to_string(c) + "]";
        detail::check_non_negative(op, what.c_str(), options.pos_weight[c]);
    }
    const bool weighted = options.weight.rows() != 0 || options.weight.cols() != 0;  // not 0 x 0
    if (weighted) detail::check_bce_weight(op, options.weight, s);
    NodePtr<T> node = detail::record<T>(op, detail::loss_output_shape(options.reduction, s),
                                        {&x, &t}, &detail::bce_backward<T>);
    const detail::LossAttr attr{detail::reduction_scale(options.reduction, s.size()),
                                options.reduction == Reduction::none, 0.0, 0.0, 0.0};
    node->set_attr(attr);
    node->aux.resize(Shape{1, s.cols});
    MatrixView<T> p = node->aux.view();
    for (Index c = 0; c < s.cols; ++c) {
        p(0, c) = options.pos_weight.empty()
                      ? T(1)
                      : static_cast<T>(options.pos_weight[static_cast<std::size_t>(c)]);
    }
    if (weighted && s.size() > 0) {
        // stretched once here, so that backward reads it as plainly as the logits
        node->saved.resize(s);
        const auto w = options.weight.template cast<T>();
        if (options.weight.rows() == s.rows && options.weight.cols() == s.cols) {
            node->saved.view() = w;
        } else {
            node->saved.view() =
                w.replicate(s.rows / options.weight.rows(), s.cols / options.weight.cols());
        }
    }
    const auto xv = detail::value_of(x).array();
    const auto tv = detail::value_of(t).array();
    const auto pv = std::as_const(p).row(0).array().replicate(s.rows, 1);
    detail::with_element_weights(*node, s, [&](const auto& w) {
        detail::reduce_into<T>(
            node->value.view(),
            w * ((T(1) - tv) * xv + (T(1) + (pv - T(1)) * tv) * detail::softplus_of_negative(xv)),
            attr);
    });
    return detail::finish(std::move(node));
}

// The reduction alone, as before the options existed.
template <class T>
Tensor<T> binary_cross_entropy_with_logits(const Tensor<T>& logits, const Tensor<T>& targets,
                                           Reduction reduction) {
    return binary_cross_entropy_with_logits(logits, targets,
                                            BCEWithLogitsOptions{.reduction = reduction});
}

}  // namespace gradscope
