// GradientMonitor's layer selector (GradientMonitor::Options::select): a callable
//     bool(const std::string& path, Module<T>& module)
// that says which modules to watch, or empty for the monitor's default (every Linear).
//
// A class rather than a bare std::function member so that a callable of the wrong signature,
// written in a designated initialiser `{.select = ...}`, is refused with one message naming the
// signature (LayerSelectorFor). With a std::function member, the compiler could only say that
// there is "no known conversion" from the braced list to Options.
#pragma once

#include "../nn/module.hpp"

#include <concepts>
#include <cstddef>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>

namespace gradscope::diag {

// (clang-format 14 takes the `&,` in these template arguments for an expression.)
// clang-format off
template <class F, class T>
concept LayerSelectorFor =
    std::copy_constructible<F> && std::is_invocable_r_v<bool, F&, const std::string&, Module<T>&>;
// clang-format on

template <class T>
class LayerSelector {
public:
    using Function = std::function<bool(const std::string& path, Module<T>& module)>;

    LayerSelector() = default;
    LayerSelector(std::nullptr_t) {}

    // Unconstrained on purpose (but for the copy and nullptr cases above): a constraint would
    // remove this constructor from overload resolution, and the error would be about Options
    // instead of about the selector. The static_assert names the requirement instead.
    template <class F>
    requires(!std::same_as<std::remove_cvref_t<F>, LayerSelector> &&
             !std::same_as<std::remove_cvref_t<F>, std::nullptr_t>)
        LayerSelector(F&& select) {  // NOLINT: implicit, as std::function's
        using Callable = std::decay_t<F>;
        if constexpr (LayerSelectorFor<Callable, T>) {
            select_ = Function(std::forward<F>(select));
        } else {
            static_assert(LayerSelectorFor<Callable, T>,
                          "GradientMonitor::Options::select takes a callable "
                          "bool(const std::string& path, Module<T>& module) (LayerSelectorFor)");
        }
    }

    explicit operator bool() const noexcept { return static_cast<bool>(select_); }

    bool operator()(const std::string& path, Module<T>& module) const {
        return select_(path, module);
    }

private:
    Function select_;
};

}  // namespace gradscope::diag
