// Matrix types shared by the whole library.
//
// A tensor's value is a dense row-major matrix: rows are the batch, columns are features,
// matching how a minibatch is laid out in memory and how PyTorch stores an MLP's activations.
#pragma once

#include <Eigen/Dense>

#include <cstddef>
#include <string>

namespace gradscope {

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A view of a matrix whose storage lives elsewhere (a tensor's pooled buffer, or a caller's
// matrix). Views promise no alignment: pooled buffers are 64-byte aligned anyway, and on
// current x86 an unaligned load of aligned data costs nothing, while a view that demanded
// alignment would reject a user's own Eigen matrices.
template <class T>
using MatrixView = Eigen::Map<Matrix<T>>;

template <class T>
using ConstMatrixView = Eigen::Map<const Matrix<T>>;

using Index = Eigen::Index;

namespace detail {
template <class T>
struct AlwaysDouble {
    using type = double;
};
}  // namespace detail

// `double`, spelled so that the type depends on T. In a template, an Eigen expression on a
// plain Matrix<double> is type-checked where the header is parsed, instantiating Eigen's
// expression and solver classes in every program that includes the header; on
// Matrix<DependentDouble<T>> it is checked only when a program instantiates the template.
template <class T>
using DependentDouble = typename detail::AlwaysDouble<T>::type;

struct Shape {
    Index rows = 0;
    Index cols = 0;

    [[nodiscard]] Index size() const noexcept { return rows * cols; }
    [[nodiscard]] bool is_scalar() const noexcept { return rows == 1 && cols == 1; }
    friend bool operator==(const Shape&, const Shape&) = default;
};

inline std::string to_string(Shape s) {
    return "[" + std::to_string(s.rows) + "x" + std::to_string(s.cols) + "]";
}

}  // namespace gradscope
