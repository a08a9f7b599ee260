// The per-sample mode's arithmetic: from what a layer's hooks captured (its input and dL/dz,
// nn/per_sample.hpp) to the reductions the statistics need (PerSampleGradients in
// layer_statistics.hpp), with no per-sample gradient materialised. GradientMonitor owns one
// SampleReducer per watched layer, made by the maker its per-sample options hold, and calls
// reduce() when the step closes.
//
// Two layouts of a sample's gradient, delta_i = d(l_i)/dz_i being its output-gradient row:
//   outer (Linear):            g_i = (outer(delta_i, a_i), delta_i)   for (weight, bias)
//   elementwise (LayerNorm):   g_i = (delta_i o xhat_i, delta_i)      for (scale, shift)
// For the outer layout,
//   |g_i|^2 = |delta_i|^2 (|a_i|^2 + 1)                  (the 1 with a bias)
//   sum_i g_ij^2 = (Delta o Delta)^T (A o A)             the GSNR's second moment, one product
//   g_bar = (1/B) Delta^T A                              one product, or the weight's gradient
//                                                        when that is this pass's alone (below)
//   g_i^T g_bar = (1/B) sum_l (delta_i.delta_l)(a_i.a_l + 1), or row i of A G_W^T + 1 g_b^T
//                 dotted with delta_i.
// The inner products g_i^T g_bar are taken in whichever of two exact forms costs fewer
// multiply-adds: through the samples' Gram matrices Delta Delta^T and A A^T (symmetric, so each
// is a rank-k update of half a B x B matrix: B^2 (in + out) / 2), or through the mean gradient
// (B in out, plus, in the count, a product for g_bar when the GSNR has not made it, although
// the weight's gradient usually saves that one: below). The Gram form also gives |g_bar|^2 =
// (1/B) sum_i g_i^T g_bar, so without the GSNR it needs no mean gradient at all.
// After the usual zero_grad, forward, backward, the weight's gradient already is B g_bar (sum)
// or g_bar (mean): the monitor takes it from there once a check of Freivalds' kind (1977) has
// confirmed it, G r = (1/B) Delta^T (A r) within rounding for a fixed random vector r, which
// costs O(in out + B (in + out)) instead of a product. Accumulated gradients (two backward
// passes without zero_grad), a penalty on the weight in the loss or a hook that changed the
// gradient fail the check, and then the product is formed: the statistics always see the mean
// of the samples' own gradients.
// For the elementwise layout every quantity is a row or column reduction of Delta o Xhat and
// Delta ([B x n]): cheap next to the layers around it.
#pragma once

#include "../core/matrix.hpp"
#include "../core/ops/normalization.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "../nn/loss_reduction.hpp"
#include "../nn/per_sample.hpp"
#include "gradient_noise.hpp"
#include "layer_statistics.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <memory>
#include <vector>

namespace gradscope::diag {

namespace detail {

enum class SampleLayout {
    outer,        // Linear: g_i = outer(delta_i, a_i) for the weight
    elementwise,  // LayerNorm: g_i = delta_i o xhat_i for the scale
};

// What the monitor sees of a layer's per-sample reductions: the capture its hooks fill, and the
// reductions of the step. PerSampleReduction below is the one implementation; the monitor names
// only this interface, so that a program which never turns per-sample mode on does not compile
// the reductions (PerSampleOptions::reducer).
template <class T>
class SampleReducer : public gradscope::detail::SampleCapture<T> {
public:
    SampleReducer() = default;
    SampleReducer(const SampleReducer&) = delete;
    SampleReducer& operator=(const SampleReducer&) = delete;
    virtual ~SampleReducer() = default;

    // The reductions of this step's per-sample gradients; the spans and views point into this
    // object and stay valid until the next reduce(). `weight` is the layer's weight, whose
    // gradient may stand for g_bar (the header's comment).
    virtual PerSampleGradients<T> reduce(Reduction loss_reduction, bool gsnr,
                                         const Tensor<T>& weight) = 0;
};

// Makes the reducer of one layer: its layout, whether it has a bias, a LayerNorm's eps.
template <class T>
using SampleReducerMaker = std::unique_ptr<SampleReducer<T>> (*)(SampleLayout layout, bool bias,
                                                                 double eps);

template <class T>
std::unique_ptr<SampleReducer<T>> make_sample_reducer(SampleLayout layout, bool bias, double eps);

}  // namespace detail

// GradientMonitor<T>::Options::per_sample, written in place:
// `.per_sample = {.enabled = true, .loss_reduction = Reduction::sum}`.
template <class T>
struct PerSampleOptions {
    bool enabled = false;
    // The reduction of the loss backward starts from: mean or sum (nn/per_sample.hpp).
    Reduction loss_reduction = Reduction::mean;
    // The GSNR needs every parameter's second moment over the batch, and the mean gradient: per
    // Linear, two products the size of its weight gradient, most of the mode's cost (docs/
    // PERFORMANCE.md). Off, gsnr and gsnr_parameters are not measured and the rest is unchanged.
    bool gsnr = true;
    // Measure the steps 0, N, 2N, ...; on the others the layers' inputs are not even copied and
    // the per-sample statistics are not measured. Cockpit schedules its instruments the same way.
    std::size_t every = 1;
    // The code of the reductions, taken where per-sample options are written: compilers
    // instantiate a default member initialiser only where it is used, so a program that never
    // writes `.per_sample = {...}` never compiles the reductions, about a quarter of the compile
    // of a small header-only program with a monitor (docs/PERFORMANCE.md, "What a program
    // compiles"). The monitor's default options hold none, and reject `enabled` without it. Not
    // for setting by hand.
    detail::SampleReducerMaker<T> reducer = &detail::make_sample_reducer<T>;
};

namespace detail {

// One layer's captured batch and the buffers its reductions reuse from step to step (an Eigen
// matrix or a std::vector keeps its allocation while its size does not change).
template <class T>
class PerSampleReduction final : public SampleReducer<T> {
public:
    PerSampleReduction(SampleLayout layout, bool bias, double eps = 0.0)
        : layout_(layout), bias_(bias), eps_(eps) {}

    PerSampleGradients<T> reduce(Reduction loss_reduction, bool gsnr,
                                 const Tensor<T>& weight) override {
        this->to_sample_deltas(loss_reduction);
        if (layout_ == SampleLayout::outer) {
            // g_bar is the weight's gradient times this (the header's comment).
            const T gradient_scale =
                loss_reduction == Reduction::sum ? T(1) / static_cast<T>(batch()) : T(1);
            reduce_outer(gsnr, weight, gradient_scale);
        } else {
            reduce_elementwise(gsnr);
        }
        sort_norms();
        deviations();
        // Buffers a step did not fill keep their storage (no allocation next time) but are
        // not shown: the GSNR's parts without the GSNR, the bias parts without a bias.
        const bool bias = bias_ && gsnr;
        return PerSampleGradients<T>{.sq_norms = sq_norms_,
                                     .sorted_norms = sorted_norms_,
                                     .sq_deviations = sq_deviations_,
                                     .dot_deviations = dot_deviations_,
                                     .mean_sq_norm = mean_sq_,
                                     .mean_weight = gsnr ? view_of(mean_weight_) : empty(),
                                     .mean_bias = bias ? view_of(mean_bias_) : empty(),
                                     .second_weight = gsnr ? view_of(second_weight_) : empty(),
                                     .second_bias = bias ? view_of(second_bias_) : empty(),
                                     .has_gsnr = gsnr};
    }

    // Whether the last reduce() that formed g_bar's weight part took it from the weight's
    // gradient rather than forming the product (for tests: both give the same numbers).
    [[nodiscard]] bool mean_taken_from_gradient() const noexcept { return mean_from_gradient_; }

private:
    using Column = Eigen::Array<T, Eigen::Dynamic, 1>;

    [[nodiscard]] Index batch() const { return this->input.rows(); }

    void reduce_outer(bool gsnr, const Tensor<T>& weight, T gradient_scale) {
        const Matrix<T>& a = this->input;
        const Matrix<T>& d = this->delta;
        const Index b = batch(), in = a.cols(), out = d.cols();
        const T inv_batch = T(1) / static_cast<T>(b);
        input_sq_ = a.rowwise().squaredNorm().array();
        delta_sq_ = d.rowwise().squaredNorm().array();
        sq_norms_.resize(static_cast<std::size_t>(b));
        for (Index i = 0; i < b; ++i) {
            sq_norms_[static_cast<std::size_t>(i)] =
                static_cast<double>(delta_sq_(i)) *
                (static_cast<double>(input_sq_(i)) + (bias_ ? 1.0 : 0.0));
        }
        if (gsnr) {
            mean_weight_from_product_or_gradient(weight, gradient_scale);
            squared_input_ = a.array().square().matrix();
            squared_delta_ = d.array().square().matrix();
            second_weight_.noalias() = inv_batch * (squared_delta_.transpose() * squared_input_);
            if (bias_) {
                mean_bias_ = inv_batch * d.colwise().sum();
                second_bias_ = inv_batch * squared_delta_.colwise().sum();
            }
        }
        // Multiply-adds of g_i^T g_bar in each form (the header's comment).
        const double gram = 0.5 * double(b) * double(b) * double(in + out);
        const double product = double(b) * double(in) * double(out);
        if (gram < (gsnr ? product : 2.0 * product)) {
            dots_through_gram();
        } else {
            if (!gsnr) {
                mean_weight_from_product_or_gradient(weight, gradient_scale);
                if (bias_) mean_bias_ = inv_batch * d.colwise().sum();
            }
            dots_through_mean();
        }
    }

    void mean_weight_from_product_or_gradient(const Tensor<T>& weight, T gradient_scale) {
        mean_from_gradient_ = mean_weight_from_gradient(weight, gradient_scale);
        if (mean_from_gradient_) return;
        mean_weight_.noalias() =
            (T(1) / static_cast<T>(batch())) * (this->delta.transpose() * this->input);
    }

    // g_bar's weight part from the weight's gradient, when the check in the header's comment
    // holds: for each output j, |(G r)_j - (1/B)(Delta^T A r)_j| within 4 eps (B + in + 2) times
    // (1/B)(|Delta|^T |A| |r|)_j, the rounding bound of the two ways of forming it. False when it
    // does not (or there is no gradient): the caller forms the product.
    bool mean_weight_from_gradient(const Tensor<T>& weight, T gradient_scale) {
        if (!weight.defined() || !weight.has_grad()) return false;
        const ConstMatrixView<T> g = weight.grad();
        const Matrix<T>& a = this->input;
        const Matrix<T>& d = this->delta;
        const Index b = batch(), in = a.cols();
        if (g.rows() != d.cols() || g.cols() != in) return false;
        if (probe_.rows() != in) {
            constexpr std::uint64_t probe_seed = 0x5eed'f7e1;
            probe_ = Rng(probe_seed).normal_matrix<T>(in, 1);
            abs_probe_ = probe_.cwiseAbs();
        }
        probe_input_.noalias() = a * probe_;
        probe_exact_.noalias() = d.transpose() * probe_input_;
        probe_gradient_.noalias() = g * probe_;
        abs_input_ = a.cwiseAbs();
        abs_delta_ = d.cwiseAbs();
        probe_input_.noalias() = abs_input_ * abs_probe_;
        probe_bound_.noalias() = abs_delta_.transpose() * probe_input_;
        const T inv_batch = T(1) / static_cast<T>(b);
        const T tolerance = T(4) * std::numeric_limits<T>::epsilon() * static_cast<T>(b + in + 2);
        for (Index j = 0; j < g.rows(); ++j) {
            const T difference =
                std::abs(gradient_scale * probe_gradient_(j) - inv_batch * probe_exact_(j));
            if (!(difference <= tolerance * inv_batch * probe_bound_(j))) return false;
        }
        mean_weight_ = gradient_scale * g;
        return true;
    }

    // g_i^T g_bar = (1/B) sum_l (Delta Delta^T)_il (A A^T + 1)_il from the lower triangles: the
    // element-wise product H of two lower-triangular halves holds each pair l < i once, so row
    // i's full sum is row i of H plus column i of H less the diagonal, which both hold. Then
    // |g_bar|^2 = (1/B) sum_i g_i^T g_bar.
    void dots_through_gram() {
        const Index b = batch();
        gram_delta_.setZero(b, b);
        gram_delta_.template selfadjointView<Eigen::Lower>().rankUpdate(this->delta);
        gram_input_.setZero(b, b);
        gram_input_.template selfadjointView<Eigen::Lower>().rankUpdate(this->input);
        if (bias_) gram_input_.array() += T(1);  // the upper half meets zeros in gram_delta_
        gram_delta_.array() *= gram_input_.array();
        dots_ = (gram_delta_.rowwise().sum() + gram_delta_.colwise().sum().transpose()).array() -
                gram_delta_.diagonal().array();
        dots_ /= static_cast<T>(b);
        mean_sq_ = static_cast<double>(dots_.template cast<double>().sum()) / double(b);
    }

    // g_i^T g_bar = delta_i^T (G_W a_i + g_b): row i of A G_W^T + 1 g_b^T dotted with delta_i.
    void dots_through_mean() {
        projected_.noalias() = this->input * mean_weight_.transpose();
        if (bias_) projected_.rowwise() += mean_bias_.row(0);
        dots_ = (projected_.array() * this->delta.array()).rowwise().sum();
        mean_sq_ = static_cast<double>(mean_weight_.squaredNorm()) +
                   (bias_ ? static_cast<double>(mean_bias_.squaredNorm()) : 0.0);
    }

    // LayerNorm: the scale's per-sample gradients are the rows of Delta o Xhat.
    void reduce_elementwise(bool gsnr) {
        const Index b = batch(), n = this->input.cols();
        const T inv_batch = T(1) / static_cast<T>(b);
        xhat_.resize(b, n);
        invstd_.resize(b, 1);
        gradscope::detail::normalise_rows(ConstMatrixView<T>(this->input.data(), b, n), eps_,
                                          MatrixView<T>(xhat_.data(), b, n),
                                          MatrixView<T>(invstd_.data(), b, 1));
        scale_rows_ = (this->delta.array() * xhat_.array()).matrix();
        const Matrix<T>& d = this->delta;
        sq_norms_.resize(static_cast<std::size_t>(b));
        for (Index i = 0; i < b; ++i) {
            sq_norms_[static_cast<std::size_t>(i)] =
                static_cast<double>(scale_rows_.row(i).squaredNorm()) +
                static_cast<double>(d.row(i).squaredNorm());
        }
        mean_weight_ = inv_batch * scale_rows_.colwise().sum();
        mean_bias_ = inv_batch * d.colwise().sum();
        if (gsnr) {
            second_weight_ = inv_batch * scale_rows_.array().square().matrix().colwise().sum();
            second_bias_ = inv_batch * d.array().square().matrix().colwise().sum();
        }
        dots_.resize(b);
        dots_.matrix().noalias() = scale_rows_ * mean_weight_.transpose();
        dots_.matrix().noalias() += d * mean_bias_.transpose();
        mean_sq_ = static_cast<double>(mean_weight_.squaredNorm()) +
                   static_cast<double>(mean_bias_.squaredNorm());
    }

    void sort_norms() {
        sorted_norms_.resize(sq_norms_.size());
        for (std::size_t i = 0; i < sq_norms_.size(); ++i) {
            sorted_norms_[i] = std::sqrt(sq_norms_[i]);
        }
        std::sort(sorted_norms_.begin(), sorted_norms_.end());
    }

    // |g_i - g_bar|^2 and (g_i - g_bar)^T g_bar from |g_i|^2, |g_bar|^2 and g_i^T g_bar
    // (sample_deviation).
    void deviations() {
        const std::size_t b = sq_norms_.size();
        const double rounding =
            batch_rounding(b, static_cast<double>(std::numeric_limits<T>::epsilon()));
        sq_deviations_.resize(b);
        dot_deviations_.resize(b);
        for (std::size_t i = 0; i < b; ++i) {
            const double dot = static_cast<double>(dots_(static_cast<Index>(i)));
            const SampleDeviation d = sample_deviation(sq_norms_[i], dot, mean_sq_, rounding);
            sq_deviations_[i] = d.sq_norm;
            dot_deviations_[i] = d.dot;
        }
    }

    static ConstMatrixView<T> view_of(const Matrix<T>& m) {
        return ConstMatrixView<T>(m.data(), m.rows(), m.cols());
    }
    static ConstMatrixView<T> empty() { return ConstMatrixView<T>(nullptr, 0, 0); }

    SampleLayout layout_ = SampleLayout::outer;
    bool bias_ = false;
    double eps_ = 0.0;                 // the LayerNorm's
    bool mean_from_gradient_ = false;  // what mean_weight_from_gradient found, last time asked
    Matrix<T> probe_, abs_probe_;      // r and |r| [in x 1]
    Matrix<T> probe_input_, probe_exact_, probe_gradient_, probe_bound_;
    Matrix<T> abs_input_, abs_delta_;
    Column input_sq_, delta_sq_;  // |a_i|^2, |delta_i|^2
    Matrix<T> squared_input_, squared_delta_;
    Matrix<T> gram_delta_, gram_input_;
    Matrix<T> projected_;
    Matrix<T> xhat_, invstd_, scale_rows_;
    Matrix<T> mean_weight_, mean_bias_, second_weight_, second_bias_;
    Column dots_;  // g_i^T g_bar
    double mean_sq_ = 0.0;
    std::vector<double> sq_norms_, sorted_norms_, sq_deviations_, dot_deviations_;
};

template <class T>
std::unique_ptr<SampleReducer<T>> make_sample_reducer(SampleLayout layout, bool bias, double eps) {
    return std::make_unique<PerSampleReduction<T>>(layout, bias, eps);
}

}  // namespace detail
}  // namespace gradscope::diag
