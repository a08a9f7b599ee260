// The per-layer statistics a GradientMonitor records, each declared once.
//
// Note [One place per statistic]
// Every per-layer number of a step is one entry of layer_statistics<T>(): its name (the CSV
// column and the JSON key), what it means, the moment of the step at which it can be measured,
// the LayerStats field it fills, and the function that measures it from a LayerObservation.
// The monitor's hooks only gather observations and call the entries of that moment; the
// history writers (diag/history.hpp) and the reports iterate the list. Adding a statistic is a
// field in LayerStats (profile.hpp) and an entry here.
#pragma once

#include "../core/matrix.hpp"
#include "../core/tensor.hpp"
#include "norms.hpp"
#include "profile.hpp"

#include <cstddef>
#include <span>

namespace gradscope::diag {

// When, within one step, a statistic's inputs exist. Buffers live only that long, so a
// statistic is measured then and there rather than from copies at the end of the step.
enum class Moment {
    forward,     // the layer's output z_l has been computed
    activation,  // the first activation after the layer has run: h_l and phi'(z_l). For a
                 // layer no activation follows (the output layer), measured at `forward` with
                 // h_l = z_l and no derivative.
    backward,    // dL/dz_l has arrived
    step_end,    // backward has finished: the parameters' gradients are in place
    update,      // the next step's end: the weights after the optimiser's update. The value
                 // belongs to the step whose gradient made the update.
};

// What the monitor saw of one layer at one moment; only the moment's fields are set.
template <class T>
struct LayerObservation {
    ConstMatrixView<T> output{nullptr, 0, 0};         // forward: z_l
    ConstMatrixView<T> activation{nullptr, 0, 0};     // activation: h_l (z_l when none follows)
    ConstMatrixView<T> derivative{nullptr, 0, 0};     // activation: phi'(z_l); empty when none
    ConstMatrixView<T> grad_output{nullptr, 0, 0};    // backward: dL/dz_l
    const Tensor<T>* weight = nullptr;                // step_end, update: undefined if none
    const Tensor<T>* bias = nullptr;                  // step_end: undefined if none
    ConstMatrixView<T> weight_before{nullptr, 0, 0};  // update: the weight a step earlier
    double weight_norm_before = not_measured;         // update: its norm
    double saturation_threshold = 1e-3;               // GradientMonitor::Options
    std::size_t* nonfinite = nullptr;                 // count NaN/inf entries of gradients here
};

template <class T>
struct LayerStatistic {
    const char* name;
    const char* meaning;
    Moment moment;
    double LayerStats::*field;
    double (*measure)(const LayerObservation<T>&);
};

namespace detail {

template <class T>
double grad_norm(const Tensor<T>* t, std::size_t* nonfinite) {
    if (t == nullptr || !t->defined() || !t->has_grad()) return not_measured;
    std::size_t ignored = 0;
    return robust_norm_counting_nonfinite(t->grad(), nonfinite != nullptr ? *nonfinite : ignored);
}

// The fraction of entries of phi'(z) below the threshold in magnitude.
template <class T>
double saturated_fraction(const LayerObservation<T>& o) {
    if (o.derivative.size() == 0) return not_measured;
    const T threshold = static_cast<T>(o.saturation_threshold);
    return static_cast<double>((o.derivative.array().abs() < threshold).count()) /
           static_cast<double>(o.derivative.size());
}

// The fraction of units whose derivative is zero for every sample of the batch. One pass down
// the rows: Eigen vectorises a column-wise reduction of a row-major matrix across the columns.
template <class T>
double dead_fraction(const LayerObservation<T>& o) {
    if (o.derivative.size() == 0) return not_measured;
    thread_local Eigen::Array<T, 1, Eigen::Dynamic> peak;  // reused: no allocation per step
    peak = o.derivative.array().abs().colwise().maxCoeff();
    return static_cast<double>((peak == T(0)).count()) / static_cast<double>(o.derivative.cols());
}

}  // namespace detail

template <class T>
std::span<const LayerStatistic<T>> layer_statistics() {
    static const LayerStatistic<T> list[] = {
        {"output_grad_norm", "|dL/dz_l|: the backpropagated error reaching the layer's output",
         Moment::backward, &LayerStats::output_grad_norm,
         [](const LayerObservation<T>& o) {
             std::size_t ignored = 0;
             return robust_norm_counting_nonfinite(o.grad_output,
                                                   o.nonfinite != nullptr ? *o.nonfinite : ignored);
         }},
        {"weight_grad_norm", "|dL/dW_l|", Moment::step_end, &LayerStats::weight_grad_norm,
         [](const LayerObservation<T>& o) { return detail::grad_norm(o.weight, o.nonfinite); }},
        {"bias_grad_norm", "|dL/db_l|", Moment::step_end, &LayerStats::bias_grad_norm,
         [](const LayerObservation<T>& o) { return detail::grad_norm(o.bias, o.nonfinite); }},
        {"activation_norm", "|h_l|: the first activation after the layer (z_l if none follows)",
         Moment::activation, &LayerStats::activation_norm,
         [](const LayerObservation<T>& o) { return robust_norm(o.activation); }},
        {"weight_norm", "|W_l|", Moment::step_end, &LayerStats::weight_norm,
         [](const LayerObservation<T>& o) {
             return o.weight != nullptr && o.weight->defined() ? robust_norm(o.weight->value())
                                                               : not_measured;
         }},
        {"update_ratio", "|W_after - W_before| / |W_before| of the update that followed the step",
         Moment::update, &LayerStats::update_ratio,
         [](const LayerObservation<T>& o) {
             if (!(o.weight_norm_before > 0.0)) return not_measured;
             return robust_distance<T>(o.weight->value(), o.weight_before) / o.weight_norm_before;
         }},
        {"saturated_fraction", "the fraction of phi'(z_l) entries below the saturation threshold",
         Moment::activation, &LayerStats::saturated_fraction, &detail::saturated_fraction<T>},
        {"dead_fraction", "the fraction of units whose phi'(z_l) is 0 for every sample",
         Moment::activation, &LayerStats::dead_fraction, &detail::dead_fraction<T>},
    };
    return list;
}

// Measures every statistic of `moment` into `stats`.
template <class T>
void measure(Moment moment, const LayerObservation<T>& observation, LayerStats& stats) {
    for (const LayerStatistic<T>& s : layer_statistics<T>()) {
        if (s.moment == moment) stats.*s.field = s.measure(observation);
    }
}

}  // namespace gradscope::diag
