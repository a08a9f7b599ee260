// Second-order rules of softmax and log-softmax (see second_order/support.hpp).
#pragma once

#include "../ops/softmax.hpp"
#include "support.hpp"

namespace gradscope::detail {

// The row sums of an [B x n] array expression, as a [B x 1] pooled column.
template <class T, class A>
void row_sums_into(PooledMatrix<T>& out, const A& a) {
    out.resize(Shape{a.rows(), 1});
    out.view() = a.rowwise().sum().matrix();
}

// y = softmax(x):  y' = y (x' - rowsum(y x')).
template <class T>
void softmax_tangent_forward(Node<T>& node) {
    const auto y = value_of(node).array();
    const auto xt = tangent_of(*node.inputs[0]).array();
    PooledMatrix<T> dots;
    row_sums_into(dots, y * xt);
    new_tangent(node) = (y * (xt - across_cols(dots.view().array(), y.cols()))).matrix();
}

// dx = y (g - s), s = rowsum(g y):  dx' = y' (g - s) + y (g' - s'), s' = rowsum(g' y + g y').
template <class T>
void softmax_tangent_backward(Node<T>& node) {
    const auto y = value_of(node).array();
    const auto g = grad_of(node).array();
    const auto gt = grad_tangent_of(node).array();
    const Index n = y.cols();
    PooledMatrix<T> s, st;
    if (has_tangent(node)) {
        const auto yt = tangent_of(node).array();
        row_sums_into(s, g * y);
        row_sums_into(st, gt * y + g * yt);
        accumulate_tangent(*node.inputs[0], (yt * (g - across_cols(s.view().array(), n)) +
                                             y * (gt - across_cols(st.view().array(), n)))
                                                .matrix());
    } else {
        row_sums_into(st, gt * y);
        accumulate_tangent(*node.inputs[0],
                           (y * (gt - across_cols(st.view().array(), n))).matrix());
    }
}

// y = log_softmax(x), p = exp(y):  y' = x' - rowsum(p x').
template <class T>
void log_softmax_tangent_forward(Node<T>& node) {
    const auto p = value_of(node).array().exp();
    const auto xt = tangent_of(*node.inputs[0]).array();
    PooledMatrix<T> dots;
    row_sums_into(dots, p * xt);
    new_tangent(node) = (xt - across_cols(dots.view().array(), xt.cols())).matrix();
}

// dx = g - p S, S = rowsum(g):  dx' = g' - p y' S - p S', S' = rowsum(g').
template <class T>
void log_softmax_tangent_backward(Node<T>& node) {
    const auto p = value_of(node).array().exp();
    const auto gt = grad_tangent_of(node).array();
    const Index n = gt.cols();
    PooledMatrix<T> s, st;
    row_sums_into(st, gt);
    if (has_tangent(node)) {
        row_sums_into(s, grad_of(node).array());
        accumulate_tangent(*node.inputs[0],
                           (gt - p * tangent_of(node).array() * across_cols(s.view().array(), n) -
                            p * across_cols(st.view().array(), n))
                               .matrix());
    } else {
        accumulate_tangent(*node.inputs[0], (gt - p * across_cols(st.view().array(), n)).matrix());
    }
}

}  // namespace gradscope::detail
