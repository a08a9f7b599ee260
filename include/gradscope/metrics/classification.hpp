// Classification metrics on a model's outputs: accuracy, top-k accuracy, the confusion matrix,
// and per-class precision, recall and F1 with their macro and support-weighted averages.
//
// Scores are rows x classes, one row per sample: logits or probabilities (the ranking is what
// counts, so either gives the same results), as a Matrix, a Map or a Tensor's value. Labels
// are class indices in [0, classes).
//
// Ranking, shared by every function here so that top-1 accuracy equals accuracy: class a
// ranks above class b when its score is greater, a NaN score ranks above every number (as
// torch.argmax picks a NaN), and equal scores rank by class index (the first maximum wins, as
// in argmax).
//
// Undefined ratios follow scikit-learn with zero_division=0, without its warning: a class
// never predicted has precision 0, a class with no samples has recall 0, and F1 is
// 2 p r / (p + r), 0 when p + r is 0. Averages are over all `classes` classes (as
// scikit-learn's with labels=range(classes)), including classes absent from both. Every ratio
// and mean is computed as scikit-learn 1.2 computes it (F1 from p and r, sums in numpy's
// pairwise order), so the doubles are the same and so is the text format_report prints.
#pragma once

#include "../core/errors.hpp"
#include "../core/labels.hpp"
#include "../core/matrix.hpp"
#include "../core/tensor.hpp"

#include <Eigen/Core>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace gradscope::metrics {

// counts(i, j): how many samples of true class i were predicted as class j (scikit-learn's
// layout: rows are the truth, columns the prediction).
using ConfusionMatrix = Eigen::Matrix<std::int64_t, Eigen::Dynamic, Eigen::Dynamic>;

namespace detail {

using gradscope::detail::throw_value;

inline void check_samples(const char* who, Index rows) {
    if (rows == 0) throw_value(who, "there are no samples (0 rows)");
}

inline void check_labels(const char* who, std::span<const int> labels, Shape scores) {
    if (static_cast<Index>(labels.size()) != scores.rows) {
        throw shape_error(std::string(who) + ": " + std::to_string(labels.size()) +
                          " labels for scores " + to_string(scores) + " (one label per row)");
    }
    check_samples(who, scores.rows);
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (labels[i] < 0 || labels[i] >= scores.cols) {
            throw_value(who, "label " + std::to_string(labels[i]) + " at row " + std::to_string(i) +
                                 " is outside the " + std::to_string(scores.cols) +
                                 " classes [0, " + std::to_string(scores.cols) + ")");
        }
    }
}

// Whether class a (score sa) ranks above class b (score sb); see the top of this file.
inline bool ranks_above(double sa, Index a, double sb, Index b) {
    const bool nan_a = std::isnan(sa), nan_b = std::isnan(sb);
    if (nan_a != nan_b) return nan_a;
    if (nan_a || sa == sb) return a < b;
    return sa > sb;
}

// How many classes rank above `cls` in row r: 0 for the predicted class.
template <class Derived>
Index rank_of(const Eigen::MatrixBase<Derived>& scores, Index r, Index cls) {
    const auto s = static_cast<double>(scores(r, cls));
    Index above = 0;
    for (Index c = 0; c < scores.cols(); ++c) {
        above += c != cls && ranks_above(static_cast<double>(scores(r, c)), c, s, cls);
    }
    return above;
}

template <class Derived>
Index predicted_class(const Eigen::MatrixBase<Derived>& scores, Index r) {
    Index best = 0;
    for (Index c = 1; c < scores.cols(); ++c) {
        if (ranks_above(static_cast<double>(scores(r, c)), c, static_cast<double>(scores(r, best)),
                        best)) {
            best = c;
        }
    }
    return best;
}

}  // namespace detail

// The predicted class of each row (the first highest score; see the top of this file).
template <class Derived>
std::vector<int> predictions(const Eigen::MatrixBase<Derived>& scores) {
    if (scores.cols() == 0)
        detail::throw_value("metrics::predictions", "the scores have no classes");
    std::vector<int> out(static_cast<std::size_t>(scores.rows()));
    for (Index r = 0; r < scores.rows(); ++r) {
        out[static_cast<std::size_t>(r)] = static_cast<int>(detail::predicted_class(scores, r));
    }
    return out;
}

// The fraction of rows whose true class is among the k highest-ranked: top-1 is accuracy.
template <class Derived>
double top_k_accuracy(const Eigen::MatrixBase<Derived>& scores, std::span<const int> labels,
                      Index k) {
    const char* who = "metrics::top_k_accuracy";
    detail::check_labels(who, labels, Shape{scores.rows(), scores.cols()});
    if (k < 1 || k > scores.cols()) {
        detail::throw_value(who, "k must be in [1, " + std::to_string(scores.cols()) +
                                     "] (the number of classes), got " + std::to_string(k));
    }
    Index hits = 0;
    for (Index r = 0; r < scores.rows(); ++r) {
        hits += detail::rank_of(scores, r, labels[static_cast<std::size_t>(r)]) < k;
    }
    return static_cast<double>(hits) / static_cast<double>(scores.rows());
}

// The fraction of rows whose highest-ranked class is the label.
template <class Derived>
double accuracy(const Eigen::MatrixBase<Derived>& scores, std::span<const int> labels) {
    const char* who = "metrics::accuracy";
    detail::check_labels(who, labels, Shape{scores.rows(), scores.cols()});
    Index hits = 0;
    for (Index r = 0; r < scores.rows(); ++r) {
        hits += detail::predicted_class(scores, r) == labels[static_cast<std::size_t>(r)];
    }
    return static_cast<double>(hits) / static_cast<double>(scores.rows());
}

// From predicted and true class indices, both in [0, classes).
inline ConfusionMatrix confusion_matrix(std::span<const int> predicted, std::span<const int> labels,
                                        Index classes) {
    const char* who = "metrics::confusion_matrix";
    if (classes < 1)
        detail::throw_value(who, "classes must be >= 1, got " + std::to_string(classes));
    if (predicted.size() != labels.size()) {
        throw shape_error(std::string(who) + ": " + std::to_string(predicted.size()) +
                          " predictions but " + std::to_string(labels.size()) + " labels");
    }
    detail::check_labels(who, labels, Shape{static_cast<Index>(labels.size()), classes});
    for (std::size_t i = 0; i < predicted.size(); ++i) {
        if (predicted[i] < 0 || predicted[i] >= classes) {
            detail::throw_value(who, "prediction " + std::to_string(predicted[i]) + " at row " +
                                         std::to_string(i) + " is outside the " +
                                         std::to_string(classes) + " classes [0, " +
                                         std::to_string(classes) + ")");
        }
    }
    ConfusionMatrix counts = ConfusionMatrix::Zero(classes, classes);
    for (std::size_t i = 0; i < labels.size(); ++i) ++counts(labels[i], predicted[i]);
    return counts;
}

// From scores (rows x classes) and labels.
template <class Derived>
ConfusionMatrix confusion_matrix(const Eigen::MatrixBase<Derived>& scores,
                                 std::span<const int> labels) {
    detail::check_labels("metrics::confusion_matrix", labels, Shape{scores.rows(), scores.cols()});
    return confusion_matrix(predictions(scores), labels, scores.cols());
}

struct ClassificationReport {
    // One entry per class.
    std::vector<double> precision, recall, f1;
    std::vector<std::int64_t> support;  // samples of the class (row sums of the confusion matrix)
    std::vector<std::int64_t> predicted;  // samples predicted as the class (column sums)
    double accuracy = 0.0;
    // Unweighted means over the classes.
    double macro_precision = 0.0, macro_recall = 0.0, macro_f1 = 0.0;
    // Means weighted by support.
    double weighted_precision = 0.0, weighted_recall = 0.0, weighted_f1 = 0.0;
};

namespace detail {

// The sum numpy's np.sum gives (its pairwise summation: sequential below 8 values, 8 running
// sums up to 128, halves above), so that a mean here is the double scikit-learn reports.
inline double numpy_sum(std::span<const double> values) {
    const std::size_t n = values.size();
    if (n < 8) {
        double sum = 0.0;
        for (const double v : values) sum += v;
        return sum;
    }
    if (n <= 128) {
        std::array<double, 8> r{};
        for (std::size_t j = 0; j < 8; ++j) r[j] = values[j];
        std::size_t i = 8;
        for (; i < n - n % 8; i += 8) {
            for (std::size_t j = 0; j < 8; ++j) r[j] += values[i + j];
        }
        double sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; ++i) sum += values[i];
        return sum;
    }
    std::size_t half = n / 2;
    half -= half % 8;
    return numpy_sum(values.first(half)) + numpy_sum(values.subspan(half));
}

// np.average(values) and np.average(values, weights=weights).
inline double numpy_mean(const std::vector<double>& values) {
    return numpy_sum(values) / static_cast<double>(values.size());
}
inline double numpy_weighted_mean(const std::vector<double>& values,
                                  const std::vector<std::int64_t>& weights) {
    std::vector<double> products(values.size()), as_double(weights.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
        as_double[i] = static_cast<double>(weights[i]);
        products[i] = values[i] * as_double[i];
    }
    return numpy_sum(products) / numpy_sum(as_double);
}

// scikit-learn's F-score with beta = 1: (1 + beta^2) p r / (beta^2 p + r), 0 when p + r is 0.
inline double f1_of(double precision, double recall) {
    const double denominator = precision + recall;
    return 2.0 * precision * recall / (denominator == 0.0 ? 1.0 : denominator);
}

}  // namespace detail

// Per-class precision, recall and F1, and their averages (zero division: see the top).
inline ClassificationReport classification_report(const ConfusionMatrix& counts) {
    const char* who = "metrics::classification_report";
    if (counts.rows() != counts.cols() || counts.rows() == 0) {
        throw shape_error(std::string(who) +
                          ": the confusion matrix must be square and not empty, got " +
                          to_string(Shape{counts.rows(), counts.cols()}));
    }
    if ((counts.array() < 0).any())
        detail::throw_value(who, "the confusion matrix has a negative count");
    const std::int64_t total = counts.sum();
    if (total == 0) detail::throw_value(who, "the confusion matrix counts no samples");
    const auto ratio = [](std::int64_t num, std::int64_t den) {
        return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
    };
    ClassificationReport out;
    for (Index c = 0; c < counts.rows(); ++c) {
        const std::int64_t tp = counts(c, c);
        out.support.push_back(counts.row(c).sum());
        out.predicted.push_back(counts.col(c).sum());
        out.precision.push_back(ratio(tp, out.predicted.back()));
        out.recall.push_back(ratio(tp, out.support.back()));
        out.f1.push_back(detail::f1_of(out.precision.back(), out.recall.back()));
    }
    out.macro_precision = detail::numpy_mean(out.precision);
    out.macro_recall = detail::numpy_mean(out.recall);
    out.macro_f1 = detail::numpy_mean(out.f1);
    out.weighted_precision = detail::numpy_weighted_mean(out.precision, out.support);
    out.weighted_recall = detail::numpy_weighted_mean(out.recall, out.support);
    out.weighted_f1 = detail::numpy_weighted_mean(out.f1, out.support);
    out.accuracy = ratio(counts.trace(), total);
    return out;
}

// The same for a Tensor's value (logits from a network).
template <class T>
double accuracy(const Tensor<T>& scores, std::span<const int> labels) {
    return accuracy(scores.value(), labels);
}
template <class T>
double top_k_accuracy(const Tensor<T>& scores, std::span<const int> labels, Index k) {
    return top_k_accuracy(scores.value(), labels, k);
}
template <class T>
ConfusionMatrix confusion_matrix(const Tensor<T>& scores, std::span<const int> labels) {
    return confusion_matrix(scores.value(), labels);
}

// Labels of another integer type (PyTorch's int64), converted to int first (a label int cannot
// hold is a value_error naming its row); the scores a matrix or a Tensor, as above.
template <class Scores, ConvertibleLabel L>
requires requires(const Scores& scores, std::span<const int> labels) { accuracy(scores, labels); }
double accuracy(const Scores& scores, const std::vector<L>& labels) {
    return accuracy(scores,
                    gradscope::detail::labels_as_int("metrics::accuracy", std::span(labels)));
}
template <class Scores, ConvertibleLabel L>
requires requires(const Scores& scores, std::span<const int> labels) {
    top_k_accuracy(scores, labels, Index{1});
}
double top_k_accuracy(const Scores& scores, const std::vector<L>& labels, Index k) {
    return top_k_accuracy(
        scores, gradscope::detail::labels_as_int("metrics::top_k_accuracy", std::span(labels)), k);
}
template <class Scores, ConvertibleLabel L>
requires requires(const Scores& scores, std::span<const int> labels) {
    confusion_matrix(scores, labels);
}
ConfusionMatrix confusion_matrix(const Scores& scores, const std::vector<L>& labels) {
    return confusion_matrix(
        scores, gradscope::detail::labels_as_int("metrics::confusion_matrix", std::span(labels)));
}
// Predictions or labels of another integer type (argmax in PyTorch gives int64).
template <ConvertibleLabel P, LabelInteger L>
ConfusionMatrix confusion_matrix(const std::vector<P>& predicted, const std::vector<L>& labels,
                                 Index classes) {
    const char* who = "metrics::confusion_matrix";
    return confusion_matrix(
        gradscope::detail::labels_as_int(who, std::span(predicted), "prediction"),
        gradscope::detail::labels_as_int(who, std::span(labels)), classes);
}
template <ConvertibleLabel L>
ConfusionMatrix confusion_matrix(std::span<const int> predicted, const std::vector<L>& labels,
                                 Index classes) {
    return confusion_matrix(
        predicted, gradscope::detail::labels_as_int("metrics::confusion_matrix", std::span(labels)),
        classes);
}

// From scores and labels, in any form confusion_matrix takes them: scikit-learn's
// classification_report(y_true, y_pred) over every class of the scores.
template <class Scores, class Labels>
requires requires(const Scores& scores, const Labels& labels) { confusion_matrix(scores, labels); }
ClassificationReport classification_report(const Scores& scores, const Labels& labels) {
    return classification_report(confusion_matrix(scores, labels));
}

}  // namespace gradscope::metrics
