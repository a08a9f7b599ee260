// gradscope::precompiled, one part of it: the built-in activations (builtin_activations.inc),
// the op and the layer, for float and double.
// include/gradscope/instantiations.hpp lists what the library compiles and declares all of it
// `extern`; this source defines its own part of that list, the other sources the rest.
#define GRADSCOPE_BUILDING_PRECOMPILED
#include <gradscope/instantiations.hpp>

namespace gradscope {
#define GRADSCOPE_ACTIVATION(Act) GRADSCOPE_INSTANTIATE_ACTIVATION(template, Act)
#include <gradscope/builtin_activations.inc>
}  // namespace gradscope
