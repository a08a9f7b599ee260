// Inverted dropout: in training each element is zeroed with probability p and the survivors
// are scaled by 1/(1-p), so the expected activation is unchanged and evaluation needs no
// rescaling.
#pragma once

#include "../random.hpp"
#include "support.hpp"

namespace gradscope {

namespace detail {

template <class T>
void dropout_backward(Node<T>& node) {
    accumulate(*node.inputs[0], grad_of(node).cwiseProduct(std::as_const(node.saved).view()));
}

}  // namespace detail

template <class T>
Tensor<T> dropout(const Tensor<T>& x, double p, Rng& rng) {
    if (!(p >= 0.0 && p <= 1.0)) {
        throw value_error("dropout: the probability must be in [0, 1], got " +
                          detail::number_text(p));
    }
    Node<T>& xn = x.node();
    NodePtr<T> node = detail::record<T>("dropout", xn.shape(), {&xn}, &detail::dropout_backward<T>,
                                        detail::reads_nothing);  // the mask is in `saved`
    node->saved.resize(xn.shape());
    MatrixView<T> mask = node->saved.view();
    const T keep_scale = p < 1.0 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
    for (Index i = 0; i < mask.size(); ++i) {
        mask.data()[i] = rng.uniform() < p ? T(0) : keep_scale;
    }
    node->value.view() = detail::value_of(xn).cwiseProduct(std::as_const(node->saved).view());
    return detail::finish(std::move(node));
}

}  // namespace gradscope
