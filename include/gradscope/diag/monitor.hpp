// GradientMonitor: attaches to a network through the public module hooks and records, for
// every layer and every backward pass, what gradient-flow questions need (see LayerStats).
//
// Layers are the network's Linear modules, found by walking the module tree (or those a
// selector picks). A step is one backward pass: forward hooks note activations, output-gradient
// hooks note |delta_l| during backward, and the network's own parameter-gradient hook closes the
// step once backward has finished. Detaching removes every hook, after which the monitor costs
// nothing. Call the network itself (not its layers one by one) so that its hook fires.
#pragma once

#include "../nn/activation.hpp"
#include "../nn/linear.hpp"
#include "../nn/module.hpp"
#include "profile.hpp"

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

    GradientMonitor(Module<T>& network, Options options) : options_(std::move(options)) {
        for (auto& [path, module] : network.named_modules()) {
            const bool chosen = options_.select ? options_.select(path, *module)
                                                : dynamic_cast<Linear<T>*>(module) != nullptr;
            if (chosen) add_layer(path, *module);
            if (auto* act = dynamic_cast<ActivationLayer<T>*>(module)) watch_activation(*act);
        }
        if (layers_.empty()) {
            throw value_error("GradientMonitor: no layer to watch in " + network.type_name());
        }
        handles_.push_back(network.register_param_grad_hook([this](Module<T>&) { close_step(); }));
        pending_.resize(layers_.size());
        reset_pending();
    }

    GradientMonitor(const GradientMonitor&) = delete;
    GradientMonitor& operator=(const GradientMonitor&) = delete;
    ~GradientMonitor() { detach(); }

    // Removes every hook; the records stay readable.
    void detach() {
        for (auto& h : handles_) h.remove();
        handles_.clear();
    }
    [[nodiscard]] bool attached() const noexcept { return !handles_.empty(); }

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
            throw value_error("GradientMonitor: no step recorded yet (run forward and backward first)");
        }
        return history_.back();
    }

    void clear() { history_.clear(); }

private:
    struct Layer {
        std::string name;
        Module<T>* module;
        Tensor<T> weight;  // may be empty for a selected module without a "weight"
        Tensor<T> bias;
        Matrix<T> previous_weight;
    };

    // In double, so that a float gradient of 1e30 does not overflow its norm.
    template <class D>
    static double norm_of(const Eigen::MatrixBase<D>& m) {
        return m.template cast<double>().norm();
    }

    template <class D>
    static std::size_t count_nonfinite(const Eigen::MatrixBase<D>& m) {
        return static_cast<std::size_t>((!m.array().isFinite()).count());
    }

    void add_layer(const std::string& path, Module<T>& module) {
        const std::size_t index = layers_.size();
        Layer layer{path, &module, {}, {}, {}};
        for (const auto& [name, p] : module.own_parameters()) {
            if (name == "weight") layer.weight = p;
            if (name == "bias") layer.bias = p;
        }
        layers_.push_back(std::move(layer));
        handles_.push_back(module.register_forward_hook(
            [this, index](Module<T>&, const Tensor<T>&, const Tensor<T>& out) {
                LayerStats& s = pending_[index];
                s.activation_norm = norm_of(out.value());
                current_layer_ = static_cast<std::ptrdiff_t>(index);
                activation_seen_ = false;
            }));
        handles_.push_back(module.register_output_grad_hook([this, index](Module<T>&, MatrixView<T> g) {
            LayerStats& s = pending_[index];
            s.output_grad_norm = norm_of(g);
            s.nonfinite += count_nonfinite(g);
        }));
    }

    // The first activation after a watched layer stands for that layer's output h_l.
    void watch_activation(ActivationLayer<T>& act) {
        handles_.push_back(act.register_forward_hook(
            [this, &act](Module<T>&, const Tensor<T>& in, const Tensor<T>& out) {
                if (current_layer_ < 0 || activation_seen_) return;
                activation_seen_ = true;
                LayerStats& s = pending_[static_cast<std::size_t>(current_layer_)];
                s.activation_norm = norm_of(out.value());
                derivative_.resize(in.rows(), in.cols());
                act.derivative(in.value(), out.value(), MatrixView<T>(derivative_.data(), in.rows(), in.cols()));
                const T threshold = static_cast<T>(options_.saturation_threshold);
                const Index total = derivative_.size();
                s.saturated_fraction = total == 0 ? 0.0
                    : static_cast<double>((derivative_.array().abs() < threshold).count()) / static_cast<double>(total);
                Index dead = 0;
                for (Index j = 0; j < derivative_.cols(); ++j) dead += (derivative_.col(j).array() == T(0)).all();
                s.dead_fraction = derivative_.cols() == 0 ? 0.0
                    : static_cast<double>(dead) / static_cast<double>(derivative_.cols());
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
            if (layer.weight.defined()) {
                s.weight_norm = norm_of(layer.weight.value());
                if (layer.weight.has_grad()) {
                    s.weight_grad_norm = norm_of(layer.weight.grad());
                    s.nonfinite += count_nonfinite(layer.weight.grad());
                }
                if (options_.track_updates) {
                    // The update between the previous backward and this one belongs to the
                    // previous step's record.
                    if (!history_.empty() && layer.previous_weight.size() == layer.weight.value().size()) {
                        const double before = static_cast<double>(layer.previous_weight.template cast<double>().norm());
                        const double change = static_cast<double>(
                            (layer.weight.value() - layer.previous_weight).template cast<double>().norm());
                        history_.back().layers()[i].update_ratio = before > 0 ? change / before : not_measured;
                    }
                    layer.previous_weight = layer.weight.value();
                }
            }
            if (layer.bias.defined() && layer.bias.has_grad()) {
                s.bias_grad_norm = norm_of(layer.bias.grad());
                s.nonfinite += count_nonfinite(layer.bias.grad());
            }
        }
        history_.emplace_back(pending_, steps_seen_++);
        if (options_.keep_last > 0 && history_.size() > options_.keep_last) history_.pop_front();
        reset_pending();
    }

    Options options_;
    std::vector<Layer> layers_;
    std::vector<ModuleHookHandle> handles_;
    std::vector<LayerStats> pending_;
    std::deque<GradientProfile> history_;
    std::size_t steps_seen_ = 0;
    std::ptrdiff_t current_layer_ = -1;
    bool activation_seen_ = false;
    Matrix<T> derivative_;
};

}  // namespace gradscope::diag
