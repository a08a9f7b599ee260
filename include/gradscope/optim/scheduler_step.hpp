// Schedules that multiply the lr by a factor at chosen epochs: StepLR, MultiStepLR,
// ExponentialLR, ConstantLR and LinearLR (the usual warm-up), with torch.optim.lr_scheduler's
// semantics and its chainable arithmetic (see optim/scheduler.hpp). Options PyTorch requires
// have defaults here that the constructor refuses, so that leaving one out is an error.
#pragma once

#include "scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace gradscope {

// lr * gamma every step_size epochs.
struct StepLROptions {
    std::int64_t step_size = 0;  // required, >= 1 (the default 0 is refused, naming it)
    double gamma = 0.1;
};

class StepLR final : public LRScheduler {
public:
    template <class T>
    StepLR(Optimizer<T>& optimizer, StepLROptions options)
        : LRScheduler("StepLR", optimizer), options_(options) {
        detail::check_whole_at_least(name(), "step_size", options_.step_size, 1);
        detail::check_non_negative(name(), "gamma", options_.gamma);
        start();
    }
    [[nodiscard]] const StepLROptions& options() const noexcept { return options_; }

protected:
    [[nodiscard]] std::vector<double> next_lrs() override {
        const bool boundary = last_epoch() != 0 && last_epoch() % options_.step_size == 0;
        return map_lrs([&](std::size_t, double lr) { return boundary ? lr * options_.gamma : lr; });
    }

    [[nodiscard]] std::vector<double> restart_lrs() override { return scaled_base_lrs(1.0); }

private:
    StepLROptions options_;
};

// lr * gamma at each milestone epoch (a milestone given twice multiplies by gamma twice).
struct MultiStepLROptions {
    std::vector<std::int64_t> milestones;
    double gamma = 0.1;
};

class MultiStepLR final : public LRScheduler {
public:
    template <class T>
    MultiStepLR(Optimizer<T>& optimizer, MultiStepLROptions options)
        : LRScheduler("MultiStepLR", optimizer), options_(std::move(options)) {
        for (const std::int64_t m : options_.milestones) {
            detail::check_whole_at_least(name(), "every milestone", m, 0);
        }
        detail::check_non_negative(name(), "gamma", options_.gamma);
        std::sort(options_.milestones.begin(), options_.milestones.end());
        start();
    }
    [[nodiscard]] const MultiStepLROptions& options() const noexcept { return options_; }

protected:
    [[nodiscard]] std::vector<double> next_lrs() override {
        const auto& m = options_.milestones;
        const auto hits = std::count(m.begin(), m.end(), last_epoch());
        double factor = 1.0;
        // PyTorch computes gamma ** count; for count 1 (the usual case) that is gamma exactly.
        if (hits > 0) factor = std::pow(options_.gamma, static_cast<double>(hits));
        return map_lrs([&](std::size_t, double lr) { return hits > 0 ? lr * factor : lr; });
    }

    [[nodiscard]] std::vector<double> restart_lrs() override {
        const auto& m = options_.milestones;
        const auto passed =
            std::count_if(m.begin(), m.end(), [](std::int64_t e) { return e <= 0; });
        return scaled_base_lrs(std::pow(options_.gamma, static_cast<double>(passed)));
    }

private:
    MultiStepLROptions options_;
};

// lr * gamma every epoch.
struct ExponentialLROptions {
    // Required, as in PyTorch: the default NaN is refused, naming the option.
    double gamma = std::numeric_limits<double>::quiet_NaN();
};

class ExponentialLR final : public LRScheduler {
public:
    template <class T>
    ExponentialLR(Optimizer<T>& optimizer, ExponentialLROptions options)
        : LRScheduler("ExponentialLR", optimizer), options_(options) {
        detail::check_non_negative(name(), "gamma", options_.gamma);
        start();
    }
    [[nodiscard]] const ExponentialLROptions& options() const noexcept { return options_; }

protected:
    [[nodiscard]] std::vector<double> next_lrs() override {
        const bool first = last_epoch() == 0;
        return map_lrs([&](std::size_t, double lr) { return first ? lr : lr * options_.gamma; });
    }

    [[nodiscard]] std::vector<double> restart_lrs() override { return scaled_base_lrs(1.0); }

private:
    ExponentialLROptions options_;
};

// lr * factor for the first total_iters epochs, then lr.
struct ConstantLROptions {
    double factor = 1.0 / 3.0;
    std::int64_t total_iters = 5;
};

class ConstantLR final : public LRScheduler {
public:
    template <class T>
    ConstantLR(Optimizer<T>& optimizer, ConstantLROptions options)
        : LRScheduler("ConstantLR", optimizer), options_(options) {
        if (!(options_.factor > 0.0 && options_.factor <= 1.0)) {
            detail::refuse(name(), "factor", "in (0, 1]", options_.factor);
        }
        detail::check_whole_at_least(name(), "total_iters", options_.total_iters, 0);
        start();
    }
    [[nodiscard]] const ConstantLROptions& options() const noexcept { return options_; }

protected:
    [[nodiscard]] std::vector<double> next_lrs() override {
        const std::int64_t e = last_epoch();
        return map_lrs([&](std::size_t, double lr) {
            if (e == 0) return lr * options_.factor;
            if (e == options_.total_iters) return lr * (1.0 / options_.factor);
            return lr;
        });
    }

    [[nodiscard]] std::vector<double> restart_lrs() override {
        const double factor = options_.factor;
        return scaled_base_lrs(options_.total_iters <= 0 ? factor + (1.0 - factor) : factor);
    }

private:
    ConstantLROptions options_;
};

// The factor on the base lr goes linearly from start_factor at epoch 0 to end_factor at
// total_iters, then stays: a warm-up with the defaults' end_factor 1.
struct LinearLROptions {
    double start_factor = 1.0 / 3.0;
    double end_factor = 1.0;
    std::int64_t total_iters = 5;
};

class LinearLR final : public LRScheduler {
public:
    template <class T>
    LinearLR(Optimizer<T>& optimizer, LinearLROptions options)
        : LRScheduler("LinearLR", optimizer), options_(options) {
        // start_factor 0 would make every later step's ratio divide by 0.
        if (!(options_.start_factor > 0.0 && options_.start_factor <= 1.0)) {
            detail::refuse(name(), "start_factor", "in (0, 1]", options_.start_factor);
        }
        detail::check_unit_interval_closed(name(), "end_factor", options_.end_factor);
        detail::check_whole_at_least(name(), "total_iters", options_.total_iters, 1);
        start();
    }
    [[nodiscard]] const LinearLROptions& options() const noexcept { return options_; }

protected:
    [[nodiscard]] std::vector<double> next_lrs() override {
        const std::int64_t e = last_epoch();
        const double start = options_.start_factor;
        const double change = options_.end_factor - start;
        return map_lrs([&](std::size_t, double lr) {
            if (e == 0) return lr * start;
            if (e > options_.total_iters) return lr;
            // The ratio of this epoch's factor to the last one's (PyTorch's chainable form).
            const double before = static_cast<double>(options_.total_iters) * start +
                                  static_cast<double>(e - 1) * change;
            return lr * (1.0 + change / before);
        });
    }

    [[nodiscard]] std::vector<double> restart_lrs() override {
        return scaled_base_lrs(options_.start_factor);
    }

private:
    LinearLROptions options_;
};

}  // namespace gradscope
