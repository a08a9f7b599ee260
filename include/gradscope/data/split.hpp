// Train/validation/test splits: seeded, optionally stratified by class.
//
//   auto parts = data::split(dataset, {.validation = 0.15, .test = 0.15, .seed = 1,
//                                      .stratify = true});
//   parts.train, parts.validation, parts.test   // TensorDatasets
//
// Sizes. Of n rows, round(test * n) go to test and round(validation * n) to validation (halves
// rounded up), the rest to train. Stratified, the same rule applies to each class on its own:
// of a class's n_c rows, round(test * n_c) go to test, round(validation * n_c) to validation,
// the rest to train; these per-class counts are exact, so the totals may differ from the
// unstratified ones by up to one row per class. Which rows go where is a seeded shuffle (of
// each class, stratified); each part lists its rows in their original order. Fractions must
// be in [0, 1) and leave train at least one row, or it is a value_error.
#pragma once

#include "../core/errors.hpp"
#include "../core/labels.hpp"
#include "dataset.hpp"
#include "sampler.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace gradscope::data {

struct SplitOptions {
    double validation = 0.0;  // fraction of the rows
    double test = 0.0;
    std::uint64_t seed = 0;
    bool stratify = false;  // per class; needs class labels
};

struct SplitIndices {
    std::vector<std::size_t> train, validation, test;
};

template <class T>
struct SplitDatasets {
    TensorDataset<T> train, validation, test;
};

namespace detail::split {

inline std::size_t share(double fraction, std::size_t n) {
    return static_cast<std::size_t>(std::floor(fraction * static_cast<double>(n) + 0.5));
}

inline void check(const SplitOptions& o) {
    for (const auto& [name, f] : {std::pair{"validation", o.validation}, {"test", o.test}}) {
        if (!(f >= 0.0 && f < 1.0)) {
            throw value_error(std::string("split: ") + name +
                              " must be a fraction in [0, 1), got " +
                              gradscope::detail::number_text(f));
        }
    }
}

// Deals `rows` (shuffled with the seed; `stream` tells classes apart) into the three parts.
inline void deal(std::vector<std::size_t> rows, const SplitOptions& o, std::uint64_t stream,
                 SplitIndices& out) {
    std::vector<std::size_t> order(rows.size());
    permutation(o.seed, stream, order);
    const std::size_t n = rows.size();
    const std::size_t n_test = share(o.test, n);
    const std::size_t n_validation = std::min(share(o.validation, n), n - n_test);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t row = rows[order[i]];
        if (i < n_test) {
            out.test.push_back(row);
        } else if (i < n_test + n_validation) {
            out.validation.push_back(row);
        } else {
            out.train.push_back(row);
        }
    }
}

// Refuses a split with no training rows; lists each part's rows in their original order.
inline SplitIndices finish(SplitIndices out, const SplitOptions& o, std::size_t n) {
    if (out.train.empty()) {
        throw value_error("split: validation = " + gradscope::detail::number_text(o.validation) +
                          " and test = " + gradscope::detail::number_text(o.test) + " of " +
                          std::to_string(n) + " rows leave none for training");
    }
    for (auto* part : {&out.train, &out.validation, &out.test}) {
        std::sort(part->begin(), part->end());
    }
    return out;
}

}  // namespace detail::split

// The rows 0 .. n-1 split at random.
inline SplitIndices split_indices(std::size_t n, const SplitOptions& options) {
    detail::split::check(options);
    if (options.stratify) {
        throw value_error("split: stratify needs class labels; pass them instead of a row count");
    }
    SplitIndices out;
    std::vector<std::size_t> rows(n);
    for (std::size_t i = 0; i < n; ++i) rows[i] = i;
    detail::split::deal(std::move(rows), options, 0, out);
    return detail::split::finish(std::move(out), options, n);
}

// The rows of a labelled dataset split at random, or per class with options.stratify.
inline SplitIndices split_indices(std::span<const int> labels, const SplitOptions& options) {
    if (!options.stratify) return split_indices(labels.size(), options);
    detail::split::check(options);
    std::vector<std::vector<std::size_t>> by_class;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (labels[i] < 0) {
            throw value_error("split: label " + std::to_string(labels[i]) + " at row " +
                              std::to_string(i) + " is negative");
        }
        const auto c = static_cast<std::size_t>(labels[i]);
        if (c >= by_class.size()) by_class.resize(c + 1);
        by_class[c].push_back(i);
    }
    SplitIndices out;
    for (std::size_t c = 0; c < by_class.size(); ++c) {
        detail::split::deal(by_class[c], options, c, out);
    }
    return detail::split::finish(std::move(out), options, labels.size());
}

// Labels of another integer type (PyTorch's int64), converted to int first.
template <ConvertibleLabel L>
SplitIndices split_indices(const std::vector<L>& labels, const SplitOptions& options) {
    return split_indices(gradscope::detail::labels_as_int("split", std::span(labels)), options);
}

template <class T>
SplitDatasets<T> split(const TensorDataset<T>& dataset, const SplitOptions& options) {
    if (options.stratify && !dataset.has_labels()) {
        throw value_error("split: stratify needs a dataset of class labels, not a target matrix");
    }
    const SplitIndices parts = dataset.has_labels() ? split_indices(dataset.labels(), options)
                                                    : split_indices(dataset.size(), options);
    return {subset(dataset, parts.train), subset(dataset, parts.validation),
            subset(dataset, parts.test)};
}

}  // namespace gradscope::data
