// Second-order rules of the elementwise arithmetic, the reductions and the ops that only move
// values around (see second_order/support.hpp). Those that are linear in their input carry a
// tangent exactly as they carry a value, and its gradient's tangent exactly as the gradient.
#pragma once

#include "../ops/arithmetic.hpp"
#include "../ops/columns.hpp"
#include "../ops/dropout.hpp"
#include "../ops/reduction.hpp"
#include "support.hpp"

namespace gradscope::detail {

// add, sub: c' = a' +- b';  mul: c' = a' b + a b';  div: c' = a'/b - a b'/b^2.
template <class T, BinaryKind kind>
void binary_tangent_forward(Node<T>& node) {
    const Node<T>& a = *node.inputs[0];
    const Node<T>& b = *node.inputs[1];
    const Shape out = node.shape();
    PooledMatrix<T> scratch_a, scratch_b, scratch_at, scratch_bt;
    auto y = new_tangent(node).array();
    y.setZero();
    if constexpr (kind == BinaryKind::add || kind == BinaryKind::sub) {
        if (has_tangent(a)) y += expand_tangent(a, out, scratch_at).array();
        if (has_tangent(b)) {
            if constexpr (kind == BinaryKind::add) y += expand_tangent(b, out, scratch_bt).array();
            if constexpr (kind == BinaryKind::sub) y -= expand_tangent(b, out, scratch_bt).array();
        }
    } else {
        const auto av = expand(a, out, scratch_a).array();
        const auto bv = expand(b, out, scratch_b).array();
        if constexpr (kind == BinaryKind::mul) {
            if (has_tangent(a)) y += expand_tangent(a, out, scratch_at).array() * bv;
            if (has_tangent(b)) y += av * expand_tangent(b, out, scratch_bt).array();
        } else {
            if (has_tangent(a)) y += expand_tangent(a, out, scratch_at).array() / bv;
            if (has_tangent(b)) y -= av * expand_tangent(b, out, scratch_bt).array() / bv.square();
        }
    }
}

// mul: da = g b, db = g a  ->  da' = g' b + g b',  db' = g' a + g a'.
// div: da = g/b, db = -g a/b^2  ->  da' = g'/b - g b'/b^2,
//      db' = -g' a/b^2 - g a'/b^2 + 2 g a b'/b^3.
template <class T, BinaryKind kind>
void binary_tangent_backward(Node<T>& node) {
    Node<T>& a = *node.inputs[0];
    Node<T>& b = *node.inputs[1];
    const Shape out = node.shape();
    const auto gt = grad_tangent_of(node).array();
    if constexpr (kind == BinaryKind::add || kind == BinaryKind::sub) {
        accumulate_tangent_reduced(a, out, gt.matrix());
        if constexpr (kind == BinaryKind::add) accumulate_tangent_reduced(b, out, gt.matrix());
        if constexpr (kind == BinaryKind::sub) accumulate_tangent_reduced(b, out, (-gt).matrix());
    } else {
        const auto g = grad_of(node).array();
        PooledMatrix<T> scratch_a, scratch_b, scratch_at, scratch_bt;
        const auto av = expand(a, out, scratch_a).array();
        const auto bv = expand(b, out, scratch_b).array();
        PooledMatrix<T> da(out), db(out);
        auto dat = da.view().array();
        auto dbt = db.view().array();
        if constexpr (kind == BinaryKind::mul) {
            dat = gt * bv;
            dbt = gt * av;
            if (has_tangent(b)) dat += g * expand_tangent(b, out, scratch_bt).array();
            if (has_tangent(a)) dbt += g * expand_tangent(a, out, scratch_at).array();
        } else {
            dat = gt / bv;
            dbt = -gt * av / bv.square();
            if (has_tangent(b)) {
                const auto bt = expand_tangent(b, out, scratch_bt).array();
                dat -= g * bt / bv.square();
                dbt += T(2) * g * av * bt / bv.cube();
            }
            if (has_tangent(a)) dbt -= g * expand_tangent(a, out, scratch_at).array() / bv.square();
        }
        accumulate_tangent_reduced(a, out, std::as_const(da).view());
        accumulate_tangent_reduced(b, out, std::as_const(db).view());
    }
}

// y = s x + t: linear.
template <class T>
void affine_tangent_forward(Node<T>& node) {
    const T scale = static_cast<T>(node.template attr<AffineAttr>().scale);
    new_tangent(node) = scale * tangent_of(*node.inputs[0]);
}

template <class T>
void affine_tangent_backward(Node<T>& node) {
    const T scale = static_cast<T>(node.template attr<AffineAttr>().scale);
    accumulate_tangent(*node.inputs[0], scale * grad_tangent_of(node));
}

// y = c/x:  y' = -y x'/x;  dx = -g y/x  ->  dx' = -g' y/x + 2 g y x'/x^2.
template <class T>
void scalar_div_tangent_forward(Node<T>& node) {
    const Node<T>& x = *node.inputs[0];
    new_tangent(node) =
        (-value_of(node).array() * tangent_of(x).array() / value_of(x).array()).matrix();
}

template <class T>
void scalar_div_tangent_backward(Node<T>& node) {
    Node<T>& x = *node.inputs[0];
    const auto xv = value_of(x).array();
    const auto y = value_of(node).array();
    if (has_tangent(x)) {
        accumulate_tangent(x,
                           (-grad_tangent_of(node).array() * y / xv +
                            T(2) * grad_of(node).array() * y * tangent_of(x).array() / xv.square())
                               .matrix());
    } else {
        accumulate_tangent(x, (-grad_tangent_of(node).array() * y / xv).matrix());
    }
}

// Sums and means: linear.
template <class T>
void reduce_tangent_forward(Node<T>& node) {
    const ReduceAttr a = node.template attr<ReduceAttr>();
    const ConstMatrixView<T> v = tangent_of(*node.inputs[0]);
    MatrixView<T> y = new_tangent(node);
    const T scale = static_cast<T>(1.0 / a.divisor);
    switch (a.axis) {
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
}

template <class T>
void reduce_tangent_backward(Node<T>& node) {
    const ReduceAttr a = node.template attr<ReduceAttr>();
    Node<T>& x = *node.inputs[0];
    const T scale = static_cast<T>(1.0 / a.divisor);
    const ConstMatrixView<T> gt = grad_tangent_of(node);
    const Shape s = x.shape();
    switch (a.axis) {
        case Axis::all:
            accumulate_tangent(x, Matrix<T>::Constant(s.rows, s.cols, scale * gt(0, 0)));
            break;
        case Axis::rows:
            accumulate_tangent(x, across_cols(gt, s.cols) * scale);
            break;
        case Axis::cols:
            accumulate_tangent(x, down_rows(gt, s.rows) * scale);
            break;
    }
}

// Maxima: the winners' tangents (the winner does not move under an infinitesimal step,
// ties aside, where the maximum has no second derivative anyway).
template <class T>
void max_tangent_forward(Node<T>& node) {
    const ConstMatrixView<T> v = tangent_of(*node.inputs[0]);
    const ConstMatrixView<T> winners = std::as_const(node.saved).view();
    MatrixView<T> y = new_tangent(node);
    for (Index i = 0; i < y.size(); ++i)
        y.data()[i] = v.data()[static_cast<Index>(winners.data()[i])];
}

template <class T>
void max_tangent_backward(Node<T>& node) {
    Node<T>& x = *node.inputs[0];
    if (!x.requires_grad) return;
    const ConstMatrixView<T> gt = grad_tangent_of(node);
    const ConstMatrixView<T> winners = std::as_const(node.saved).view();
    MatrixView<T> slot = grad_tangent_slot(x);
    for (Index i = 0; i < gt.size(); ++i)
        slot.data()[static_cast<Index>(winners.data()[i])] += gt.data()[i];
}

template <class T>
void concat_cols_tangent_forward(Node<T>& node) {
    MatrixView<T> y = new_tangent(node);
    Index offset = 0;
    for (const Node<T>* input : node.inputs) {
        const Index width = input->shape().cols;
        if (has_tangent(*input)) {
            y.middleCols(offset, width) = tangent_of(*input);
        } else {
            y.middleCols(offset, width).setZero();
        }
        offset += width;
    }
}

template <class T>
void concat_cols_tangent_backward(Node<T>& node) {
    const ConstMatrixView<T> gt = grad_tangent_of(node);
    Index offset = 0;
    for (Node<T>* input : node.inputs) {
        const Index width = input->shape().cols;
        accumulate_tangent(*input, gt.middleCols(offset, width));
        offset += width;
    }
}

template <class T>
void slice_cols_tangent_forward(Node<T>& node) {
    const SliceAttr a = node.template attr<SliceAttr>();
    new_tangent(node) = tangent_of(*node.inputs[0]).middleCols(a.begin, a.count);
}

template <class T>
void slice_cols_tangent_backward(Node<T>& node) {
    Node<T>& x = *node.inputs[0];
    if (!x.requires_grad) return;
    const SliceAttr a = node.template attr<SliceAttr>();
    grad_tangent_slot(x).middleCols(a.begin, a.count) += grad_tangent_of(node);
}

// Dropout with the mask of the forward pass: linear.
template <class T>
void dropout_tangent_forward(Node<T>& node) {
    new_tangent(node) = tangent_of(*node.inputs[0]).cwiseProduct(std::as_const(node.saved).view());
}

template <class T>
void dropout_tangent_backward(Node<T>& node) {
    accumulate_tangent(*node.inputs[0],
                       grad_tangent_of(node).cwiseProduct(std::as_const(node.saved).view()));
}

}  // namespace gradscope::detail
