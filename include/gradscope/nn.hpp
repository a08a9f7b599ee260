// Layers, activations, initialisers, losses and the mlp() builder. Needs Eigen only.
#pragma once

#include "builtin_activations.hpp"
#include "core.hpp"
#include "core/ops/dropout.hpp"
#include "core/ops/normalization.hpp"
#include "nn/activation.hpp"
#include "nn/batchnorm.hpp"
#include "nn/copy_state.hpp"
#include "nn/dropout.hpp"
#include "nn/hessian.hpp"
#include "nn/init.hpp"
#include "nn/layernorm.hpp"
#include "nn/linear.hpp"
#include "nn/loss.hpp"
#include "nn/lsuv.hpp"
#include "nn/mlp.hpp"
#include "nn/module.hpp"
#include "nn/residual.hpp"
#include "nn/rnn.hpp"
#include "nn/sequential.hpp"
#include "nn/summary.hpp"

// Precompiled mode (GRADSCOPE_PRECOMPILED, which linking gradscope::precompiled defines): this
// part's float and double specialisations are compiled once, in that library, not here.
#ifdef GRADSCOPE_PRECOMPILED
#include "instantiations.hpp"
GRADSCOPE_DECLARE_PRECOMPILED(GRADSCOPE_INSTANTIATE_NN)
GRADSCOPE_DECLARE_PRECOMPILED(GRADSCOPE_INSTANTIATE_SECOND_ORDER)
namespace gradscope {
#define GRADSCOPE_ACTIVATION(Act) GRADSCOPE_INSTANTIATE_ACTIVATION_LAYER(extern template, Act)
#include "builtin_activations.inc"
}  // namespace gradscope
#endif
