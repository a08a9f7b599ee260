// One step of a GradientMonitor as a text table, for a terminal or a log:
//   std::cout << diag::format_profile(monitor.last());   // or: std::cout << monitor.last();
// One row per watched layer, input side first, with the numbers to read first when training
// goes wrong, then the verdict on the gradient's way from the last layer to the first:
//   layer            |dL/dz|   |dL/dW|       |W|  update/|W|  saturated  dead
//   layers.0.linear  3.12e-02  1.05e-01  4.62e+00    2.21e-03      0.000  0.000
//   ...
//   layers.3.linear  9.80e-02  2.43e-01  1.73e+00    5.02e-03          -      -
//   verdict: healthy (|dL/dz_1| / |dL/dz_L| = 3.18e-01)
// A value that does not apply to a layer (the saturated and dead fractions of a layer no
// activation follows, the output layer's) or was not measured (the update before the next
// step) is "-", as everywhere (Note [Missing numbers] in format.hpp); the update column is left
// out when no layer has one (the newest record: its update is measured at the next step).
#pragma once

#include "format.hpp"
#include "profile.hpp"
#include "text_table.hpp"

#include <cmath>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace gradscope::diag {

inline constexpr NumberFormat table_fraction{Notation::fixed, 3};

inline std::string format_profile(const GradientProfile& profile,
                                  const VerdictThresholds& thresholds = {}) {
    // The update a step's gradient made is measured at the next step (Moment::update), so the
    // newest record has none yet: then the column is left out rather than shown empty.
    bool updates = false;
    for (const LayerStats& l : profile.layers()) updates = updates || !std::isnan(l.update_ratio);
    std::vector<std::string> header{"layer", "|dL/dz|", "|dL/dW|", "|W|"};
    if (updates) header.push_back("update/|W|");
    header.insert(header.end(), {"saturated", "dead"});
    std::vector<bool> right_aligned(header.size(), true);
    right_aligned.front() = false;
    std::vector<std::vector<std::string>> rows;
    rows.reserve(profile.size());
    for (const LayerStats& l : profile.layers()) {
        std::vector<std::string> row{l.name, table_number(l.output_grad_norm, table_ratio),
                                     table_number(l.weight_grad_norm, table_ratio),
                                     table_number(l.weight_norm, table_ratio)};
        if (updates) row.push_back(table_number(l.update_ratio, table_ratio));
        row.push_back(table_number(l.saturated_fraction, table_fraction));
        row.push_back(table_number(l.dead_fraction, table_fraction));
        rows.push_back(std::move(row));
    }
    std::string out = text_table(header, right_aligned, rows);
    if (profile.size() >= 2) {
        out += "verdict: " + std::string(to_string(profile.verdict(thresholds))) +
               " (|dL/dz_1| / |dL/dz_L| = " +
               table_number(profile.ratio_first_last(), table_ratio) + ")\n";
    }
    return out;
}

// `std::cout << monitor.last()` prints format_profile's table with the default thresholds.
inline std::ostream& operator<<(std::ostream& out, const GradientProfile& profile) {
    return out << format_profile(profile);
}

}  // namespace gradscope::diag
