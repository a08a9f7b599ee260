# ctest precompiled.part_headers: tests/precompiled/part_headers.cpp, which includes nn.hpp and
# optim.hpp only, must leave the specialisations those parts declare `extern template` to
# gradscope::precompiled (no definitions of them in its object file) and must link and train.
#   cmake -DNM=<nm> -DOBJECT=<part_headers.o> -DPROGRAM=<exe> -P check_part_headers.cmake
execute_process(COMMAND "${PROGRAM}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} failed (${rc}):\n${out}")
endif()
execute_process(COMMAND "${NM}" -C --defined-only "${OBJECT}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE symbols ERROR_VARIABLE error)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} could not read ${OBJECT}: ${error}")
endif()
# One of each kind the program reaches: a layer's members (nn.hpp's list), the builder's, the
# loss (nn.hpp's list) and the reverse pass (core.hpp's list).
set(compiled_here "")
string(REPLACE "\n" ";" lines "${symbols}")
foreach(line IN LISTS lines)
  if(line MATCHES " (gradscope::(Linear|MLP|Sequential)<float>::|gradscope::Tensor<float> gradscope::mse_loss<float>|void gradscope::detail::run_backward<float>)")
    string(APPEND compiled_here "  ${line}\n")
  endif()
endforeach()
if(compiled_here)
  message(FATAL_ERROR "${OBJECT} compiles specialisations that gradscope::precompiled provides; "
    "the part headers did not declare them extern template:\n${compiled_here}")
endif()
message(STATUS "part headers leave their specialisations to gradscope::precompiled: ${out}")
