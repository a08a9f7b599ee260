// Linear: y = x W^T + b, with W stored [out x in] as in PyTorch.
#pragma once

#include "../core/ops/linalg.hpp"
#include "../core/random.hpp"
#include "init.hpp"
#include "module.hpp"

#include <cmath>
#include <string>

namespace gradscope {

template <class T>
struct LinearOptions {
    bool bias = true;
    // Fills the weight given fan-in and fan-out. Empty: PyTorch's default, uniform on
    // +-1/sqrt(fan_in) (Kaiming-uniform with a = sqrt(5)).
    init::Initializer<T> weight_init = {};
    // Empty: PyTorch's default, uniform on +-1/sqrt(fan_in).
    init::Initializer<T> bias_init = {};
};

template <class T>
class Linear : public Module<T> {
public:
    Linear(Index in_features, Index out_features, Rng& rng, const LinearOptions<T>& options = {})
        : in_(in_features), out_(out_features) {
        if (in_features <= 0 || out_features <= 0) {
            throw value_error(
                "Linear: features must be positive, got in=" + std::to_string(in_features) +
                ", out=" + std::to_string(out_features));
        }
        detail::check_dimensions("Linear", out_features, in_features);
        const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
        Matrix<T> w(out_features, in_features);
        if (options.weight_init) {
            options.weight_init(MatrixView<T>(w.data(), w.rows(), w.cols()), in_features,
                                out_features, rng);
        } else {
            w = rng.uniform_matrix<T>(out_features, in_features, -bound, bound);
        }
        weight_ = this->register_parameter("weight", Tensor<T>::parameter(w), TensorRole::weight);
        if (options.bias) {
            Matrix<T> b(1, out_features);
            if (options.bias_init) {
                options.bias_init(MatrixView<T>(b.data(), 1, out_features), in_features,
                                  out_features, rng);
            } else {
                b = rng.uniform_matrix<T>(1, out_features, -bound, bound);
            }
            bias_ = this->register_parameter("bias", Tensor<T>::parameter(b), TensorRole::bias);
        }
    }

    Tensor<T> forward_impl(const Tensor<T>& x) override {
        if (x.cols() != in_) {
            throw shape_error("Linear(" + std::to_string(in_) + " -> " + std::to_string(out_) +
                              ") expects inputs [batch x " + std::to_string(in_) + "], got " +
                              to_string(x.shape()));
        }
        return bias_.defined() ? linear(x, weight_, bias_) : linear(x, weight_);
    }

    [[nodiscard]] std::string type_name() const override { return "Linear"; }
    [[nodiscard]] std::string extra_repr() const override {
        return "in=" + std::to_string(in_) + ", out=" + std::to_string(out_) +
               ", bias=" + (bias_.defined() ? "true" : "false");
    }

    [[nodiscard]] Tensor<T>& weight() noexcept { return weight_; }
    // An empty handle when the layer has no bias.
    [[nodiscard]] Tensor<T>& bias() noexcept { return bias_; }
    [[nodiscard]] bool has_bias() const noexcept { return bias_.defined(); }
    [[nodiscard]] Index in_features() const noexcept { return in_; }
    [[nodiscard]] Index out_features() const noexcept { return out_; }

private:
    Index in_;
    Index out_;
    Tensor<T> weight_;
    Tensor<T> bias_;
};

}  // namespace gradscope
