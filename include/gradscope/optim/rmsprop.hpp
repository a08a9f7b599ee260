// RMSprop (Hinton's lecture 6e; centered variant from Graves 2013): torch.optim.RMSprop's
// algorithm, step for step.
//
//   g = grad + weight_decay * p
//   s = alpha * s + (1 - alpha) * g^2
//   centered:  a = alpha * a + (1 - alpha) * g,  d = sqrt(max(s - a^2, 0)) + eps
//   else:      d = sqrt(s) + eps
//   momentum > 0:  buf = momentum * buf + g / d,  p = p - lr * buf
//   else:          p = p - lr * g / d
#pragma once

#include "grouped_optimizer.hpp"

#include <string>
#include <utility>
#include <vector>

namespace gradscope {

struct RMSpropOptions {
    double lr = 1e-2;
    double alpha = 0.99;  // decay of the running mean of the squared gradient
    double eps = 1e-8;
    double weight_decay = 0.0;
    double momentum = 0.0;
    bool centered = false;  // divide by the estimated variance rather than the raw second moment
};

template <class T>
class RMSprop final : public detail::GroupedOptimizer<T, RMSprop<T>, RMSpropOptions> {
    using Base = detail::GroupedOptimizer<T, RMSprop<T>, RMSpropOptions>;
    friend Base;

public:
    // RMSprop(params, options), or RMSprop(groups, defaults): see grouped_optimizer.hpp.
    using Base::Base;
    static constexpr const char* kind = "RMSprop";

private:
    void step_group(std::size_t group, const RMSpropOptions& o) {
        const T lr = static_cast<T>(o.lr);
        const T alpha = static_cast<T>(o.alpha);
        const T one_minus_alpha = static_cast<T>(1.0 - o.alpha);
        const T eps = static_cast<T>(o.eps);
        const T decay = static_cast<T>(o.weight_decay);
        const T momentum = static_cast<T>(o.momentum);
        const bool centered = o.centered;
        const bool use_momentum = o.momentum > 0.0;

        this->for_each_param_with_grad(group, [&](MatrixView<T> p, ConstMatrixView<T> grad,
                                                  typename Optimizer<T>::ParamState& state) {
            // Expressions, evaluated where used: no matrix-sized temporaries. p is written last.
            const auto g = grad.array() + decay * p.array();
            auto square_avg = state.buffers[0].array();
            square_avg = alpha * square_avg + one_minus_alpha * g.square();
            if (centered) {
                auto grad_avg = state.buffers[use_momentum ? 2 : 1].array();
                grad_avg = alpha * grad_avg + one_minus_alpha * g;
                // s - a^2 is a variance, >= 0 in exact arithmetic; rounding can take it a few
                // ulps below 0 once the gradient is nearly constant, where sqrt would give NaN.
                update(p, g, (square_avg - grad_avg.square()).max(T(0)).sqrt() + eps, state, lr,
                       momentum, use_momentum);
            } else {
                update(p, g, square_avg.sqrt() + eps, state, lr, momentum, use_momentum);
            }
        });
    }

    static HyperParameters to_hyper(const RMSpropOptions& o) {
        return {{"lr", o.lr},
                {"alpha", o.alpha},
                {"eps", o.eps},
                {"weight_decay", o.weight_decay},
                {"momentum", o.momentum},
                {"centered", o.centered ? 1.0 : 0.0}};
    }

    template <class Gradient, class Denominator>
    static void update(MatrixView<T> p, const Gradient& g, const Denominator& denominator,
                       typename Optimizer<T>::ParamState& state, T lr, T momentum,
                       bool use_momentum) {
        if (use_momentum) {
            auto buf = state.buffers[1].array();
            buf = momentum * buf + g / denominator;
            p.array() -= lr * buf;
        } else {
            p.array() -= lr * (g / denominator);
        }
    }

    // The buffer order is fixed by this list; step_group() indexes it the same way.
    static std::vector<std::string> buffers(const RMSpropOptions& o) {
        std::vector<std::string> names{"square_avg"};
        if (o.momentum > 0.0) names.emplace_back("momentum_buffer");
        if (o.centered) names.emplace_back("grad_avg");
        return names;
    }

    static RMSpropOptions from_hyper(const HyperParameters& h) {
        return RMSpropOptions{.lr = detail::hyper_parameter(h, "lr"),
                              .alpha = detail::hyper_parameter(h, "alpha"),
                              .eps = detail::hyper_parameter(h, "eps"),
                              .weight_decay = detail::hyper_parameter(h, "weight_decay"),
                              .momentum = detail::hyper_parameter(h, "momentum"),
                              .centered = detail::hyper_flag("RMSprop", h, "centered")};
    }

    static void validate(const RMSpropOptions& o) {
        detail::check_non_negative("RMSprop", "lr", o.lr);
        detail::check_unit_interval_closed("RMSprop", "alpha", o.alpha);
        detail::check_positive("RMSprop", "eps", o.eps);
        detail::check_non_negative("RMSprop", "weight_decay", o.weight_decay);
        detail::check_unit_interval_open("RMSprop", "momentum", o.momentum);
        detail::check_fits<T>("RMSprop", "lr", o.lr);
        detail::check_fits<T>("RMSprop", "eps", o.eps);
        detail::check_fits<T>("RMSprop", "weight_decay", o.weight_decay);
    }
};

}  // namespace gradscope
