// Schedulers made of schedulers, as in torch.optim.lr_scheduler:
//   ChainedScheduler: every step() steps each of its schedulers in turn, so their factors
//                     multiply (a warm-up times a decay);
//   SequentialLR:     one scheduler after another, switching at milestone epochs (a warm-up,
//                     then a cosine); at its milestone a scheduler restarts at epoch 0 from the
//                     base lr.
// Both hold references: the schedulers they are made of must outlive them, and must drive the
// same optimiser. Do not step those schedulers yourself while a composite drives them.
#pragma once

#include "scheduler.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace gradscope {

using SchedulerList = std::vector<std::reference_wrapper<LRScheduler>>;

namespace detail {

inline const LRScheduler& first_of(const char* who, const SchedulerList& parts) {
    if (parts.empty()) throw_value(who, "needs at least one scheduler");
    for (std::size_t i = 1; i < parts.size(); ++i) {
        if (parts[i].get().optimizer_identity() != parts[0].get().optimizer_identity()) {
            throw_value(who, "scheduler " + std::to_string(i) + " (" + parts[i].get().name() +
                                 ") drives another optimiser than scheduler 0 (" +
                                 parts[0].get().name() + ")");
        }
    }
    return parts[0].get();
}

}  // namespace detail

// What the composites share: the list, and its state saved as "<i>.<entry>" per scheduler.
class CompositeScheduler : public LRScheduler {
public:
    [[nodiscard]] const SchedulerList& schedulers() const noexcept { return parts_; }

protected:
    CompositeScheduler(const char* name, SchedulerList parts)
        : LRScheduler(name, detail::first_of(name, parts)), parts_(std::move(parts)) {}

    [[nodiscard]] std::vector<double> next_lrs() override { return current_lrs(); }

    void save_extra(std::vector<std::pair<std::string, double>>& out) const override {
        for (std::size_t i = 0; i < parts_.size(); ++i) {
            for (const auto& [key, value] : parts_[i].get().state().scalars) {
                out.emplace_back(std::to_string(i) + "." + key, value);
            }
        }
    }

    // Loads every part; if one refuses its state, the parts already loaded are put back.
    void load_extra(const std::vector<std::pair<std::string, double>>& entries,
                    const std::string& where) override {
        std::vector<SchedulerState> states(parts_.size());
        for (const auto& [key, value] : entries) {
            const std::size_t dot = key.find('.');
            const std::string index = key.substr(0, dot);
            if (dot == std::string::npos || !detail::is_position(index) ||
                std::stoul(index) >= parts_.size()) {
                throw value_error(where + "unknown scalar '" + key + "'");
            }
            states[std::stoul(index)].scalars.emplace_back(key.substr(dot + 1), value);
        }
        std::vector<SchedulerState> before;
        for (const auto& part : parts_) before.push_back(part.get().state());
        std::size_t loaded = 0;
        try {
            for (; loaded < parts_.size(); ++loaded)
                parts_[loaded].get().load_state(states[loaded]);
        } catch (...) {
            for (std::size_t i = 0; i < loaded; ++i) parts_[i].get().load_state(before[i]);
            throw;
        }
    }

    [[nodiscard]] LRScheduler& part(std::size_t i) const { return parts_[i].get(); }

private:
    SchedulerList parts_;
};

class ChainedScheduler final : public CompositeScheduler {
public:
    explicit ChainedScheduler(SchedulerList schedulers)
        : CompositeScheduler("ChainedScheduler", std::move(schedulers)) {}

    void step() override {
        for (const auto& part : schedulers()) step_part(part.get());
        set_last_epoch(last_epoch() + 1);
        set_last_lr(current_lrs());
    }
};

// schedulers[i] runs from epoch milestones[i-1] (0 for the first) until milestones[i].
class SequentialLR final : public CompositeScheduler {
public:
    SequentialLR(SchedulerList schedulers, std::vector<std::int64_t> milestones)
        : CompositeScheduler("SequentialLR", std::move(schedulers)),
          milestones_(std::move(milestones)) {
        if (milestones_.size() + 1 != this->schedulers().size()) {
            throw value_error("SequentialLR: " + std::to_string(this->schedulers().size()) +
                              " schedulers need " + std::to_string(this->schedulers().size() - 1) +
                              " milestones, got " + std::to_string(milestones_.size()));
        }
        for (std::size_t i = 0; i < milestones_.size(); ++i) {
            if (milestones_[i] < 1 || (i > 0 && milestones_[i] <= milestones_[i - 1])) {
                throw value_error("SequentialLR: milestones must be increasing epochs >= 1, got " +
                                  std::to_string(milestones_[i]) + " at position " +
                                  std::to_string(i));
            }
        }
        // As PyTorch: back to the initial lr, undo each scheduler's constructor step, and
        // start the first one again.
        reset_to_initial_lr();
        for (const auto& p : this->schedulers()) rewind_part(p.get());
        initial_step_part(part(0));
        set_last_lr(part(0).last_lr());
    }

    [[nodiscard]] const std::vector<std::int64_t>& milestones() const noexcept {
        return milestones_;
    }

    void step() override {
        const std::int64_t epoch = last_epoch() + 1;
        set_last_epoch(epoch);
        const auto after = std::upper_bound(milestones_.begin(), milestones_.end(), epoch);
        const auto index = static_cast<std::size_t>(after - milestones_.begin());
        LRScheduler& current = part(index);
        if (index > 0 && milestones_[index - 1] == epoch) {
            restart_part(current);
        } else {
            step_part(current);
        }
        set_last_lr(current.last_lr());
    }

private:
    std::vector<std::int64_t> milestones_;
};

}  // namespace gradscope
