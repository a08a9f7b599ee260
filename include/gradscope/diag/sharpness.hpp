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
// costs nothing.
#pragma once

#include "../core/errors.hpp"
#include "../nn/module.hpp"
#include "curvature.hpp"

#include <cstddef>
#include <optional>
#include <vector>

namespace gradscope::diag {

struct SharpnessOptions {
    std::size_t every = 1;  // measure on steps 0, every, 2 every, ...
    // The Lanczos run of each measurement; its seed is offset by the step, so that successive
    // measurements do not share a start vector.
    LanczosOptions lanczos{.k = 1, .max_iterations = 20, .tolerance = 1e-3, .seed = 0};
};

struct SharpnessRecord {
    std::size_t step = 0;
    double sharpness = 0.0;  // the largest (algebraic) eigenvalue of the Hessian
    double residual = 0.0;   // Lanczos's bound on |H y - lambda y|
    int products = 0;        // Hessian-vector products it took
    bool converged = false;
};

template <class T>
class SharpnessTracker {
public:
    explicit SharpnessTracker(const Module<T>& module, SharpnessOptions options = {})
        : module_(module), options_(options) {
        if (options_.every == 0) {
            throw value_error("SharpnessTracker: every must be at least 1 (measure every N steps)");
        }
    }

    // Call with the step's [1x1] loss before its backward. Returns whether this step was
    // measured (its record is then latest()).
    bool observe(const Tensor<T>& loss) {
        const std::size_t step = steps_++;
        if (step % options_.every != 0) return false;
        Hessian<T> hessian(loss, module_);
        LanczosOptions lanczos = options_.lanczos;
        lanczos.seed += step;
        lanczos.max_iterations = static_cast<int>(
            std::min<Index>(lanczos.max_iterations, std::max<Index>(hessian.size(), 1)));
        const EigenEstimate top = hessian_top_eigenvalues(hessian, lanczos);
        history_.push_back({step, top.values.at(0), top.residuals.at(0), top.operator_applications,
                            top.converged});
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
    std::size_t steps_ = 0;
    std::vector<SharpnessRecord> history_;
};

}  // namespace gradscope::diag
