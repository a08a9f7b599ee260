// The hand-written baseline: the benchmark workload (workload.hpp) as explicit Eigen matrix
// formulas over buffers allocated once. No graph, no nodes, no hooks: the best a library built
// on Eigen can hope to reach, so gradscope's time divided by this one's is the price of its
// tape and layer plumbing.
//
// It does exactly the work gradscope does, so that the ratio is fair: the same GEMMs (no input
// gradient for the first layer, whose input is data), batch norm in training mode with its
// running statistics, and plain SGD. tests/test_bench_baseline.cpp checks, in double precision,
// that its loss and every gradient equal gradscope's for the same parameters.
#pragma once

#include "workload.hpp"

#include <Eigen/Dense>

#include <cstddef>
#include <vector>

namespace gradscope::bench {

template <class T>
class BaselineMlp {
public:
    using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using Row = Eigen::Matrix<T, 1, Eigen::Dynamic>;

    static constexpr T bn_eps = T(1e-5);
    static constexpr T bn_momentum = T(0.1);

    // Weights and biases start at zero: set them with weight(l) / bias(l) (the benchmark and
    // the test copy gradscope's), or with init().
    explicit BaselineMlp(const Workload& w) : w_(w) {
        const auto layers = static_cast<std::size_t>(w.depth);
        const auto hidden = layers - 1;
        const Eigen::Index B = w.batch, W = w.width;
        weight_.assign(layers, Mat::Zero(W, W));
        bias_.assign(layers, Row::Zero(W));
        weight_grad_.assign(layers, Mat::Zero(W, W));
        bias_grad_.assign(layers, Row::Zero(W));
        // Block inputs (residual) or pre-activations (plain), their normalised and activated
        // versions: one B x W buffer each per hidden layer.
        pre_.assign(hidden + 1, Mat::Zero(B, W));
        normalised_.assign(w.batch_norm ? hidden : 0, Mat::Zero(B, W));
        activated_.assign(hidden, Mat::Zero(B, W));
        if (w.batch_norm) {
            gamma_.assign(hidden, Row::Ones(W));
            beta_.assign(hidden, Row::Zero(W));
            gamma_grad_.assign(hidden, Row::Zero(W));
            beta_grad_.assign(hidden, Row::Zero(W));
            inv_std_.assign(hidden, Row::Zero(W));
            running_mean_.assign(hidden, Row::Zero(W));
            running_var_.assign(hidden, Row::Ones(W));
        }
        out_ = Mat::Zero(B, W);
        grad_ = Mat::Zero(B, W);
        grad_branch_ = Mat::Zero(B, W);
        row_a_ = Row::Zero(W);
        row_b_ = Row::Zero(W);
    }

    Mat& weight(std::size_t l) { return weight_[l]; }
    Row& bias(std::size_t l) { return bias_[l]; }
    Row& bn_weight(std::size_t l) { return gamma_[l]; }
    Row& bn_bias(std::size_t l) { return beta_[l]; }
    const Mat& weight_grad(std::size_t l) const { return weight_grad_[l]; }
    const Row& bias_grad(std::size_t l) const { return bias_grad_[l]; }
    const Row& bn_weight_grad(std::size_t l) const { return gamma_grad_[l]; }
    const Row& bn_bias_grad(std::size_t l) const { return beta_grad_[l]; }
    const Row& running_mean(std::size_t l) const { return running_mean_[l]; }
    const Row& running_var(std::size_t l) const { return running_var_[l]; }

    // Forward and backward: returns the loss, leaves every parameter's gradient in place.
    T forward_backward(const Mat& x, const Mat& target) {
        return w_.residual ? residual_pass(x, target) : plain_pass(x, target);
    }

    void sgd_step(T lr) {
        for (std::size_t l = 0; l < weight_.size(); ++l) {
            weight_[l].noalias() -= lr * weight_grad_[l];
            bias_[l].noalias() -= lr * bias_grad_[l];
        }
        for (std::size_t l = 0; l < gamma_.size(); ++l) {
            gamma_[l].noalias() -= lr * gamma_grad_[l];
            beta_[l].noalias() -= lr * beta_grad_[l];
        }
    }

private:
    std::size_t last() const { return weight_.size() - 1; }

    // out = in W^T + b
    void linear(const Mat& in, std::size_t l, Mat& out) {
        out.noalias() = in * weight_[l].transpose();
        out.rowwise() += bias_[l];
    }

    // Gradients of layer l's weight and bias from the gradient of its output.
    void linear_param_grads(const Mat& in, const Mat& grad_out, std::size_t l) {
        weight_grad_[l].noalias() = grad_out.transpose() * in;
        bias_grad_[l].noalias() = grad_out.colwise().sum();
    }

    // MSE with mean reduction: loss and d loss / d out, written into grad_.
    T mse(const Mat& target) {
        grad_ = out_ - target;
        const T scale = T(1) / static_cast<T>(grad_.size());
        const T loss = grad_.squaredNorm() * scale;
        grad_ *= T(2) * scale;
        return loss;
    }

    // Training-mode batch norm of `in` into normalised_[l] (x-hat, before gamma and beta, kept
    // for the backward pass) and `out` (gamma * x-hat + beta); updates the running statistics
    // as PyTorch does (unbiased variance).
    void batch_norm(const Mat& in, std::size_t l, Mat& out) {
        const auto B = static_cast<T>(in.rows());
        Row& mean = row_a_;
        Row& var = row_b_;
        mean.noalias() = in.colwise().sum() / B;
        Mat& xhat = normalised_[l];
        xhat = in.rowwise() - mean;
        var.noalias() = xhat.colwise().squaredNorm() / B;
        Row& inv_std = inv_std_[l];
        inv_std = (var.array() + bn_eps).rsqrt().matrix();
        xhat.array().rowwise() *= inv_std.array();
        out = (xhat.array().rowwise() * gamma_[l].array()).rowwise() + beta_[l].array();
        running_mean_[l] = (T(1) - bn_momentum) * running_mean_[l] + bn_momentum * mean;
        running_var_[l] =
            (T(1) - bn_momentum) * running_var_[l] + (bn_momentum * B / (B - T(1))) * var;
    }

    // Gamma's and beta's gradients from d out; then, if wanted, d in (in place in `grad`):
    // dx = inv_std / B * (B dxh - sum dxh - xh sum(dxh xh)), with dxh = gamma * d out.
    void batch_norm_backward(Mat& grad, std::size_t l, bool input_grad) {
        const Mat& xhat = normalised_[l];
        beta_grad_[l].noalias() = grad.colwise().sum();
        gamma_grad_[l] = (grad.array() * xhat.array()).colwise().sum();
        if (!input_grad) return;
        const auto B = static_cast<T>(grad.rows());
        // sum(dxh) = gamma * sum(d out), sum(dxh * xh) = gamma * sum(d out * xh)
        Row& sum_dxh = row_a_;
        Row& sum_dxh_xh = row_b_;
        sum_dxh = (beta_grad_[l].array() * gamma_[l].array()).matrix();
        sum_dxh_xh = (gamma_grad_[l].array() * gamma_[l].array()).matrix();
        grad = ((grad.array().rowwise() * (gamma_[l].array() * B)).rowwise() - sum_dxh.array() -
                xhat.array().rowwise() * sum_dxh_xh.array())
                   .rowwise() *
               (inv_std_[l].array() / B);
    }

    T plain_pass(const Mat& x, const Mat& target) {
        // Forward: pre_[l] = in W_l^T + b_l, activated_[l] = relu([bn](pre_[l])).
        const Mat* in = &x;
        for (std::size_t l = 0; l < last(); ++l) {
            linear(*in, l, pre_[l]);
            if (w_.batch_norm) {
                batch_norm(pre_[l], l, activated_[l]);
                activated_[l] = activated_[l].cwiseMax(T(0));
            } else {
                activated_[l] = pre_[l].cwiseMax(T(0));
            }
            in = &activated_[l];
        }
        linear(*in, last(), out_);
        const T loss = mse(target);

        // Backward: grad_ holds d loss / d (output of layer l).
        for (std::size_t l = last();; --l) {
            const Mat& layer_in = l == 0 ? x : activated_[l - 1];
            linear_param_grads(layer_in, grad_, l);
            if (l == 0) break;
            grad_branch_.noalias() = grad_ * weight_[l];
            // relu' is 1 where the activation is positive (its input was positive).
            grad_ = (activated_[l - 1].array() > T(0)).select(grad_branch_, T(0));
            if (w_.batch_norm) batch_norm_backward(grad_, l - 1, true);
        }
        return loss;
    }

    T residual_pass(const Mat& x, const Mat& target) {
        // Forward: pre_[l] is block l's input h_l; activated_[l] = relu([bn](h_l));
        // h_{l+1} = h_l + activated_[l] W_l^T + b_l.
        pre_[0] = x;
        for (std::size_t l = 0; l < last(); ++l) {
            if (w_.batch_norm) {
                batch_norm(pre_[l], l, activated_[l]);
                activated_[l] = activated_[l].cwiseMax(T(0));
            } else {
                activated_[l] = pre_[l].cwiseMax(T(0));
            }
            linear(activated_[l], l, pre_[l + 1]);
            pre_[l + 1] += pre_[l];
        }
        linear(pre_[last()], last(), out_);
        const T loss = mse(target);

        // Backward: grad_ holds d loss / d h_{l+1}; the skip path passes it on unchanged and
        // the branch adds its own part.
        linear_param_grads(pre_[last()], grad_, last());
        grad_branch_.noalias() = grad_ * weight_[last()];
        grad_.swap(grad_branch_);
        for (std::size_t l = last(); l-- > 0;) {
            linear_param_grads(activated_[l], grad_, l);
            // Block 0's input is the data: no gradient for it, but its batch norm has parameters.
            if (l == 0 && !w_.batch_norm) break;
            grad_branch_.noalias() = grad_ * weight_[l];
            grad_branch_ = (activated_[l].array() > T(0)).select(grad_branch_, T(0));
            if (w_.batch_norm) batch_norm_backward(grad_branch_, l, l > 0);
            if (l == 0) break;
            grad_ += grad_branch_;
        }
        return loss;
    }

    Workload w_;
    std::vector<Mat> weight_, weight_grad_;
    std::vector<Row> bias_, bias_grad_;
    std::vector<Mat> pre_, normalised_, activated_;
    std::vector<Row> gamma_, beta_, gamma_grad_, beta_grad_, inv_std_, running_mean_, running_var_;
    Mat out_, grad_, grad_branch_;
    Row row_a_, row_b_;  // per-feature scratch for batch norm
};

}  // namespace gradscope::bench
