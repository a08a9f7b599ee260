// A depth sweep as one self-contained HTML page (html_report.hpp), made to be read at a glance:
//
//   1. a heat map, one row per configuration (activation / initialiser / variant) and one column
//      per depth, coloured by log10 of |delta_1| / |delta_L| in bands cut at the verdict
//      thresholds (and at their squares), each cell showing the ratio and, on hover, the run;
//   2. small multiples: |delta_l| per layer at the deepest depth, one panel per activation and
//      variant with at most six initialisers each, mean-field theory's prediction dashed;
//   3. measured against predicted gain per layer, with the line y = x.
//
//   diag::sweep_html(runs, {.title = "..."}).save("sweep.html");
#pragma once

#include "html_report.hpp"
#include "profile.hpp"
#include "report.hpp"
#include "svg.hpp"
#include "svg_heatmap.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace gradscope::diag {

struct SweepHtmlOptions {
    std::string title = "gradscope depth sweep";
    std::string description = {};  // a paragraph under the title: what was measured, and how
    VerdictThresholds thresholds = {};
    std::size_t lines_per_panel = 6;
};

namespace detail {

template <class Key>
std::size_t index_of(std::vector<Key>& keys, const Key& key) {
    const auto it = std::find(keys.begin(), keys.end(), key);
    if (it != keys.end()) return static_cast<std::size_t>(it - keys.begin());
    keys.push_back(key);
    return keys.size() - 1;
}

// A ratio in few characters, for a cell: two significant digits, exponents without '+' and
// leading zeros ("2.1e-6", "30", "8e21").
inline std::string compact_number(double v) {
    std::string text = format_number(v, {Notation::general, 2});
    const auto e = text.find('e');
    if (e == std::string::npos) return text;
    std::string exponent = text.substr(e + 1);
    const bool negative = exponent.front() == '-';
    exponent.erase(0, exponent.find_first_not_of("+-0"));
    return text.substr(0, e) + (negative ? "e-" : "e") + (exponent.empty() ? "0" : exponent);
}

// Bands of log10(ratio): vanished / vanishing / healthy / exploding / exploded, cut at the
// verdict thresholds and at their squares.
inline std::vector<ColourBand> ratio_bands(const VerdictThresholds& t) {
    const double v = std::log10(t.vanishing_ratio), e = std::log10(t.exploding_ratio);
    const double inf = std::numeric_limits<double>::infinity();
    const auto power = [](double exponent) { return compact_number(std::pow(10.0, exponent)); };
    return {{-inf, 2 * v, "#08306b", "< " + power(2 * v) + " vanished"},
            {2 * v, v, "#6baed6", "< " + power(v) + " vanishing"},
            {v, e, "#c7e9c0", "healthy"},
            {e, 2 * e, "#fd8d3c", "> " + power(e) + " exploding"},
            {2 * e, inf, "#a50f15", "> " + power(2 * e) + " exploded"}};
}

inline std::string sweep_heatmap(const std::vector<SweepRun>& runs, const SweepHtmlOptions& o) {
    std::vector<std::string> rows;
    std::vector<int> depths;
    for (const auto& r : runs) depths.push_back(r.depth);
    std::sort(depths.begin(), depths.end());
    depths.erase(std::unique(depths.begin(), depths.end()), depths.end());
    for (const auto& r : runs) (void)index_of(rows, run_label(r));

    const std::size_t nx = depths.size(), ny = rows.size();
    SvgHeatMap map{.values = std::vector<double>(nx * ny, std::nan("")),
                   .bands = ratio_bands(o.thresholds),
                   .title = "|delta_1| / |delta_L|: the gradient reaching the first layer",
                   .x_label = "depth (Linear layers)",
                   .y_label = "",
                   .value_label = "log10 ratio",
                   .cell_texts = std::vector<std::string>(nx * ny, "-"),
                   .cell_titles = std::vector<std::string>(nx * ny, "not measured"),
                   .width = 1100,
                   .height = 140 + 24.0 * static_cast<double>(ny)};
    for (std::size_t i = 0; i <= nx; ++i) map.x_edges.push_back(static_cast<double>(i));
    for (std::size_t j = 0; j <= ny; ++j) map.y_edges.push_back(static_cast<double>(j));
    for (const int d : depths) map.x_labels.push_back(std::to_string(d));
    // The first configuration at the top: rows are drawn bottom to top.
    map.y_labels.assign(rows.rbegin(), rows.rend());
    for (const auto& r : runs) {
        const std::size_t i = static_cast<std::size_t>(
            std::find(depths.begin(), depths.end(), r.depth) - depths.begin());
        const std::size_t j = ny - 1 - index_of(rows, run_label(r));
        const std::size_t k = j * nx + i;
        const double ratio = r.ratio_first_last;
        const bool finite = std::isfinite(ratio) && ratio > 0.0;
        map.values[k] = finite ? std::log10(ratio) : std::nan("");
        map.cell_texts[k] = finite ? compact_number(ratio)
                                   : std::string(to_string(r.verdict));
        map.cell_titles[k] = run_label(r) + ", depth " + std::to_string(r.depth) +
                             ": |delta_1| / |delta_L| = " +
                             format_number(ratio, {Notation::general, 4}) + " (" +
                             to_string(r.verdict) + ")";
    }
    return svg_heatmap(map);
}

// |delta_l| against l for the runs of one panel, theory dashed in the same colour.
inline std::string sweep_panel(const std::vector<const SweepRun*>& runs, const std::string& title) {
    std::vector<SvgSeries> series;
    const auto& palette = svg_palette();
    for (std::size_t k = 0; k < runs.size(); ++k) {
        const SweepRun& r = *runs[k];
        const std::string colour = palette[k % palette.size()];
        SvgSeries measured{.name = init_label(r), .points = {}, .color = colour, .dash = "none"};
        const auto& layers = r.profile.layers();
        for (std::size_t l = 0; l < layers.size(); ++l) {
            measured.points.emplace_back(static_cast<double>(l + 1), layers[l].output_grad_norm);
        }
        series.push_back(std::move(measured));
        if (r.predicted_gain_per_layer && !layers.empty()) {
            SvgSeries theory{.name = init_label(r) + " (theory)", .points = {}, .color = colour,
                             .dash = "6 4"};
            const double last = layers.back().output_grad_norm;
            const double depth = static_cast<double>(layers.size());
            for (std::size_t l = 0; l < layers.size(); ++l) {
                theory.points.emplace_back(
                    static_cast<double>(l + 1),
                    last * std::pow(*r.predicted_gain_per_layer, depth - static_cast<double>(l + 1)));
            }
            series.push_back(std::move(theory));
        }
    }
    return svg_plot(series, {.title = title,
                             .x_label = "layer (input side = 1)",
                             .y_label = "|dL/dz_l|",
                             .log_y = true,
                             .width = 440,
                             .height = 300,
                             .hover_values = true});
}

// Runs at the deepest depth, grouped by activation and variant, at most lines_per_panel each.
inline std::vector<std::string> sweep_panels(const std::vector<SweepRun>& runs,
                                             const SweepHtmlOptions& o) {
    int deepest = 0;
    for (const auto& r : runs) deepest = std::max(deepest, r.depth);
    std::vector<std::string> groups;
    std::vector<std::vector<const SweepRun*>> members;
    for (const auto& r : runs) {
        if (r.depth != deepest) continue;
        const std::size_t g = index_of(groups, r.activation + ", " + r.variant);
        if (members.size() <= g) members.resize(g + 1);
        members[g].push_back(&r);
    }
    std::vector<std::string> out;
    const std::size_t per_panel = std::max<std::size_t>(1, o.lines_per_panel);
    for (std::size_t g = 0; g < groups.size(); ++g) {
        for (std::size_t begin = 0; begin < members[g].size(); begin += per_panel) {
            const std::size_t end = std::min(members[g].size(), begin + per_panel);
            const std::vector<const SweepRun*> chunk(members[g].begin() + static_cast<std::ptrdiff_t>(begin),
                                                     members[g].begin() + static_cast<std::ptrdiff_t>(end));
            out.push_back(sweep_panel(chunk, groups[g] + " (depth " + std::to_string(deepest) + ")"));
        }
    }
    return out;
}

// Measured against predicted gain per layer: a dot per network, one colour per activation,
// the network and both gains on hover; the dashed y = x line is perfect agreement.
inline std::string sweep_gain_scatter(const std::vector<SweepRun>& runs) {
    std::vector<std::string> activations;
    std::vector<SvgSeries> series;
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const auto& r : runs) {
        if (!r.predicted_gain_per_layer || !std::isfinite(r.gain_per_layer)) continue;
        const double predicted = *r.predicted_gain_per_layer;
        const std::size_t a = index_of(activations, r.activation);
        if (series.size() <= a) {
            series.push_back({.name = r.activation, .points = {}, .markers = true});
        }
        series[a].points.emplace_back(predicted, r.gain_per_layer);
        series[a].point_titles.push_back(
            run_label(r) + ", depth " + std::to_string(r.depth) + ": predicted " +
            format_number(predicted, {Notation::general, 4}) + ", measured " +
            format_number(r.gain_per_layer, {Notation::general, 4}));
        lo = std::min({lo, predicted, r.gain_per_layer});
        hi = std::max({hi, predicted, r.gain_per_layer});
    }
    if (!series.empty()) {
        series.push_back({.name = "y = x", .points = {{lo, lo}, {hi, hi}}, .color = "#888",
                          .dash = "4 4"});
    }
    return svg_plot(series, {.title = "Gain per layer: measured against mean-field theory",
                             .x_label = "predicted gain per layer",
                             .y_label = "measured gain per layer",
                             .width = 620,
                             .height = 440});
}

}  // namespace detail

inline HtmlReport sweep_html(const std::vector<SweepRun>& runs, const SweepHtmlOptions& options = {}) {
    HtmlReport report(options.title);
    if (!options.description.empty()) report.paragraph(options.description);
    report.section(
        "Which configurations keep their gradient, and from which depth",
        "Each cell is one network at initialisation: the norm of the gradient reaching the first "
        "layer divided by the one reaching the last. Green is healthy (within the verdict "
        "thresholds " +
            format_number(options.thresholds.vanishing_ratio) + " and " +
            format_number(options.thresholds.exploding_ratio) +
            "); blue means the gradient vanishes on its way down, red that it explodes. Hover on a "
            "cell for its exact value.");
    report.figure(detail::sweep_heatmap(runs, options));
    report.section("How the gradient changes layer by layer",
                   "The deepest networks, one panel per activation and variant: |dL/dz_l| for each "
                   "layer l (input side left). Dashed: mean-field theory's prediction (plain "
                   "networks), drawn through the last layer's measured value.");
    report.panels(detail::sweep_panels(runs, options));
    report.section("Measured against predicted",
                   "Every plain network that mean-field theory covers: its measured gain per "
                   "layer, (|delta_1| / |delta_L|)^(1 / (L - 1)), against the prediction. On the "
                   "dashed line they agree.");
    report.figure(detail::sweep_gain_scatter(runs));
    return report;
}

}  // namespace gradscope::diag
