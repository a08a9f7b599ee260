// Matrix products. `linear` is the fused layer op: one GEMM forward, two backward, and the
// bias folded in, because that is where an MLP spends its time.
#pragma once

#include "support.hpp"

#include <atomic>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace gradscope {

namespace detail {

// Eigen splits a matrix product across OpenMP threads as soon as each thread gets ~50k
// multiply-adds. Measured on the 2-core machine of docs/PERFORMANCE.md, a second thread made
// the small benchmark shape (32 x 128 products) 2.5x slower, medium (64 x 256 x 256, 4e6
// multiply-adds) 1.3x slower and the deep one (128 x 128) up to 10% slower, and paid off only
// at the large shape (256 x 1024 x 1024, 2.7e8: 1.5-1.8x faster). So a product below this size runs on
// the calling thread alone. On the same VM a later run found medium 1.6x *faster* on two threads
// for a while: whether a second core pays depends on the machine (and on a VM, on the minute),
// so the default is the safe one and a program can move it with
// set_parallel_product_min_work (0: Eigen decides every product alone).
inline constexpr double default_parallel_product_min_work = 3.0e7;  // multiply-adds

inline std::atomic<double>& parallel_product_threshold() noexcept {
    static std::atomic<double> min_work{default_parallel_product_min_work};
    return min_work;
}

// Keeps one product on the calling thread when it is too small to share. It lowers OpenMP's
// per-thread team size (thread-local, so other threads are unaffected) for its lifetime. A
// program that pinned Eigen's thread count with Eigen::setNbThreads has chosen for every
// product, and is left alone; OMP_NUM_THREADS or omp_set_num_threads leave the choice here.
class SerialIfSmall {
public:
    SerialIfSmall(Index rows, Index cols, Index depth) {
#ifdef _OPENMP
        const double work =
            static_cast<double>(rows) * static_cast<double>(cols) * static_cast<double>(depth);
        const int team = omp_get_max_threads();
        const double min_work = parallel_product_threshold().load(std::memory_order_relaxed);
        if (work < min_work && team > 1 && Eigen::nbThreads() == team) {
            saved_team_ = team;
            omp_set_num_threads(1);
        }
#else
        (void)rows, (void)cols, (void)depth;
#endif
    }
    ~SerialIfSmall() {
#ifdef _OPENMP
        if (saved_team_ > 0) omp_set_num_threads(saved_team_);
#endif
    }
    SerialIfSmall(const SerialIfSmall&) = delete;
    SerialIfSmall& operator=(const SerialIfSmall&) = delete;

private:
    [[maybe_unused]] int saved_team_ = 0;
};

template <class T>
void matmul_backward(Node<T>& node) {
    Node<T>& a = *node.inputs[0];
    Node<T>& b = *node.inputs[1];
    const ConstMatrixView<T> g = grad_of(node);
    // Both products have the forward's size: rows(a) x cols(a) x cols(b).
    const SerialIfSmall serial(a.shape().rows, a.shape().cols, b.shape().cols);
    if (a.requires_grad) accumulate(a, g * value_of(b).transpose());
    if (b.requires_grad) accumulate(b, value_of(a).transpose() * g);
}

template <class T>
void transpose_backward(Node<T>& node) {
    accumulate(*node.inputs[0], grad_of(node).transpose());
}

// Inputs: x [B x in], W [out x in], and optionally b [1 x out]. Reads x and W, not b or y.
inline constexpr BackwardReads linear_reads{0b011u, false};

template <class T>
void linear_backward(Node<T>& node) {
    Node<T>& x = *node.inputs[0];
    Node<T>& w = *node.inputs[1];
    const ConstMatrixView<T> g = grad_of(node);
    const SerialIfSmall serial(x.shape().rows, x.shape().cols, w.shape().rows);
    if (x.requires_grad) accumulate(x, g * value_of(w));
    if (w.requires_grad) {
        if (g.rows() == 1) {
            // A batch of one makes dW an outer product. Eigen picks its kernel by compile-time
            // shape, and for run-time matrices that is the blocked GEMM, which packs both
            // operands to multiply by a depth of one: a third of a batch-1 step went there.
            accumulate(w, g.row(0).transpose() * value_of(x).row(0));
        } else {
            accumulate(w, g.transpose() * value_of(x));
        }
    }
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
        throw shape_error("linear: the bias must be [1x" + std::to_string(w.rows) +
                          "] for weight " + to_string(w) + ", got " + to_string(*b));
    }
    check_dimensions("linear", x.rows, w.rows);
}

}  // namespace detail

// Matrix products smaller than this many multiply-adds run on the calling thread even when
// OpenMP has more (default 3e7; see docs/PERFORMANCE.md, "Threads"). Lower it where a second
// core pays for medium-sized products on your machine; 0 leaves every product to Eigen.
inline void set_parallel_product_min_work(double multiply_adds) {
    if (!(multiply_adds >= 0.0)) {
        throw value_error("set_parallel_product_min_work: the threshold must be >= 0, got " +
                          std::to_string(multiply_adds));
    }
    detail::parallel_product_threshold().store(multiply_adds, std::memory_order_relaxed);
}
[[nodiscard]] inline double parallel_product_min_work() noexcept {
    return detail::parallel_product_threshold().load(std::memory_order_relaxed);
}

template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b) {
    Node<T>& an = a.node();
    Node<T>& bn = b.node();
    if (an.shape().cols != bn.shape().rows) {
        detail::throw_shapes("matmul", "inner dimensions differ", an.shape(), bn.shape());
    }
    detail::check_dimensions("matmul", an.shape().rows, bn.shape().cols);
    NodePtr<T> node =
        detail::record<T>("matmul", Shape{an.shape().rows, bn.shape().cols}, {&an, &bn},
                          &detail::matmul_backward<T>, detail::BackwardReads{0b11u, false});
    const detail::SerialIfSmall serial(an.shape().rows, an.shape().cols, bn.shape().cols);
    node->value.view().noalias() = detail::value_of(an) * detail::value_of(bn);
    return detail::finish(std::move(node));
}

template <class T>
Tensor<T> transpose(const Tensor<T>& x) {
    Node<T>& xn = x.node();
    NodePtr<T> node = detail::record<T>("transpose", Shape{xn.shape().cols, xn.shape().rows}, {&xn},
                                        &detail::transpose_backward<T>, detail::reads_nothing);
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
    NodePtr<T> node =
        detail::record<T>("linear", Shape{xn.shape().rows, wn.shape().rows}, {&xn, &wn, &bn},
                          &detail::linear_backward<T>, detail::linear_reads);
    MatrixView<T> y = node->value.view();
    const detail::SerialIfSmall serial(xn.shape().rows, xn.shape().cols, wn.shape().rows);
    // The bias first, then the product added to it: Eigen's `y = x W^T` would clear y before
    // accumulating into it and the bias would be one more pass over y; this way y is written
    // once before the GEMM instead of twice around it.
    y = detail::down_rows(detail::value_of(bn), y.rows());
    y.noalias() += detail::value_of(xn) * detail::value_of(wn).transpose();
    return detail::finish(std::move(node));
}

// y = x W^T, without a bias.
template <class T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight) {
    Node<T>& xn = x.node();
    Node<T>& wn = weight.node();
    detail::check_linear_shapes<T>(xn.shape(), wn.shape(), nullptr);
    NodePtr<T> node =
        detail::record<T>("linear", Shape{xn.shape().rows, wn.shape().rows}, {&xn, &wn},
                          &detail::linear_backward<T>, detail::linear_reads);
    const detail::SerialIfSmall serial(xn.shape().rows, xn.shape().cols, wn.shape().rows);
    node->value.view().noalias() = detail::value_of(xn) * detail::value_of(wn).transpose();
    return detail::finish(std::move(node));
}

}  // namespace gradscope
