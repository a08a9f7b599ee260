// Optimisers, gradient clipping and learning-rate schedulers. Needs Eigen only.
#pragma once

#include "optim/all.hpp"

// Precompiled mode (GRADSCOPE_PRECOMPILED, which linking gradscope::precompiled defines): this
// part's float and double specialisations are compiled once, in that library, not here.
#ifdef GRADSCOPE_PRECOMPILED
#include "instantiations.hpp"
GRADSCOPE_DECLARE_PRECOMPILED(GRADSCOPE_INSTANTIATE_OPTIM)
#endif
