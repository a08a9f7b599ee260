// Argument checks shared by the optimisers and the clipping functions. Each throws value_error
// with a message that starts with the function or optimiser ("Adam: eps ...") and names the
// option and the value it got, so that a caller can tell which argument was refused.
//
// Every check is written as !(good) so that NaN, which fails every comparison, is refused by
// each of them without a separate isnan test.
#pragma once

#include "../core/errors.hpp"

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>

namespace gradscope::detail {

// The shortest way to show a number in a message: "0.001", "1e-08", "nan", "inf".
inline std::string format_number(double value) {
    std::ostringstream out;
    out << value;
    return out.str();
}

[[noreturn]] inline void refuse(const char* who, const char* option, const std::string& rule,
                                double value) {
    throw value_error(std::string(who) + ": " + option + " must be " + rule + " (got " +
                      format_number(value) + ")");
}

// Learning rates, weight decay: finite, >= 0.
inline void require_non_negative(const char* who, const char* option, double value) {
    if (!(std::isfinite(value) && value >= 0.0)) refuse(who, option, "a finite number >= 0", value);
}

// eps terms that a step divides by: zero would make 0/0 where the gradient is zero.
inline void require_positive(const char* who, const char* option, double value) {
    if (!(std::isfinite(value) && value > 0.0)) refuse(who, option, "a finite number > 0", value);
}

// A decay factor or momentum: 1 would never forget, above 1 would diverge.
inline void require_unit_interval_open(const char* who, const char* option, double value) {
    if (!(value >= 0.0 && value < 1.0)) refuse(who, option, "in [0, 1)", value);
}

inline void require_unit_interval_closed(const char* who, const char* option, double value) {
    if (!(value >= 0.0 && value <= 1.0)) refuse(who, option, "in [0, 1]", value);
}

// A bound that infinity switches off (clip_grad_norm's max_norm, clip_grad_value's clip_value).
inline void require_bound(const char* who, const char* option, double value) {
    if (!(value >= 0.0)) refuse(who, option, "a number >= 0 (infinity: no bound)", value);
}

// An option of an optimiser over Tensor<float> is applied as a float: a value beyond float's
// range would become infinite (and the cast is undefined behaviour), and a non-zero value that
// rounds to 0 (eps = 1e-50) would turn the step's division into 0/0.
template <class T>
void require_fits(const char* who, const char* option, double value) {
    const char* type = std::is_same_v<T, float> ? "float" : "double";
    if (std::abs(value) > static_cast<double>(std::numeric_limits<T>::max())) {
        refuse(who, option, std::string("within ") + type + "'s range", value);
    }
    if (value != 0.0 && static_cast<T>(value) == T(0)) {
        refuse(who, option, std::string("0 or large enough not to round to 0 in ") + type, value);
    }
}

}  // namespace gradscope::detail
