// The precompiled library (CMake target gradscope::precompiled): the one place where gradscope's
// float and double specialisations are compiled. Programs that link it see them declared
// `extern template` (gradscope.hpp under GRADSCOPE_PRECOMPILED) and so do not compile them
// again. The list is in include/gradscope/instantiations.hpp.
#include <gradscope/instantiations.hpp>

namespace gradscope {
// Declared in instantiations.hpp: the alignment this library was built with, for the link check.
namespace detail {
const int GRADSCOPE_PRECOMPILED_ABI_SYMBOL = EIGEN_MAX_ALIGN_BYTES;
}  // namespace detail

GRADSCOPE_INSTANTIATE_ALL(template, float)
GRADSCOPE_INSTANTIATE_ALL(template, double)
}  // namespace gradscope
