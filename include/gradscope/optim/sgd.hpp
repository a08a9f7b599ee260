// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay:
// torch.optim.SGD's algorithm, step for step.
//
//   g = grad + weight_decay * p
//   buf = g                                       (the first step of a parameter)
//   buf = momentum * buf + (1 - dampening) * g    (after)
//   g = g + momentum * buf  if nesterov, else  g = buf     (only when momentum != 0)
//   p = p - lr * g
#pragma once

#include "grouped_optimizer.hpp"

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
class SGD final : public detail::GroupedOptimizer<T, SGD<T>, SGDOptions> {
    using Base = detail::GroupedOptimizer<T, SGD<T>, SGDOptions>;
    friend Base;

public:
    // SGD(params, options), or SGD(groups, defaults): see grouped_optimizer.hpp.
    using Base::Base;
    static constexpr const char* kind = "SGD";

private:
    void step_group(std::size_t group, const SGDOptions& o) {
        const T lr = static_cast<T>(o.lr);
        const T momentum = static_cast<T>(o.momentum);
        const T keep = static_cast<T>(1.0 - o.dampening);
        const T decay = static_cast<T>(o.weight_decay);
        const bool nesterov = o.nesterov;
        const bool use_momentum = o.momentum != 0.0;

        this->for_each_param_with_grad(group, [&](MatrixView<T> p, ConstMatrixView<T> grad,
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

    static HyperParameters to_hyper(const SGDOptions& o) {
        return {{"lr", o.lr},
                {"momentum", o.momentum},
                {"dampening", o.dampening},
                {"weight_decay", o.weight_decay},
                {"nesterov", o.nesterov ? 1.0 : 0.0}};
    }

    static std::vector<std::string> buffers(const SGDOptions& o) {
        if (o.momentum == 0.0) return {};
        return {"momentum_buffer"};
    }

    static SGDOptions from_hyper(const HyperParameters& h) {
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
};

}  // namespace gradscope
