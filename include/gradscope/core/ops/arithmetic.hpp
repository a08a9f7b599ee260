// Elementwise arithmetic between tensors (with broadcasting of a 1xn row, an rx1 column or a
// 1x1 scalar) and between a tensor and a number.
#pragma once

#include "support.hpp"

namespace gradscope {

namespace detail {

enum class BinaryKind { add, sub, mul, div };

constexpr const char* binary_name(BinaryKind kind) {
    switch (kind) {
        case BinaryKind::add:
            return "add";
        case BinaryKind::sub:
            return "sub";
        case BinaryKind::mul:
            return "mul";
        case BinaryKind::div:
            return "div";
    }
    return "?";
}

template <class T, BinaryKind kind>
void binary_backward(Node<T>& node) {
    Node<T>& a = *node.inputs[0];
    Node<T>& b = *node.inputs[1];
    const Shape out = node.shape();
    const auto g = grad_of(node).array();
    if constexpr (kind == BinaryKind::add || kind == BinaryKind::sub) {
        if constexpr (kind == BinaryKind::add) {
            accumulate_reduced(b, out, g.matrix());
        } else {
            accumulate_reduced(b, out, (-g).matrix());
        }
        if (!hand_over_grad(node, a)) accumulate_reduced(a, out, g.matrix());
    } else {
        PooledMatrix<T> scratch_a, scratch_b;
        const auto av = expand(a, out, scratch_a).array();
        const auto bv = expand(b, out, scratch_b).array();
        if constexpr (kind == BinaryKind::mul) {
            accumulate_reduced(a, out, (g * bv).matrix());
            accumulate_reduced(b, out, (g * av).matrix());
        } else {
            accumulate_reduced(a, out, (g / bv).matrix());
            accumulate_reduced(b, out, (-g * av / bv.square()).matrix());
        }
    }
}

template <class T, BinaryKind kind>
Tensor<T> binary(const Tensor<T>& a, const Tensor<T>& b) {
    Node<T>& an = a.node();
    Node<T>& bn = b.node();
    const Shape out = broadcast_shape(binary_name(kind), an.shape(), bn.shape());
    // add and sub pass gradients through; mul and div read both operands.
    constexpr bool pass_through = kind == BinaryKind::add || kind == BinaryKind::sub;
    NodePtr<T> node = record<T>(binary_name(kind), out, {&an, &bn}, &binary_backward<T, kind>,
                                pass_through ? reads_nothing : BackwardReads{0b11u, false});
    PooledMatrix<T> scratch_a, scratch_b;
    const auto av = expand(an, out, scratch_a).array();
    const auto bv = expand(bn, out, scratch_b).array();
    auto y = node->value.view().array();
    if constexpr (kind == BinaryKind::add) y = av + bv;
    if constexpr (kind == BinaryKind::sub) y = av - bv;
    if constexpr (kind == BinaryKind::mul) y = av * bv;
    if constexpr (kind == BinaryKind::div) y = av / bv;
    return finish(std::move(node));
}

// y = scale * x + shift: every tensor-with-number operation but division by a tensor.
struct AffineAttr {
    double scale;
    double shift;
};

template <class T>
void affine_backward(Node<T>& node) {
    const T scale = static_cast<T>(node.template attr<AffineAttr>().scale);
    accumulate(*node.inputs[0], scale * grad_of(node));
}

template <class T>
Tensor<T> affine(const Tensor<T>& x, double scale, double shift, const char* op) {
    Node<T>& xn = x.node();
    NodePtr<T> node = record<T>(op, xn.shape(), {&xn}, &affine_backward<T>, reads_nothing);
    node->set_attr(AffineAttr{scale, shift});
    node->value.view().array() =
        static_cast<T>(scale) * value_of(xn).array() + static_cast<T>(shift);
    return finish(std::move(node));
}

// y = numerator / x.
struct ReciprocalAttr {
    double numerator;
};

template <class T>
void scalar_div_backward(Node<T>& node) {
    // d(c/x)/dx = -c/x^2 = -y/x
    const Node<T>& x = *node.inputs[0];
    accumulate(*node.inputs[0],
               (-grad_of(node).array() * value_of(node).array() / value_of(x).array()).matrix());
}

}  // namespace detail

template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
    return detail::binary<T, detail::BinaryKind::add>(a, b);
}
template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
    return detail::binary<T, detail::BinaryKind::sub>(a, b);
}
template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
    return detail::binary<T, detail::BinaryKind::mul>(a, b);
}
template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b) {
    return detail::binary<T, detail::BinaryKind::div>(a, b);
}

template <class T>
Tensor<T> neg(const Tensor<T>& x) {
    return detail::affine(x, -1.0, 0.0, "neg");
}

// s * x + t in one node.
template <class T>
Tensor<T> affine(const Tensor<T>& x, double scale, double shift) {
    return detail::affine(x, scale, shift, "affine");
}

template <class T>
Tensor<T> scalar_div(double numerator, const Tensor<T>& x) {
    Node<T>& xn = x.node();
    NodePtr<T> node =
        detail::record<T>("scalar_div", xn.shape(), {&xn}, &detail::scalar_div_backward<T>);
    node->value.view().array() = static_cast<T>(numerator) / detail::value_of(xn).array();
    return detail::finish(std::move(node));
}

template <class T>
Tensor<T> operator+(const Tensor<T>& a, const Tensor<T>& b) {
    return add(a, b);
}
template <class T>
Tensor<T> operator-(const Tensor<T>& a, const Tensor<T>& b) {
    return sub(a, b);
}
template <class T>
Tensor<T> operator*(const Tensor<T>& a, const Tensor<T>& b) {
    return mul(a, b);
}
template <class T>
Tensor<T> operator/(const Tensor<T>& a, const Tensor<T>& b) {
    return div(a, b);
}
template <class T>
Tensor<T> operator-(const Tensor<T>& x) {
    return neg(x);
}

// Tensor-with-number operators. The number is taken as double and converted once.
template <class T>
Tensor<T> operator+(const Tensor<T>& x, double s) {
    return detail::affine(x, 1.0, s, "add_scalar");
}
template <class T>
Tensor<T> operator+(double s, const Tensor<T>& x) {
    return detail::affine(x, 1.0, s, "add_scalar");
}
template <class T>
Tensor<T> operator-(const Tensor<T>& x, double s) {
    return detail::affine(x, 1.0, -s, "sub_scalar");
}
template <class T>
Tensor<T> operator-(double s, const Tensor<T>& x) {
    return detail::affine(x, -1.0, s, "rsub_scalar");
}
template <class T>
Tensor<T> operator*(const Tensor<T>& x, double s) {
    return detail::affine(x, s, 0.0, "mul_scalar");
}
template <class T>
Tensor<T> operator*(double s, const Tensor<T>& x) {
    return detail::affine(x, s, 0.0, "mul_scalar");
}
template <class T>
Tensor<T> operator/(const Tensor<T>& x, double s) {
    if (s == 0.0) throw value_error("div: division of a tensor by the number zero");
    return detail::affine(x, 1.0 / s, 0.0, "div_scalar");
}
template <class T>
Tensor<T> operator/(double s, const Tensor<T>& x) {
    return scalar_div(s, x);
}

}  // namespace gradscope
