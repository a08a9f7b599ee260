// Tensor<T>: the handle users hold. Copying a tensor copies the handle, not the data (as in
// PyTorch); the node it points at lives while any handle or dependent node refers to it.
#pragma once

#include "autograd.hpp"
#include "concepts.hpp"
#include "errors.hpp"
#include "grad_mode.hpp"
#include "matrix.hpp"
#include "node.hpp"

#include <cstdint>
#include <string>
#include <utility>

namespace gradscope {

struct BackwardOptions {
    // Keep the graph's saved data so that backward can run through it again.
    bool retain_graph = false;
};

template <class T>
class Tensor;

// A leaf's writable value (Tensor::data). It is an Eigen map, so anything Eigen can do with a
// matrix works on it; assigning a whole matrix (=, +=, -=) checks the shape first, because for
// a map of the wrong size Eigen asserts in a debug build and writes out of bounds in a release
// build. Element and block access are Eigen's own.
template <class T>
class ValueRef : public MatrixView<T> {
public:
    using Base = MatrixView<T>;
    explicit ValueRef(Base view) noexcept : Base(view) {}
    ValueRef(const ValueRef&) = default;

    ValueRef& operator=(const ValueRef& other) { return assign_checked(other, "="); }
    template <class D>
    ValueRef& operator=(const Eigen::DenseBase<D>& other) {
        return assign_checked(other, "=");
    }
    template <class D>
    ValueRef& operator+=(const Eigen::MatrixBase<D>& other) {
        check(other.rows(), other.cols(), "+=");
        Base::operator+=(other);
        return *this;
    }
    template <class D>
    ValueRef& operator-=(const Eigen::MatrixBase<D>& other) {
        check(other.rows(), other.cols(), "-=");
        Base::operator-=(other);
        return *this;
    }

private:
    template <class D>
    ValueRef& assign_checked(const Eigen::DenseBase<D>& other, const char* how) {
        check(other.rows(), other.cols(), how);
        Base::operator=(other.derived());
        return *this;
    }
    void check(Index rows, Index cols, const char* how) const {
        if (rows != this->rows() || cols != this->cols()) {
            throw shape_error(std::string("data() ") + how + ": the tensor is " +
                              to_string(Shape{this->rows(), this->cols()}) +
                              " and its shape cannot change; got " + to_string(Shape{rows, cols}));
        }
    }
};

// Removes a hook registered with Tensor::register_hook. Dropping the handle keeps the hook.
template <class T>
class HookHandle {
public:
    HookHandle() = default;
    HookHandle(NodePtr<T> node, std::uint64_t id) : node_(std::move(node)), id_(id) {}

    // Returns false when the hook was already removed.
    bool remove() {
        if (!node_ || !node_->hooks) return false;
        const bool removed = node_->hooks->remove(id_);
        node_ = NodePtr<T>();
        return removed;
    }

private:
    NodePtr<T> node_;
    std::uint64_t id_ = 0;
};

template <class T>
class Tensor {
    static_assert(TensorScalar<T>, "gradscope tensors hold float or double");

public:
    using Scalar = T;

    // An empty handle; using it throws graph_error. Assign a tensor to it first.
    Tensor() = default;

    // Wraps a node made by an op. Users make tensors with the factories below.
    explicit Tensor(NodePtr<T> node) noexcept : node_(std::move(node)) { add_handle(); }

    // Copies and moves keep Node::handles, the count of handles on a node, up to date: when
    // it reaches zero, a value no backward reads is released (see Node::value_readers).
    Tensor(const Tensor& other) noexcept : node_(other.node_) { add_handle(); }
    Tensor(Tensor&& other) noexcept : node_(std::move(other.node_)) {}
    Tensor& operator=(const Tensor& other) noexcept {
        if (this != &other) *this = Tensor(other);
        return *this;
    }
    Tensor& operator=(Tensor&& other) noexcept {
        if (this != &other) {
            drop_handle();
            node_ = std::move(other.node_);
        }
        return *this;
    }
    ~Tensor() { drop_handle(); }

    // A leaf holding a copy of `value`, e.g. a batch of inputs. It takes no gradient.
    template <class Derived>
    static Tensor constant(const Eigen::DenseBase<Derived>& value) {
        return leaf(value, false);
    }

    // A leaf that accumulates a gradient in backward: a trainable parameter.
    template <class Derived>
    static Tensor parameter(const Eigen::DenseBase<Derived>& value) {
        return leaf(value, true);
    }

    template <class Derived>
    static Tensor leaf(const Eigen::DenseBase<Derived>& value, bool requires_grad) {
        NodePtr<T> node = NodePtr<T>::make();
        node->value.resize(Shape{value.rows(), value.cols()});
        node->value.view() = value.template cast<T>();
        node->requires_grad = requires_grad;
        return Tensor(std::move(node));
    }

    static Tensor zeros(Index rows, Index cols, bool requires_grad = false) {
        detail::check_dimensions("Tensor::zeros", rows, cols);
        return leaf(Matrix<T>::Zero(rows, cols), requires_grad);
    }
    static Tensor scalar(T value, bool requires_grad = false) {
        return leaf(Matrix<T>::Constant(1, 1, value), requires_grad);
    }

    [[nodiscard]] bool defined() const noexcept { return static_cast<bool>(node_); }
    [[nodiscard]] Shape shape() const { return node().shape(); }
    [[nodiscard]] Index rows() const { return shape().rows; }
    [[nodiscard]] Index cols() const { return shape().cols; }
    [[nodiscard]] const char* op() const { return node().op; }

    [[nodiscard]] ConstMatrixView<T> value() const { return std::as_const(node().value).view(); }

    // The value of a 1x1 tensor.
    [[nodiscard]] T item() const {
        if (!shape().is_scalar()) {
            throw shape_error("item: the tensor is " + to_string(shape()) + ", not [1x1]");
        }
        return value()(0, 0);
    }

    // Writable access to a leaf's value, for optimisers and initialisers. Changing the value
    // of a tensor that a graph recorded would make that graph's gradients wrong, so only
    // leaves allow it, and each call counts as a write: a backward that would read the value
    // the graph recorded throws graph_error instead (see Node::version). Write after backward
    // (or under NoGradGuard before the next forward), as optimisers do.
    [[nodiscard]] ValueRef<T> data() {
        Node<T>& n = node();
        if (!n.is_leaf) {
            throw graph_error(
                "data: only a leaf's value may be written; this tensor was made by '" +
                std::string(n.op) + "'");
        }
        ++n.version;
        return ValueRef<T>(n.value.view());
    }

    // Replaces a leaf's value with `value` (converted to T), which must have the tensor's shape:
    // a shape_error names both shapes otherwise, and the value is left as it was.
    template <class Derived>
    void assign(const Eigen::DenseBase<Derived>& value) {
        check_same_shape("assign", Shape{value.rows(), value.cols()});
        data() = value.template cast<T>();
    }

    // Replaces a leaf's value with a copy of `source`'s (of either precision), which must have the
    // tensor's shape. The gradient, the requires_grad flag and the graph are left alone.
    template <class U>
    void copy_from(const Tensor<U>& source) {
        check_same_shape("copy_from", source.shape());
        data() = source.value().template cast<T>();
    }

    [[nodiscard]] bool requires_grad() const { return node().requires_grad; }
    [[nodiscard]] bool is_leaf() const { return node().is_leaf; }

    void set_requires_grad(bool enabled) {
        Node<T>& n = node();
        if (!n.is_leaf) {
            throw graph_error(
                "set_requires_grad: only a leaf's flag may change; this tensor was "
                "made by '" +
                std::string(n.op) + "'");
        }
        n.requires_grad = enabled;
    }

    // Asks backward to keep this non-leaf tensor's gradient (leaves always keep theirs).
    void retain_grad() { node().retain_grad = true; }

    [[nodiscard]] bool has_grad() const { return node().has_grad; }

    [[nodiscard]] ConstMatrixView<T> grad() const {
        const Node<T>& n = node();
        if (!n.has_grad) throw graph_error(no_grad_message(n));
        return n.grad.view();
    }

    // Writable gradient, for clipping and for optimisers.
    [[nodiscard]] MatrixView<T> mutable_grad() {
        Node<T>& n = node();
        if (!n.has_grad) throw graph_error(no_grad_message(n));
        return n.grad.view();
    }

    // Sets the accumulated gradient to zero, keeping its buffer for the next step.
    void zero_grad() {
        Node<T>& n = node();
        if (n.has_grad) n.grad.view().setZero();
    }

    // Drops the gradient and its buffer (PyTorch's set_to_none).
    void clear_grad() {
        Node<T>& n = node();
        n.grad.reset();
        n.has_grad = false;
    }

    // Backpropagates from a 1x1 tensor, as if it were the loss.
    void backward(BackwardOptions options = {}) {
        Node<T>& n = node();
        if (!n.value.shape().is_scalar()) {
            throw graph_error("backward: the tensor is " + to_string(n.shape()) +
                              "; backward() without a seed needs a [1x1] result (call "
                              "backward(seed) with a gradient of the same shape)");
        }
        const T one = T(1);
        detail::run_backward(n, ConstMatrixView<T>(&one, 1, 1), options.retain_graph);
    }

    // Backpropagates `seed` = dL/d(this) for a tensor of any shape.
    template <class Derived>
    void backward(const Eigen::MatrixBase<Derived>& seed, BackwardOptions options = {}) {
        Node<T>& n = node();
        const Matrix<T> owned = seed.template cast<T>();
        detail::run_backward(n, ConstMatrixView<T>(owned.data(), owned.rows(), owned.cols()),
                             options.retain_graph);
    }

    // Registers `hook`, called during backward with the gradient flowing into this tensor:
    // hook(MatrixView<T> grad), see GradHook.
    template <GradHookFor<T> F>
    HookHandle<T> register_hook(F&& hook) {
        Node<T>& n = node();
        if (!n.requires_grad) {
            throw graph_error(
                "register_hook: the tensor does not require grad, so no gradient "
                "will ever flow into it");
        }
        if (!n.hooks) n.hooks = std::make_unique<HookList<GradHook<T>>>();
        const std::uint64_t id = n.hooks->add(GradHook<T>(std::forward<F>(hook)));
        return HookHandle<T>(node_, id);
    }

    // A new leaf holding a copy of this tensor's value, cut off from the graph.
    [[nodiscard]] Tensor detach() const { return constant(value()); }

    // For ops and library internals.
    [[nodiscard]] Node<T>& node() const {
        if (!node_)
            throw graph_error("use of an empty Tensor handle (default-constructed or moved from)");
        return *node_;
    }
    [[nodiscard]] const NodePtr<T>& node_ptr() const noexcept { return node_; }

private:
    void check_same_shape(const char* who, Shape given) const {
        if (given != shape()) {
            throw shape_error(std::string(who) + ": the tensor is " + to_string(shape()) +
                              " and its shape cannot change; got " + to_string(given));
        }
    }

    void add_handle() noexcept {
        if (node_) ++node_->handles;
    }
    void drop_handle() noexcept {
        if (node_ && --node_->handles == 0) detail::drop_value_if_unread(*node_);
        node_ = NodePtr<T>();
    }

    static std::string no_grad_message(const Node<T>& n) {
        if (!n.requires_grad) {
            return "grad: the tensor (" + std::string(n.op) + " " + to_string(n.shape()) +
                   ") does not require grad";
        }
        if (!n.is_leaf) {
            return "grad: a non-leaf tensor ('" + std::string(n.op) +
                   "') keeps its gradient only if retain_grad() was called before backward";
        }
        return "grad: no gradient has been computed for this tensor yet (call backward first)";
    }

    NodePtr<T> node_;
};

using TensorF = Tensor<float>;
using TensorD = Tensor<double>;

}  // namespace gradscope
