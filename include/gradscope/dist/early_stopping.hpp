// Early stopping in data-parallel training: one decision on every rank, one best file.
//
//   dist::EarlyStopping<float> stopper(comm, *net, {.patience = 10,
//                                                   .checkpoint = "best.safetensors"});
//   for (int epoch = 0; epoch < epochs; ++epoch) {
//       train_one_epoch();                               // through DataParallel
//       if (stopper.step(this_ranks_validation_loss())) break;   // every rank breaks together
//   }
//   stopper.restore_best();   // every rank gets rank 0's best epoch back
//
// A gradscope::EarlyStopping on each rank is not enough: each would judge its own metric, and a
// metric that differs between ranks in the last bit (each rank's shard of the validation set, or
// batch norm's running statistics, which each rank updates from its own shard) can make one rank
// stop while the others wait for it in the next all-reduce, forever. Here step(metric) is a
// collective that averages the ranks' metrics, so every rank judges the same number with the
// same state and returns the same answer. When each rank's metric is the mean over its shard of
// the validation set and the number of ranks divides the set, the average is the whole set's
// mean (otherwise DistributedSampler's default pads the shards with a few rows counted twice,
// and Uneven::drop leaves a few out); a metric every rank computes on the whole set averages to
// itself, up to rounding.
//
// Only rank 0 writes `checkpoint` (its best epoch's parameters and buffers); the other ranks
// keep their best in memory, so they need no file system of their own. A step that fails on any
// rank (a write rank 0 cannot make) is the same dist_error on every rank, and no rank's stopper
// has taken it (rank 0's file still holds the previous best). restore_best() puts every rank's
// best epoch back and then copies rank 0's parameters and buffers to the others, so the ranks
// hold the same network even where their running statistics had drifted apart.
// state_metadata() goes into the training checkpoint (dist::save_checkpoint) and load_state()
// takes it back, rank 0 reading the best file and sending its bytes to the others.
//
// Like dist/checkpoint.hpp this needs nlohmann_json, for the safetensors header.
#pragma once

#include "../io/early_stopping.hpp"
#include "../io/safetensors.hpp"
#include "checkpoint.hpp"
#include "communicator.hpp"
#include "replicate.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace gradscope::dist {

template <class T>
class EarlyStopping {
public:
    // A collective. Options gradscope::EarlyStopping refuses are a dist_error on every rank, and
    // so are modes, patience or min_delta that differ between the ranks, and modules whose
    // parameters and buffers do not match rank 0's (check_same_state).
    EarlyStopping(const Communicator& comm, Module<T>& module, EarlyStoppingOptions options)
        : comm_(comm),
          module_(&module),
          options_(options),
          local_(make_local(comm, module, std::move(options))) {
        check_same_options();
        check_same_state(comm_, module);
    }

    // A collective: the average of every rank's `metric` is this epoch's. True when `patience`
    // epochs in a row have not improved, on every rank alike.
    //
    // All or nothing: each rank steps a copy of its stopper, the ranks other than 0 first (in
    // memory), then rank 0 (which writes the file), and the copies take the stoppers' place only
    // once every rank has succeeded. The copy costs one copy of the best checkpoint's bytes per
    // epoch.
    bool step(double metric) {
        const double average = average_over_ranks(metric);
        std::optional<gradscope::EarlyStopping<T>> next;
        comm_.agree_or_throw(detail::failure_of([&] {
            next.emplace(local_);
            if (comm_.rank() != 0) next->step(average);
        }));
        std::string failure;
        if (comm_.rank() == 0) failure = detail::failure_of([&] { next->step(average); });
        comm_.agree_or_throw(failure);
        local_ = std::move(*next);
        return local_.should_stop();
    }

    [[nodiscard]] bool should_stop() const { return local_.should_stop(); }
    [[nodiscard]] bool improved() const { return local_.improved(); }
    // The best average metric so far and its epoch (1-based), the same on every rank.
    [[nodiscard]] std::optional<double> best_metric() const { return local_.best_metric(); }
    [[nodiscard]] std::optional<std::int64_t> best_epoch() const { return local_.best_epoch(); }
    [[nodiscard]] std::int64_t epochs() const { return local_.epochs(); }
    [[nodiscard]] std::int64_t epochs_without_improvement() const {
        return local_.epochs_without_improvement();
    }
    [[nodiscard]] const EarlyStoppingOptions& options() const { return options_; }
    // This rank's copy of the best epoch's checkpoint (see gradscope::EarlyStopping).
    [[nodiscard]] std::span<const std::byte> best_checkpoint() const {
        return local_.best_checkpoint();
    }

    // A collective: every rank puts its best epoch back, then takes rank 0's parameters and
    // buffers. A dist_error on every rank before the first improvement.
    void restore_best() {
        comm_.agree_or_throw(detail::failure_of([&] { local_.restore_best(); }));
        broadcast_state(comm_, *module_, 0);
    }

    // A collective: rank 0 writes the best epoch's checkpoint to `checkpoint`; a dist_error on
    // every rank if it cannot.
    void save_best() const {
        std::string failure;
        if (comm_.rank() == 0) failure = detail::failure_of([&] { local_.save_best(); });
        comm_.agree_or_throw(failure);
    }

    // The stopper's counts and best metric as checkpoint metadata, the same on every rank.
    [[nodiscard]] std::map<std::string, std::string> state_metadata() const {
        return local_.state_metadata();
    }

    // A collective: goes on from the state in `metadata` (a LoadReport's from
    // dist::load_checkpoint, the same on every rank). Rank 0 loads it as one process does,
    // reading the best epoch's weights from `checkpoint`, and sends those bytes to the others.
    // Any rank's error is a dist_error on every rank, and then no rank's stopper has changed
    // (each loads into a copy, kept only when every rank has succeeded).
    void load_state(const std::map<std::string, std::string>& metadata) {
        std::optional<gradscope::EarlyStopping<T>> next;
        std::string failure;
        if (comm_.rank() == 0) {
            failure = detail::failure_of([&] {
                next.emplace(local_);
                next->load_state(metadata);
            });
        }
        comm_.agree_or_throw(failure);
        std::vector<std::byte> best;
        if (comm_.rank() == 0)
            best.assign(next->best_checkpoint().begin(), next->best_checkpoint().end());
        comm_.broadcast_vector(best, 0);
        std::string source = options_.checkpoint.string();  // rank 0's names the bytes
        comm_.broadcast_string(source, 0);
        failure.clear();
        if (comm_.rank() != 0) {
            failure = detail::failure_of([&] {
                next.emplace(local_);
                next->load_state(metadata, best, source);
            });
        }
        comm_.agree_or_throw(failure);
        local_ = std::move(*next);
    }

private:
    // Rank 0 writes the file as one process does; the others keep their best in memory only.
    static gradscope::EarlyStopping<T> make_local(const Communicator& comm, Module<T>& module,
                                                  EarlyStoppingOptions options) {
        if (comm.rank() != 0) options.write_every_best = false;
        std::optional<gradscope::EarlyStopping<T>> local;
        comm.agree_or_throw(detail::failure_of([&] { local.emplace(module, std::move(options)); }));
        return std::move(*local);
    }

    // The sum over ranks divided by their number, then rank 0's result everywhere: MPI does not
    // promise every rank the same bits from a reduction, and the decision must not differ.
    double average_over_ranks(double metric) const {
        double sum = metric;
        comm_.all_reduce_sum(std::span<double>(&sum, 1));
        double average = sum / comm_.size();
        comm_.broadcast(std::span<double>(&average, 1), 0);
        return average;
    }

    void check_same_options() const {
        // Sent as the types MPI knows here: the mode as an int, patience as its 64 bits.
        using Mode = EarlyStoppingOptions::Mode;
        const auto mode_name = [](int mode) {
            return std::string(mode == static_cast<int>(Mode::min) ? "min" : "max");
        };
        const auto count = [](std::uint64_t n) {
            return std::to_string(static_cast<std::int64_t>(n));
        };
        const auto number = [](double x) {
            return gradscope::detail::safetensors::format_double(x);
        };
        std::string failure;
        const auto compare = [&](const char* name, auto mine, auto text) {
            auto root = mine;
            comm_.broadcast(std::span(&root, 1), 0);
            if (failure.empty() && mine != root) {
                failure = std::string("EarlyStopping: ") + name + " is " + text(mine) +
                          " here but " + text(root) +
                          " on rank 0: the ranks would stop at different epochs";
            }
        };
        compare("mode", static_cast<int>(options_.mode), mode_name);
        compare("patience", static_cast<std::uint64_t>(options_.patience), count);
        compare("min_delta", options_.min_delta, number);
        comm_.agree_or_throw(failure);
    }

    Communicator comm_;
    Module<T>* module_;
    EarlyStoppingOptions options_;
    gradscope::EarlyStopping<T> local_;
};

}  // namespace gradscope::dist
