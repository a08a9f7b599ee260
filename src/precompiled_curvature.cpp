// gradscope::precompiled, one part of it: curvature and spectra, Jacobians and the doctor, for
// float and double.
// include/gradscope/instantiations.hpp lists what the library compiles; gradscope.hpp declares all
// of it `extern` in precompiled mode; this source defines its own part, the other sources the rest.
#define GRADSCOPE_BUILDING_PRECOMPILED
#include <gradscope/gradscope.hpp>

namespace gradscope {
GRADSCOPE_INSTANTIATE_CURVATURE(template, float)
GRADSCOPE_INSTANTIATE_CURVATURE(template, double)
}  // namespace gradscope
