// The depth experiment behind the sweep, the tests and the docs: build a square MLP at
// initialisation, push one batch of N(0, 1) inputs through it, and backpropagate a fixed
// random linear readout L = mean over rows of <h_L, G>, G ~ N(0, 1). The readout makes the
// gradient arriving at the top independent of the forward signal, as the mean-field theory
// assumes (an MSE loss would correlate delta with the activations and bias the gain).
#pragma once

#include "../core/ops/arithmetic.hpp"
#include "../core/ops/reduction.hpp"
#include "../core/random.hpp"
#include "../nn/mlp.hpp"
#include "monitor.hpp"

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

namespace gradscope::diag {

struct DepthSetup {
    int depth = 10;  // Linear layers, each width x width; the last has no activation
    Index width = 256;
    Index batch = 128;
    std::uint64_t seed = 0;
    Normalization norm = Normalization::none;
    bool residual = false;
    double residual_scale = 1.0;
    bool zero_init_residual = false;
    // Biases N(0, sigma_b2), drawn from a stream of their own so that the weights are the same
    // whatever sigma_b2 is (and the sweep's weight cache stays valid).
    double sigma_b2 = 0.0;
};

// Weights N(0, sigma_w2 / fan_in): the parametrisation the theory uses (biases: DepthSetup::sigma_b2).
template <class T>
init::Initializer<T> gaussian_init(double sigma_w2) {
    gradscope::detail::check_non_negative("gaussian_init", "sigma_w2", sigma_w2);
    return [sigma_w2](MatrixView<T> w, Index fan_in, Index fan_out, Rng& rng) {
        init::normal(0.0, std::sqrt(sigma_w2 / static_cast<double>(fan_in)))(w, fan_in, fan_out,
                                                                             rng);
    };
}

template <class T>
GradientProfile measure_depth(const ActivationChoice<T>& activation,
                              const init::Initializer<T>& weight_init, const DepthSetup& setup) {
    if (setup.depth < 2)
        throw value_error("measure_depth: depth must be at least 2, got " +
                          std::to_string(setup.depth));
    // An empty batch would reach the monitor's norms and the loss's division with nothing in them.
    if (setup.width <= 0 || setup.batch <= 0) {
        throw value_error("measure_depth: width and batch must be positive, got width " +
                          std::to_string(setup.width) + ", batch " + std::to_string(setup.batch));
    }
    gradscope::detail::check_dimensions("measure_depth", setup.batch, setup.width);
    gradscope::detail::check_finite("measure_depth", "residual_scale", setup.residual_scale);
    gradscope::detail::check_non_negative("measure_depth", "sigma_b2", setup.sigma_b2);
    init::Initializer<T> bias_init = init::zeros();
    if (setup.sigma_b2 > 0.0) {
        auto bias_rng = std::make_shared<Rng>(setup.seed ^ 0xb1a5b1a5b1a5b1a5ULL);
        bias_init = [bias_rng, stddev = std::sqrt(setup.sigma_b2)](MatrixView<T> b, Index fan_in,
                                                                   Index fan_out, Rng&) {
            init::normal(0.0, stddev)(b, fan_in, fan_out, *bias_rng);
        };
    }
    auto net = mlp<T>(
        {.widths = std::vector<Index>(static_cast<std::size_t>(setup.depth) + 1, setup.width),
         .activation = activation,
         .init = weight_init,
         .bias_init = bias_init,
         .norm = setup.norm,
         .residual = setup.residual,
         .residual_scale = setup.residual_scale,
         .zero_init_residual = setup.zero_init_residual,
         .seed = setup.seed});
    GradientMonitor<T> monitor(*net, {.track_updates = false});
    Rng data(setup.seed ^ 0x9e3779b97f4a7c15ULL);
    const auto x = Tensor<T>::constant(data.normal_matrix<T>(setup.batch, setup.width));
    const auto readout = Tensor<T>::constant(data.normal_matrix<T>(setup.batch, setup.width));
    auto loss = sum((*net)(x)*readout) / static_cast<double>(setup.batch);
    loss.backward();
    return monitor.last();
}

}  // namespace gradscope::diag
