// The small problems the per-sample tests (test_per_sample, test_clip_per_sample) hold against
// explicit per-sample loops: a batch of rows with its loss, and the networks.
#pragma once

#include "testing.hpp"

#include <gradscope/gradscope.hpp>

#include <memory>
#include <vector>

namespace gradscope::testing {

using NetD = std::shared_ptr<MLP<double>>;

// One forward on x and the loss of its rows against the targets, with `reduction`: cross-entropy
// with integer labels, or mse_loss against rows of targets.
struct Problem {
    Matrix<double> x;
    std::vector<int> labels = {};  // cross_entropy when not empty
    Matrix<double> targets = {};   // mse_loss otherwise
    Reduction reduction = Reduction::mean;

    [[nodiscard]] Index batch() const { return x.rows(); }

    [[nodiscard]] TensorD loss(NetD& net, Index first, Index count) const {
        const TensorD out = (*net)(TensorD::constant(x.middleRows(first, count)));
        if (!labels.empty()) {
            const std::vector<int> rows(labels.begin() + first, labels.begin() + first + count);
            return cross_entropy(out, rows, reduction);
        }
        return mse_loss(out, TensorD::constant(targets.middleRows(first, count)), reduction);
    }
};

inline NetD plain_net() {
    return mlp<double>({.widths = {5, 7, 6, 3}, .activation = Tanh{}, .seed = 11});
}

inline NetD residual_net() {
    return mlp<double>(
        {.widths = {5, 6, 6, 6, 3}, .activation = Tanh{}, .residual = true, .seed = 12});
}

// Targets far from the outputs (regression) or mostly one class (classification) make the mean
// gradient stand out of the spread, so the noise scale is measurable and the comparison covers it.
inline Problem regression(Reduction reduction) {
    return {.x = normal(9, 5, 21),
            .targets = (normal(9, 3, 22, 0.3).array() + 3.0).matrix(),
            .reduction = reduction};
}

inline Problem classification(Reduction reduction) {
    return {.x = normal(9, 5, 23), .labels = {0, 0, 0, 0, 0, 0, 0, 1, 0}, .reduction = reduction};
}

}  // namespace gradscope::testing
