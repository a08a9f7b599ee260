// data::TensorDataset: samples as the rows of a feature matrix, with their targets either as the
// rows of a target matrix (regression, multi-output) or as integer class labels. It owns its
// matrices; a DataLoader reads rows from it by index.
#pragma once

#include "../core/errors.hpp"
#include "../core/labels.hpp"
#include "../core/matrix.hpp"

#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace gradscope::data {

template <class T>
class TensorDataset {
public:
    // Targets as a matrix of at least one column: row i of `targets` belongs to row i of
    // `features`.
    TensorDataset(Matrix<T> features, Matrix<T> targets)
        : features_(std::move(features)), targets_(std::move(targets)) {
        if (targets_.rows() != features_.rows()) {
            gradscope::detail::throw_shapes("TensorDataset",
                                            "features and targets need the same rows",
                                            shape_of(features_), shape_of(targets_));
        }
        if (targets_.cols() == 0) {  // e.g. Tabular::targets of a table read as classes
            gradscope::detail::throw_shapes(
                "TensorDataset",
                "the targets have no columns (a dataset of class labels takes a "
                "std::vector<int>)",
                shape_of(features_), shape_of(targets_));
        }
    }

    // Targets as class labels: labels[i] (>= 0) is the class of row i.
    TensorDataset(Matrix<T> features, std::vector<int> labels)
        : features_(std::move(features)),
          targets_(features_.rows(), 0),
          labels_(std::move(labels)),
          has_labels_(true) {
        if (static_cast<Index>(labels_.size()) != features_.rows()) {
            gradscope::detail::throw_shape("TensorDataset",
                                           std::to_string(labels_.size()) + " labels for " +
                                               std::to_string(features_.rows()) + " feature rows");
        }
        for (std::size_t i = 0; i < labels_.size(); ++i) {
            if (labels_[i] < 0) {
                gradscope::detail::throw_value("TensorDataset",
                                               "label " + std::to_string(labels_[i]) + " at row " +
                                                   std::to_string(i) + " is negative");
            }
        }
    }

    // Labels of another integer type (PyTorch's int64, a file's uint8), converted to int; a label
    // int cannot hold is a value_error naming its row.
    template <ConvertibleLabel L>
    TensorDataset(Matrix<T> features, const std::vector<L>& labels)
        : TensorDataset(std::move(features),
                        gradscope::detail::labels_as_int("TensorDataset", std::span(labels))) {}

    [[nodiscard]] std::size_t size() const { return static_cast<std::size_t>(features_.rows()); }
    [[nodiscard]] Index feature_count() const { return features_.cols(); }
    // Columns of the target matrix; 0 for a dataset of class labels.
    [[nodiscard]] Index target_count() const { return targets_.cols(); }
    [[nodiscard]] bool has_labels() const { return has_labels_; }

    [[nodiscard]] const Matrix<T>& features() const { return features_; }
    [[nodiscard]] const Matrix<T>& targets() const { return targets_; }       // [n x 0] with labels
    [[nodiscard]] const std::vector<int>& labels() const { return labels_; }  // empty without

private:
    static Shape shape_of(const Matrix<T>& m) { return {m.rows(), m.cols()}; }

    Matrix<T> features_;
    Matrix<T> targets_;
    std::vector<int> labels_;
    bool has_labels_ = false;
};

// The rows `rows` of `dataset`, in that order, as a new dataset (a split's part).
template <class T, class Rows>
TensorDataset<T> subset(const TensorDataset<T>& dataset, const Rows& rows) {
    Matrix<T> features(static_cast<Index>(rows.size()), dataset.feature_count());
    Matrix<T> targets(static_cast<Index>(rows.size()), dataset.target_count());
    std::vector<int> labels;
    Index out = 0;
    for (const std::size_t row : rows) {
        if (row >= dataset.size()) {
            gradscope::detail::throw_value("subset", "row " + std::to_string(row) +
                                                         " of a dataset of " +
                                                         std::to_string(dataset.size()) + " rows");
        }
        const auto r = static_cast<Index>(row);
        features.row(out) = dataset.features().row(r);
        targets.row(out) = dataset.targets().row(r);
        if (dataset.has_labels()) labels.push_back(dataset.labels()[row]);
        ++out;
    }
    if (dataset.has_labels()) return TensorDataset<T>(std::move(features), std::move(labels));
    return TensorDataset<T>(std::move(features), std::move(targets));
}

}  // namespace gradscope::data
