// Argument checks of the optimisers and the clipping functions that core/errors.hpp's shared
// ones (check_non_negative, check_positive) do not cover. Messages have the same shape:
// "Adam: beta1 (betas.beta1) must be in [0, 1), got 1". Each check is written as !(good), so
// that NaN, which fails every comparison, is refused without a separate test.
#pragma once

#include "../core/errors.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

namespace gradscope::detail {

[[noreturn]] inline void refuse(const char* who, const char* option, const std::string& rule,
                                double value) {
    throw_value(who, std::string(option) + " must be " + rule + ", got " + number_text(value));
}

// A decay factor or momentum: 1 would never forget, above 1 would diverge.
inline void check_unit_interval_open(const char* who, const char* option, double value) {
    if (!(value >= 0.0 && value < 1.0)) refuse(who, option, "in [0, 1)", value);
}

inline void check_unit_interval_closed(const char* who, const char* option, double value) {
    if (!(value >= 0.0 && value <= 1.0)) refuse(who, option, "in [0, 1]", value);
}

// A bound that infinity switches off (clip_grad_norm's max_norm, clip_grad_value's clip_value).
inline void check_bound(const char* who, const char* option, double value) {
    if (!(value >= 0.0)) refuse(who, option, "a number >= 0 (infinity: no bound)", value);
}

// An option of an optimiser over Tensor<float> is applied as a float: a value beyond float's
// range would become infinite (and the cast is undefined behaviour), and a non-zero value that
// rounds to 0 (eps = 1e-50) would turn the step's division into 0/0.
template <class T>
void check_fits(const char* who, const char* option, double value) {
    const char* type = std::is_same_v<T, float> ? "float" : "double";
    if (std::abs(value) > static_cast<double>(std::numeric_limits<T>::max())) {
        refuse(who, option, std::string("within ") + type + "'s range", value);
    }
    if (value != 0.0 && static_cast<T>(value) == T(0)) {
        refuse(who, option, std::string("0 or large enough not to round to 0 in ") + type, value);
    }
}

}  // namespace gradscope::detail
