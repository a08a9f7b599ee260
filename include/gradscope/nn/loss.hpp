// Loss functions, each one fused and numerically stable node: the value and the gradient are
// computed from the same saved quantities, and nothing overflows for large logits.
#pragma once

#include "../core/ops/support.hpp"
#include "../core/ops/softmax.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

namespace gradscope {

enum class Reduction { mean, sum };

namespace detail {

struct LossAttr {
    double scale;  // 1/N for a mean, 1 for a sum
};

// Labels are kept as T in the node (aux) for backward, and float holds every integer only up to
// 2^24 (2^24 + 1 is stored as 2^24): a larger label would send its gradient to another class.
template <class T>
inline constexpr int exact_label_bits = std::numeric_limits<T>::digits;

template <class T>
void check_labels(std::span<const int> labels, Shape logits) {
    if (static_cast<Index>(labels.size()) != logits.rows) {
        throw shape_error("cross_entropy: " + std::to_string(labels.size()) + " labels for " +
                          std::to_string(logits.rows) + " rows of logits " + to_string(logits));
    }
    constexpr auto largest_exact =
        static_cast<std::int64_t>(std::int64_t{1} << exact_label_bits<T>);
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (labels[i] < 0 || labels[i] >= logits.cols) {
            throw value_error("cross_entropy: label " + std::to_string(labels[i]) + " at row " +
                              std::to_string(i) + " is outside the " + std::to_string(logits.cols) +
                              " classes [0, " + std::to_string(logits.cols) + ")");
        }
        if (labels[i] > largest_exact) {
            throw value_error("cross_entropy: label " + std::to_string(labels[i]) + " at row " +
                              std::to_string(i) + " is above 2^" +
                              std::to_string(exact_label_bits<T>) +
                              ", past which this precision cannot hold every class index exactly");
        }
    }
}

inline double reduction_scale(Reduction reduction, Index count) {
    return reduction == Reduction::mean && count > 0 ? 1.0 / static_cast<double>(count) : 1.0;
}

// Inputs: prediction, target. Saved: prediction - target.
template <class T>
void mse_backward(Node<T>& node) {
    const T g = grad_of(node)(0, 0) * static_cast<T>(2.0 * node.template attr<LossAttr>().scale);
    const auto diff = std::as_const(node.saved).view();
    accumulate(*node.inputs[0], g * diff);
    accumulate(*node.inputs[1], -g * diff);
}

// Inputs: logits. Saved: softmax probabilities; aux: the labels, as numbers.
template <class T>
void cross_entropy_backward(Node<T>& node) {
    const T g = grad_of(node)(0, 0) * static_cast<T>(node.template attr<LossAttr>().scale);
    Node<T>& logits = *node.inputs[0];
    if (!logits.requires_grad) return;
    GradSlot<T> slot = grad_slot(logits);
    const auto probs = std::as_const(node.saved).view();
    const auto labels = std::as_const(node.aux).view();
    if (slot.first) {
        slot.view = g * probs;
    } else {
        slot.view += g * probs;
    }
    for (Index i = 0; i < probs.rows(); ++i) {
        slot.view(i, static_cast<Index>(labels(i, 0))) -= g;
    }
}

// Inputs: logits, targets.
template <class T>
void bce_backward(Node<T>& node) {
    const T g = grad_of(node)(0, 0) * static_cast<T>(node.template attr<LossAttr>().scale);
    const auto x = value_of(*node.inputs[0]).array();
    const auto t = value_of(*node.inputs[1]).array();
    // d/dx = sigmoid(x) - t, d/dt = -x
    accumulate(*node.inputs[0], (g * ((T(1) + (-x).exp()).inverse() - t)).matrix());
    accumulate(*node.inputs[1], (-g * x).matrix());
}

}  // namespace detail

// Mean (or sum) of squared differences over all elements.
template <class T>
Tensor<T> mse_loss(const Tensor<T>& prediction, const Tensor<T>& target,
                   Reduction reduction = Reduction::mean) {
    Node<T>& p = prediction.node();
    Node<T>& t = target.node();
    if (p.shape() != t.shape()) {
        detail::throw_shapes("mse_loss", "prediction and target differ in shape", p.shape(),
                             t.shape());
    }
    NodePtr<T> node =
        detail::record<T>("mse_loss", Shape{1, 1}, {&p, &t}, &detail::mse_backward<T>);
    const double scale = detail::reduction_scale(reduction, p.shape().size());
    node->set_attr(detail::LossAttr{scale});
    node->saved.resize(p.shape());
    MatrixView<T> diff = node->saved.view();
    diff = detail::value_of(p) - detail::value_of(t);
    node->value.view()(0, 0) = diff.squaredNorm() * static_cast<T>(scale);
    return detail::finish(std::move(node));
}

// Cross-entropy of integer class labels under softmax(logits), one label per row.
template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, std::span<const int> labels,
                        Reduction reduction = Reduction::mean) {
    Node<T>& z = logits.node();
    const Shape s = z.shape();
    detail::check_labels<T>(labels, s);
    NodePtr<T> node =
        detail::record<T>("cross_entropy", Shape{1, 1}, {&z}, &detail::cross_entropy_backward<T>);
    const double scale = detail::reduction_scale(reduction, s.rows);
    node->set_attr(detail::LossAttr{scale});
    node->saved.resize(s);
    node->aux.resize(Shape{s.rows, 1});
    MatrixView<T> log_probs = node->saved.view();
    detail::stable_log_softmax<T>(detail::value_of(z), log_probs);
    double total = 0.0;
    for (Index i = 0; i < s.rows; ++i) {
        node->aux.view()(i, 0) = static_cast<T>(labels[static_cast<std::size_t>(i)]);
        total -= static_cast<double>(log_probs(i, labels[static_cast<std::size_t>(i)]));
    }
    log_probs = log_probs.array().exp().matrix();  // kept as probabilities for backward
    node->value.view()(0, 0) = static_cast<T>(total * scale);
    return detail::finish(std::move(node));
}

template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const std::vector<int>& labels,
                        Reduction reduction = Reduction::mean) {
    return cross_entropy(logits, std::span<const int>(labels), reduction);
}

// Binary cross-entropy of targets in [0, 1] under sigmoid(logits), computed as
// max(x, 0) - x t + log(1 + exp(-|x|)), which never overflows.
template <class T>
Tensor<T> binary_cross_entropy_with_logits(const Tensor<T>& logits, const Tensor<T>& targets,
                                           Reduction reduction = Reduction::mean) {
    Node<T>& x = logits.node();
    Node<T>& t = targets.node();
    if (x.shape() != t.shape()) {
        detail::throw_shapes("binary_cross_entropy_with_logits",
                             "logits and targets differ in shape", x.shape(), t.shape());
    }
    NodePtr<T> node = detail::record<T>("binary_cross_entropy_with_logits", Shape{1, 1}, {&x, &t},
                                        &detail::bce_backward<T>);
    const double scale = detail::reduction_scale(reduction, x.shape().size());
    node->set_attr(detail::LossAttr{scale});
    const auto xv = detail::value_of(x).array();
    const auto tv = detail::value_of(t).array();
    const T total = (xv.max(T(0)) - xv * tv + (-xv.abs()).exp().log1p()).sum();
    node->value.view()(0, 0) = total * static_cast<T>(scale);
    return detail::finish(std::move(node));
}

}  // namespace gradscope
