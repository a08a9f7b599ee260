// The precompiled library (CMake target gradscope::precompiled): the one place where gradscope's
// float and double specialisations are compiled. Programs that link it see them declared
// `extern template` (gradscope.hpp under GRADSCOPE_PRECOMPILED) and so do not compile them
// again. The list is in include/gradscope/instantiations.hpp, which reads as definitions here.
#define GRADSCOPE_BUILDING_PRECOMPILED
#include <gradscope/instantiations.hpp>
