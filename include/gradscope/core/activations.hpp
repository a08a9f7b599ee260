// Activation functions: elementwise function types (see elementwise.hpp), written exactly as a
// user would write their own. Each is a small value type; parameters (a slope, an alpha) are
// members with PyTorch's defaults. Derivatives at kinks follow PyTorch.
#pragma once

#include "elementwise.hpp"

#include <cmath>
#include <numbers>

namespace gradscope {

namespace detail {

// 1 where x > 0, else 0 (NaN gives 0), for Eigen's vectorised evaluator: a comparison's bool
// array cast to a float is evaluated one scalar at a time, which made ReLU's backward pass
// the slowest elementwise pass of a deep network. Here it is one compare and one mask per packet.
struct PositiveIndicator {
    template <class T>
    T operator()(const T& x) const {
        return x > T(0) ? T(1) : T(0);
    }
    template <class Packet>
    Packet packetOp(const Packet& x) const {
        using Scalar = typename Eigen::internal::unpacket_traits<Packet>::type;
        return Eigen::internal::pand(Eigen::internal::pset1<Packet>(Scalar(1)),
                                     Eigen::internal::pcmp_lt(Eigen::internal::pzero(x), x));
    }
};

}  // namespace detail

struct Identity {
    static constexpr const char* name = "identity";
    template <class T>
    T value(T x) const {
        return x;
    }
    template <class T>
    T derivative(T, T) const {
        return T(1);
    }
    template <class T>
    T second_derivative(T, T) const {
        return T(0);
    }
};

struct Sigmoid {
    static constexpr bool derivative_from_output = true;
    static constexpr const char* name = "sigmoid";
    // Written so that neither branch overflows: exp of a positive number never appears.
    template <class T>
    T value(T x) const {
        if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
        const T e = std::exp(x);
        return e / (T(1) + e);
    }
    template <class T>
    T derivative(T, T y) const {
        return y * (T(1) - y);
    }
    template <class T>
    T second_derivative(T, T y) const {
        return y * (T(1) - y) * (T(1) - T(2) * y);
    }
    // Eigen's logistic is vectorised and equally careful with large |x|.
    template <class A>
    auto values(const Eigen::ArrayBase<A>& x) const {
        return x.logistic();
    }
    template <class A, class B>
    auto derivatives(const Eigen::ArrayBase<A>&, const Eigen::ArrayBase<B>& y) const {
        return y * (typename B::Scalar(1) - y);
    }
};

struct Tanh {
    static constexpr bool derivative_from_output = true;
    static constexpr const char* name = "tanh";
    template <class T>
    T value(T x) const {
        return std::tanh(x);
    }
    template <class T>
    T derivative(T, T y) const {
        return T(1) - y * y;
    }
    template <class T>
    T second_derivative(T, T y) const {
        return T(-2) * y * (T(1) - y * y);
    }
    template <class A>
    auto values(const Eigen::ArrayBase<A>& x) const {
        return x.tanh();
    }
    template <class A, class B>
    auto derivatives(const Eigen::ArrayBase<A>&, const Eigen::ArrayBase<B>& y) const {
        return typename B::Scalar(1) - y.square();
    }
};

// relu'(0) = 0, as in PyTorch.
struct ReLU {
    static constexpr bool derivative_from_output = true;
    static constexpr const char* name = "relu";
    template <class T>
    T value(T x) const {
        return x > T(0) ? x : T(0);
    }
    template <class T>
    T derivative(T x, T) const {
        return x > T(0) ? T(1) : T(0);
    }
    template <class T>
    T second_derivative(T, T) const {
        return T(0);
    }
    template <class A>
    auto values(const Eigen::ArrayBase<A>& x) const {
        return x.max(typename A::Scalar(0));
    }
    template <class A, class B>
    auto derivatives(const Eigen::ArrayBase<A>& x, const Eigen::ArrayBase<B>&) const {
        return x.unaryExpr(detail::PositiveIndicator{});
    }
};

struct LeakyReLU {
    static constexpr const char* name = "leaky_relu";
    double slope = 0.01;
    void validate() const { detail::check_finite(name, "slope", slope); }
    template <class T>
    T value(T x) const {
        return x > T(0) ? x : static_cast<T>(slope) * x;
    }
    template <class T>
    T derivative(T x, T) const {
        return x > T(0) ? T(1) : static_cast<T>(slope);
    }
    template <class T>
    T second_derivative(T, T) const {
        return T(0);
    }
};

struct ELU {
    static constexpr const char* name = "elu";
    double alpha = 1.0;
    void validate() const { detail::check_finite(name, "alpha", alpha); }
    template <class T>
    T value(T x) const {
        return x > T(0) ? x : static_cast<T>(alpha) * std::expm1(x);
    }
    template <class T>
    T derivative(T x, T y) const {
        return x > T(0) ? T(1) : y + static_cast<T>(alpha);
    }
    template <class T>
    T second_derivative(T x, T y) const {
        return x > T(0) ? T(0) : y + static_cast<T>(alpha);
    }
};

// Klambauer et al. 2017: the constants that make the variance map's fixed point 1.
struct SELU {
    static constexpr const char* name = "selu";
    static constexpr double lambda = 1.0507009873554804934193349852946;
    static constexpr double alpha = 1.6732632423543772848170429916717;
    template <class T>
    T value(T x) const {
        return static_cast<T>(lambda) * (x > T(0) ? x : static_cast<T>(alpha) * std::expm1(x));
    }
    template <class T>
    T derivative(T x, T) const {
        return static_cast<T>(lambda) * (x > T(0) ? T(1) : static_cast<T>(alpha) * std::exp(x));
    }
    template <class T>
    T second_derivative(T x, T) const {
        return x > T(0) ? T(0) : static_cast<T>(lambda * alpha) * std::exp(x);
    }
};

// The exact GELU, x * Phi(x) with Phi the standard normal CDF.
struct GELU {
    static constexpr const char* name = "gelu";
    template <class T>
    T value(T x) const {
        return T(0.5) * x * (T(1) + std::erf(x * static_cast<T>(std::numbers::sqrt2 / 2)));
    }
    template <class T>
    T derivative(T x, T) const {
        const T cdf = T(0.5) * (T(1) + std::erf(x * static_cast<T>(std::numbers::sqrt2 / 2)));
        const T pdf = std::exp(T(-0.5) * x * x) *
                      static_cast<T>(0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2);
        return cdf + x * pdf;
    }
    template <class T>
    T second_derivative(T x, T) const {
        // d/dx (Phi + x phi) = 2 phi + x phi' = phi (2 - x^2)
        const T pdf = std::exp(T(-0.5) * x * x) *
                      static_cast<T>(0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2);
        return pdf * (T(2) - x * x);
    }
};

// GELU's tanh approximation (PyTorch's approximate="tanh").
struct GELUTanh {
    static constexpr const char* name = "gelu_tanh";
    static constexpr double k = 0.7978845608028654;  // sqrt(2 / pi)
    static constexpr double c = 0.044715;
    template <class T>
    T value(T x) const {
        return T(0.5) * x *
               (T(1) + std::tanh(static_cast<T>(k) * (x + static_cast<T>(c) * x * x * x)));
    }
    template <class T>
    T derivative(T x, T) const {
        const T t = std::tanh(static_cast<T>(k) * (x + static_cast<T>(c) * x * x * x));
        return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * static_cast<T>(k) *
                                         (T(1) + static_cast<T>(3 * c) * x * x);
    }
    template <class T>
    T second_derivative(T x, T) const {
        // With u = k (x + c x^3) and t = tanh(u): f'' = (1 - t^2) (u' - x t u'^2 + x u'' / 2).
        const T t = std::tanh(static_cast<T>(k) * (x + static_cast<T>(c) * x * x * x));
        const T du = static_cast<T>(k) * (T(1) + static_cast<T>(3 * c) * x * x);
        const T d2u = static_cast<T>(6 * k * c) * x;
        return (T(1) - t * t) * (du - x * t * du * du + T(0.5) * x * d2u);
    }
};

// SiLU (swish): x * sigmoid(x).
struct SiLU {
    static constexpr const char* name = "silu";
    template <class T>
    T value(T x) const {
        return x * Sigmoid{}.value(x);
    }
    template <class T>
    T derivative(T x, T) const {
        const T s = Sigmoid{}.value(x);
        return s * (T(1) + x * (T(1) - s));
    }
    template <class T>
    T second_derivative(T x, T) const {
        const T s = Sigmoid{}.value(x);
        return s * (T(1) - s) * (T(2) + x * (T(1) - T(2) * s));
    }
};

// log(1 + exp(beta x)) / beta, and x itself once beta x exceeds the threshold (PyTorch's
// default 20), where the two agree to double precision and exp would overflow in float.
struct Softplus {
    static constexpr const char* name = "softplus";
    double beta = 1.0;
    double threshold = 20.0;
    // beta is divided by; threshold may be infinite (never switch to the identity), not NaN.
    void validate() const {
        detail::check_finite(name, "beta", beta);
        if (beta == 0.0) detail::throw_value(name, "beta must not be zero");
        if (std::isnan(threshold)) detail::throw_value(name, "threshold must not be NaN");
    }
    template <class T>
    T value(T x) const {
        const T bx = static_cast<T>(beta) * x;
        if (bx > static_cast<T>(threshold)) return x;
        // log1p(exp(z)) = max(z, 0) + log1p(exp(-|z|)): no overflow for large z
        return (std::max(bx, T(0)) + std::log1p(std::exp(-std::abs(bx)))) / static_cast<T>(beta);
    }
    template <class T>
    T derivative(T x, T) const {
        const T bx = static_cast<T>(beta) * x;
        return bx > static_cast<T>(threshold) ? T(1) : Sigmoid{}.value(bx);
    }
    template <class T>
    T second_derivative(T x, T) const {
        const T bx = static_cast<T>(beta) * x;
        if (bx > static_cast<T>(threshold)) return T(0);
        const T s = Sigmoid{}.value(bx);
        return static_cast<T>(beta) * s * (T(1) - s);
    }
};

// Clamps to [min, max]; the gradient passes strictly inside (PyTorch's hardtanh).
struct Hardtanh {
    static constexpr const char* name = "hardtanh";
    double min = -1.0;
    double max = 1.0;
    void validate() const {
        if (!(min <= max)) {
            detail::throw_value(name, "min = " + detail::number_text(min) +
                                          " must not exceed max = " + detail::number_text(max));
        }
    }
    template <class T>
    T value(T x) const {
        return std::min(std::max(x, static_cast<T>(min)), static_cast<T>(max));
    }
    template <class T>
    T derivative(T x, T) const {
        return (x > static_cast<T>(min) && x < static_cast<T>(max)) ? T(1) : T(0);
    }
    template <class T>
    T second_derivative(T, T) const {
        return T(0);
    }
};

// The built-in activations' second-order rules are listed in core/second_order.hpp.
namespace detail {
#define GRADSCOPE_ACTIVATION(Type) \
    template <>                    \
    inline constexpr bool rule_listed_by_backward<Type> = true;
#include "../builtin_activations.inc"
}  // namespace detail

template <class T>
Tensor<T> sigmoid(const Tensor<T>& x) {
    return elementwise(x, Sigmoid{});
}
template <class T>
Tensor<T> tanh(const Tensor<T>& x) {
    return elementwise(x, Tanh{});
}
template <class T>
Tensor<T> relu(const Tensor<T>& x) {
    return elementwise(x, ReLU{});
}

}  // namespace gradscope

template <>
struct Eigen::internal::functor_traits<gradscope::detail::PositiveIndicator> {
    enum { Cost = 2, PacketAccess = 1 };
};
