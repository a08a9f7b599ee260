// The statistics of a batch's per-sample gradients g_1..g_B, as scalar formulas. A layer's
// record (layer_statistics.hpp) and the whole network's (GradientProfile::per_sample_network)
// both use them, so each formula is written once.
//
//   g_bar = (1/B) sum_i g_i, the mean per-sample gradient
//   tr Sigma = (sum_i |g_i|^2 - B |g_bar|^2) / (B - 1), the unbiased trace of their covariance
//   |G|^2_est = |g_bar|^2 - tr Sigma / B, an unbiased estimate of the true gradient's |G|^2
//   B_simple = tr Sigma / |G|^2_est, the simple gradient noise scale
// are McCandlish, Kaplan, Amodei et al. 2018, "An Empirical Model of Large-Batch Training",
// section 2.2 and Appendix A. The GSNR is Liu et al. 2020, "Understanding Why Neural Networks
// Generalize Well Through GSNR of Parameters": per parameter j, g_bar_j^2 / sigma_j^2 with
// sigma_j^2 = (1/B) sum_i g_ij^2 - g_bar_j^2, then averaged over the parameters.
#pragma once

#include "not_measured.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>

namespace gradscope::diag {

// The p-quantile of ascending values by linear interpolation between order statistics:
// h = (n - 1) p, x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h]). This is definition 7
// of Hyndman & Fan 1996 (numpy's and R's default), so the numbers compare with theirs.
inline double quantile_of_sorted(std::span<const double> sorted, double p) {
    if (sorted.empty()) return not_measured;
    const double h = static_cast<double>(sorted.size() - 1) * p;
    const auto below = static_cast<std::size_t>(std::floor(h));
    if (below + 1 >= sorted.size()) return sorted.back();
    return sorted[below] + (h - static_cast<double>(below)) * (sorted[below + 1] - sorted[below]);
}

// tr Sigma (unbiased). One sample has no spread to estimate: not measured.
inline double trace_covariance(double sum_sq_norms, double mean_grad_sq_norm, std::size_t batch) {
    if (batch < 2) return not_measured;
    const double b = static_cast<double>(batch);
    return (sum_sq_norms - b * mean_grad_sq_norm) / (b - 1.0);
}

// B_simple = tr Sigma / |G|^2_est. When |G|^2_est <= 0 the noise drowns the mean gradient in
// this batch (the estimate of a positive number came out non-positive): not measurable, rather
// than a negative or infinite batch size.
inline double gradient_noise_scale(double trace, double mean_grad_sq_norm, std::size_t batch) {
    if (batch < 2 || std::isnan(trace)) return not_measured;
    const double signal = mean_grad_sq_norm - trace / static_cast<double>(batch);
    return signal > 0.0 ? trace / signal : not_measured;
}

// The GSNR's mean over parameters, accumulated one parameter at a time from its mean g_bar_j and
// its second moment m_j = (1/B) sum_i g_ij^2, so sigma_j^2 = m_j - g_bar_j^2.
//
// Rounding: m_j and g_bar_j are sums of B terms, each within about (B + 2) eps of its exact
// value relative to m_j (the standard bound for recursive summation), so sigma_j^2 is only
// known to about 4 (B + 2) eps m_j. A sigma_j^2 at or below that is zero: the samples agree on
// this parameter, and with g_bar_j != 0 (then g_bar_j^2 = m_j > 0) its GSNR is +inf. A
// parameter every sample's gradient leaves at zero (m_j = 0: g_bar_j = 0 and sigma_j^2 = 0) says
// nothing and is left out. The mean is +inf once one parameter is; with no parameter left, or
// fewer than two samples (no spread to measure), it is not measured. Nothing divides by zero.
class GsnrMean {
public:
    GsnrMean(std::size_t batch, double epsilon)
        : batch_(batch), tolerance_(4.0 * (static_cast<double>(batch) + 2.0) * epsilon) {}

    void add(double mean, double second_moment) {
        if (second_moment == 0.0) return;  // every sample's gradient is 0 here: left out
        ++count_;
        const double variance = second_moment - mean * mean;
        if (variance <= tolerance_ * second_moment) {
            infinite_ = true;
        } else {
            sum_ += mean * mean / variance;
        }
    }

    // The parameters the mean is over.
    [[nodiscard]] double count() const { return batch_ < 2 ? not_measured : double(count_); }

    [[nodiscard]] double value() const {
        if (batch_ < 2 || count_ == 0) return not_measured;
        if (infinite_) return std::numeric_limits<double>::infinity();
        return sum_ / static_cast<double>(count_);
    }

private:
    std::size_t batch_;
    double tolerance_;
    std::size_t count_ = 0;
    double sum_ = 0.0;
    bool infinite_ = false;
};

// Mean, max and the 10/50/90% quantiles of the per-sample gradient norms |g_i|.
struct PerSampleNormSummary {
    double mean = not_measured;
    double max = not_measured;
    double q10 = not_measured;
    double q50 = not_measured;
    double q90 = not_measured;
};

// From ascending norms.
inline PerSampleNormSummary summarise_sorted_norms(std::span<const double> sorted) {
    if (sorted.empty()) return {};
    double sum = 0.0;
    for (double n : sorted) sum += n;
    return {.mean = sum / static_cast<double>(sorted.size()),
            .max = sorted.back(),
            .q10 = quantile_of_sorted(sorted, 0.1),
            .q50 = quantile_of_sorted(sorted, 0.5),
            .q90 = quantile_of_sorted(sorted, 0.9)};
}

}  // namespace gradscope::diag
