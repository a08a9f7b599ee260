// Thread-local switches that change how ops record: whether they build a graph at all
// (no_grad), and whether they trap non-finite values at the op that made them (anomaly mode).
// Both are opt-in and scoped by RAII guards, so no global state leaks out of a scope.
#pragma once

#include <memory>
#include <string>

namespace gradscope {

namespace detail {
struct ModeFlags {
    bool grad_enabled = true;
    bool detect_anomaly = false;
    // The module whose forward is running (its path), so anomaly messages can say where.
    const std::shared_ptr<const std::string>* scope = nullptr;
};
inline ModeFlags& mode_flags() noexcept {
    thread_local ModeFlags flags;
    return flags;
}
}  // namespace detail

[[nodiscard]] inline bool is_grad_enabled() noexcept { return detail::mode_flags().grad_enabled; }
[[nodiscard]] inline bool is_anomaly_enabled() noexcept {
    return detail::mode_flags().detect_anomaly;
}

// While alive, ops record no graph: results are constants. Use it for evaluation and for
// parameter updates, which must not become part of the next step's graph.
class NoGradGuard {
public:
    NoGradGuard() noexcept : previous_(detail::mode_flags().grad_enabled) {
        detail::mode_flags().grad_enabled = false;
    }
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;
    ~NoGradGuard() { detail::mode_flags().grad_enabled = previous_; }

private:
    bool previous_;
};

// While alive, the first op whose forward value or backward gradient holds a NaN or an
// infinity throws gradscope::numeric_error naming the op (like PyTorch's detect_anomaly).
// It costs a pass over every result, so it is off unless asked for.
class AnomalyGuard {
public:
    explicit AnomalyGuard(bool enabled = true) noexcept
        : previous_(detail::mode_flags().detect_anomaly) {
        detail::mode_flags().detect_anomaly = enabled;
    }
    AnomalyGuard(const AnomalyGuard&) = delete;
    AnomalyGuard& operator=(const AnomalyGuard&) = delete;
    ~AnomalyGuard() { detail::mode_flags().detect_anomaly = previous_; }

private:
    bool previous_;
};

// Names the module whose forward runs while the guard lives (set by Module::operator()).
class ScopeGuard {
public:
    explicit ScopeGuard(const std::shared_ptr<const std::string>& path) noexcept
        : previous_(detail::mode_flags().scope) {
        detail::mode_flags().scope = &path;
    }
    ScopeGuard(const ScopeGuard&) = delete;
    ScopeGuard& operator=(const ScopeGuard&) = delete;
    ~ScopeGuard() { detail::mode_flags().scope = previous_; }

private:
    const std::shared_ptr<const std::string>* previous_;
};

}  // namespace gradscope
