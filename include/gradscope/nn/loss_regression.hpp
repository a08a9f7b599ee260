// Regression losses of the difference d = prediction - target, one fused node each: squared
// (mse_loss), absolute (l1_loss), Huber (huber_loss) and smooth L1 (smooth_l1_loss), with
// PyTorch's definitions. Huber and smooth L1 agree up to a factor: huber(d; delta) =
// delta * smooth_l1(d; beta = delta).
#pragma once

#include "loss_reduction.hpp"

namespace gradscope {

struct HuberLossOptions {
    Reduction reduction = Reduction::mean;
    double delta = 1.0;  // quadratic for |d| <= delta, linear with slope delta beyond
};

struct SmoothL1LossOptions {
    Reduction reduction = Reduction::mean;
    double beta = 1.0;  // quadratic (d^2 / 2 beta) for |d| < beta, |d| - beta/2 beyond; 0: L1
};

namespace detail {

enum class RegressionKind { squared, absolute, huber, smooth_l1 };

enum class Want { value, derivative };

// One of two expressions, chosen at compile time, so that `use` is instantiated once per loss.
template <Want want, class V, class Dv>
const auto& either(const V& value, const Dv& derivative) {
    if constexpr (want == Want::value) {
        return value;
    } else {
        return derivative;
    }
}

// Calls `use` with the loss of each difference, or (Want::derivative) with its derivative, as
// an array expression of d so that nothing is allocated; each loss's value and derivative stand
// side by side. The kind is a template argument so that a program instantiates only the losses it
// calls. The derivative is continuous at the kinks of Huber and smooth L1 (both sides give the
// same slope there), and L1's is sign(d) with sign(0) = 0, as PyTorch's. Smooth L1 with beta = 0
// is recorded as RegressionKind::absolute (see smooth_l1_loss).
template <Want want, RegressionKind kind, class D, class Use>
void with_regression(double parameter, const D& d, Use&& use) {
    using T = typename D::Scalar;
    const T k = static_cast<T>(parameter);
    if constexpr (kind == RegressionKind::absolute) {
        use(either<want>(d.abs(), d.sign()));
    } else if constexpr (kind == RegressionKind::squared) {
        use(either<want>(d * d, T(2) * d));
    } else if constexpr (kind == RegressionKind::huber) {
        use(either<want>((d.abs() <= k).select(T(0.5) * d * d, k * (d.abs() - T(0.5) * k)),
                         d.max(-k).min(k)));
    } else {  // smooth_l1 with beta > 0
        use(either<want>((d.abs() < k).select(T(0.5) * d * d / k, d.abs() - T(0.5) * k),
                         (d / k).max(T(-1)).min(T(1))));
    }
}

// The same with the kind known only at run time (the second-order rules, which serve every kind).
template <Want want, class D, class Use>
void with_regression(RegressionKind kind, double parameter, const D& d, Use&& use) {
    switch (kind) {
        case RegressionKind::squared:
            return with_regression<want, RegressionKind::squared>(parameter, d, use);
        case RegressionKind::absolute:
            return with_regression<want, RegressionKind::absolute>(parameter, d, use);
        case RegressionKind::huber:
            return with_regression<want, RegressionKind::huber>(parameter, d, use);
        case RegressionKind::smooth_l1:
            return with_regression<want, RegressionKind::smooth_l1>(parameter, d, use);
    }
}

struct RegressionAttr {
    LossAttr loss;
    RegressionKind kind;
};

// Inputs: prediction, target. Saved: prediction - target. Reads neither input's value.
template <class T, RegressionKind kind>
void regression_backward(Node<T>& node) {
    const auto& attr = node.template attr<RegressionAttr>();
    const auto d = std::as_const(node.saved).view().array();
    with_regression<Want::derivative, kind>(attr.loss.parameter, d, [&](const auto& local) {
        accumulate_loss_grad(node, *node.inputs[0], local, T(1));
        accumulate_loss_grad(node, *node.inputs[1], local, T(-1));
    });
}

template <class T, RegressionKind kind>
Tensor<T> regression_loss(const char* op, double parameter, const Tensor<T>& prediction,
                          const Tensor<T>& target, Reduction reduction) {
    Node<T>& p = prediction.node();
    Node<T>& t = target.node();
    if (p.shape() != t.shape()) {
        throw_shapes(op, "prediction and target differ in shape", p.shape(), t.shape());
    }
    NodePtr<T> node = record<T>(op, loss_output_shape(reduction, p.shape()), {&p, &t},
                                &regression_backward<T, kind>, reads_nothing);
    const LossAttr loss{reduction_scale(reduction, p.shape().size()), reduction == Reduction::none,
                        parameter, 0.0, 0.0};
    node->set_attr(RegressionAttr{loss, kind});
    node->saved.resize(p.shape());
    MatrixView<T> d = node->saved.view();
    d = value_of(p) - value_of(t);
    with_regression<Want::value, kind>(
        parameter, std::as_const(d).array(),
        [&](const auto& elements) { reduce_into<T>(node->value.view(), elements, loss); });
    return finish(std::move(node));
}

}  // namespace detail

// Squared differences: (p - t)^2 per element.
template <class T>
Tensor<T> mse_loss(const Tensor<T>& prediction, const Tensor<T>& target,
                   Reduction reduction = Reduction::mean) {
    return detail::regression_loss<T, detail::RegressionKind::squared>("mse_loss", 0.0, prediction,
                                                                       target, reduction);
}

// Absolute differences: |p - t| per element.
template <class T>
Tensor<T> l1_loss(const Tensor<T>& prediction, const Tensor<T>& target,
                  Reduction reduction = Reduction::mean) {
    return detail::regression_loss<T, detail::RegressionKind::absolute>("l1_loss", 0.0, prediction,
                                                                        target, reduction);
}

// Huber: d^2 / 2 for |d| <= delta, delta (|d| - delta / 2) beyond; delta > 0.
template <class T>
Tensor<T> huber_loss(const Tensor<T>& prediction, const Tensor<T>& target,
                     const HuberLossOptions& options = {}) {
    detail::check_positive("huber_loss", "delta", options.delta);
    return detail::regression_loss<T, detail::RegressionKind::huber>(
        "huber_loss", options.delta, prediction, target, options.reduction);
}

// Smooth L1: d^2 / (2 beta) for |d| < beta, |d| - beta / 2 beyond; beta >= 0, and beta = 0 is
// the L1 loss (PyTorch's special case, which avoids dividing by zero).
template <class T>
Tensor<T> smooth_l1_loss(const Tensor<T>& prediction, const Tensor<T>& target,
                         const SmoothL1LossOptions& options = {}) {
    detail::check_non_negative("smooth_l1_loss", "beta", options.beta);
    if (options.beta == 0.0) {
        return detail::regression_loss<T, detail::RegressionKind::absolute>(
            "smooth_l1_loss", 0.0, prediction, target, options.reduction);
    }
    return detail::regression_loss<T, detail::RegressionKind::smooth_l1>(
        "smooth_l1_loss", options.beta, prediction, target, options.reduction);
}

}  // namespace gradscope
