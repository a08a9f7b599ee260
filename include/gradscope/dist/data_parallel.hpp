// DataParallel: data-parallel training over MPI in the manner of PyTorch's
// DistributedDataParallel. Every rank holds the same network, runs it on its own share of the
// batch, and after each backward pass holds the average of all ranks' gradients, so that the
// optimiser steps stay identical on every rank.
//
//   gradscope::dist::Environment mpi(argc, argv);
//   gradscope::dist::Communicator comm;
//   auto net = gradscope::mlp<double>({...});
//   gradscope::dist::DataParallel<double> ddp(*net, comm);   // checks, then copies rank 0's weights
//   ... loss = cross_entropy(ddp(x_shard), y_shard); loss.backward(); optimizer.step(); ...
//
// How: at construction every rank checks that its network has rank 0's parameters and buffers
// (names, shapes, precision) and takes rank 0's values. The parameters that require a gradient
// are laid out, last first (the order backward finishes them), in buckets: contiguous buffers of
// about Options::bucket_bytes. A gradient hook on each parameter copies this pass's gradient
// into its bucket and leaves zero in its place; when a bucket's last gradient arrives, a
// non-blocking MPI all-reduce (sum) of the bucket starts, while backward goes on with the layers
// below (overlap). What a bucket holds for a parameter is its whole gradient: what earlier passes
// left in it plus this pass's. The hook of the pass's last parameter waits for every all-reduce
// and sets each gradient to its average (sum / ranks), before backward returns and before any
// module's parameter-gradient hooks (a GradientMonitor's) run: they see the averaged gradients.
// Buckets start in the same order on every rank, as MPI requires of collectives.
//
// What it means: with a loss that averages over the samples (the default reduction) and equal
// shards, the averaged gradient is the gradient of the whole batch's loss, to rounding, and the
// training is that of one process on the whole batch (tests/dist/ check it to 1e-12). Layers that
// use batch statistics (BatchNorm1d) see only their own rank's shard; with
// Options::broadcast_buffers each forward through DataParallel first copies rank 0's buffers
// (the running statistics) to every rank, as PyTorch does.
//
// Gradient accumulation: backward passes run while a no_sync() guard lives add to the local
// gradients and communicate nothing; the next synchronised pass averages the whole accumulated
// gradient, as PyTorch's DDP does:
//
//   optimizer.zero_grad();
//   { auto local = ddp.no_sync(); for (micro-batches but the last) (loss / m).backward(); }
//   (last_loss / m).backward();   // one all-reduce of everything accumulated
//   optimizer.step();
//
// Accumulating without no_sync() is correct too (each pass averages the whole gradient again;
// the average of equal values is that value, to rounding), but communicates every pass.
// Parameters that get no gradient on any rank keep none. A backward pass on a thread other than
// the one that started MPI breaks MPI_THREAD_FUNNELED.
#pragma once

#include "../core/errors.hpp"
#include "../core/tensor.hpp"
#include "../nn/dropout.hpp"
#include "../nn/module.hpp"
#include "communicator.hpp"
#include "replicate.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace gradscope::dist {

struct DataParallelOptions {
    // A bucket is all-reduced as one message once all of its gradients are in. Smaller buckets
    // start sooner (more overlap), larger ones pay the per-message latency fewer times.
    std::size_t bucket_bytes = std::size_t{1} << 20;
    // Start each bucket's all-reduce as soon as it is complete, during backward; false: start
    // them all when backward has finished (the same numbers, later).
    bool overlap = true;
    // Copy rank 0's buffers (running statistics) to every rank before each forward through
    // DataParallel::operator().
    bool broadcast_buffers = true;
    // Reseed every Dropout layer on rank r > 0 with its seed + r * 0x9E3779B97F4A7C15, so that
    // the ranks draw independent masks for their shards, as one process draws each row's mask
    // anew; rank 0 keeps its layers' streams. false: every rank draws the same masks, a
    // correlation between the shards that one process on the whole batch does not have.
    bool distinct_dropout_masks = true;
};

// What the reductions cost so far, on this rank.
struct DataParallelStats {
    std::size_t passes = 0;              // backward passes synchronised
    std::size_t local_passes = 0;        // backward passes under no_sync(): nothing sent
    std::size_t buckets_reduced = 0;     // all-reduces run
    std::size_t buckets_overlapped = 0;  // of those, started while backward was still running
    std::size_t bytes_reduced = 0;       // bucket bytes sent into all-reduces
    double seconds_waiting = 0.0;        // in MPI_Waitall at the end of each pass
};

template <class T>
class DataParallel {
public:
    using Options = DataParallelOptions;

    // A bucket: some parameters' gradients side by side in one buffer.
    struct Bucket {
        std::vector<std::size_t> parameters;  // indices into the parameters that require grad
        std::vector<std::size_t> offsets;     // where each starts in `values`
        std::vector<T> values;
        std::size_t arrived = 0;  // gradients in, this pass
        MPI_Request request = MPI_REQUEST_NULL;
        bool started = false;
    };

    DataParallel(Module<T>& module, Communicator comm, const Options& options = {})
        : module_(module), comm_(std::move(comm)), options_(options) {
        if (options.bucket_bytes == 0) {
            throw value_error("DataParallel: bucket_bytes must be positive");
        }
        check_same_state(comm_, module_);
        broadcast_state(comm_, module_, 0);
        if (options.distinct_dropout_masks) reseed_dropout();
        for (auto& [name, p] : module_.named_parameters()) {
            if (!p.requires_grad()) continue;
            names_.push_back(name);
            parameters_.push_back(p);
        }
        lay_out_buckets();
        reported_.assign(parameters_.size(), false);
        for (std::size_t i = 0; i < parameters_.size(); ++i) {
            parameter_hooks_.push_back(parameters_[i].register_hook(
                [this, i](MatrixView<T> grad) { on_gradient(i, grad); }));
        }
        // The fallback end of a pass: a pass in which some parameter got no gradient ends when
        // backward reaches the end, with the module's other parameter-gradient hooks.
        end_of_pass_hook_ = module_.register_param_grad_hook([this](Module<T>&) {
            if (synchronizing_) {
                finish();
            } else {
                ++stats_.local_passes;
            }
        });
    }

    DataParallel(const DataParallel&) = delete;
    DataParallel& operator=(const DataParallel&) = delete;

    ~DataParallel() {
        for (auto& h : parameter_hooks_) h.remove();
        end_of_pass_hook_.remove();
        // A pass that an exception interrupted may leave reductions running: MPI requires them
        // to complete before their buffers go.
        for (Bucket& b : buckets_) {
            if (b.request != MPI_REQUEST_NULL) MPI_Wait(&b.request, MPI_STATUS_IGNORE);
        }
    }

    // The module's forward, after copying rank 0's buffers when Options::broadcast_buffers.
    Tensor<T> operator()(const Tensor<T>& input) {
        if (options_.broadcast_buffers) broadcast_buffers();
        return module_(input);
    }

    // Copies rank 0's buffers to every rank. A collective.
    void broadcast_buffers() { dist::broadcast_buffers(comm_, module_, 0); }

    // Ends the current pass, if one has begun: starts the buckets not yet started (a parameter
    // that got no gradient in this pass contributes the gradient it has), waits for every
    // all-reduce, and sets the gradients to the averages. Backward calls it; calling it again
    // does nothing.
    void finish() { finish_pass(std::nullopt); }

    // While the returned guard lives, backward passes leave their gradients on this rank,
    // unsent (gradient accumulation); the first synchronised pass after it averages everything
    // accumulated. Every rank must run the same passes under the guard, as collectives require.
    class [[nodiscard]] NoSync {
    public:
        explicit NoSync(DataParallel& ddp) : ddp_(&ddp), previous_(ddp.synchronizing_) {
            if (ddp.in_pass_) {
                throw dist_error(
                    "DataParallel::no_sync(): a synchronised backward pass is in progress");
            }
            ddp.synchronizing_ = false;
        }
        NoSync(const NoSync&) = delete;
        NoSync& operator=(const NoSync&) = delete;
        ~NoSync() { ddp_->synchronizing_ = previous_; }

    private:
        DataParallel* ddp_;
        bool previous_;
    };
    NoSync no_sync() { return NoSync(*this); }
    [[nodiscard]] bool synchronizing() const noexcept { return synchronizing_; }

    // Averages every gradient over the ranks now, without a backward pass: for accumulation
    // whose last pass also ran under no_sync(). A collective; an error under no_sync().
    void synchronize_gradients() {
        if (!synchronizing_) {
            throw dist_error("DataParallel::synchronize_gradients() called under no_sync()");
        }
        in_pass_ = true;
        finish_pass(std::nullopt);
    }

    [[nodiscard]] Module<T>& module() noexcept { return module_; }
    [[nodiscard]] const Communicator& communicator() const noexcept { return comm_; }
    [[nodiscard]] const std::vector<Bucket>& buckets() const noexcept { return buckets_; }
    [[nodiscard]] const std::vector<std::string>& parameter_names() const noexcept {
        return names_;
    }
    [[nodiscard]] const DataParallelStats& stats() const noexcept { return stats_; }

private:
    void reseed_dropout() {
        const auto rank = static_cast<std::uint64_t>(comm_.rank());
        if (rank == 0) return;
        for (auto& [path, module] : module_.named_modules()) {
            if (auto* dropout = dynamic_cast<Dropout<T>*>(module)) {
                dropout->reseed(dropout->seed() + rank * 0x9E3779B97F4A7C15ULL);
            }
        }
    }

    void lay_out_buckets() {
        const std::size_t capacity = std::max<std::size_t>(1, options_.bucket_bytes / sizeof(T));
        Bucket current;
        std::size_t used = 0;
        for (std::size_t k = parameters_.size(); k-- > 0;) {
            const auto size =
                static_cast<std::size_t>(parameters_[k].rows() * parameters_[k].cols());
            if (used > 0 && used + size > capacity) {
                current.values.assign(used, T(0));
                buckets_.push_back(std::move(current));
                current = Bucket{};
                used = 0;
            }
            current.parameters.push_back(k);
            current.offsets.push_back(used);
            used += size;
        }
        if (used > 0 || !current.parameters.empty()) {
            current.values.assign(used, T(0));
            buckets_.push_back(std::move(current));
        }
        bucket_of_.assign(parameters_.size(), 0);
        slot_of_.assign(parameters_.size(), 0);
        for (std::size_t b = 0; b < buckets_.size(); ++b) {
            for (std::size_t s = 0; s < buckets_[b].parameters.size(); ++s) {
                bucket_of_[buckets_[b].parameters[s]] = b;
                slot_of_[buckets_[b].parameters[s]] = s;
            }
        }
    }

    MatrixView<T> slot(std::size_t k) {
        Bucket& b = buckets_[bucket_of_[k]];
        const std::size_t s = slot_of_[k];
        return MatrixView<T>(b.values.data() + b.offsets[s], parameters_[k].rows(),
                             parameters_[k].cols());
    }

    void on_gradient(std::size_t k, MatrixView<T> grad) {
        if (!synchronizing_) return;  // the gradient accumulates here, unsent
        if (reported_[k]) {
            throw dist_error("DataParallel: parameter '" + names_[k] +
                             "' got a second gradient before the pass's reductions ended; a "
                             "backward pass was interrupted, or two ran at once");
        }
        in_pass_ = true;
        reported_[k] = true;
        ++reported_count_;
        if (parameters_[k].has_grad()) {
            slot(k) = grad + parameters_[k].grad();
        } else {
            slot(k) = grad;
        }
        grad.setZero();  // what backward adds to the gradient now; the average comes at the end
        Bucket& bucket = buckets_[bucket_of_[k]];
        if (++bucket.arrived == bucket.parameters.size() && options_.overlap) start_ready_buckets();
        if (reported_count_ == parameters_.size()) {
            finish_pass(std::pair<std::size_t, MatrixView<T>>(k, grad));
        } else {
            poll();
        }
    }

    // Starts complete buckets in bucket order, stopping at the first incomplete one, so that
    // every rank starts them in the same order.
    void start_ready_buckets() {
        while (next_to_start_ < buckets_.size() &&
               buckets_[next_to_start_].arrived == buckets_[next_to_start_].parameters.size()) {
            start(buckets_[next_to_start_++], true);
        }
    }

    void start(Bucket& b, bool during_backward) {
        b.request = comm_.start_all_reduce_sum(std::span<T>(b.values));
        b.started = true;
        ++stats_.buckets_reduced;
        stats_.buckets_overlapped += during_backward ? 1 : 0;
        stats_.bytes_reduced += b.values.size() * sizeof(T);
    }

    // MPI progresses non-blocking collectives inside MPI calls: testing the running ones from
    // each hook lets them advance while backward computes.
    void poll() {
        for (std::size_t i = 0; i < next_to_start_; ++i) {
            Bucket& b = buckets_[i];
            if (b.request == MPI_REQUEST_NULL) continue;
            int done = 0;
            detail::check(MPI_Test(&b.request, &done, MPI_STATUS_IGNORE), "MPI_Test");
        }
    }

    // `current`: the parameter whose hook is running, if any, and the gradient it will pass on
    // (its average goes there, as backward adds that to the parameter's gradient next).
    void finish_pass(std::optional<std::pair<std::size_t, MatrixView<T>>> current) {
        if (!in_pass_) return;
        for (std::size_t k = 0; k < parameters_.size(); ++k) {
            if (reported_[k]) continue;
            if (parameters_[k].has_grad()) {
                slot(k) = parameters_[k].grad();
            } else {
                slot(k).setZero();
            }
        }
        while (next_to_start_ < buckets_.size()) start(buckets_[next_to_start_++], false);

        const auto waiting_since = std::chrono::steady_clock::now();
        for (Bucket& b : buckets_) {
            detail::check(MPI_Wait(&b.request, MPI_STATUS_IGNORE), "MPI_Wait");
        }
        stats_.seconds_waiting +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - waiting_since).count();

        const T ranks = static_cast<T>(comm_.size());
        std::string failure;
        for (std::size_t k = 0; k < parameters_.size(); ++k) {
            auto average = slot(k);
            average /= ranks;
            if (current && current->first == k) {
                // Backward adds what the hook passes on to the gradient, next.
                if (parameters_[k].has_grad()) parameters_[k].mutable_grad().setZero();
                current->second = average;
            } else if (parameters_[k].has_grad()) {
                parameters_[k].mutable_grad() = average;
            } else if (!average.isZero(0) && failure.empty()) {
                failure = "parameter '" + names_[k] +
                          "' got a gradient on other ranks but none here, and has no gradient "
                          "buffer to add the average to; zero_grad() keeps the buffers";
            }
        }
        for (Bucket& b : buckets_) {
            b.arrived = 0;
            b.started = false;
        }
        reported_.assign(parameters_.size(), false);
        reported_count_ = 0;
        next_to_start_ = 0;
        in_pass_ = false;
        ++stats_.passes;
        if (!failure.empty()) {
            throw dist_error("DataParallel on rank " + std::to_string(comm_.rank()) + ": " +
                             failure);
        }
    }

    Module<T>& module_;
    Communicator comm_;
    Options options_;
    std::vector<std::string> names_;
    std::vector<Tensor<T>> parameters_;
    std::vector<Bucket> buckets_;
    std::vector<std::size_t> bucket_of_, slot_of_;
    std::vector<bool> reported_;
    std::size_t reported_count_ = 0;
    std::size_t next_to_start_ = 0;
    bool in_pass_ = false;
    bool synchronizing_ = true;
    DataParallelStats stats_;
    std::vector<HookHandle<T>> parameter_hooks_;
    ModuleHookHandle end_of_pass_hook_;
};

}  // namespace gradscope::dist
