// HookList: the callbacks registered on one tensor or one module, in registration order.
//
// Note [Hooks that change hooks]
// A hook may remove itself or another hook, or register a new one, while the list is running:
// a monitor detaches from inside a callback, a one-shot hook removes itself after its first
// call. The rules are those a reader of the calling code expects:
//  - a hook removed while the list runs does not run again, not even later in the same run;
//  - a hook added while the list runs first runs at the next run;
//  - the callable of a running hook stays alive until it returns, even if it removed itself.
// So while a run is in progress, removal only marks an entry and additions wait in a side list;
// both are settled when the outermost run ends.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace gradscope {

template <class Fn>
class HookList {
public:
    HookList() = default;
    HookList(const HookList&) = delete;
    HookList& operator=(const HookList&) = delete;

    std::uint64_t add(Fn hook) {
        const std::uint64_t id = next_id_++;
        (running_ > 0 ? added_while_running_ : entries_)
            .push_back(Entry{id, std::move(hook), false});
        return id;
    }

    // Returns false when no hook has this id (it was removed already).
    bool remove(std::uint64_t id) {
        if (std::erase_if(added_while_running_, [id](const Entry& e) { return e.id == id; }) > 0) {
            return true;
        }
        for (auto it = entries_.begin(); it != entries_.end(); ++it) {
            if (it->id != id || it->removed) continue;
            if (running_ > 0) {
                it->removed = true;
            } else {
                entries_.erase(it);
            }
            return true;
        }
        return false;
    }

    [[nodiscard]] bool empty() const noexcept { return size() == 0; }
    [[nodiscard]] std::size_t size() const noexcept {
        const auto live = std::count_if(entries_.begin(), entries_.end(),
                                        [](const Entry& e) { return !e.removed; });
        return static_cast<std::size_t>(live) + added_while_running_.size();
    }

    // Calls every live hook with `args`. Entries are indexed, not iterated, and the vector is
    // not resized while any run is in progress, so a hook's callable never moves under it.
    template <class... Args>
    void run(Args&&... args) {
        struct Settle {
            HookList& list;
            ~Settle() {
                if (--list.running_ == 0) list.settle();
            }
        };
        ++running_;
        Settle settle{*this};
        const std::size_t count = entries_.size();
        for (std::size_t i = 0; i < count; ++i) {
            if (!entries_[i].removed) entries_[i].hook(args...);
        }
    }

private:
    struct Entry {
        std::uint64_t id;
        Fn hook;
        bool removed;
    };

    void settle() noexcept {
        std::erase_if(entries_, [](const Entry& e) { return e.removed; });
        if (added_while_running_.empty()) return;
        // Only the reservation can fail (out of memory); the added hooks then wait for the
        // next settle rather than being lost.
        try {
            entries_.reserve(entries_.size() + added_while_running_.size());
        } catch (...) {
            return;
        }
        for (Entry& e : added_while_running_) entries_.push_back(std::move(e));
        added_while_running_.clear();
    }

    std::vector<Entry> entries_;
    std::vector<Entry> added_while_running_;
    std::uint64_t next_id_ = 1;
    int running_ = 0;
};

}  // namespace gradscope
