// What a layer's per-sample gradients are made of, captured through its module hooks: its
// input [B x in] and the gradient reaching its output dL/dz [B x out]. For a Linear, sample i's
// own gradient is g_i = outer(delta_i, a_i) for the weight and delta_i for the bias, delta_i =
// d(l_i)/dz_i (Note [Per-sample gradients of a Linear]); for a LayerNorm it is delta_i o xhat_i
// for the scale and delta_i for the shift, xhat_i the normalised input row. diag::
// GradientMonitor's per-sample mode and PerSampleClipper both read them from here.
//
// Note [Per-sample gradients of a Linear]
// l_i is sample i's own loss term. With Reduction::mean the loss is (1/B) sum_i l_i, so
// delta_i = B times row i of dL/dz; with Reduction::sum it is row i itself. Then
//   |g_i|^2 = |delta_i|^2 (|a_i|^2 + 1)     (the 1 when the layer has a bias),
// and any sum over samples of c_i g_i is one product, (diag(c) dL/dz)^T a, with no per-sample
// matrix. "mean" must be a mean over the batch's samples: cross_entropy without class weights,
// or an element-wise loss (mse_loss, ...) whose l_i is then the mean over sample i's outputs.
// A class-weighted mean divides by the weights' sum, not B, and is not the mean assumed here.
// The rows are a split of the batch gradient into samples only when the layer ran once in the
// forward (captured: exactly one output gradient since its last forward with gradients on)
// and nothing between the samples couples them (batch norm does; layer norm normalises each
// row by itself and does not).
#pragma once

#include "../core/matrix.hpp"
#include "../core/tensor.hpp"
#include "loss_reduction.hpp"
#include "module.hpp"

#include <cstddef>

namespace gradscope::detail {

template <class T>
struct SampleCapture {
    std::size_t grads = 0;  // output gradients received since the last forward with gradients
    Matrix<T> input;        // a [B x in] of the last forward with gradients on
    Matrix<T> delta;        // dL/dz [B x out] (to_sample_deltas makes it delta_i by rows)

    // One output gradient for the last forward, with one row per input row.
    [[nodiscard]] bool complete() const noexcept {
        return grads == 1 && input.rows() > 0 && input.rows() == delta.rows();
    }

    // dL/dz to the rows delta_i = d(l_i)/dz_i (Note [Per-sample gradients of a Linear]).
    void to_sample_deltas(Reduction loss_reduction) {
        if (loss_reduction == Reduction::mean) delta *= static_cast<T>(delta.rows());
    }
};

// Keeps `layer`'s input and output gradient in *capture(), a callable returning the
// SampleCapture<T>* to fill (looked up at each call, so that its owner may move it), or nullptr
// when this pass is not wanted (the capture then costs no copy). A forward without gradients
// (evaluation under NoGradGuard) is not kept: backward cannot follow it.
template <class T, class GetCapture>
void capture_samples(Module<T>& layer, ScopedHooks& hooks, GetCapture capture) {
    hooks.add(layer.register_forward_hook(
        [capture](Module<T>&, const Tensor<T>& in, const Tensor<T>& out) {
            if (!out.requires_grad()) return;
            SampleCapture<T>* c = capture();
            if (c == nullptr) return;
            c->input = in.value();
            c->grads = 0;
        }));
    hooks.add(layer.register_output_grad_hook([capture](Module<T>&, MatrixView<T> g) {
        SampleCapture<T>* c = capture();
        if (c == nullptr) return;
        ++c->grads;
        c->delta = g;
    }));
}

}  // namespace gradscope::detail
