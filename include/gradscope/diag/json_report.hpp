// A depth sweep, and a monitor's history, as JSON. The one gradscope header that needs
// nlohmann_json (Debian: nlohmann-json3-dev), so diag.hpp does not include it: include it
// yourself.
//
//   {"runs": [{"activation": "relu", "init": "he", "sigma_w2": 2, "sigma_b2": 0,
//              "q_star": null, "xi_c": null, "variant": "plain",
//              "depth": 10, "width": 256, "batch": 128, "dtype": "float", "seed": 0,
//              "layers": [{"layer": 1, "output_grad_norm": ..., "weight_grad_norm": ...,
//                          "activation_norm": ...}, ...],
//              "ratio_first_last": ..., "gain_per_layer": ..., "predicted_gain_per_layer": ...,
//              "verdict": "healthy"}, ...]}
//
// Layers are numbered from 1, the input side. JSON has no NaN or infinity: a non-finite number
// is null (xi_c on the edge of chaos, where it is infinite), as are sigma_w2 where it is not
// known, q_star where the variance has no fixed point, and the prediction where the theory does
// not apply (Note [Missing numbers] in format.hpp). Numbers are written so that
// they read back as the same double.
#pragma once

#include "doctor.hpp"
#include "history.hpp"
#include "report.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <optional>
#include <vector>

namespace gradscope::diag {

// A number for any JSON gradscope writes: null where it is not finite or there is none.
inline nlohmann::json json_number(double value) {
    return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

inline nlohmann::json json_number(const std::optional<double>& value) {
    return value ? json_number(*value) : nlohmann::json(nullptr);
}

inline nlohmann::json to_json(const SweepRun& r) {
    nlohmann::json layers = nlohmann::json::array();
    const auto& stats = r.profile.layers();
    for (std::size_t l = 0; l < stats.size(); ++l) {
        layers.push_back({{"layer", l + 1},
                          {"output_grad_norm", json_number(stats[l].output_grad_norm)},
                          {"weight_grad_norm", json_number(stats[l].weight_grad_norm)},
                          {"activation_norm", json_number(stats[l].activation_norm)}});
    }
    return {{"activation", r.activation},
            {"init", r.init},
            {"sigma_w2", json_number(r.sigma_w2)},
            {"sigma_b2", json_number(r.sigma_b2)},
            {"q_star", json_number(r.q_star)},
            {"xi_c", json_number(r.xi_c)},
            {"variant", r.variant},
            {"depth", r.depth},
            {"width", r.width},
            {"batch", r.batch},
            {"dtype", r.dtype},
            {"seed", r.seed},
            {"layers", std::move(layers)},
            {"ratio_first_last", json_number(r.ratio_first_last)},
            {"gain_per_layer", json_number(r.gain_per_layer)},
            {"predicted_gain_per_layer", json_number(r.predicted_gain_per_layer)},
            {"verdict", to_string(r.verdict)}};
}

inline nlohmann::json to_json(const std::vector<SweepRun>& runs) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : runs) out.push_back(to_json(r));
    return {{"runs", std::move(out)}};
}

// A doctor's diagnosis: the measurement, the cause, the layers and the remedies, best first.
inline nlohmann::json to_json(const Diagnosis& d) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& l : d.layers) {
        layers.push_back({{"layer", l.layer},
                          {"output_grad_norm", json_number(l.output_grad_norm)},
                          {"local_gain", json_number(l.local_gain)},
                          {"saturated_fraction", json_number(l.saturated_fraction)},
                          {"dead_fraction", json_number(l.dead_fraction)},
                          {"nonfinite", l.nonfinite},
                          {"sharpness", json_number(l.sharpness)},
                          {"note", l.note}});
    }
    nlohmann::json remedies = nlohmann::json::array();
    for (const auto& r : d.remedies) {
        remedies.push_back({{"action", r.action},
                            {"layer", r.layer},
                            {"sigma_w2", json_number(r.sigma_w2)},
                            {"sigma_b2", json_number(r.sigma_b2)},
                            {"residual_scale", json_number(r.residual_scale)},
                            {"learning_rate", json_number(r.learning_rate)},
                            {"predicted_gain_per_layer", json_number(r.predicted_gain)},
                            {"predicted_ratio_first_last", json_number(r.predicted_ratio)},
                            {"predicted_verdict", to_string(r.predicted_verdict)},
                            {"basis", r.basis}});
    }
    return {{"depth", d.depth},
            {"activation", d.activation},
            {"batch_norm", d.batch_norm},
            {"residual", d.residual},
            {"unmodelled", d.unmodelled},
            {"sigma_w2", json_number(d.sigma_w2)},
            {"loss", json_number(d.loss)},
            {"ratio_first_last", json_number(d.ratio_first_last)},
            {"gain_per_layer", json_number(d.gain_per_layer)},
            {"verdict", to_string(d.verdict)},
            {"cause", to_string(d.cause)},
            {"evidence", d.evidence},
            {"first_nonfinite_module", d.first_nonfinite_module},
            {"sharpness", json_number(d.sharpness)},
            {"sharpest_layer", d.sharpest_layer},
            {"stability_limit", json_number(d.stability_limit)},
            {"layers", std::move(layers)},
            {"remedies", std::move(remedies)}};
}

// A monitor's history: what each statistic means, then every step's layers, a key per
// statistic of layer_statistics() (Note [One place per statistic]), and the network's sharpness
// (GradientMonitor::Options::sharpness), null at a step that did not measure it.
//   {"statistics": [{"name": "output_grad_norm", "meaning": "..."}, ...],
//    "steps": [{"step": 0, "sharpness": {"lambda_max": ..., "residual": ..., "products": 20,
//                                        "converged": true},
//               "layers": [{"layer": 1, "name": "layers.0.linear",
//                                      "output_grad_norm": ..., ..., "nonfinite": 0}, ...]}, ...]}
template <ProfileRange Profiles>
nlohmann::json history_json(const Profiles& history) {
    const auto statistics = layer_statistics<double>();
    nlohmann::json meanings = nlohmann::json::array();
    for (const auto& s : statistics) meanings.push_back({{"name", s.name}, {"meaning", s.meaning}});
    nlohmann::json steps = nlohmann::json::array();
    for (const GradientProfile& profile : history) {
        nlohmann::json layers = nlohmann::json::array();
        for (std::size_t l = 0; l < profile.size(); ++l) {
            const LayerStats& stats = profile.layers()[l];
            nlohmann::json layer = {{"layer", l + 1}, {"name", stats.name}};
            for (const auto& s : statistics) layer[s.name] = json_number(stats.*s.field);
            layer["nonfinite"] = stats.nonfinite;
            layers.push_back(std::move(layer));
        }
        const NetworkSharpness& sharp = profile.sharpness();
        nlohmann::json sharpness = nullptr;
        if (sharp.measured()) {
            sharpness = {{"lambda_max", json_number(sharp.sharpness)},
                         {"residual", json_number(sharp.residual)},
                         {"products", sharp.products},
                         {"converged", sharp.converged}};
        }
        steps.push_back({{"step", profile.step()},
                         {"sharpness", std::move(sharpness)},
                         {"layers", std::move(layers)}});
    }
    return {{"statistics", std::move(meanings)}, {"steps", std::move(steps)}};
}

}  // namespace gradscope::diag
