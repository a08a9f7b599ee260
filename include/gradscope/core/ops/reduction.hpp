// Sums, means and maxima over the whole tensor (a [1x1] result), over each row (an [rx1]
// column: row_sum) or over each column (a [1xn] row: col_sum).
#pragma once

#include "support.hpp"

#include <limits>

namespace gradscope {

namespace detail {

enum class Axis { all, rows, cols };

constexpr Shape reduced_shape(Shape in, Axis axis) {
    switch (axis) {
        case Axis::all:
            return {1, 1};
        case Axis::rows:
            return {in.rows, 1};
        case Axis::cols:
            return {1, in.cols};
    }
    return {1, 1};
}

// The attribute of sum and mean: how many elements each output element averages over
// (1 for a sum).
struct ReduceAttr {
    Axis axis;
    double divisor;
};

template <class T>
void reduce_backward(Node<T>& node) {
    const ReduceAttr a = node.template attr<ReduceAttr>();
    Node<T>& x = *node.inputs[0];
    const T scale = static_cast<T>(1.0 / a.divisor);
    const ConstMatrixView<T> g = grad_of(node);
    const Shape s = x.shape();
    switch (a.axis) {
        case Axis::all:
            accumulate(x, Matrix<T>::Constant(s.rows, s.cols, scale * g(0, 0)));
            break;
        case Axis::rows:
            accumulate(x, across_cols(g, s.cols) * scale);
            break;
        case Axis::cols:
            accumulate(x, down_rows(g, s.rows) * scale);
            break;
    }
}

template <class T>
Tensor<T> reduce(const Tensor<T>& x, Axis axis, bool mean, const char* op) {
    Node<T>& xn = x.node();
    const Shape in = xn.shape();
    if (mean && in.size() == 0) {
        throw shape_error(std::string(op) + ": the mean of an empty tensor " + to_string(in) +
                          " is undefined");
    }
    NodePtr<T> node =
        record<T>(op, reduced_shape(in, axis), {&xn}, &reduce_backward<T>, reads_nothing);
    const double count = !mean                ? 1.0
                         : axis == Axis::all  ? static_cast<double>(in.size())
                         : axis == Axis::rows ? static_cast<double>(in.cols)
                                              : static_cast<double>(in.rows);
    node->set_attr(ReduceAttr{axis, count});
    const ConstMatrixView<T> v = value_of(xn);
    MatrixView<T> y = node->value.view();
    const T scale = static_cast<T>(1.0 / count);
    switch (axis) {
        case Axis::all:
            y(0, 0) = v.sum() * scale;
            break;
        case Axis::rows:
            y = v.rowwise().sum() * scale;
            break;
        case Axis::cols:
            y = v.colwise().sum() * scale;
            break;
    }
    return finish(std::move(node));
}

// The gradient of a maximum goes to the first element that attains it (PyTorch sends it to
// one element too). The winning flat indices are kept in the node's saved buffer.
template <class T>
void max_backward(Node<T>& node) {
    Node<T>& x = *node.inputs[0];
    if (!x.requires_grad) return;
    const ConstMatrixView<T> g = grad_of(node);
    const ConstMatrixView<T> winners = std::as_const(node.saved).view();
    GradSlot<T> slot = grad_slot(x);
    if (slot.first) slot.view.setZero();
    for (Index i = 0; i < g.size(); ++i) {
        const Index flat = static_cast<Index>(winners.data()[i]);
        slot.view.data()[flat] += g.data()[i];
    }
}

template <class T>
Tensor<T> max(const Tensor<T>& x, Axis axis, const char* op) {
    Node<T>& xn = x.node();
    const Shape in = xn.shape();
    if (in.size() == 0) {
        throw shape_error(std::string(op) + ": the maximum of an empty tensor " + to_string(in) +
                          " is undefined");
    }
    if (static_cast<double>(in.size()) > 1.0 / std::numeric_limits<T>::epsilon()) {
        throw shape_error(std::string(op) + ": the tensor " + to_string(in) +
                          " is too large to index exactly in this precision");
    }
    NodePtr<T> node = record<T>(op, reduced_shape(in, axis), {&xn}, &max_backward<T>);
    const ConstMatrixView<T> v = value_of(xn);
    MatrixView<T> y = node->value.view();
    node->saved.resize(node->shape());
    MatrixView<T> winners = node->saved.view();
    Index r = 0, c = 0;
    switch (axis) {
        case Axis::all:
            y(0, 0) = v.maxCoeff(&r, &c);
            winners(0, 0) = static_cast<T>(r * in.cols + c);
            break;
        case Axis::rows:
            for (Index i = 0; i < in.rows; ++i) {
                y(i, 0) = v.row(i).maxCoeff(&c);
                winners(i, 0) = static_cast<T>(i * in.cols + c);
            }
            break;
        case Axis::cols:
            for (Index j = 0; j < in.cols; ++j) {
                y(0, j) = v.col(j).maxCoeff(&r);
                winners(0, j) = static_cast<T>(r * in.cols + j);
            }
            break;
    }
    return finish(std::move(node));
}

}  // namespace detail

template <class T>
Tensor<T> sum(const Tensor<T>& x) {
    return detail::reduce(x, detail::Axis::all, false, "sum");
}
template <class T>
Tensor<T> row_sum(const Tensor<T>& x) {
    return detail::reduce(x, detail::Axis::rows, false, "row_sum");
}
template <class T>
Tensor<T> col_sum(const Tensor<T>& x) {
    return detail::reduce(x, detail::Axis::cols, false, "col_sum");
}
template <class T>
Tensor<T> mean(const Tensor<T>& x) {
    return detail::reduce(x, detail::Axis::all, true, "mean");
}
template <class T>
Tensor<T> row_mean(const Tensor<T>& x) {
    return detail::reduce(x, detail::Axis::rows, true, "row_mean");
}
template <class T>
Tensor<T> col_mean(const Tensor<T>& x) {
    return detail::reduce(x, detail::Axis::cols, true, "col_mean");
}
template <class T>
Tensor<T> max(const Tensor<T>& x) {
    return detail::max(x, detail::Axis::all, "max");
}
template <class T>
Tensor<T> row_max(const Tensor<T>& x) {
    return detail::max(x, detail::Axis::rows, "row_max");
}
template <class T>
Tensor<T> col_max(const Tensor<T>& x) {
    return detail::max(x, detail::Axis::cols, "col_max");
}

}  // namespace gradscope
