// Early stopping on a validation metric, keeping the best epoch's weights as a checkpoint.
//
//   EarlyStopping<float> stopper(*net, {.mode = EarlyStoppingOptions::Mode::max,
//                                       .patience = 20,
//                                       .checkpoint = "best.safetensors",
//                                       .metadata = scaler.metadata()});
//   for (int epoch = 0; epoch < epochs; ++epoch) {
//       train_one_epoch();
//       if (stopper.step(validation_accuracy())) break;   // true: time to stop
//   }
//   stopper.restore_best();   // the network gets the best epoch's weights back
//
// step(metric) once per epoch. An epoch improves when its metric beats the best so far by more
// than min_delta (smaller in Mode::min, larger in Mode::max); the first metric that is not NaN
// always does (an infinity too), and a NaN never does. On an improvement the network's
// parameters and buffers are copied (in memory, for restore_best) and, when `checkpoint` names a
// file, written there with save_checkpoint, which replaces the file atomically: if the write
// fails, the file still holds the previous best, the exception propagates, and the stopper's
// state (best metric, epoch, the in-memory copy) is left as it was, so the caller can free space
// and go on. Otherwise the count of epochs without improvement grows; step returns true once it
// reaches `patience`, and keeps returning true until a new best resets the count.
//
// Writing the file on every new best is what makes a crash lose nothing, and costs a write and
// an fsync per improvement: next to epochs of a few milliseconds (a small table) that can be
// most of the time. With write_every_best = false the file is written only when save_best() is
// called, typically once when training ends.
//
// A run resumed from a checkpoint resumes its stopper too: state_metadata() goes into the
// training checkpoint's metadata and load_state(report.metadata) takes it back, reading the best
// epoch's weights from `checkpoint` (or from bytes the caller has: best_checkpoint() of the
// stopper that saved the state; dist/early_stopping.hpp sends rank 0's file to every rank).
//
// The checkpoint's metadata is the caller's `metadata` (a feature scaler's, say) plus
// "early_stopping.best_metric" and "early_stopping.best_epoch" (1-based, as the epochs are
// counted by step), so that the file says which epoch it is and how good it was.
#pragma once

#include "../core/errors.hpp"
#include "../nn/module.hpp"
#include "safetensors.hpp"

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace gradscope {

struct EarlyStoppingOptions {
    enum class Mode { min, max } mode = Mode::min;  // min: a loss; max: an accuracy
    // Epochs without improvement after which step() says stop (>= 1).
    std::int64_t patience = 10;
    // How much better than the best a metric must be to count as an improvement (>= 0).
    double min_delta = 0.0;
    // Where to keep the best epoch's checkpoint; empty: in memory only.
    std::filesystem::path checkpoint = {};
    // Write `checkpoint` on each new best; false: only when save_best() is called.
    bool write_every_best = true;
    // Written into the checkpoint's "__metadata__" along with the early-stopping entries.
    std::map<std::string, std::string> metadata = {};
    // How the checkpoint is written (shapes, and fail_after_bytes for tests).
    SaveOptions save = {};
};

template <class T>
class EarlyStopping {
public:
    // The stopper refers to `module` (which must outlive it) and copies it on each improvement.
    EarlyStopping(Module<T>& module, EarlyStoppingOptions options)
        : module_(&module), options_(std::move(options)) {
        if (options_.patience < 1) {
            detail::throw_value("EarlyStopping", "patience must be at least 1, got " +
                                                     std::to_string(options_.patience));
        }
        detail::check_non_negative("EarlyStopping", "min_delta", options_.min_delta);
        for (const auto& [key, value] : options_.metadata) {
            if (key.starts_with(kMetadataPrefix)) {
                detail::throw_value("EarlyStopping", "metadata key '" + key +
                                                         "' is reserved (it starts with '" +
                                                         std::string(kMetadataPrefix) + "')");
            }
        }
    }

    // Records the epoch's metric; true when `patience` epochs in a row have not improved.
    bool step(double metric) {
        const std::int64_t epoch = epochs_ + 1;
        if (improves(metric)) {
            keep_best(metric, epoch);  // may throw; then nothing below has happened
            best_metric_ = metric;
            best_epoch_ = epoch;
            epochs_without_improvement_ = 0;
            improved_ = true;
        } else {
            ++epochs_without_improvement_;
            improved_ = false;
        }
        epochs_ = epoch;
        return should_stop();
    }

    [[nodiscard]] bool should_stop() const {
        return epochs_without_improvement_ >= options_.patience;
    }
    // Whether the last step() improved on the best.
    [[nodiscard]] bool improved() const { return improved_; }
    // The best metric so far, and its epoch (1-based); nullopt before the first improvement.
    [[nodiscard]] std::optional<double> best_metric() const { return best_metric_; }
    [[nodiscard]] std::optional<std::int64_t> best_epoch() const { return best_epoch_; }
    [[nodiscard]] std::int64_t epochs() const { return epochs_; }
    [[nodiscard]] std::int64_t epochs_without_improvement() const {
        return epochs_without_improvement_;
    }
    [[nodiscard]] const EarlyStoppingOptions& options() const { return options_; }

    // Puts the best epoch's parameters and buffers back into the module. A value_error if no
    // epoch has improved yet (every metric so far was NaN, or step was never called).
    void restore_best() {
        check_has_best("restore_best");
        load_checkpoint_from_bytes<T>(std::span<const std::byte>(best_bytes_), *module_,
                                      {.extra_state = false}, "EarlyStopping's best epoch");
    }

    // Writes the best epoch's checkpoint to `checkpoint`, atomically. A value_error without a
    // checkpoint path or before the first improvement; an io_error if the write fails.
    void save_best() const {
        if (options_.checkpoint.empty()) {
            detail::throw_value("EarlyStopping", "save_best: no checkpoint path in the options");
        }
        check_has_best("save_best");
        const std::array<std::span<const std::byte>, 1> pieces{std::span<const std::byte>(best_bytes_)};
        detail::safetensors::write_atomically(options_.checkpoint, pieces, best_bytes_.size(),
                                              options_.save);
    }

    // The stopper's counts and best metric as checkpoint metadata, so that a run interrupted
    // and resumed from a checkpoint stops where the uninterrupted one would: save them with the
    // training checkpoint (merged into its metadata, beside scheduler_metadata) and give the
    // loaded metadata to load_state(). The best epoch's weights are not in it; they are in
    // `checkpoint`, which load_state() reads back.
    [[nodiscard]] std::map<std::string, std::string> state_metadata() const {
        std::map<std::string, std::string> out;
        out[key("epochs")] = std::to_string(epochs_);
        out[key("epochs_without_improvement")] = std::to_string(epochs_without_improvement_);
        if (best_metric_) {
            out[key("best_metric")] = detail::safetensors::format_double(*best_metric_);
            out[key("best_epoch")] = std::to_string(*best_epoch_);
        }
        return out;
    }

    // Goes on from the state that state_metadata() wrote into `metadata` (a LoadReport's): the
    // counts, the best metric and epoch, and the best epoch's weights for restore_best(), read
    // from `checkpoint` (written on each new best, or by save_best() when write_every_best is
    // false). A value_error if the metadata holds no such state or an inconsistent one, if
    // there is a best epoch but no checkpoint path, or if the file holds another epoch's best
    // (one written after the training checkpoint was saved: the best as of that checkpoint is
    // then gone); an io_error if the file cannot be read. On an error the stopper is unchanged.
    void load_state(const std::map<std::string, std::string>& metadata) {
        const SavedState state = parse_state(metadata);
        if (!state.best_epoch) {
            commit_state(state, {});
            return;
        }
        if (options_.checkpoint.empty()) {
            state_error("there is a best epoch, but no checkpoint path to read its weights from");
        }
        adopt_best(state, detail::safetensors::read_file(options_.checkpoint),
                   options_.checkpoint.string());
    }

    // The same, with the best epoch's checkpoint given as bytes (best_checkpoint() of the
    // stopper that saved the state, or a file read elsewhere: data-parallel training reads it on
    // one process and sends it to the others). `source` names the bytes in errors. A state with
    // no best epoch takes no bytes; one with a best epoch needs them.
    void load_state(const std::map<std::string, std::string>& metadata,
                    std::span<const std::byte> best_checkpoint,
                    std::string_view source = "<memory>") {
        const SavedState state = parse_state(metadata);
        if (!state.best_epoch) {
            if (!best_checkpoint.empty()) {
                state_error("the state has no best epoch, yet a best checkpoint of " +
                            std::to_string(best_checkpoint.size()) + " bytes (" +
                            std::string(source) + ") was given");
            }
            commit_state(state, {});
            return;
        }
        if (best_checkpoint.empty()) {
            state_error("there is a best epoch, but the best checkpoint (" + std::string(source) +
                        ") is empty");
        }
        adopt_best(state, std::vector<std::byte>(best_checkpoint.begin(), best_checkpoint.end()),
                   std::string(source));
    }

    // The best epoch's checkpoint in safetensors bytes, as restore_best() loads it and
    // save_best() writes it; empty before the first improvement.
    [[nodiscard]] std::span<const std::byte> best_checkpoint() const { return best_bytes_; }

    static constexpr std::string_view kMetadataPrefix = "early_stopping.";

private:
    static std::string key(std::string_view name) {
        return std::string(kMetadataPrefix) + std::string(name);
    }

    [[noreturn]] static void state_error(const std::string& what) {
        detail::throw_value("EarlyStopping", "load_state: " + what);
    }

    static std::int64_t state_count(const std::map<std::string, std::string>& metadata,
                                    std::string_view name) {
        const auto found = metadata.find(key(name));
        if (found == metadata.end()) {
            state_error("the metadata has no '" + key(name) +
                        "': it holds no early-stopping state (save it with state_metadata())");
        }
        const auto value = detail::safetensors::parse_number<std::int64_t>(found->second);
        if (!value || *value < 0) {
            state_error("'" + key(name) + "' is '" + found->second + "', not a count");
        }
        return *value;
    }

    // A stopper's state as state_metadata() writes it, checked for consistency.
    struct SavedState {
        std::int64_t epochs = 0;
        std::int64_t without = 0;
        std::optional<double> best_metric;
        std::string best_metric_text;  // as the metadata spells it, for messages
        std::optional<std::int64_t> best_epoch;
    };

    static SavedState parse_state(const std::map<std::string, std::string>& metadata) {
        SavedState state;
        state.epochs = state_count(metadata, "epochs");
        state.without = state_count(metadata, "epochs_without_improvement");
        const bool has_best = metadata.contains(key("best_epoch"));
        if (has_best != metadata.contains(key("best_metric"))) {
            state_error("'" + key("best_epoch") + "' and '" + key("best_metric") +
                        "' come together; only one is there");
        }
        if (state.without > state.epochs) {
            state_error(std::to_string(state.without) + " epochs without improvement out of " +
                        std::to_string(state.epochs));
        }
        if (!has_best) {
            if (state.without != state.epochs) {
                state_error("no best epoch, yet only " + std::to_string(state.without) + " of " +
                            std::to_string(state.epochs) + " epochs without improvement");
            }
            return state;
        }
        state.best_epoch = state_count(metadata, "best_epoch");
        state.best_metric_text = metadata.at(key("best_metric"));
        state.best_metric = detail::safetensors::parse_number<double>(state.best_metric_text);
        if (!state.best_metric || std::isnan(*state.best_metric)) {
            state_error("'" + key("best_metric") + "' is '" + state.best_metric_text +
                        "', not a number");
        }
        if (*state.best_epoch < 1) state_error("the best epoch is 0; epochs count from 1");
        if (*state.best_epoch != state.epochs - state.without) {
            state_error("the best epoch is " + std::to_string(*state.best_epoch) + ", but " +
                        std::to_string(state.epochs) + " epochs with the last " +
                        std::to_string(state.without) + " not improving make it " +
                        std::to_string(state.epochs - state.without));
        }
        return state;
    }

    // Takes `state` with `bytes` as its best epoch's checkpoint, once the checkpoint's own
    // metadata says it is that epoch's best.
    void adopt_best(const SavedState& state, std::vector<std::byte> bytes,
                    const std::string& source) {
        const auto file = detail::safetensors::parse(bytes, source);
        const auto entry = [&](std::string_view name) {
            const auto found = file.metadata.find(key(name));
            return found == file.metadata.end() ? std::string() : found->second;
        };
        const std::optional<std::int64_t> file_epoch =
            detail::safetensors::parse_number<std::int64_t>(entry("best_epoch"));
        const std::optional<double> file_metric =
            detail::safetensors::parse_number<double>(entry("best_metric"));
        if (!file_epoch || !file_metric) {
            state_error(source + " has no early-stopping best epoch and metric in its metadata: " +
                        "it is not an EarlyStopping checkpoint");
        }
        if (*file_epoch > state.epochs) {
            state_error(source + " holds the best of epoch " + std::to_string(*file_epoch) +
                        ", after the state's epoch " + std::to_string(state.epochs) +
                        ": it was written after this training checkpoint, and the best as of "
                        "epoch " +
                        std::to_string(state.epochs) +
                        " is gone (save the training checkpoint right after step())");
        }
        if (*file_epoch != *state.best_epoch || *file_metric != *state.best_metric) {
            state_error(source + " holds the best of epoch " + std::to_string(*file_epoch) +
                        " (metric " + entry("best_metric") + "), the state epoch " +
                        std::to_string(*state.best_epoch) + " (metric " + state.best_metric_text +
                        "): it is not this run's best");
        }
        commit_state(state, std::move(bytes));
    }

    void commit_state(const SavedState& state, std::vector<std::byte> best_bytes) {
        epochs_ = state.epochs;
        epochs_without_improvement_ = state.without;
        best_metric_ = state.best_metric;
        best_epoch_ = state.best_epoch;
        improved_ = state.best_epoch && *state.best_epoch == state.epochs;
        best_bytes_ = std::move(best_bytes);
    }

    void check_has_best(const char* what) const {
        if (best_bytes_.empty()) {
            detail::throw_value("EarlyStopping",
                                std::string(what) + ": no epoch has a best metric yet (" +
                                    std::to_string(epochs_) + " epochs, every metric NaN)");
        }
    }

    bool improves(double metric) const {
        if (std::isnan(metric)) return false;
        if (!best_metric_) return true;
        return options_.mode == EarlyStoppingOptions::Mode::min
                   ? metric < *best_metric_ - options_.min_delta
                   : metric > *best_metric_ + options_.min_delta;
    }

    // Writes the file first: if that fails, the in-memory copy is still the previous best.
    void keep_best(double metric, std::int64_t epoch) {
        SaveOptions save = options_.save;
        save.metadata = options_.metadata;
        save.metadata[key("best_metric")] = detail::safetensors::format_double(metric);
        save.metadata[key("best_epoch")] = std::to_string(epoch);
        detail::safetensors::Layout<T> layout;
        const std::string source =
            options_.checkpoint.empty() ? "<memory>" : options_.checkpoint.string();
        detail::safetensors::lay_out<T>(layout, *module_, nullptr, save, source);
        // The copy is made before the write, so that the file never holds a best the stopper
        // does not (a load_state() would refuse the pair).
        std::vector<std::byte> bytes = detail::safetensors::to_bytes(layout);
        if (!options_.checkpoint.empty() && options_.write_every_best) {
            detail::safetensors::write_atomically(options_.checkpoint, layout, save);
        }
        best_bytes_ = std::move(bytes);
    }

    Module<T>* module_;
    EarlyStoppingOptions options_;
    std::optional<double> best_metric_;
    std::optional<std::int64_t> best_epoch_;
    std::int64_t epochs_ = 0;
    std::int64_t epochs_without_improvement_ = 0;
    bool improved_ = false;
    std::vector<std::byte> best_bytes_;
};

}  // namespace gradscope
