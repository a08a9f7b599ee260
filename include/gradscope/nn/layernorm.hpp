// LayerNorm over the features of each sample: no batch statistics, so training and
// evaluation behave alike and a batch of one is fine.
#pragma once

#include "../core/ops/normalization.hpp"
#include "module.hpp"

#include <string>

namespace gradscope {

struct LayerNormOptions {
    double eps = 1e-5;
    bool affine = true;
};

template <class T>
class LayerNorm : public Module<T> {
public:
    explicit LayerNorm(Index features, const LayerNormOptions& options = {})
        : features_(features), options_(options) {
        if (features <= 0) {
            throw value_error("LayerNorm: features must be positive, got " +
                              std::to_string(features));
        }
        detail::check_positive("LayerNorm", "eps", options.eps);
        const Matrix<T> ones = Matrix<T>::Ones(1, features), zeros = Matrix<T>::Zero(1, features);
        if (options.affine) {
            gamma_ = this->register_parameter("weight", Tensor<T>::parameter(ones),
                                              TensorRole::norm_scale);
            beta_ = this->register_parameter("bias", Tensor<T>::parameter(zeros),
                                             TensorRole::norm_shift);
        } else {
            gamma_ = Tensor<T>::constant(ones);
            beta_ = Tensor<T>::constant(zeros);
        }
    }

    Tensor<T> forward_impl(const Tensor<T>& x) override {
        if (x.cols() != features_) {
            throw shape_error("LayerNorm(" + std::to_string(features_) +
                              ") expects inputs [batch x " + std::to_string(features_) + "], got " +
                              to_string(x.shape()));
        }
        return layer_norm(x, gamma_, beta_, options_.eps);
    }

    [[nodiscard]] std::string type_name() const override { return "LayerNorm"; }
    [[nodiscard]] std::string extra_repr() const override {
        return "features=" + std::to_string(features_) +
               ", eps=" + detail::number_text(options_.eps) +
               ", affine=" + (options_.affine ? "true" : "false");
    }
    [[nodiscard]] double eps() const noexcept { return options_.eps; }
    [[nodiscard]] bool affine() const noexcept { return options_.affine; }
    [[nodiscard]] Tensor<T>& weight() noexcept { return gamma_; }
    [[nodiscard]] Tensor<T>& bias() noexcept { return beta_; }

private:
    Index features_;
    LayerNormOptions options_;
    Tensor<T> gamma_, beta_;
};

}  // namespace gradscope
