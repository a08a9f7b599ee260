// Residual: y = skip(x) + s * F(x). The skip is the identity, or a learned projection (a
// Linear without bias) when F changes the width. The branch scale s (1/sqrt(depth), say)
// and zero-initialising the branch's last layer both exist because a deep stack of plain
// residual blocks adds up variance block after block and explodes.
#pragma once

#include "../core/ops/arithmetic.hpp"
#include "linear.hpp"
#include "module.hpp"

#include <memory>
#include <string>

namespace gradscope {

struct ResidualOptions {
    double branch_scale = 1.0;
    // Zero every parameter of the branch's last parametrised module (its final Linear, say),
    // so that the block starts as the identity.
    bool zero_init_last = false;
};

template <class T>
class Residual : public Module<T> {
public:
    // Same width in and out: the skip is the identity.
    explicit Residual(std::shared_ptr<Module<T>> branch, const ResidualOptions& options = {})
        : scale_(options.branch_scale) {
        // A NaN or infinite scale would turn every output into NaN without a word. A negative
        // or zero one is arithmetic a caller may mean (a zero scale switches the branch off).
        detail::check_finite("Residual", "branch_scale", options.branch_scale);
        branch_ = this->register_module("branch", std::move(branch));
        if (options.zero_init_last) zero_last_parametrised();
    }

    // F maps in_features to out_features; a projection joins the skip when they differ.
    Residual(std::shared_ptr<Module<T>> branch, Index in_features, Index out_features, Rng& rng,
             const ResidualOptions& options = {})
        : Residual(std::move(branch), options) {
        if (in_features <= 0 || out_features <= 0) {
            throw value_error(
                "Residual: features must be positive, got in=" + std::to_string(in_features) +
                ", out=" + std::to_string(out_features));
        }
        if (in_features != out_features) {
            projection_ = this->register_module(
                "projection", std::make_shared<Linear<T>>(in_features, out_features, rng,
                                                          LinearOptions<T>{.bias = false}));
        }
    }

    Tensor<T> forward_impl(const Tensor<T>& x) override {
        const Tensor<T> f = (*branch_)(x);
        const Tensor<T> skip = projection_ ? (*projection_)(x) : x;
        if (skip.shape() != f.shape()) {
            throw shape_error("Residual: the branch maps " + to_string(x.shape()) + " to " +
                              to_string(f.shape()) + " but the skip gives " +
                              to_string(skip.shape()) +
                              "; give the input and output widths to add a projection");
        }
        return scale_ == 1.0 ? skip + f : skip + f * scale_;
    }

    [[nodiscard]] std::string type_name() const override { return "Residual"; }
    [[nodiscard]] std::string extra_repr() const override {
        return "scale=" + detail::number_text(scale_);
    }
    [[nodiscard]] double branch_scale() const noexcept { return scale_; }
    [[nodiscard]] Module<T>& branch() const noexcept { return *branch_; }

private:
    void zero_last_parametrised() {
        Module<T>* last = nullptr;
        for (auto& [path, module] : branch_->named_modules()) {
            if (!module->own_parameters().empty()) last = module;
        }
        if (last == nullptr) {
            throw value_error("Residual: zero_init_last needs a branch with parameters");
        }
        for (auto [name, p] : last->own_parameters()) p.data().setZero();
    }

    std::shared_ptr<Module<T>> branch_;
    std::shared_ptr<Linear<T>> projection_;
    double scale_;
};

}  // namespace gradscope
