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

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
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
        if (!(options_.saturation_threshold >= 0.0) || !std::isfinite(options_.saturation_threshold)) {
            throw value_error("GradientMonitor: saturation_threshold must be finite and >= 0, got " +
                              std::to_string(options_.saturation_threshold));
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
            throw value_error("GradientMonitor: no layer to watch in " + network.type_name() +
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
            throw value_error("GradientMonitor: no step recorded yet (run forward and backward first)");
        }
        return history_.back();
    }

    void clear() { history_.clear(); }

private:
    struct Layer {
        std::string name;
        Tensor<T> weight;  // may be empty for a selected module without a "weight"
        Tensor<T> bias;
        Matrix<T> previous_weight;
    };

    // Norms are summed over chunks: each chunk's sum of squares is taken in T (for float,
    // vectorised), and only if that sum overflowed, or is so small that squares may have
    // underflowed, again in double. A float gradient of 1e30 must not overflow, and one of 1e-30
    // (what a vanishing-gradient study measures) must not vanish; squaring everything in double
    // would be safe too but does not vectorise, and the monitor takes several norms of every
    // watched layer per step. Chunks of 1024 keep float rounding below ~1e-6 relative.
    static constexpr Index chunk = 1024;
    using ChunkMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

    template <class Chunk>
    static double chunk_sum_of_squares(const Chunk& c) {
        if constexpr (std::is_same_v<T, float>) {
            // 1e-24: squares that underflowed (each < 1.2e-38, at most 1024 of them) would
            // change such a sum by less than 1e-11 of itself.
            const float fast = c.square().sum();
            if (std::isfinite(fast) && fast >= 1e-24f) return static_cast<double>(fast);
        }
        return c.template cast<double>().square().sum();
    }

    // The Euclidean norm of a contiguously stored matrix (a Matrix or a view of one).
    template <class D>
    static double norm_of(const Eigen::MatrixBase<D>& matrix) {
        const D& m = matrix.derived();
        double sum = 0.0;
        for (Index start = 0; start < m.size(); start += chunk) {
            sum += chunk_sum_of_squares(ChunkMap(m.data() + start, std::min(chunk, m.size() - start)));
        }
        return std::sqrt(sum);
    }

    // |current - previous|, then previous = current, in one pass over both.
    static double norm_of_change_and_copy(ConstMatrixView<T> current, Matrix<T>& previous) {
        double sum = 0.0;
        for (Index start = 0; start < current.size(); start += chunk) {
            const Index length = std::min(chunk, current.size() - start);
            const ChunkMap now(current.data() + start, length);
            Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> before(previous.data() + start, length);
            sum += chunk_sum_of_squares(now - before);
            before = now;
        }
        return std::sqrt(sum);
    }

    template <class D>
    static std::size_t count_nonfinite(const Eigen::MatrixBase<D>& m) {
        return static_cast<std::size_t>((!m.array().isFinite()).count());
    }

    // A norm, and how many entries are NaN or infinite. Squares of finite floats summed in
    // double cannot overflow, so a finite norm means no such entry: the count (a second pass
    // over the matrix) is only taken when the norm is not finite.
    template <class D>
    static double norm_counting_nonfinite(const Eigen::MatrixBase<D>& m, std::size_t& nonfinite) {
        const double norm = norm_of(m);
        if (!std::isfinite(norm)) nonfinite += count_nonfinite(m);
        return norm;
    }

    void add_layer(const std::string& path, Module<T>& module) {
        const std::size_t index = layers_.size();
        Layer layer{path, {}, {}, {}};
        for (const auto& [name, p] : module.own_parameters()) {
            if (name == "weight") layer.weight = p;
            if (name == "bias") layer.bias = p;
        }
        layers_.push_back(std::move(layer));
        hooks_.add(module.register_forward_hook(
            [this, index](Module<T>&, const Tensor<T>&, const Tensor<T>& out) {
                LayerStats& s = pending_[index];
                s.activation_norm = norm_of(out.value());
                current_layer_ = static_cast<std::ptrdiff_t>(index);
                activation_seen_ = false;
            }));
        hooks_.add(module.register_output_grad_hook([this, index](Module<T>&, MatrixView<T> g) {
            LayerStats& s = pending_[index];
            s.output_grad_norm = norm_counting_nonfinite(g, s.nonfinite);
        }));
    }

    // The first activation after a watched layer stands for that layer's output h_l.
    void watch_activation(ActivationLayer<T>& act) {
        hooks_.add(act.register_forward_hook(
            [this, &act](Module<T>&, const Tensor<T>& in, const Tensor<T>& out) {
                if (current_layer_ < 0 || activation_seen_) return;
                activation_seen_ = true;
                LayerStats& s = pending_[static_cast<std::size_t>(current_layer_)];
                s.activation_norm = norm_of(out.value());
                derivative_.resize(in.rows(), in.cols());
                act.derivative(in.value(), out.value(), MatrixView<T>(derivative_.data(), in.rows(), in.cols()));
                if (derivative_.size() == 0) return;  // an empty batch: nothing to count
                const T threshold = static_cast<T>(options_.saturation_threshold);
                const Index total = derivative_.size();
                s.saturated_fraction = total == 0 ? 0.0
                    : static_cast<double>((derivative_.array().abs() < threshold).count()) / static_cast<double>(total);
                // A unit is dead when its derivative is zero for the whole batch. One pass down
                // the rows (Eigen vectorises a column-wise reduction of a row-major matrix
                // across the columns); testing column by column would stride through memory.
                column_peak_ = derivative_.array().abs().colwise().maxCoeff().matrix();
                const Index dead = (column_peak_.array() == T(0)).count();
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
                const ConstMatrixView<T> w = layer.weight.value();
                s.weight_norm = norm_of(w);
                if (layer.weight.has_grad()) {
                    s.weight_grad_norm = norm_counting_nonfinite(layer.weight.grad(), s.nonfinite);
                }
                if (options_.track_updates) record_update(layer, i, w);
            }
            if (layer.bias.defined() && layer.bias.has_grad()) {
                s.bias_grad_norm = norm_counting_nonfinite(layer.bias.grad(), s.nonfinite);
            }
        }
        history_.emplace_back(pending_, steps_seen_++);
        if (options_.keep_last > 0 && history_.size() > options_.keep_last) history_.pop_front();
        reset_pending();
    }

    // The update between the previous backward and this one belongs to the previous step's
    // record: |W_now - W_before| / |W_before|, where |W_before| is that record's weight norm.
    void record_update(Layer& layer, std::size_t index, ConstMatrixView<T> w) {
        if (!history_.empty() && layer.previous_weight.size() == w.size()) {
            LayerStats& previous = history_.back().layers()[index];
            const double change = norm_of_change_and_copy(w, layer.previous_weight);
            previous.update_ratio = previous.weight_norm > 0 ? change / previous.weight_norm : not_measured;
        } else {
            layer.previous_weight = w;
        }
    }

    Options options_;
    std::vector<Layer> layers_;

    std::vector<LayerStats> pending_;
    std::deque<GradientProfile> history_;
    std::size_t steps_seen_ = 0;
    std::ptrdiff_t current_layer_ = -1;
    bool activation_seen_ = false;
    Matrix<T> derivative_;
    Matrix<T> column_peak_;  // per unit, the largest |phi'| over the batch
    // Last, so that it is destroyed first: no hook can run on a half-destroyed monitor.
    ScopedHooks hooks_;
};

}  // namespace gradscope::diag
