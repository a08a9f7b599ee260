// Checkpoints in data-parallel training: rank 0 writes the file (atomically, as
// io/safetensors.hpp does: a failed save leaves the previous file intact), and every rank loads
// it, from bytes rank 0 read and broadcast, so the ranks need not share a file system and
// cannot load different files.
//
// Every function here is a collective, and a failure on any rank (a write rank 0 could not
// make, a file that does not fit the network) throws the same dist_error on every rank, naming
// that rank and its error, so that no rank trains on alone.
//
// Each rank's extra state (Dropout's random stream, which DataParallel makes distinct per rank)
// goes into the file too: rank 0's under the keys one process uses ("<path>._extra_state"),
// rank r's under "dist.rank.<r>.<path>._extra_state", and the number of ranks under
// "dist.world_size" (the prefix "dist." is reserved in the metadata of these saves). Loading a
// file saved by as many ranks gives every rank its own streams back, so a resumed run draws the
// masks the uninterrupted one would have; a file from another number of ranks, or from one
// process, leaves every rank's streams as they are. Load after constructing DataParallel, whose
// constructor reseeds the streams.
#pragma once

#include "../io/safetensors.hpp"
#include "../optim/optimizer.hpp"
#include "communicator.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <exception>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace gradscope::dist {

namespace detail {

// Runs `work` and returns "" or the message of what it threw.
template <class F>
std::string failure_of(F&& work) {
    try {
        work();
        return {};
    } catch (const std::exception& e) {
        return e.what();
    }
}

inline constexpr std::string_view reserved_prefix = "dist.";
inline constexpr std::string_view world_size_key = "dist.world_size";

// Where rank r's extra states are in the metadata: in front of the key one process uses.
inline std::string rank_prefix(int rank) {
    return rank == 0 ? std::string() : "dist.rank." + std::to_string(rank) + ".";
}

// A rank's extra states on their way to rank 0, as JSON (which the checkpoint header is written
// in anyway). Text that is not UTF-8 is replaced rather than thrown on here, before the gather,
// where one rank throwing would leave the others waiting; the save on rank 0 reports such a
// name as it does for one process.
inline std::vector<std::byte> encode(const std::map<std::string, std::string>& states) {
    const std::string text =
        nlohmann::json(states).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    const auto* first = reinterpret_cast<const std::byte*>(text.data());
    return {first, first + text.size()};
}

inline std::map<std::string, std::string> decode(const std::vector<std::byte>& bytes) {
    const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return nlohmann::json::parse(text).get<std::map<std::string, std::string>>();
}

// The options rank 0 saves with: the caller's metadata, the number of ranks, and every other
// rank's extra states (rank 0's own are added by the save, as for one process).
inline SaveOptions with_rank_states(SaveOptions options,
                                    const std::vector<std::vector<std::byte>>& states,
                                    const std::filesystem::path& path) {
    using gradscope::detail::safetensors::fail;
    using gradscope::detail::safetensors::in_quotes;
    for (const auto& [key, value] : options.metadata) {
        if (key.starts_with(reserved_prefix)) {
            fail(path.string(), "cannot save: the metadata key " + in_quotes(key) +
                                    " uses the prefix \"dist.\", reserved for each rank's state");
        }
    }
    options.metadata.emplace(world_size_key, std::to_string(states.size()));
    for (std::size_t rank = 1; rank < states.size(); ++rank) {
        for (auto& [key, state] : decode(states[rank])) {
            options.metadata.emplace(rank_prefix(static_cast<int>(rank)) + key, std::move(state));
        }
    }
    return options;
}

template <class T>
void save_on_root(const Communicator& comm, const std::filesystem::path& path,
                  const Module<T>& module, const Optimizer<T>* optimizer,
                  const SaveOptions& options) {
    const std::vector<std::vector<std::byte>> states =
        comm.gather_bytes(encode(gradscope::detail::safetensors::extra_states(module)));
    std::string failure;
    if (comm.rank() == 0) {
        failure = failure_of([&] {
            const SaveOptions all_ranks = with_rank_states(options, states, path);
            if (optimizer) {
                gradscope::save_checkpoint(path, module, *optimizer, all_ranks);
            } else {
                gradscope::save_checkpoint(path, module, all_ranks);
            }
        });
    }
    comm.agree_or_throw(failure);
}

// Sets this rank's extra states from a file saved by as many ranks (see the top of this file).
template <class T>
void restore_rank_states(const Communicator& comm,
                         const std::map<std::string, std::string>& metadata, Module<T>& module,
                         const std::filesystem::path& path) {
    using namespace gradscope::detail::safetensors;
    const auto saved_by = metadata.find(std::string(world_size_key));
    if (saved_by == metadata.end()) return;
    const auto ranks = parse_number<int>(saved_by->second);
    if (!ranks || *ranks < 1) {
        fail(path.string(), "metadata " + in_quotes(world_size_key) +
                                " must be a positive whole number, got " +
                                in_quotes(saved_by->second));
    }
    if (*ranks != comm.size()) return;
    const std::string prefix = rank_prefix(comm.rank());
    for (const auto& [module_path, m] : module.named_modules()) {
        const auto it = metadata.find(prefix + extra_state_key(module_path));
        if (it == metadata.end() || m->extra_state().empty()) continue;
        try {
            m->set_extra_state(it->second);
        } catch (const error& e) {
            fail(path.string(), "metadata " + in_quotes(it->first) + ": " + e.what());
        }
    }
}

template <class T>
LoadReport load_from_root(const Communicator& comm, const std::filesystem::path& path,
                          Module<T>& module, Optimizer<T>* optimizer, const LoadOptions& options) {
    std::vector<std::byte> bytes;
    std::string failure;
    if (comm.rank() == 0) {
        failure = failure_of([&] { bytes = gradscope::detail::safetensors::read_file(path); });
    }
    comm.agree_or_throw(failure);
    comm.broadcast_vector(bytes, 0);
    // A rank that changed anything undoes it when a rank failed: this state, kept as bytes.
    const std::vector<std::byte> before =
        optimizer ? gradscope::save_checkpoint_to_bytes(module, *optimizer)
                  : gradscope::save_checkpoint_to_bytes(module);
    // The load sets the tensors and the optimiser state; each rank's own extra states follow.
    LoadOptions tensors_only = options;
    tensors_only.extra_state = false;
    LoadReport report;
    bool changed = false;
    failure = failure_of([&] {
        report = optimizer ? gradscope::load_checkpoint_from_bytes(bytes, module, *optimizer,
                                                                   tensors_only, path.string())
                           : gradscope::load_checkpoint_from_bytes(bytes, module, tensors_only,
                                                                   path.string());
        changed = true;
        if (options.extra_state) restore_rank_states(comm, report.metadata, module, path);
    });
    try {
        comm.agree_or_throw(failure);
    } catch (const dist_error&) {
        if (changed) {
            if (optimizer) {
                gradscope::load_checkpoint_from_bytes(before, module, *optimizer);
            } else {
                gradscope::load_checkpoint_from_bytes(before, module);
            }
        }
        throw;
    }
    return report;
}

}  // namespace detail

// Rank 0 writes `module` to `path`; the others wait for it to succeed or fail.
template <class T>
void save_checkpoint(const Communicator& comm, const std::filesystem::path& path,
                     const Module<T>& module, const SaveOptions& options = {}) {
    detail::save_on_root<T>(comm, path, module, nullptr, options);
}

// The same, with the optimiser's state (which DataParallel keeps equal on every rank).
template <class T>
void save_checkpoint(const Communicator& comm, const std::filesystem::path& path,
                     const Module<T>& module, const Optimizer<T>& optimizer,
                     const SaveOptions& options = {}) {
    detail::save_on_root<T>(comm, path, module, &optimizer, options);
}

// Every rank loads the file rank 0 reads: all of it on every rank or, on a dist_error, nothing
// on any (a rank that changed anything puts back what it had).
template <class T>
LoadReport load_checkpoint(const Communicator& comm, const std::filesystem::path& path,
                           Module<T>& module, const LoadOptions& options = {}) {
    return detail::load_from_root<T>(comm, path, module, nullptr, options);
}

template <class T>
LoadReport load_checkpoint(const Communicator& comm, const std::filesystem::path& path,
                           Module<T>& module, Optimizer<T>& optimizer,
                           const LoadOptions& options = {}) {
    return detail::load_from_root<T>(comm, path, module, &optimizer, options);
}

}  // namespace gradscope::dist
