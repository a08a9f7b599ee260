// MPI for gradscope: starting and stopping MPI (Environment), and the few collectives
// data-parallel training needs (Communicator), with every MPI failure turned into a
// gradscope::dist_error that names the call.
//
// This header and the rest of gradscope/dist need MPI (CMake: link gradscope::mpi); nothing
// else in gradscope includes them, so programs that do not use MPI never need it.
//
// Threads: Environment asks for MPI_THREAD_FUNNELED, so MPI is called from the thread that
// started it. gradscope's own MPI calls happen there: in backward (which runs on the calling
// thread) and in the functions below. A DataLoader's prefetch thread makes no MPI call.
#pragma once

#include "../core/errors.hpp"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace gradscope {

// An MPI call failed, or the ranks disagree about something they must share (the parameters'
// names and shapes, a checkpoint's bytes). The message names the call or the rank.
class dist_error : public error {
public:
    using error::error;
};

namespace dist {

namespace detail {

inline std::string mpi_error_text(int code) {
    char text[MPI_MAX_ERROR_STRING] = {};
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
        return "MPI error " + std::to_string(code);
    return std::string(text, static_cast<std::size_t>(length));
}

inline void check(int code, const char* call) {
    if (code != MPI_SUCCESS) {
        throw dist_error(std::string(call) + " failed: " + mpi_error_text(code));
    }
}

template <class T>
MPI_Datatype datatype() {
    if constexpr (std::is_same_v<T, float>) {
        return MPI_FLOAT;
    } else if constexpr (std::is_same_v<T, double>) {
        return MPI_DOUBLE;
    } else if constexpr (std::is_same_v<T, int>) {
        return MPI_INT;
    } else if constexpr (std::is_same_v<T, std::uint64_t>) {
        return MPI_UINT64_T;
    } else if constexpr (std::is_same_v<T, std::byte> || std::is_same_v<T, char>) {
        return MPI_BYTE;
    } else {
        static_assert(sizeof(T) == 0, "gradscope::dist: no MPI datatype for this type");
    }
}

// MPI counts are ints: a longer buffer goes in pieces of at most this many elements.
inline constexpr std::size_t max_count = INT_MAX;

inline int count_of(std::size_t n, const char* call) {
    if (n > max_count) {
        throw dist_error(std::string(call) + ": " + std::to_string(n) +
                         " elements is more than one MPI call can take (" +
                         std::to_string(max_count) + ")");
    }
    return static_cast<int>(n);
}

}  // namespace detail

// Whether an MPI launcher (mpiexec, mpirun, srun) started this process, as one of several ranks
// or alone: the launchers of OpenMPI, MPICH and Slurm's PMI set these. A program that may also run
// on its own starts MPI only then (an MPI library started without a launcher may fork helper
// processes or fail where networking is restricted).
inline bool launched_by_mpi() {
    for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"}) {
        if (std::getenv(name) != nullptr) return true;
    }
    return false;
}

// Starts MPI for the program's lifetime and stops it at the end, if it was not already
// started by someone else (then it is theirs to stop). Make one at the top of main():
//   int main(int argc, char** argv) { gradscope::dist::Environment mpi(argc, argv); ... }
class Environment {
public:
    Environment(int& argc, char**& argv) { start(&argc, &argv); }
    Environment() { start(nullptr, nullptr); }
    Environment(const Environment&) = delete;
    Environment& operator=(const Environment&) = delete;
    ~Environment() {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (owns_ && !finalized) MPI_Finalize();
    }

    // The thread support MPI gave (MPI_THREAD_FUNNELED or more).
    [[nodiscard]] int thread_support() const noexcept { return provided_; }

private:
    void start(int* argc, char*** argv) {
        int initialized = 0;
        detail::check(MPI_Initialized(&initialized), "MPI_Initialized");
        if (initialized) {
            detail::check(MPI_Query_thread(&provided_), "MPI_Query_thread");
        } else {
            detail::check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided_),
                          "MPI_Init_thread");
            owns_ = true;
        }
        if (provided_ < MPI_THREAD_FUNNELED) {
            throw dist_error(
                "MPI provides no thread support (MPI_THREAD_SINGLE); gradscope needs "
                "MPI_THREAD_FUNNELED, because Eigen and the data loader run threads beside the "
                "one that calls MPI");
        }
    }
    bool owns_ = false;
    int provided_ = 0;
};

// A group of ranks that take part in the same collectives: its own duplicate of the MPI
// communicator it is made from (MPI_COMM_WORLD by default), so that gradscope's messages never
// match a program's own, with errors returned rather than aborting, so that they become
// exceptions. Copies share the duplicate; the last one frees it.
class Communicator {
public:
    explicit Communicator(MPI_Comm base = MPI_COMM_WORLD) {
        int initialized = 0;
        MPI_Initialized(&initialized);
        if (!initialized) {
            throw dist_error(
                "gradscope::dist::Communicator: MPI is not started; make a "
                "gradscope::dist::Environment first");
        }
        MPI_Comm comm = MPI_COMM_NULL;
        detail::check(MPI_Comm_dup(base, &comm), "MPI_Comm_dup");
        comm_ = std::shared_ptr<MPI_Comm>(new MPI_Comm(comm), [](MPI_Comm* c) {
            int finalized = 0;
            MPI_Finalized(&finalized);
            if (!finalized) MPI_Comm_free(c);
            delete c;
        });
        detail::check(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
        detail::check(MPI_Comm_rank(comm, &rank_), "MPI_Comm_rank");
        detail::check(MPI_Comm_size(comm, &size_), "MPI_Comm_size");
    }

    [[nodiscard]] int rank() const noexcept { return rank_; }
    [[nodiscard]] int size() const noexcept { return size_; }
    [[nodiscard]] MPI_Comm native() const noexcept { return *comm_; }

    void barrier() const { detail::check(MPI_Barrier(native()), "MPI_Barrier"); }

    // data on `root` is copied into data on every other rank; the lengths must agree.
    template <class T>
    void broadcast(std::span<T> data, int root = 0) const {
        for (std::size_t start = 0; start < data.size(); start += detail::max_count) {
            const std::size_t n = std::min(detail::max_count, data.size() - start);
            detail::check(MPI_Bcast(data.data() + start, static_cast<int>(n), detail::datatype<T>(),
                                    root, native()),
                          "MPI_Bcast");
        }
    }

    // A buffer whose length only `root` knows: the others are resized to it.
    template <class T>
    void broadcast_vector(std::vector<T>& data, int root = 0) const {
        std::uint64_t n = data.size();
        broadcast(std::span<std::uint64_t>(&n, 1), root);
        if (rank_ != root) data.resize(static_cast<std::size_t>(n));
        broadcast(std::span<T>(data), root);
    }

    void broadcast_string(std::string& text, int root = 0) const {
        std::vector<char> bytes(text.begin(), text.end());
        broadcast_vector(bytes, root);
        text.assign(bytes.begin(), bytes.end());
    }

    // data = the element-wise sum of every rank's data, on every rank.
    template <class T>
    void all_reduce_sum(std::span<T> data) const {
        detail::check(
            MPI_Allreduce(MPI_IN_PLACE, data.data(), detail::count_of(data.size(), "MPI_Allreduce"),
                          detail::datatype<T>(), MPI_SUM, native()),
            "MPI_Allreduce");
    }

    // The same, started and not waited for: the request completes with MPI_Wait/MPI_Test, and
    // data must stay put until then.
    template <class T>
    [[nodiscard]] MPI_Request start_all_reduce_sum(std::span<T> data) const {
        MPI_Request request = MPI_REQUEST_NULL;
        detail::check(MPI_Iallreduce(MPI_IN_PLACE, data.data(),
                                     detail::count_of(data.size(), "MPI_Iallreduce"),
                                     detail::datatype<T>(), MPI_SUM, native(), &request),
                      "MPI_Iallreduce");
        return request;
    }

    [[nodiscard]] int all_reduce_min(int value) const {
        detail::check(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT, MPI_MIN, native()),
                      "MPI_Allreduce");
        return value;
    }
    [[nodiscard]] int all_reduce_max(int value) const {
        detail::check(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT, MPI_MAX, native()),
                      "MPI_Allreduce");
        return value;
    }

    // Every rank's `bytes`, on `root` (in rank order; empty elsewhere): what a rank computed, of
    // a length only it knows, collected where it is written.
    [[nodiscard]] std::vector<std::vector<std::byte>> gather_bytes(
        const std::vector<std::byte>& bytes, int root = 0) const {
        const int mine = detail::count_of(bytes.size(), "MPI_Gatherv");
        std::vector<int> lengths(rank_ == root ? static_cast<std::size_t>(size_) : 0);
        detail::check(MPI_Gather(&mine, 1, MPI_INT, lengths.data(), 1, MPI_INT, root, native()),
                      "MPI_Gather");
        std::vector<int> offsets(lengths.size());
        std::size_t total = 0;
        for (std::size_t r = 0; r < lengths.size(); ++r) {
            offsets[r] = detail::count_of(total, "MPI_Gatherv");
            total += static_cast<std::size_t>(lengths[r]);
        }
        detail::count_of(total, "MPI_Gatherv");  // the end of the last piece is an int too
        std::vector<std::byte> all(total);
        detail::check(MPI_Gatherv(bytes.data(), mine, MPI_BYTE, all.data(), lengths.data(),
                                  offsets.data(), MPI_BYTE, root, native()),
                      "MPI_Gatherv");
        std::vector<std::vector<std::byte>> out(lengths.size());
        for (std::size_t r = 0; r < lengths.size(); ++r) {
            const auto first = all.begin() + offsets[r];
            out[r].assign(first, first + lengths[r]);
        }
        return out;
    }

    // Every rank learns whether any rank failed, and why: `failure` is empty where a rank
    // succeeded. When one did not, every rank throws the same dist_error, naming the lowest
    // failing rank, so that no rank goes on to a collective the others never reach.
    void agree_or_throw(const std::string& failure) const {
        const int first_failed = all_reduce_min(failure.empty() ? size_ : rank_);
        if (first_failed == size_) return;
        std::string message = failure;
        broadcast_string(message, first_failed);
        throw dist_error("rank " + std::to_string(first_failed) + " of " + std::to_string(size_) +
                         ": " + message);
    }

private:
    std::shared_ptr<MPI_Comm> comm_;
    int rank_ = 0;
    int size_ = 1;
};

}  // namespace dist
}  // namespace gradscope
