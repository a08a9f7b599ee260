// Batch normalisation (statistics over the batch, per feature) and layer normalisation
// (statistics over the features, per sample), each one fused node: the backward formulas
// below are the closed forms of differentiating through the mean and the variance, which
// is both faster and more accurate than composing a dozen elementary ops.
#pragma once

#include "support.hpp"

#include <cmath>

namespace gradscope {

namespace detail {

// The normalisations' backward reads x-hat and 1/std from its own saved buffers and gamma's
// value; neither x nor the output.
inline constexpr BackwardReads norm_reads{0b010u, false};

struct NormAttr {
    bool batch_statistics;  // batch norm in training: x's own statistics, so dx couples rows
};

// Inputs x [B x n], gamma [1 x n], beta [1 x n]. Saved: xhat [B x n]; aux: 1/sqrt(var + eps)
// per feature [1 x n].
template <class T>
void batch_norm_backward(Node<T>& node) {
    Node<T>& x = *node.inputs[0];
    Node<T>& gamma = *node.inputs[1];
    Node<T>& beta = *node.inputs[2];
    const auto dy = grad_of(node).array();
    const auto xhat = std::as_const(node.saved).view().array();
    const auto invstd = std::as_const(node.aux).view().array();
    const Index batch = dy.rows();
    PooledMatrix<T> dbeta(Shape{1, dy.cols()}), dgamma(Shape{1, dy.cols()});
    // Both column sums in one pass over dy, row by row (rows are contiguous).
    auto dbeta_row = dbeta.view().row(0).array();
    auto dgamma_row = dgamma.view().row(0).array();
    dbeta_row.setZero();
    dgamma_row.setZero();
    for (Index i = 0; i < batch; ++i) {
        dbeta_row += dy.row(i);
        dgamma_row += dy.row(i) * xhat.row(i);
    }
    if (x.requires_grad) {
        // Per-feature factor gamma * invstd, made once (replicating an expression would
        // evaluate it into a heap temporary).
        PooledMatrix<T> scale(Shape{1, dy.cols()});
        scale.view() = (value_of(gamma).array() * invstd).matrix();
        const auto per_row = down_rows(std::as_const(scale).view().array(), batch);
        if (node.template attr<NormAttr>().batch_statistics) {
            // dx = gamma*invstd/B * (B*dy - sum(dy) - xhat*sum(dy*xhat))
            accumulate(x, (per_row / static_cast<T>(batch) *
                           (static_cast<T>(batch) * dy - down_rows(dbeta.view().array(), batch) -
                            xhat * down_rows(dgamma.view().array(), batch)))
                              .matrix());
        } else {
            accumulate(x, (dy * per_row).matrix());
        }
    }
    accumulate(gamma, dgamma.view());
    accumulate(beta, dbeta.view());
}

// eps keeps 1/sqrt(var + eps) finite for a constant feature: zero, negative, NaN or infinite
// would give an infinity or a NaN for every such input, or silently flatten every output.
inline void check_norm_eps(const char* op, double eps) { check_positive(op, "eps", eps); }

template <class T>
void check_norm_params(const char* op, Shape x, Shape gamma, Shape beta, Index features) {
    if (gamma != Shape{1, features} || beta != Shape{1, features}) {
        throw shape_error(std::string(op) + ": gamma and beta must be [1x" +
                          std::to_string(features) + "] for input " + to_string(x) + ", got " +
                          to_string(gamma) + " and " + to_string(beta));
    }
}

template <class T>
NodePtr<T> batch_norm_node(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                           bool batch_statistics) {
    Node<T>& xn = x.node();
    Node<T>& gn = gamma.node();
    Node<T>& bn = beta.node();
    check_norm_params<T>("batch_norm", xn.shape(), gn.shape(), bn.shape(), xn.shape().cols);
    NodePtr<T> node =
        record<T>("batch_norm", xn.shape(), {&xn, &gn, &bn}, &batch_norm_backward<T>, norm_reads);
    node->set_attr(NormAttr{batch_statistics});
    node->saved.resize(xn.shape());
    node->aux.resize(Shape{1, xn.shape().cols});
    return node;
}

// Given x - mean in saved and the biased variance: 1/sqrt(var + eps) into aux, xhat into saved,
// and y = xhat * gamma + beta, row by row (rows are contiguous). Training-mode batch norm's last
// pass, local or synchronised.
template <class T, class Variance>
void normalise_centred(Node<T>& node, const Variance& variance, double eps, const Tensor<T>& gamma,
                       const Tensor<T>& beta) {
    auto invstd = node.aux.view().row(0).array();
    invstd = (variance + static_cast<T>(eps)).rsqrt();
    const auto g = value_of(gamma.node()).row(0).array();
    const auto b = value_of(beta.node()).row(0).array();
    auto xhat = node.saved.view().array();
    auto y = node.value.view().array();
    for (Index i = 0; i < y.rows(); ++i) {
        xhat.row(i) *= invstd;
        y.row(i) = xhat.row(i) * g + b;
    }
}

// y = xhat * gamma + beta, given xhat in saved.
template <class T>
void scale_and_shift(Node<T>& node, const Tensor<T>& gamma, const Tensor<T>& beta) {
    const Index rows = node.shape().rows;
    node.value.view().array() =
        std::as_const(node.saved).view().array() * down_rows(value_of(gamma.node()).array(), rows) +
        down_rows(value_of(beta.node()).array(), rows);
}

}  // namespace detail

// The batch mean and biased variance a training-mode batch_norm used, for running statistics.
template <class T>
struct BatchStatistics {
    Matrix<T> mean;
    Matrix<T> variance;  // biased (divided by B), as used to normalise
    Index count = 0;     // B: the rows they were computed from
};

// Training mode: normalises each feature by the batch's own mean and biased variance and
// writes them to `stats` (sized on first use, reused after). Needs more than one row.
template <class T>
Tensor<T> batch_norm_train(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                           double eps, BatchStatistics<T>& stats) {
    const Shape s = x.shape();
    detail::check_norm_eps("batch_norm", eps);
    if (s.rows < 2) {
        throw value_error(
            "batch_norm: training needs more than one sample per feature to "
            "compute a variance (input " +
            to_string(s) + "); use a larger batch or eval mode");
    }
    NodePtr<T> node = detail::batch_norm_node(x, gamma, beta, true);
    const auto xv = detail::value_of(x.node()).array();
    const T batch = static_cast<T>(s.rows);
    stats.mean.resize(1, s.cols);
    stats.variance.resize(1, s.cols);
    stats.count = s.rows;
    auto mean = stats.mean.row(0).array();
    auto variance = stats.variance.row(0).array();
    // Three passes over the batch, row by row (rows are contiguous), where composing Eigen
    // expressions took five: the means; then centring, with the squares summed on the way (still
    // the two-pass variance, as accurate as before); then normalising, scaling and shifting.
    mean.setZero();
    for (Index i = 0; i < s.rows; ++i) mean += xv.row(i);
    mean /= batch;
    auto xhat = node->saved.view().array();
    variance.setZero();
    for (Index i = 0; i < s.rows; ++i) {
        xhat.row(i) = xv.row(i) - mean;
        variance += xhat.row(i).square();
    }
    variance /= batch;
    detail::normalise_centred(*node, variance, eps, gamma, beta);
    return detail::finish(std::move(node));
}

// Evaluation mode: normalises with given (running) statistics; rows are independent.
template <class T, class MeanDerived, class VarDerived>
Tensor<T> batch_norm_eval(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                          const Eigen::MatrixBase<MeanDerived>& mean,
                          const Eigen::MatrixBase<VarDerived>& variance, double eps) {
    const Shape s = x.shape();
    detail::check_norm_eps("batch_norm", eps);
    if (mean.rows() != 1 || mean.cols() != s.cols || variance.rows() != 1 ||
        variance.cols() != s.cols) {
        throw shape_error("batch_norm: running statistics must be [1x" + std::to_string(s.cols) +
                          "] for input " + to_string(s));
    }
    NodePtr<T> node = detail::batch_norm_node(x, gamma, beta, false);
    MatrixView<T> invstd = node->aux.view();
    invstd = (variance.array() + static_cast<T>(eps)).rsqrt().matrix();
    MatrixView<T> xhat = node->saved.view();
    xhat = (detail::value_of(x.node()).rowwise() - mean.row(0)).array() *
           detail::down_rows(invstd.array(), s.rows);
    detail::scale_and_shift(*node, gamma, beta);
    return detail::finish(std::move(node));
}

namespace detail {

// Layer norm's normalisation of each row of x [B x n]: xhat = (x - mean) / sqrt(var + eps), the
// mean and the (biased) variance over the row, and invstd [B x 1] = 1/sqrt(var + eps). The
// forward pass and the monitor's per-sample statistics of a LayerNorm's scale both use it, so
// the two agree to the last bit.
template <class T>
void normalise_rows(ConstMatrixView<T> x, double eps, MatrixView<T> xhat, MatrixView<T> invstd) {
    for (Index i = 0; i < x.rows(); ++i) {
        const T mu = x.row(i).mean();
        xhat.row(i) = x.row(i).array() - mu;
        const T var = xhat.row(i).squaredNorm() / static_cast<T>(x.cols());
        invstd(i, 0) = T(1) / std::sqrt(var + static_cast<T>(eps));
        xhat.row(i) *= invstd(i, 0);
    }
}

// Inputs x [B x n], gamma, beta [1 x n]. Saved: xhat; aux: 1/sqrt(var + eps) per row [B x 1].
template <class T>
void layer_norm_backward(Node<T>& node) {
    Node<T>& x = *node.inputs[0];
    Node<T>& gamma = *node.inputs[1];
    Node<T>& beta = *node.inputs[2];
    const auto dy = grad_of(node).array();
    const auto xhat = std::as_const(node.saved).view().array();
    const Index n = dy.cols();
    accumulate(gamma, (dy * xhat).colwise().sum().matrix());
    accumulate(beta, dy.colwise().sum().matrix());
    if (!x.requires_grad) return;
    const auto invstd = std::as_const(node.aux).view().array();
    PooledMatrix<T> dxhat(node.shape()), sums(Shape{dy.rows(), 1}), dots(Shape{dy.rows(), 1});
    dxhat.view() = (dy * down_rows(value_of(gamma).array(), dy.rows())).matrix();
    const auto dh = std::as_const(dxhat).view().array();
    sums.view() = dh.rowwise().sum().matrix();
    dots.view() = (dh * xhat).rowwise().sum().matrix();
    // dx = invstd/n * (n*dxhat - sum(dxhat) - xhat*sum(dxhat*xhat)), per row
    accumulate(x, (across_cols(invstd, n) / static_cast<T>(n) *
                   (static_cast<T>(n) * dh - across_cols(sums.view().array(), n) -
                    xhat * across_cols(dots.view().array(), n)))
                      .matrix());
}

}  // namespace detail

template <class T>
Tensor<T> layer_norm(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                     double eps) {
    Node<T>& xn = x.node();
    const Shape s = xn.shape();
    detail::check_norm_params<T>("layer_norm", s, gamma.shape(), beta.shape(), s.cols);
    detail::check_norm_eps("layer_norm", eps);
    if (s.cols == 0) throw shape_error("layer_norm: an input with no features " + to_string(s));
    NodePtr<T> node = detail::record<T>("layer_norm", s, {&xn, &gamma.node(), &beta.node()},
                                        &detail::layer_norm_backward<T>, detail::norm_reads);
    node->saved.resize(s);
    node->aux.resize(Shape{s.rows, 1});
    detail::normalise_rows(detail::value_of(xn), eps, node->saved.view(), node->aux.view());
    detail::scale_and_shift(*node, gamma, beta);
    return detail::finish(std::move(node));
}

}  // namespace gradscope
