// ReduceLROnPlateau: multiplies the lr by `factor` when a metric has stopped improving for more
// than `patience` epochs, with torch.optim.lr_scheduler.ReduceLROnPlateau's semantics.
//
// step(metric) once per epoch:
//   better = metric beats best by the threshold (mode min or max; threshold relative to best
//            or absolute), then best = metric and the bad-epoch count restarts, else it grows;
//   during a cooldown (epochs after a reduction) bad epochs are not counted;
//   more than `patience` bad epochs: each group's lr = max(lr * factor, the group's min_lr),
//   unless that changes the lr by no more than eps; then the cooldown starts.
// Unlike the other schedules it is driven by the metric, not by epochs, and it changes the
// optimiser's lr only when it reduces it; the lr it starts from is whatever the optimiser has.
#pragma once

#include "checks.hpp"
#include "scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gradscope {

struct ReduceLROnPlateauOptions {
    enum class Mode { min, max } mode = Mode::min;
    double factor = 0.1;
    std::int64_t patience = 10;
    double threshold = 1e-4;
    enum class ThresholdMode { rel, abs } threshold_mode = ThresholdMode::rel;
    std::int64_t cooldown = 0;
    double min_lr = 0.0;  // the same for every group, unless min_lrs is given
    double eps = 1e-8;
    // One min_lr per group (see Note [Scheduler groups]); last, so that options written in
    // order without it still mean what they did.
    std::vector<double> min_lrs = {};
};

class ReduceLROnPlateau {
public:
    template <class T>
    ReduceLROnPlateau(Optimizer<T>& optimizer, ReduceLROnPlateauOptions options)
        : target_(std::make_unique<detail::OptimizerLr<T>>(optimizer)), options_(options) {
        const char* who = "ReduceLROnPlateau";
        // factor 0 would set the lr to min_lr at once; PyTorch allows it, and so do we.
        if (!(options_.factor >= 0.0 && options_.factor < 1.0)) {
            detail::refuse(who, "factor", "in [0, 1)", options_.factor);
        }
        detail::check_whole_at_least(who, "patience", options_.patience, 0);
        detail::check_non_negative(who, "threshold", options_.threshold);
        detail::check_whole_at_least(who, "cooldown", options_.cooldown, 0);
        min_lrs_ = detail::per_group(who, "min_lr", options_.min_lr, options_.min_lrs,
                                     target_->groups(), detail::check_non_negative);
        detail::check_non_negative(who, "eps", options_.eps);
        reset();
        for (std::size_t g = 0; g < target_->groups(); ++g) last_lr_.push_back(target_->lr(g));
    }

    // Takes the epoch's metric (a NaN is never better, so it counts as a bad epoch, as in
    // PyTorch).
    void step(double metric) {
        ++last_epoch_;
        if (better(metric)) {
            best_ = metric;
            bad_epochs_ = 0;
        } else {
            ++bad_epochs_;
        }
        if (cooldown_counter_ > 0) {
            --cooldown_counter_;
            bad_epochs_ = 0;
        }
        if (bad_epochs_ > options_.patience) {
            for (std::size_t g = 0; g < target_->groups(); ++g) {
                const double old_lr = target_->lr(g);
                const double new_lr = std::max(old_lr * options_.factor, min_lrs_[g]);
                if (old_lr - new_lr > options_.eps) target_->set_lr(g, new_lr);
            }
            cooldown_counter_ = options_.cooldown;
            bad_epochs_ = 0;
        }
        for (std::size_t g = 0; g < last_lr_.size(); ++g) last_lr_[g] = target_->lr(g);
    }

    [[nodiscard]] const ReduceLROnPlateauOptions& options() const noexcept { return options_; }
    [[nodiscard]] std::int64_t last_epoch() const noexcept { return last_epoch_; }
    [[nodiscard]] const std::vector<double>& last_lr() const noexcept { return last_lr_; }
    [[nodiscard]] double best() const noexcept { return best_; }
    [[nodiscard]] std::int64_t num_bad_epochs() const noexcept { return bad_epochs_; }
    [[nodiscard]] std::int64_t cooldown_counter() const noexcept { return cooldown_counter_; }
    [[nodiscard]] bool in_cooldown() const noexcept { return cooldown_counter_ > 0; }

    // "last_epoch", "best" (infinite before the first step), "num_bad_epochs",
    // "cooldown_counter" and "last_lr.<group>".
    [[nodiscard]] SchedulerState state() const {
        SchedulerState out;
        out.scalars = {{"last_epoch", static_cast<double>(last_epoch_)},
                       {"best", best_},
                       {"num_bad_epochs", static_cast<double>(bad_epochs_)},
                       {"cooldown_counter", static_cast<double>(cooldown_counter_)}};
        for (std::size_t g = 0; g < last_lr_.size(); ++g) {
            out.scalars.emplace_back("last_lr." + std::to_string(g), last_lr_[g]);
        }
        return out;
    }

    // Restores a state made by state(); every entry must be there. Nothing changes on error.
    void load_state(const SchedulerState& state) {
        const std::string where = "ReduceLROnPlateau: load_state: ";
        std::vector<std::string> names = {"last_epoch", "best", "num_bad_epochs",
                                          "cooldown_counter"};
        for (std::size_t g = 0; g < last_lr_.size(); ++g) {
            names.push_back("last_lr." + std::to_string(g));
        }
        std::vector<std::optional<double>> values(names.size());
        for (const auto& [key, value] : state.scalars) {
            const auto it = std::find(names.begin(), names.end(), key);
            if (it == names.end()) throw value_error(where + "unknown scalar '" + key + "'");
            auto& slot = values[static_cast<std::size_t>(it - names.begin())];
            if (slot) throw value_error(where + "the scalar '" + key + "' is given twice");
            slot = value;
        }
        for (std::size_t i = 0; i < names.size(); ++i) {
            if (!values[i]) throw value_error(where + "'" + names[i] + "' is missing");
            const double v = *values[i];
            const bool counter = i != 1 && i < 4;
            if (counter && !(v >= 0.0 && v <= 9.0e15 && v == std::floor(v))) {
                throw value_error(where + "'" + names[i] + "' must be a whole number >= 0, got " +
                                  detail::number_text(v));
            }
            if (i == 1 && std::isnan(v)) throw value_error(where + "'best' is NaN");
        }
        last_epoch_ = static_cast<std::int64_t>(*values[0]);
        best_ = *values[1];
        bad_epochs_ = static_cast<std::int64_t>(*values[2]);
        cooldown_counter_ = static_cast<std::int64_t>(*values[3]);
        for (std::size_t g = 0; g < last_lr_.size(); ++g) last_lr_[g] = *values[4 + g];
    }

private:
    void reset() {
        best_ = options_.mode == ReduceLROnPlateauOptions::Mode::min
                    ? std::numeric_limits<double>::infinity()
                    : -std::numeric_limits<double>::infinity();
        cooldown_counter_ = 0;
        bad_epochs_ = 0;
    }

    [[nodiscard]] bool better(double metric) const {
        using Mode = ReduceLROnPlateauOptions::Mode;
        using Threshold = ReduceLROnPlateauOptions::ThresholdMode;
        const double t = options_.threshold;
        const bool rel = options_.threshold_mode == Threshold::rel;
        if (options_.mode == Mode::min)
            return rel ? metric < best_ * (1.0 - t) : metric < best_ - t;
        return rel ? metric > best_ * (t + 1.0) : metric > best_ + t;
    }

    std::unique_ptr<detail::ScheduledLr> target_;
    ReduceLROnPlateauOptions options_;
    std::vector<double> min_lrs_;  // one per group
    std::vector<double> last_lr_;
    double best_ = 0.0;
    std::int64_t bad_epochs_ = 0;
    std::int64_t cooldown_counter_ = 0;
    std::int64_t last_epoch_ = 0;
};

}  // namespace gradscope
