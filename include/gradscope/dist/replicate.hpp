// Making every rank's copy of a network the same: first check that the copies have the same
// parameters and buffers (names, shapes, precision), then copy rank 0's values to the others.
//
// The check comes first and uses only collectives every rank reaches whatever its network
// looks like, so that a mismatch is an error on every rank, naming the rank and the tensor,
// and never a hang or a broadcast of the wrong length.
#pragma once

#include "../nn/module.hpp"
#include "communicator.hpp"

#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace gradscope::dist {

namespace detail {

template <class T>
constexpr const char* precision_name() {
    return std::is_same_v<T, float> ? "float" : "double";
}

// One line per tensor: "parameter layers.0.linear.weight [64 x 10] double".
template <class T>
std::vector<std::string> state_lines(const Module<T>& module) {
    std::vector<std::string> lines;
    const auto add = [&](const char* kind, const auto& named) {
        for (const auto& [name, tensor] : named) {
            lines.push_back(std::string(kind) + " " + name + " " + to_string(tensor.shape()) + " " +
                            precision_name<T>());
        }
    };
    add("parameter", module.named_parameters());
    add("buffer", module.named_buffers());
    return lines;
}

inline std::string joined(const std::vector<std::string>& lines) {
    std::string text;
    for (const auto& line : lines) text += line + "\n";
    return text;
}

inline std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// Why `mine` differs from rank 0's `theirs`, or "" when it does not.
inline std::string first_difference(const std::vector<std::string>& mine,
                                    const std::vector<std::string>& theirs) {
    for (std::size_t i = 0; i < mine.size() && i < theirs.size(); ++i) {
        if (mine[i] != theirs[i]) {
            return "tensor #" + std::to_string(i) + " is '" + mine[i] + "' here but '" + theirs[i] +
                   "' on rank 0";
        }
    }
    if (mine.size() != theirs.size()) {
        const bool more = mine.size() > theirs.size();
        return "the network has " + std::to_string(mine.size()) +
               " parameters and buffers here and " + std::to_string(theirs.size()) +
               " on rank 0; the first " + (more ? "extra one here" : "missing one here") + " is '" +
               (more ? mine : theirs)[std::min(mine.size(), theirs.size())] + "'";
    }
    return {};
}

}  // namespace detail

// Throws dist_error on every rank unless every rank's module has the same parameters and
// buffers as rank 0's, in the same order, with the same names, shapes and precision. A
// collective: every rank must call it.
template <class T>
void check_same_state(const Communicator& comm, const Module<T>& module) {
    const std::vector<std::string> mine = detail::state_lines(module);
    std::string reference = comm.rank() == 0 ? detail::joined(mine) : std::string();
    comm.broadcast_string(reference, 0);
    const std::string difference =
        comm.rank() == 0 ? std::string()
                         : detail::first_difference(mine, detail::split_lines(reference));
    comm.agree_or_throw(difference);
}

namespace detail {
template <class T>
void broadcast_values(const Communicator& comm,
                      std::vector<std::pair<std::string, Tensor<T>>> named, int root) {
    for (auto& [name, tensor] : named) {
        auto value = tensor.data();
        comm.broadcast(std::span<T>(value.data(), static_cast<std::size_t>(value.size())), root);
    }
}
}  // namespace detail

// Copies every buffer's value (running statistics) on `root` into the other ranks' module.
template <class T>
void broadcast_buffers(const Communicator& comm, Module<T>& module, int root = 0) {
    detail::broadcast_values(comm, module.named_buffers(), root);
}

// Copies every parameter's and buffer's value on `root` into the other ranks' module. Call
// check_same_state first (DataParallel does): this one trusts the shapes.
template <class T>
void broadcast_state(const Communicator& comm, Module<T>& module, int root = 0) {
    detail::broadcast_values(comm, module.named_parameters(), root);
    broadcast_buffers(comm, module, root);
}

}  // namespace gradscope::dist
