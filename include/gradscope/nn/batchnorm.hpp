// BatchNorm1d, with PyTorch's semantics: training normalises by the batch's mean and biased
// variance and updates running estimates (the running variance is the *unbiased* one) with
// momentum, or with a cumulative average when momentum is none; evaluation normalises by the
// running estimates. Without running statistics (track_running_stats = false) there are no
// running buffers at all, and evaluation normalises by the batch's statistics too.
//
// synchronize_statistics(reducer) makes it PyTorch's SyncBatchNorm: in training the batch is
// split across replicas (data-parallel processes), and the statistics and the backward's sums
// are summed over them through the reducer (core/ops/batch_norm_synced.hpp), so that the
// replicas together normalise as one process normalises the whole batch.
#pragma once

#include "../core/ops/batch_norm_synced.hpp"
#include "../core/ops/normalization.hpp"
#include "module.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace gradscope {

struct BatchNormOptions {
    double eps = 1e-5;
    // running = (1 - momentum) * running + momentum * batch. std::nullopt (PyTorch's None): the
    // cumulative average of every batch so far, momentum = 1 / num_batches_tracked.
    std::optional<double> momentum = 0.1;
    bool affine = true;               // learn gamma and beta; otherwise they stay 1 and 0
    bool track_running_stats = true;  // false: batch statistics in evaluation too, no buffers
};

template <class T>
class BatchNorm1d : public Module<T> {
public:
    explicit BatchNorm1d(Index features, const BatchNormOptions& options = {})
        : features_(features), options_(options) {
        if (features <= 0) {
            throw value_error("BatchNorm1d: features must be positive, got " +
                              std::to_string(features));
        }
        if (options.momentum && !(*options.momentum >= 0.0 && *options.momentum <= 1.0)) {
            detail::throw_value("BatchNorm1d", "momentum must be in [0, 1], got " +
                                                   detail::number_text(*options.momentum));
        }
        detail::check_positive("BatchNorm1d", "eps", options.eps);
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
        if (!options.track_running_stats) return;  // PyTorch registers None: nothing saved
        running_mean_ = this->register_buffer("running_mean", Tensor<T>::constant(zeros),
                                              TensorRole::statistic);
        running_var_ =
            this->register_buffer("running_var", Tensor<T>::constant(ones), TensorRole::statistic);
        batches_tracked_ = this->register_buffer("num_batches_tracked", Tensor<T>::scalar(T(0)),
                                                 TensorRole::counter);
    }

    Tensor<T> forward_impl(const Tensor<T>& x) override {
        if (x.cols() != features_) {
            throw shape_error("BatchNorm1d(" + std::to_string(features_) +
                              ") expects inputs [batch x " + std::to_string(features_) + "], got " +
                              to_string(x.shape()));
        }
        if (!options_.track_running_stats) return normalise_by_batch(x);
        if (!this->is_training()) {
            return batch_norm_eval(x, gamma_, beta_, running_mean_.value(), running_var_.value(),
                                   options_.eps);
        }
        Tensor<T> y = normalise_by_batch(x);
        batches_tracked_.data()(0, 0) += T(1);
        // The count is incremented first, so that with momentum none the first batch replaces
        // the initial (0, 1) estimates entirely: factor 1/1.
        const T m = options_.momentum ? static_cast<T>(*options_.momentum)
                                      : T(1) / batches_tracked_.value()(0, 0);
        const T unbias = static_cast<T>(stats_.count) / static_cast<T>(stats_.count - 1);
        running_mean_.data() = (T(1) - m) * running_mean_.value() + m * stats_.mean;
        running_var_.data() = (T(1) - m) * running_var_.value() + (m * unbias) * stats_.variance;
        return y;
    }

    // From now on, batch statistics are those of the whole batch that `reducer`'s replicas hold
    // between them; nullptr goes back to this replica's rows alone.
    void synchronize_statistics(std::shared_ptr<BatchReducer<T>> reducer) {
        reducer_id_ = reducer ? detail::BatchReducerRegistry<T>::add(reducer) : 0;
        reducer_ = std::move(reducer);
    }
    [[nodiscard]] bool synchronized() const noexcept { return reducer_ != nullptr; }

    [[nodiscard]] std::string type_name() const override { return "BatchNorm1d"; }
    [[nodiscard]] std::string extra_repr() const override {
        return "features=" + std::to_string(features_) +
               ", eps=" + detail::number_text(options_.eps) + ", momentum=" +
               (options_.momentum ? detail::number_text(*options_.momentum) : "none") +
               ", affine=" + (options_.affine ? "true" : "false") +
               (options_.track_running_stats ? "" : ", track_running_stats=false") +
               (reducer_ ? ", synchronized" : "");
    }

    [[nodiscard]] Index features() const noexcept { return features_; }
    [[nodiscard]] const BatchNormOptions& options() const noexcept { return options_; }
    [[nodiscard]] Tensor<T>& weight() noexcept { return gamma_; }
    [[nodiscard]] Tensor<T>& bias() noexcept { return beta_; }
    // The running buffers; a value_error when the layer keeps none (track_running_stats false).
    [[nodiscard]] Tensor<T>& running_mean() { return tracked(running_mean_, "running_mean"); }
    [[nodiscard]] Tensor<T>& running_var() { return tracked(running_var_, "running_var"); }
    [[nodiscard]] Tensor<T>& num_batches_tracked() {
        return tracked(batches_tracked_, "num_batches_tracked");
    }

private:
    Tensor<T> normalise_by_batch(const Tensor<T>& x) {
        if (reducer_) {
            return batch_norm_train_synced(x, gamma_, beta_, options_.eps, stats_, reducer_,
                                           reducer_id_);
        }
        return batch_norm_train(x, gamma_, beta_, options_.eps, stats_);
    }

    Tensor<T>& tracked(Tensor<T>& buffer, const char* name) {
        if (!options_.track_running_stats) {
            detail::throw_value(
                "BatchNorm1d",
                std::string("has no ") + name + ": it was made with track_running_stats = false");
        }
        return buffer;
    }

    Index features_;
    BatchNormOptions options_;
    Tensor<T> gamma_, beta_;
    Tensor<T> running_mean_, running_var_, batches_tracked_;
    BatchStatistics<T> stats_;
    std::shared_ptr<BatchReducer<T>> reducer_;
    std::uint64_t reducer_id_ = 0;
};

}  // namespace gradscope
