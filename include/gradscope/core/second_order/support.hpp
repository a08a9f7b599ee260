// What every op's second-order rule uses (see core/second_order.hpp for the pass).
//
// A pass carries one direction v through the graph. The forward rule of an op fills its node's
// `tangent` (the derivative of the value along v) from its inputs' tangents; the backward rule
// adds to each input's `grad_tangent` the derivative, along v, of what the op's backward adds
// to that input's gradient. An input without a tangent (data, a target, a parameter the
// direction leaves at zero) is a constant along v, and the rules skip its terms rather than
// multiply by zeros. Every node the backward reaches has a grad_tangent when its rule runs
// (zeros if nothing flowed into it), so rules read grad_tangent_of(node) unconditionally.
#pragma once

#include "../ops/support.hpp"

namespace gradscope::detail {

template <class T>
bool has_tangent(const Node<T>& node) noexcept {
    return node.has_tangent;
}

template <class T>
ConstMatrixView<T> tangent_of(const Node<T>& node) {
    return node.tangent.view();
}

template <class T>
ConstMatrixView<T> grad_tangent_of(const Node<T>& node) {
    return node.grad_tangent.view();
}

// The node's tangent buffer, sized to its value, for the forward rule to fill.
template <class T>
MatrixView<T> new_tangent(Node<T>& node) {
    node.tangent.resize(node.shape());
    return node.tangent.view();
}

// Adds `expr` to the input's grad_tangent, as accumulate() does for its gradient.
template <class T, class Expr>
void accumulate_tangent(Node<T>& input, const Expr& expr) {
    if (!input.requires_grad) return;
    if (!input.grad_tangent_written) {
        input.grad_tangent.resize(input.shape());
        input.grad_tangent.view().noalias() = expr;
        input.grad_tangent_written = true;
    } else {
        input.grad_tangent.view().noalias() += expr;
    }
}

// The input's grad_tangent with everything in it zeroed first if nothing was written yet, for
// rules that scatter into it (max, slice).
template <class T>
MatrixView<T> grad_tangent_slot(Node<T>& input) {
    if (!input.grad_tangent_written) {
        input.grad_tangent.resize(input.shape());
        input.grad_tangent.view().setZero();
        input.grad_tangent_written = true;
    }
    return input.grad_tangent.view();
}

// As accumulate_reduced, for a broadcast operand's grad_tangent.
template <class T, class Expr>
void accumulate_tangent_reduced(Node<T>& operand, Shape out, const Expr& full) {
    if (!operand.requires_grad) return;
    switch (broadcast_kind(operand.shape(), out)) {
        case Broadcast::none:
            accumulate_tangent(operand, full);
            break;
        case Broadcast::row:
            accumulate_tangent(operand, full.colwise().sum());
            break;
        case Broadcast::col:
            accumulate_tangent(operand, full.rowwise().sum());
            break;
        case Broadcast::scalar:
            accumulate_tangent(operand, Matrix<T>::Constant(1, 1, full.sum()));
            break;
    }
}

// `m` (of `operand`'s shape) stretched to the output's shape, as expand() does for values.
template <class T>
ConstMatrixView<T> expand_to(ConstMatrixView<T> m, Shape operand, Shape out,
                             PooledMatrix<T>& scratch) {
    switch (broadcast_kind(operand, out)) {
        case Broadcast::none:
            return m;
        case Broadcast::row:
            scratch.resize(out);
            scratch.view() = down_rows(m, out.rows);
            break;
        case Broadcast::col:
            scratch.resize(out);
            scratch.view() = across_cols(m, out.cols);
            break;
        case Broadcast::scalar:
            scratch.resize(out);
            scratch.view().setConstant(m(0, 0));
            break;
    }
    return std::as_const(scratch).view();
}

// The operand's tangent at the output's shape (the operand must have one).
template <class T>
ConstMatrixView<T> expand_tangent(const Node<T>& operand, Shape out, PooledMatrix<T>& scratch) {
    return expand_to(tangent_of(operand), operand.shape(), out, scratch);
}

}  // namespace gradscope::detail
