// Matrix products. `linear` is the fused layer op: one GEMM forward, two backward, and the
// bias folded in, because that is where an MLP spends its time.
#pragma once

#include "support.hpp"

namespace gradscope {

namespace detail {

template <class T>
void matmul_backward(Node<T>& node) {
    Node<T>& a = *node.inputs[0];
    Node<T>& b = *node.inputs[1];
    const ConstMatrixView<T> g = grad_of(node);
    if (a.requires_grad) accumulate(a, g * value_of(b).transpose());
    if (b.requires_grad) accumulate(b, value_of(a).transpose() * g);
}

template <class T>
void transpose_backward(Node<T>& node) {
    accumulate(*node.inputs[0], grad_of(node).transpose());
}

// Inputs: x [B x in], W [out x in], and optionally b [1 x out].
template <class T>
void linear_backward(Node<T>& node) {
    Node<T>& x = *node.inputs[0];
    Node<T>& w = *node.inputs[1];
    const ConstMatrixView<T> g = grad_of(node);
    if (x.requires_grad) accumulate(x, g * value_of(w));
    if (w.requires_grad) accumulate(w, g.transpose() * value_of(x));
    if (node.inputs.size() > 2 && node.inputs[2]->requires_grad) {
        accumulate(*node.inputs[2], g.colwise().sum());
    }
}

template <class T>
void check_linear_shapes(Shape x, Shape w, const Shape* b) {
    if (x.cols != w.cols) {
        throw shape_error("linear: the input has " + std::to_string(x.cols) +
                          " features but the weight " + to_string(w) + " expects " +
                          std::to_string(w.cols) + " (input " + to_string(x) +
                          "; weight is [out x in])");
    }
    if (b != nullptr && (b->rows != 1 || b->cols != w.rows)) {
        throw shape_error("linear: the bias must be [1x" + std::to_string(w.rows) + "] for weight " +
                          to_string(w) + ", got " + to_string(*b));
    }
}

}  // namespace detail

template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b) {
    Node<T>& an = a.node();
    Node<T>& bn = b.node();
    if (an.shape().cols != bn.shape().rows) {
        detail::throw_shapes("matmul", "inner dimensions differ", an.shape(), bn.shape());
    }
    NodePtr<T> node = detail::record<T>("matmul", Shape{an.shape().rows, bn.shape().cols},
                                        {&an, &bn}, &detail::matmul_backward<T>);
    node->value.view().noalias() = detail::value_of(an) * detail::value_of(bn);
    return detail::finish(std::move(node));
}

template <class T>
Tensor<T> transpose(const Tensor<T>& x) {
    Node<T>& xn = x.node();
    NodePtr<T> node = detail::record<T>("transpose", Shape{xn.shape().cols, xn.shape().rows},
                                        {&xn}, &detail::transpose_backward<T>);
    node->value.view() = detail::value_of(xn).transpose();
    return detail::finish(std::move(node));
}

// y = x W^T + b, with W stored [out x in] as in PyTorch.
template <class T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias) {
    Node<T>& xn = x.node();
    Node<T>& wn = weight.node();
    Node<T>& bn = bias.node();
    const Shape bias_shape = bn.shape();
    detail::check_linear_shapes<T>(xn.shape(), wn.shape(), &bias_shape);
    NodePtr<T> node = detail::record<T>("linear", Shape{xn.shape().rows, wn.shape().rows},
                                        {&xn, &wn, &bn}, &detail::linear_backward<T>);
    MatrixView<T> y = node->value.view();
    y.noalias() = detail::value_of(xn) * detail::value_of(wn).transpose();
    y.rowwise() += detail::value_of(bn).row(0);
    return detail::finish(std::move(node));
}

// y = x W^T, without a bias.
template <class T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight) {
    Node<T>& xn = x.node();
    Node<T>& wn = weight.node();
    detail::check_linear_shapes<T>(xn.shape(), wn.shape(), nullptr);
    NodePtr<T> node = detail::record<T>("linear", Shape{xn.shape().rows, wn.shape().rows},
                                        {&xn, &wn}, &detail::linear_backward<T>);
    node->value.view().noalias() = detail::value_of(xn) * detail::value_of(wn).transpose();
    return detail::finish(std::move(node));
}

}  // namespace gradscope
