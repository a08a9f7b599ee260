// Cosine-shaped schedules: CosineAnnealingLR, CosineAnnealingWarmRestarts (SGDR, Loshchilov
// and Hutter 2017) and OneCycleLR (Smith and Topin 2018), with torch.optim.lr_scheduler's
// semantics (see optim/scheduler.hpp).
#pragma once

#include "scheduler.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gradscope {

namespace detail {

// PyTorch's closed form: eta_min + (base - eta_min) * (1 + cos(angle)) / 2 for each base lr.
inline std::vector<double> cosine_from_base(std::vector<double> base_lrs, double eta_min,
                                            double angle) {
    for (double& lr : base_lrs) lr = eta_min + (lr - eta_min) * (1.0 + std::cos(angle)) / 2.0;
    return base_lrs;
}

}  // namespace detail

// eta_min + (base - eta_min) * (1 + cos(pi * epoch / T_max)) / 2 for epochs 0..T_max. Past
// T_max the cosine goes on (back up to the base lr at 2 T_max, and so on), as PyTorch's does.
struct CosineAnnealingLROptions {
    std::int64_t T_max = 0;  // required, >= 1 (the default 0 is refused, naming it)
    double eta_min = 0.0;
};

class CosineAnnealingLR final : public LRScheduler {
public:
    template <class T>
    CosineAnnealingLR(Optimizer<T>& optimizer, CosineAnnealingLROptions options)
        : LRScheduler("CosineAnnealingLR", optimizer), options_(options) {
        detail::check_whole_at_least(name(), "T_max", options_.T_max, 1);
        detail::check_non_negative(name(), "eta_min", options_.eta_min);
        start();
    }
    [[nodiscard]] const CosineAnnealingLROptions& options() const noexcept { return options_; }

protected:
    // PyTorch's chainable form: the ratio of this epoch's cosine factor to the last one's,
    // applied to the current lr; at the bottom of a period (where that ratio would be 0/0)
    // it adds the first step up instead.
    [[nodiscard]] std::vector<double> next_lrs() override {
        const std::int64_t e = last_epoch();
        const auto t_max = static_cast<double>(options_.T_max);
        const double eta_min = options_.eta_min;
        const double pi = std::numbers::pi;
        return map_lrs([&](std::size_t g, double lr) {
            if (e == 0) return lr;
            if (detail::floor_mod(e - 1 - options_.T_max, 2 * options_.T_max) == 0) {
                return lr + (base_lrs()[g] - eta_min) * (1.0 - std::cos(pi / t_max)) / 2.0;
            }
            const double now = 1.0 + std::cos(pi * static_cast<double>(e) / t_max);
            const double before = 1.0 + std::cos(pi * static_cast<double>(e - 1) / t_max);
            return now / before * (lr - eta_min) + eta_min;
        });
    }

    [[nodiscard]] std::vector<double> restart_lrs() override {
        return detail::cosine_from_base(base_lrs(), options_.eta_min, 0.0);
    }

private:
    CosineAnnealingLROptions options_;
};

// A cosine from the base lr down to eta_min over T_0 epochs, then a restart at the base lr;
// each period is T_mult times the last.
struct CosineAnnealingWarmRestartsOptions {
    std::int64_t T_0 = 0;  // required, >= 1 (the default 0 is refused, naming it)
    std::int64_t T_mult = 1;
    double eta_min = 0.0;
};

class CosineAnnealingWarmRestarts final : public LRScheduler {
public:
    template <class T>
    CosineAnnealingWarmRestarts(Optimizer<T>& optimizer, CosineAnnealingWarmRestartsOptions options)
        : LRScheduler("CosineAnnealingWarmRestarts", optimizer), options_(options) {
        detail::check_whole_at_least(name(), "T_0", options_.T_0, 1);
        detail::check_whole_at_least(name(), "T_mult", options_.T_mult, 1);
        detail::check_non_negative(name(), "eta_min", options_.eta_min);
        period_ = options_.T_0;
        start();
    }
    [[nodiscard]] const CosineAnnealingWarmRestartsOptions& options() const noexcept {
        return options_;
    }
    // Epochs since the last restart (T_cur) and the current period's length (T_i).
    [[nodiscard]] std::int64_t epochs_since_restart() const noexcept { return since_restart_; }
    [[nodiscard]] std::int64_t period() const noexcept { return period_; }

protected:
    // The closed form, from the base lr; the counters advance here since a step is an epoch.
    [[nodiscard]] std::vector<double> next_lrs() override {
        if (last_epoch() == 0) {
            since_restart_ = 0;
            period_ = options_.T_0;
        } else if (++since_restart_ >= period_) {
            since_restart_ -= period_;
            period_ *= options_.T_mult;
        }
        const double angle =
            std::numbers::pi * static_cast<double>(since_restart_) / static_cast<double>(period_);
        return detail::cosine_from_base(base_lrs(), options_.eta_min, angle);
    }

    void save_extra(std::vector<std::pair<std::string, double>>& out) const override {
        out.emplace_back("T_cur", static_cast<double>(since_restart_));
        out.emplace_back("T_i", static_cast<double>(period_));
    }
    void load_extra(const std::vector<std::pair<std::string, double>>& entries,
                    const std::string& where) override {
        std::optional<double> cur, period;
        for (const auto& [key, value] : entries) {
            std::optional<double>* slot = key == "T_cur" ? &cur : key == "T_i" ? &period : nullptr;
            if (slot == nullptr || slot->has_value()) {
                throw value_error(where + "unknown or repeated scalar '" + key + "'");
            }
            *slot = value;
        }
        if (!cur || !period ||
            !(*period >= 1.0 && *period <= 9.0e15 && *cur >= 0.0 && *cur < *period &&
              *cur == std::floor(*cur) && *period == std::floor(*period))) {
            throw value_error(where + "'T_cur' and 'T_i' must be whole numbers, 0 <= T_cur < T_i");
        }
        since_restart_ = static_cast<std::int64_t>(*cur);
        period_ = static_cast<std::int64_t>(*period);
    }

private:
    CosineAnnealingWarmRestartsOptions options_;
    std::int64_t since_restart_ = 0;
    std::int64_t period_ = 1;
};

// The 1cycle policy: the lr rises from max_lr / div_factor to max_lr over the first pct_start
// of total_steps, then falls to max_lr / (div_factor * final_div_factor); with three_phase it
// first falls back to the initial lr, symmetrically, and only then to the minimum. With max_lrs,
// each group follows this with its own max_lr. Counted in batches: step() once per
// optimizer.step(); a step past total_steps is a value_error. As in PyTorch, the length is
// total_steps or, instead, epochs × steps_per_epoch (giving both is an error here, where PyTorch
// ignores the second).
//
// PyTorch also cycles the optimiser's momentum (or Adam's beta1) inversely to the lr. That is
// not done here: the optimisers expose only their lr to a scheduler so far.
struct OneCycleLROptions {
    double max_lr = 0.0;           // required (> 0), unless max_lrs is given
    std::int64_t total_steps = 0;  // >= 2; 0: epochs × steps_per_epoch
    std::int64_t epochs = 0;
    // A std::size_t, as loader.size() (PyTorch's len(loader)) gives it; a variable of a signed
    // type needs a cast, and a negative one wraps to a count the overflow check refuses.
    std::size_t steps_per_epoch = 0;
    double pct_start = 0.3;
    enum class Anneal { cos, linear } anneal_strategy = Anneal::cos;
    double div_factor = 25.0;
    double final_div_factor = 1e4;
    bool three_phase = false;
    // One max_lr per group, each > 0 (see Note [Scheduler groups]); not a PyTorch keyword
    // (PyTorch's max_lr takes a list), so it comes after PyTorch's fields.
    std::vector<double> max_lrs = {};
};

class OneCycleLR final : public LRScheduler {
public:
    template <class T>
    OneCycleLR(Optimizer<T>& optimizer, OneCycleLROptions options)
        : LRScheduler("OneCycleLR", optimizer), options_(options) {
        max_lrs_ = detail::per_group(name(), "max_lr", options_.max_lr, options_.max_lrs,
                                     optimizer_groups(), detail::check_positive);
        total_steps_ = total_steps_of(options_);
        detail::check_unit_interval_closed(name(), "pct_start", options_.pct_start);
        detail::check_positive(name(), "div_factor", options_.div_factor);
        detail::check_positive(name(), "final_div_factor", options_.final_div_factor);
        const double steps = static_cast<double>(total_steps_);
        const double rise_end = options_.pct_start * steps - 1.0;
        if (options_.three_phase) {
            phases_ = {{rise_end, Level::initial, Level::max},
                       {2.0 * options_.pct_start * steps - 2.0, Level::max, Level::initial},
                       {steps - 1.0, Level::initial, Level::min}};
        } else {
            phases_ = {{rise_end, Level::initial, Level::max},
                       {steps - 1.0, Level::max, Level::min}};
        }
        // Each phase must last a positive number of steps (else its fraction divides by 0).
        double previous_end = 0.0;
        for (const Phase& phase : phases_) {
            if (!(phase.end > previous_end)) {
                const std::string by_epochs =
                    options_.epochs == 0 ? ""
                                         : " (" + std::to_string(options_.epochs) + " epochs of " +
                                               std::to_string(options_.steps_per_epoch) + ")";
                throw value_error(std::string(name()) + ": pct_start " +
                                  detail::number_text(options_.pct_start) + " with total_steps " +
                                  std::to_string(total_steps_) + by_epochs +
                                  " leaves a phase with no steps");
            }
            previous_end = phase.end;
        }
        std::vector<double> initial = max_lrs_;
        for (double& lr : initial) lr /= options_.div_factor;
        rebase(initial);
        start();
    }
    [[nodiscard]] const OneCycleLROptions& options() const noexcept { return options_; }
    // The schedule's length in steps: total_steps, or epochs × steps_per_epoch.
    [[nodiscard]] std::int64_t total_steps() const noexcept { return total_steps_; }

protected:
    [[nodiscard]] std::vector<double> next_lrs() override {
        const std::int64_t step = last_epoch();
        if (step > total_steps_) {
            throw value_error(std::string(name()) + ": stepped " + std::to_string(step + 1) +
                              " times, but total_steps is " + std::to_string(total_steps_));
        }
        std::vector<double> out(groups());
        for (std::size_t g = 0; g < out.size(); ++g) {
            double phase_start = 0.0;
            for (std::size_t i = 0; i < phases_.size(); ++i) {
                const Phase& phase = phases_[i];
                if (static_cast<double>(step) <= phase.end || i + 1 == phases_.size()) {
                    const double pct =
                        (static_cast<double>(step) - phase_start) / (phase.end - phase_start);
                    out[g] = anneal(level(g, phase.from), level(g, phase.to), pct);
                    break;
                }
                phase_start = phase.end;
            }
        }
        return out;
    }

private:
    enum class Level { initial, max, min };
    struct Phase {
        double end;  // the step at which the phase ends (a fraction of a step is allowed)
        Level from, to;
    };

    static std::int64_t total_steps_of(const OneCycleLROptions& options) {
        const char* who = "OneCycleLR";
        const bool by_epochs = options.epochs != 0 || options.steps_per_epoch != 0;
        if (options.total_steps != 0 && by_epochs) {
            detail::throw_value(who, "give total_steps (" + std::to_string(options.total_steps) +
                                         ") or epochs and steps_per_epoch, not both");
        }
        if (!by_epochs) {
            if (options.total_steps == 0) {
                detail::throw_value(who,
                                    "total_steps is required (the run's number of "
                                    "optimizer steps, >= 2), or epochs and steps_per_epoch");
            }
            detail::check_whole_at_least(who, "total_steps", options.total_steps, 2);
            return options.total_steps;
        }
        detail::check_whole_at_least(who, "epochs", options.epochs, 1);
        if (options.steps_per_epoch == 0) {
            detail::throw_value(who, "steps_per_epoch must be >= 1, got 0");
        }
        constexpr std::int64_t largest = std::numeric_limits<std::int64_t>::max();
        if (!std::in_range<std::int64_t>(options.steps_per_epoch) ||
            options.epochs > largest / static_cast<std::int64_t>(options.steps_per_epoch)) {
            detail::throw_value(who, "epochs * steps_per_epoch (" + std::to_string(options.epochs) +
                                         " * " + std::to_string(options.steps_per_epoch) +
                                         ") does not fit a 64-bit count");
        }
        const std::int64_t steps =
            options.epochs * static_cast<std::int64_t>(options.steps_per_epoch);
        if (steps < 2) {
            detail::throw_value(
                who, "epochs * steps_per_epoch must be >= 2, got " + std::to_string(steps));
        }
        return steps;
    }

    [[nodiscard]] double level(std::size_t g, Level which) const {
        const double initial = base_lrs()[g];
        switch (which) {
            case Level::initial:
                return initial;
            case Level::max:
                return max_lrs_[g];
            case Level::min:
                return initial / options_.final_div_factor;
        }
        return initial;
    }

    [[nodiscard]] double anneal(double from, double to, double pct) const {
        if (options_.anneal_strategy == OneCycleLROptions::Anneal::linear) {
            return (to - from) * pct + from;
        }
        const double cosine = std::cos(std::numbers::pi * pct) + 1.0;
        return to + (from - to) / 2.0 * cosine;
    }

    OneCycleLROptions options_;
    std::int64_t total_steps_ = 0;
    std::vector<double> max_lrs_;  // one per group
    std::vector<Phase> phases_;
};

}  // namespace gradscope
