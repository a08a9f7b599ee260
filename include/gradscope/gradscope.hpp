// gradscope: one include for the whole library (core, layers, optimisers, diagnostics, metrics,
// data). io.hpp, which needs more than Eigen, is separate.
#pragma once

#include "core.hpp"
#include "data.hpp"
#include "diag.hpp"
#include "metrics.hpp"
#include "nn.hpp"
#include "optim.hpp"

// Precompiled mode (link gradscope::precompiled, which defines the macro): the float and double
// specialisations are compiled once in that library instead of in every file that includes
// this header. See instantiations.hpp.
#ifdef GRADSCOPE_PRECOMPILED
#include "instantiations.hpp"
#endif
