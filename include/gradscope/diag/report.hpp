// Reports of a depth sweep: one SweepRun per measured network, written as a fixed-width text
// table, as CSV (one row per run and layer) or as an SVG plot of |delta_l| against depth. The
// JSON form is in json_report.hpp, which alone needs nlohmann_json.
//
// Layers are numbered from 1 (the input side) to depth in every report, as on the plot's x axis.
// Missing values (a prediction where the theory does not apply, a quantity not measured, a NaN)
// are an empty CSV field, "-" in the table and null in JSON: Note [Missing numbers] in format.hpp.
#pragma once

#include "format.hpp"
#include "profile.hpp"
#include "svg.hpp"
#include "text_table.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gradscope::diag {

struct SweepRun {
    std::string activation = {};  // "relu"
    std::string init = {};  // "he"; "gaussian": N(0, sigma_w2 / fan_in) by request; "critical"
    // Weight variance times fan-in: the value used for "gaussian" and "critical", what a named
    // initialiser amounts to otherwise (nullopt where that is not known).
    std::optional<double> sigma_w2 = std::nullopt;
    double sigma_b2 = 0.0;  // biases N(0, sigma_b2)
    // Mean-field theory's fixed point of the pre-activation variance (nullopt: there is none,
    // or it was not computed) and its correlation depth scale (infinite on the edge of chaos;
    // NaN without a fixed point).
    std::optional<double> q_star = std::nullopt;
    double xi_c = not_measured;
    std::string variant = "plain";  // plain, batchnorm, residual, batchnorm+residual
    int depth = 0;                  // Linear layers
    std::int64_t width = 0;
    std::int64_t batch = 0;
    std::string dtype = "float";  // float or double
    std::uint64_t seed = 0;
    GradientProfile profile = {};
    double ratio_first_last = not_measured;  // |delta_1| / |delta_L|
    double gain_per_layer = not_measured;    // ratio^(1 / (L - 1))
    std::optional<double> predicted_gain_per_layer =
        std::nullopt;  // mean-field theory, where it applies
    Verdict verdict = Verdict::nonfinite;
};

// Stores the profile and what is derived from it: the ratio, the gain per layer and the verdict.
inline void record_profile(SweepRun& run, GradientProfile profile,
                           const VerdictThresholds& thresholds = {}) {
    run.profile = std::move(profile);
    if (run.profile.size() >= 2) {
        run.ratio_first_last = run.profile.ratio_first_last();
        run.gain_per_layer = run.profile.gain_per_layer();
    } else {
        run.ratio_first_last = run.gain_per_layer = not_measured;
    }
    run.verdict = run.profile.verdict(thresholds);
}

// "he", "sigma_w2=2" for a run initialised by variance, and " sigma_b2=0.05" after either when
// the biases are random.
inline std::string init_label(const SweepRun& run) {
    std::string label = run.init == "gaussian" && run.sigma_w2
                            ? "sigma_w2=" + format_number(*run.sigma_w2)
                            : run.init;
    if (run.sigma_b2 > 0.0) label += " sigma_b2=" + format_number(run.sigma_b2);
    return label;
}

// "relu/he/plain": the run's configuration, as in the plot's legend.
inline std::string run_label(const SweepRun& run) {
    return run.activation + "/" + init_label(run) + "/" + run.variant;
}

// ---------------------------------------------------------------------------------------------
// Text table: a header line and one line per run, columns aligned (text left, numbers right).

inline std::string format_table(const std::vector<SweepRun>& runs) {
    const std::vector<std::string> header{"activation", "init",       "variant",   "depth",
                                          "ratio",      "gain/layer", "predicted", "verdict"};
    const std::vector<bool> right_aligned{false, false, false, true, true, true, true, false};

    std::vector<std::vector<std::string>> rows;
    rows.reserve(runs.size());
    for (const auto& r : runs) {
        rows.push_back({r.activation, init_label(r), r.variant, std::to_string(r.depth),
                        table_number(r.ratio_first_last, table_ratio),
                        table_number(r.gain_per_layer, table_gain),
                        table_number(r.predicted_gain_per_layer, table_gain),
                        to_string(r.verdict)});
    }
    return text_table(header, right_aligned, rows);
}

// ---------------------------------------------------------------------------------------------
// CSV: one row per run and layer, RFC 4180 quoting (a field with a comma, a quote or a line
// break is quoted, its quotes doubled), lines ended by "\n". Numbers are written in full
// precision (they read back as the same double); a missing value or NaN is an empty field,
// infinities are "inf" and "-inf" (csv_number, format.hpp). A run whose profile has no layers still gets one row, with
// empty layer columns.

inline constexpr std::string_view csv_header =
    "activation,init,sigma_w2,sigma_b2,q_star,xi_c,variant,depth,width,batch,dtype,seed,layer,output_grad_norm,"
    "weight_grad_norm,activation_norm,ratio_first_last,gain_per_layer,predicted_gain_per_layer,verdict";

namespace detail {

inline std::string csv_field(std::string_view text) {
    if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

}  // namespace detail

inline void write_csv(std::ostream& out, const std::vector<SweepRun>& runs) {
    using detail::csv_field;
    out << csv_header << '\n';
    for (const auto& r : runs) {
        const std::string head =
            csv_field(r.activation) + ',' + csv_field(r.init) + ',' + csv_number(r.sigma_w2) + ',' +
            csv_number(r.sigma_b2) + ',' + csv_number(r.q_star) + ',' + csv_number(r.xi_c) + ',' +
            csv_field(r.variant) + ',' + std::to_string(r.depth) + ',' + std::to_string(r.width) +
            ',' + std::to_string(r.batch) + ',' + csv_field(r.dtype) + ',' + std::to_string(r.seed);
        const std::string tail =
            csv_number(r.ratio_first_last) + ',' + csv_number(r.gain_per_layer) + ',' +
            csv_number(r.predicted_gain_per_layer) + ',' + csv_field(to_string(r.verdict));
        const auto& layers = r.profile.layers();
        if (layers.empty()) out << head << ",,,," << tail << '\n';
        for (std::size_t l = 0; l < layers.size(); ++l) {
            out << head << ',' << (l + 1) << ',' << csv_number(layers[l].output_grad_norm) << ','
                << csv_number(layers[l].weight_grad_norm) << ','
                << csv_number(layers[l].activation_norm) << ',' << tail << '\n';
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Plot: |delta_l| against the layer, one line per run, on a log axis.

inline std::vector<SvgSeries> gradient_series(const std::vector<SweepRun>& runs) {
    std::vector<SvgSeries> out;
    out.reserve(runs.size());
    for (const auto& r : runs) {
        SvgSeries s{.name = run_label(r), .points = {}};
        const auto& layers = r.profile.layers();
        for (std::size_t l = 0; l < layers.size(); ++l) {
            s.points.emplace_back(static_cast<double>(l + 1), layers[l].output_grad_norm);
        }
        out.push_back(std::move(s));
    }
    return out;
}

inline SvgOptions gradient_plot_options(std::string title) {
    return {.title = std::move(title),
            .x_label = "layer (input side = 1)",
            .y_label = "|dL/dz_l|",
            .log_y = true};
}

inline std::string svg_gradient_plot(const std::vector<SweepRun>& runs, std::string title) {
    return svg_plot(gradient_series(runs), gradient_plot_options(std::move(title)));
}

}  // namespace gradscope::diag
