# ctest precompiled.part_headers: tests/precompiled/part_headers.cpp, which includes nn.hpp and
# optim.hpp only, must leave the specialisations those parts declare `extern template` to
# gradscope::precompiled (no definitions of them in its object file) and must link and train.
#   cmake -DNM=<nm> -DOBJECT=<part_headers.o> -DPROGRAM=<exe> -P check_part_headers.cmake
include("${CMAKE_CURRENT_LIST_DIR}/../support/read_symbols.cmake")
run_and_read_symbols(out lines)
# One of each kind the program reaches: a layer's members (nn.hpp's list), the builder's, the
# loss (nn.hpp's list), the reverse pass (core.hpp's list), the second-order pass and the rules
# it looks up (nn.hpp's second-order list) and the Lanczos iteration (diag.hpp's curvature list).
set(compiled_here "")
foreach(line IN LISTS lines)
  if(line MATCHES " (gradscope::(Linear|MLP|Sequential)<float>::|gradscope::Tensor<float> gradscope::mse_loss<float>|void gradscope::detail::run_backward<float>|void gradscope::detail::run_second_order<float>|gradscope::detail::(builtin|loss)_tangent_rule<float>|gradscope::diag::top_eigenvalues<float>|gradscope::diag::hessian_top_eigenvalues<float>)")
    string(APPEND compiled_here "  ${line}\n")
  endif()
endforeach()
if(compiled_here)
  message(FATAL_ERROR "${OBJECT} compiles specialisations that gradscope::precompiled provides; "
    "the part headers did not declare them extern template:\n${compiled_here}")
endif()
message(STATUS "part headers leave their specialisations to gradscope::precompiled: ${out}")
