// The doctor's diagnosis (doctor.hpp) as a section of an HTML report: the verdict and its
// cause, the gradient norm per layer with the layers the doctor noted, and the remedies ranked
// by the gain per layer each is predicted to give.
//
//     auto report = diag::training_html(monitor.history(), {...});
//     diag::add_diagnosis(report, diag::doctor<float>(*net, x, loss_of));
//     report.save("report.html");
#pragma once

#include "doctor.hpp"
#include "format.hpp"
#include "html_report.hpp"
#include "svg.hpp"

#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace gradscope::diag {

namespace detail {

// |delta_l| per layer, each point with the layer's name, norm, local gain and note on hover.
inline std::string diagnosis_plot(const Diagnosis& d) {
    SvgSeries norms{.name = "|delta_l|", .points = {}};
    const NumberFormat exact{Notation::general, 4};
    for (std::size_t l = 0; l < d.layers.size(); ++l) {
        const LayerFinding& f = d.layers[l];
        norms.points.emplace_back(static_cast<double>(l + 1), f.output_grad_norm);
        norms.point_titles.push_back(
            f.layer + ": |delta_l| = " + format_number(f.output_grad_norm, exact) +
            ", local gain " + format_number(f.local_gain, exact) +
            (std::isfinite(f.sharpness) ? ", block lambda_max " + format_number(f.sharpness, exact)
                                        : "") +
            (f.note.empty() ? "" : " (" + f.note + ")"));
    }
    return svg_plot({norms}, {.title = "Gradient reaching each layer",
                              .x_label = "layer (input side = 1)",
                              .y_label = "|dL/dz_l|",
                              .log_y = true,
                              .width = 560,
                              .height = 320,
                              .hover_values = true});
}

inline std::vector<std::vector<std::string>> noted_layer_rows(const Diagnosis& d) {
    std::vector<std::vector<std::string>> rows;
    const NumberFormat fraction{Notation::fixed, 3};
    for (const auto& f : d.layers) {
        if (f.note.empty()) continue;
        rows.push_back({f.layer, f.note, format_number(f.output_grad_norm, table_ratio),
                        format_number(f.dead_fraction, fraction),
                        format_number(f.saturated_fraction, fraction),
                        std::to_string(f.nonfinite)});
    }
    return rows;
}

inline std::vector<std::vector<std::string>> remedy_rows(const Diagnosis& d) {
    std::vector<std::vector<std::string>> rows;
    for (std::size_t i = 0; i < d.remedies.size(); ++i) {
        const Remedy& r = d.remedies[i];
        rows.push_back({std::to_string(i + 1), r.action, format_number(r.predicted_gain, table_gain),
                        format_number(r.predicted_ratio, table_ratio),
                        to_string(r.predicted_verdict), r.basis});
    }
    return rows;
}

}  // namespace detail

// Appends the diagnosis as one section of `report`.
inline HtmlReport& add_diagnosis(HtmlReport& report, const Diagnosis& d,
                                 std::string_view heading = "Diagnosis: what to change") {
    std::string summary =
        std::to_string(d.depth) + " Linear layers" + (d.activation.empty() ? "" : ", " + d.activation) +
        (d.batch_norm ? ", batch norm" : "") + (d.residual ? ", residual blocks" : "") +
        ". |delta_1| / |delta_L| = " + format_number(d.ratio_first_last, table_ratio) + " (" +
        to_string(d.verdict) + "), a gain of " + format_number(d.gain_per_layer, table_gain) +
        " per layer.";
    if (!d.unmodelled.empty()) {
        summary +=
            " Not modelled by mean-field theory: " + detail::unmodelled_text(d.unmodelled) + ".";
    }
    summary += d.cause == Cause::none
                   ? " Healthy: nothing to change."
                   : " Cause: " + std::string(to_string(d.cause)) + ". " + d.evidence;
    if (std::isfinite(d.sharpness)) summary += " The " + d.sharpness_text() + ".";
    report.section(heading, summary);
    report.figure(detail::diagnosis_plot(d), "Hover on a point for the layer's numbers.");
    const auto noted = detail::noted_layer_rows(d);
    if (!noted.empty()) {
        report.table({"layer", "note", "|delta_l|", "dead", "saturated", "non-finite"}, noted);
    }
    if (!d.remedies.empty()) {
        report.paragraph("Remedies, best first, each with the gain per layer and the ratio "
                         "|delta_1| / |delta_L| it is predicted to give, and where the prediction "
                         "comes from.");
        report.table({"#", "change", "predicted gain", "predicted ratio", "verdict", "basis"},
                     detail::remedy_rows(d));
    }
    return report;
}

// The diagnosis alone, as a page.
inline HtmlReport doctor_html(const Diagnosis& d, std::string title = "gradscope doctor") {
    HtmlReport report(std::move(title));
    add_diagnosis(report, d);
    return report;
}

}  // namespace gradscope::diag
