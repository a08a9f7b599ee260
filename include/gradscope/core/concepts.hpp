// The concepts the public templates are constrained by that belong to no one header: what a
// tensor may hold, and what a callback stored in a std::function must be.
//
// They are there for the error messages. A type or lambda that does not fit would otherwise
// fail deep inside std::function or Eigen, in pages of instantiation context; constrained, the
// compiler names the concept and the one requirement that failed, at the caller's line
// (tests/compile_fail/ checks this for each misuse, docs/VALIDATION.md measures it). They
// accept exactly what compiled before.
#pragma once

#include <concepts>
#include <type_traits>

namespace gradscope {

// The element types of a Tensor: float or double (Eigen has no reverse-mode use for others, and
// the losses, initialisers and statistics compute in floating point).
template <class T>
concept TensorScalar = std::same_as<T, float> || std::same_as<T, double>;

// F can be stored in a std::function<void(Args...)> and called with Args: exactly what
// std::function's constructor requires (a stored copy called as an lvalue, any return value
// ignored), stated where a hook is registered rather than inside <functional>.
// (clang-format 14 takes the `&,` in these template arguments for an expression.)
// clang-format off
template <class F, class... Args>
concept CallbackWith =
    std::invocable<std::decay_t<F>&, Args...> && std::copy_constructible<std::decay_t<F>>;
// clang-format on

}  // namespace gradscope
