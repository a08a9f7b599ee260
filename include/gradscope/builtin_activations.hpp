// The built-in activations as values, for programs that choose one by name at run time (the
// command-line tools). The list itself is builtin_activations.inc, which the precompiled library's
// instantiations read too, so the two cannot disagree.
#pragma once

#include "core/activations.hpp"

#include <string>
#include <vector>

namespace gradscope {

// Calls f(Act{}) for every built-in activation type Act, in the list's order. An activation's
// name on the command line is its `Act::name` ("relu", "leaky_relu", ...).
template <class F>
constexpr void for_each_builtin_activation(F&& f) {
#define GRADSCOPE_ACTIVATION(Act) f(Act{});
#include "builtin_activations.inc"
}

inline std::vector<std::string> builtin_activation_names() {
    std::vector<std::string> names;
    for_each_builtin_activation([&](auto act) { names.emplace_back(decltype(act)::name); });
    return names;
}

}  // namespace gradscope
