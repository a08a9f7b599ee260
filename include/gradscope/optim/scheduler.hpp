// The learning-rate scheduler base: what every scheduler in scheduler_*.hpp shares with
// torch.optim.lr_scheduler (PyTorch 1.13), and a state that can be saved and restored.
//
// Semantics, as in PyTorch:
// - Making a scheduler records each group's base lr (the optimiser's initial_lr(), set by the
//   first scheduler made for it, so that schedulers chained on one optimiser share one base)
//   and takes the first step: last_epoch() becomes 0 and the lr is the schedule's value at 0.
// - step() advances last_epoch() by one and writes the new lr into the optimiser. Call it once
//   per epoch (or per batch, for a schedule counted in batches) after optimizer.step().
// - Most schedules are written in PyTorch's "chainable" form: the new lr is computed from the
//   optimiser's current lr, not from the base alone, so that two schedulers stepping the same
//   optimiser (ChainedScheduler) compose by multiplying their factors. The same arithmetic in
//   the same order also makes the values equal PyTorch's to the last few bits
//   (tests/test_schedulers.cpp).
//
// Note [Scheduler groups]. As in PyTorch, a scheduler keeps one base lr and one last lr per
// parameter group of its optimiser and computes each group's lr separately from its own base:
// a group made with lr 1e-2 and one with 1e-3 follow the same schedule, ten times apart. The
// options that PyTorch also accepts as a per-group list take one here too: ReduceLROnPlateau's
// min_lrs and OneCycleLR's max_lrs, one value per group in the optimiser's group order, beside
// min_lr and max_lr, which give every group the same value (detail::per_group).
//
// The optimiser must outlive its schedulers (they hold a reference to it, as PyTorch's do).
#pragma once

#include "../core/errors.hpp"
#include "optimizer.hpp"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gradscope {

// A scheduler's state: named numbers, like OptimizerState's scalars.
//   "last_epoch", "base_lr.<group>", "last_lr.<group>", then what the schedule itself counts
//   (e.g. ReduceLROnPlateau's "best", "num_bad_epochs", "cooldown_counter").
struct SchedulerState {
    std::vector<std::pair<std::string, double>> scalars;
};

// A scheduler's state as checkpoint metadata: save_checkpoint(path, net, optimizer,
// {.metadata = scheduler_metadata(scheduler.state())}) stores it, and
// scheduler.load_state(scheduler_state_from_metadata(report.metadata)) reads it back from the
// LoadReport. Each scalar is "<prefix><name>" = the shortest text that reads back as the same
// double ("inf" included), so a restored scheduler continues bit for bit.
inline std::map<std::string, std::string> scheduler_metadata(
    const SchedulerState& state, std::string_view prefix = "scheduler.") {
    std::map<std::string, std::string> out;
    for (const auto& [name, value] : state.scalars) {
        out[std::string(prefix) + name] = detail::number_text(value);
    }
    return out;
}

// The entries of `metadata` under `prefix` (others are ignored); a value that is not a number
// is a value_error naming its key.
inline SchedulerState scheduler_state_from_metadata(
    const std::map<std::string, std::string>& metadata, std::string_view prefix = "scheduler.") {
    SchedulerState out;
    for (const auto& [key, text] : metadata) {
        if (!key.starts_with(prefix)) continue;
        double value = 0.0;
        const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (error != std::errc() || end != text.data() + text.size()) {
            throw value_error("scheduler_state_from_metadata: '" + key + "' is '" + text +
                              "', not a number");
        }
        out.scalars.emplace_back(key.substr(prefix.size()), value);
    }
    return out;
}

namespace detail {

// The learning rates a scheduler drives, one per parameter group, whatever the optimiser's
// element type. See Note [Scheduler groups].
class ScheduledLr {
public:
    virtual ~ScheduledLr() = default;
    [[nodiscard]] virtual std::size_t groups() const = 0;
    [[nodiscard]] virtual double lr(std::size_t group) const = 0;
    virtual void set_lr(std::size_t group, double lr) = 0;
    // PyTorch's param_group["initial_lr"]: recorded by the first scheduler, read by the rest.
    [[nodiscard]] virtual std::optional<double> initial_lr(std::size_t group) const = 0;
    virtual void set_initial_lr(std::size_t group, double lr) = 0;
    // Which optimiser this is: schedulers chained together must drive the same one.
    [[nodiscard]] virtual const void* identity() const = 0;
};

template <class T>
class OptimizerLr final : public ScheduledLr {
public:
    explicit OptimizerLr(Optimizer<T>& optimizer) : optimizer_(&optimizer) {}
    [[nodiscard]] std::size_t groups() const override { return optimizer_->group_count(); }
    [[nodiscard]] double lr(std::size_t group) const override { return optimizer_->lr(group); }
    void set_lr(std::size_t group, double lr) override { optimizer_->set_lr(group, lr); }
    [[nodiscard]] std::optional<double> initial_lr(std::size_t group) const override {
        return optimizer_->initial_lr(group);
    }
    void set_initial_lr(std::size_t group, double lr) override {
        optimizer_->set_initial_lr(group, lr);
    }
    [[nodiscard]] const void* identity() const override { return optimizer_; }

private:
    Optimizer<T>* optimizer_;
};

// Python's a % b for b > 0: never negative (CosineAnnealingLR's restart test needs it).
inline std::int64_t floor_mod(std::int64_t a, std::int64_t b) {
    const std::int64_t r = a % b;
    return r < 0 ? r + b : r;
}

// One value per parameter group, from an option given either as one number for every group or
// as a list (see Note [Scheduler groups]). Every value must pass `check`. `one`'s default, 0,
// means "not given", so a non-zero `one` beside a list is refused: silently ignoring either
// would hide a mistake.
inline std::vector<double> per_group(const char* who, const std::string& option, double one,
                                     const std::vector<double>& list, std::size_t groups,
                                     void (*check)(const char*, const char*, double)) {
    if (list.empty()) {
        check(who, option.c_str(), one);
        return std::vector<double>(groups, one);
    }
    const std::string plural = option + "s";
    if (one != 0.0) {
        throw_value(who, "give " + option + " or " + plural + ", not both (" + option + " is " +
                             number_text(one) + ")");
    }
    if (list.size() != groups) {
        throw_value(who, "expected " + std::to_string(groups) + " " + plural +
                             " (one per parameter group), got " + std::to_string(list.size()));
    }
    for (std::size_t g = 0; g < groups; ++g) {
        check(who, (plural + "[" + std::to_string(g) + "]").c_str(), list[g]);
    }
    return list;
}

inline void check_whole_at_least(const char* who, const char* what, std::int64_t value,
                                 std::int64_t least) {
    if (value < least) {
        throw_value(who, std::string(what) + " must be >= " + std::to_string(least) + ", got " +
                             std::to_string(value));
    }
}

}  // namespace detail

class LRScheduler {
public:
    virtual ~LRScheduler() = default;
    LRScheduler(const LRScheduler&) = delete;
    LRScheduler& operator=(const LRScheduler&) = delete;

    // Advances one epoch and writes the new lr into the optimiser.
    virtual void step() {
        ++last_epoch_;
        apply(next_lrs());
    }

    [[nodiscard]] const char* name() const noexcept { return name_; }
    // The epoch the lr was last computed for: 0 right after construction.
    [[nodiscard]] std::int64_t last_epoch() const noexcept { return last_epoch_; }
    [[nodiscard]] const std::vector<double>& base_lrs() const noexcept { return base_lrs_; }
    // The lr of each group as this scheduler last set it (PyTorch's get_last_lr()).
    [[nodiscard]] const std::vector<double>& last_lr() const noexcept { return last_lr_; }
    // The optimiser this scheduler drives, to tell whether two schedulers share one.
    [[nodiscard]] const void* optimizer_identity() const { return target_->identity(); }

    // Everything that step() depends on besides the optimiser's lr (which the optimiser's own
    // state keeps): see SchedulerState.
    [[nodiscard]] SchedulerState state() const {
        SchedulerState out;
        out.scalars.emplace_back("last_epoch", static_cast<double>(last_epoch_));
        for (std::size_t g = 0; g < base_lrs_.size(); ++g) {
            out.scalars.emplace_back("base_lr." + std::to_string(g), base_lrs_[g]);
            out.scalars.emplace_back("last_lr." + std::to_string(g), last_lr_[g]);
        }
        save_extra(out.scalars);
        return out;
    }

    // Restores a state made by state() of a scheduler of the same kind and options. Every entry
    // must be there and known; on a value_error nothing has changed. The optimiser's lr is not
    // touched (load the optimiser's state for that).
    void load_state(const SchedulerState& state) {
        const std::string where = std::string(name_) + ": load_state: ";
        std::vector<std::pair<std::string, double>> rest;
        std::optional<double> epoch;
        std::vector<std::optional<double>> base(base_lrs_.size()), last(last_lr_.size());
        for (const auto& [key, value] : state.scalars) {
            std::optional<double>* slot = nullptr;
            if (key == "last_epoch") {
                slot = &epoch;
            } else if (const auto b = group_of(key, "base_lr.")) {
                slot = &base[*b];
            } else if (const auto l = group_of(key, "last_lr.")) {
                slot = &last[*l];
            }
            if (slot == nullptr) {
                rest.emplace_back(key, value);
                continue;
            }
            if (slot->has_value()) throw value_error(where + "'" + key + "' is given twice");
            if (!std::isfinite(value)) {
                throw value_error(where + "'" + key + "' must be finite, got " +
                                  detail::number_text(value));
            }
            *slot = value;
        }
        // -1: a scheduler SequentialLR has not started yet.
        if (!epoch || *epoch != std::floor(*epoch) || *epoch < -1.0 || *epoch > 9.0e15) {
            throw value_error(where + "'last_epoch' must be given as a whole number >= -1");
        }
        for (std::size_t g = 0; g < base.size(); ++g) {
            if (!base[g] || !last[g]) {
                throw value_error(where + "'base_lr." + std::to_string(g) + "' and 'last_lr." +
                                  std::to_string(g) + "' must both be given");
            }
        }
        load_extra(rest, where);  // checks and adopts its own entries, or throws
        last_epoch_ = static_cast<std::int64_t>(*epoch);
        for (std::size_t g = 0; g < base.size(); ++g) {
            base_lrs_[g] = *base[g];
            last_lr_[g] = *last[g];
        }
    }

protected:
    template <class T>
    LRScheduler(const char* name, Optimizer<T>& optimizer)
        : name_(name), target_(std::make_shared<detail::OptimizerLr<T>>(optimizer)) {}

    // A composite (scheduler_chain.hpp) drives the optimiser of the schedulers it holds.
    LRScheduler(const char* name, const LRScheduler& part)
        : name_(name), target_(part.target_), base_lrs_(part.base_lrs_), last_epoch_(0) {
        last_lr_ = current_lrs();
    }

    // Records the base lrs (the optimiser's initial lr, which the first scheduler sets) and
    // takes PyTorch's constructor-time step. The most-derived constructor calls it last, once
    // its options are checked, so that a scheduler refused leaves the optimiser untouched (and
    // a base constructor could not call next_lrs()).
    void start() {
        base_lrs_.clear();
        for (std::size_t g = 0; g < target_->groups(); ++g) {
            if (!target_->initial_lr(g)) target_->set_initial_lr(g, target_->lr(g));
            base_lrs_.push_back(*target_->initial_lr(g));
        }
        last_lr_ = base_lrs_;
        initial_step();
    }

    // PyTorch's _initial_step: epoch -1, then one step (SequentialLR restarts its first
    // scheduler with it).
    void initial_step() {
        last_epoch_ = -1;
        step();
    }

    // The lr of every group for last_epoch() (already advanced), by the schedule's formula.
    // Not const: a schedule may keep counters of its own (CosineAnnealingWarmRestarts).
    [[nodiscard]] virtual std::vector<double> next_lrs() = 0;

    // The lr at epoch 0 from the base lrs alone, where PyTorch has a closed form
    // (_get_closed_form_lr); SequentialLR restarts a scheduler at its milestone with it.
    [[nodiscard]] virtual std::vector<double> restart_lrs() { return next_lrs(); }

    // Records lrs[g] as group g's initial lr, whatever it was, so that start() takes it as the
    // base lr (PyTorch's OneCycleLR does so with each group's max_lr / div_factor).
    void rebase(const std::vector<double>& lrs) {
        for (std::size_t g = 0; g < target_->groups(); ++g) target_->set_initial_lr(g, lrs.at(g));
    }
    // The optimiser's group count, for checking per-group options before start() (until then
    // groups() is 0).
    [[nodiscard]] std::size_t optimizer_groups() const { return target_->groups(); }

    // A schedule's own state beyond the base's (e.g. the plateau counters).
    virtual void save_extra(std::vector<std::pair<std::string, double>>&) const {}
    // Adopts `entries`, which must be exactly the ones save_extra writes (checked first).
    virtual void load_extra(const std::vector<std::pair<std::string, double>>& entries,
                            const std::string& where) {
        if (!entries.empty()) {
            throw value_error(where + "unknown scalar '" + entries.front().first + "'");
        }
    }

    [[nodiscard]] std::size_t groups() const { return base_lrs_.size(); }
    [[nodiscard]] double current_lr(std::size_t group) const { return target_->lr(group); }

    // Writes the lrs into the optimiser and remembers them.
    void apply(const std::vector<double>& lrs) {
        for (std::size_t g = 0; g < lrs.size(); ++g) target_->set_lr(g, lrs[g]);
        last_lr_ = lrs;
    }

    // The current lr of every group, each through f(group, lr).
    template <class F>
    [[nodiscard]] std::vector<double> map_lrs(F&& f) const {
        std::vector<double> out(groups());
        for (std::size_t g = 0; g < out.size(); ++g) out[g] = f(g, current_lr(g));
        return out;
    }

    // For the composites (scheduler_chain.hpp), which step the schedulers they hold.
    static void step_part(LRScheduler& part) { part.step(); }
    static void restart_part(LRScheduler& part) {
        part.last_epoch_ = 0;
        part.apply(part.restart_lrs());
    }
    static void rewind_part(LRScheduler& part) { --part.last_epoch_; }
    static void initial_step_part(LRScheduler& part) { part.initial_step(); }
    // Sets every group's lr back to the optimiser's initial lr.
    void reset_to_initial_lr() {
        for (std::size_t g = 0; g < groups(); ++g) target_->set_lr(g, *target_->initial_lr(g));
    }
    // Every group's base lr times `factor` (a closed form at epoch 0).
    [[nodiscard]] std::vector<double> scaled_base_lrs(double factor) const {
        std::vector<double> out = base_lrs_;
        for (double& lr : out) lr *= factor;
        return out;
    }
    void set_last_epoch(std::int64_t epoch) noexcept { last_epoch_ = epoch; }
    void set_last_lr(std::vector<double> lrs) { last_lr_ = std::move(lrs); }
    // The optimiser's current lrs.
    [[nodiscard]] std::vector<double> current_lrs() const {
        return map_lrs([](std::size_t, double lr) { return lr; });
    }

private:
    std::optional<std::size_t> group_of(std::string_view key, std::string_view prefix) const {
        if (!key.starts_with(prefix)) return std::nullopt;
        const std::string_view rest = key.substr(prefix.size());
        if (!detail::is_position(rest)) return std::nullopt;
        const std::size_t g = std::stoul(std::string(rest));
        return g < base_lrs_.size() ? std::optional<std::size_t>(g) : std::nullopt;
    }

    const char* name_;
    std::shared_ptr<detail::ScheduledLr> target_;
    std::vector<double> base_lrs_;
    std::vector<double> last_lr_;
    std::int64_t last_epoch_ = -1;
};

}  // namespace gradscope
