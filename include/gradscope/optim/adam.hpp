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

#include "grouped_optimizer.hpp"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace gradscope {

// AdamBetas is in param_group.hpp, where a group's options need it too.

// Adam's and AdamW's options: one shape, in torch.optim's keyword order. The two differ only in
// how weight decay is applied (see the top of this file) and in its default, which is
// PyTorch's: 0 for Adam, 1e-2 for AdamW.
template <bool DecoupledWeightDecay>
struct BasicAdamOptions {
    double lr = 1e-3;
    AdamBetas betas = {};
    double eps = 1e-8;
    double weight_decay = DecoupledWeightDecay ? 1e-2 : 0.0;
    bool amsgrad = false;
};

using AdamOptions = BasicAdamOptions<false>;
using AdamWOptions = BasicAdamOptions<true>;

namespace detail {

// Adam, with weight decay as an L2 term (Adam) or decoupled from the gradient (AdamW).
template <class T, bool Decoupled>
class BasicAdam : public GroupedOptimizer<T, BasicAdam<T, Decoupled>, BasicAdamOptions<Decoupled>> {
    using Base = GroupedOptimizer<T, BasicAdam<T, Decoupled>, BasicAdamOptions<Decoupled>>;
    friend Base;

public:
    using Options = BasicAdamOptions<Decoupled>;
    using Base::Base;
    static constexpr const char* kind = Decoupled ? "AdamW" : "Adam";

private:
    void step_group(std::size_t group, const Options& o) {
        const double beta1 = o.betas.beta1;
        const double beta2 = o.betas.beta2;
        const T b1 = static_cast<T>(beta1);
        const T b2 = static_cast<T>(beta2);
        const T one_minus_b1 = static_cast<T>(1.0 - beta1);
        const T one_minus_b2 = static_cast<T>(1.0 - beta2);
        const T eps = static_cast<T>(o.eps);
        const T decay = static_cast<T>(o.weight_decay);
        const T shrink = static_cast<T>(1.0 - o.lr * o.weight_decay);
        const bool amsgrad = o.amsgrad;
        const bool l2 = !Decoupled && o.weight_decay != 0.0;
        const bool decoupled_decay = Decoupled && o.weight_decay != 0.0;
        const double lr = o.lr;

        this->for_each_param_with_grad(group, [&](MatrixView<T> p, ConstMatrixView<T> grad,
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

    static HyperParameters to_hyper(const Options& o) {
        return {
            {"lr", o.lr},   {"beta1", o.betas.beta1},         {"beta2", o.betas.beta2},
            {"eps", o.eps}, {"weight_decay", o.weight_decay}, {"amsgrad", o.amsgrad ? 1.0 : 0.0}};
    }

    static std::vector<std::string> buffers(const Options& o) {
        if (o.amsgrad) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
        return {"exp_avg", "exp_avg_sq"};
    }

    static Options from_hyper(const HyperParameters& h) {
        return Options{
            .lr = hyper_parameter(h, "lr"),
            .betas = {.beta1 = hyper_parameter(h, "beta1"), .beta2 = hyper_parameter(h, "beta2")},
            .eps = hyper_parameter(h, "eps"),
            .weight_decay = hyper_parameter(h, "weight_decay"),
            .amsgrad = hyper_flag(kind, h, "amsgrad")};
    }

    static void validate(const Options& o) {
        check_non_negative(kind, "lr", o.lr);
        check_unit_interval_open(kind, "beta1 (betas.beta1)", o.betas.beta1);
        check_unit_interval_open(kind, "beta2 (betas.beta2)", o.betas.beta2);
        check_positive(kind, "eps", o.eps);
        check_non_negative(kind, "weight_decay", o.weight_decay);
        if (Decoupled && o.lr * o.weight_decay > 1.0) {
            // Each step multiplies the weights by 1 - lr * weight_decay; below 0 it would flip
            // their sign instead of shrinking them.
            throw value_error(std::string(kind) + ": lr * weight_decay must be <= 1, got lr " +
                              number_text(o.lr) + " * weight_decay " + number_text(o.weight_decay) +
                              " = " + number_text(o.lr * o.weight_decay));
        }
        check_fits<T>(kind, "lr", o.lr);
        check_fits<T>(kind, "eps", o.eps);
        check_fits<T>(kind, "weight_decay", o.weight_decay);
    }
};

}  // namespace detail

// Adam(params, options), or Adam(groups, defaults): see grouped_optimizer.hpp.
template <class T>
class Adam final : public detail::BasicAdam<T, false> {
public:
    using detail::BasicAdam<T, false>::BasicAdam;
};

// Adam with decoupled weight decay (PyTorch's AdamW, and its Adam(decoupled_weight_decay=True)).
template <class T>
class AdamW final : public detail::BasicAdam<T, true> {
public:
    using detail::BasicAdam<T, true>::BasicAdam;
};

}  // namespace gradscope
