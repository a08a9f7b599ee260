// Where a deep random network settles, and where the edge of chaos lies (Poole et al. 2016,
// "Exponential expressivity in deep neural networks through transient chaos"; Schoenholz et al.
// 2017, "Deep Information Propagation").
//
// With weights N(0, sigma_w^2 / fan_in) and biases N(0, sigma_b^2), the pre-activation variance
// follows the variance map
//     q_{l+1} = V(q_l) = sigma_w^2 E[phi(sqrt(q_l) z)^2] + sigma_b^2,           z ~ N(0, 1),
// and, for two inputs whose pre-activations have variance q and correlation c, the correlation
// map
//     c_{l+1} = C(c_l) = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q,
//     u1 = sqrt(q) z1,  u2 = sqrt(q) (c z1 + sqrt(1 - c^2) z2),   z1, z2 ~ N(0, 1) independent.
// Deep in the network q reaches the fixed point q* = V(q*), and there
//     chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]
// is both the slope of C at c = 1 and the per-layer gain of a backpropagated squared gradient
// norm. chi_1 < 1 is the ordered phase (c* = 1 attracts: inputs become alike, gradients vanish),
// chi_1 > 1 the chaotic one (c* < 1: nearby inputs decorrelate, gradients explode), and
// chi_1 = 1 the edge of chaos. The approach to the fixed points is exponential in depth, with
// depth scales
//     xi_q = -1 / ln chi_q,  chi_q = V'(q*) = sigma_w^2 E[phi(sqrt(q*) z) phi'(sqrt(q*) z) z] / sqrt(q*)
//     xi_c = -1 / ln chi_c,  chi_c = C'(c*) = sigma_w^2 E[phi'(u1) phi'(u2)] at (q*, c*).
// V'(q) is written with Stein's lemma (E[f(z) z] = E[f'(z)]) so that it needs phi' only, not
// the phi'' of the papers' form chi_1 + sigma_w^2 E[phi phi'']: an activation type provides a
// first derivative and nothing more. xi_c is infinite exactly at the edge of chaos: there
// correlations, and with them gradients, survive to any depth (Schoenholz et al. find networks
// trainable up to about 6 xi_c layers).
//
// Numerics: V uses the same adaptive Gaussian expectation as mean_field; C and chi_c use
// composite Gauss-Legendre rules in (z1, z2) whose panels are split where the activation's
// argument crosses 0, so that a kink at 0 (ReLU, ELU) costs no accuracy. Fixed points are found by iteration with
// Aitken's extrapolation, accepted only while the iteration contracts, so that an unstable fixed
// point (q = 0 for ReLU with sigma_w^2 > 2) is never reported. A map within 1e-6 of neutral
// that moves q by under 1e-6 per layer counts as settled (q changes by less than a factor e in
// a million layers); one that keeps growing by as much each step counts as unbounded. Variances
// below 1e-8 of the first layer's are reported as q* = 0.
#pragma once

#include "theory.hpp"

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>

namespace gradscope::diag {

struct SignalPropagationOptions {
    double sigma_w2 = 1.0;             // weight variance times fan-in
    double sigma_b2 = 0.0;             // bias variance
    double input_second_moment = 1.0;  // E[x^2] of the inputs: where the iteration for q* starts
    int quadrature_nodes = 96;
};

// ordered: chi_1 < 1; chaotic: chi_1 > 1; critical: |chi_1 - 1| <= critical_tolerance;
// unbounded: the variance map has no fixed point (q grows without bound with depth).
enum class Phase { ordered, critical, chaotic, unbounded };

inline constexpr double critical_tolerance = 1e-9;

inline const char* to_string(Phase phase) {
    switch (phase) {
        case Phase::ordered:
            return "ordered";
        case Phase::critical:
            return "critical";
        case Phase::chaotic:
            return "chaotic";
        case Phase::unbounded:
            return "unbounded";
    }
    return "unknown";
}

struct FixedPoint {
    double q_star = 0.0;  // pre-activation variance deep in the network
    double chi1 = 0.0;    // sigma_w^2 E[phi'(sqrt(q*) z)^2]: per-layer gain of |delta|^2
    double c_star = 1.0;  // the stable fixed point of the correlation map
    double chi_c = 0.0;   // slope of the correlation map at c*
    double xi_q = 0.0;    // depth scale of q's approach to q* (infinite when V'(q*) = 1)
    double xi_c = 0.0;    // depth scale of correlations (infinite at the edge of chaos)
    Phase phase = Phase::ordered;
};

namespace detail {

inline constexpr double infinite_depth = std::numeric_limits<double>::infinity();

// A depth scale -1 / ln|chi|: infinite when |chi| >= 1 (nothing decays), 0 when chi = 0.
inline double depth_scale(double chi) {
    const double magnitude = std::abs(chi);
    if (magnitude >= 1.0 - critical_tolerance) return infinite_depth;
    if (magnitude == 0.0) return 0.0;
    return -1.0 / std::log(magnitude);
}

// Quantities at q* = 0 are limits q -> 0+ (ReLU's derivative at exactly 0 is 0, its limit
// 1/2 in mean square): they are evaluated at this variance instead.
inline constexpr double vanishing_variance = 1e-200;

inline void check_signal_options(const char* who, const SignalPropagationOptions& o) {
    gradscope::detail::check_positive(who, "sigma_w2", o.sigma_w2);
    gradscope::detail::check_non_negative(who, "sigma_b2", o.sigma_b2);
    gradscope::detail::check_non_negative(who, "input_second_moment", o.input_second_moment);
    check_expectation_nodes(who, o.quadrature_nodes);
}

// The maps and slopes of one (activation, sigma_w^2, sigma_b^2), with their quadrature rules
// built once.
template <ElementwiseFunction<double> Act>
class SignalMaps {
public:
    SignalMaps(const Act& act, const SignalPropagationOptions& options)
        : act_(act), o_(options), expect_(options.quadrature_nodes), panel_(8) {}

    [[nodiscard]] double phi(double x) const { return act_.value(x); }
    [[nodiscard]] double dphi(double x) const { return act_.derivative(x, act_.value(x)); }

    [[nodiscard]] double variance(double q) const {
        return o_.sigma_w2 * expect_(std::sqrt(q),
                                     [&](double x) {
                                         const double y = phi(x);
                                         return y * y;
                                     }) +
               o_.sigma_b2;
    }

    [[nodiscard]] double chi1(double q) const {
        return o_.sigma_w2 * expect_(std::sqrt(at_least_vanishing(q)), [&](double x) {
                   const double d = dphi(x);
                   return d * d;
               });
    }

    // V'(q) by Stein's lemma: d/dq E[f(sqrt(q) z)] = E[f'(sqrt(q) z) z] / (2 sqrt(q)), f = phi^2.
    [[nodiscard]] double chi_q(double q) const {
        const double s = std::sqrt(at_least_vanishing(q));
        return o_.sigma_w2 / s * expect_(s, [&](double x) { return phi(x) * dphi(x) * (x / s); });
    }

    [[nodiscard]] double correlation(double q, double c) const {
        if (q <= 0.0) return c;  // no signal left to correlate: the map is undefined, keep c
        return (o_.sigma_w2 * plane(q, c, [&](double u) { return phi(u); }) + o_.sigma_b2) / q;
    }

    [[nodiscard]] double chi_c(double q, double c) const {
        return o_.sigma_w2 * plane(at_least_vanishing(q), c, [&](double u) { return dphi(u); });
    }

    [[nodiscard]] const SignalPropagationOptions& options() const noexcept { return o_; }
    [[nodiscard]] const char* name() const noexcept { return Act::name; }

private:
    static double at_least_vanishing(double q) { return std::max(q, vanishing_variance); }

    // E[f(u1) f(u2)] over the bivariate normal with variances q and correlation c, as
    // E_z1[f(s z1) E_z2[f(s (c z1 + a z2))]], a = sqrt(1 - c^2), each by Gauss-Legendre panels
    // split where the argument of f crosses 0 (z1 = 0 outside, z2 = -c z1 / a inside): kinks
    // of activations sit at 0, and a panel edge on a kink keeps the rule accurate there.
    template <class F>
    double plane(double q, double c, F&& f) const {
        const double s = std::sqrt(q);
        const double a = std::sqrt(std::max(0.0, 1.0 - c * c));
        return split_expectation(0.0, [&](double z1) {
            const double f1 = f(s * z1);
            if (f1 == 0.0) return 0.0;
            if (a < 1e-12) return f1 * f(c * s * z1);
            return f1 * split_expectation(-c * z1 / a,
                                          [&](double z2) { return f(s * (c * z1 + a * z2)); });
        });
    }

    // E[g(z)], z ~ N(0, 1), by 8-point Gauss-Legendre on 16 panels either side of `split` over
    // [-12, 12] (the mass beyond is below 1e-32).
    template <class G>
    double split_expectation(double split, G&& g) const {
        constexpr double edge = 12.0;
        constexpr int panels = 16;
        split = std::clamp(split, -edge, edge);
        double total = 0.0;
        for (const auto& [from, to] : {std::pair{-edge, split}, std::pair{split, edge}}) {
            const double width = (to - from) / panels;
            if (width <= 0.0) continue;
            for (int p = 0; p < panels; ++p) {
                const double mid = from + (p + 0.5) * width;
                for (std::size_t i = 0; i < panel_.nodes.size(); ++i) {
                    const double z = mid + 0.5 * width * panel_.nodes[i];
                    total += 0.5 * width * panel_.weights[i] * g(z) * std::exp(-0.5 * z * z);
                }
            }
        }
        return total / std::sqrt(2.0 * std::numbers::pi);
    }

    Act act_;
    SignalPropagationOptions o_;
    NormalExpectation<double> expect_;
    GaussLegendre<double> panel_;
};

// The outcome of iterating a one-dimensional map x -> map(x) from `start`.
struct Iteration {
    enum class Outcome { converged, unbounded, undecided } outcome;
    double value;
};

// How iterate_to_fixed_point decides: converged when a step is at most
// max(relative * |x|, absolute); x is 0 once |x| < zero; unbounded once |x| > ceiling.
struct IterationLimits {
    double relative = 1e-12;
    double absolute = 0.0;
    double zero = 0.0;
    double ceiling = 1e200;
};

// Fixed-point iteration with Aitken's delta-squared extrapolation, taken only while the
// iteration contracts (|x2 - x1| < |x1 - x0|): extrapolating an expanding iteration would land
// on an unstable fixed point.
template <class Map>
Iteration iterate_to_fixed_point(Map&& map, double start, const IterationLimits& limits) {
    constexpr int max_rounds = 4000;
    auto small = [&](double step, double x) {
        return std::abs(step) <= std::max(limits.relative * std::abs(x), limits.absolute);
    };
    double x = start;
    for (int round = 0; round < max_rounds; ++round) {
        const double x1 = map(x);
        const double x2 = map(x1);
        if (!std::isfinite(x2) || std::abs(x2) > limits.ceiling)
            return {Iteration::Outcome::unbounded, x2};
        if (small(x2 - x1, x2)) return {Iteration::Outcome::converged, x2};
        const double step1 = x1 - x, step2 = x2 - x1;
        // When the two steps agree to 1e-6 the map is within 1e-6 of neutral here, and
        // Aitken's step2 - step1 would be rounding: no extrapolation. Such a map either barely
        // moves x (under 1e-6 of x per step: less than a factor e in a million layers, taken as
        // settled) or moves it steadily.
        const bool resolvable = std::abs(step2 - step1) > 1e-6 * std::abs(step1);
        if (!resolvable && std::abs(step2) <= 1e-6 * std::max(std::abs(x2), limits.absolute)) {
            return {Iteration::Outcome::converged, x2};
        }
        const bool contracting = resolvable && std::abs(step2) < std::abs(step1);
        // Growing by at least as much each round: no fixed point ahead.
        if (!contracting && step1 > 0.0 && step2 > 0.0 && round > 100)
            return {Iteration::Outcome::unbounded, x2};
        double next = x2;
        if (contracting) {
            const double extrapolated = x - step1 * step1 / (step2 - step1);
            if (std::isfinite(extrapolated)) next = extrapolated;
        }
        if (std::abs(next) < limits.zero) return {Iteration::Outcome::converged, 0.0};
        if (contracting && small(next - x2, next) && small(map(next) - next, next)) {
            return {Iteration::Outcome::converged, next};
        }
        x = next;
    }
    return {Iteration::Outcome::undecided, x};
}

}  // namespace detail

// The variance map V(q): the pre-activation variance of the next layer.
template <ElementwiseFunction<double> Act>
double variance_map(const Act& act, double q, const SignalPropagationOptions& options = {}) {
    detail::check_signal_options("variance_map", options);
    gradscope::detail::check_non_negative("variance_map", "q", q);
    gradscope::detail::validate_function(act);
    return detail::SignalMaps<Act>(act, options).variance(q);
}

// The correlation map C(c) at variance q (q = q*, usually): the next layer's correlation of two
// inputs whose pre-activations have variance q and correlation c.
template <ElementwiseFunction<double> Act>
double correlation_map(const Act& act, double q, double c,
                       const SignalPropagationOptions& options = {}) {
    detail::check_signal_options("correlation_map", options);
    gradscope::detail::check_non_negative("correlation_map", "q", q);
    gradscope::detail::check_finite("correlation_map", "c", c);
    if (c < -1.0 || c > 1.0) {
        gradscope::detail::throw_value(
            "correlation_map",
            "c must be a correlation in [-1, 1], got " + gradscope::detail::number_text(c));
    }
    gradscope::detail::validate_function(act);
    return detail::SignalMaps<Act>(act, options).correlation(q, c);
}

namespace detail {

// c* in the chaotic phase, by bisection on g(c) = C(c) - c rather than by iteration: C(c) - c
// is small near c* and near 1, where the plane rule's rounding would steer an iteration, but
// its sign is reliable. g(0) >= 0 always (C(0) = (sigma_w^2 E[phi]^2 + sigma_b^2) / q), and
// g < 0 just below 1 because C'(1) = chi_1 > 1. When g is not yet negative at 1 - 1e-5 the
// network is chaotic by too little to tell c* from 1, and 1 is returned.
template <ElementwiseFunction<double> Act>
double chaotic_correlation(const SignalMaps<Act>& maps, double q_star) {
    auto g = [&](double c) { return maps.correlation(q_star, c) - c; };
    for (const double gap : {1e-2, 1e-3, 1e-4, 1e-5}) {
        double lo = 0.0, hi = 1.0 - gap;
        if (g(hi) >= 0.0) continue;
        while (hi - lo > 1e-12) {
            const double mid = 0.5 * (lo + hi);
            (g(mid) >= 0.0 ? lo : hi) = mid;
        }
        return 0.5 * (lo + hi);
    }
    return 1.0;
}

// with_correlation = false skips c* (bisection over the plane rule, the costly part) and leaves
// c* = 1, chi_c = chi_1: enough for the phase.
template <ElementwiseFunction<double> Act>
std::optional<FixedPoint> fixed_point_of(const SignalMaps<Act>& maps,
                                         bool with_correlation = true) {
    const auto& o = maps.options();
    const double q1 = o.sigma_w2 * o.input_second_moment + o.sigma_b2;
    auto require_finite = [&](const char* what, double value) {
        if (!std::isfinite(value)) {
            throw numeric_error("fixed_point: " + std::string(what) + " is " +
                                gradscope::detail::number_text(value) + " for activation '" +
                                maps.name() + "' at sigma_w2 " +
                                gradscope::detail::number_text(o.sigma_w2) + ", sigma_b2 " +
                                gradscope::detail::number_text(o.sigma_b2));
        }
    };
    // Variances are never negative (an extrapolation may round below 0). Near q* = 0 the
    // variance map's step, 2 q^2 for tanh, drowns in rounding below q ~ 1e-8 q_1; smaller
    // variances are reported as 0.
    const auto q_iteration =
        iterate_to_fixed_point([&](double q) { return maps.variance(std::max(q, 0.0)); }, q1,
                               {.relative = 1e-12, .zero = 1e-8 * q1});
    if (q_iteration.outcome == Iteration::Outcome::unbounded) return std::nullopt;
    if (q_iteration.outcome == Iteration::Outcome::undecided) {
        throw numeric_error("fixed_point: the variance map of activation '" +
                            std::string(maps.name()) + "' at sigma_w2 " +
                            gradscope::detail::number_text(o.sigma_w2) + ", sigma_b2 " +
                            gradscope::detail::number_text(o.sigma_b2) +
                            " neither settles nor grows without bound (last q " +
                            gradscope::detail::number_text(q_iteration.value) + ")");
    }
    FixedPoint out;
    out.q_star = q_iteration.value;
    require_finite("q*", out.q_star);
    out.chi1 = maps.chi1(out.q_star);
    require_finite("chi_1", out.chi1);
    out.phase = out.chi1 < 1.0 - critical_tolerance   ? Phase::ordered
                : out.chi1 > 1.0 + critical_tolerance ? Phase::chaotic
                                                      : Phase::critical;
    out.xi_q = depth_scale(maps.chi_q(out.q_star));
    out.c_star = with_correlation && out.phase == Phase::chaotic && out.q_star > 0.0
                     ? chaotic_correlation(maps, out.q_star)
                     : 1.0;
    // At c* = 1 the slope of C is chi_1 itself; the plane rule would only approximate it.
    out.chi_c = out.c_star == 1.0 ? out.chi1 : maps.chi_c(out.q_star, out.c_star);
    require_finite("chi_c", out.chi_c);
    out.xi_c = out.phase == Phase::critical ? infinite_depth : depth_scale(out.chi_c);
    return out;
}

}  // namespace detail

// Where the signal settles: q*, chi_1, c*, chi_c and the depth scales xi_q, xi_c; std::nullopt
// when the variance map has no fixed point (q grows without bound with depth, e.g. ReLU with
// sigma_w^2 > 2, or sigma_w^2 = 2 and sigma_b^2 > 0). numeric_error when the iteration neither
// settles nor diverges, or an activation value is not finite.
template <ElementwiseFunction<double> Act>
std::optional<FixedPoint> fixed_point(const Act& act,
                                      const SignalPropagationOptions& options = {}) {
    detail::check_signal_options("fixed_point", options);
    gradscope::detail::validate_function(act);
    return detail::fixed_point_of(detail::SignalMaps<Act>(act, options));
}

struct CriticalPointOptions {
    double sigma_b2 = 0.0;
    double input_second_moment = 1.0;
    int quadrature_nodes = 96;
};

struct CriticalPoint {
    double sigma_w2 = 0.0;         // chi_1(q*) = 1 here
    FixedPoint at;                 // the fixed point there (approached from the ordered side)
    Phase below = Phase::ordered;  // the phase at slightly smaller sigma_w^2
    Phase above = Phase::chaotic;  // ... and at slightly larger
};

// The edge of chaos for `act` at bias variance sigma_b2: the sigma_w^2 at which chi_1 = 1.
// Found by bracketing in log sigma_w^2 over [1e-6, 1e6] and bisecting to 1e-13 relative.
// value_error, saying why, when there is none: chi_1 stays on one side of 1, or it reaches 1
// only as q* runs off to infinity (ReLU with sigma_b^2 > 0).
template <ElementwiseFunction<double> Act>
CriticalPoint critical_point(const Act& act, const CriticalPointOptions& options = {}) {
    const char* who = "critical_point";
    gradscope::detail::validate_function(act);
    auto at = [&](double sigma_w2) {
        const SignalPropagationOptions o{.sigma_w2 = sigma_w2,
                                         .sigma_b2 = options.sigma_b2,
                                         .input_second_moment = options.input_second_moment,
                                         .quadrature_nodes = options.quadrature_nodes};
        detail::check_signal_options(who, o);
        return detail::fixed_point_of(detail::SignalMaps<Act>(act, o), false);
    };
    // Above the edge: chi_1 >= 1, or no fixed point at all.
    auto above_edge = [](const std::optional<FixedPoint>& fp) { return !fp || fp->chi1 >= 1.0; };
    auto fail = [&](const std::string& why) -> CriticalPoint {
        gradscope::detail::throw_value(
            who, std::string("activation '") + Act::name + "' has no critical point at sigma_b2 " +
                     gradscope::detail::number_text(options.sigma_b2) + ": " + why);
    };
    constexpr double smallest = 1e-6, largest = 1e6;
    double lo = 1.0, hi = 1.0;
    if (above_edge(at(1.0))) {
        while (above_edge(at(lo))) {
            hi = lo;
            lo /= 2.0;
            if (lo < smallest)
                return fail(
                    "chi_1 >= 1 (or q grows without bound) for every sigma_w2 down to 1e-6");
        }
    } else {
        while (!above_edge(at(hi))) {
            lo = hi;
            hi *= 2.0;
            if (hi > largest) return fail("chi_1 < 1 for every sigma_w2 up to 1e6");
        }
    }
    while (hi / lo - 1.0 > 1e-13) {
        const double mid = std::sqrt(lo * hi);
        if (mid <= lo || mid >= hi) break;
        (above_edge(at(mid)) ? hi : lo) = mid;
    }
    const auto ordered_side = at(lo);
    const auto chaotic_side = at(hi);
    // chi_1 -> 1 as sigma_w2 -> lo from below must not come with q* running off to infinity
    // (ReLU with biases: q* = sigma_b2 / (1 - sigma_w2 / 2)). A well-posed q* does not grow
    // tenfold over a 1e-4 change of sigma_w2.
    const auto nearby = at(lo * (1.0 - 1e-4));
    const double first_q = lo * options.input_second_moment + options.sigma_b2;
    if (!ordered_side || !nearby ||
        ordered_side->q_star > 10.0 * std::max(nearby->q_star, first_q)) {
        return fail("chi_1 approaches 1 only as q* grows without bound (at sigma_w2 ~ " +
                    gradscope::detail::number_text(lo) + ", q* = " +
                    (ordered_side ? gradscope::detail::number_text(ordered_side->q_star)
                                  : std::string("unbounded")) +
                    "): the variance map has no fixed point at the edge of chaos");
    }
    // The bracket can also close where the fixed point vanishes with chi_1 still below 1
    // (GELU and SiLU at sigma_b2 = 0: q -> 0 below the bracket, q grows without bound above).
    if (std::abs(ordered_side->chi1 - 1.0) > 1e-8) {
        return fail("at sigma_w2 ~ " + gradscope::detail::number_text(lo) +
                    " q stops settling and grows without bound while chi_1 is still " +
                    gradscope::detail::number_text(ordered_side->chi1));
    }
    CriticalPoint out;
    out.sigma_w2 = lo;
    out.at = *ordered_side;
    out.at.phase = Phase::critical;
    out.at.xi_c = detail::infinite_depth;
    out.below = at(lo * (1.0 - 1e-3)).value_or(FixedPoint{.phase = Phase::unbounded}).phase;
    out.above = chaotic_side
                    ? at(hi * (1.0 + 1e-3)).value_or(FixedPoint{.phase = Phase::unbounded}).phase
                    : Phase::unbounded;
    return out;
}

}  // namespace gradscope::diag
