// The value of a number that could not be measured: NaN, written as null in JSON, an empty
// field in CSV and '-' in tables (Note [Missing numbers] in format.hpp). Its own header so that
// the formulas (gradient_noise.hpp) and the records (profile.hpp) share it without a cycle.
#pragma once

#include <limits>

namespace gradscope::diag {

inline constexpr double not_measured = std::numeric_limits<double>::quiet_NaN();

}  // namespace gradscope::diag
