// The per-layer statistics a GradientMonitor records, each declared once.
//
// Note [One place per statistic]
// Every per-layer number of a step is one entry of layer_statistics<T>(): its name (the CSV
// column and the JSON key), what it means, the moment of the step at which it can be measured,
// the LayerStats field it fills, and the function that measures it from a LayerObservation.
// The monitor's hooks only gather observations and call the entries of that moment; the
// history writers (diag/history.hpp) and the reports iterate the list. Adding a statistic is a
// field in LayerStats (profile.hpp) and an entry here.
#pragma once

#include "../core/matrix.hpp"
#include "../core/tensor.hpp"
#include "gradient_noise.hpp"
#include "norms.hpp"
#include "profile.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <span>

namespace gradscope::diag {

// When, within one step, a statistic's inputs exist. Buffers live only that long, so a
// statistic is measured then and there rather than from copies at the end of the step.
enum class Moment {
    loss,        // the loss has been computed and backward has not run: the loss's recorded
                 // graph gives the Hessian's blocks (GradientMonitor::observe_loss)
    forward,     // the layer's output z_l has been computed
    activation,  // the first activation after the layer has run: h_l and phi'(z_l). For a
                 // layer no activation follows (the output layer), measured at `forward` with
                 // h_l = z_l and no derivative.
    backward,    // dL/dz_l has arrived
    step_end,    // backward has finished: the parameters' gradients are in place
    update,      // the next step's end: the weights after the optimiser's update. The value
                 // belongs to the step whose gradient made the update.
};

// A layer's per-sample gradients over one batch, as the monitor reduced them at the step's end
// (GradientMonitor::Options::per_sample, per_sample_reduction.hpp): g_i is the gradient of
// sample i's own loss with respect to the layer's weight and bias (a LayerNorm's scale and
// shift), g_bar = (1/B) sum_i g_i. No per-sample matrix exists; these are what the statistics
// need of them.
template <class T>
struct PerSampleGradients {
    std::span<const double> sq_norms;                 // |g_i|^2, in batch order (B values)
    std::span<const double> sorted_norms;             // |g_i|, ascending
    std::span<const double> sq_deviations;            // |g_i - g_bar|^2 (sample_deviation)
    std::span<const double> dot_deviations;           // (g_i - g_bar)^T g_bar (sample_deviation)
    double mean_sq_norm = not_measured;               // |g_bar|^2
    ConstMatrixView<T> mean_weight{nullptr, 0, 0};    // g_bar's weight part [out x in]
    ConstMatrixView<T> mean_bias{nullptr, 0, 0};      // g_bar's bias part [1 x out], or empty
    ConstMatrixView<T> second_weight{nullptr, 0, 0};  // (1/B) sum_i g_ij^2, weight part
    ConstMatrixView<T> second_bias{nullptr, 0, 0};    // the same for the bias, or empty
    bool has_gsnr = true;                             // false: the four views are empty
    mutable std::optional<GsnrMean> gsnr = {};        // detail::gsnr_of's, once computed
    [[nodiscard]] std::size_t batch() const noexcept { return sq_norms.size(); }
};

// What the monitor saw of one layer at one moment; only the moment's fields are set.
template <class T>
struct LayerObservation {
    ConstMatrixView<T> output{nullptr, 0, 0};           // forward: z_l
    ConstMatrixView<T> activation{nullptr, 0, 0};       // activation: h_l (z_l when none follows)
    ConstMatrixView<T> derivative{nullptr, 0, 0};       // activation: phi'(z_l); empty when none
    ConstMatrixView<T> grad_output{nullptr, 0, 0};      // backward: dL/dz_l
    const Tensor<T>* weight = nullptr;                  // step_end, update: undefined if none
    const Tensor<T>* bias = nullptr;                    // step_end: undefined if none
    ConstMatrixView<T> weight_before{nullptr, 0, 0};    // update: the weight a step earlier
    double weight_norm_before = not_measured;           // update: its norm
    double saturation_threshold = 1e-3;                 // GradientMonitor::Options
    std::size_t* nonfinite = nullptr;                   // count NaN/inf entries of gradients here
    const PerSampleGradients<T>* per_sample = nullptr;  // step_end, in per-sample mode only
    double block_sharpness = not_measured;  // loss: lambda_max of the layer's Hessian block
};

template <class T>
struct LayerStatistic {
    const char* name;
    const char* meaning;
    Moment moment;
    double LayerStats::*field;
    double (*measure)(const LayerObservation<T>&);
};

namespace detail {

template <class T>
double grad_norm(const Tensor<T>* t, std::size_t* nonfinite) {
    if (t == nullptr || !t->defined() || !t->has_grad()) return not_measured;
    std::size_t ignored = 0;
    return robust_norm_counting_nonfinite(t->grad(), nonfinite != nullptr ? *nonfinite : ignored);
}

// The fraction of entries of phi'(z) below the threshold in magnitude.
template <class T>
double saturated_fraction(const LayerObservation<T>& o) {
    if (o.derivative.size() == 0) return not_measured;
    const T threshold = static_cast<T>(o.saturation_threshold);
    return static_cast<double>((o.derivative.array().abs() < threshold).count()) /
           static_cast<double>(o.derivative.size());
}

// The fraction of units whose derivative is zero for every sample of the batch. One pass down
// the rows: Eigen vectorises a column-wise reduction of a row-major matrix across the columns.
template <class T>
double dead_fraction(const LayerObservation<T>& o) {
    if (o.derivative.size() == 0) return not_measured;
    thread_local Eigen::Array<T, 1, Eigen::Dynamic> peak;  // reused: no allocation per step
    peak = o.derivative.array().abs().colwise().maxCoeff();
    return static_cast<double>((peak == T(0)).count()) / static_cast<double>(o.derivative.cols());
}

// The per-sample statistics (gradient_noise.hpp has the formulas and their sources). Each is
// not measured when the observation has no per-sample gradients: the mode is off, or the layer
// is not a Linear or LayerNorm measured once in the step.
inline double sum_of(std::span<const double> values) {
    double sum = 0.0;
    for (double v : values) sum += v;
    return sum;
}

template <class T>
double mean_grad_sq_norm(const LayerObservation<T>& o) {
    return o.per_sample != nullptr ? o.per_sample->mean_sq_norm : not_measured;
}

template <class T>
double trace_covariance(const LayerObservation<T>& o) {
    if (o.per_sample == nullptr) return not_measured;
    return diag::trace_covariance(sum_of(o.per_sample->sq_norms), mean_grad_sq_norm(o),
                                  o.per_sample->batch());
}

template <class T>
double gradient_noise_scale(const LayerObservation<T>& o) {
    if (o.per_sample == nullptr) return not_measured;
    return diag::gradient_noise_scale(trace_covariance(o), mean_grad_sq_norm(o),
                                      o.per_sample->batch());
}

// GsnrMean::add's arithmetic as packet operations on (g_bar_j, m_j) in double, for Eigen's
// vectorised evaluator: the variance v = m - g^2 and the mask v > tolerance m (false for m = 0,
// where v = -g^2 <= 0, and for v within rounding of 0) select, per parameter, its ratio g^2/v
// (GsnrTerm) or a 1 that counts it (GsnrFinite); GsnrUsed counts m != 0. A masked lane's
// division by 0 is discarded by the mask. Finite inputs only (gsnr_of checks).
struct GsnrTerm {
    double tolerance;
    double operator()(double g, double m) const {
        const double v = m - g * g;
        return v > tolerance * m ? g * g / v : 0.0;
    }
    template <class Packet>
    Packet packetOp(const Packet& g, const Packet& m) const {
        namespace ei = Eigen::internal;
        const Packet g2 = ei::pmul(g, g);
        const Packet v = ei::psub(m, g2);
        return ei::pand(ei::pcmp_lt(ei::pmul(ei::pset1<Packet>(tolerance), m), v), ei::pdiv(g2, v));
    }
};

struct GsnrFinite {
    double tolerance;
    double operator()(double g, double m) const { return m - g * g > tolerance * m ? 1.0 : 0.0; }
    template <class Packet>
    Packet packetOp(const Packet& g, const Packet& m) const {
        namespace ei = Eigen::internal;
        const Packet v = ei::psub(m, ei::pmul(g, g));
        return ei::pand(ei::pcmp_lt(ei::pmul(ei::pset1<Packet>(tolerance), m), v),
                        ei::pset1<Packet>(1.0));
    }
};

struct GsnrUsed {
    double operator()(double m) const { return m != 0.0 ? 1.0 : 0.0; }
    template <class Packet>
    Packet packetOp(const Packet& m) const {
        namespace ei = Eigen::internal;
        return ei::pandnot(ei::pset1<Packet>(1.0), ei::pcmp_eq(m, ei::pzero(m)));
    }
};

// Adds the parameters (g_bar_j, m_j) to `mean`, as GsnrMean::add one at a time would, in chunks
// converted to double on the stack and reduced with packets: one pass, no division per parameter
// in scalar code. A chunk with a non-finite value (or whose sum overflows) goes through
// GsnrMean::add itself, so NaN and inf propagate exactly as there.
template <class T>
void add_gsnr_parameters(GsnrMean& mean, ConstMatrixView<T> g_bar, ConstMatrixView<T> second,
                         double tolerance) {
    constexpr Index chunk = 1024;
    using Wide = DependentDouble<T>;
    using Chunk = Eigen::Array<Wide, Eigen::Dynamic, 1, Eigen::ColMajor, chunk, 1>;
    using Source = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
    const Index n = g_bar.size();
    Chunk g, m;
    for (Index start = 0; start < n; start += chunk) {
        const Index len = std::min(chunk, n - start);
        g = Source(g_bar.data() + start, len).template cast<Wide>();
        m = Source(second.data() + start, len).template cast<Wide>();
        if (!std::isfinite(g.sum()) || !std::isfinite(m.sum())) {
            for (Index j = 0; j < len; ++j) mean.add(g[j], m[j]);
            continue;
        }
        const double used = m.unaryExpr(GsnrUsed{}).sum();
        const double finite = g.binaryExpr(m, GsnrFinite{tolerance}).sum();
        const double sum = g.binaryExpr(m, GsnrTerm{tolerance}).sum();
        mean.add_counted(static_cast<std::size_t>(used), static_cast<std::size_t>(finite), sum);
    }
}

// The GSNR's mean over the layer's parameters, computed once per observation (the gsnr and
// gsnr_parameters entries both read it).
template <class T>
const GsnrMean& gsnr_of(const PerSampleGradients<T>& p) {
    if (!p.gsnr) {
        const double epsilon = static_cast<double>(std::numeric_limits<T>::epsilon());
        GsnrMean& mean = p.gsnr.emplace(p.batch(), epsilon);
        const double tolerance = batch_rounding(p.batch(), epsilon);
        add_gsnr_parameters(mean, p.mean_weight, p.second_weight, tolerance);
        add_gsnr_parameters(mean, p.mean_bias, p.second_bias, tolerance);
    }
    return *p.gsnr;
}

// Per-sample mode measured this layer, with the GSNR on (PerSampleOptions::gsnr).
template <class T>
bool has_gsnr(const LayerObservation<T>& o) {
    return o.per_sample != nullptr && o.per_sample->has_gsnr;
}

template <class T>
double critical_batch_size(const LayerObservation<T>& o) {
    return diag::critical_batch_size(gradient_noise_scale(o));
}

// One of Cockpit's batch-size tests.
template <class T, double BatchSizeTests::*field>
double batch_size_test(const LayerObservation<T>& o) {
    if (o.per_sample == nullptr) return not_measured;
    const PerSampleGradients<T>& p = *o.per_sample;
    return batch_size_tests(p.sq_deviations, p.dot_deviations, p.mean_sq_norm).*field;
}

// A statistic of the ascending per-sample norms.
template <class T, double PerSampleNormSummary::*field>
double norm_summary(const LayerObservation<T>& o) {
    if (o.per_sample == nullptr) return not_measured;
    return summarise_sorted_norms(o.per_sample->sorted_norms).*field;
}

}  // namespace detail

template <class T>
std::span<const LayerStatistic<T>> layer_statistics() {
    static const LayerStatistic<T> list[] = {
        {"output_grad_norm", "|dL/dz_l|: the backpropagated error reaching the layer's output",
         Moment::backward, &LayerStats::output_grad_norm,
         [](const LayerObservation<T>& o) {
             std::size_t ignored = 0;
             return robust_norm_counting_nonfinite(o.grad_output,
                                                   o.nonfinite != nullptr ? *o.nonfinite : ignored);
         }},
        {"weight_grad_norm", "|dL/dW_l|", Moment::step_end, &LayerStats::weight_grad_norm,
         [](const LayerObservation<T>& o) { return detail::grad_norm(o.weight, o.nonfinite); }},
        {"bias_grad_norm", "|dL/db_l|", Moment::step_end, &LayerStats::bias_grad_norm,
         [](const LayerObservation<T>& o) { return detail::grad_norm(o.bias, o.nonfinite); }},
        {"activation_norm", "|h_l|: the first activation after the layer (z_l if none follows)",
         Moment::activation, &LayerStats::activation_norm,
         [](const LayerObservation<T>& o) { return robust_norm(o.activation); }},
        {"weight_norm", "|W_l|", Moment::step_end, &LayerStats::weight_norm,
         [](const LayerObservation<T>& o) {
             return o.weight != nullptr && o.weight->defined() ? robust_norm(o.weight->value())
                                                               : not_measured;
         }},
        {"update_ratio", "|W_after - W_before| / |W_before| of the update that followed the step",
         Moment::update, &LayerStats::update_ratio,
         [](const LayerObservation<T>& o) {
             if (!(o.weight_norm_before > 0.0)) return not_measured;
             return robust_distance<T>(o.weight->value(), o.weight_before) / o.weight_norm_before;
         }},
        {"saturated_fraction", "the fraction of phi'(z_l) entries below the saturation threshold",
         Moment::activation, &LayerStats::saturated_fraction, &detail::saturated_fraction<T>},
        {"dead_fraction", "the fraction of units whose phi'(z_l) is 0 for every sample",
         Moment::activation, &LayerStats::dead_fraction, &detail::dead_fraction<T>},
        {"per_sample_norm_mean", "mean over the batch of |g_i|, sample i's own gradient (W and b)",
         Moment::step_end, &LayerStats::per_sample_norm_mean,
         &detail::norm_summary<T, &PerSampleNormSummary::mean>},
        {"per_sample_norm_max", "max over the batch of |g_i|", Moment::step_end,
         &LayerStats::per_sample_norm_max, &detail::norm_summary<T, &PerSampleNormSummary::max>},
        {"per_sample_norm_q10", "10% quantile of |g_i| (Hyndman-Fan definition 7)",
         Moment::step_end, &LayerStats::per_sample_norm_q10,
         &detail::norm_summary<T, &PerSampleNormSummary::q10>},
        {"per_sample_norm_q50", "median of |g_i| (Hyndman-Fan definition 7)", Moment::step_end,
         &LayerStats::per_sample_norm_q50, &detail::norm_summary<T, &PerSampleNormSummary::q50>},
        {"per_sample_norm_q90", "90% quantile of |g_i| (Hyndman-Fan definition 7)",
         Moment::step_end, &LayerStats::per_sample_norm_q90,
         &detail::norm_summary<T, &PerSampleNormSummary::q90>},
        {"mean_grad_sq_norm", "|g_bar|^2, g_bar the mean of the per-sample gradients",
         Moment::step_end, &LayerStats::mean_grad_sq_norm, &detail::mean_grad_sq_norm<T>},
        {"trace_covariance",
         "tr Sigma = (sum_i |g_i|^2 - B |g_bar|^2)/(B-1), unbiased (McCandlish et al. 2018)",
         Moment::step_end, &LayerStats::trace_covariance, &detail::trace_covariance<T>},
        {"gradient_noise_scale",
         "B_simple = tr Sigma / (|g_bar|^2 - tr Sigma/B) (McCandlish et al. 2018, App. A)",
         Moment::step_end, &LayerStats::gradient_noise_scale, &detail::gradient_noise_scale<T>},
        {"gsnr", "mean over parameters of g_bar_j^2 / sigma_j^2 (Liu et al. 2020)",
         Moment::step_end, &LayerStats::gsnr,
         [](const LayerObservation<T>& o) {
             return detail::has_gsnr(o) ? detail::gsnr_of(*o.per_sample).value() : not_measured;
         }},
        {"gsnr_parameters", "the parameters the gsnr is a mean over (some sample's g_ij != 0)",
         Moment::step_end, &LayerStats::gsnr_parameters,
         [](const LayerObservation<T>& o) {
             return detail::has_gsnr(o) ? detail::gsnr_of(*o.per_sample).count() : not_measured;
         }},
        {"critical_batch_size",
         "B_crit ~ B_noise ~ B_simple, assuming a Hessian proportional to I (McCandlish et al.)",
         Moment::step_end, &LayerStats::critical_batch_size, &detail::critical_batch_size<T>},
        {"norm_test", "theta of the norm test (Byrd et al. 2012): sqrt(tr Sigma / (B |g_bar|^2))",
         Moment::step_end, &LayerStats::norm_test,
         &detail::batch_size_test<T, &BatchSizeTests::norm>},
        {"inner_product_test",
         "theta of the inner-product test (Bollapragada et al. 2018): spread of g_i^T g_bar",
         Moment::step_end, &LayerStats::inner_product_test,
         &detail::batch_size_test<T, &BatchSizeTests::inner_product>},
        {"orthogonality_test",
         "nu of the orthogonality test (Bollapragada et al. 2018): g_i's spread off g_bar",
         Moment::step_end, &LayerStats::orthogonality_test,
         &detail::batch_size_test<T, &BatchSizeTests::orthogonality>},
        {"sharpness",
         "lambda_max of the layer's diagonal block of the loss's Hessian (its own sharpness)",
         Moment::loss, &LayerStats::sharpness,
         [](const LayerObservation<T>& o) { return o.block_sharpness; }},
    };
    return list;
}

// Measures every statistic of `moment` into `stats`.
template <class T>
void measure(Moment moment, const LayerObservation<T>& observation, LayerStats& stats) {
    for (const LayerStatistic<T>& s : layer_statistics<T>()) {
        if (s.moment == moment) stats.*s.field = s.measure(observation);
    }
}

}  // namespace gradscope::diag

template <>
struct Eigen::internal::functor_traits<gradscope::diag::detail::GsnrTerm> {
    enum { Cost = 20, PacketAccess = 1 };
};
template <>
struct Eigen::internal::functor_traits<gradscope::diag::detail::GsnrFinite> {
    enum { Cost = 4, PacketAccess = 1 };
};
template <>
struct Eigen::internal::functor_traits<gradscope::diag::detail::GsnrUsed> {
    enum { Cost = 2, PacketAccess = 1 };
};
