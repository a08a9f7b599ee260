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
//
// Cockpit's batch-size tests (Schneider, Dangel & Hennig 2021, "Cockpit: A Practical Debugging
// Tool for the Training of Deep Neural Networks", the NormTest, InnerTest and OrthoTest
// instruments) are the practical tests of Byrd, Chin, Nocedal & Wu 2012 ("Sample size selection
// in optimization methods for machine learning", the norm test, their eq. 3.9) and
// Bollapragada, Byrd & Nocedal 2018 ("Adaptive Sampling Strategies for Stochastic
// Optimization", the inner-product test, eq. 2.6, and the orthogonality test, eq. 3.3), in their
// practical form: the population variances are the batch's sample variances (divisor B - 1),
// the true gradient is g_bar. Each is reported, as Cockpit does, as the smallest theta (nu) for
// which the test passes:
//   theta_norm^2  = sum_i |g_i - g_bar|^2                           / (B (B-1) |g_bar|^2)
//   theta_inner^2 = sum_i (g_i^T g_bar - |g_bar|^2)^2               / (B (B-1) |g_bar|^4)
//   nu_orth^2     = sum_i |g_i - (g_i^T g_bar / |g_bar|^2) g_bar|^2 / (B (B-1) |g_bar|^2)
// A test with a chosen theta (nu) passes when the value is at most it; the papers' experiments
// use theta = 0.5 or 0.9 and nu = 5.84. Equivalently, B theta^2 / theta_chosen^2 is the batch
// size the test asks for. Large values say that the batch mean is mostly noise (norm test),
// that its slope along g_bar is (inner-product test), or that the samples point far off
// g_bar's direction (orthogonality test). theta_norm^2 = tr Sigma / (B |g_bar|^2).
#pragma once

#include "../core/errors.hpp"
#include "not_measured.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <vector>

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

// The relative rounding error of a sum over a batch of B terms, with margin: about (B + 2) eps
// for recursive summation, times 4 for the few such sums a statistic combines. A difference of
// such sums at or below this fraction of their size is zero as far as the arithmetic can tell.
inline double batch_rounding(std::size_t batch, double epsilon) {
    return 4.0 * (static_cast<double>(batch) + 2.0) * epsilon;
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
// known to about batch_rounding(B, eps) m_j. A sigma_j^2 at or below that is zero: the samples
// agree on this parameter, and with g_bar_j != 0 (then g_bar_j^2 = m_j > 0) its GSNR is +inf. A
// parameter every sample's gradient leaves at zero (m_j = 0: g_bar_j = 0 and sigma_j^2 = 0)
// says nothing and is left out. The mean is +inf once one parameter is; with no parameter left, or
// fewer than two samples (no spread to measure), it is not measured. Nothing divides by zero.
class GsnrMean {
public:
    GsnrMean(std::size_t batch, double epsilon)
        : batch_(batch), tolerance_(batch_rounding(batch, epsilon)) {}

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

    // What `add` would have done for a run of parameters of which `used` have second_moment != 0,
    // `finite` of those a variance above the tolerance, `sum` the sum of their ratios: the
    // same mean, for a caller that evaluates the parameters in bulk (layer_statistics.hpp).
    void add_counted(std::size_t used, std::size_t finite, double sum) {
        count_ += used;
        if (finite < used) infinite_ = true;
        sum_ += sum;
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

// The critical batch size B_crit that B_simple suggests. McCandlish et al. 2018 model a step
// of batch B at its best learning rate as making 1/(1 + B_noise/B) of the progress of a
// full-batch step (their eq. 2.7), so that training to a given loss takes S = S_min (1 + B_noise/B)
// steps and E = E_min (1 + B/B_noise) samples (eq. 2.11); B_crit = E_min/S_min, the batch size at
// which both are twice their minimum, then equals B_noise. B_noise = tr(H Sigma)/(G^T H G) needs
// the Hessian H; B_simple is B_noise with H taken proportional to the identity, which is the
// assumption this estimate rests on: read it as an order of magnitude (the paper holds
// B_simple against B_crit measured by training, section 3). A batch well below B_crit wastes
// steps, one well above wastes samples.
// B_simple below 0 only by rounding (identical samples) gives 0; not measured stays not measured.
inline double critical_batch_size(double noise_scale) {
    return std::isnan(noise_scale) ? not_measured : std::max(0.0, noise_scale);
}

// Sample i's gradient against the batch mean g_bar, from |g_i|^2, g_i^T g_bar and |g_bar|^2:
// |g_i - g_bar|^2 = |g_i|^2 - 2 g_i^T g_bar + |g_bar|^2 and (g_i - g_bar)^T g_bar = g_i^T g_bar -
// |g_bar|^2. Both are differences of numbers of size s = |g_i|^2 + |g_bar|^2, so a value within
// `rounding` s of zero (batch_rounding) is zero: identical samples give exactly 0, not rounding
// noise of either sign. Both add over disjoint parameter groups, so a network's deviations are
// the sums of its layers'.
struct SampleDeviation {
    double sq_norm = 0.0;  // |g_i - g_bar|^2
    double dot = 0.0;      // (g_i - g_bar)^T g_bar
};

inline SampleDeviation sample_deviation(double sq_norm, double dot_mean, double mean_sq_norm,
                                        double rounding) {
    const double floor = rounding * (sq_norm + mean_sq_norm);
    const double spread = sq_norm - 2.0 * dot_mean + mean_sq_norm;
    const double along = dot_mean - mean_sq_norm;
    return {.sq_norm = spread > floor ? spread : 0.0, .dot = std::abs(along) > floor ? along : 0.0};
}

// The smallest theta (nu) passing each of Cockpit's three batch-size tests (the header's
// comment), from the samples' deviations. The orthogonal part of g_i - g_bar has
// |g_i - g_bar|^2 - ((g_i - g_bar)^T g_bar)^2 / |g_bar|^2 as its squared norm (Pythagoras: g_i's
// component off g_bar's direction is that of g_i - g_bar), clamped at 0 against rounding.
// Fewer than two samples: not measured. |g_bar| = 0 with some sample's gradient not equal to it
// (two opposite samples): each test fails for every theta, and the values are +inf, their limit
// as |g_bar| -> 0; with every g_i = 0 there is nothing to test and they are not measured.
struct BatchSizeTests {
    double norm = not_measured;           // theta_norm (Byrd et al. 2012)
    double inner_product = not_measured;  // theta_inner (Bollapragada et al. 2018)
    double orthogonality = not_measured;  // nu_orth (Bollapragada et al. 2018)
};

inline BatchSizeTests batch_size_tests(std::span<const double> sq_deviations,
                                       std::span<const double> dot_deviations,
                                       double mean_sq_norm) {
    const std::size_t batch = sq_deviations.size();
    if (batch < 2 || dot_deviations.size() != batch || std::isnan(mean_sq_norm)) return {};
    double spread = 0.0, along = 0.0, across = 0.0;
    for (std::size_t i = 0; i < batch; ++i) {
        spread += sq_deviations[i];
        if (mean_sq_norm > 0.0) {
            const double c = dot_deviations[i] / mean_sq_norm;  // (c_i - 1), c_i = g_i^T g/|g|^2
            along += c * c;
            across += std::max(0.0, sq_deviations[i] - c * dot_deviations[i]);
        }
    }
    if (mean_sq_norm == 0.0) {
        if (spread == 0.0) return {};
        constexpr double inf = std::numeric_limits<double>::infinity();
        return {.norm = inf, .inner_product = inf, .orthogonality = inf};
    }
    const double b = static_cast<double>(batch);
    const double scale = b * (b - 1.0);
    return {.norm = std::sqrt(spread / (scale * mean_sq_norm)),
            .inner_product = std::sqrt(along / scale),
            .orthogonality = std::sqrt(across / (scale * mean_sq_norm))};
}

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

// A histogram of the per-sample gradient norms |g_i|, from their squares (LayerStats::
// per_sample_sq_norms or PerSampleNetworkStats::per_sample_sq_norms). The bins are log-spaced
// from the batch's smallest positive norm to its largest: edges[k] = lo (hi/lo)^(k/bins), because
// per-sample norms spread over orders of magnitude and a few large ones are what a histogram
// is for; a linear axis would put every other sample in its first bin. Bin k holds the norms in
// [edges[k], edges[k+1]), the last bin also hi. The edges follow each batch, so two steps'
// histograms are compared by their edges, not bin by bin. A norm of 0 has no place on a log
// axis and is counted in `zeros`, a non-finite one in `nonfinite`; with no positive finite norm
// there are no bins, and when all of them are equal there is one bin, [lo, lo].
struct NormHistogram {
    std::vector<double> edges = {};        // bin edges, ascending: counts.size() + 1 of them
    std::vector<std::size_t> counts = {};  // samples per bin
    std::size_t zeros = 0;                 // samples with |g_i| = 0
    std::size_t nonfinite = 0;             // samples with |g_i| NaN or infinite
};

inline NormHistogram norm_histogram(std::span<const double> sq_norms, std::size_t bins = 10) {
    if (bins == 0) throw value_error("norm_histogram: needs at least one bin, got 0");
    NormHistogram h;
    double lo = std::numeric_limits<double>::infinity();
    double hi = 0.0;
    for (double sq : sq_norms) {
        if (!std::isfinite(sq)) {
            ++h.nonfinite;
        } else if (sq == 0.0) {
            ++h.zeros;
        } else {
            lo = std::min(lo, std::sqrt(sq));
            hi = std::max(hi, std::sqrt(sq));
        }
    }
    if (hi == 0.0) return h;
    if (lo == hi) bins = 1;
    h.edges.resize(bins + 1);
    const double log_ratio = std::log(hi / lo);
    for (std::size_t k = 0; k <= bins; ++k) {
        h.edges[k] = lo * std::exp(log_ratio * static_cast<double>(k) / static_cast<double>(bins));
    }
    h.edges.front() = lo;  // exactly, so that the extremes fall inside
    h.edges.back() = hi;
    h.counts.assign(bins, 0);
    for (double sq : sq_norms) {
        if (!std::isfinite(sq) || sq == 0.0) continue;
        // The bin whose left edge is the last one at or below |g_i|: the edges themselves decide.
        const auto above = std::upper_bound(h.edges.begin(), h.edges.end(), std::sqrt(sq));
        const auto k = static_cast<std::size_t>(above - h.edges.begin()) - 1;
        ++h.counts[std::min(k, bins - 1)];
    }
    return h;
}

}  // namespace gradscope::diag
