// The exceptions gradscope throws. Every message names what was wrong (the op, the shapes,
// the file or the field), so a failure can be understood without a debugger.
#pragma once

#include "matrix.hpp"

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

}  // namespace detail
}  // namespace gradscope
