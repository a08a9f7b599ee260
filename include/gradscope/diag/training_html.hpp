// A training run as one self-contained HTML page (html_report.hpp), from a GradientMonitor's
// history: where in the network and when in training the gradient misbehaved.
//
//   1. the verdict at every recorded step, as a strip (healthy / vanishing / exploding /
//      non-finite; grey where it was not measured);
//   2. a heat map of layers x steps coloured by log10 |delta_l| / |delta_L| in the sweep's
//      verdict bands, each cell's exact norm on hover;
//   3. |delta_l| of the first, middle and last layer over the steps, and the loss and accuracy
//      curves the caller passes;
//   4. the update-to-weight ratio per layer and step, in bands around the usual 1e-3;
//   5. dead and saturated unit fractions per layer and step, and a table of the steps where a
//      gradient had NaN or infinite entries, naming the layer;
//   and, when the monitor recorded per-sample statistics, the gradient noise scale against the
//   batch size, Cockpit's batch-size tests, the GSNR and the spread of the samples' gradient
//   norms over the steps; and when it measured sharpness (GradientMonitor::Options::sharpness),
//   lambda_max over the steps against 2/eta (given the learning rate) and each layer's block
//   sharpness per step.
// A panel whose statistic was not measured (the monitor's track_updates off, no activation
// after a layer) says so instead of drawing an empty map. Runs longer than max_columns steps
// are binned: a column stands for consecutive steps, the geometric mean of their norms, the
// mean of their fractions and the worst of their verdicts.
//
//   diag::training_html(monitor.history(), {.title = "...", .curves = {loss, accuracy}})
//       .save("report.html");
#pragma once

#include "html_report.hpp"
#include "profile.hpp"
#include "svg.hpp"
#include "svg_heatmap.hpp"
#include "sweep_html.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <vector>

namespace gradscope::diag {

struct TrainingHtmlOptions {
    std::string title = "gradscope training run";
    std::string description = {};  // what was trained, and how
    VerdictThresholds thresholds = {};
    // Curves drawn next to the gradient norms, e.g. {"train loss", {(step, loss), ...}}; each
    // vector is one plot (loss in one, accuracy in another).
    std::vector<std::vector<SvgSeries>> curves = {};
    std::vector<std::string> curve_titles = {};  // one per entry of curves
    std::size_t max_columns = 120;               // heat-map columns; more steps are binned
    // The step size eta of gradient descent, when there is one: the sharpness plot then draws
    // 2/eta, the stability limit. 0: not drawn.
    double learning_rate = 0.0;
};

namespace detail {

// Consecutive runs of profiles, at most `columns` of them, each a column of the heat maps.
struct StepBins {
    std::vector<std::size_t> begin;  // index into the history of each bin's first profile
    std::size_t count(std::size_t bin, std::size_t total) const {
        return (bin + 1 < begin.size() ? begin[bin + 1] : total) - begin[bin];
    }
};

inline StepBins step_bins(std::size_t steps, std::size_t columns) {
    StepBins bins;
    const std::size_t n = std::min(steps, std::max<std::size_t>(1, columns));
    for (std::size_t b = 0; b < n; ++b) bins.begin.push_back(b * steps / n);
    return bins;
}

// One statistic of a layer, combined over a bin of steps: the geometric mean for norms and
// ratios (they span orders of magnitude), the arithmetic mean for fractions. NaN if no step of
// the bin measured it.
inline double combine(const std::vector<double>& values, bool geometric) {
    double sum = 0.0;
    std::size_t n = 0;
    for (const double v : values) {
        if (!std::isfinite(v) || (geometric && v <= 0.0)) continue;
        sum += geometric ? std::log(v) : v;
        ++n;
    }
    if (n == 0) return not_measured;
    const double mean = sum / static_cast<double>(n);
    return geometric ? std::exp(mean) : mean;
}

inline int severity(Verdict v) {
    switch (v) {
        case Verdict::healthy:
            return 0;
        case Verdict::vanishing:
        case Verdict::exploding:
            return 1;
        case Verdict::nonfinite:
            return 2;
        case Verdict::not_measured:
            return -1;  // any measured step of the bin says more
    }
    return 2;
}

// The frame every training heat map shares: rows = layers (the input side at the bottom),
// columns = the bins of steps, labelled with their first step.
inline SvgHeatMap training_grid(const std::deque<GradientProfile>& history, const StepBins& bins,
                                std::string title, std::string value_label) {
    const std::size_t layers = history.front().size(), columns = bins.begin.size();
    SvgHeatMap map{.values = std::vector<double>(layers * columns, not_measured),
                   .title = std::move(title),
                   .x_label = "step",
                   .y_label = "",
                   .value_label = std::move(value_label),
                   .cell_texts = std::vector<std::string>(layers * columns),
                   .cell_titles = std::vector<std::string>(layers * columns),
                   .width = 1200,
                   .height = 150 + std::clamp(18.0 * static_cast<double>(layers), 90.0, 700.0)};
    for (std::size_t i = 0; i <= columns; ++i) map.x_edges.push_back(static_cast<double>(i));
    for (std::size_t j = 0; j <= layers; ++j) map.y_edges.push_back(static_cast<double>(j));
    // Label about a dozen columns; the others' steps are in their hover titles.
    const std::size_t every = std::max<std::size_t>(1, (columns + 11) / 12);
    for (std::size_t i = 0; i < columns; ++i) {
        map.x_labels.push_back(i % every == 0 ? std::to_string(history[bins.begin[i]].step())
                                              : std::string());
    }
    for (const auto& layer : history.front().layers()) map.y_labels.push_back(layer.name);
    return map;
}

// Fills a grid with one statistic: value(layer stats, profile) per step, combined per bin.
inline bool fill_grid(SvgHeatMap& map, const std::deque<GradientProfile>& history,
                      const StepBins& bins, bool geometric,
                      const std::function<double(const GradientProfile&, std::size_t)>& value,
                      const std::function<std::string(double)>& text) {
    const std::size_t layers = history.front().size(), columns = bins.begin.size();
    bool any = false;
    for (std::size_t i = 0; i < columns; ++i) {
        const std::size_t first = bins.begin[i], n = bins.count(i, history.size());
        for (std::size_t l = 0; l < layers; ++l) {
            std::vector<double> values;
            for (std::size_t k = first; k < first + n; ++k) {
                if (history[k].size() == layers) values.push_back(value(history[k], l));
            }
            const double v = combine(values, geometric);
            const std::size_t cell = l * columns + i;
            map.values[cell] = v;
            any = any || std::isfinite(v);
            const std::string steps =
                n == 1 ? "step " + std::to_string(history[first].step())
                       : "steps " + std::to_string(history[first].step()) + "-" +
                             std::to_string(history[first + n - 1].step());
            map.cell_titles[cell] = history.front().layers()[l].name + ", " + steps + ": " +
                                    map.value_label + " " + text(v);
        }
    }
    return any;
}

inline std::string verdict_strip(const std::deque<GradientProfile>& history, const StepBins& bins,
                                 const VerdictThresholds& t) {
    const std::size_t columns = bins.begin.size();
    SvgHeatMap map{.values = std::vector<double>(columns),
                   .bands = {{0, 1, "#c7e9c0", "healthy"},
                             {1, 2, "#6baed6", "vanishing"},
                             {2, 3, "#fd8d3c", "exploding"},
                             {3, 4, "#222222", "non-finite"}},
                   .title = "Verdict at each step (|delta_1| / |delta_L| against the thresholds)",
                   .x_label = "step",
                   .cell_texts = std::vector<std::string>(columns),
                   .cell_titles = std::vector<std::string>(columns),
                   .width = 1200,
                   .height = 230};
    for (std::size_t i = 0; i <= columns; ++i) map.x_edges.push_back(static_cast<double>(i));
    map.y_edges = {0, 1};
    map.y_labels = {"verdict"};
    const std::size_t every = std::max<std::size_t>(1, (columns + 11) / 12);
    for (std::size_t i = 0; i < columns; ++i) {
        const std::size_t first = bins.begin[i], n = bins.count(i, history.size());
        Verdict worst = Verdict::not_measured;
        for (std::size_t k = first; k < first + n; ++k) {
            const Verdict v = history[k].verdict(t);
            if (severity(v) > severity(worst)) worst = v;
        }
        // A bin with no measured step is a cell without a value (drawn grey, as in the maps).
        map.values[i] = worst == Verdict::not_measured
                            ? not_measured
                            : static_cast<double>(static_cast<int>(worst)) + 0.5;
        map.cell_titles[i] = "step " + std::to_string(history[first].step()) +
                             (n > 1 ? "-" + std::to_string(history[first + n - 1].step()) : "") +
                             ": " + to_string(worst);
        map.x_labels.push_back(i % every == 0 ? std::to_string(history[first].step())
                                              : std::string());
    }
    return svg_heatmap(map);
}

inline std::string gradient_map(const std::deque<GradientProfile>& history, const StepBins& bins,
                                const VerdictThresholds& t) {
    SvgHeatMap map = training_grid(history, bins,
                                   "|delta_l| / |delta_L|: each layer's gradient against the last's",
                                   "|delta_l| / |delta_L|");
    map.bands = ratio_bands(t);
    // The ratio to the last layer at the same step, so that the colours mean what the verdict
    // means; the hover title gives |delta_l| itself too.
    (void)fill_grid(
        map, history, bins, true,
        [](const GradientProfile& p, std::size_t l) {
            return p.layers()[l].output_grad_norm / p.layers().back().output_grad_norm;
        },
        [](double v) { return compact_number(v); });
    for (auto& v : map.values) v = std::isfinite(v) && v > 0.0 ? std::log10(v) : not_measured;
    return svg_heatmap(map);
}

inline std::string norms_over_steps(const std::deque<GradientProfile>& history) {
    const std::size_t layers = history.front().size();
    const std::vector<std::size_t> picked =
        layers <= 2 ? std::vector<std::size_t>{0, layers - 1}
                    : std::vector<std::size_t>{0, layers / 2, layers - 1};
    std::vector<SvgSeries> series;
    for (const std::size_t l : picked) {
        if (l >= layers || (!series.empty() && l == 0)) continue;
        SvgSeries s{.name = history.front().layers()[l].name, .points = {}};
        for (const auto& p : history) {
            if (p.size() == layers) {
                s.points.emplace_back(static_cast<double>(p.step()), p.layers()[l].output_grad_norm);
            }
        }
        series.push_back(std::move(s));
    }
    return svg_plot(series, {.title = "|delta_l| of the first, middle and last layer",
                             .x_label = "step",
                             .y_label = "|dL/dz_l|",
                             .log_y = true,
                             .width = 700,
                             .height = 360,
                             .hover_values = true});
}

// A constant y over the history's steps, dashed grey: a threshold to read a curve against.
inline SvgSeries threshold_line(const std::string& name, double y, double first, double last,
                                const std::string& dash) {
    return {.name = name, .points = {{first, y}, {last, y}}, .color = "#888", .dash = dash};
}

// With per-sample statistics (GradientMonitor's per_sample mode): the network's noise scale
// against the batch size, Cockpit's three batch-size tests against the thresholds their
// papers use, the GSNR, and the spread of the samples' gradient norms, per step. Empty when no
// step measured them.
inline std::vector<std::string> per_sample_plots(const std::deque<GradientProfile>& history) {
    SvgSeries noise{.name = "B_simple", .points = {}}, batch{.name = "batch size", .points = {},
                                                              .color = "#888", .dash = "4 4"};
    SvgSeries norm_test{.name = "theta_norm", .points = {}},
        inner{.name = "theta_inner", .points = {}}, orthogonal{.name = "nu_orth", .points = {}};
    SvgSeries gsnr{.name = "GSNR", .points = {}};
    SvgSeries q10{.name = "10%", .points = {}}, q50{.name = "median", .points = {}},
        q90{.name = "90%", .points = {}};
    for (const auto& p : history) {
        const PerSampleNetworkStats n = p.per_sample_network();
        if (n.batch == 0) continue;
        const auto step = static_cast<double>(p.step());
        noise.points.emplace_back(step, n.gradient_noise_scale);
        batch.points.emplace_back(step, static_cast<double>(n.batch));
        norm_test.points.emplace_back(step, n.norm_test);
        inner.points.emplace_back(step, n.inner_product_test);
        orthogonal.points.emplace_back(step, n.orthogonality_test);
        gsnr.points.emplace_back(step, n.gsnr);
        q10.points.emplace_back(step, n.norms.q10);
        q50.points.emplace_back(step, n.norms.q50);
        q90.points.emplace_back(step, n.norms.q90);
    }
    if (batch.points.empty()) return {};
    const double first = batch.points.front().first, last = batch.points.back().first;
    const auto plot = [](std::vector<SvgSeries> series, const char* title, const char* y) {
        return svg_plot(std::move(series), {.title = title, .x_label = "step", .y_label = y,
                                            .log_y = true, .width = 560, .height = 360,
                                            .hover_values = true});
    };
    return {plot({noise, batch}, "Gradient noise scale against the batch size", "examples"),
            plot({norm_test, inner, orthogonal, threshold_line("theta = 0.9", 0.9, first, last, "4 4"),
                  threshold_line("nu = 5.84", 5.84, first, last, "1 3")},
                 "Batch-size tests: passed below the threshold", "theta, nu"),
            plot({gsnr}, "Gradient signal-to-noise ratio", "GSNR"),
            plot({q10, q50, q90}, "Per-sample gradient norms", "|g_i|")};
}

// With sharpness (GradientMonitor::Options::sharpness): lambda_max of the network and of each
// layer's block at the steps that measured it, and 2/eta when eta is given. Empty when no step
// measured it.
inline std::string sharpness_plot(const std::deque<GradientProfile>& history,
                                  double learning_rate) {
    SvgSeries network{.name = "network", .points = {}};
    std::vector<SvgSeries> layers;
    for (const auto& layer : history.front().layers()) {
        layers.push_back({.name = layer.name, .points = {}, .dash = "4 2"});
    }
    for (const auto& p : history) {
        if (!p.sharpness().measured()) continue;
        const auto step = static_cast<double>(p.step());
        network.points.emplace_back(step, p.sharpness().sharpness);
        for (std::size_t l = 0; l < layers.size() && l < p.size(); ++l) {
            const double v = p.layers()[l].sharpness;
            if (std::isfinite(v)) layers[l].points.emplace_back(step, v);
        }
    }
    if (network.points.empty()) return {};
    std::vector<SvgSeries> series{network};
    for (auto& s : layers) {
        if (!s.points.empty()) series.push_back(std::move(s));
    }
    if (learning_rate > 0.0) {
        series.push_back(threshold_line("2/eta = " + compact_number(2.0 / learning_rate),
                                        2.0 / learning_rate, network.points.front().first,
                                        network.points.back().first, "6 3"));
    }
    return svg_plot(std::move(series), {.title = "Sharpness: the Hessian's top eigenvalue",
                                        .x_label = "step",
                                        .y_label = "lambda_max",
                                        .width = 700,
                                        .height = 360,
                                        .hover_values = true});
}

inline std::vector<std::vector<std::string>> nonfinite_rows(
    const std::deque<GradientProfile>& history) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : history) {
        for (const auto& layer : p.layers()) {
            if (layer.nonfinite > 0) {
                rows.push_back({std::to_string(p.step()), layer.name, std::to_string(layer.nonfinite)});
            }
        }
    }
    return rows;
}

}  // namespace detail

inline HtmlReport training_html(const std::deque<GradientProfile>& history,
                                const TrainingHtmlOptions& options = {}) {
    if (history.empty() || history.front().size() == 0) {
        throw value_error("training_html: the history has no step with layers to report");
    }
    if (!options.curve_titles.empty() && options.curve_titles.size() != options.curves.size()) {
        throw value_error("training_html: " + std::to_string(options.curve_titles.size()) +
                          " curve titles for " + std::to_string(options.curves.size()) + " plots");
    }
    using detail::compact_number;
    const auto bins = detail::step_bins(history.size(), options.max_columns);
    HtmlReport report(options.title);
    if (!options.description.empty()) report.paragraph(options.description);

    report.section("When the gradient misbehaved",
                   "One column per recorded step (or per run of steps, when there are many): the "
                   "verdict of |delta_1| / |delta_L| against the thresholds " +
                       format_number(options.thresholds.vanishing_ratio) + " and " +
                       format_number(options.thresholds.exploding_ratio) + ".");
    report.figure(detail::verdict_strip(history, bins, options.thresholds));

    report.section("Where in the network",
                   "Each layer's gradient |delta_l| against the last layer's at the same step, in "
                   "the verdict's colour bands: blue where less reaches the layer, red where more "
                   "does. Hover on a cell for the value.");
    report.figure(detail::gradient_map(history, bins, options.thresholds));

    report.section("Over the steps");
    std::vector<std::string> plots{detail::norms_over_steps(history)};
    for (std::size_t k = 0; k < options.curves.size(); ++k) {
        plots.push_back(svg_plot(options.curves[k],
                                 {.title = options.curve_titles.empty() ? "" : options.curve_titles[k],
                                  .x_label = "step",
                                  .y_label = options.curve_titles.empty() ? "" : options.curve_titles[k],
                                  .width = 560,
                                  .height = 360,
                                  .hover_values = true}));
    }
    report.panels(plots);

    const auto per_sample = detail::per_sample_plots(history);
    if (!per_sample.empty()) {
        report.section(
            "Is the batch big enough?",
            "From the samples' own gradients (the monitor's per-sample mode), over the watched "
            "layers. B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018) is the batch size "
            "beyond which a larger batch stops paying for itself: far above the batch used, each "
            "step's gradient is mostly noise. Cockpit's batch-size tests (Schneider et al. 2021) "
            "give the smallest threshold each test passes with: the norm test (Byrd et al. 2012) "
            "and the inner-product and orthogonality tests (Bollapragada et al. 2018); the papers "
            "use theta = 0.5 or 0.9 and nu = 5.84, and B (value / threshold)^2 is the batch "
            "size a test would ask for. The GSNR (Liu et al. 2020) is the mean over parameters "
            "of the squared mean gradient over its variance across samples.");
        report.panels(per_sample);
    }

    const std::string sharpness = detail::sharpness_plot(history, options.learning_rate);
    if (!sharpness.empty()) {
        report.section(
            "Sharpness",
            "The largest eigenvalue lambda_max of the loss's Hessian with respect to the "
            "parameters, at the steps the monitor measured it (Lanczos over exact Hessian-vector "
            "products), and each layer's: the top eigenvalue of its diagonal block, the sharpness "
            "when only that layer moves (never above the network's). Gradient descent with step "
            "size eta is stable on a quadratic while lambda_max < 2/eta; full-batch training "
            "drives lambda_max up to about 2/eta and hovers there (Cohen et al. 2021).");
        report.figure(sharpness);
        SvgHeatMap blocks =
            detail::training_grid(history, bins, "Sharpness of each layer's block", "lambda_max");
        if (detail::fill_grid(
                blocks, history, bins, false,
                [](const GradientProfile& p, std::size_t l) { return p.layers()[l].sharpness; },
                [](double v) { return compact_number(v); })) {
            report.figure(svg_heatmap(blocks));
        }
    }

    report.section("Update size",
                   "|W_after - W_before| / |W_before| of the optimiser's update after each step. "
                   "Around 1e-3 is the usual rule of thumb for a layer that learns at a sensible "
                   "rate; far below it a layer hardly moves, far above it the step is large for "
                   "the weights.");
    SvgHeatMap updates = detail::training_grid(history, bins, "Update-to-weight ratio", "ratio");
    const bool measured = detail::fill_grid(
        updates, history, bins, true,
        [](const GradientProfile& p, std::size_t l) { return p.layers()[l].update_ratio; },
        [](double v) { return compact_number(v); });
    if (measured) {
        for (auto& v : updates.values) v = std::isfinite(v) && v > 0.0 ? std::log10(v) : not_measured;
        updates.bands = {{-1e300, -5, "#08306b", "< 1e-5"},
                         {-5, -4, "#6baed6", "1e-5 to 1e-4"},
                         {-4, -2, "#c7e9c0", "1e-4 to 1e-2"},
                         {-2, -1, "#fd8d3c", "1e-2 to 0.1"},
                         {-1, 1e300, "#a50f15", "> 0.1"}};
        report.figure(svg_heatmap(updates));
    } else {
        report.paragraph("Not measured in this run (the monitor's track_updates was off, or no "
                         "step was followed by an update).");
    }

    report.section("Dead and saturated units",
                   "The fraction of a layer's units whose activation derivative is 0 for the "
                   "whole batch (dead), and of its elements with |phi'| below the saturation "
                   "threshold.");
    std::vector<std::string> fraction_maps;
    const auto fraction_map = [&](const char* title, double LayerStats::*field) {
        SvgHeatMap map = detail::training_grid(history, bins, title, "fraction");
        map.low = 0.0;
        map.high = 1.0;
        const bool any = detail::fill_grid(
            map, history, bins, false,
            [field](const GradientProfile& p, std::size_t l) { return p.layers()[l].*field; },
            [](double v) { return format_number(v, {Notation::fixed, 3}); });
        if (any) fraction_maps.push_back(svg_heatmap(map));
    };
    fraction_map("Dead units", &LayerStats::dead_fraction);
    fraction_map("Saturated elements", &LayerStats::saturated_fraction);
    if (fraction_maps.empty()) {
        report.paragraph("Not measured: no activation follows the watched layers.");
    } else {
        for (const auto& svg : fraction_maps) report.figure(svg);
    }

    const auto nonfinite = detail::nonfinite_rows(history);
    report.section("Non-finite gradients",
                   nonfinite.empty() ? "None: every recorded gradient was finite."
                                     : "Steps at which a layer's gradient had NaN or infinite "
                                       "entries, and how many.");
    if (!nonfinite.empty()) report.table({"step", "layer", "non-finite entries"}, nonfinite);
    return report;
}

}  // namespace gradscope::diag
