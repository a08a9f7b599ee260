// copy_state(from, to): every parameter and buffer of `from` into the tensor of the same name in
// `to` — what PyTorch writes as to.load_state_dict(from.state_dict()) — for a twin of a network
// (to run a diagnosis on a copy, to keep the best weights in memory, to start a float network
// from a double one). Names, not positions, pair the tensors, so two networks whose modules were
// registered in different orders still copy right; a missing or extra name, or a shape that
// differs, is an error that names the tensor, raised before anything is written.
#pragma once

#include "../core/errors.hpp"
#include "module.hpp"

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace gradscope {

namespace detail {

// The tensors of `kind` ("parameter" or "buffer") of `to`, each paired with its namesake in
// `from`; throws for a name only one side has or for differing shapes.
template <class From, class To>
std::vector<std::pair<const From*, To*>> pair_by_name(
    const std::vector<std::pair<std::string, From>>& from,
    std::vector<std::pair<std::string, To>>& to, const char* kind) {
    std::map<std::string, const From*> by_name;
    for (const auto& [name, tensor] : from) by_name.emplace(name, &tensor);
    std::vector<std::pair<const From*, To*>> pairs;
    for (auto& [name, tensor] : to) {
        const auto found = by_name.find(name);
        if (found == by_name.end()) {
            throw value_error("copy_state: the target's " + std::string(kind) + " '" + name +
                              "' has no namesake in the source");
        }
        if (found->second->shape() != tensor.shape()) {
            throw shape_error("copy_state: " + std::string(kind) + " '" + name + "' is " +
                              to_string(found->second->shape()) + " in the source and " +
                              to_string(tensor.shape()) + " in the target");
        }
        pairs.emplace_back(found->second, &tensor);
        by_name.erase(found);
    }
    if (!by_name.empty()) {
        throw value_error("copy_state: the source's " + std::string(kind) + " '" +
                          by_name.begin()->first + "' has no namesake in the target");
    }
    return pairs;
}

}  // namespace detail

// Copies the values only: requires_grad flags, gradients and hooks stay the target's own.
template <class U, class T>
void copy_state(const Module<U>& from, Module<T>& to) {
    const auto from_parameters = from.named_parameters();
    auto to_parameters = to.named_parameters();
    const auto from_buffers = from.named_buffers();
    auto to_buffers = to.named_buffers();
    // Every pair is checked before the first write: an error leaves the target as it was.
    const auto parameters = detail::pair_by_name(from_parameters, to_parameters, "parameter");
    const auto buffers = detail::pair_by_name(from_buffers, to_buffers, "buffer");
    for (const auto& [source, target] : parameters) target->copy_from(*source);
    for (const auto& [source, target] : buffers) target->copy_from(*source);
}

}  // namespace gradscope
