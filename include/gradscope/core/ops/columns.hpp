// Joining tensors side by side along the feature axis, and taking a range of features.
#pragma once

#include "support.hpp"

#include <initializer_list>
#include <limits>
#include <span>
#include <vector>

namespace gradscope {

namespace detail {

template <class T>
void concat_cols_backward(Node<T>& node) {
    const ConstMatrixView<T> g = grad_of(node);
    Index offset = 0;
    for (Node<T>* input : node.inputs) {
        const Index width = input->shape().cols;
        if (input->requires_grad) accumulate(*input, g.middleCols(offset, width));
        offset += width;
    }
}

struct SliceAttr {
    Index begin;
    Index count;
};

template <class T>
void slice_cols_backward(Node<T>& node) {
    Node<T>& x = *node.inputs[0];
    if (!x.requires_grad) return;
    const SliceAttr a = node.template attr<SliceAttr>();
    GradSlot<T> slot = grad_slot(x);
    if (slot.first) slot.view.setZero();
    slot.view.middleCols(a.begin, a.count) += grad_of(node);
}

}  // namespace detail

// [a | b | ...]: all parts must have the same number of rows. At most a handful of parts
// are stored inline; more are fine but may allocate while recording.
template <class T>
Tensor<T> concat_cols(std::span<const Tensor<T>> parts) {
    if (parts.empty()) throw value_error("concat_cols: nothing to concatenate");
    constexpr std::size_t inline_parts = 8;
    std::array<Node<T>*, inline_parts> small{};
    std::vector<Node<T>*> large;
    if (parts.size() > inline_parts) large.resize(parts.size());
    Node<T>** nodes = parts.size() > inline_parts ? large.data() : small.data();
    const Index rows = parts[0].rows();
    Index cols = 0;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        nodes[i] = &parts[i].node();
        if (nodes[i]->shape().rows != rows) {
            detail::throw_shapes(
                "concat_cols",
                "part " + std::to_string(i) + " has a different number of rows than part 0",
                nodes[i]->shape(), nodes[0]->shape());
        }
        // Parts with no rows hold no memory, so their widths can add up past an Index.
        if (nodes[i]->shape().cols > std::numeric_limits<Index>::max() - cols) {
            throw shape_error("concat_cols: the parts' widths add up past the index type at part " +
                              std::to_string(i));
        }
        cols += nodes[i]->shape().cols;
    }
    NodePtr<T> node = detail::record<T>("concat_cols", Shape{rows, cols},
                                        std::span<Node<T>* const>(nodes, parts.size()),
                                        &detail::concat_cols_backward<T>);
    MatrixView<T> y = node->value.view();
    Index offset = 0;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const Index width = nodes[i]->shape().cols;
        y.middleCols(offset, width) = detail::value_of(*nodes[i]);
        offset += width;
    }
    return detail::finish(std::move(node));
}

template <class T>
Tensor<T> concat_cols(std::initializer_list<Tensor<T>> parts) {
    return concat_cols(std::span<const Tensor<T>>(parts.begin(), parts.size()));
}

template <class T>
Tensor<T> concat_cols(const Tensor<T>& a, const Tensor<T>& b) {
    return concat_cols({a, b});
}

// Columns [begin, begin + count) of x.
template <class T>
Tensor<T> slice_cols(const Tensor<T>& x, Index begin, Index count) {
    Node<T>& xn = x.node();
    const Shape s = xn.shape();
    // Compared without forming begin + count, which overflows for huge arguments.
    if (begin < 0 || count < 0 || begin > s.cols || count > s.cols - begin) {
        throw shape_error("slice_cols: begin = " + std::to_string(begin) +
                          ", count = " + std::to_string(count) +
                          " is not a range of columns of the tensor " + to_string(s));
    }
    NodePtr<T> node = detail::record<T>("slice_cols", Shape{s.rows, count}, {&xn},
                                        &detail::slice_cols_backward<T>);
    node->set_attr(detail::SliceAttr{begin, count});
    node->value.view() = detail::value_of(xn).middleCols(begin, count);
    return detail::finish(std::move(node));
}

}  // namespace gradscope
