// Cross-entropy of integer class labels under softmax(logits), with PyTorch's class weights,
// ignore_index and label smoothing, as one fused node.
//
// Note [Cross-entropy options]
// With class weights w (all 1 when none are given), C classes, smoothing e and log-probabilities
// lp = log_softmax(z), a row n whose label y is not ignored costs
//
//     l_n = (1 - e) w_y (-lp_y) + (e / C) sum_c w_c (-lp_c)
//
// and an ignored row costs 0 and counts for nothing. The mean divides the sum of the l_n by the
// sum of w_y over the rows not ignored (not by the row count), so that with weights it is a
// weighted average of the unsmoothed term; PyTorch applies that same denominator to the smoothing
// term. With e = 0 and no weights, this is the plain mean of -lp_y. The gradient of l_n with
// respect to the row's logits is
//
//     ((1 - e) w_y + (e / C) W) p - (1 - e) w_y onehot(y) - (e / C) w,    W = sum_c w_c,
//
// since d(-lp_c)/dz = p - onehot(c). When every row is ignored (or the rows left weigh 0 in
// total), the mean is 0/0: PyTorch returns NaN, which then spreads silently through the
// parameters; gradscope refuses it with a value_error instead (Reduction::sum gives 0 there).
#pragma once

#include "../core/labels.hpp"
#include "../core/ops/softmax.hpp"
#include "loss_reduction.hpp"

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace gradscope {

// In PyTorch's argument order. ignore_index has no default here (PyTorch's is -100): a label
// of -100 is an error unless it is asked to be ignored, so a stray negative label is not
// silently dropped.
struct CrossEntropyOptions {
    std::vector<double> weight{};       // one per class, finite and >= 0; empty: all 1
    std::optional<int> ignore_index{};  // rows with this label contribute nothing
    Reduction reduction = Reduction::mean;
    double label_smoothing = 0.0;  // in [0, 1]: the share of the target spread over all classes
};

namespace detail {

// Labels are kept as T in the node (aux) for backward, and float holds every integer only up to
// 2^24 (2^24 + 1 is stored as 2^24): a larger label would send its gradient to another class.
template <class T>
inline constexpr int exact_label_bits = std::numeric_limits<T>::digits;

template <class T>
void check_labels(std::span<const int> labels, Shape logits, std::optional<int> ignore_index) {
    if (static_cast<Index>(labels.size()) != logits.rows) {
        throw shape_error("cross_entropy: " + std::to_string(labels.size()) + " labels for " +
                          std::to_string(logits.rows) + " rows of logits " + to_string(logits));
    }
    constexpr auto largest_exact =
        static_cast<std::int64_t>(std::int64_t{1} << exact_label_bits<T>);
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (labels[i] == ignore_index) continue;
        if (labels[i] < 0 || labels[i] >= logits.cols) {
            throw value_error("cross_entropy: label " + std::to_string(labels[i]) + " at row " +
                              std::to_string(i) + " is outside the " + std::to_string(logits.cols) +
                              " classes [0, " + std::to_string(logits.cols) + ")" +
                              (ignore_index
                                   ? " and is not ignore_index " + std::to_string(*ignore_index)
                                   : std::string()));
        }
        if (labels[i] > largest_exact) {
            throw value_error("cross_entropy: label " + std::to_string(labels[i]) + " at row " +
                              std::to_string(i) + " is above 2^" +
                              std::to_string(exact_label_bits<T>) +
                              ", past which this precision cannot hold every class index exactly");
        }
    }
}

inline void check_cross_entropy_options(const CrossEntropyOptions& options, Shape logits) {
    if (!options.weight.empty() && static_cast<Index>(options.weight.size()) != logits.cols) {
        throw shape_error("cross_entropy: weight has " + std::to_string(options.weight.size()) +
                          " entries for " + std::to_string(logits.cols) + " classes (logits " +
                          to_string(logits) + "); it needs one per class");
    }
    for (std::size_t c = 0; c < options.weight.size(); ++c) {
        const std::string what = "weight[" + std::to_string(c) + "]";
        check_non_negative("cross_entropy", what.c_str(), options.weight[c]);
    }
    if (!(options.label_smoothing >= 0.0 && options.label_smoothing <= 1.0)) {
        throw_value("cross_entropy", "label_smoothing must be in [0, 1], got " +
                                         number_text(options.label_smoothing));
    }
}

// The row's label, or -1 when the row is ignored; stored in aux for backward.
inline constexpr int ignored_row = -1;

// Inputs: logits (its value is not read). Saved: softmax probabilities. aux: a column of the N
// rows' labels (ignored_row for an ignored row) followed by the C class weights.
// attr: scale, per_element, extra = label smoothing, total = sum of the class weights.
// See Note [Cross-entropy options] for the gradient.
template <class T>
void cross_entropy_backward(Node<T>& node) {
    Node<T>& logits = *node.inputs[0];
    if (!logits.requires_grad) return;
    const LossAttr& attr = node.template attr<LossAttr>();
    const auto g = grad_of(node);
    const auto probs = std::as_const(node.saved).view();
    const auto aux = std::as_const(node.aux).view();
    const Index rows = probs.rows();
    const Index classes = probs.cols();
    const auto weight = aux.col(0).segment(rows, classes).transpose();
    const T smoothing = static_cast<T>(attr.extra);
    const T spread = smoothing / static_cast<T>(classes);
    const T total_weight = static_cast<T>(attr.total);
    GradSlot<T> slot = grad_slot(logits);
    if (slot.first) slot.view.setZero();
    for (Index i = 0; i < rows; ++i) {
        const auto label = static_cast<Index>(aux(i, 0));
        if (label == ignored_row) continue;
        const T upstream = attr.per_element ? g(i, 0) : g(0, 0) * static_cast<T>(attr.scale);
        const T target_weight = (T(1) - smoothing) * weight(label);
        slot.view.row(i) += upstream * ((target_weight + spread * total_weight) * probs.row(i));
        if (spread != T(0)) slot.view.row(i) -= (upstream * spread) * weight;
        slot.view(i, label) -= upstream * target_weight;
    }
}

}  // namespace detail

// Cross-entropy of integer class labels under softmax(logits), one label per row; with
// Reduction::none, an [N x 1] column of per-row losses (0 for ignored rows).
template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, std::span<const int> labels,
                        const CrossEntropyOptions& options = {}) {
    Node<T>& z = logits.node();
    const Shape s = z.shape();
    detail::check_labels<T>(labels, s, options.ignore_index);
    detail::check_cross_entropy_options(options, s);
    const bool per_element = options.reduction == Reduction::none;
    NodePtr<T> node = detail::record<T>(
        "cross_entropy", detail::loss_output_shape(options.reduction, Shape{s.rows, 1}), {&z},
        &detail::cross_entropy_backward<T>, detail::reads_nothing);

    node->aux.resize(Shape{s.rows + s.cols, 1});
    MatrixView<T> aux = node->aux.view();
    double total_weight = 0.0;
    for (Index c = 0; c < s.cols; ++c) {
        const double w = options.weight.empty() ? 1.0 : options.weight[static_cast<std::size_t>(c)];
        aux(s.rows + c, 0) = static_cast<T>(w);
        total_weight += w;
    }
    const auto weight = std::as_const(aux).col(0).segment(s.rows, s.cols).transpose();

    node->saved.resize(s);
    MatrixView<T> log_probs = node->saved.view();
    detail::stable_log_softmax<T>(detail::value_of(z), log_probs);
    const double smoothing = options.label_smoothing;
    const double spread = smoothing / static_cast<double>(s.cols);
    double total = 0.0;
    double counted_weight = 0.0;  // the mean's denominator: Note [Cross-entropy options]
    MatrixView<T> out = node->value.view();
    for (Index i = 0; i < s.rows; ++i) {
        const int label = labels[static_cast<std::size_t>(i)];
        double row_loss = 0.0;
        if (label == options.ignore_index) {
            aux(i, 0) = static_cast<T>(detail::ignored_row);
        } else {
            aux(i, 0) = static_cast<T>(label);
            const double w_y = static_cast<double>(weight(label));
            row_loss = -(1.0 - smoothing) * w_y * static_cast<double>(log_probs(i, label));
            if (spread != 0.0) {
                row_loss -=
                    spread *
                    (weight.array() * log_probs.row(i).array()).template cast<double>().sum();
            }
            counted_weight += w_y;
        }
        if (per_element) out(i, 0) = static_cast<T>(row_loss);
        total += row_loss;
    }
    double scale = 1.0;
    if (options.reduction == Reduction::mean) {
        if (!(counted_weight > 0.0) && s.rows > 0) {
            detail::throw_value(
                "cross_entropy",
                "the mean divides by the total weight of the rows not ignored, which "
                "is 0 here (" +
                    std::to_string(s.rows) +
                    " rows; every label ignored or of weight 0); PyTorch would "
                    "return NaN. Use Reduction::sum to get 0 for such a batch");
        }
        scale = counted_weight > 0.0 ? 1.0 / counted_weight : 1.0;
    }
    node->set_attr(detail::LossAttr{scale, per_element, 0.0, smoothing, total_weight});
    if (!per_element) out(0, 0) = static_cast<T>(total * scale);
    log_probs = log_probs.array().exp().matrix();  // kept as probabilities for backward
    return detail::finish(std::move(node));
}

template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const std::vector<int>& labels,
                        const CrossEntropyOptions& options = {}) {
    return cross_entropy(logits, std::span<const int>(labels), options);
}

// The reduction alone, as before the options existed.
template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, std::span<const int> labels, Reduction reduction) {
    return cross_entropy(logits, labels, CrossEntropyOptions{.reduction = reduction});
}

template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const std::vector<int>& labels,
                        Reduction reduction) {
    return cross_entropy(logits, std::span<const int>(labels), reduction);
}

// Labels of another integer type (PyTorch's int64), converted to int first; a label int cannot
// hold is a value_error naming its row.
template <class T, ConvertibleLabel L>
Tensor<T> cross_entropy(const Tensor<T>& logits, const std::vector<L>& labels,
                        const CrossEntropyOptions& options = {}) {
    return cross_entropy(logits, detail::labels_as_int("cross_entropy", std::span(labels)),
                         options);
}

template <class T, ConvertibleLabel L>
Tensor<T> cross_entropy(const Tensor<T>& logits, const std::vector<L>& labels,
                        Reduction reduction) {
    return cross_entropy(logits, detail::labels_as_int("cross_entropy", std::span(labels)),
                         reduction);
}

}  // namespace gradscope
