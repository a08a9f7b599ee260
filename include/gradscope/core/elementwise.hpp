// Elementwise functions as plug-in types, and the one op that applies any of them.
//
// An elementwise function is a small, trivially copyable type with
//   static constexpr const char* name;
//   template <class T> T value(T x) const;          // f(x)
//   template <class T> T derivative(T x, T y) const; // f'(x), given y = f(x) as well
// The derivative may use the output y when that is cheaper (sigmoid' = y(1-y)). A type may
// also offer whole-array versions, `values(x)` and `derivatives(x, y)` taking Eigen arrays, so
// that Eigen can vectorise them (tanh, sigmoid, relu do); the op then prefers them. Activation
// functions are exactly such types (see activations.hpp); a user's own is written the same way
// and works everywhere a built-in does: in the op, in gradcheck, in the mean-field theory.
//
// A type may also declare `static constexpr bool derivative_from_output = true` when its
// derivative is unchanged if the output is passed in place of the input: derivative(y, y) ==
// derivative(x, y). relu qualifies (y > 0 exactly where x > 0), and so do sigmoid and tanh,
// which ignore x. The op then does not keep its input's value for the backward pass, and in a
// network the input's buffer goes back to the pool during the forward pass (Node::value_readers).
//
// For second-order derivatives (core/second_order.hpp: Hessian-vector products), a type adds
//   template <class T> T second_derivative(T x, T y) const; // f''(x), given y = f(x)
// under the same rule as derivative() when derivative_from_output is set (it may then be given
// y for x). Without it everything else works, and a Hessian-vector product through the
// function is refused with an error naming it.
//
// A type with parameters may offer `void validate() const`, throwing value_error for parameters
// that make no function (a NaN slope, an inverted clamp). It runs once per op call, when an
// Activation layer is built and when the mean-field theory is asked, never per element.
#pragma once

#include "ops/support.hpp"

#include <cmath>
#include <concepts>

namespace gradscope {

template <class F, class T = double>
concept ElementwiseFunction = std::is_trivially_copyable_v<F> && requires(const F f, T x) {
    { F::name } -> std::convertible_to<const char*>;
    { f.value(x) } -> std::convertible_to<T>;
    { f.derivative(x, x) } -> std::convertible_to<T>;
};

namespace detail {

template <class F, class T>
concept HasArrayForm = requires(const F f, ConstMatrixView<T> x) {
    f.values(x.array());
    f.derivatives(x.array(), x.array());
};

template <class F>
constexpr bool derivative_from_output() {
    if constexpr (requires { F::derivative_from_output; }) {
        return F::derivative_from_output;
    } else {
        return false;
    }
}

template <class F, class T>
concept HasSecondDerivative = requires(const F f, T x) {
    { f.second_derivative(x, x) } -> std::convertible_to<T>;
};

// f'(x, y) of every element into `out`, from the op's input node (or its output, see above)
// and output, vectorised where the type has array forms.
template <class T, class F>
void derivatives_into(const Node<T>& node, MatrixView<T> out) {
    const F f = node.template attr<F>();
    const Node<T>& x = derivative_from_output<F>() ? node : *node.inputs[0];
    if constexpr (HasArrayForm<F, T>) {
        out.array() = f.derivatives(value_of(x).array(), value_of(node).array());
    } else {
        out = value_of(x).binaryExpr(
            value_of(node), [f](T xi, T yi) { return static_cast<T>(f.derivative(xi, yi)); });
    }
}

// y' = f'(x) x'.
template <class T, class F>
void elementwise_tangent_forward(Node<T>& node) {
    node.tangent.resize(node.shape());
    derivatives_into<T, F>(node, node.tangent.view());
    node.tangent.view().array() *= std::as_const(node.inputs[0]->tangent).view().array();
}

// dx = g f'(x)  ->  dx' = g' f'(x) + g f''(x) x'.
template <class T, class F>
void elementwise_tangent_backward(Node<T>& node) {
    const F f = node.template attr<F>();
    Node<T>& input = *node.inputs[0];
    if (!input.requires_grad) return;
    const Node<T>& x = derivative_from_output<F>() ? node : input;
    PooledMatrix<T> change(node.shape());
    MatrixView<T> out = change.view();
    derivatives_into<T, F>(node, out);
    out.array() *= std::as_const(node.grad_tangent).view().array();
    if (input.has_tangent) {
        out += grad_of(node).cwiseProduct(
            value_of(x)
                .binaryExpr(value_of(node),
                            [f](T xi, T yi) { return static_cast<T>(f.second_derivative(xi, yi)); })
                .cwiseProduct(std::as_const(input.tangent).view()));
    }
    if (!input.grad_tangent_written) {
        std::swap(input.grad_tangent, change);
        input.grad_tangent_written = true;
    } else {
        input.grad_tangent.view() += std::as_const(change).view();
    }
}

// The core's elementwise functions and the built-in activations have their rules listed in
// core/second_order.hpp, found by their backward function like every other built-in op, so
// that a program that never asks for second order compiles none of them; a user's type points
// its node at its rule (compiled with the op, as it cannot be listed).
template <class F>
inline constexpr bool rule_listed_by_backward = false;

template <class T, class F>
inline constexpr TangentRule<T> elementwise_tangent_rule = [] {
    if constexpr (HasSecondDerivative<F, T>) {
        return TangentRule<T>{&elementwise_tangent_forward<T, F>,
                              &elementwise_tangent_backward<T, F>, nullptr};
    } else {
        return TangentRule<T>{nullptr, nullptr,
                              "its elementwise function type has no second_derivative(x, y); "
                              "add `template <class T> T second_derivative(T x, T y) const` "
                              "(f''(x), given y = f(x)) to use it in a Hessian-vector product"};
    }
}();

template <class F>
void validate_function(const F& f) {
    if constexpr (requires { f.validate(); }) f.validate();
}

template <class T, class F>
void elementwise_backward(Node<T>& node) {
    const F f = node.template attr<F>();
    // With derivative_from_output the input's value may be gone: pass the output for it.
    const Node<T>& x = derivative_from_output<F>() ? node : *node.inputs[0];
    if constexpr (HasArrayForm<F, T>) {
        accumulate(*node.inputs[0], (grad_of(node).array() *
                                     f.derivatives(value_of(x).array(), value_of(node).array()))
                                        .matrix());
    } else {
        accumulate(
            *node.inputs[0],
            grad_of(node).cwiseProduct(value_of(x).binaryExpr(
                value_of(node), [f](T xi, T yi) { return static_cast<T>(f.derivative(xi, yi)); })));
    }
}

}  // namespace detail

// y = f(x) elementwise, one node with the derivative fused into its backward.
template <class T, ElementwiseFunction<T> F>
Tensor<T> elementwise(const Tensor<T>& x, F f = {}) {
    detail::validate_function(f);
    Node<T>& xn = x.node();
    NodePtr<T> node = detail::record<T>(
        F::name, xn.shape(), {&xn}, &detail::elementwise_backward<T, F>,
        detail::BackwardReads{detail::derivative_from_output<F>() ? 0u : 1u, true});
    node->set_attr(f);
    if constexpr (!detail::rule_listed_by_backward<F>) {
        node->tangent_rule = &detail::elementwise_tangent_rule<T, F>;
    }
    if constexpr (detail::HasArrayForm<F, T>) {
        node->value.view().array() = f.values(detail::value_of(xn).array());
    } else {
        node->value.view() =
            detail::value_of(xn).unaryExpr([f](T xi) { return static_cast<T>(f.value(xi)); });
    }
    return detail::finish(std::move(node));
}

// The elementwise functions of the core. Their derivatives follow PyTorch at kinks
// (abs'(0) = 0, clamp passes the gradient on its closed interval).
namespace fn {

struct Exp {
    static constexpr const char* name = "exp";
    template <class T>
    T value(T x) const {
        return std::exp(x);
    }
    template <class T>
    T derivative(T, T y) const {
        return y;
    }
    template <class T>
    T second_derivative(T, T y) const {
        return y;
    }
};

struct Log {
    static constexpr const char* name = "log";
    template <class T>
    T value(T x) const {
        return std::log(x);
    }
    template <class T>
    T derivative(T x, T) const {
        return T(1) / x;
    }
    template <class T>
    T second_derivative(T x, T) const {
        return T(-1) / (x * x);
    }
};

struct Sqrt {
    static constexpr const char* name = "sqrt";
    template <class T>
    T value(T x) const {
        return std::sqrt(x);
    }
    template <class T>
    T derivative(T, T y) const {
        return T(0.5) / y;
    }
    template <class T>
    T second_derivative(T, T y) const {
        return T(-0.25) / (y * y * y);
    }
};

struct Square {
    static constexpr const char* name = "square";
    template <class T>
    T value(T x) const {
        return x * x;
    }
    template <class T>
    T derivative(T x, T) const {
        return T(2) * x;
    }
    template <class T>
    T second_derivative(T, T) const {
        return T(2);
    }
};

struct Abs {
    static constexpr const char* name = "abs";
    template <class T>
    T value(T x) const {
        return std::abs(x);
    }
    template <class T>
    T derivative(T x, T) const {
        return T((x > T(0)) - (x < T(0)));
    }
    template <class T>
    T second_derivative(T, T) const {
        return T(0);
    }
};

struct Pow {
    static constexpr const char* name = "pow";
    double exponent = 1.0;
    template <class T>
    T value(T x) const {
        return std::pow(x, static_cast<T>(exponent));
    }
    template <class T>
    T derivative(T x, T) const {
        return static_cast<T>(exponent) * std::pow(x, static_cast<T>(exponent - 1.0));
    }
    template <class T>
    T second_derivative(T x, T) const {
        return static_cast<T>(exponent * (exponent - 1.0)) *
               std::pow(x, static_cast<T>(exponent - 2.0));
    }
};

struct Clamp {
    static constexpr const char* name = "clamp";
    double low = 0.0;
    double high = 0.0;
    void validate() const {
        if (!(low <= high)) {
            throw value_error("clamp: the lower bound " + detail::number_text(low) +
                              " exceeds the upper bound " + detail::number_text(high));
        }
    }
    template <class T>
    T value(T x) const {
        return std::min(std::max(x, static_cast<T>(low)), static_cast<T>(high));
    }
    template <class T>
    T derivative(T x, T) const {
        return (x >= static_cast<T>(low) && x <= static_cast<T>(high)) ? T(1) : T(0);
    }
    template <class T>
    T second_derivative(T, T) const {
        return T(0);
    }
};

}  // namespace fn

// The core's functions, as a list that core/second_order.hpp expands into their second-order
// rules (so it stays defined).
#define GRADSCOPE_CORE_ELEMENTWISE(X) X(Exp) X(Log) X(Sqrt) X(Square) X(Abs) X(Pow) X(Clamp)
namespace detail {
#define GRADSCOPE_LISTED(F) \
    template <>             \
    inline constexpr bool rule_listed_by_backward<fn::F> = true;
GRADSCOPE_CORE_ELEMENTWISE(GRADSCOPE_LISTED)
#undef GRADSCOPE_LISTED
}  // namespace detail

template <class T>
Tensor<T> exp(const Tensor<T>& x) {
    return elementwise(x, fn::Exp{});
}
template <class T>
Tensor<T> log(const Tensor<T>& x) {
    return elementwise(x, fn::Log{});
}
template <class T>
Tensor<T> sqrt(const Tensor<T>& x) {
    return elementwise(x, fn::Sqrt{});
}
template <class T>
Tensor<T> square(const Tensor<T>& x) {
    return elementwise(x, fn::Square{});
}
template <class T>
Tensor<T> abs(const Tensor<T>& x) {
    return elementwise(x, fn::Abs{});
}
template <class T>
Tensor<T> pow(const Tensor<T>& x, double exponent) {
    return elementwise(x, fn::Pow{exponent});
}
template <class T>
Tensor<T> clamp(const Tensor<T>& x, double low, double high) {
    return elementwise(x, fn::Clamp{low, high});
}

}  // namespace gradscope
