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
#pragma once

#include "../nn/activation.hpp"
#include "../nn/linear.hpp"
#include "../nn/module.hpp"
#include "layer_statistics.hpp"
#include "profile.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace gradscope::diag {

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
    };

    explicit GradientMonitor(Module<T>& network) : GradientMonitor(network, Options{}) {}

    // The monitor and the network may be destroyed in either order (Note [Hook lifetimes] in
    // nn/module.hpp): the monitor removes its hooks when it goes, and a network that goes
    // first takes them with it, leaving the records readable.
    GradientMonitor(Module<T>& network, Options options) : options_(std::move(options)) {
        gradscope::detail::check_non_negative("GradientMonitor", "saturation_threshold",
                                              options_.saturation_threshold);
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
    struct Layer {
        std::string name;
        Tensor<T> weight;  // the module's TensorRole::weight parameter, or empty
        Tensor<T> bias;
        Matrix<T> previous_weight;
    };

    void add_layer(const std::string& path, Module<T>& module) {
        const std::size_t index = layers_.size();
        // A selected module without a weight or bias role (an activation, say) is watched for
        // its output and gradient only.
        Layer layer{path,
                    module.own_parameter(TensorRole::weight),
                    module.own_parameter(TensorRole::bias),
                    {}};
        layers_.push_back(std::move(layer));
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
        }
        current_layer_ = -1;
        activation_seen_ = false;
    }

    void close_step() {
        for (std::size_t i = 0; i < layers_.size(); ++i) {
            Layer& layer = layers_[i];
            LayerStats& s = pending_[i];
            measure(Moment::step_end,
                    LayerObservation<T>{
                        .weight = &layer.weight, .bias = &layer.bias, .nonfinite = &s.nonfinite},
                    s);
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
