// gradscope::precompiled, one part of it: the built-in activations (builtin_activations.inc),
// the op and the layer, for float and double.
// include/gradscope/instantiations.hpp lists what the library compiles; gradscope.hpp declares all
// of it `extern` in precompiled mode; this source defines its own part, the other sources the rest.
#define GRADSCOPE_BUILDING_PRECOMPILED
#include <gradscope/gradscope.hpp>

namespace gradscope {
#define GRADSCOPE_ACTIVATION(Act)                      \
    GRADSCOPE_INSTANTIATE_ACTIVATION_OP(template, Act) \
    GRADSCOPE_INSTANTIATE_ACTIVATION_LAYER(template, Act)
#include <gradscope/builtin_activations.inc>
}  // namespace gradscope
