// An op with a deliberate bug, for the tests that prove such bugs are caught: square(x) whose
// BackwardReads says its backward reads no input, although the backward reads x.
#pragma once

#include <gradscope/gradscope.hpp>

namespace gradscope::testing {

inline void misdeclared_square_backward(Node<double>& node) {
    Node<double>& x = *node.inputs[0];
    detail::accumulate(
        x, (2.0 * detail::grad_of(node).array() * detail::value_of(x).array()).matrix());
}

inline TensorD misdeclared_square(const TensorD& x) {
    Node<double>& xn = x.node();
    NodePtr<double> node =
        detail::record<double>("misdeclared_square", xn.shape(), {&xn},
                               &misdeclared_square_backward, detail::reads_nothing);
    node->value.view() = detail::value_of(xn).array().square().matrix();
    return detail::finish(std::move(node));
}

}  // namespace gradscope::testing
