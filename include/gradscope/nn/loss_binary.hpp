// Binary cross-entropy of targets in [0, 1] under sigmoid(logits), with PyTorch's pos_weight,
// as one fused node that never overflows.
//
// With softplus(u) = log(1 + exp(u)) = max(u, 0) + log1p(exp(-|u|)), -log sigmoid(x) =
// softplus(-x) and -log(1 - sigmoid(x)) = softplus(x) = x + softplus(-x), so an element with
// target t and positive-class weight p costs
//
//     p t softplus(-x) + (1 - t) softplus(x) = (1 - t) x + (1 + (p - 1) t) softplus(-x),
//
// whose terms stay finite for any finite x. Its derivatives are
//     d/dx = (1 - t) sigmoid(x) - p t sigmoid(-x),    d/dt = (p - 1) softplus(-x) - x,
// the first written so that nothing cancels: sigmoid(x) = 1e-22 at x = -50 stays 1e-22.
#pragma once

#include "loss_reduction.hpp"

#include <string>
#include <vector>

namespace gradscope {

struct BCEWithLogitsOptions {
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

// Inputs: logits, targets (both values read). aux: the [1 x C] positive weights.
template <class T>
void bce_backward(Node<T>& node) {
    const auto x = value_of(*node.inputs[0]).array();
    const auto t = value_of(*node.inputs[1]).array();
    const Index rows = x.rows();
    const auto p = std::as_const(node.aux).view().row(0).array().replicate(rows, 1);
    // sigmoid(u) = 1 / (1 + exp(-u)): exp overflowing to infinity gives 0, as it must
    const auto sigmoid = (T(1) + (-x).exp()).inverse();
    const auto sigmoid_of_negative = (T(1) + x.exp()).inverse();
    accumulate_loss_grad(node, *node.inputs[0], (T(1) - t) * sigmoid - p * t * sigmoid_of_negative,
                         T(1));
    accumulate_loss_grad(node, *node.inputs[1], (p - T(1)) * softplus_of_negative(x) - x, T(1));
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
    const auto xv = detail::value_of(x).array();
    const auto tv = detail::value_of(t).array();
    const auto pv = std::as_const(p).row(0).array().replicate(s.rows, 1);
    detail::reduce_into<T>(
        node->value.view(),
        (T(1) - tv) * xv + (T(1) + (pv - T(1)) * tv) * detail::softplus_of_negative(xv), attr);
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
