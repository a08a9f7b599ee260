// Adam and AdamW: torch.optim.Adam and torch.optim.AdamW's algorithms, step for step.
//
//   Adam:  g = grad + weight_decay * p            (L2 penalty folded into the gradient)
//   AdamW: p = p * (1 - lr * weight_decay), g = grad   (decoupled weight decay, Loshchilov
//          and Hutter 2019: the decay does not pass through the adaptive scaling)
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g^2
//   v_max = max(v_max, v)                          (amsgrad only; then v_max replaces v below)
//   p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//
// t is the parameter's own step count. eps is added after the bias-corrected square root, as
// PyTorch does, so it means the same thing at every step.
#pragma once

#include "optimizer.hpp"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace gradscope {

struct AdamBetas {
    double beta1 = 0.9;    // decay of the running mean of the gradient
    double beta2 = 0.999;  // decay of the running mean of its square
};

struct AdamOptions {
    double lr = 1e-3;
    AdamBetas betas = {};
    double eps = 1e-8;
    double weight_decay = 0.0;  // L2: added to the gradient
    bool amsgrad = false;
};

struct AdamWOptions {
    double lr = 1e-3;
    AdamBetas betas = {};
    double eps = 1e-8;
    double weight_decay = 1e-2;  // decoupled: shrinks the weights directly
    bool amsgrad = false;
};

namespace detail {

// What Adam and AdamW share; `decoupled` picks how weight decay is applied.
template <class T>
class AdamBase : public Optimizer<T> {
public:
    [[nodiscard]] double lr() const override { return options_.lr; }
    void set_lr(double lr) override {
        require_non_negative(this->name(), "lr", lr);
        options_.lr = lr;
    }

    void step() override {
        const double beta1 = options_.betas.beta1;
        const double beta2 = options_.betas.beta2;
        const T b1 = static_cast<T>(beta1);
        const T b2 = static_cast<T>(beta2);
        const T one_minus_b1 = static_cast<T>(1.0 - beta1);
        const T one_minus_b2 = static_cast<T>(1.0 - beta2);
        const T eps = static_cast<T>(options_.eps);
        const T decay = static_cast<T>(options_.weight_decay);
        const T shrink = static_cast<T>(1.0 - options_.lr * options_.weight_decay);
        const bool amsgrad = options_.amsgrad;
        const bool l2 = !decoupled_ && options_.weight_decay != 0.0;
        const bool decoupled_decay = decoupled_ && options_.weight_decay != 0.0;
        const double lr = options_.lr;

        this->for_each_param_with_grad([&](MatrixView<T> p, ConstMatrixView<T> grad,
                                           typename Optimizer<T>::ParamState& state) {
            const auto t = static_cast<double>(state.step);
            const T step_size = static_cast<T>(lr / (1.0 - std::pow(beta1, t)));
            const T correction2_sqrt = static_cast<T>(std::sqrt(1.0 - std::pow(beta2, t)));
            auto m = state.buffers[0].array();
            auto v = state.buffers[1].array();

            if (decoupled_decay) p.array() *= shrink;
            if (l2) {
                // The decayed gradient is an expression, evaluated where it is used: no
                // matrix-sized temporary. p is not written until the last line.
                const auto g = grad.array() + decay * p.array();
                m = b1 * m + one_minus_b1 * g;
                v = b2 * v + one_minus_b2 * g.square();
            } else {
                const auto g = grad.array();
                m = b1 * m + one_minus_b1 * g;
                v = b2 * v + one_minus_b2 * g.square();
            }
            if (amsgrad) {
                auto v_max = state.buffers[2].array();
                v_max = v_max.max(v);
                p.array() -= step_size * (m / (v_max.sqrt() / correction2_sqrt + eps));
            } else {
                p.array() -= step_size * (m / (v.sqrt() / correction2_sqrt + eps));
            }
        });
    }

protected:
    AdamBase(const char* name, bool decoupled, std::vector<Tensor<T>> params,
             const AdamOptions& options)
        : Optimizer<T>(name, std::move(params)), options_(options), decoupled_(decoupled) {
        validate(options_);
    }

    [[nodiscard]] HyperParameters hyper_parameters() const override {
        return {{"lr", options_.lr},
                {"beta1", options_.betas.beta1},
                {"beta2", options_.betas.beta2},
                {"eps", options_.eps},
                {"weight_decay", options_.weight_decay},
                {"amsgrad", options_.amsgrad ? 1.0 : 0.0}};
    }

    [[nodiscard]] std::vector<std::string> check_hyper_parameters(
        const HyperParameters& candidate) const override {
        const AdamOptions options = from_hyper_parameters(candidate);
        validate(options);
        if (options.amsgrad) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
        return {"exp_avg", "exp_avg_sq"};
    }

    void set_hyper_parameters(const HyperParameters& checked) override {
        options_ = from_hyper_parameters(checked);
    }

    AdamOptions options_;

private:
    AdamOptions from_hyper_parameters(const HyperParameters& h) const {
        return AdamOptions{
            .lr = hyper_parameter(h, "lr"),
            .betas = {.beta1 = hyper_parameter(h, "beta1"), .beta2 = hyper_parameter(h, "beta2")},
            .eps = hyper_parameter(h, "eps"),
            .weight_decay = hyper_parameter(h, "weight_decay"),
            .amsgrad = hyper_flag(this->name(), h, "amsgrad")};
    }

    void validate(const AdamOptions& o) const {
        const char* name = this->name();
        require_non_negative(name, "lr", o.lr);
        require_unit_interval_open(name, "beta1 (betas.beta1)", o.betas.beta1);
        require_unit_interval_open(name, "beta2 (betas.beta2)", o.betas.beta2);
        require_non_negative(name, "eps", o.eps);
        require_non_negative(name, "weight_decay", o.weight_decay);
    }

    bool decoupled_;
};

}  // namespace detail

template <class T>
class Adam final : public detail::AdamBase<T> {
public:
    Adam(std::vector<Tensor<T>> params, AdamOptions options = {})
        : detail::AdamBase<T>("Adam", false, std::move(params), options) {}

    [[nodiscard]] const AdamOptions& options() const noexcept { return this->options_; }
};

template <class T>
class AdamW final : public detail::AdamBase<T> {
public:
    AdamW(std::vector<Tensor<T>> params, AdamWOptions options = {})
        : detail::AdamBase<T>("AdamW", true, std::move(params), as_adam(options)) {}

    [[nodiscard]] AdamWOptions options() const noexcept {
        const AdamOptions& o = this->options_;
        return {.lr = o.lr, .betas = o.betas, .eps = o.eps, .weight_decay = o.weight_decay,
                .amsgrad = o.amsgrad};
    }

private:
    static AdamOptions as_adam(const AdamWOptions& o) {
        return {.lr = o.lr, .betas = o.betas, .eps = o.eps, .weight_decay = o.weight_decay,
                .amsgrad = o.amsgrad};
    }
};

}  // namespace gradscope
