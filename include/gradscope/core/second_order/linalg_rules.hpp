// Second-order rules of the matrix products (see second_order/support.hpp). A product is
// bilinear, so its tangent is the product rule and the tangent of each backward product
// gains the term where the other factor moves: H.v of a linear layer costs its three GEMMs
// of the gradient plus four more (two forward, two backward where both factors move).
#pragma once

#include "../ops/linalg.hpp"
#include "support.hpp"

namespace gradscope::detail {

// C = A B:  C' = A' B + A B'.
template <class T>
void matmul_tangent_forward(Node<T>& node) {
    const Node<T>& a = *node.inputs[0];
    const Node<T>& b = *node.inputs[1];
    MatrixView<T> out = new_tangent(node);
    const SerialIfSmall serial(a.shape().rows, a.shape().cols, b.shape().cols);
    if (has_tangent(a)) {
        out.noalias() = tangent_of(a) * value_of(b);
    } else {
        out.setZero();
    }
    if (has_tangent(b)) out.noalias() += value_of(a) * tangent_of(b);
}

// dA = g B^T, dB = A^T g:  dA' = g' B^T + g B'^T,  dB' = A^T g' + A'^T g.
template <class T>
void matmul_tangent_backward(Node<T>& node) {
    Node<T>& a = *node.inputs[0];
    Node<T>& b = *node.inputs[1];
    const ConstMatrixView<T> g = grad_of(node);
    const ConstMatrixView<T> gt = grad_tangent_of(node);
    const SerialIfSmall serial(a.shape().rows, a.shape().cols, b.shape().cols);
    if (a.requires_grad) {
        accumulate_tangent(a, gt * value_of(b).transpose());
        if (has_tangent(b)) accumulate_tangent(a, g * tangent_of(b).transpose());
    }
    if (b.requires_grad) {
        accumulate_tangent(b, value_of(a).transpose() * gt);
        if (has_tangent(a)) accumulate_tangent(b, tangent_of(a).transpose() * g);
    }
}

template <class T>
void transpose_tangent_forward(Node<T>& node) {
    new_tangent(node) = tangent_of(*node.inputs[0]).transpose();
}

template <class T>
void transpose_tangent_backward(Node<T>& node) {
    accumulate_tangent(*node.inputs[0], grad_tangent_of(node).transpose());
}

// y = x W^T + b:  y' = x' W^T + x W'^T + b'.
template <class T>
void linear_tangent_forward(Node<T>& node) {
    const Node<T>& x = *node.inputs[0];
    const Node<T>& w = *node.inputs[1];
    MatrixView<T> out = new_tangent(node);
    const SerialIfSmall serial(x.shape().rows, x.shape().cols, w.shape().rows);
    if (node.inputs.size() > 2 && has_tangent(*node.inputs[2])) {
        out = down_rows(tangent_of(*node.inputs[2]), out.rows());
    } else {
        out.setZero();
    }
    if (has_tangent(x)) out.noalias() += tangent_of(x) * value_of(w).transpose();
    if (has_tangent(w)) out.noalias() += value_of(x) * tangent_of(w).transpose();
}

// dx = g W, dW = g^T x, db = colsum(g):
// dx' = g' W + g W',  dW' = g'^T x + g^T x',  db' = colsum(g').
template <class T>
void linear_tangent_backward(Node<T>& node) {
    Node<T>& x = *node.inputs[0];
    Node<T>& w = *node.inputs[1];
    const ConstMatrixView<T> g = grad_of(node);
    const ConstMatrixView<T> gt = grad_tangent_of(node);
    const SerialIfSmall serial(x.shape().rows, x.shape().cols, w.shape().rows);
    if (x.requires_grad) {
        accumulate_tangent(x, gt * value_of(w));
        if (has_tangent(w)) accumulate_tangent(x, g * tangent_of(w));
    }
    if (w.requires_grad) {
        accumulate_tangent(w, gt.transpose() * value_of(x));
        if (has_tangent(x)) accumulate_tangent(w, g.transpose() * tangent_of(x));
    }
    if (node.inputs.size() > 2) accumulate_tangent(*node.inputs[2], gt.colwise().sum());
}

}  // namespace gradscope::detail
