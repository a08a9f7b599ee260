// Activation functions: elementwise function types (see elementwise.hpp), written exactly as a
// user would write their own. The full set (leaky ReLU, ELU, SELU, GELU, ...) joins these with
// the layers.
#pragma once

#include "elementwise.hpp"

#include <cmath>

namespace gradscope {

struct Identity {
    static constexpr const char* name = "identity";
    template <class T> T value(T x) const { return x; }
    template <class T> T derivative(T, T) const { return T(1); }
};

struct Sigmoid {
    static constexpr const char* name = "sigmoid";
    // Written so that neither branch overflows: exp of a positive number never appears.
    template <class T> T value(T x) const {
        if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
        const T e = std::exp(x);
        return e / (T(1) + e);
    }
    template <class T> T derivative(T, T y) const { return y * (T(1) - y); }
};

struct Tanh {
    static constexpr const char* name = "tanh";
    template <class T> T value(T x) const { return std::tanh(x); }
    template <class T> T derivative(T, T y) const { return T(1) - y * y; }
};

// relu'(0) = 0, as in PyTorch.
struct ReLU {
    static constexpr const char* name = "relu";
    template <class T> T value(T x) const { return x > T(0) ? x : T(0); }
    template <class T> T derivative(T x, T) const { return x > T(0) ? T(1) : T(0); }
};

template <class T> Tensor<T> sigmoid(const Tensor<T>& x) { return elementwise(x, Sigmoid{}); }
template <class T> Tensor<T> tanh(const Tensor<T>& x) { return elementwise(x, Tanh{}); }
template <class T> Tensor<T> relu(const Tensor<T>& x) { return elementwise(x, ReLU{}); }

}  // namespace gradscope
