// A GradientMonitor's history as CSV: one row per step and layer, one column per statistic of
// layer_statistics() (Note [One place per statistic]), so a statistic added there appears here
// without a change. Missing numbers are empty fields (Note [Missing numbers] in format.hpp).
//
//   step,layer,name,output_grad_norm,weight_grad_norm,...,nonfinite
//   0,1,layers.0.linear,0.0123,...,0
//
// Layers are numbered from 1, the input side. The JSON form is history_json in json_report.hpp.
#pragma once

#include "format.hpp"
#include "layer_statistics.hpp"
#include "profile.hpp"

#include <concepts>
#include <ostream>
#include <ranges>

namespace gradscope::diag {

// A range of profiles: a monitor's history (a deque), or any other.
template <class R>
concept ProfileRange =
    std::ranges::input_range<R> && std::same_as<std::ranges::range_value_t<R>, GradientProfile>;

// A template, so that a program that writes no history does not compile the statistics' code.
template <ProfileRange Profiles>
void write_history_csv(std::ostream& out, const Profiles& history) {
    const auto statistics = layer_statistics<double>();
    out << "step,layer,name";
    for (const auto& s : statistics) out << ',' << s.name;
    out << ",nonfinite\n";
    for (const GradientProfile& profile : history) {
        for (std::size_t l = 0; l < profile.size(); ++l) {
            const LayerStats& stats = profile.layers()[l];
            // Module paths are dotted names without commas or quotes (Module::register_*).
            out << profile.step() << ',' << (l + 1) << ',' << stats.name;
            for (const auto& s : statistics) out << ',' << csv_number(stats.*s.field);
            out << ',' << stats.nonfinite << '\n';
        }
    }
}

}  // namespace gradscope::diag
