// Checkpoints in data-parallel training: rank 0 writes the file (atomically, as
// io/safetensors.hpp does: a failed save leaves the previous file intact), and every rank loads
// it, from bytes rank 0 read and broadcast, so the ranks need not share a file system and
// cannot load different files.
//
// Every function here is a collective, and a failure on any rank (a write rank 0 could not
// make, a file that does not fit the network) throws the same dist_error on every rank, naming
// that rank and its error, so that no rank trains on alone.
#pragma once

#include "../io/safetensors.hpp"
#include "../optim/optimizer.hpp"
#include "communicator.hpp"

#include <cstddef>
#include <exception>
#include <filesystem>
#include <string>
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

template <class T>
void save_on_root(const Communicator& comm, const std::filesystem::path& path,
                  const Module<T>& module, const Optimizer<T>* optimizer,
                  const SaveOptions& options) {
    std::string failure;
    if (comm.rank() == 0) {
        failure = failure_of([&] {
            if (optimizer) {
                gradscope::save_checkpoint(path, module, *optimizer, options);
            } else {
                gradscope::save_checkpoint(path, module, options);
            }
        });
    }
    comm.agree_or_throw(failure);
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
    // A rank whose load succeeded undoes it when another's failed: this state, kept as bytes.
    const std::vector<std::byte> before =
        optimizer ? gradscope::save_checkpoint_to_bytes(module, *optimizer)
                  : gradscope::save_checkpoint_to_bytes(module);
    // The file holds rank 0's dropout streams: every rank keeps its own (LoadOptions).
    LoadOptions own_streams = options;
    own_streams.extra_state = false;
    LoadReport report;
    failure = failure_of([&] {
        report = optimizer ? gradscope::load_checkpoint_from_bytes(bytes, module, *optimizer,
                                                                   own_streams, path.string())
                           : gradscope::load_checkpoint_from_bytes(bytes, module, own_streams,
                                                                   path.string());
    });
    try {
        comm.agree_or_throw(failure);
    } catch (const dist_error&) {
        if (failure.empty()) {
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
// on any (a rank whose load succeeded puts back what it had).
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
