// gradscope: one include for the whole library (core, layers, optimisers, diagnostics, metrics,
// data). io.hpp, which needs more than Eigen, is separate.
#pragma once

#include "core.hpp"
#include "data.hpp"
#include "diag.hpp"
#include "metrics.hpp"
#include "nn.hpp"
#include "optim.hpp"

// Precompiled mode (link gradscope::precompiled): each part header above declares its float and
// double specialisations `extern template`; see instantiations.hpp. The library's own sources
// (src/precompiled_*.cpp) include this header in that mode and then define them.
#if defined(GRADSCOPE_BUILDING_PRECOMPILED) && !defined(GRADSCOPE_PRECOMPILED)
#error "compile src/precompiled_*.cpp with GRADSCOPE_PRECOMPILED defined (CMake does)"
#endif
