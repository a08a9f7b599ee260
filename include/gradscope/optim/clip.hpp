// Gradient clipping: by global norm (torch.nn.utils.clip_grad_norm_), by value
// (clip_grad_value_), and adaptive unit-wise clipping (AGC, Brock et al. 2021, "High-Performance
// Large-Scale Image Recognition Without Normalization").
//
// Each takes the parameters as a std::vector, a std::span or a braced list ({w, b}) and works
// on their gradients in place; parameters without a gradient (has_grad() false) are skipped.
#pragma once

#include "../core/errors.hpp"
#include "../core/matrix.hpp"
#include "../core/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <limits>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

namespace gradscope {

namespace detail {

inline std::string clip_number(double value) {
    std::ostringstream out;
    out << value;
    return out.str();
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

inline void require_norm_type(const char* function, double norm_type) {
    if (!(norm_type > 0.0)) {
        throw value_error(std::string(function) + ": norm_type must be > 0 or infinity (got " +
                          clip_number(norm_type) + ")");
    }
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
            sum += (p.grad().template cast<double>().array().abs() / max_entry).pow(norm_type).sum();
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
    if (!(max_norm >= 0.0)) {
        throw value_error("clip_grad_norm: max_norm must be >= 0 (got " +
                          detail::clip_number(max_norm) + ")");
    }
    detail::require_norm_type("clip_grad_norm", norm_type);
    const double total = detail::total_grad_norm(params, norm_type);
    if (error_if_nonfinite && !std::isfinite(total)) {
        const auto culprit = detail::first_nonfinite_grad(params);
        throw numeric_error(
            "clip_grad_norm: the total " +
            (std::isinf(norm_type) ? std::string("inf") : detail::clip_number(norm_type)) +
            "-norm of the gradients is " + detail::clip_number(total) +
            (culprit ? " (parameter " + std::to_string(*culprit) + " has a NaN or infinite gradient)"
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

template <class T>
T clip_grad_norm(std::span<Tensor<T>> params, double max_norm, double norm_type = 2.0,
                 bool error_if_nonfinite = false) {
    return clip_grad_norm(std::span<const Tensor<T>>(params), max_norm, norm_type,
                          error_if_nonfinite);
}

template <class T>
T clip_grad_norm(const std::vector<Tensor<T>>& params, double max_norm, double norm_type = 2.0,
                 bool error_if_nonfinite = false) {
    return clip_grad_norm(std::span<const Tensor<T>>(params), max_norm, norm_type,
                          error_if_nonfinite);
}

template <class T>
T clip_grad_norm(std::initializer_list<Tensor<T>> params, double max_norm,
                 double norm_type = 2.0, bool error_if_nonfinite = false) {
    return clip_grad_norm(std::span<const Tensor<T>>(params.begin(), params.size()), max_norm,
                          norm_type, error_if_nonfinite);
}

// Clamps every gradient entry to [-clip_value, clip_value]. NaN entries stay NaN.
template <class T>
void clip_grad_value(std::span<const Tensor<T>> params, double clip_value) {
    if (!(clip_value >= 0.0)) {
        throw value_error("clip_grad_value: clip_value must be >= 0 (got " +
                          detail::clip_number(clip_value) + ")");
    }
    const T high = static_cast<T>(clip_value);
    for (Tensor<T> p : params) {
        if (!p.has_grad()) continue;
        MatrixView<T> g = p.mutable_grad();
        g = g.unaryExpr([high](T x) { return x > high ? high : (x < -high ? -high : x); });
    }
}

template <class T>
void clip_grad_value(std::span<Tensor<T>> params, double clip_value) {
    clip_grad_value(std::span<const Tensor<T>>(params), clip_value);
}

template <class T>
void clip_grad_value(const std::vector<Tensor<T>>& params, double clip_value) {
    clip_grad_value(std::span<const Tensor<T>>(params), clip_value);
}

template <class T>
void clip_grad_value(std::initializer_list<Tensor<T>> params, double clip_value) {
    clip_grad_value(std::span<const Tensor<T>>(params.begin(), params.size()), clip_value);
}

// Adaptive gradient clipping, unit-wise: a unit is a row of an [out x in] weight (the weights
// into one output) and a single entry of a [1 x n] parameter such as a bias. For each unit i,
// when ||G_i|| / max(||W_i||, eps) > lambda, G_i is scaled to norm lambda * max(||W_i||, eps).
// The bound is relative to the weights, so a unit's step cannot be large next to the unit
// itself, whatever the overall gradient scale; eps keeps zero-initialised units trainable.
template <class T>
void adaptive_clip_grad(std::span<const Tensor<T>> params, double lambda, double eps = 1e-3) {
    if (!(lambda > 0.0 && std::isfinite(lambda))) {
        throw value_error("adaptive_clip_grad: lambda must be a finite number > 0 (got " +
                          detail::clip_number(lambda) + ")");
    }
    if (!(eps >= 0.0 && std::isfinite(eps))) {
        throw value_error("adaptive_clip_grad: eps must be a finite number >= 0 (got " +
                          detail::clip_number(eps) + ")");
    }
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

template <class T>
void adaptive_clip_grad(std::span<Tensor<T>> params, double lambda, double eps = 1e-3) {
    adaptive_clip_grad(std::span<const Tensor<T>>(params), lambda, eps);
}

template <class T>
void adaptive_clip_grad(const std::vector<Tensor<T>>& params, double lambda, double eps = 1e-3) {
    adaptive_clip_grad(std::span<const Tensor<T>>(params), lambda, eps);
}

template <class T>
void adaptive_clip_grad(std::initializer_list<Tensor<T>> params, double lambda,
                        double eps = 1e-3) {
    adaptive_clip_grad(std::span<const Tensor<T>>(params.begin(), params.size()), lambda, eps);
}

}  // namespace gradscope
