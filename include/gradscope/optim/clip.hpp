// Gradient clipping: by global norm (torch.nn.utils.clip_grad_norm_), by value
// (clip_grad_value_), and adaptive unit-wise clipping (AGC, Brock et al. 2021, "High-Performance
// Large-Scale Image Recognition Without Normalization").
//
// Each takes the parameters as a std::vector, a std::span, a std::array or a braced list
// ({w, b}) and works on their gradients in place; parameters without a gradient (has_grad()
// false) are skipped. Every argument is checked before any gradient changes: a bound that is
// NaN or negative, an empty Tensor handle or a parameter given twice (whose gradient would be
// counted, or scaled, twice) is a value_error naming it.
#pragma once

#include "../core/errors.hpp"
#include "../core/matrix.hpp"
#include "../core/tensor.hpp"
#include "checks.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <limits>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace gradscope {

namespace detail {

// A contiguous list of tensors other than a span of const tensors (a std::vector, a
// std::span<Tensor<T>>, a std::array): the clipping functions take it as that span.
template <class Params>
concept TensorList =
    std::ranges::contiguous_range<Params> && std::ranges::sized_range<Params> && requires {
    typename std::ranges::range_value_t<Params>::Scalar;
} && std::is_same_v<std::ranges::range_value_t<Params>,
                    Tensor<typename std::ranges::range_value_t<Params>::Scalar>> &&
    !std::is_same_v<Params, std::span<const std::ranges::range_value_t<Params>>>;

template <TensorList Params>
auto as_span(const Params& params) {
    using T = typename std::ranges::range_value_t<Params>::Scalar;
    return std::span<const Tensor<T>>(std::ranges::data(params), std::ranges::size(params));
}

template <class T>
std::span<const Tensor<T>> as_span(std::initializer_list<Tensor<T>> params) {
    return {params.begin(), params.size()};
}

// Each parameter once and every handle set, so that no gradient is counted or scaled twice.
// Pairwise, without allocating: a training step calls this, and lists are short.
template <class T>
void check_clip_params(const char* function, std::span<const Tensor<T>> params) {
    const auto which = [function](std::size_t i) {
        return std::string(function) + ": parameter " + std::to_string(i);
    };
    for (std::size_t i = 0; i < params.size(); ++i) {
        if (!params[i].defined()) throw value_error(which(i) + " is an empty Tensor handle");
        for (std::size_t j = 0; j < i; ++j) {
            if (&params[j].node() == &params[i].node()) {
                throw value_error(which(i) + " is the same tensor as parameter " +
                                  std::to_string(j) + "; pass each parameter once");
            }
        }
    }
}

// Sums of squares are taken in double: a float gradient of 1e20 squares to 1e40, past float's
// range, but nowhere near double's.
template <class Derived>
double sum_of_squares(const Eigen::MatrixBase<Derived>& x) {
    return x.template cast<double>().squaredNorm();
}

// NaN if any entry is NaN (a plain max could skip it and report a finite norm).
template <class Derived>
double max_abs(const Eigen::MatrixBase<Derived>& x) {
    if (x.size() == 0) return 0.0;
    return x.template cast<double>().cwiseAbs().template maxCoeff<Eigen::PropagateNaN>();
}

// True when a sum of squares lost nothing to overflow or underflow, so its square root is the
// norm to within rounding.
inline bool sum_of_squares_in_range(double sum) {
    return sum >= std::numeric_limits<double>::min() && sum <= std::numeric_limits<double>::max();
}

// The 2-norm of one block (a weight row, a gradient row). Double-precision gradients can
// overflow even a double sum of squares (entries past 1e154); those take a second, scaled pass.
template <class Derived>
double two_norm(const Eigen::MatrixBase<Derived>& x) {
    const double sum = sum_of_squares(x);
    if (sum_of_squares_in_range(sum)) return std::sqrt(sum);
    const double scale = max_abs(x);
    if (!(scale > 0.0 && std::isfinite(scale))) return scale;  // all zero, or inf, or NaN
    return scale * std::sqrt((x.template cast<double>() / scale).squaredNorm());
}

inline void check_norm_type(const char* function, double norm_type) {
    if (!(norm_type > 0.0)) refuse(function, "norm_type", "> 0 or infinity", norm_type);
}

// The norm of all the gradients taken together as one vector.
template <class T>
double total_grad_norm(std::span<const Tensor<T>> params, double norm_type) {
    const bool infinity = std::isinf(norm_type);
    double max_entry = 0.0;  // NaN-propagating maximum of |g|
    auto track_max = [&](double m) {
        if (std::isnan(m) || std::isnan(max_entry)) {
            max_entry = std::numeric_limits<double>::quiet_NaN();
        } else if (m > max_entry) {
            max_entry = m;
        }
    };
    if (infinity || norm_type != 2.0) {
        for (const Tensor<T>& p : params) {
            if (p.has_grad()) track_max(max_abs(p.grad()));
        }
        if (infinity || !(max_entry > 0.0 && std::isfinite(max_entry))) return max_entry;
        // A general p-norm is taken relative to the largest entry so that |g|^p neither
        // overflows nor underflows: ||g||_p = m * (sum (|g|/m)^p)^(1/p).
        double sum = 0.0;
        for (const Tensor<T>& p : params) {
            if (!p.has_grad()) continue;
            sum +=
                (p.grad().template cast<double>().array().abs() / max_entry).pow(norm_type).sum();
        }
        return max_entry * std::pow(sum, 1.0 / norm_type);
    }

    // The 2-norm: one pass in the common case, a scaled second pass when the sum of squares
    // over- or underflowed even in double.
    double sum = 0.0;
    for (const Tensor<T>& p : params) {
        if (p.has_grad()) sum += sum_of_squares(p.grad());
    }
    if (sum_of_squares_in_range(sum)) return std::sqrt(sum);
    for (const Tensor<T>& p : params) {
        if (p.has_grad()) track_max(max_abs(p.grad()));
    }
    if (!(max_entry > 0.0 && std::isfinite(max_entry))) return max_entry;
    double scaled = 0.0;
    for (const Tensor<T>& p : params) {
        if (p.has_grad()) scaled += (p.grad().template cast<double>() / max_entry).squaredNorm();
    }
    return max_entry * std::sqrt(scaled);
}

template <class T>
std::optional<std::size_t> first_nonfinite_grad(std::span<const Tensor<T>> params) {
    for (std::size_t i = 0; i < params.size(); ++i) {
        if (params[i].has_grad() && !params[i].grad().allFinite()) return i;
    }
    return std::nullopt;
}

}  // namespace detail

// Scales all gradients together so that their total norm is at most max_norm, and returns the
// total norm from before. As in PyTorch the scale is max_norm / (total + 1e-6), applied when it
// is below 1, so the direction of the whole gradient is kept. norm_type is 2 (the default),
// infinity (std::numeric_limits<double>::infinity(), the largest |entry|) or any p > 0.
//
// A non-finite total (a NaN or an infinity somewhere) throws numeric_error, with the gradients
// untouched, when error_if_nonfinite is set. Otherwise an infinite total scales by 0 (PyTorch
// does the same) and a NaN total leaves the gradients as they are.
template <class T>
T clip_grad_norm(std::span<const Tensor<T>> params, double max_norm, double norm_type = 2.0,
                 bool error_if_nonfinite = false) {
    detail::check_bound("clip_grad_norm", "max_norm", max_norm);
    detail::check_norm_type("clip_grad_norm", norm_type);
    detail::check_clip_params("clip_grad_norm", params);
    const double total = detail::total_grad_norm(params, norm_type);
    if (error_if_nonfinite && !std::isfinite(total)) {
        const auto culprit = detail::first_nonfinite_grad(params);
        throw numeric_error(
            "clip_grad_norm: the total " +
            (std::isinf(norm_type) ? std::string("inf") : detail::number_text(norm_type)) +
            "-norm of the gradients is " + detail::number_text(total) +
            (culprit
                 ? " (parameter " + std::to_string(*culprit) + " has a NaN or infinite gradient)"
                 : std::string()) +
            ", so it cannot be clipped; the gradients are unchanged (pass error_if_nonfinite = "
            "false to clip anyway)");
    }
    const double coefficient = max_norm / (total + 1e-6);
    if (coefficient < 1.0) {
        const T scale = static_cast<T>(coefficient);
        for (Tensor<T> p : params) {  // a copy of the handle, to write through it
            if (p.has_grad()) p.mutable_grad() *= scale;
        }
    }
    return static_cast<T>(total);
}

// Clamps every gradient entry to [-clip_value, clip_value]. NaN entries stay NaN.
template <class T>
void clip_grad_value(std::span<const Tensor<T>> params, double clip_value) {
    detail::check_bound("clip_grad_value", "clip_value", clip_value);
    detail::check_clip_params("clip_grad_value", params);
    const T high = static_cast<T>(clip_value);
    for (Tensor<T> p : params) {
        if (!p.has_grad()) continue;
        MatrixView<T> g = p.mutable_grad();
        g = g.unaryExpr([high](T x) { return x > high ? high : (x < -high ? -high : x); });
    }
}

// Adaptive gradient clipping, unit-wise: a unit is a row of an [out x in] weight (the weights
// into one output) and a single entry of a [1 x n] parameter such as a bias. For each unit i,
// when ||G_i|| / max(||W_i||, eps) > lambda, G_i is scaled to norm lambda * max(||W_i||, eps).
// The bound is relative to the weights, so a unit's step cannot be large next to the unit
// itself, whatever the overall gradient scale; eps keeps zero-initialised units trainable.
template <class T>
void adaptive_clip_grad(std::span<const Tensor<T>> params, double lambda, double eps = 1e-3) {
    detail::check_positive("adaptive_clip_grad", "lambda", lambda);
    detail::check_non_negative("adaptive_clip_grad", "eps", eps);
    detail::check_clip_params("adaptive_clip_grad", params);
    // Returns the factor for a unit's gradient, or 1 when the unit is within bounds.
    auto factor = [lambda, eps](double weight_norm, double grad_norm) {
        const double max_norm = lambda * std::max(weight_norm, eps);
        return grad_norm > max_norm ? max_norm / grad_norm : 1.0;
    };
    for (Tensor<T> p : params) {
        if (!p.has_grad()) continue;
        const ConstMatrixView<T> w = p.value();
        MatrixView<T> g = p.mutable_grad();
        if (w.rows() == 1) {
            for (Index j = 0; j < w.cols(); ++j) {
                const double f = factor(std::abs(static_cast<double>(w(0, j))),
                                        std::abs(static_cast<double>(g(0, j))));
                if (f < 1.0) g(0, j) = static_cast<T>(static_cast<double>(g(0, j)) * f);
            }
        } else {
            for (Index i = 0; i < w.rows(); ++i) {
                const double f = factor(detail::two_norm(w.row(i)), detail::two_norm(g.row(i)));
                if (f < 1.0) g.row(i) *= static_cast<T>(f);
            }
        }
    }
}

// The same functions for a std::vector, a std::span<Tensor<T>> or a std::array of tensors, and
// for a braced list ({w, b}).
template <detail::TensorList Params>
auto clip_grad_norm(const Params& params, double max_norm, double norm_type = 2.0,
                    bool error_if_nonfinite = false) {
    return clip_grad_norm(detail::as_span(params), max_norm, norm_type, error_if_nonfinite);
}
template <class T>
T clip_grad_norm(std::initializer_list<Tensor<T>> params, double max_norm, double norm_type = 2.0,
                 bool error_if_nonfinite = false) {
    return clip_grad_norm(detail::as_span(params), max_norm, norm_type, error_if_nonfinite);
}

template <detail::TensorList Params>
void clip_grad_value(const Params& params, double clip_value) {
    clip_grad_value(detail::as_span(params), clip_value);
}
template <class T>
void clip_grad_value(std::initializer_list<Tensor<T>> params, double clip_value) {
    clip_grad_value(detail::as_span(params), clip_value);
}

template <detail::TensorList Params>
void adaptive_clip_grad(const Params& params, double lambda, double eps = 1e-3) {
    adaptive_clip_grad(detail::as_span(params), lambda, eps);
}
template <class T>
void adaptive_clip_grad(std::initializer_list<Tensor<T>> params, double lambda, double eps = 1e-3) {
    adaptive_clip_grad(detail::as_span(params), lambda, eps);
}

}  // namespace gradscope
