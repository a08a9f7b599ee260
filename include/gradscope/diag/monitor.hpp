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
// Per-sample mode (Options::per_sample, off by default; off, it adds no hook and no copy, and a
// program that never writes per-sample options does not compile the reductions): for every
// watched Linear (and LayerNorm with a scale and shift) the forward hook keeps its input
// [B x in] and the output-gradient hook dL/dz [B x out] (nn/per_sample.hpp). Sample i's own
// gradient is then g_i = outer(delta_i, a_i) for the weight and delta_i for the bias (a
// LayerNorm's: delta_i o xhat_i and delta_i), delta_i = d(l_i)/dz_i, l_i sample i's own loss
// term (Note [Per-sample gradients of a Linear], which says how a mean-reduced loss is
// accounted for and which "mean" it must be). Every statistic comes from a few products of the
// captured matrices, with no per-sample matrix (diag/per_sample_reduction.hpp has the formulas
// and what each costs). The default selection watches Linear layers only; select LayerNorms too
// (Options::select = linear_or_layer_norm) to have their parameters' statistics.
// Batch norm couples the samples: for a layer whose output feeds batch norm, the rows'
// contributions still sum to the batch gradient, but they are not the gradients of the samples'
// own losses (each sample's loss depends on the others' through the batch statistics). They are
// reported as they are; read them as a decomposition of the batch gradient, not as per-sample
// gradients. A BatchNorm's own parameters get no per-sample statistics, for the same reason. A
// layer is measured when exactly one of its calls' outputs received a gradient in the step (a
// layer called twice in one forward is not) and that call was its last forward with gradients
// on; otherwise, and for a watched module that is neither a Linear nor an affine LayerNorm, the
// per-sample statistics are not measured.
//
// Sharpness (Options::sharpness, off by default; off, observe_loss does nothing and the monitor
// adds no hook, copy or allocation): handed each step's loss before its backward
// (observe_loss), the monitor measures on the steps 0, every, 2 every, ... the top eigenvalue of
// the loss's Hessian with respect to every parameter of the network (GradientProfile::
// sharpness()), and with per_layer each watched layer's diagonal block's (LayerStats::
// sharpness), exactly as diag::SharpnessTracker does (diag/sharpness.hpp): Lanczos over exact
// Hessian-vector products from the loss's recorded graph, which neither runs hooks nor touches
// the gradients, so the step's backward and update are the same as without it. The step it
// lands in is the one the next backward closes.
//
// Steady state: with keep_last > 0, once the history is full each step's record reuses the
// storage of the record it pushes out, and the per-sample buffers keep theirs, so that a step
// allocates nothing (tests/test_allocations.cpp); keep_last = 0 grows the history by a record a
// step. So with a full history a reference into history() (or last()) sees the records move
// along at the next step, as an index would: copy a record to keep it.
#pragma once

#include "../nn/activation.hpp"
#include "../nn/layernorm.hpp"
#include "../nn/linear.hpp"
#include "../nn/loss_reduction.hpp"
#include "../nn/module.hpp"
#include "../nn/per_sample.hpp"
#include "layer_selector.hpp"
#include "layer_statistics.hpp"
#include "per_sample_reduction.hpp"
#include "profile.hpp"
#include "sharpness.hpp"

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

template <class T>
class GradientMonitor {
public:
    struct Options {
        // Steps kept: 0 keeps every step, N keeps the last N.
        std::size_t keep_last = 0;
        // Picks the layers to watch: bool(const std::string& path, Module<T>& module)
        // (default: every Linear).
        LayerSelector<T> select = {};
        // |phi'| below this counts as saturated.
        double saturation_threshold = 1e-3;
        // Keep a copy of each weight to measure the next update's size (costs one copy per step).
        bool track_updates = true;
        // Per-sample gradient statistics of the Linear (and selected LayerNorm) layers (see the
        // header's comment). Off by default, holding no reductions' code (its `reducer`).
        PerSampleOptions<T> per_sample = {.reducer = nullptr};
        // Sharpness of the loss handed to observe_loss (see the header's comment); unset: off.
        std::optional<SharpnessOptions> sharpness = std::nullopt;
    };

    // A selector (Options::select) for every Linear and every LayerNorm.
    static bool linear_or_layer_norm(const std::string&, Module<T>& module) {
        return dynamic_cast<Linear<T>*>(&module) != nullptr ||
               dynamic_cast<LayerNorm<T>*>(&module) != nullptr;
    }

    explicit GradientMonitor(Module<T>& network) : GradientMonitor(network, Options{}) {}

    // The monitor and the network may be destroyed in either order (Note [Hook lifetimes] in
    // nn/module.hpp): the monitor removes its hooks when it goes, and a network that goes
    // first takes them with it, leaving the records readable.
    // Defined after the class, as close_step is: a member defined in the class body is inline,
    // which compilers instantiate for inlining even under `extern template`; out of line, a
    // program in precompiled mode (GRADSCOPE_PRECOMPILED) uses the library's instantiation and
    // does not compile the per-sample machinery the monitor's hooks reach.
    GradientMonitor(Module<T>& network, Options options);

    GradientMonitor(const GradientMonitor&) = delete;
    GradientMonitor& operator=(const GradientMonitor&) = delete;
    ~GradientMonitor() = default;  // hooks_ removes the hooks

    // Removes every hook; the records stay readable.
    void detach() { hooks_.remove_all(); }
    [[nodiscard]] bool attached() const noexcept { return !hooks_.empty(); }

    // Options::sharpness: call with the step's [1x1] loss after its forward and before its
    // backward. On the steps the sharpness is due (0, every, 2 every, ...), measures it into the
    // record the backward will close, and returns true; otherwise, and when sharpness is off or
    // the monitor detached, does nothing and returns false. A second call in a step does nothing.
    bool observe_loss(const Tensor<T>& loss) {
        if (!options_.sharpness || !attached() || sharpness_pending_ ||
            steps_seen_ % options_.sharpness->every != 0) {
            return false;
        }
        const SharpnessRecord r =
            detail::measure_sharpness(loss, parameters_, *options_.sharpness, steps_seen_, blocks_);
        pending_sharpness_ = {r.sharpness, r.residual, r.products, r.converged};
        sharpness_pending_ = true;
        for (std::size_t k = 0; k < r.layers.size(); ++k) {
            measure(Moment::loss, LayerObservation<T>{.block_sharpness = r.layers[k].sharpness},
                    pending_[block_layers_[k]]);
        }
        return true;
    }

    [[nodiscard]] std::size_t layer_count() const noexcept { return layers_.size(); }
    // The watched layers' module paths, "(the network)" for a root (module_label).
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
    struct Layer {
        std::string name;
        Tensor<T> weight;  // the module's weight (or a norm's scale) parameter, or empty
        Tensor<T> bias;    // its bias (or a norm's shift), or empty
        Matrix<T> previous_weight;
        std::unique_ptr<detail::SampleReducer<T>> per_sample = nullptr;  // null: not watched
    };

    static void check_per_sample_options(const PerSampleOptions<T>& o) {
        if (!o.enabled) return;
        if (o.reducer == nullptr) {
            throw value_error(
                "GradientMonitor: per_sample.enabled is set on per-sample options that hold no "
                "reductions (the options' default): write them whole, `.per_sample = {.enabled = "
                "true, ...}` or `options.per_sample = {.enabled = true}`, which compiles the "
                "reductions in");
        }
        if (o.loss_reduction != Reduction::mean && o.loss_reduction != Reduction::sum) {
            throw value_error(std::string("GradientMonitor: per_sample.loss_reduction must be "
                                          "mean or sum (the loss backward starts from), got ") +
                              to_string(o.loss_reduction));
        }
        if (o.every == 0) {
            throw value_error("GradientMonitor: per_sample.every must be at least 1, got 0");
        }
    }

    // The module's parameter in `role`, else a norm layer's in `norm_role`.
    static Tensor<T> parameter_of(Module<T>& module, TensorRole role, TensorRole norm_role) {
        Tensor<T> p = module.own_parameter(role);
        return p.defined() ? p : module.own_parameter(norm_role);
    }

    // The reducer of a watched module's per-sample gradients, laid out as the module's are, or
    // null when it has none the monitor can split into samples (the header's comment).
    std::unique_ptr<detail::SampleReducer<T>> per_sample_reducer(Module<T>& module) const {
        const detail::SampleReducerMaker<T> make = options_.per_sample.reducer;
        if (auto* linear = dynamic_cast<Linear<T>*>(&module)) {
            if (!linear->weight().defined()) return nullptr;
            return make(detail::SampleLayout::outer,
                        module.own_parameter(TensorRole::bias).defined(), 0.0);
        }
        if (auto* norm = dynamic_cast<LayerNorm<T>*>(&module); norm != nullptr && norm->affine()) {
            return make(detail::SampleLayout::elementwise, true, norm->eps());
        }
        return nullptr;
    }

    void add_layer(const std::string& path, Module<T>& module) {
        const std::size_t index = layers_.size();
        // A selected module without a weight or bias (an activation, say) is watched for its
        // output and gradient only.
        Layer layer{module_label(path),
                    parameter_of(module, TensorRole::weight, TensorRole::norm_scale),
                    parameter_of(module, TensorRole::bias, TensorRole::norm_shift),
                    {}};
        if (options_.per_sample.enabled) layer.per_sample = per_sample_reducer(module);
        const bool per_sample = layer.per_sample != nullptr;
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

    // Sharpness: the parameters the Hessian is taken with respect to and, with per_layer, the
    // Hessian blocks of the watched layers that own parameters.
    void watch_sharpness(Module<T>& network) {
        parameters_ = network.parameters();
        if (!options_.sharpness->per_layer) return;
        for (HessianBlock& block : layer_blocks(network)) {
            for (std::size_t i = 0; i < layers_.size(); ++i) {
                if (layers_[i].name != module_label(block.name)) continue;
                blocks_.push_back(std::move(block));
                block_layers_.push_back(i);
                break;
            }
        }
    }

    // Per-sample mode measures the steps 0, every, 2 every, ...
    [[nodiscard]] bool per_sample_due() const noexcept {
        return steps_seen_ % options_.per_sample.every == 0;
    }

    // Per-sample mode: keep the layer's input and output gradient for close_step, on the steps
    // it measures.
    void watch_per_sample(Module<T>& module, std::size_t index) {
        gradscope::detail::capture_samples(
            module, hooks_, [this, index]() -> gradscope::detail::SampleCapture<T>* {
                return per_sample_due() ? layers_[index].per_sample.get() : nullptr;
            });
    }

    // The per-sample gradients' reductions, or nothing when this step cannot be split into
    // samples or is not one the mode measures.
    std::optional<PerSampleGradients<T>> reduce_per_sample(Layer& layer) {
        if (!layer.per_sample || !per_sample_due() || !layer.per_sample->complete()) {
            return std::nullopt;
        }
        return layer.per_sample->reduce(options_.per_sample.loss_reduction,
                                        options_.per_sample.gsnr, layer.weight);
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
            clear_keeping_storage(pending_[i]);
            if (pending_[i].name != layers_[i].name) pending_[i].name = layers_[i].name;
            if (layers_[i].per_sample) layers_[i].per_sample->grads = 0;
        }
        current_layer_ = -1;
        activation_seen_ = false;
        pending_sharpness_ = {};
        sharpness_pending_ = false;
    }

    // Every statistic back to "not measured", keeping the storage of the name and the
    // per-sample vectors (no allocation when the next step fills them again).
    static void clear_keeping_storage(LayerStats& s) {
        LayerStats fresh;
        fresh.name.swap(s.name);
        fresh.per_sample_sq_norms.swap(s.per_sample_sq_norms);
        fresh.per_sample_sq_deviations.swap(s.per_sample_sq_deviations);
        fresh.per_sample_dot_deviations.swap(s.per_sample_dot_deviations);
        fresh.per_sample_sq_norms.clear();
        fresh.per_sample_sq_deviations.clear();
        fresh.per_sample_dot_deviations.clear();
        s = std::move(fresh);
    }

    void close_step();

    // Appends pending_ to the history. Once keep_last records are kept, the oldest record's
    // storage is reused for the newest (moved to the back, then overwritten), so that a full
    // history takes no new allocation.
    void record_step() {
        const std::size_t step = steps_seen_++;
        if (options_.keep_last > 0 && history_.size() >= options_.keep_last) {
            std::rotate(history_.begin(), history_.begin() + 1, history_.end());
            history_.back().assign(pending_, step, pending_sharpness_);
        } else {
            history_.emplace_back(pending_, step);
            history_.back().set_sharpness(pending_sharpness_);
        }
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
    // Sharpness (empty when off).
    std::vector<Tensor<T>> parameters_;
    std::vector<HessianBlock> blocks_;
    std::vector<std::size_t> block_layers_;  // the watched layer of each block
    NetworkSharpness pending_sharpness_ = {};
    bool sharpness_pending_ = false;
    // Last, so that it is destroyed first: no hook can run on a half-destroyed monitor.
    ScopedHooks hooks_;
};

template <class T>
GradientMonitor<T>::GradientMonitor(Module<T>& network, Options options)
    : options_(std::move(options)) {
    gradscope::detail::check_non_negative("GradientMonitor", "saturation_threshold",
                                          options_.saturation_threshold);
    check_per_sample_options(options_.per_sample);
    if (options_.sharpness) {
        detail::check_sharpness_options("GradientMonitor", *options_.sharpness);
    }
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
    if (options_.sharpness) watch_sharpness(network);
    hooks_.add(network.register_param_grad_hook([this](Module<T>&) { close_step(); }));
    pending_.resize(layers_.size());
    reset_pending();
}

template <class T>
void GradientMonitor<T>::close_step() {
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
            s.per_sample_sq_norms.assign(per_sample->sq_norms.begin(), per_sample->sq_norms.end());
            s.per_sample_sq_deviations.assign(per_sample->sq_deviations.begin(),
                                              per_sample->sq_deviations.end());
            s.per_sample_dot_deviations.assign(per_sample->dot_deviations.begin(),
                                               per_sample->dot_deviations.end());
        }
        if (options_.track_updates && layer.weight.defined()) record_update(layer, i);
    }
    record_step();
    reset_pending();
}

}  // namespace gradscope::diag
