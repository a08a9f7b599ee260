// Sharpness during training: the top eigenvalue of the loss's Hessian with respect to a
// network's parameters, measured every N steps. Sharpness bounds the stable step size of
// gradient descent (2/eta on a quadratic) and is what the edge-of-stability regime is about
// (Cohen et al. 2021, "Gradient Descent on Neural Networks Typically Occurs at the Edge of
// Stability"), where gradient norms alone say little.
//
// The tracker is given each step's loss before its backward pass and measures on the steps
// 0, N, 2N, ... from the loss's own recorded graph (diag/curvature.hpp: Lanczos over exact
// Hessian-vector products): no extra forward pass, no change to the gradient the backward
// then computes, and nothing at all on the other steps. A tracker that is not given the loss
// costs nothing. With per_layer, each layer's diagonal block of the Hessian (layer_blocks) is
// measured too: the sharpness of the loss when only that layer moves, which says which layer
// is sharp. GradientMonitor measures the same way (Options::sharpness) into its records.
#pragma once

#include "../core/errors.hpp"
#include "../nn/module.hpp"
#include "curvature.hpp"
#include "not_measured.hpp"

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gradscope::diag {

struct SharpnessOptions {
    std::size_t every = 1;  // measure on steps 0, every, 2 every, ...
    // The Lanczos run of each measurement (the whole network's and each block's); its seed is
    // offset by the step, so that successive measurements do not share a start vector.
    LanczosOptions lanczos{.k = 1, .max_iterations = 20, .tolerance = 1e-3, .seed = 0};
    // Also each layer's block of the Hessian (one more Lanczos run per layer).
    bool per_layer = false;
};

// One layer's diagonal block of the Hessian.
struct BlockSharpness {
    std::string name;                 // the layer's module path
    double sharpness = not_measured;  // the block's largest eigenvalue (<= the whole one's)
    double residual = not_measured;   // Lanczos's bound on |H_b y - lambda y|
    int products = 0;                 // block Hessian-vector products it took
    bool converged = false;
};

struct SharpnessRecord {
    std::size_t step = 0;
    double sharpness = 0.0;  // the largest (algebraic) eigenvalue of the Hessian
    double residual = 0.0;   // Lanczos's bound on |H y - lambda y|
    int products = 0;        // Hessian-vector products it took
    bool converged = false;
    std::vector<BlockSharpness> layers = {};  // per_layer: one per block, in the blocks' order
};

namespace detail {

inline void check_sharpness_options(const char* who, const SharpnessOptions& o) {
    if (o.every == 0) {
        throw value_error(std::string(who) +
                          ": sharpness every must be at least 1 (measure every N steps), got 0");
    }
    if (o.lanczos.k < 1 || o.lanczos.max_iterations < 1) {
        throw value_error(std::string(who) + ": sharpness Lanczos needs k >= 1 and " +
                          "max_iterations >= 1, got k = " + std::to_string(o.lanczos.k) +
                          ", max_iterations = " + std::to_string(o.lanczos.max_iterations));
    }
    if (!(o.lanczos.tolerance > 0.0)) {
        throw value_error(std::string(who) + ": sharpness Lanczos tolerance must be positive");
    }
}

// The Lanczos options of a measurement at `step` of an operator of size n.
inline LanczosOptions sharpness_lanczos(const SharpnessOptions& o, std::size_t step, Index n) {
    LanczosOptions lanczos = o.lanczos;
    lanczos.seed += step;
    lanczos.max_iterations =
        std::max(lanczos.k,
                 static_cast<int>(std::min<Index>(lanczos.max_iterations, std::max<Index>(n, 1))));
    lanczos.k = static_cast<int>(std::min<Index>(lanczos.k, std::max<Index>(n, 1)));
    return lanczos;
}

// The sharpness of `loss` (before its backward) with respect to `parameters` (a module's, in
// named_parameters() order), and, with per_layer, of each of `blocks` (layer_blocks(module) or
// some of them).
template <class T>
SharpnessRecord measure_sharpness(const Tensor<T>& loss, std::vector<Tensor<T>> parameters,
                                  const SharpnessOptions& o, std::size_t step,
                                  const std::vector<HessianBlock>& blocks) {
    Hessian<T> hessian(loss, std::move(parameters));
    const EigenEstimate top =
        hessian_top_eigenvalues(hessian, sharpness_lanczos(o, step, hessian.size()));
    SharpnessRecord record{step, top.values.at(0), top.residuals.at(0), top.operator_applications,
                           top.converged};
    if (!o.per_layer) return record;
    for (const HessianBlock& block : blocks) {
        const Index n = block_size(hessian, block);
        if (n == 0) {
            record.layers.push_back({block.name});
            continue;
        }
        const EigenEstimate b =
            top_eigenvalues<T>(block_operator(hessian, block), n, sharpness_lanczos(o, step, n));
        record.layers.push_back(
            {block.name, b.values.at(0), b.residuals.at(0), b.operator_applications, b.converged});
    }
    return record;
}

}  // namespace detail

template <class T>
class SharpnessTracker {
public:
    explicit SharpnessTracker(const Module<T>& module, SharpnessOptions options = {})
        : module_(module), options_(options) {
        detail::check_sharpness_options("SharpnessTracker", options_);
        if (options_.per_layer) blocks_ = layer_blocks(module_);
    }

    // Call with the step's [1x1] loss before its backward. Returns whether this step was
    // measured (its record is then latest()).
    bool observe(const Tensor<T>& loss) {
        const std::size_t step = steps_++;
        if (step % options_.every != 0) return false;
        history_.push_back(
            detail::measure_sharpness(loss, module_.parameters(), options_, step, blocks_));
        return true;
    }

    [[nodiscard]] std::size_t steps_seen() const noexcept { return steps_; }
    [[nodiscard]] const std::vector<SharpnessRecord>& history() const noexcept { return history_; }
    [[nodiscard]] std::optional<SharpnessRecord> latest() const {
        if (history_.empty()) return std::nullopt;
        return history_.back();
    }

private:
    const Module<T>& module_;
    SharpnessOptions options_;
    std::vector<HessianBlock> blocks_;
    std::size_t steps_ = 0;
    std::vector<SharpnessRecord> history_;
};

}  // namespace gradscope::diag
