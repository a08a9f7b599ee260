// GradientProfile: one backward pass as seen layer by layer, and the questions a test asks of
// it. Layer 0 is the input side; the gradient travels from the last layer to the first.
#pragma once

#include "../core/errors.hpp"
#include "not_measured.hpp"

#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

namespace gradscope::diag {

struct LayerStats {
    std::string name;                        // the layer's module path
    double output_grad_norm = not_measured;  // |delta_l| = |dL/dz_l|, z_l the layer's output
    double weight_grad_norm = not_measured;
    double bias_grad_norm = not_measured;
    double activation_norm =
        not_measured;  // |h_l|: the first activation after the layer (else z_l)
    double weight_norm = not_measured;
    double update_ratio =
        not_measured;  // |W_after - W_before| / |W_before| of the update that followed
    double saturated_fraction = not_measured;  // elements with |phi'| < threshold
    double dead_fraction = not_measured;       // units whose phi' is 0 for every sample
    std::size_t nonfinite = 0;                 // NaN or infinite entries in delta and the gradients
};

enum class Verdict { healthy, vanishing, exploding, nonfinite };

inline const char* to_string(Verdict v) {
    switch (v) {
        case Verdict::healthy:
            return "healthy";
        case Verdict::vanishing:
            return "vanishing";
        case Verdict::exploding:
            return "exploding";
        case Verdict::nonfinite:
            return "non-finite";
    }
    return "?";
}

// The verdict compares |delta_1| / |delta_L| with these bounds. The defaults call a gradient
// vanishing once the first layer receives less than a thousandth of what the last one does,
// and exploding at a thousand times more: three orders of magnitude is where a single
// learning rate can no longer suit both ends of the network.
struct VerdictThresholds {
    double vanishing_ratio = 1e-3;
    double exploding_ratio = 1e3;
};

class GradientProfile {
public:
    GradientProfile() = default;
    explicit GradientProfile(std::vector<LayerStats> layers, std::size_t step = 0)
        : layers_(std::move(layers)), step_(step) {}

    [[nodiscard]] const std::vector<LayerStats>& layers() const noexcept { return layers_; }
    [[nodiscard]] std::vector<LayerStats>& layers() noexcept { return layers_; }
    [[nodiscard]] std::size_t size() const noexcept { return layers_.size(); }
    [[nodiscard]] std::size_t step() const noexcept { return step_; }

    // |delta_l| for every layer, input side first.
    [[nodiscard]] std::vector<double> output_grad_norms() const {
        std::vector<double> out;
        for (const auto& l : layers_) out.push_back(l.output_grad_norm);
        return out;
    }

    // |delta_1| / |delta_L|: below 1 the gradient shrank on its way to the first layer.
    [[nodiscard]] double ratio_first_last() const {
        require_layers(2, "ratio_first_last");
        return layers_.front().output_grad_norm / layers_.back().output_grad_norm;
    }

    // ratio^(1/(L-1)): how much the gradient grows per layer going backwards.
    [[nodiscard]] double gain_per_layer() const {
        return std::pow(ratio_first_last(), 1.0 / static_cast<double>(layers_.size() - 1));
    }

    // exp(-slope) of the least-squares line through ln|delta_l| against l over the interior
    // layers (the first and last are left out: the top one sees the loss directly, and both
    // ends have no neighbour on one side). Needs at least four layers.
    [[nodiscard]] double fitted_gain() const {
        require_layers(4, "fitted_gain");
        double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (std::size_t l = 1; l + 1 < layers_.size(); ++l) {
            const double x = static_cast<double>(l);
            const double y = std::log(layers_[l].output_grad_norm);
            n += 1;
            sx += x;
            sy += y;
            sxx += x * x;
            sxy += x * y;
        }
        const double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
        return std::exp(-slope);
    }

    [[nodiscard]] bool any_nonfinite() const {
        for (const auto& l : layers_) {
            if (l.nonfinite > 0 || !std::isfinite(l.output_grad_norm)) return true;
        }
        return false;
    }

    [[nodiscard]] Verdict verdict(const VerdictThresholds& t = {}) const {
        if (layers_.size() < 2 || any_nonfinite()) return Verdict::nonfinite;
        const double r = ratio_first_last();
        if (!std::isfinite(r)) return Verdict::nonfinite;
        if (r < t.vanishing_ratio) return Verdict::vanishing;
        if (r > t.exploding_ratio) return Verdict::exploding;
        return Verdict::healthy;
    }

private:
    void require_layers(std::size_t n, const char* what) const {
        if (layers_.size() < n) {
            throw value_error(std::string("GradientProfile::") + what + ": needs at least " +
                              std::to_string(n) + " layers, the profile has " +
                              std::to_string(layers_.size()));
        }
    }

    std::vector<LayerStats> layers_;
    std::size_t step_ = 0;
};

}  // namespace gradscope::diag
