// The autodiff core: tensors, the graph, differentiable ops and gradcheck. Needs Eigen only.
#pragma once

#include "core/activations.hpp"
#include "core/autograd.hpp"
#include "core/buffer_pool.hpp"
#include "core/elementwise.hpp"
#include "core/errors.hpp"
#include "core/gradcheck.hpp"
#include "core/grad_mode.hpp"
#include "core/matrix.hpp"
#include "core/node.hpp"
#include "core/ops/arithmetic.hpp"
#include "core/ops/columns.hpp"
#include "core/ops/linalg.hpp"
#include "core/ops/reduction.hpp"
#include "core/ops/softmax.hpp"
#include "core/random.hpp"
#include "core/tensor.hpp"
#include "core/version.hpp"

// Precompiled mode (GRADSCOPE_PRECOMPILED, which linking gradscope::precompiled defines): this
// part's float and double specialisations are compiled once, in that library, not here.
#ifdef GRADSCOPE_PRECOMPILED
#include "instantiations.hpp"
GRADSCOPE_DECLARE_PRECOMPILED(GRADSCOPE_INSTANTIATE_CORE)
GRADSCOPE_DECLARE_PRECOMPILED(GRADSCOPE_INSTANTIATE_OPS)
namespace gradscope {
#define GRADSCOPE_ACTIVATION(Act) GRADSCOPE_INSTANTIATE_ACTIVATION_OP(extern template, Act)
#include "builtin_activations.inc"
}  // namespace gradscope
#endif
