// init::critical: weights and biases on the edge of chaos of an activation (Schoenholz et al.
// 2017), where chi_1 = 1 and gradients neither vanish nor explode with depth.
//
//     const auto edge = init::critical(Tanh{}, {.sigma_b2 = 0.05});   // sigma_w^2 = 1.76
//     auto net = mlp<double>({.widths = {256, 256, ..., 10}, .activation = Tanh{},
//                             .init = edge, .bias_init = edge.bias()});
//
// The initialiser is found by the mean-field theory (diag::critical_point), so it lives with the
// theory rather than in nn/init.hpp: nn knows nothing of diagnostics.
#pragma once

#include "../nn/init.hpp"
#include "edge_of_chaos.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace gradscope::init {

struct CriticalOptions {
    double sigma_b2 = 0.0;  // bias variance; the weight variance follows from it
    // Orthogonal weights with the same per-unit variance instead of Gaussian ones: on the edge
    // of chaos they also keep the input-output Jacobian's singular values together (dynamical
    // isometry, Pennington et al. 2017), which Gaussian weights do not.
    bool orthogonal = false;
    double input_second_moment = 1.0;  // E[x^2] of the network's inputs
};

// Weights N(0, sigma_w2 / fan_in) (or orthogonal with that per-unit variance), with sigma_w2
// on the edge of chaos for sigma_b2; bias() gives the matching N(0, sigma_b2) biases.
struct Critical {
    static constexpr const char* name = "critical";
    double sigma_w2 = 1.0;
    double sigma_b2 = 0.0;
    bool orthogonal = false;
    std::string activation;     // whose edge of chaos this is
    diag::CriticalPoint point;  // q*, the phases on either side, ...

    void validate() const {
        detail::check_non_negative(name, "sigma_w2", sigma_w2);
        detail::check_non_negative(name, "sigma_b2", sigma_b2);
    }

    template <class T>
    void operator()(MatrixView<T> w, Index fan_in, Index fan_out, Rng& rng) const {
        detail::require_positive_fan(name, "fan_in", fan_in);
        detail::require_positive_fan(name, "fan_out", fan_out);
        const double in = static_cast<double>(fan_in), out = static_cast<double>(fan_out);
        if (orthogonal) {
            // A tall orthogonal W keeps |x| (per-unit variance falls by fan_in / fan_out), a wide
            // one keeps the per-unit variance: scale so that both match the Gaussian's.
            Orthogonal{std::sqrt(sigma_w2 * std::max(1.0, out / in))}(w, fan_in, fan_out, rng);
        } else {
            detail::fill_normal(w, 0.0, std::sqrt(sigma_w2 / in), rng);
        }
    }

    [[nodiscard]] Normal bias() const { return Normal{0.0, std::sqrt(sigma_b2)}; }

    [[nodiscard]] std::string describe() const {
        return std::string(name) + "(" + activation + ", sigma_w2 " +
               detail::number_text(sigma_w2) + ", sigma_b2 " + detail::number_text(sigma_b2) +
               (orthogonal ? ", orthogonal" : "") + ")";
    }
};

// The edge-of-chaos initialiser of `act` (any activation type, built-in or a user's);
// value_error when `act` has none at options.sigma_b2 (diag::critical_point says why).
template <ElementwiseFunction<double> Act>
Critical critical(const Act& act, const CriticalOptions& options = {}) {
    const auto point = diag::critical_point(
        act, {.sigma_b2 = options.sigma_b2, .input_second_moment = options.input_second_moment});
    return Critical{.sigma_w2 = point.sigma_w2,
                    .sigma_b2 = options.sigma_b2,
                    .orthogonal = options.orthogonal,
                    .activation = Act::name,
                    .point = point};
}

}  // namespace gradscope::init
