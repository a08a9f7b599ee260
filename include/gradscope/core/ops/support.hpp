// What every op uses to record itself on the graph and to send gradients to its inputs.
// An op is a forward function that fills a new node's value, plus a plain function pointer
// that reads the node's gradient and accumulates into its inputs' gradients.
#pragma once

#include "../autograd.hpp"
#include "../errors.hpp"
#include "../grad_mode.hpp"
#include "../node.hpp"
#include "../tensor.hpp"

#include <initializer_list>
#include <span>
#include <string>
#include <utility>

namespace gradscope::detail {

// Which values an op's backward function reads: a bit per input (bit i for input i) and its
// own output. The default, everything, is always safe; an op that declares less lets those
// values go back to the pool during the forward pass (see Node::value_readers). Declaring
// less than the backward really reads would make it read a released buffer, so each op's
// declaration sits next to its backward function and the gradient checks cover every op.
struct BackwardReads {
    unsigned inputs = ~0u;
    bool output = true;
};
inline constexpr BackwardReads reads_nothing{0u, false};

// Recording an op takes a reference on each input; on a leaf that another thread is
// backpropagating into right now, that would race with the other pass (docs/DESIGN.md,
// "Threads").
template <class T>
void check_not_in_backward_elsewhere(const char* op, const Node<T>& leaf) {
    const void* busy = leaf.backward_thread.load(std::memory_order_acquire);
    if (busy != nullptr && busy != this_thread_tag()) {
        throw graph_error(std::string(op) + ": " + describe_node(leaf) +
                          " is being backpropagated into by another thread; a network (and "
                          "any tensor) may be used by one thread at a time");
    }
}

// A new node for `op` with the given output shape. It records its inputs (and so becomes
// part of the graph) only if gradients are enabled and some input requires one; otherwise
// it is a constant, and the inputs may be freed as soon as the caller drops them.
template <class T>
NodePtr<T> record(const char* op, Shape shape, std::span<Node<T>* const> inputs,
                  BackwardFn<T> backward, BackwardReads reads = {}) {
    NodePtr<T> out = NodePtr<T>::make();
    out->op = op;
    if (is_anomaly_enabled() && detail::mode_flags().scope != nullptr) {
        out->label = *detail::mode_flags().scope;
    }
    out->value.resize(shape);
    bool needs_grad = false;
    if (is_grad_enabled()) {
        for (const Node<T>* input : inputs) needs_grad = needs_grad || input->requires_grad;
    }
    if (needs_grad) {
        out->requires_grad = true;
        out->is_leaf = false;
        out->backward = backward;
        out->reads_own_value = reads.output;
        out->reads_inputs = reads.inputs;
        for (std::size_t i = 0; i < inputs.size(); ++i) {
            Node<T>* input = inputs[i];
            if (input->is_leaf) check_not_in_backward_elsewhere(op, *input);
            ++input->refcount;
            if (i >= 32 || ((reads.inputs >> i) & 1u) != 0) ++input->value_readers;
            out->inputs.push_back(input);
            out->input_versions.push_back(input->version);
        }
    }
    return out;
}

template <class T>
NodePtr<T> record(const char* op, Shape shape, std::initializer_list<Node<T>*> inputs,
                  BackwardFn<T> backward, BackwardReads reads = {}) {
    return record<T>(op, shape, std::span<Node<T>* const>(inputs.begin(), inputs.size()), backward,
                     reads);
}

// Wraps a finished node in a Tensor, trapping a non-finite value in anomaly mode.
template <class T>
Tensor<T> finish(NodePtr<T> out) {
    if (is_anomaly_enabled() && !out->value.view().allFinite()) {
        throw numeric_error("anomaly: the forward of " + where(out->op, out->label) +
                            " produced a NaN or an infinity (output " + to_string(out->shape()) +
                            ")");
    }
    return Tensor<T>(std::move(out));
}

// An op's input value, for its forward and backward functions. A value released during the
// forward pass (see Node::value_readers) has no storage: reading it means some op's
// BackwardReads says it does not read a value that its backward does read. That is a bug in
// the op, and it is reported as one rather than dereferenced.
template <class T>
ConstMatrixView<T> value_of(const Node<T>& node) {
    if (!node.value.has_storage() && node.value.shape().size() > 0) [[unlikely]] {
        throw graph_error("the value of " + describe_node(node) +
                          " was released after the forward pass because no op declared that "
                          "its backward reads it, yet a backward reads it: an op's "
                          "BackwardReads declaration is wrong");
    }
    return node.value.view();
}
template <class T>
ConstMatrixView<T> grad_of(const Node<T>& node) {
    return node.grad.view();
}

// Adds `expr` (a matrix expression of the input's shape) to the input's gradient. `noalias`
// is safe: an input's gradient buffer never appears in the expression that feeds it.
template <class T, class Expr>
void accumulate(Node<T>& input, const Expr& expr) {
    if (!input.requires_grad) return;
    GradSlot<T> slot = grad_slot(input);
    if (slot.first) {
        slot.view.noalias() = expr;
    } else {
        slot.view.noalias() += expr;
    }
}

// For pass-through ops (add, sub: d out / d input = 1): gives the node's own gradient buffer
// to `input` instead of copying it, when that is invisible to everyone: the input is an
// interior node that has received nothing yet this pass and has the output's shape, and the
// node's gradient would be dropped right after its backward anyway (not retained). The
// residual block's skip path is such an add, once per block. Call it after every other use of
// the node's gradient. Returns whether it handed the buffer over.
template <class T>
bool hand_over_grad(Node<T>& node, Node<T>& input) {
    if (!input.requires_grad || input.is_leaf || input.written || node.retain_grad ||
        input.shape() != node.shape()) {
        return false;
    }
    std::swap(input.grad, node.grad);
    input.written = true;
    return true;
}

// A [1 x n] value repeated down `rows` rows, and an [m x 1] value repeated across `cols`
// columns, as expressions. Eigen's general replicate(r, c) with run-time factors computes an
// index modulo for every packet it loads; taking row(0) (col(0)) fixes the operand's other
// extent at compile time and the direction-wise replicate fixes the other factor at 1, so the
// loads are plain vector loads. In the deep batch-norm benchmark that took a training step
// from 2.7x the hand-written baseline's time to 1.1-1.2x.
template <class Derived>
auto down_rows(const Eigen::DenseBase<Derived>& row, Index rows) {
    return row.derived().row(0).colwise().replicate(rows);
}
template <class Derived>
auto across_cols(const Eigen::DenseBase<Derived>& col, Index cols) {
    return col.derived().col(0).rowwise().replicate(cols);
}

// How an operand of a binary op is stretched to the output's shape: PyTorch's broadcasting,
// restricted to the cases a 2-D batch needs (a 1xn row, an rx1 column, a 1x1 scalar).
enum class Broadcast { none, row, col, scalar };

inline Broadcast broadcast_kind(Shape operand, Shape out) {
    if (operand == out) return Broadcast::none;
    if (operand.is_scalar()) return Broadcast::scalar;
    if (operand.rows == 1) return Broadcast::row;
    return Broadcast::col;
}

inline Shape broadcast_shape(const char* op, Shape a, Shape b) {
    auto fits = [](Index x, Index y) { return x == y || x == 1 || y == 1; };
    if (!fits(a.rows, b.rows) || !fits(a.cols, b.cols)) {
        throw_shapes(op, "shapes do not broadcast", a, b);
    }
    const Shape out{std::max(a.rows, b.rows), std::max(a.cols, b.cols)};
    // Only whole operands stretch: [1xn] with [rx1] would make an outer product, which a
    // batch of rows never means.
    for (Shape s : {a, b}) {
        if (s != out && !s.is_scalar() && !(s.rows == 1 && s.cols == out.cols) &&
            !(s.cols == 1 && s.rows == out.rows)) {
            throw_shapes(op, "shapes do not broadcast", a, b);
        }
    }
    if (a != out && b != out) throw_shapes(op, "shapes do not broadcast", a, b);
    return out;
}

// The operand's value at the output's shape: the value itself, or a broadcast copy in
// pooled scratch storage.
template <class T>
ConstMatrixView<T> expand(const Node<T>& operand, Shape out, PooledMatrix<T>& scratch) {
    const ConstMatrixView<T> v = operand.value.view();
    switch (broadcast_kind(operand.shape(), out)) {
        case Broadcast::none:
            return v;
        case Broadcast::row:
            scratch.resize(out);
            scratch.view() = down_rows(v, out.rows);
            break;
        case Broadcast::col:
            scratch.resize(out);
            scratch.view() = across_cols(v, out.cols);
            break;
        case Broadcast::scalar:
            scratch.resize(out);
            scratch.view().setConstant(v(0, 0));
            break;
    }
    return std::as_const(scratch).view();
}

// Accumulates a full-shape gradient into an operand that was broadcast, summing over the
// rows or columns it was stretched along.
template <class T, class Expr>
void accumulate_reduced(Node<T>& operand, Shape out, const Expr& full) {
    if (!operand.requires_grad) return;
    switch (broadcast_kind(operand.shape(), out)) {
        case Broadcast::none:
            accumulate(operand, full);
            break;
        case Broadcast::row:
            accumulate(operand, full.colwise().sum());
            break;
        case Broadcast::col:
            accumulate(operand, full.rowwise().sum());
            break;
        case Broadcast::scalar:
            accumulate(operand, Matrix<T>::Constant(1, 1, full.sum()));
            break;
    }
}

}  // namespace gradscope::detail
