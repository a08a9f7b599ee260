// The templates that the precompiled library (CMake target gradscope::precompiled, sources
// src/precompiled_*.cpp) compiles once, for float and for double.
//
// Why: a header-only template library makes every translation unit compile, at -O2, every
// layer and op it can reach. mlp<float>() can build any layer type, each with virtual functions
// whose vtables (and so whose forward and backward kernels) are emitted with the class, so a
// program that trains a plain ReLU MLP also compiles batch norm, layer norm and dropout.
// Under GRADSCOPE_PRECOMPILED each part's umbrella header (core.hpp, nn.hpp, optim.hpp,
// diag.hpp) ends by including this header and declaring its own list below `extern template`
// (GRADSCOPE_DECLARE_PRECOMPILED), which tells the compiler that those specialisations are
// compiled elsewhere. So a program that includes only the parts it uses parses only those and
// still compiles none of their specialisations. Without GRADSCOPE_PRECOMPILED this header is not
// included and gradscope stays header-only.
//
// The library's sources include gradscope.hpp in precompiled mode, so every specialisation is
// declared `extern` there as well, and each source follows with the definitions (`template`) of
// its own part of the list, by the same macros. So the declarations and the definitions cannot
// drift apart, and the library compiles as several translation units that a parallel build
// spreads over its cores, none of them compiling another's part again.
//
// Only templates for T = float, double and the built-in activations (builtin_activations.inc)
// are listed; member templates (Tensor::constant<Derived>, Sequential::add<M>, ...) and
// templates over user types are still instantiated where they are used. The macros stay
// defined, for the part headers included after this one; all of them start GRADSCOPE_.
#pragma once

#include "core/matrix.hpp"

#define GRADSCOPE_FOR_EACH_ELEMENTWISE_FN(X, KIND, T) \
    X(KIND, T, fn::Exp)                               \
    X(KIND, T, fn::Log)                               \
    X(KIND, T, fn::Sqrt)                              \
    X(KIND, T, fn::Square)                            \
    X(KIND, T, fn::Abs)                               \
    X(KIND, T, fn::Pow)                               \
    X(KIND, T, fn::Clamp)

#define GRADSCOPE_INSTANTIATE_ELEMENTWISE(KIND, T, F) \
    KIND Tensor<T> elementwise<T, F>(const Tensor<T>&, F);

// The graph: tensors, nodes and their pools, and the reverse pass.
#define GRADSCOPE_INSTANTIATE_CORE(KIND, T)                                          \
    KIND class Tensor<T>;                                                            \
    KIND class HookHandle<T>;                                                        \
    KIND class HookList<GradHook<T>>;                                                \
    KIND class NodePtr<T>;                                                           \
    KIND class detail::NodePool<T>;                                                  \
    KIND class BufferPool<T>;                                                        \
    KIND class PooledMatrix<T>;                                                      \
    KIND void detail::run_backward<T>(Node<T>&, ConstMatrixView<T>, bool);           \
    KIND NodePtr<T> detail::record<T>(const char*, Shape, std::span<Node<T>* const>, \
                                      BackwardFn<T>, detail::BackwardReads);         \
    KIND Tensor<T> detail::finish<T>(NodePtr<T>);

// The differentiable ops of core.hpp (core/ops/*.hpp, core/elementwise.hpp).
#define GRADSCOPE_INSTANTIATE_OPS(KIND, T)                                          \
    KIND Tensor<T> add<T>(const Tensor<T>&, const Tensor<T>&);                      \
    KIND Tensor<T> sub<T>(const Tensor<T>&, const Tensor<T>&);                      \
    KIND Tensor<T> mul<T>(const Tensor<T>&, const Tensor<T>&);                      \
    KIND Tensor<T> div<T>(const Tensor<T>&, const Tensor<T>&);                      \
    KIND Tensor<T> neg<T>(const Tensor<T>&);                                        \
    KIND Tensor<T> affine<T>(const Tensor<T>&, double, double);                     \
    KIND Tensor<T> scalar_div<T>(double, const Tensor<T>&);                         \
    KIND Tensor<T> operator+<T>(const Tensor<T>&, const Tensor<T>&);                \
    KIND Tensor<T> operator-<T>(const Tensor<T>&, const Tensor<T>&);                \
    KIND Tensor<T> operator*<T>(const Tensor<T>&, const Tensor<T>&);                \
    KIND Tensor<T> operator/<T>(const Tensor<T>&, const Tensor<T>&);                \
    KIND Tensor<T> operator-<T>(const Tensor<T>&);                                  \
    KIND Tensor<T> operator+<T>(const Tensor<T>&, double);                          \
    KIND Tensor<T> operator+<T>(double, const Tensor<T>&);                          \
    KIND Tensor<T> operator-<T>(const Tensor<T>&, double);                          \
    KIND Tensor<T> operator-<T>(double, const Tensor<T>&);                          \
    KIND Tensor<T> operator*<T>(const Tensor<T>&, double);                          \
    KIND Tensor<T> operator*<T>(double, const Tensor<T>&);                          \
    KIND Tensor<T> operator/<T>(const Tensor<T>&, double);                          \
    KIND Tensor<T> operator/<T>(double, const Tensor<T>&);                          \
    KIND Tensor<T> concat_cols<T>(std::span<const Tensor<T>>);                      \
    KIND Tensor<T> slice_cols<T>(const Tensor<T>&, Index, Index);                   \
    KIND Tensor<T> matmul<T>(const Tensor<T>&, const Tensor<T>&);                   \
    KIND Tensor<T> transpose<T>(const Tensor<T>&);                                  \
    KIND Tensor<T> linear<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&); \
    KIND Tensor<T> linear<T>(const Tensor<T>&, const Tensor<T>&);                   \
    KIND Tensor<T> sum<T>(const Tensor<T>&);                                        \
    KIND Tensor<T> row_sum<T>(const Tensor<T>&);                                    \
    KIND Tensor<T> col_sum<T>(const Tensor<T>&);                                    \
    KIND Tensor<T> mean<T>(const Tensor<T>&);                                       \
    KIND Tensor<T> row_mean<T>(const Tensor<T>&);                                   \
    KIND Tensor<T> col_mean<T>(const Tensor<T>&);                                   \
    KIND Tensor<T> max<T>(const Tensor<T>&);                                        \
    KIND Tensor<T> row_max<T>(const Tensor<T>&);                                    \
    KIND Tensor<T> col_max<T>(const Tensor<T>&);                                    \
    KIND Tensor<T> softmax<T>(const Tensor<T>&);                                    \
    KIND Tensor<T> log_softmax<T>(const Tensor<T>&);                                \
    GRADSCOPE_FOR_EACH_ELEMENTWISE_FN(GRADSCOPE_INSTANTIATE_ELEMENTWISE, KIND, T)

// Modules, the mlp() builder, the losses and the ops only layers use (nn.hpp).
#define GRADSCOPE_INSTANTIATE_NN(KIND, T)                                                       \
    KIND Tensor<T> dropout<T>(const Tensor<T>&, double, Rng&);                                  \
    KIND Tensor<T> batch_norm_train<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,    \
                                       double, BatchStatistics<T>&);                            \
    KIND Tensor<T> layer_norm<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, double); \
    KIND class Module<T>;                                                                       \
    KIND class ActivationLayer<T>;                                                              \
    KIND class ActivationChoice<T>;                                                             \
    KIND class Sequential<T>;                                                                   \
    KIND class Linear<T>;                                                                       \
    KIND class BatchNorm1d<T>;                                                                  \
    KIND class LayerNorm<T>;                                                                    \
    KIND class Dropout<T>;                                                                      \
    KIND class Residual<T>;                                                                     \
    KIND class ElmanCell<T>;                                                                    \
    KIND class RNN<T>;                                                                          \
    KIND class MLP<T>;                                                                          \
    KIND std::shared_ptr<MLP<T>> mlp<T>(const MlpOptions<T>&);                                  \
    KIND Tensor<T> mse_loss<T>(const Tensor<T>&, const Tensor<T>&, Reduction);                  \
    KIND Tensor<T> l1_loss<T>(const Tensor<T>&, const Tensor<T>&, Reduction);                   \
    KIND Tensor<T> huber_loss<T>(const Tensor<T>&, const Tensor<T>&, const HuberLossOptions&);  \
    KIND Tensor<T> smooth_l1_loss<T>(const Tensor<T>&, const Tensor<T>&,                        \
                                     const SmoothL1LossOptions&);                               \
    KIND Tensor<T> cross_entropy<T>(const Tensor<T>&, std::span<const int>,                     \
                                    const CrossEntropyOptions&);                                \
    KIND Tensor<T> cross_entropy<T>(const Tensor<T>&, const std::vector<int>&,                  \
                                    const CrossEntropyOptions&);                                \
    KIND Tensor<T> cross_entropy<T>(const Tensor<T>&, std::span<const int>, Reduction);         \
    KIND Tensor<T> cross_entropy<T>(const Tensor<T>&, const std::vector<int>&, Reduction);      \
    KIND Tensor<T> binary_cross_entropy_with_logits<T>(const Tensor<T>&, const Tensor<T>&,      \
                                                       const BCEWithLogitsOptions&);            \
    KIND Tensor<T> binary_cross_entropy_with_logits<T>(const Tensor<T>&, const Tensor<T>&,      \
                                                       Reduction);

// Optimisers and clipping (optim.hpp).
#define GRADSCOPE_INSTANTIATE_OPTIM(KIND, T)                                          \
    KIND class ParameterList<T>;                                                      \
    KIND class Optimizer<T>;                                                          \
    KIND class detail::GroupedOptimizer<T, SGD<T>, SGDOptions>;                       \
    KIND class SGD<T>;                                                                \
    KIND class detail::GroupedOptimizer<T, detail::BasicAdam<T, false>, AdamOptions>; \
    KIND class detail::GroupedOptimizer<T, detail::BasicAdam<T, true>, AdamWOptions>; \
    KIND class detail::BasicAdam<T, false>;                                           \
    KIND class detail::BasicAdam<T, true>;                                            \
    KIND class Adam<T>;                                                               \
    KIND class AdamW<T>;                                                              \
    KIND class detail::GroupedOptimizer<T, RMSprop<T>, RMSpropOptions>;               \
    KIND class RMSprop<T>;                                                            \
    KIND std::vector<ParamGroup<T>> weight_decay_groups<T>(const Module<T>&);         \
    KIND T clip_grad_norm<T>(std::span<const Tensor<T>>, double, double, bool);       \
    KIND void clip_grad_value<T>(std::span<const Tensor<T>>, double);                 \
    KIND void adaptive_clip_grad<T>(std::span<const Tensor<T>>, double, double);      \
    KIND class PerSampleClipper<T>;

// Gradient-flow diagnostics (diag.hpp).
#define GRADSCOPE_INSTANTIATE_DIAG(KIND, T)                                                    \
    KIND class diag::GradientMonitor<T>;                                                       \
    KIND class diag::detail::PerSampleReduction<T>;                                            \
    KIND std::unique_ptr<diag::detail::SampleReducer<T>> diag::detail::make_sample_reducer<T>( \
        diag::detail::SampleLayout, bool, double);                                             \
    KIND diag::GradientProfile diag::measure_depth<T>(                                         \
        const ActivationChoice<T>&, const init::Initializer<T>&, const diag::DepthSetup&);

// Exact Hessian-vector products (core/second_order.hpp, nn/hessian.hpp): the pass, the rules of
// the built-in ops and losses, and Hessian (nn.hpp).
#define GRADSCOPE_INSTANTIATE_SECOND_ORDER(KIND, T)                                               \
    KIND const TangentRule<T>* detail::builtin_tangent_rule<T>(BackwardFn<T>);                    \
    KIND const TangentRule<T>* detail::loss_tangent_rule<T>(BackwardFn<T>);                       \
    KIND void detail::run_second_order<T>(                                                        \
        Node<T>&, std::span<Node<T>* const>, std::span<const Matrix<T>>, std::vector<Matrix<T>>&, \
        std::vector<Matrix<T>>&, bool, detail::TangentRuleLookup<T>);                             \
    KIND class Hessian<T>;                                                                        \
    KIND T backward_with_gradient_penalty<T>(const Tensor<T>&, const std::vector<Tensor<T>>&,     \
                                             double);

// Curvature, spectra, Jacobians and the doctor (diag.hpp): each runs many passes of its own.
#define GRADSCOPE_INSTANTIATE_CURVATURE(KIND, T)                                                   \
    KIND diag::EigenEstimate diag::top_eigenvalues<T>(const diag::SymmetricOperator<T>&, Index,    \
                                                      const diag::LanczosOptions&);                \
    KIND diag::TraceEstimate diag::hutchinson_trace<T>(const diag::SymmetricOperator<T>&, Index,   \
                                                       const diag::TraceOptions&);                 \
    KIND diag::SpectralDensity diag::spectral_density<T>(const diag::SymmetricOperator<T>&, Index, \
                                                         const diag::DensityOptions&);             \
    KIND diag::SymmetricOperator<T> diag::hessian_operator<T>(Hessian<T>&);                        \
    KIND diag::EigenEstimate diag::hessian_top_eigenvalues<T>(Hessian<T>&,                         \
                                                              const diag::LanczosOptions&);        \
    KIND diag::TraceEstimate diag::hessian_trace<T>(Hessian<T>&, const diag::TraceOptions&);       \
    KIND diag::SpectralDensity diag::hessian_spectral_density<T>(Hessian<T>&,                      \
                                                                 const diag::DensityOptions&);     \
    KIND diag::SymmetricOperator<T> diag::block_operator<T>(Hessian<T>&,                           \
                                                            const diag::HessianBlock&);            \
    KIND std::vector<diag::HessianBlock> diag::layer_blocks<T>(const Module<T>&);                  \
    KIND std::vector<diag::BlockCurvature> diag::block_curvature<T>(                               \
        Hessian<T>&, const std::vector<diag::HessianBlock>&, const diag::CurvatureOptions&);       \
    KIND diag::SharpnessRecord diag::detail::measure_sharpness<T>(                                 \
        const Tensor<T>&, std::vector<Tensor<T>>, const diag::SharpnessOptions&, std::size_t,      \
        const std::vector<diag::HessianBlock>&);                                                   \
    KIND class diag::SharpnessTracker<T>;                                                          \
    KIND Eigen::MatrixXd diag::input_output_jacobian<T>(Module<T>&, const Matrix<T>&);             \
    KIND diag::JacobianSpectrum diag::jacobian_spectrum<T>(Module<T>&, const Matrix<T>&);          \
    KIND diag::JacobianSpectrum diag::jacobian_spectrum<T>(Module<T>&, const Tensor<T>&);          \
    KIND diag::Diagnosis diag::detail::run_doctor<T>(                                              \
        Module<T>&, const Matrix<T>&, const diag::LossOf<T>&, const diag::DoctorOptions&);

// A built-in activation, for both scalar types: its op (core.hpp) and its layer (nn.hpp).
#define GRADSCOPE_INSTANTIATE_ACTIVATION_OP(KIND, Act)  \
    GRADSCOPE_INSTANTIATE_ELEMENTWISE(KIND, float, Act) \
    GRADSCOPE_INSTANTIATE_ELEMENTWISE(KIND, double, Act)
#define GRADSCOPE_INSTANTIATE_ACTIVATION_LAYER(KIND, Act) \
    KIND class Activation<float, Act>;                    \
    KIND class Activation<double, Act>;

// Declares one list `extern template`, for both scalar types; a part header's last lines.
#define GRADSCOPE_DECLARE_PRECOMPILED(LIST) \
    namespace gradscope {                   \
    LIST(extern template, float)            \
    LIST(extern template, double)           \
    }

// The library and the programs that link it must agree on Eigen's alignment, which follows
// the target flags (-march=native with AVX-512 gives 64 bytes, plain x86-64 gives 16): Eigen
// frees a matrix the way it was allocated only if both sides were built alike, and a matrix
// crosses between them (an optimiser's state, say). So the library defines a symbol named after
// its alignment (src/precompiled_core.cpp) and every program references the one for its own:
// built differently, the link fails with "undefined reference to
// gradscope::detail::precompiled_eigen_align_<N>" instead of crashing at run time. Build
// gradscope::precompiled with the same -march as its users.
#define GRADSCOPE_DETAIL_CONCAT2(a, b) a##b
#define GRADSCOPE_DETAIL_CONCAT(a, b) GRADSCOPE_DETAIL_CONCAT2(a, b)
#define GRADSCOPE_PRECOMPILED_ABI_SYMBOL \
    GRADSCOPE_DETAIL_CONCAT(precompiled_eigen_align_, EIGEN_MAX_ALIGN_BYTES)

namespace gradscope::detail {
extern const int GRADSCOPE_PRECOMPILED_ABI_SYMBOL;
#if !defined(GRADSCOPE_BUILDING_PRECOMPILED) && defined(__GNUC__)
// `used`: kept even though nothing reads it, so that every object file holds the reference.
[[gnu::used]] static const int* const precompiled_abi_check = &GRADSCOPE_PRECOMPILED_ABI_SYMBOL;
#endif
}  // namespace gradscope::detail
