// The common recipe "no weight decay on biases and normalisation parameters" as parameter
// groups, in one line:
//
//   AdamW<float> adamw(weight_decay_groups(*net), {.lr = 1e-3, .weight_decay = 0.05});
//
// Decay pulls weights towards 0 to limit a layer's gain; a bias or a normalisation layer's
// shift has no gain to limit, and pulling a normalisation scale towards 0 shrinks the layer's
// output instead of regularising it. The roles the modules declared when they registered their
// parameters (nn/module.hpp) say which is which, so no name patterns are guessed.
#pragma once

#include "../nn/module.hpp"
#include "param_group.hpp"

#include <string>
#include <vector>

namespace gradscope {

inline bool exempt_from_weight_decay(TensorRole role) {
    return role == TensorRole::bias || role == TensorRole::norm_scale ||
           role == TensorRole::norm_shift;
}

// Group 0: the weights and every other parameter, with the optimiser's options. Group 1: the
// biases and the normalisation scales and shifts, with weight_decay 0 and otherwise the
// optimiser's options. Both are named, so their state is saved by name; either may be empty.
template <class T>
std::vector<ParamGroup<T>> weight_decay_groups(const Module<T>& module) {
    auto decayed = module.named_parameters_matching(
        [](const std::string&, TensorRole role) { return !exempt_from_weight_decay(role); });
    auto exempt = module.named_parameters_matching(
        [](const std::string&, TensorRole role) { return exempt_from_weight_decay(role); });
    std::vector<ParamGroup<T>> groups;
    groups.push_back({ParameterList<T>(decayed), {}});
    groups.push_back({ParameterList<T>(exempt), {.weight_decay = 0.0}});
    return groups;
}

}  // namespace gradscope
