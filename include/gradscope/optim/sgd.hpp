// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay:
// torch.optim.SGD's algorithm, step for step.
//
//   g = grad + weight_decay * p
//   buf = g                                       (the first step of a parameter)
//   buf = momentum * buf + (1 - dampening) * g    (after)
//   g = g + momentum * buf  if nesterov, else  g = buf     (only when momentum != 0)
//   p = p - lr * g
#pragma once

#include "optimizer.hpp"

#include <string>
#include <utility>
#include <vector>

namespace gradscope {

struct SGDOptions {
    double lr = 1e-3;
    double momentum = 0.0;
    double dampening = 0.0;
    double weight_decay = 0.0;
    bool nesterov = false;
};

template <class T>
class SGD final : public Optimizer<T> {
public:
    SGD(ParameterList<T> params, SGDOptions options = {})
        : Optimizer<T>("SGD", std::move(params)), options_(options) {
        validate(options_);
    }

    [[nodiscard]] const SGDOptions& options() const noexcept { return options_; }

    [[nodiscard]] double lr() const override { return options_.lr; }
    void set_lr(double lr) override {
        SGDOptions candidate = options_;
        candidate.lr = lr;
        validate(candidate);
        options_ = candidate;
    }

    void step() override {
        const T lr = static_cast<T>(options_.lr);
        const T momentum = static_cast<T>(options_.momentum);
        const T keep = static_cast<T>(1.0 - options_.dampening);
        const T decay = static_cast<T>(options_.weight_decay);
        const bool nesterov = options_.nesterov;
        const bool use_momentum = options_.momentum != 0.0;

        this->for_each_param_with_grad([&](MatrixView<T> p, ConstMatrixView<T> grad,
                                           typename Optimizer<T>::ParamState& state) {
            // The decayed gradient is an expression, re-evaluated where it is used, so that no
            // matrix-sized temporary is made (PyTorch's d_p = grad.add(p, alpha=weight_decay)).
            const auto g = grad.array() + decay * p.array();
            if (!use_momentum) {
                // Without decay (the common case) the update skips the decay term's
                // multiply-add per element instead of multiplying p by zero.
                if (decay == T(0)) {
                    p.array() -= lr * grad.array();
                } else {
                    p.array() -= lr * g;
                }
                return;
            }
            auto buf = state.buffers[0].array();
            if (state.step == 1) {
                buf = g;
            } else {
                buf = momentum * buf + keep * g;
            }
            if (nesterov) {
                p.array() -= lr * (g + momentum * buf);
            } else {
                p.array() -= lr * buf;
            }
        });
    }

protected:
    [[nodiscard]] HyperParameters hyper_parameters() const override {
        return {{"lr", options_.lr},
                {"momentum", options_.momentum},
                {"dampening", options_.dampening},
                {"weight_decay", options_.weight_decay},
                {"nesterov", options_.nesterov ? 1.0 : 0.0}};
    }

    [[nodiscard]] std::vector<std::string> check_hyper_parameters(
        const HyperParameters& candidate) const override {
        const SGDOptions options = from_hyper_parameters(candidate);
        validate(options);
        if (options.momentum == 0.0) return {};
        return {"momentum_buffer"};
    }

    void set_hyper_parameters(const HyperParameters& checked) override {
        options_ = from_hyper_parameters(checked);
    }

private:
    static SGDOptions from_hyper_parameters(const HyperParameters& h) {
        return SGDOptions{.lr = detail::hyper_parameter(h, "lr"),
                          .momentum = detail::hyper_parameter(h, "momentum"),
                          .dampening = detail::hyper_parameter(h, "dampening"),
                          .weight_decay = detail::hyper_parameter(h, "weight_decay"),
                          .nesterov = detail::hyper_flag("SGD", h, "nesterov")};
    }

    static void validate(const SGDOptions& o) {
        detail::check_non_negative("SGD", "lr", o.lr);
        detail::check_unit_interval_open("SGD", "momentum", o.momentum);
        detail::check_unit_interval_closed("SGD", "dampening", o.dampening);
        detail::check_non_negative("SGD", "weight_decay", o.weight_decay);
        if (o.nesterov && (o.momentum <= 0.0 || o.dampening != 0.0)) {
            throw value_error("SGD: nesterov needs momentum > 0 and dampening = 0, got momentum " +
                              detail::number_text(o.momentum) + ", dampening " +
                              detail::number_text(o.dampening));
        }
        detail::check_fits<T>("SGD", "lr", o.lr);
        detail::check_fits<T>("SGD", "weight_decay", o.weight_decay);
    }

    SGDOptions options_;
};

}  // namespace gradscope
