// gradscope::precompiled, one part of it: the graph (tensors, nodes, pools, the reverse pass)
// and the differentiable ops, for float and double; and the symbol that records the Eigen
// alignment the library was built with.
// include/gradscope/instantiations.hpp lists what the library compiles; gradscope.hpp declares all
// of it `extern` in precompiled mode; this source defines its own part, the other sources the rest.
#define GRADSCOPE_BUILDING_PRECOMPILED
#include <gradscope/gradscope.hpp>

namespace gradscope {
namespace detail {
const int GRADSCOPE_PRECOMPILED_ABI_SYMBOL = EIGEN_MAX_ALIGN_BYTES;
}  // namespace detail

GRADSCOPE_INSTANTIATE_CORE(template, float)
GRADSCOPE_INSTANTIATE_CORE(template, double)
GRADSCOPE_INSTANTIATE_OPS(template, float)
GRADSCOPE_INSTANTIATE_OPS(template, double)
}  // namespace gradscope
