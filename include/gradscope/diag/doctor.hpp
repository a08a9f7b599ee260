// diag::doctor: one forward and backward pass with a monitor, and a report a person can act on —
// the verdict, its likely cause, and remedies ranked by the gain per layer each is predicted to
// give: from mean-field theory where it applies (plain networks), otherwise by re-measuring the
// network with the change made (the change is undone afterwards).
//
//     const auto diagnosis = diag::doctor<double>(*net, batch,
//         [&](const TensorD& out) { return cross_entropy(out, labels); });
//     std::cout << diagnosis.text();   // or diagnosis.remedies[0], or to_json(diagnosis)
//
// The pass runs as a training step would (the network's own mode; batch norm uses the batch's
// statistics in training mode) without an optimiser step. Everything it changes is put back:
// parameter values and gradients, buffers (running statistics), modules' extra state (Dropout's
// random stream, so training draws the masks it would have drawn), and any remedy tried in place.
//
// With DoctorOptions::sharpness (or a learning rate), the pass also measures the sharpness of the
// loss (diag/sharpness.hpp): lambda_max of its Hessian and of each Linear layer's block, naming
// the sharpest layer. Given the learning rate eta, a gradient that flows well but
// lambda_max > 2/eta, the step size gradient descent is stable below, is a cause of its own
// (Cause::unstable_step_size), with lowering the learning rate as its remedy.
//
// Mean-field theory models Linear layers, activations and (with the causes of their own) batch
// norm and residual blocks, chained by containers. Any other module that owns parameters or does
// its own arithmetic — a LayerNorm with or without its affine part, an RNN's cell, a Dropout in
// training mode (it scales the variance by 1/(1-p)), a leaf module of your own — changes the
// signal in a way the theory does not describe, so such a network gets no prediction from it: the
// diagnosis lists those modules (Diagnosis::unmodelled), names no theory-based cause, and
// predicts the critical initialisation's effect by measuring it instead. A container of your own
// (a module with children and no parameters) is taken to chain its children, as Sequential does.
//
// The diagnosis follows the gradient from the last Linear layer to the first: a network with
// fewer than two, or whose first or last Linear layer receives no gradient from the loss (one
// the loss does not depend on), is a value_error naming it rather than a diagnosis of nothing.
#pragma once

#include "../nn/batchnorm.hpp"
#include "../nn/dropout.hpp"
#include "../nn/init.hpp"
#include "../nn/linear.hpp"
#include "../nn/mlp.hpp"
#include "../nn/residual.hpp"
#include "edge_of_chaos.hpp"
#include "experiment.hpp"
#include "format.hpp"
#include "monitor.hpp"
#include "theory.hpp"

#include <algorithm>
#include <cmath>
#include <concepts>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace gradscope::diag {

enum class Cause {
    none,                  // healthy
    nonfinite,             // NaN or infinity, from `first_nonfinite_module` on
    dead_layer,            // every unit of a layer is dead: nothing flows below it
    dead_units,            // most units are dead
    saturation,            // most units are saturated
    weight_scale,          // the weights are too small or too large for the activation
    batch_norm_explosion,  // batch norm's batch coupling expands the backward map at init
    residual_growth,       // residual blocks add variance: signal and gradient grow with depth
    unstable_step_size,    // lambda_max > 2/eta: gradient descent at this learning rate diverges
    unmodelled_layers,     // none of the above, in a network with modules the theory does not model
};

inline const char* to_string(Cause cause) {
    switch (cause) {
        case Cause::none:
            return "none";
        case Cause::nonfinite:
            return "non-finite values";
        case Cause::dead_layer:
            return "dead layer";
        case Cause::dead_units:
            return "dead units";
        case Cause::saturation:
            return "saturated units";
        case Cause::weight_scale:
            return "weight scale";
        case Cause::batch_norm_explosion:
            return "batch-norm explosion at initialisation";
        case Cause::residual_growth:
            return "residual variance growth";
        case Cause::unstable_step_size:
            return "learning rate beyond the stability limit";
        case Cause::unmodelled_layers:
            return "layers the theory does not model";
    }
    return "unknown";
}

enum class RemedyKind {
    critical_init,        // init::critical(activation) on every Linear layer
    remove_batch_norm,    // a plain network with init::critical(activation) instead
    add_residual,         // residual blocks around the layers (keeping batch norm)
    zero_init_residual,   // each residual branch's last Linear starts at zero
    scale_residual,       // each residual branch scaled by 1 / sqrt(blocks)
    reinitialise_layer,   // He-normal weights and zero biases for one layer
    lower_learning_rate,  // a learning rate below 2 / lambda_max
};

struct Remedy {
    RemedyKind kind = RemedyKind::critical_init;
    std::string action = {};               // what to change, in words and code
    std::string layer = {};                // the layer it concerns (reinitialise_layer), else empty
    double sigma_w2 = not_measured;        // critical_init, remove_batch_norm
    double sigma_b2 = 0.0;                 // critical_init, remove_batch_norm
    double residual_scale = not_measured;  // scale_residual
    double learning_rate = not_measured;   // lower_learning_rate: the rate suggested
    double predicted_gain = not_measured;  // gain per layer after the change
    double predicted_ratio = not_measured;  // |delta_1| / |delta_L| after the change
    Verdict predicted_verdict = Verdict::nonfinite;
    std::string basis = {};  // "mean-field theory" or "measured with the change made"
};

struct LayerFinding {
    std::string layer = {};                  // the Linear module's path
    double output_grad_norm = not_measured;  // |delta_l|
    double local_gain = not_measured;        // |delta_l| / |delta_{l+1}| (not for the last layer)
    double saturated_fraction = not_measured;
    double dead_fraction = not_measured;
    std::size_t nonfinite = 0;
    double sharpness = not_measured;  // lambda_max of the layer's Hessian block (DoctorOptions)
    std::string note = {};            // "dead", "saturated", "non-finite", or empty
};

struct Diagnosis {
    std::size_t depth = 0;        // Linear layers watched
    std::string activation = {};  // the first activation layer's function, "" when none
    bool batch_norm = false, residual = false;
    // Modules mean-field theory does not model (see the header comment), as "path (Type)":
    // nothing here is predicted by the theory when this is not empty.
    std::vector<std::string> unmodelled = {};
    double sigma_w2 = not_measured;  // median over Linear layers of var(W) x fan_in
    double loss = not_measured;
    double ratio_first_last = not_measured;
    double gain_per_layer = not_measured;
    Verdict verdict = Verdict::nonfinite;
    Cause cause = Cause::none;
    std::string evidence = {};                // why that cause, with numbers
    std::string first_nonfinite_module = {};  // the first module whose output was not finite
    std::vector<LayerFinding> layers = {};
    std::vector<Remedy> remedies = {};  // best first
    // DoctorOptions::sharpness: lambda_max of the loss's Hessian, the layer whose block's is
    // largest, and 2/eta when the learning rate was given; else not measured (and empty).
    double sharpness = not_measured;
    std::string sharpest_layer = {};
    double stability_limit = not_measured;

    [[nodiscard]] std::string text() const;
    // The sharpness in a sentence ("" when it was not measured).
    [[nodiscard]] std::string sharpness_text() const;
};

struct DoctorOptions {
    VerdictThresholds thresholds = {};
    double dead_layer = 0.99;  // a layer with at least this fraction of dead units is dead
    double majority = 0.5;     // mean fraction of dead units that names the cause
    // Mean fraction of saturated units (|phi'| < 1e-3) that names the cause. Above one half:
    // ReLU's inactive half counts as saturated by that measure, and is not a fault.
    double saturated = 0.75;
    // Mean-field theory explains the measured gain when they agree this closely.
    double theory_agreement = 0.1;
    // Measure the sharpness of the loss, the network's and each Linear layer's (one Lanczos run
    // each, `sharpness_lanczos`); on too when learning_rate is given.
    bool sharpness = false;
    LanczosOptions sharpness_lanczos{.k = 1, .max_iterations = 50, .tolerance = 1e-4, .seed = 0};
    // The step size eta the network is to be trained with (0: not given): lambda_max > 2/eta
    // names Cause::unstable_step_size when the gradient flows well.
    double learning_rate = 0.0;
};

template <class T>
using LossOf = std::function<Tensor<T>(const Tensor<T>& output)>;

// What diag::doctor accepts as the loss: called with the network's output, it returns the loss
// tensor. Stated here so that a lambda of the wrong signature is refused at the call, by name.
// (clang-format 14 takes the `&,` in these template arguments for an expression.)
// clang-format off
template <class F, class T>
concept LossFunctionFor =
    std::invocable<std::decay_t<F>&, const Tensor<T>&> &&
    std::convertible_to<std::invoke_result_t<std::decay_t<F>&, const Tensor<T>&>, Tensor<T>> &&
    std::copy_constructible<std::decay_t<F>>;
// clang-format on

namespace detail {

// An activation layer as the function type the theory takes.
template <class T>
struct LayerActivation {
    static constexpr const char* name = "activation";
    const ActivationLayer<T>* layer = nullptr;
    [[nodiscard]] double value(double x) const { return layer->scalar_value(x); }
    [[nodiscard]] double derivative(double x, double) const { return layer->scalar_derivative(x); }
};

// Parameter values and gradients, buffer values and modules' extra state (Dropout's random
// stream), put back when the scope ends.
template <class T>
class RestoreState {
public:
    explicit RestoreState(Module<T>& net) {
        for (const auto& p : net.parameters()) {
            params_.push_back({p, Matrix<T>(p.value()), p.has_grad(),
                               p.has_grad() ? Matrix<T>(p.grad()) : Matrix<T>()});
        }
        for (const auto& [name, b] : net.named_buffers())
            buffers_.push_back({b, Matrix<T>(b.value())});
        for (const auto& [path, module] : net.named_modules()) {
            if (auto state = module->extra_state(); !state.empty()) {
                // Read back at once: a module that cannot restore its own state (one of yours
                // that overrides extra_state but not set_extra_state) is a value_error here,
                // before anything changed, not an exception from the destructor.
                module->set_extra_state(state);
                extra_states_.emplace_back(module, std::move(state));
            }
        }
    }
    RestoreState(const RestoreState&) = delete;
    RestoreState& operator=(const RestoreState&) = delete;
    ~RestoreState() { restore(); }

    void restore() {
        for (auto& p : params_) {
            p.tensor.assign(p.value);
            if (p.had_grad) {
                p.tensor.zero_grad();
                p.tensor.mutable_grad() = p.grad;
            } else {
                p.tensor.clear_grad();
            }
        }
        for (auto& b : buffers_) b.tensor.assign(b.value);
        for (auto& [module, state] : extra_states_) module->set_extra_state(state);
    }

private:
    struct Param {
        Tensor<T> tensor;
        Matrix<T> value;
        bool had_grad;
        Matrix<T> grad;
    };
    struct Buffer {
        Tensor<T> tensor;
        Matrix<T> value;
    };
    std::vector<Param> params_;
    std::vector<Buffer> buffers_;
    std::vector<std::pair<Module<T>*, std::string>> extra_states_;
};

struct Measurement {
    GradientProfile profile;
    double loss = not_measured;
    std::string first_nonfinite_module;
};

// One forward and backward pass with a monitor; everything it changes is restored.
template <class T>
Measurement measure_once(Module<T>& net, const Matrix<T>& batch, const LossOf<T>& loss,
                         const std::optional<SharpnessOptions>& sharpness = std::nullopt) {
    const RestoreState<T> restore(net);
    Measurement out;
    ScopedHooks hooks;
    for (const auto& [path, module] : net.named_modules()) {
        hooks.add(module->register_forward_hook(
            [&out, name = module_label(path)](Module<T>&, const Tensor<T>&, const Tensor<T>& y) {
                if (out.first_nonfinite_module.empty() && !y.value().allFinite())
                    out.first_nonfinite_module = name;
            }));
    }
    GradientMonitor<T> monitor(net, {.track_updates = false, .sharpness = sharpness});
    Tensor<T> value = loss(net(Tensor<T>::constant(batch)));
    if (value.shape().size() != 1) {
        throw shape_error("doctor: the loss must be a scalar (1x1), got " +
                          to_string(value.shape()));
    }
    out.loss = static_cast<double>(value.value()(0, 0));
    if (std::isfinite(out.loss)) {
        (void)monitor.observe_loss(value);
        value.backward();
    }
    if (monitor.history().empty()) return out;
    out.profile = monitor.last();
    return out;
}

inline std::string gain_text(double gain) { return format_number(gain, {Notation::fixed, 3}); }
inline std::string ratio_text(double ratio) { return format_number(ratio, table_ratio); }
// "layers.0.norm (LayerNorm)", or the first three of many and how many more.
inline std::string unmodelled_text(const std::vector<std::string>& modules) {
    std::string out;
    const std::size_t shown = std::min<std::size_t>(modules.size(), 3);
    for (std::size_t i = 0; i < shown; ++i) out += (i > 0 ? ", " : "") + modules[i];
    if (modules.size() > shown) out += " and " + std::to_string(modules.size() - shown) + " more";
    return out;
}

// Whether mean-field theory (or, for batch norm and residual blocks, a cause of their own) covers
// what the module does to the signal; see the header comment.
template <class T>
bool modelled_by_theory(const Module<T>& module) {
    if (dynamic_cast<const Linear<T>*>(&module) || dynamic_cast<const BatchNorm1d<T>*>(&module)) {
        return true;
    }
    if (const auto* dropout = dynamic_cast<const Dropout<T>*>(&module)) {
        return !dropout->is_training() || dropout->probability() == 0.0;
    }
    if (!module.own_parameters().empty()) return false;
    return !module.children().empty() || dynamic_cast<const ActivationLayer<T>*>(&module);
}

// diag::doctor, with the loss in a std::function.
template <class T>
Diagnosis run_doctor(Module<T>& net, const Matrix<T>& batch, const LossOf<T>& loss,
                     const DoctorOptions& options) {
    if (batch.rows() < 2 || batch.cols() == 0) {
        throw value_error("doctor: the batch needs at least 2 rows and a column, got " +
                          to_string(Shape{batch.rows(), batch.cols()}));
    }
    if (!loss) throw value_error("doctor: no loss function");
    if (!(options.learning_rate >= 0.0) || !std::isfinite(options.learning_rate)) {
        throw value_error("doctor: learning_rate must be finite and >= 0 (0: not given), got " +
                          format_number(options.learning_rate));
    }
    std::optional<SharpnessOptions> sharpness;
    if (options.sharpness || options.learning_rate > 0.0) {
        sharpness =
            SharpnessOptions{.every = 1, .lanczos = options.sharpness_lanczos, .per_layer = true};
    }

    // What the network is made of.
    std::vector<std::pair<std::string, Linear<T>*>> linears;
    std::vector<std::pair<std::string, Residual<T>*>> blocks;
    const ActivationLayer<T>* activation = nullptr;
    Diagnosis d;
    for (const auto& [path, module] : net.named_modules()) {
        if (auto* l = dynamic_cast<Linear<T>*>(module)) linears.emplace_back(path, l);
        if (auto* r = dynamic_cast<Residual<T>*>(module)) blocks.emplace_back(path, r);
        if (dynamic_cast<BatchNorm1d<T>*>(module)) d.batch_norm = true;
        if (auto* a = dynamic_cast<ActivationLayer<T>*>(module); a && !activation) activation = a;
        if (!detail::modelled_by_theory(*module)) {
            d.unmodelled.push_back(module_label(path) + " (" + module->type_name() + ")");
        }
    }
    if (linears.size() < 2) {
        throw value_error(
            "doctor: the diagnosis follows the gradient from the last Linear layer to the first "
            "and needs two, but " +
            net.type_name() +
            (linears.empty() ? std::string(" has no Linear layer")
                             : " has one (" + linears.front().first + ")"));
    }
    d.residual = !blocks.empty();
    d.activation = activation ? activation->activation_name() : "";
    std::vector<double> scales;
    for (auto& [path, l] : linears) {
        const auto w = l->weight().value();
        scales.push_back(w.template cast<double>().squaredNorm() / static_cast<double>(w.rows()));
    }
    std::nth_element(scales.begin(),
                     scales.begin() + static_cast<std::ptrdiff_t>(scales.size() / 2), scales.end());
    d.sigma_w2 = scales[scales.size() / 2];  // mean square x fan_in = |W|^2 / rows

    const detail::Measurement now = detail::measure_once(net, batch, loss, sharpness);
    d.loss = now.loss;
    d.first_nonfinite_module = now.first_nonfinite_module;
    const auto& stats = now.profile.layers();
    d.depth = stats.size();
    if (d.depth >= 2) {
        d.ratio_first_last = now.profile.ratio_first_last();
        d.gain_per_layer = now.profile.gain_per_layer();
    }
    d.verdict = now.profile.verdict(options.thresholds);
    if (!std::isfinite(d.loss)) d.verdict = Verdict::nonfinite;
    if (d.verdict == Verdict::not_measured) {
        std::string layer = "any Linear layer";
        if (!stats.empty()) {
            const bool first = std::isnan(stats.front().output_grad_norm);
            layer = std::string(first ? "the first" : "the last") + " Linear layer, " +
                    (first ? stats.front() : stats.back()).name + ",";
        }
        throw value_error("doctor: no gradient reached " + layer +
                          " in the backward pass of the loss: the loss does not depend on its "
                          "output, or its forward was not called through the module");
    }

    double saturated = 0.0, dead = 0.0;
    std::size_t counted = 0;
    std::string dead_layer;
    std::size_t sharpest = 0;  // index of d.sharpest_layer in d.layers
    bool nonfinite = !d.first_nonfinite_module.empty() || !std::isfinite(d.loss);
    for (std::size_t l = 0; l < stats.size(); ++l) {
        LayerFinding f{.layer = stats[l].name,
                       .output_grad_norm = stats[l].output_grad_norm,
                       .saturated_fraction = stats[l].saturated_fraction,
                       .dead_fraction = stats[l].dead_fraction,
                       .nonfinite = stats[l].nonfinite,
                       .sharpness = stats[l].sharpness};
        if (l + 1 < stats.size())
            f.local_gain = stats[l].output_grad_norm / stats[l + 1].output_grad_norm;
        if (f.nonfinite > 0) {
            f.note = "non-finite";
            nonfinite = true;
        } else if (std::isfinite(f.dead_fraction) && f.dead_fraction >= options.dead_layer) {
            f.note = "dead";
            if (dead_layer.empty()) dead_layer = f.layer;
        } else if (std::isfinite(f.saturated_fraction) &&
                   f.saturated_fraction >= options.saturated) {
            f.note = "saturated";
        }
        if (std::isfinite(f.saturated_fraction) && std::isfinite(f.dead_fraction)) {
            saturated += f.saturated_fraction;
            dead += f.dead_fraction;
            ++counted;
        }
        if (std::isfinite(f.sharpness) &&
            (d.sharpest_layer.empty() || f.sharpness > d.layers[sharpest].sharpness)) {
            d.sharpest_layer = f.layer;
            sharpest = l;
        }
        d.layers.push_back(std::move(f));
    }
    if (now.profile.sharpness().measured()) d.sharpness = now.profile.sharpness().sharpness;
    if (options.learning_rate > 0.0) d.stability_limit = 2.0 / options.learning_rate;
    const bool beyond_limit = d.sharpness > d.stability_limit;  // false when either is NaN
    if (counted > 0) {
        saturated /= static_cast<double>(counted);
        dead /= static_cast<double>(counted);
    }

    // The theory, where it applies: a plain network (no batch norm, no residual blocks, nothing
    // it does not model).
    const bool plain = !d.batch_norm && !d.residual && d.unmodelled.empty();
    // The activation's edge of chaos without biases, or else, for an activation of the user's
    // own that has none at sigma_b2 = 0, with a small bias variance. (Every built-in with an
    // edge has one at 0; GELU, SiLU and softplus have none at 0.05 either.)
    std::optional<CriticalPoint> edge;
    double edge_sigma_b2 = 0.0;
    if (activation) {
        for (const double sigma_b2 : {0.0, 0.05}) {
            try {
                edge =
                    critical_point(detail::LayerActivation<T>{activation}, {.sigma_b2 = sigma_b2});
                edge_sigma_b2 = sigma_b2;
                break;
            } catch (const error&) {
                // no edge of chaos at this sigma_b2: try the next
            }
        }
    }
    std::optional<double> theory_gain;  // what mean-field theory says of the network as it is
    if (activation && plain && d.depth >= 2) {
        try {
            theory_gain = mean_field(detail::LayerActivation<T>{activation},
                                     static_cast<int>(d.depth), {.sigma_w2 = d.sigma_w2})
                              .gain_per_layer;
        } catch (const error&) {
        }
    }

    // The cause.
    const std::string act = d.activation.empty() ? std::string("the activation") : d.activation;
    auto weight_scale_evidence = [&] {
        std::string text = "the weights have sigma_w2 = " + format_number(d.sigma_w2, table_gain) +
                           " (variance x fan-in)";
        if (edge) {
            text += "; " + act + "'s edge of chaos is at sigma_w2 = " +
                    format_number(edge->sigma_w2, table_gain);
        }
        if (theory_gain) {
            text += "; mean-field theory predicts " + detail::gain_text(*theory_gain) +
                    " per layer, measured " + detail::gain_text(d.gain_per_layer);
        }
        return text;
    };
    if (nonfinite) {
        d.cause = Cause::nonfinite;
        d.evidence =
            d.first_nonfinite_module.empty()
                ? "the gradient has non-finite entries although every forward value is finite"
                : "the first module whose output is not finite is " + d.first_nonfinite_module;
    } else if (!dead_layer.empty()) {
        d.cause = Cause::dead_layer;
        d.evidence =
            "every unit after " + dead_layer +
            " is dead on this batch (phi' = 0 for every sample): no gradient reaches the layers below";
    } else if (d.verdict == Verdict::healthy && beyond_limit) {
        d.cause = Cause::unstable_step_size;
        d.evidence =
            "the sharpness lambda_max = " + format_number(d.sharpness, table_gain) +
            " exceeds 2/eta = " + format_number(d.stability_limit, table_gain) +
            " at learning rate " + format_number(options.learning_rate) +
            ": a gradient-descent step multiplies the error along the sharpest direction "
            "by |1 - eta lambda_max| = " +
            format_number(std::abs(1.0 - options.learning_rate * d.sharpness), table_gain) + " > 1";
        if (!d.sharpest_layer.empty()) {
            d.evidence += "; the sharpest layer is " + d.sharpest_layer +
                          " (its block's lambda_max " +
                          format_number(d.layers[sharpest].sharpness, table_gain) + ")";
        }
    } else if (d.verdict == Verdict::healthy) {
        d.cause = Cause::none;
    } else if (d.batch_norm && d.verdict == Verdict::exploding && !d.residual) {
        d.cause = Cause::batch_norm_explosion;
        d.evidence =
            "batch norm couples the samples of a batch, and at initialisation that makes "
            "the backward map expand by " +
            detail::gain_text(d.gain_per_layer) + " per layer (Yang et al. 2019)";
    } else if (d.residual && d.verdict == Verdict::exploding) {
        d.cause = Cause::residual_growth;
        d.evidence = "each of the " + std::to_string(blocks.size()) +
                     " residual blocks adds its branch's variance to the skip path's, so the "
                     "signal and the gradient grow by " +
                     detail::gain_text(d.gain_per_layer) + " per layer";
    } else if (theory_gain && std::isfinite(d.gain_per_layer) &&
               std::abs(d.gain_per_layer / *theory_gain - 1.0) <= options.theory_agreement) {
        d.cause = Cause::weight_scale;
        d.evidence = weight_scale_evidence();
        if (counted > 0 && saturated >= options.saturated) {
            d.evidence += "; " + format_number(100.0 * saturated, {Notation::fixed, 0}) +
                          "% of the units are saturated";
        }
    } else if (counted > 0 && dead >= options.majority) {
        d.cause = Cause::dead_units;
        d.evidence = format_number(100.0 * dead, {Notation::fixed, 0}) +
                     "% of the units are dead on this batch";
    } else if (counted > 0 && saturated >= options.saturated) {
        d.cause = Cause::saturation;
        d.evidence = format_number(100.0 * saturated, {Notation::fixed, 0}) +
                     "% of the units are saturated (|phi'| < 1e-3) at sigma_w2 = " +
                     format_number(d.sigma_w2, table_gain);
    } else if (!d.unmodelled.empty()) {
        d.cause = Cause::unmodelled_layers;
        d.evidence = "the gradient " +
                     std::string(d.verdict == Verdict::exploding ? "grows" : "shrinks") + " by " +
                     detail::gain_text(d.gain_per_layer) +
                     " per layer with neither dead nor saturated units to explain it, through " +
                     std::to_string(d.unmodelled.size()) +
                     (d.unmodelled.size() == 1 ? " module" : " modules") +
                     " that mean-field theory does not model (the first: " + d.unmodelled.front() +
                     "), so the weights' scale cannot be judged against the theory";
    } else {
        d.cause = Cause::weight_scale;
        d.evidence = weight_scale_evidence();
    }
    if (d.cause == Cause::none) return d;

    // Remedies, each with its predicted gain per layer.
    const std::string layer_range = "layers 1-" + std::to_string(linears.size());
    const std::string critical_code =
        edge ? "init::critical(" + act +
                   (edge_sigma_b2 > 0.0 ? ", {.sigma_b2 = " + format_number(edge_sigma_b2) + "}"
                                        : "") +
                   ") (sigma_w2 = " + format_number(edge->sigma_w2, table_gain) + ")" +
                   // The prediction is for the critical point's biases too: near sigma_b2 = 0 a
                   // small bias variance (PyTorch's default biases) moves q*, and the gain, a lot.
                   (edge_sigma_b2 > 0.0 ? " and biases of variance " +
                                              format_number(edge_sigma_b2) + " (its .bias())"
                                        : " and zero biases")
             : std::string();
    auto predicted_by_theory = [&](Remedy r) {
        const auto mf =
            mean_field(detail::LayerActivation<T>{activation}, static_cast<int>(d.depth),
                       {.sigma_w2 = r.sigma_w2, .sigma_b2 = r.sigma_b2});
        r.predicted_gain = mf.gain_per_layer;
        r.predicted_ratio = mf.ratio_first_last;
        r.predicted_verdict =
            mf.ratio_first_last < options.thresholds.vanishing_ratio   ? Verdict::vanishing
            : mf.ratio_first_last > options.thresholds.exploding_ratio ? Verdict::exploding
                                                                       : Verdict::healthy;
        r.basis = "mean-field theory";
        d.remedies.push_back(std::move(r));
    };
    // A remedy whose gain was measured, on this network with the change made or on a copy.
    auto predicted_by = [&](Remedy r, const detail::Measurement& after, const char* basis) {
        const bool measured = after.profile.size() >= 2;
        r.predicted_gain = measured ? after.profile.gain_per_layer() : not_measured;
        r.predicted_ratio = measured ? after.profile.ratio_first_last() : not_measured;
        r.predicted_verdict = after.profile.verdict(options.thresholds);
        r.basis = basis;
        d.remedies.push_back(std::move(r));
    };
    // Makes a change, measures, undoes it (RestoreState puts the parameters back).
    auto predicted_by_measuring = [&](Remedy r, const std::function<void()>& change) {
        const detail::RestoreState<T> undo(net);
        change();
        predicted_by(std::move(r), detail::measure_once(net, batch, loss),
                     "measured with the change made");
    };
    if (d.cause == Cause::unstable_step_size) {
        // Half the limit: on a quadratic, eta = 1 / lambda_max is the fastest along the sharpest
        // direction, and it leaves room for the sharpness to rise during training.
        const double rate = 1.0 / d.sharpness;
        d.remedies.push_back(Remedy{
            .kind = RemedyKind::lower_learning_rate,
            .action = "lower the learning rate from " + format_number(options.learning_rate) +
                      " to at most 2/lambda_max = " + format_number(2.0 / d.sharpness) +
                      ", e.g. 1/lambda_max = " + format_number(rate),
            .learning_rate = rate,
            .predicted_gain = d.gain_per_layer,
            .predicted_ratio = d.ratio_first_last,
            .predicted_verdict = d.verdict,
            .basis = "the stability limit 2/lambda_max of gradient descent (the gradient's "
                     "flow is unchanged)"});
        return d;  // the gradient flows well: nothing else to change
    }
    if (d.cause == Cause::dead_layer) {
        // The Linear that feeds the dead units: the watched layer itself.
        for (auto& [path, l] : linears) {
            if (module_label(path) != dead_layer) continue;  // dead_layer is a monitor's name
            Linear<T>* layer = l;
            predicted_by_measuring(
                Remedy{.kind = RemedyKind::reinitialise_layer,
                       .action = "re-initialise " + path +
                                 " with init::he_normal() weights and zero biases",
                       .layer = path},
                [&] {
                    Rng rng(0x0dead);
                    init::fill_weight(layer->weight().data(), init::he_normal(), rng);
                    if (layer->has_bias()) layer->bias().data().setZero();
                });
        }
    }
    const bool init_can_help = d.cause == Cause::weight_scale || d.cause == Cause::saturation ||
                               d.cause == Cause::dead_units || d.cause == Cause::unmodelled_layers;
    if (edge && activation && init_can_help) {
        const Remedy critical{.kind = RemedyKind::critical_init,
                              .action = "switch " + layer_range + " to " + critical_code,
                              .sigma_w2 = edge->sigma_w2,
                              .sigma_b2 = edge_sigma_b2};
        if (plain) {
            predicted_by_theory(critical);
        } else if (!d.batch_norm && !d.residual) {
            // Measured, and offered only if it at least halves the gain's distance from 1 (on a
            // log scale): with a layer norm after each Linear, say, the weights' scale does not
            // matter at all, and a fresh draw of the weights moves the gain only by chance.
            predicted_by_measuring(critical, [&] {
                Rng rng(0xc417);
                const auto weights = gaussian_init<T>(edge->sigma_w2);
                const auto biases = init::normal(0.0, std::sqrt(edge_sigma_b2));
                for (auto& [path, l] : linears) {
                    init::fill_weight(l->weight().data(), weights, rng);
                    if (l->has_bias()) init::fill_weight(l->bias().data(), biases, rng);
                }
            });
            const double now = std::abs(std::log(d.gain_per_layer));
            const double after = std::abs(std::log(d.remedies.back().predicted_gain));
            if (!(after <= 0.5 * now)) d.remedies.pop_back();
        }
    }
    if (edge && activation && d.batch_norm && !d.residual && d.unmodelled.empty() &&
        d.cause != Cause::dead_layer) {
        predicted_by_theory(Remedy{
            .kind = RemedyKind::remove_batch_norm,
            .action = "remove batch norm and initialise " + layer_range + " with " + critical_code,
            .sigma_w2 = edge->sigma_w2,
            .sigma_b2 = edge_sigma_b2});
    }
    if (auto* mlp_net = dynamic_cast<MLP<T>*>(&net);
        mlp_net && d.batch_norm && !d.residual && d.cause != Cause::dead_layer) {
        auto changed = mlp_net->options();
        changed.residual = true;
        changed.zero_init_residual = true;
        auto copy = std::make_shared<MLP<T>>(changed);
        copy->train(net.is_training());
        predicted_by(Remedy{.kind = RemedyKind::add_residual,
                            .action = "add residual blocks with zero-initialised branches "
                                      "(mlp option .residual = true, .zero_init_residual = true)"},
                     detail::measure_once(*copy, batch, loss),
                     "measured on a copy with the change made");
    }
    if (d.residual && d.cause != Cause::dead_layer) {
        // Each branch's last Linear: scaling it scales the branch (it ends the branch in mlp()).
        std::vector<Linear<T>*> last_of_branch;
        for (auto& [block_path, block] : blocks) {
            Linear<T>* last = nullptr;
            for (auto& [path, l] : linears) {
                if (path.rfind(block_path + ".branch.", 0) == 0) last = l;
            }
            if (last) last_of_branch.push_back(last);
        }
        if (!last_of_branch.empty()) {
            predicted_by_measuring(
                Remedy{.kind = RemedyKind::zero_init_residual,
                       .action = "zero-initialise each residual branch's last layer "
                                 "(mlp option .zero_init_residual = true)"},
                [&] {
                    for (auto* l : last_of_branch) {
                        l->weight().data().setZero();
                        if (l->has_bias()) l->bias().data().setZero();
                    }
                });
            const double scale = 1.0 / std::sqrt(static_cast<double>(last_of_branch.size()));
            predicted_by_measuring(Remedy{.kind = RemedyKind::scale_residual,
                                          .action = "scale each residual branch by 1/sqrt(" +
                                                    std::to_string(last_of_branch.size()) +
                                                    ") (mlp option .residual_scale = " +
                                                    format_number(scale, table_gain) + ")",
                                          .residual_scale = scale},
                                   [&] {
                                       for (auto* l : last_of_branch) {
                                           l->weight().data() *= static_cast<T>(scale);
                                           if (l->has_bias())
                                               l->bias().data() *= static_cast<T>(scale);
                                       }
                                   });
        }
    }

    // Best first: those predicted healthy, then by how close the gain per layer is to 1.
    auto distance = [](const Remedy& r) {
        return std::isfinite(r.predicted_gain) && r.predicted_gain > 0.0
                   ? std::abs(std::log(r.predicted_gain))
                   : std::numeric_limits<double>::infinity();
    };
    std::stable_sort(d.remedies.begin(), d.remedies.end(), [&](const Remedy& a, const Remedy& b) {
        const bool ha = a.predicted_verdict == Verdict::healthy;
        const bool hb = b.predicted_verdict == Verdict::healthy;
        if (ha != hb) return ha;
        return distance(a) < distance(b);
    });
    return d;
}

}  // namespace detail

// The doctor: diagnoses the gradient of `loss(net(batch))` at the network's current weights.
// `loss` maps the network's output to a [1x1] loss (a lambda over the batch's labels, say).
template <class T, LossFunctionFor<T> F>
Diagnosis doctor(Module<T>& net, const std::type_identity_t<Matrix<T>>& batch, F&& loss,
                 const DoctorOptions& options = {}) {
    return detail::run_doctor(net, batch, LossOf<T>(std::forward<F>(loss)), options);
}

// The same for a batch held as a tensor: its value is the batch (nothing flows back into it).
template <class T, LossFunctionFor<T> F>
Diagnosis doctor(Module<T>& net, const Tensor<T>& batch, F&& loss,
                 const DoctorOptions& options = {}) {
    return detail::run_doctor(net, Matrix<T>(batch.value()), LossOf<T>(std::forward<F>(loss)),
                              options);
}

inline std::string Diagnosis::sharpness_text() const {
    if (!std::isfinite(sharpness)) return {};
    std::string out = "sharpness lambda_max " + format_number(sharpness, table_gain);
    if (std::isfinite(stability_limit)) {
        out += (sharpness > stability_limit ? " > " : " <= ") + std::string("2/eta = ") +
               format_number(stability_limit, table_gain);
    }
    for (const auto& l : layers) {
        if (l.layer == sharpest_layer && !sharpest_layer.empty()) {
            out += "; sharpest layer " + l.layer + " (block lambda_max " +
                   format_number(l.sharpness, table_gain) + ")";
            break;
        }
    }
    return out;
}

// `std::cout << diag::doctor(...)` prints text().
inline std::ostream& operator<<(std::ostream& out, const Diagnosis& diagnosis) {
    return out << diagnosis.text();
}

inline std::string Diagnosis::text() const {
    std::string out = "gradscope doctor: " + std::to_string(depth) + " Linear layers" +
                      (activation.empty() ? "" : ", " + activation) +
                      (batch_norm ? ", batch norm" : "") + (residual ? ", residual blocks" : "") +
                      ", sigma_w2 " + format_number(sigma_w2, table_gain) + "\n";
    out += "  loss " + format_number(loss, table_gain) +
           "; |delta_1| / |delta_L| = " + detail::ratio_text(ratio_first_last) + " (" +
           to_string(verdict) + "), gain " + detail::gain_text(gain_per_layer) + " per layer\n";
    if (!unmodelled.empty()) {
        out += "  not modelled by mean-field theory: " + detail::unmodelled_text(unmodelled) + "\n";
    }
    if (std::isfinite(sharpness)) out += "  " + sharpness_text() + "\n";
    if (cause == Cause::none) return out + "  healthy: nothing to change\n";
    out += "  cause: " + std::string(to_string(cause)) + ": " + evidence + "\n";
    std::string noted;
    for (const auto& l : layers) {
        if (!l.note.empty()) noted += "    " + l.layer + ": " + l.note + "\n";
    }
    if (!noted.empty()) out += "  layers:\n" + noted;
    if (remedies.empty()) return out + "  no remedy to suggest\n";
    out += "  remedies, best first:\n";
    for (std::size_t i = 0; i < remedies.size(); ++i) {
        const auto& r = remedies[i];
        out += "    " + std::to_string(i + 1) + ". " + r.action + ": predicted gain " +
               detail::gain_text(r.predicted_gain) + "/layer, ratio " +
               detail::ratio_text(r.predicted_ratio) + " (" + to_string(r.predicted_verdict) +
               "; now " + detail::gain_text(gain_per_layer) + "/layer), " + r.basis + "\n";
    }
    return out;
}

}  // namespace gradscope::diag
