// Softmax and log-softmax over each row (each sample's logits). Both subtract the row maximum
// first, so large logits neither overflow nor lose precision.
#pragma once

#include "support.hpp"

namespace gradscope {

namespace detail {

template <class T>
void softmax_backward(Node<T>& node) {
    // dx = y * (g - rowsum(g * y))
    const auto y = value_of(node).array();
    const auto g = grad_of(node).array();
    PooledMatrix<T> dots(Shape{y.rows(), 1});
    dots.view() = (g * y).rowwise().sum().matrix();
    accumulate(*node.inputs[0], (y * (g - across_cols(dots.view().array(), y.cols()))).matrix());
}

template <class T>
void log_softmax_backward(Node<T>& node) {
    // dx = g - softmax(x) * rowsum(g), with softmax(x) = exp(y)
    const auto y = value_of(node).array();
    const auto g = grad_of(node).array();
    PooledMatrix<T> sums(Shape{y.rows(), 1});
    sums.view() = g.rowwise().sum().matrix();
    accumulate(*node.inputs[0],
               (g - y.exp() * across_cols(sums.view().array(), y.cols())).matrix());
}

// Writes x - rowmax - log(sum(exp(x - rowmax))) into y, row by row.
template <class T>
void stable_log_softmax(ConstMatrixView<T> x, MatrixView<T> y) {
    for (Index i = 0; i < x.rows(); ++i) {
        const T m = x.row(i).maxCoeff();
        y.row(i) = x.row(i).array() - m;
        const T lse = std::log(y.row(i).array().exp().sum());
        y.row(i).array() -= lse;
    }
}

template <class T>
void check_has_columns(const char* op, Shape s) {
    if (s.cols == 0 && s.rows > 0) {
        throw shape_error(std::string(op) + ": a row of zero logits " + to_string(s) +
                          " has no distribution");
    }
}

}  // namespace detail

template <class T>
Tensor<T> softmax(const Tensor<T>& x) {
    Node<T>& xn = x.node();
    detail::check_has_columns<T>("softmax", xn.shape());
    NodePtr<T> node = detail::record<T>("softmax", xn.shape(), {&xn}, &detail::softmax_backward<T>);
    MatrixView<T> y = node->value.view();
    detail::stable_log_softmax<T>(detail::value_of(xn), y);
    y = y.array().exp().matrix();
    return detail::finish(std::move(node));
}

template <class T>
Tensor<T> log_softmax(const Tensor<T>& x) {
    Node<T>& xn = x.node();
    detail::check_has_columns<T>("log_softmax", xn.shape());
    NodePtr<T> node =
        detail::record<T>("log_softmax", xn.shape(), {&xn}, &detail::log_softmax_backward<T>);
    detail::stable_log_softmax<T>(detail::value_of(xn), node->value.view());
    return detail::finish(std::move(node));
}

}  // namespace gradscope
