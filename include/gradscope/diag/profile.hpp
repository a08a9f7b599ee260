// GradientProfile: one backward pass as seen layer by layer, and the questions a test asks of
// it. Layer 0 is the input side; the gradient travels from the last layer to the first.
#pragma once

#include "../core/errors.hpp"
#include "gradient_noise.hpp"
#include "not_measured.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

namespace gradscope::diag {

struct LayerStats {
    std::string name;                        // the layer's module_label (its path)
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
    // lambda_max of the layer's diagonal block of the loss's Hessian (GradientMonitor::Options::
    // sharpness with per_layer): the sharpness when only this layer's parameters move.
    double sharpness = not_measured;

    // Per-sample statistics (GradientMonitor::Options::per_sample), over the layer's weight and
    // bias together; g_i is the gradient of sample i's own loss, g_bar their mean. Formulas and
    // sources: gradient_noise.hpp.
    double per_sample_norm_mean = not_measured;  // mean of |g_i|
    double per_sample_norm_max = not_measured;   // max of |g_i|
    double per_sample_norm_q10 = not_measured;   // 10% quantile of |g_i| (Hyndman-Fan 7)
    double per_sample_norm_q50 = not_measured;   // median of |g_i|
    double per_sample_norm_q90 = not_measured;   // 90% quantile of |g_i|
    double mean_grad_sq_norm = not_measured;     // |g_bar|^2
    double trace_covariance = not_measured;      // tr Sigma, unbiased
    double gradient_noise_scale = not_measured;  // B_simple (McCandlish et al. 2018)
    double gsnr = not_measured;                  // mean over parameters of g_bar_j^2/sigma_j^2
    double gsnr_parameters = not_measured;       // how many parameters that mean is over
    double critical_batch_size = not_measured;   // B_crit as B_simple suggests it (>= 0)
    double norm_test = not_measured;             // theta_norm (Byrd et al. 2012, Cockpit)
    double inner_product_test = not_measured;    // theta_inner (Bollapragada et al. 2018)
    double orthogonality_test = not_measured;    // nu_orth (Bollapragada et al. 2018)
    // Per sample i, in batch order; empty when not measured. Kept so that the network's values
    // (sums over layers) can be formed, and for norm_histogram.
    std::vector<double> per_sample_sq_norms = {};        // |g_i|^2
    std::vector<double> per_sample_sq_deviations = {};   // |g_i - g_bar|^2 (sample_deviation)
    std::vector<double> per_sample_dot_deviations = {};  // (g_i - g_bar)^T g_bar
};

// The per-sample statistics of the whole network: every watched layer that measured them
// taken together as one parameter vector (GradientProfile::per_sample_network).
struct PerSampleNetworkStats {
    std::size_t batch = 0;   // B; 0 when no layer measured per-sample statistics
    std::size_t layers = 0;  // the layers the numbers are over
    PerSampleNormSummary norms = {};
    double mean_grad_sq_norm = not_measured;
    double trace_covariance = not_measured;
    double gradient_noise_scale = not_measured;
    double gsnr = not_measured;
    double critical_batch_size = not_measured;
    double norm_test = not_measured;
    double inner_product_test = not_measured;
    double orthogonality_test = not_measured;
    std::vector<double> per_sample_sq_norms = {};  // |g_i|^2 over the network, batch order
};

// The whole network's sharpness at a step: the top eigenvalue of the loss's Hessian with respect
// to every parameter (GradientMonitor::Options::sharpness, diag/sharpness.hpp). A step it was
// not measured at has products = 0 and NaN numbers.
struct NetworkSharpness {
    double sharpness = not_measured;  // lambda_max
    double residual = not_measured;   // Lanczos's bound on |H y - lambda y|
    int products = 0;                 // Hessian-vector products it took; 0: not measured
    bool converged = false;
    [[nodiscard]] bool measured() const noexcept { return products > 0; }
};

// not_measured: fewer than two layers, or no gradient reached the first or the last one in the
// step (a watched module that the loss does not depend on, or whose forward was not called).
enum class Verdict { healthy, vanishing, exploding, nonfinite, not_measured };

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
        case Verdict::not_measured:
            return "not measured";
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

    // Replaces the record with `layers` at `step`, reusing this record's storage where the sizes
    // allow (GradientMonitor's full history does, so that recording allocates nothing).
    void assign(const std::vector<LayerStats>& layers, std::size_t step,
                const NetworkSharpness& sharpness = {}) {
        layers_ = layers;
        step_ = step;
        sharpness_ = sharpness;
    }

    [[nodiscard]] const std::vector<LayerStats>& layers() const noexcept { return layers_; }
    [[nodiscard]] std::vector<LayerStats>& layers() noexcept { return layers_; }
    [[nodiscard]] std::size_t size() const noexcept { return layers_.size(); }
    [[nodiscard]] std::size_t step() const noexcept { return step_; }
    // The network's sharpness at this step; measured() is false when it was not measured.
    [[nodiscard]] const NetworkSharpness& sharpness() const noexcept { return sharpness_; }
    void set_sharpness(const NetworkSharpness& sharpness) noexcept { sharpness_ = sharpness; }

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

    // A NaN |delta_l| without a non-finite entry counted is a layer no gradient reached (not
    // measured), not a non-finite gradient: a NaN in delta is always counted in `nonfinite`.
    [[nodiscard]] bool any_nonfinite() const {
        for (const auto& l : layers_) {
            if (l.nonfinite > 0 || std::isinf(l.output_grad_norm)) return true;
        }
        return false;
    }

    // Layers between the first and the last that no gradient reached do not change the verdict.
    [[nodiscard]] Verdict verdict(const VerdictThresholds& t = {}) const {
        if (any_nonfinite()) return Verdict::nonfinite;
        if (layers_.size() < 2 || std::isnan(layers_.front().output_grad_norm) ||
            std::isnan(layers_.back().output_grad_norm)) {
            return Verdict::not_measured;
        }
        const double r = ratio_first_last();
        if (!std::isfinite(r)) return Verdict::nonfinite;
        if (r < t.vanishing_ratio) return Verdict::vanishing;
        if (r > t.exploding_ratio) return Verdict::exploding;
        return Verdict::healthy;
    }

    // The per-sample statistics over every layer that measured them (LayerStats::
    // per_sample_sq_norms not empty), as one parameter vector: |g_i|^2, |g_bar|^2, tr Sigma and
    // the samples' deviations |g_i - g_bar|^2 and (g_i - g_bar)^T g_bar add over layers, so
    // B_simple and the batch-size tests follow from the sums; the GSNR is the mean over all those
    // layers' parameters, each layer's mean weighted by its parameter count. Layers whose batch
    // sizes differ cannot be joined: then nothing is measured.
    [[nodiscard]] PerSampleNetworkStats per_sample_network() const {
        PerSampleNetworkStats out;
        std::vector<double>& sq_norms = out.per_sample_sq_norms;
        std::vector<double> sq_deviations, dot_deviations;
        double mean_sq = 0.0;
        for (const LayerStats& l : layers_) {
            if (l.per_sample_sq_norms.empty()) continue;
            const std::size_t batch = l.per_sample_sq_norms.size();
            if (sq_norms.empty()) {
                sq_norms.assign(batch, 0.0);
                sq_deviations.assign(batch, 0.0);
                dot_deviations.assign(batch, 0.0);
            }
            if (batch != sq_norms.size() || l.per_sample_sq_deviations.size() != batch ||
                l.per_sample_dot_deviations.size() != batch) {
                return {};
            }
            for (std::size_t i = 0; i < batch; ++i) {
                sq_norms[i] += l.per_sample_sq_norms[i];
                sq_deviations[i] += l.per_sample_sq_deviations[i];
                dot_deviations[i] += l.per_sample_dot_deviations[i];
            }
            mean_sq += l.mean_grad_sq_norm;
            ++out.layers;
        }
        if (out.layers == 0) return out;
        out.mean_grad_sq_norm = mean_sq;
        std::vector<double> norms(sq_norms.size());
        double sum_sq = 0.0;
        for (std::size_t i = 0; i < sq_norms.size(); ++i) {
            sum_sq += sq_norms[i];
            norms[i] = std::sqrt(sq_norms[i]);
        }
        std::sort(norms.begin(), norms.end());
        out.batch = norms.size();
        out.norms = summarise_sorted_norms(norms);
        out.trace_covariance = diag::trace_covariance(sum_sq, out.mean_grad_sq_norm, out.batch);
        out.gradient_noise_scale =
            diag::gradient_noise_scale(out.trace_covariance, out.mean_grad_sq_norm, out.batch);
        out.critical_batch_size = diag::critical_batch_size(out.gradient_noise_scale);
        const BatchSizeTests tests = batch_size_tests(sq_deviations, dot_deviations, mean_sq);
        out.norm_test = tests.norm;
        out.inner_product_test = tests.inner_product;
        out.orthogonality_test = tests.orthogonality;
        out.gsnr = network_gsnr();
        return out;
    }

private:
    // The mean of the layers' GSNRs weighted by the parameters each is over: the GSNR over all
    // their parameters. +inf once one layer's is; not measured when no layer has one.
    [[nodiscard]] double network_gsnr() const {
        double sum = 0.0;
        double count = 0.0;
        bool infinite = false;
        for (const LayerStats& l : layers_) {
            if (l.per_sample_sq_norms.empty() || !(l.gsnr_parameters > 0.0)) continue;
            count += l.gsnr_parameters;
            infinite = infinite || std::isinf(l.gsnr);
            if (!infinite) sum += l.gsnr * l.gsnr_parameters;
        }
        if (count == 0.0) return not_measured;
        return infinite ? std::numeric_limits<double>::infinity() : sum / count;
    }

    void require_layers(std::size_t n, const char* what) const {
        if (layers_.size() < n) {
            throw value_error(std::string("GradientProfile::") + what + ": needs at least " +
                              std::to_string(n) + " layers, the profile has " +
                              std::to_string(layers_.size()));
        }
    }

    std::vector<LayerStats> layers_;
    std::size_t step_ = 0;
    NetworkSharpness sharpness_ = {};
};

}  // namespace gradscope::diag
