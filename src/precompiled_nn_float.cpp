// gradscope::precompiled, one part of it: the modules, the mlp() builder and the losses, for float.
// include/gradscope/instantiations.hpp lists what the library compiles; gradscope.hpp declares all
// of it `extern` in precompiled mode; this source defines its own part, the other sources the rest.
#define GRADSCOPE_BUILDING_PRECOMPILED
#include <gradscope/gradscope.hpp>

namespace gradscope {
GRADSCOPE_INSTANTIATE_NN(template, float)
}  // namespace gradscope
