// An Elman recurrent network: h_t = phi(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), unrolled
// over a sequence so that backward runs through time. Parameter names follow PyTorch's
// RNNCell (weight_ih, weight_hh, bias_ih, bias_hh). phi is tanh unless chosen otherwise.
#pragma once

#include "../core/activations.hpp"
#include "../core/ops/arithmetic.hpp"
#include "../core/ops/columns.hpp"
#include "../core/ops/linalg.hpp"
#include "../core/random.hpp"
#include "module.hpp"

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>

namespace gradscope {

template <class T, ElementwiseFunction<T> Act = Tanh>
class ElmanCell : public Module<T> {
public:
    // PyTorch's initialisation: every weight and bias uniform on +-1/sqrt(hidden).
    ElmanCell(Index input_size, Index hidden_size, Rng& rng, Act act = {})
        : input_(input_size), hidden_(hidden_size), act_(act) {
        if (input_size <= 0 || hidden_size <= 0) {
            throw value_error("ElmanCell: sizes must be positive, got input " +
                              std::to_string(input_size) + ", hidden " +
                              std::to_string(hidden_size));
        }
        detail::check_dimensions("ElmanCell", hidden_size, std::max(input_size, hidden_size));
        detail::validate_function(act);
        const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_size));
        auto draw = [&](Index rows, Index cols) {
            return Tensor<T>::parameter(rng.uniform_matrix<T>(rows, cols, -bound, bound));
        };
        w_ih_ = this->register_parameter("weight_ih", draw(hidden_size, input_size),
                                         TensorRole::weight);
        w_hh_ = this->register_parameter("weight_hh", draw(hidden_size, hidden_size),
                                         TensorRole::weight);
        b_ih_ = this->register_parameter("bias_ih", draw(1, hidden_size), TensorRole::bias);
        b_hh_ = this->register_parameter("bias_hh", draw(1, hidden_size), TensorRole::bias);
    }

    // One step: the next hidden state from input x [B x input] and state h [B x hidden].
    Tensor<T> step(const Tensor<T>& x, const Tensor<T>& h) {
        if (x.cols() != input_ || h.cols() != hidden_ || x.rows() != h.rows()) {
            throw shape_error("ElmanCell(" + std::to_string(input_) + " -> " +
                              std::to_string(hidden_) + ") expects x [B x " +
                              std::to_string(input_) + "] and h [B x " + std::to_string(hidden_) +
                              "], got " + to_string(x.shape()) + " and " + to_string(h.shape()));
        }
        return elementwise(linear(x, w_ih_, b_ih_) + linear(h, w_hh_, b_hh_), act_);
    }

    // A step from the zero state.
    Tensor<T> forward_impl(const Tensor<T>& x) override {
        return step(x, Tensor<T>::zeros(x.rows(), hidden_));
    }

    [[nodiscard]] std::string type_name() const override {
        return std::string("ElmanCell(") + Act::name + ")";
    }
    [[nodiscard]] std::string extra_repr() const override {
        return "input=" + std::to_string(input_) + ", hidden=" + std::to_string(hidden_);
    }
    [[nodiscard]] Index input_size() const noexcept { return input_; }
    [[nodiscard]] Index hidden_size() const noexcept { return hidden_; }
    [[nodiscard]] Tensor<T>& weight_ih() noexcept { return w_ih_; }
    [[nodiscard]] Tensor<T>& weight_hh() noexcept { return w_hh_; }
    [[nodiscard]] Tensor<T>& bias_ih() noexcept { return b_ih_; }
    [[nodiscard]] Tensor<T>& bias_hh() noexcept { return b_hh_; }

private:
    Index input_, hidden_;
    Act act_;
    Tensor<T> w_ih_, w_hh_, b_ih_, b_hh_;
};

template <class T, ElementwiseFunction<T> Act = Tanh>
class RNN : public Module<T> {
public:
    RNN(Index input_size, Index hidden_size, Rng& rng, Act act = {}) {
        cell_ = this->register_module(
            "cell", std::make_shared<ElmanCell<T, Act>>(input_size, hidden_size, rng, act));
    }

    // Every hidden state h_1..h_T for inputs x_1..x_T, starting from h0 (zeros if empty).
    std::vector<Tensor<T>> unroll(std::span<const Tensor<T>> inputs, Tensor<T> h0 = {}) {
        if (inputs.empty()) throw value_error("RNN: an empty sequence");
        Tensor<T> h = h0.defined() ? h0 : Tensor<T>::zeros(inputs[0].rows(), cell_->hidden_size());
        std::vector<Tensor<T>> states;
        states.reserve(inputs.size());
        for (const Tensor<T>& x : inputs) {
            h = cell_->step(x, h);
            states.push_back(h);
        }
        return states;
    }
    std::vector<Tensor<T>> unroll(const std::vector<Tensor<T>>& inputs, Tensor<T> h0 = {}) {
        return unroll(std::span<const Tensor<T>>(inputs), std::move(h0));
    }

    // A sequence packed as [B x (T * input)] (time steps side by side): the last state.
    Tensor<T> forward_impl(const Tensor<T>& x) override {
        const Index width = cell_->input_size();
        if (x.cols() == 0 || x.cols() % width != 0) {
            throw shape_error("RNN: a packed sequence must have a multiple of " +
                              std::to_string(width) + " columns, got " + to_string(x.shape()));
        }
        std::vector<Tensor<T>> steps;
        for (Index t = 0; t < x.cols() / width; ++t)
            steps.push_back(slice_cols(x, t * width, width));
        return unroll(steps).back();
    }

    [[nodiscard]] std::string type_name() const override { return "RNN"; }
    [[nodiscard]] ElmanCell<T, Act>& cell() noexcept { return *cell_; }

private:
    std::shared_ptr<ElmanCell<T, Act>> cell_;
};

}  // namespace gradscope
