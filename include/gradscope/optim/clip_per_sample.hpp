// Per-sample gradient clipping with optional Gaussian noise: the mechanism of DP-SGD (Abadi et
// al. 2016, "Deep Learning with Differential Privacy"). Each sample's gradient g_i, over all the
// network's parameters taken together, is scaled to norm at most C before the batch sum:
//
//   g = (sum_i c_i g_i + N(0, (sigma C)^2 I)) / D,    c_i = min(1, C / |g_i|),
//
// D = B when the loss is a mean over the batch's B samples and D = 1 when it is a sum (Opacus's
// convention: the clipped sum plus the noise, divided by the batch size for a mean). So with C
// above every |g_i| and sigma = 0 the result is the ordinary batch gradient, for either
// reduction. g_i is the gradient of sample i's own loss term (Note [Per-sample gradients of a
// Linear] in nn/per_sample.hpp), which is why the clipper needs the loss's reduction.
//
// There is no privacy accountant here: this is the mechanism, not a guarantee. What (epsilon,
// delta) a training run achieves depends on the sampling of batches, the number of steps, sigma
// and an accountant (the moments accountant of the same paper, or RDP), none of which this
// header tracks; nothing it computes is a privacy claim.
//
// Usage: attach once, then after each backward and before the optimiser's step:
//   PerSampleClipper<float> clipper(*net, {.loss_reduction = Reduction::mean});
//   ...
//   net->zero_grad();
//   cross_entropy((*net)(x), labels).backward();
//   clipper.clip(1.0, 1.1, rng);   // C = 1, sigma = 1.1, noise from the seeded Rng
//   optimizer.step();
//
// How: a hook on every Linear keeps its input a [B x in] and output gradient [B x out]
// (nn/per_sample.hpp), so |g_i|^2 is the sum over layers of |delta_i|^2 (|a_i|^2 + 1) and each
// layer's clipped weight gradient is one product (diag(c) dL/dz)^T a: the output-gradient rows
// are rescaled before the weight-gradient product, and no per-sample weight matrix is formed.
// clip() then *replaces* each Linear's weight and bias gradient with the clipped (and noised)
// one: gradients accumulated before this backward are not kept, so zero them before it.
//
// Only networks whose every parameter is a Linear's weight or bias are accepted: any other
// parameter (LayerNorm's or BatchNorm1d's affine parameters, an RNN's) has no per-sample
// gradient here, and BatchNorm1d, with or without parameters, couples the samples through the
// batch statistics, so a sample's "own" gradient is undefined. The constructor names the module
// that is refused. Parameters with requires_grad off are frozen: they are neither counted in
// |g_i| nor clipped nor noised.
//
// Noise is drawn with Rng::normal, layer by layer in the order of named_modules(), weight then
// bias, row by row: the same seed gives the same noise with any compiler. A sample whose
// gradient is not finite leaves the result non-finite (it is not silently dropped).
#pragma once

#include "../core/errors.hpp"
#include "../core/matrix.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "../nn/batchnorm.hpp"
#include "../nn/linear.hpp"
#include "../nn/loss_reduction.hpp"
#include "../nn/module.hpp"
#include "../nn/per_sample.hpp"

#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace gradscope {

struct PerSampleClipOptions {
    // The reduction of the loss backward starts from: mean or sum (see the header's comment).
    Reduction loss_reduction = Reduction::mean;
};

// What one clip() did.
struct PerSampleClipResult {
    std::size_t batch = 0;    // B
    std::size_t clipped = 0;  // samples with |g_i| > C, scaled down
};

template <class T>
class PerSampleClipper {
public:
    explicit PerSampleClipper(Module<T>& network) : PerSampleClipper(network, {}) {}

    // The clipper and the network may be destroyed in either order (Note [Hook lifetimes] in
    // nn/module.hpp).
    PerSampleClipper(Module<T>& network, PerSampleClipOptions options) : options_(options) {
        if (options_.loss_reduction != Reduction::mean &&
            options_.loss_reduction != Reduction::sum) {
            detail::throw_value(who, std::string("loss_reduction must be mean or sum (the loss "
                                                 "backward starts from), got ") +
                                         to_string(options_.loss_reduction));
        }
        // Choose first, hook after: a constructor that throws must leave no hook behind.
        std::vector<std::pair<std::string, Linear<T>*>> chosen;
        for (auto& [path, module] : network.named_modules()) {
            if (auto* linear = dynamic_cast<Linear<T>*>(module)) {
                chosen.emplace_back(path, linear);
                continue;
            }
            const std::string name = (path.empty() ? std::string("the network") : path) + " (" +
                                     module->type_name() + ")";
            if (dynamic_cast<BatchNorm1d<T>*>(module) != nullptr) {
                detail::throw_value(who, name +
                                             " couples the samples through the batch "
                                             "statistics, so a sample's own gradient is "
                                             "undefined; per-sample clipping needs a network "
                                             "without batch norm");
            }
            if (!module->own_parameters().empty()) {
                detail::throw_value(
                    who, name + " has the parameter '" + module->own_parameters().front().first +
                             "', which is not a Linear's weight or bias; per-sample clipping "
                             "handles Linear layers only");
            }
        }
        if (chosen.empty()) {
            detail::throw_value(who, network.type_name() + " has no Linear layer to clip");
        }
        layers_.reserve(chosen.size());
        for (auto& [path, linear] : chosen) {
            layers_.push_back(Layer{module_label(path), linear->weight(), linear->bias(), {}});
        }
        for (std::size_t i = 0; i < chosen.size(); ++i) {
            detail::capture_samples(*chosen[i].second, hooks_,
                                    [this, i] { return &layers_[i].capture; });
        }
    }

    PerSampleClipper(const PerSampleClipper&) = delete;
    PerSampleClipper& operator=(const PerSampleClipper&) = delete;
    ~PerSampleClipper() = default;  // hooks_ removes the hooks

    // Clips each sample's gradient to norm max_norm (C) and replaces the Linear layers'
    // gradients with the clipped sum, divided by B for a mean-reduced loss. Call once after
    // each backward.
    PerSampleClipResult clip(double max_norm) {
        detail::check_positive(who, "max_norm", max_norm);
        return clip_sum(max_norm);
    }

    // The same, then adds N(0, (noise_multiplier C)^2) to every entry of the clipped sum, drawn
    // from rng (before the division by B, so (noise_multiplier C / B)^2 for a mean).
    PerSampleClipResult clip(double max_norm, double noise_multiplier, Rng& rng) {
        detail::check_positive(who, "max_norm", max_norm);
        detail::check_non_negative(who, "noise_multiplier", noise_multiplier);
        const PerSampleClipResult result = clip_sum(max_norm);
        // The sum's noise std sigma C, divided like the sum by B for a mean.
        const double divisor =
            options_.loss_reduction == Reduction::mean ? static_cast<double>(result.batch) : 1.0;
        const double stddev = noise_multiplier * max_norm / divisor;
        if (stddev == 0.0) return result;
        for (Layer& l : layers_) {
            if (trained(l.weight)) add_noise(l.weight.mutable_grad(), stddev, rng);
            if (trained(l.bias)) add_noise(l.bias.mutable_grad(), stddev, rng);
        }
        return result;
    }

    // |g_i| of the last clip(), before clipping, in batch order.
    [[nodiscard]] std::span<const double> sample_norms() const noexcept { return norms_; }

    // The watched Linear layers' paths ("(the network)" for a root: module_label), in the order
    // noise is drawn.
    [[nodiscard]] std::vector<std::string> layer_names() const {
        std::vector<std::string> out;
        for (const auto& l : layers_) out.push_back(l.name);
        return out;
    }

    // Removes the hooks; clip() then refuses to run.
    void detach() { hooks_.remove_all(); }
    [[nodiscard]] bool attached() const noexcept { return !hooks_.empty(); }

private:
    static constexpr const char* who = "PerSampleClipper";

    struct Layer {
        std::string name;
        Tensor<T> weight;
        Tensor<T> bias;  // empty without a bias
        detail::SampleCapture<T> capture = {};
    };

    static bool trained(const Tensor<T>& t) { return t.defined() && t.requires_grad(); }
    // A Linear with neither parameter trained has no per-sample gradient, and its output may
    // receive no gradient at all (a frozen first layer): it is left out.
    static bool frozen(const Layer& l) { return !trained(l.weight) && !trained(l.bias); }

    PerSampleClipResult clip_sum(double max_norm) {
        if (!attached()) detail::throw_value(who, "clip() after detach()");
        const Index batch = check_captures();
        sample_sq_norms(batch);
        PerSampleClipResult result{.batch = static_cast<std::size_t>(batch)};
        coefficients_.resize(batch);
        for (Index i = 0; i < batch; ++i) {
            const double norm = norms_[static_cast<std::size_t>(i)];
            const bool over = norm > max_norm;  // NaN is not: it stays NaN in the sum
            coefficients_(i) = over ? static_cast<T>(max_norm / norm) : T(1);
            if (over) ++result.clipped;
        }
        for (Layer& l : layers_) {
            if (frozen(l)) continue;
            // dL/dz already carries the 1/B of a mean, so scaling its rows gives the result.
            l.capture.delta.array().colwise() *= coefficients_.array();
            if (trained(l.weight)) {
                l.weight.mutable_grad().noalias() = l.capture.delta.transpose() * l.capture.input;
            }
            if (trained(l.bias)) l.bias.mutable_grad() = l.capture.delta.colwise().sum();
        }
        for (Layer& l : layers_) l.capture.grads = 0;  // consumed: clip() again needs a backward
        return result;
    }

    // Every Linear's capture is one backward of its one forward, with one batch size; returns B.
    Index check_captures() {
        const Layer* first = nullptr;
        bool any = false;
        for (const Layer& l : layers_) {
            if (frozen(l)) continue;
            if (first == nullptr) first = &l;
            any = any || l.capture.grads > 0;
        }
        if (first == nullptr) {
            detail::throw_value(who, "every Linear is frozen (requires_grad off): nothing to clip");
        }
        if (!any) {
            detail::throw_value(who,
                                "clip() before a backward: no Linear has received an output "
                                "gradient since its last forward (or since the last clip)");
        }
        const Index batch = first->capture.input.rows();
        for (const Layer& l : layers_) {
            if (frozen(l)) continue;
            const detail::SampleCapture<T>& c = l.capture;
            if (c.grads == 0) {
                detail::throw_value(who, l.name +
                                             " (Linear) received no gradient in this "
                                             "backward; every Linear must be on the path "
                                             "to the loss");
            }
            if (!c.complete()) {
                detail::throw_value(
                    who, l.name + " (Linear) received " + std::to_string(c.grads) +
                             " output gradients for its last forward; per-sample clipping needs "
                             "each Linear called once per forward and clip() after each backward");
            }
            if (c.input.rows() != batch) {
                detail::throw_value(who, l.name + " (Linear) saw a batch of " +
                                             std::to_string(c.input.rows()) + " rows, " +
                                             first->name + " one of " + std::to_string(batch));
            }
            if ((trained(l.weight) && !l.weight.has_grad()) ||
                (trained(l.bias) && !l.bias.has_grad())) {
                detail::throw_value(who, l.name + " (Linear) has a parameter without a gradient");
            }
        }
        return batch;
    }

    // norms_[i] = |g_i| over every trained parameter (Note [Per-sample gradients of a Linear]),
    // in double, from dL/dz rows scaled by B for a mean.
    void sample_sq_norms(Index batch) {
        const double scale =
            options_.loss_reduction == Reduction::mean ? static_cast<double>(batch) : 1.0;
        norms_.assign(static_cast<std::size_t>(batch), 0.0);
        for (const Layer& l : layers_) {
            if (frozen(l)) continue;
            const bool weight = trained(l.weight);
            const bool bias = trained(l.bias);
            for (Index i = 0; i < batch; ++i) {
                const double delta =
                    l.capture.delta.row(i).template cast<double>().squaredNorm() * scale * scale;
                const double input =
                    weight ? l.capture.input.row(i).template cast<double>().squaredNorm() : 0.0;
                norms_[static_cast<std::size_t>(i)] += delta * (input + (bias ? 1.0 : 0.0));
            }
        }
        for (double& n : norms_) n = std::sqrt(n);
    }

    static void add_noise(MatrixView<T> g, double stddev, Rng& rng) {
        for (Index r = 0; r < g.rows(); ++r) {
            for (Index c = 0; c < g.cols(); ++c) {
                g(r, c) += static_cast<T>(stddev * rng.normal());
            }
        }
    }

    PerSampleClipOptions options_;
    std::vector<Layer> layers_;
    std::vector<double> norms_;
    Eigen::Array<T, Eigen::Dynamic, 1> coefficients_;
    // Last, so that it is destroyed first: no hook can run on a half-destroyed clipper.
    ScopedHooks hooks_;
};

}  // namespace gradscope
