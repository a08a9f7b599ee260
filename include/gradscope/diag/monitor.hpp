// GradientMonitor: attaches to a network through the public module hooks and records, for
// every layer and every backward pass, what gradient-flow questions need (see LayerStats).
//
// Layers are the network's Linear modules, found by walking the module tree (or those a
// selector picks). A step is one backward pass: forward hooks note activations, output-gradient
// hooks note |delta_l| during backward, and the network's own parameter-gradient hook closes the
// step once backward has finished. What is measured at each of these moments is declared in
// layer_statistics.hpp (Note [One place per statistic]); the hooks only gather what exists
// then. Detaching removes every hook, after which the monitor costs nothing. Call the network
// itself (not its layers one by one) so that its hook fires.
//
// Per-sample mode (Options::per_sample, off by default; off, it adds no hook and no copy): for
// every watched Linear the forward hook keeps its input a [B x in] and the output-gradient hook
// dL/dz [B x out] (nn/per_sample.hpp). Sample i's own gradient is then g_i = outer(delta_i, a_i)
// for the weight and delta_i for the bias, delta_i = d(l_i)/dz_i, l_i sample i's own loss term
// (Note [Per-sample gradients of a Linear], which says how a mean-reduced loss is accounted for
// and which "mean" it must be). So |g_i|^2 = |delta_i|^2 (|a_i|^2 + 1) and
// sum_i g_ij^2 = (delta o delta)^T (a o a) (and the column sums of delta o delta for the bias):
// one extra product, no per-sample matrix (what BackPACK calls SumGradSquared). The batch-size
// tests need g_i^T g_bar = delta_i^T (G_W a_i + g_b), G_W and g_b the mean gradient's parts:
// row i of (A G_W^T + 1 g_b^T) dotted with delta_i, one more product.
// Batch norm couples the samples: for a Linear whose output feeds batch norm, the rows'
// contributions still sum to the batch gradient, but they are not the gradients of the samples'
// own losses (each sample's loss depends on the others' through the batch statistics). They are
// reported as they are; read them as a decomposition of the batch gradient, not as per-sample
// gradients. A layer is measured when exactly one of its calls' outputs received a gradient in
// the step (a layer called twice in one forward is not) and that call was its last forward with
// gradients on; otherwise, and for a watched module that is not a Linear, the per-sample
// statistics are not measured.
#pragma once

#include "../nn/activation.hpp"
#include "../nn/linear.hpp"
#include "../nn/loss_reduction.hpp"
#include "../nn/module.hpp"
#include "../nn/per_sample.hpp"
#include "layer_statistics.hpp"
#include "profile.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gradscope::diag {

// GradientMonitor::Options::per_sample.
struct PerSampleOptions {
    bool enabled = false;
    // The reduction of the loss backward starts from: mean or sum (see the header's comment).
    Reduction loss_reduction = Reduction::mean;
};

template <class T>
class GradientMonitor {
public:
    struct Options {
        // Steps kept: 0 keeps every step, N keeps the last N.
        std::size_t keep_last = 0;
        // Picks the layers to watch (default: every Linear).
        std::function<bool(const std::string& path, Module<T>& module)> select = {};
        // |phi'| below this counts as saturated.
        double saturation_threshold = 1e-3;
        // Keep a copy of each weight to measure the next update's size (costs one copy per step).
        bool track_updates = true;
        // Per-sample gradient statistics of the Linear layers (see the header's comment).
        PerSampleOptions per_sample = {};
    };

    explicit GradientMonitor(Module<T>& network) : GradientMonitor(network, Options{}) {}

    // The monitor and the network may be destroyed in either order (Note [Hook lifetimes] in
    // nn/module.hpp): the monitor removes its hooks when it goes, and a network that goes
    // first takes them with it, leaving the records readable.
    GradientMonitor(Module<T>& network, Options options) : options_(std::move(options)) {
        gradscope::detail::check_non_negative("GradientMonitor", "saturation_threshold",
                                              options_.saturation_threshold);
        check_per_sample_options(options_.per_sample);
        // Choose first, hook after: a constructor that throws must leave no hook behind.
        std::vector<std::pair<std::string, Module<T>*>> chosen;
        std::vector<ActivationLayer<T>*> activations;
        for (auto& [path, module] : network.named_modules()) {
            const bool pick = options_.select ? options_.select(path, *module)
                                              : dynamic_cast<Linear<T>*>(module) != nullptr;
            if (pick) chosen.emplace_back(path, module);
            if (auto* act = dynamic_cast<ActivationLayer<T>*>(module)) activations.push_back(act);
        }
        if (chosen.empty()) {
            throw value_error(
                "GradientMonitor: no layer to watch in " + network.type_name() +
                (options_.select ? " (the selector picked none)" : " (it has no Linear)"));
        }
        for (auto& [path, module] : chosen) add_layer(path, *module);
        for (auto* act : activations) watch_activation(*act);
        hooks_.add(network.register_param_grad_hook([this](Module<T>&) { close_step(); }));
        pending_.resize(layers_.size());
        reset_pending();
    }

    GradientMonitor(const GradientMonitor&) = delete;
    GradientMonitor& operator=(const GradientMonitor&) = delete;
    ~GradientMonitor() = default;  // hooks_ removes the hooks

    // Removes every hook; the records stay readable.
    void detach() { hooks_.remove_all(); }
    [[nodiscard]] bool attached() const noexcept { return !hooks_.empty(); }

    [[nodiscard]] std::size_t layer_count() const noexcept { return layers_.size(); }
    [[nodiscard]] std::vector<std::string> layer_names() const {
        std::vector<std::string> out;
        for (const auto& l : layers_) out.push_back(l.name);
        return out;
    }

    [[nodiscard]] const std::deque<GradientProfile>& history() const noexcept { return history_; }
    [[nodiscard]] std::size_t steps_seen() const noexcept { return steps_seen_; }

    [[nodiscard]] const GradientProfile& last() const {
        if (history_.empty()) {
            throw value_error(
                "GradientMonitor: no step recorded yet (run forward and backward first)");
        }
        return history_.back();
    }

    void clear() { history_.clear(); }

private:
    // A Linear's per-sample buffers, reused from step to step (a Matrix keeps its allocation
    // when its size does not change): the captured input and dL/dz of nn/per_sample.hpp (then
    // delta_i = d(l_i)/dz_i), and what is computed from them.
    struct PerSampleBuffers : gradscope::detail::LinearCapture<T> {
        bool watched = false;
        Matrix<T> squared_input, squared_delta;
        Matrix<T> mean_weight, mean_bias, second_weight, second_bias;
        Matrix<T> projected;  // A G_W^T + 1 g_b^T [B x out]: row i . delta_i = g_i^T g_bar
        Matrix<T> gram_delta, gram_input;  // Delta Delta^T and A A^T (+ 1) [B x B] (sample_dots)
        Eigen::Array<T, Eigen::Dynamic, 1> dots;  // g_i^T g_bar [B]
        std::vector<double> sq_norms, sorted_norms, sq_deviations, dot_deviations;
    };

    struct Layer {
        std::string name;
        Tensor<T> weight;  // the module's TensorRole::weight parameter, or empty
        Tensor<T> bias;
        Matrix<T> previous_weight;
        PerSampleBuffers per_sample = {};
    };

    static void check_per_sample_options(const PerSampleOptions& o) {
        if (o.enabled && o.loss_reduction != Reduction::mean &&
            o.loss_reduction != Reduction::sum) {
            throw value_error(std::string("GradientMonitor: per_sample.loss_reduction must be "
                                          "mean or sum (the loss backward starts from), got ") +
                              to_string(o.loss_reduction));
        }
    }

    void add_layer(const std::string& path, Module<T>& module) {
        const std::size_t index = layers_.size();
        // A selected module without a weight or bias role (an activation, say) is watched for
        // its output and gradient only.
        Layer layer{path,
                    module.own_parameter(TensorRole::weight),
                    module.own_parameter(TensorRole::bias),
                    {}};
        layer.per_sample.watched = options_.per_sample.enabled &&
                                   dynamic_cast<Linear<T>*>(&module) != nullptr &&
                                   layer.weight.defined();
        const bool per_sample = layer.per_sample.watched;
        layers_.push_back(std::move(layer));
        if (per_sample) watch_per_sample(module, index);
        hooks_.add(module.register_forward_hook(
            [this, index](Module<T>&, const Tensor<T>&, const Tensor<T>& out) {
                // Until an activation follows, the layer's output stands for h_l.
                const LayerObservation<T> seen{.output = out.value(), .activation = out.value()};
                measure(Moment::forward, seen, pending_[index]);
                measure(Moment::activation, seen, pending_[index]);
                current_layer_ = static_cast<std::ptrdiff_t>(index);
                activation_seen_ = false;
            }));
        hooks_.add(module.register_output_grad_hook([this, index](Module<T>&, MatrixView<T> g) {
            LayerStats& s = pending_[index];
            const LayerObservation<T> seen{
                .grad_output = ConstMatrixView<T>(g.data(), g.rows(), g.cols()),
                .nonfinite = &s.nonfinite};
            measure(Moment::backward, seen, s);
        }));
    }

    // Per-sample mode: keep the Linear's input and output gradient for close_step.
    void watch_per_sample(Module<T>& module, std::size_t index) {
        gradscope::detail::capture_linear(module, hooks_,
                                          [this, index]() -> gradscope::detail::LinearCapture<T>& {
                                              return layers_[index].per_sample;
                                          });
    }

    // The per-sample gradients' reductions (the header's comment has the formulas), or nothing
    // when this step cannot be split into samples.
    std::optional<PerSampleGradients<T>> reduce_per_sample(Layer& layer) {
        PerSampleBuffers& p = layer.per_sample;
        if (!p.watched || !p.complete()) return std::nullopt;
        const Index batch = p.input.rows();
        p.to_sample_deltas(options_.per_sample.loss_reduction);
        const T inv_batch = T(1) / static_cast<T>(batch);
        p.squared_input = p.input.array().square().matrix();
        p.squared_delta = p.delta.array().square().matrix();
        p.mean_weight.noalias() = inv_batch * (p.delta.transpose() * p.input);
        p.second_weight.noalias() = inv_batch * (p.squared_delta.transpose() * p.squared_input);
        const bool bias = layer.bias.defined();
        if (bias) {
            p.mean_bias = inv_batch * p.delta.colwise().sum();
            p.second_bias = inv_batch * p.squared_delta.colwise().sum();
        } else {
            p.mean_bias.resize(0, 0);
            p.second_bias.resize(0, 0);
        }
        per_sample_norms(p, bias);
        const double mean_sq = static_cast<double>(p.mean_weight.squaredNorm()) +
                               static_cast<double>(p.mean_bias.squaredNorm());
        per_sample_deviations(p, bias, mean_sq);
        return PerSampleGradients<T>{.sq_norms = p.sq_norms,
                                     .sorted_norms = p.sorted_norms,
                                     .sq_deviations = p.sq_deviations,
                                     .dot_deviations = p.dot_deviations,
                                     .mean_sq_norm = mean_sq,
                                     .mean_weight = view_of(p.mean_weight),
                                     .mean_bias = view_of(p.mean_bias),
                                     .second_weight = view_of(p.second_weight),
                                     .second_bias = view_of(p.second_bias)};
    }

    // |g_i|^2 = |delta_i|^2 |a_i|^2 (weight) + |delta_i|^2 (bias), and the sorted |g_i|.
    static void per_sample_norms(PerSampleBuffers& p, bool bias) {
        const auto batch = static_cast<std::size_t>(p.input.rows());
        p.sq_norms.resize(batch);
        p.sorted_norms.resize(batch);
        for (std::size_t i = 0; i < batch; ++i) {
            const auto r = static_cast<Index>(i);
            const double delta = static_cast<double>(p.squared_delta.row(r).sum());
            const double input = static_cast<double>(p.squared_input.row(r).sum());
            p.sq_norms[i] = delta * (input + (bias ? 1.0 : 0.0));
            p.sorted_norms[i] = std::sqrt(p.sq_norms[i]);
        }
        std::sort(p.sorted_norms.begin(), p.sorted_norms.end());
    }

    // g_i^T g_bar for every sample, into p.dots, by whichever of two equal formulas is the
    // smaller product. Through the mean gradient: row i of A G_W^T + 1 g_b^T dotted with delta_i,
    // B in out multiply-adds. Through the samples' Gram matrices: g_bar = (1/B) sum_l g_l and
    // g_i^T g_l = (delta_i^T delta_l)(a_i^T a_l + 1) (no + 1 without a bias), so g_i^T g_bar =
    // (1/B) sum_l (Delta Delta^T)_il (A A^T + 1)_il, B^2 (in + out) multiply-adds: fewer when the
    // batch is small against the layer (medium and large in bench/workload.hpp: half).
    static void sample_dots(PerSampleBuffers& p, bool bias) {
        const Index batch = p.input.rows(), in = p.input.cols(), out = p.delta.cols();
        if (batch * (in + out) < in * out) {
            p.gram_delta.noalias() = p.delta * p.delta.transpose();
            p.gram_input.noalias() = p.input * p.input.transpose();
            if (bias) p.gram_input.array() += T(1);
            p.dots = (p.gram_delta.array() * p.gram_input.array()).rowwise().sum() /
                     static_cast<T>(batch);
        } else {
            p.projected.noalias() = p.input * p.mean_weight.transpose();
            if (bias) p.projected.rowwise() += p.mean_bias.row(0);
            p.dots = (p.projected.array() * p.delta.array()).rowwise().sum();
        }
    }

    // |g_i - g_bar|^2 and (g_i - g_bar)^T g_bar from |g_i|^2, |g_bar|^2 and g_i^T g_bar
    // (sample_deviation), after per_sample_norms.
    static void per_sample_deviations(PerSampleBuffers& p, bool bias, double mean_sq) {
        sample_dots(p, bias);
        const std::size_t batch = p.sq_norms.size();
        const double rounding =
            batch_rounding(batch, static_cast<double>(std::numeric_limits<T>::epsilon()));
        p.sq_deviations.resize(batch);
        p.dot_deviations.resize(batch);
        for (std::size_t i = 0; i < batch; ++i) {
            const auto r = static_cast<Index>(i);
            const double dot = static_cast<double>(p.dots(r));
            const SampleDeviation d = sample_deviation(p.sq_norms[i], dot, mean_sq, rounding);
            p.sq_deviations[i] = d.sq_norm;
            p.dot_deviations[i] = d.dot;
        }
    }

    static ConstMatrixView<T> view_of(const Matrix<T>& m) {
        return ConstMatrixView<T>(m.data(), m.rows(), m.cols());
    }

    // The first activation after a watched layer stands for that layer's output h_l.
    void watch_activation(ActivationLayer<T>& act) {
        hooks_.add(act.register_forward_hook([this, &act](Module<T>&, const Tensor<T>& in,
                                                          const Tensor<T>& out) {
            if (current_layer_ < 0 || activation_seen_) return;
            activation_seen_ = true;
            derivative_.resize(in.rows(), in.cols());
            act.derivative(in.value(), out.value(),
                           MatrixView<T>(derivative_.data(), in.rows(), in.cols()));
            const LayerObservation<T> seen{
                .activation = out.value(),
                .derivative = ConstMatrixView<T>(derivative_.data(), in.rows(), in.cols()),
                .saturation_threshold = options_.saturation_threshold};
            measure(Moment::activation, seen, pending_[static_cast<std::size_t>(current_layer_)]);
        }));
    }

    void reset_pending() {
        for (std::size_t i = 0; i < layers_.size(); ++i) {
            pending_[i] = LayerStats{};
            pending_[i].name = layers_[i].name;
            layers_[i].per_sample.grads = 0;
        }
        current_layer_ = -1;
        activation_seen_ = false;
    }

    void close_step() {
        for (std::size_t i = 0; i < layers_.size(); ++i) {
            Layer& layer = layers_[i];
            LayerStats& s = pending_[i];
            const std::optional<PerSampleGradients<T>> per_sample = reduce_per_sample(layer);
            measure(Moment::step_end,
                    LayerObservation<T>{.weight = &layer.weight,
                                        .bias = &layer.bias,
                                        .nonfinite = &s.nonfinite,
                                        .per_sample = per_sample ? &*per_sample : nullptr},
                    s);
            if (per_sample) {
                s.per_sample_sq_norms.assign(per_sample->sq_norms.begin(),
                                             per_sample->sq_norms.end());
                s.per_sample_sq_deviations.assign(per_sample->sq_deviations.begin(),
                                                  per_sample->sq_deviations.end());
                s.per_sample_dot_deviations.assign(per_sample->dot_deviations.begin(),
                                                   per_sample->dot_deviations.end());
            }
            if (options_.track_updates && layer.weight.defined()) record_update(layer, i);
        }
        history_.emplace_back(pending_, steps_seen_++);
        if (options_.keep_last > 0 && history_.size() > options_.keep_last) history_.pop_front();
        reset_pending();
    }

    // The update between the previous backward and this one belongs to the previous step's
    // record (Moment::update); then this step's weight becomes the next update's "before".
    void record_update(Layer& layer, std::size_t index) {
        const ConstMatrixView<T> w = layer.weight.value();
        if (!history_.empty() && layer.previous_weight.size() == w.size()) {
            LayerStats& previous = history_.back().layers()[index];
            const LayerObservation<T> seen{.weight = &layer.weight,
                                           .weight_before = ConstMatrixView<T>(
                                               layer.previous_weight.data(), w.rows(), w.cols()),
                                           .weight_norm_before = previous.weight_norm};
            measure(Moment::update, seen, previous);
        }
        layer.previous_weight = w;
    }

    Options options_;
    std::vector<Layer> layers_;

    std::vector<LayerStats> pending_;
    std::deque<GradientProfile> history_;
    std::size_t steps_seen_ = 0;
    std::ptrdiff_t current_layer_ = -1;
    bool activation_seen_ = false;
    Matrix<T> derivative_;
    // Last, so that it is destroyed first: no hook can run on a half-destroyed monitor.
    ScopedHooks hooks_;
};

}  // namespace gradscope::diag
