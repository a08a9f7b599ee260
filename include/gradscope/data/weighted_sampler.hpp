// WeightedRandomSampler: rows drawn with probabilities proportional to their weights, as
// PyTorch's torch.utils.data.WeightedRandomSampler. The usual answer to class imbalance: give
// each row the inverse of its class's count (class_balancing_weights) and, drawing with
// replacement (the default), every class is drawn equally often, in expectation.
//
//     auto balanced = std::make_shared<data::WeightedRandomSampler>(
//         data::class_balancing_weights(train.labels()), data::WeightedSamplerOptions{.seed = 1});
//     data::DataLoader<float> loader(train, {.batch_size = 32, .sampler = balanced});
//
// With replacement (the default) the num_samples draws are independent: a uniform number on
// [0, total weight) located among the cumulative weights by binary search (of the weights scaled
// by a power of two, which is exact, so that their sum neither overflows nor loses precision to
// subnormal numbers). Without replacement
// the draw is sequential, each row taken with probability proportional to its weight among the
// rows not yet taken (torch.multinomial's rule), by exponential clocks, the form of Efraimidis &
// Spirakis' keys ("Weighted random sampling with a reservoir", 2006) that sorts ascending: row i
// rings at E_i / w_i with E_i ~ Exp(1), a time ~ Exp(w_i); the first to ring is row i with
// probability w_i / (sum of w), and as the clocks have no memory, so is each next among the
// rest. The num_samples first rows to ring, in that order, are the sequential draw.
//
// Either way an epoch's rows are a function of (seed, epoch), as the other samplers' are
// (sampler.hpp), so a resumed run draws what the uninterrupted one would have. A row of weight 0
// is never drawn. Every buffer is sized by the constructor, so an epoch allocates nothing; fill()
// uses one of them, so a sampler serves one loader at a time.
#pragma once

#include "../core/errors.hpp"
#include "../core/labels.hpp"
#include "sampler.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace gradscope::data {

// In PyTorch's keyword order (weights is the constructor's first argument; the generator is a
// seed here).
struct WeightedSamplerOptions {
    std::size_t num_samples = 0;  // draws per epoch; 0: one per weight
    bool replacement = true;
    std::uint64_t seed = 0;
};

class WeightedRandomSampler final : public Sampler {
public:
    using Options = WeightedSamplerOptions;

    explicit WeightedRandomSampler(std::vector<double> weights, const Options& options = {})
        : weights_(std::move(weights)), options_(options) {
        const char* who = "WeightedRandomSampler";
        if (weights_.empty()) throw value_error(std::string(who) + ": no weights");
        std::size_t positive = 0;
        double largest = 0.0;
        for (std::size_t i = 0; i < weights_.size(); ++i) {
            if (!(weights_[i] >= 0.0) || !std::isfinite(weights_[i])) {
                throw value_error(std::string(who) + ": weight " + std::to_string(i) + " is " +
                                  gradscope::detail::number_text(weights_[i]) +
                                  "; weights must be finite and >= 0");
            }
            if (weights_[i] > 0.0) ++positive;
            largest = std::max(largest, weights_[i]);
        }
        if (positive == 0) {
            throw value_error(std::string(who) + ": all " + std::to_string(weights_.size()) +
                              " weights are 0, so no row can be drawn");
        }
        // The largest scaled weight is in [1, 2): the sum stays finite and normal.
        const int exponent = std::ilogb(largest);
        double total = 0.0;
        cumulative_.reserve(weights_.size());
        for (std::size_t i = 0; i < weights_.size(); ++i) {
            const double scaled = std::ldexp(weights_[i], -exponent);
            if (scaled > 0.0) last_positive_ = i;
            total += scaled;
            cumulative_.push_back(total);
        }
        const bool defaulted = options_.num_samples == 0;
        if (defaulted) options_.num_samples = weights_.size();
        if (!options_.replacement && options_.num_samples > positive) {
            throw value_error(std::string(who) + ": cannot draw " +
                              std::to_string(options_.num_samples) + " rows without replacement" +
                              (defaulted ? " (num_samples 0: one per weight)" : "") + ": only " +
                              std::to_string(positive) + " of the " +
                              std::to_string(weights_.size()) + " weights are positive");
        }
        if (!options_.replacement) keys_.resize(weights_.size());
    }

    // One weight per dataset row: any other dataset size is an error naming both.
    [[nodiscard]] std::size_t length(std::size_t dataset_size) const override {
        if (dataset_size != weights_.size()) {
            throw value_error("WeightedRandomSampler: " + std::to_string(weights_.size()) +
                              " weights for a dataset of " + std::to_string(dataset_size) +
                              " rows; it needs one weight per row");
        }
        return options_.num_samples;
    }

    void fill(std::size_t epoch, std::size_t dataset_size, std::span<std::size_t> out) override {
        if (out.size() != length(dataset_size)) {
            throw value_error("WeightedRandomSampler::fill: the output holds " +
                              std::to_string(out.size()) + " indices, an epoch draws " +
                              std::to_string(options_.num_samples));
        }
        Rng rng(epoch_seed(options_.seed, epoch));
        if (options_.replacement) {
            const double total = cumulative_.back();
            for (auto& row : out) {
                const double u = rng.uniform() * total;
                const auto at = std::upper_bound(cumulative_.begin(), cumulative_.end(), u);
                // u rounded up to the total would fall past the end: the last row that can be
                // drawn takes it, never a trailing row of weight 0.
                row = std::min(static_cast<std::size_t>(at - cumulative_.begin()), last_positive_);
            }
            return;
        }
        for (std::size_t i = 0; i < weights_.size(); ++i) {
            // log(E_i / w_i) with E_i = -log(1 - u) ~ Exp(1): in logs, so that a subnormal
            // weight's key stays finite and apart from the rows of weight 0, which come last.
            const double exponential = -std::log1p(-rng.uniform());
            keys_[i] = {weights_[i] > 0.0 ? std::log(exponential) - std::log(weights_[i])
                                          : std::numeric_limits<double>::infinity(),
                        i};
        }
        const auto taken = keys_.begin() + static_cast<std::ptrdiff_t>(out.size());
        std::partial_sort(keys_.begin(), taken, keys_.end(),
                          [](const auto& a, const auto& b) { return a.first < b.first; });
        for (std::size_t k = 0; k < out.size(); ++k) out[k] = keys_[k].second;
    }

    [[nodiscard]] const std::vector<double>& weights() const noexcept { return weights_; }
    [[nodiscard]] const Options& options() const noexcept { return options_; }

private:
    std::vector<double> weights_;
    Options options_;
    std::vector<double> cumulative_;  // cumulative_[i] = (w_0 + ... + w_i) / 2^exponent
    std::size_t last_positive_ = 0;
    std::vector<std::pair<double, std::size_t>> keys_;  // without replacement: (key, row)
};

// One weight per row, 1 / (the number of rows of its class): with these a WeightedRandomSampler
// drawing with replacement draws each class present equally often, in expectation. Labels must
// be >= 0, as a TensorDataset's are.
inline std::vector<double> class_balancing_weights(const std::vector<int>& labels) {
    if (labels.empty()) {
        throw value_error(
            "class_balancing_weights: no labels (a dataset of target values has none)");
    }
    std::map<int, std::size_t> count;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (labels[i] < 0) {
            throw value_error("class_balancing_weights: label " + std::to_string(labels[i]) +
                              " at row " + std::to_string(i) + " is negative");
        }
        ++count[labels[i]];
    }
    std::vector<double> weights;
    weights.reserve(labels.size());
    for (const int label : labels) weights.push_back(1.0 / static_cast<double>(count[label]));
    return weights;
}

// Labels of another integer type (PyTorch's int64), converted to int first.
template <ConvertibleLabel L>
std::vector<double> class_balancing_weights(const std::vector<L>& labels) {
    return class_balancing_weights(
        gradscope::detail::labels_as_int("class_balancing_weights", std::span(labels)));
}

}  // namespace gradscope::data
