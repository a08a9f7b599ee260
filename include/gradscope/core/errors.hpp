// The exceptions gradscope throws. Every message names what was wrong (the op, the shapes,
// the file or the field), so a failure can be understood without a debugger.
#pragma once

#include "matrix.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace gradscope {

// Base of every gradscope exception: catch this to catch them all.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Operand shapes that do not fit the op, e.g. "matmul: cannot multiply [3x4] by [5x2]".
class shape_error : public error {
public:
    using error::error;
};

// Misuse of the autodiff graph: backward twice through freed buffers, backward on a
// non-scalar without a seed, a gradient asked of a tensor that has none.
class graph_error : public error {
public:
    using error::error;
};

// A NaN or infinity where the caller asked gradscope to trap it.
class numeric_error : public error {
public:
    using error::error;
};

// An argument outside its domain (a negative probability, an empty list, ...).
class value_error : public error {
public:
    using error::error;
};

namespace detail {

[[noreturn]] inline void throw_shape(const char* op, const std::string& what) {
    throw shape_error(std::string(op) + ": " + what);
}

[[noreturn]] inline void throw_shapes(const char* op, const std::string& what, Shape a, Shape b) {
    throw shape_error(std::string(op) + ": " + what + " (got " + to_string(a) + " and " +
                      to_string(b) + ")");
}

// Argument checks shared by every header, so that each public entry point validates its options
// once, where they are given, and every message reads "who: what must be ..., got value".
// (See docs/VALIDATION.md for what is checked where.)

// Shortest text that reads back as the same double ("1", "0.2", "nan", "-inf").
inline std::string number_text(double value) {
    std::array<char, 32> buffer{};
    const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
    return std::string(buffer.data(), result.ptr);
}

[[noreturn]] inline void throw_value(const char* who, const std::string& what) {
    throw value_error(std::string(who) + ": " + what);
}

inline void check_finite(const char* who, const char* what, double value) {
    if (!std::isfinite(value)) {
        throw_value(who, std::string(what) + " must be finite, got " + number_text(value));
    }
}

// A gain, a standard deviation, a moment: finite and >= 0 (NaN fails the comparison too).
inline void check_non_negative(const char* who, const char* what, double value) {
    if (!(value >= 0.0) || !std::isfinite(value)) {
        throw_value(
            who, std::string(what) + " must be finite and non-negative, got " + number_text(value));
    }
}

// An epsilon that keeps a square root away from zero, a variance, a scale divided by.
inline void check_positive(const char* who, const char* what, double value) {
    if (!(value > 0.0) || !std::isfinite(value)) {
        throw_value(who,
                    std::string(what) + " must be finite and positive, got " + number_text(value));
    }
}

// A matrix size asked for by a caller: no negative extent (Eigen asserts), and a product that
// fits an Index (rows * cols would overflow, which is undefined behaviour).
inline void check_dimensions(const char* who, Index rows, Index cols) {
    if (rows < 0 || cols < 0) {
        throw shape_error(std::string(who) + ": a matrix cannot have a negative dimension, got " +
                          std::to_string(rows) + " x " + std::to_string(cols));
    }
    if (cols != 0 && rows > std::numeric_limits<Index>::max() / cols) {
        throw shape_error(std::string(who) + ": " + std::to_string(rows) + " x " +
                          std::to_string(cols) + " elements overflow the index type");
    }
}

}  // namespace detail
}  // namespace gradscope
