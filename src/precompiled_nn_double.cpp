// gradscope::precompiled, one part of it: the modules, the mlp() builder and the losses, for
// double.
// include/gradscope/instantiations.hpp lists what the library compiles and declares all of it
// `extern`; this source defines its own part of that list, the other sources the rest.
#define GRADSCOPE_BUILDING_PRECOMPILED
#include <gradscope/instantiations.hpp>

namespace gradscope {
GRADSCOPE_INSTANTIATE_NN(template, double)
}  // namespace gradscope
