// Hessian-vector products of a loss with respect to parameters, exact, by the second-order
// pass of core/second_order.hpp: Hessian<T> for many products at one point, hvp() for one.
#pragma once

#include "../core/second_order.hpp"
#include "../core/tensor.hpp"
#include "loss_second_order.hpp"
#include "module.hpp"

#include <concepts>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace gradscope {

// The Hessian of a scalar loss with respect to some of the tensors it was computed from (the
// parameters), at the point where it was computed: products with it, without ever forming it.
// It holds the loss's recorded graph, so each product runs one tangent forward and one
// backward over it and no forward pass (for a layer, about twice a gradient's matrix products
// more), and a training-mode batch norm's running statistics do not move. Every product is
// at the recorded point: a parameter whose value an op reads and that changed since is refused,
// as a backward would refuse it.
template <class T>
class Hessian {
public:
    // `loss` must be [1x1] and require grad; `wrt` are leaves that require grad.
    Hessian(Tensor<T> loss, std::vector<Tensor<T>> wrt)
        : loss_(std::move(loss)), wrt_(std::move(wrt)) {
        if (!loss_.defined()) throw value_error("Hessian: the loss is an undefined tensor");
        for (std::size_t i = 0; i < wrt_.size(); ++i) {
            if (!wrt_[i].defined()) {
                throw value_error("Hessian: tensor #" + std::to_string(i) + " is undefined");
            }
            size_ += wrt_[i].shape().size();
        }
    }

    // With respect to every parameter of `module`, in named_parameters() order.
    Hessian(Tensor<T> loss, const Module<T>& module)
        : Hessian(std::move(loss), module.parameters()) {}

    // The number of entries of all the tensors together: the Hessian is size() x size().
    [[nodiscard]] Index size() const noexcept { return size_; }
    [[nodiscard]] const std::vector<Tensor<T>>& tensors() const noexcept { return wrt_; }
    [[nodiscard]] T loss() const { return loss_.item(); }

    // H v, with v given per tensor in its shape (an empty matrix for a zero part).
    [[nodiscard]] std::vector<Matrix<T>> product(std::span<const Matrix<T>> direction) {
        run(direction);
        return products_;
    }
    [[nodiscard]] std::vector<Matrix<T>> product(const std::vector<Matrix<T>>& direction) {
        return product(std::span<const Matrix<T>>(direction));
    }

    // H v for v flattened: the tensors in order, each row by row (as Tensor::data() stores it).
    [[nodiscard]] Eigen::Matrix<T, Eigen::Dynamic, 1> product(
        const Eigen::Matrix<T, Eigen::Dynamic, 1>& v) {
        if (v.size() != size_) {
            throw shape_error("Hessian::product: a flat direction of " + std::to_string(v.size()) +
                              " entries for " + std::to_string(size_) + " parameters");
        }
        std::vector<Matrix<T>> parts(wrt_.size());
        Index offset = 0;
        for (std::size_t i = 0; i < wrt_.size(); ++i) {
            const Shape s = wrt_[i].shape();
            parts[i] = Eigen::Map<const Matrix<T>>(v.data() + offset, s.rows, s.cols);
            offset += s.size();
        }
        run(parts);
        Eigen::Matrix<T, Eigen::Dynamic, 1> out(size_);
        offset = 0;
        for (const Matrix<T>& part : products_) {
            Eigen::Map<Matrix<T>>(out.data() + offset, part.rows(), part.cols()) = part;
            offset += part.size();
        }
        return out;
    }

    // The loss's gradient with respect to each tensor (from the last product, or one run now
    // with a zero direction).
    [[nodiscard]] const std::vector<Matrix<T>>& gradient() {
        if (gradients_.empty() && !wrt_.empty()) run(std::vector<Matrix<T>>(wrt_.size()));
        return gradients_;
    }

private:
    void run(std::span<const Matrix<T>> direction) {
        std::vector<Node<T>*> leaves(wrt_.size());
        for (std::size_t i = 0; i < wrt_.size(); ++i) leaves[i] = &wrt_[i].node();
        detail::run_second_order<T>(loss_.node(), leaves, direction, gradients_, products_,
                                    /*retain_graph=*/true, &detail::loss_tangent_rule<T>);
    }

    Tensor<T> loss_;
    std::vector<Tensor<T>> wrt_;
    Index size_ = 0;
    std::vector<Matrix<T>> gradients_;
    std::vector<Matrix<T>> products_;
};

// The gradient and the Hessian-vector product of a loss at the current parameters.
template <class T>
struct HessianVectorProduct {
    T loss = T(0);
    std::vector<Matrix<T>> gradient;  // per tensor of `wrt`
    std::vector<Matrix<T>> product;   // H v, per tensor of `wrt`
};

// One H v: calls `loss_fn()` (which runs the forward pass and returns the [1x1] loss), then one
// second-order pass over its graph, which it then frees; the results go to `out`, whose
// matrices keep their storage from call to call. Like PyTorch's
// torch.autograd.functional.hvp, exact, and with the gradient as a by-product.
template <class T, class LossFn>
requires std::invocable<LossFn&> && std::convertible_to<std::invoke_result_t<LossFn&>, Tensor<T>>
void hvp(LossFn&& loss_fn, const std::vector<Tensor<T>>& wrt, std::span<const Matrix<T>> v,
         HessianVectorProduct<T>& out) {
    const Tensor<T> loss = loss_fn();
    std::vector<Node<T>*> leaves(wrt.size());
    for (std::size_t i = 0; i < wrt.size(); ++i) leaves[i] = &wrt[i].node();
    out.loss = loss.item();
    detail::run_second_order<T>(loss.node(), leaves, v, out.gradient, out.product,
                                /*retain_graph=*/false, &detail::loss_tangent_rule<T>);
}

template <class T, class LossFn>
requires std::invocable<LossFn&> && std::convertible_to<std::invoke_result_t<LossFn&>, Tensor<T>>
    HessianVectorProduct<T> hvp(LossFn&& loss_fn, const std::vector<Tensor<T>>& wrt,
                                std::span<const Matrix<T>> v) {
    HessianVectorProduct<T> out{};
    hvp<T>(std::forward<LossFn>(loss_fn), wrt, v, out);
    return out;
}

template <class T, class LossFn>
requires std::invocable<LossFn&> && std::convertible_to<std::invoke_result_t<LossFn&>, Tensor<T>>
    HessianVectorProduct<T> hvp(LossFn&& loss_fn, const std::vector<Tensor<T>>& wrt,
                                const std::vector<Matrix<T>>& v) {
    return hvp<T>(std::forward<LossFn>(loss_fn), wrt, std::span<const Matrix<T>>(v));
}

// With respect to every parameter of `module`; v in named_parameters() order.
template <class T, class LossFn>
requires std::invocable<LossFn&> && std::convertible_to<std::invoke_result_t<LossFn&>, Tensor<T>>
    HessianVectorProduct<T> hvp(LossFn&& loss_fn, const Module<T>& module,
                                const std::vector<Matrix<T>>& v) {
    return hvp<T>(std::forward<LossFn>(loss_fn), module.parameters(),
                  std::span<const Matrix<T>>(v));
}

namespace detail {
template <class T>
void add_to_grad(Node<T>& leaf, const Matrix<T>& g) {
    if (!leaf.has_grad) {
        leaf.grad.resize(leaf.shape());
        leaf.grad.view() = g;
        leaf.has_grad = true;
    } else {
        leaf.grad.view() += g;
    }
}
}  // namespace detail

// The backward pass of L + (weight / 2) |dL/dwrt|^2, a gradient-norm penalty (Drucker & LeCun
// 1992, "double backpropagation"; Barrett & Dherin 2021 show gradient descent adds such a term
// implicitly). Its gradient is g + weight H g with g = dL/dwrt, so it costs one gradient and one
// H v. Accumulates that into each tensor's gradient as backward() would (hooks, a monitor
// included, do not run: it is not a backward pass) and returns the penalty (weight / 2) |g|^2.
// `loss` must be [1x1]; its graph is freed.
template <class T>
T backward_with_gradient_penalty(const Tensor<T>& loss, const std::vector<Tensor<T>>& wrt,
                                 double weight) {
    detail::check_finite("backward_with_gradient_penalty", "weight", weight);
    Hessian<T> hessian(loss, wrt);
    const std::vector<Matrix<T>> gradient = hessian.gradient();
    const std::vector<Matrix<T>> curvature = hessian.product(gradient);
    double squared_norm = 0.0;
    for (std::size_t i = 0; i < wrt.size(); ++i) {
        squared_norm += gradient[i].template cast<double>().squaredNorm();
        detail::add_to_grad(wrt[i].node(),
                            Matrix<T>(gradient[i] + static_cast<T>(weight) * curvature[i]));
    }
    return static_cast<T>(0.5 * weight * squared_norm);
}

}  // namespace gradscope
