# ctest header_only.unused_code: tests/header_only/unused_code.cpp trains a plain mlp() under a
# GradientMonitor with per-sample mode off; its object file must hold the monitor (read with nm,
# so that the check sees instantiations at all) and none of the per-sample reductions or of the
# layers a plain mlp() does not build. The program must run and train.
#   cmake -DNM=<nm> -DOBJECT=<unused_code.o> -DPROGRAM=<exe> -P check_unused_code.cmake
include("${CMAKE_CURRENT_LIST_DIR}/../support/read_symbols.cmake")
run_and_read_symbols(out lines)
set(unwanted "")
set(monitor_seen FALSE)
foreach(line IN LISTS lines)
  if(line MATCHES "gradscope::diag::GradientMonitor<double>::close_step\\(")
    set(monitor_seen TRUE)
  endif()
  # A layer's constructor or forward: the monitor asks whether a module is an affine LayerNorm
  # (dynamic_cast, then its accessors), which compiles the class's typeinfo and those accessors.
  if(line MATCHES "(gradscope::diag::detail::PerSampleReduction<|make_sample_reducer|gradscope::(BatchNorm1d|LayerNorm|Dropout|Residual)<double>::(forward_impl|BatchNorm1d|LayerNorm|Dropout|Residual)\\()")
    string(APPEND unwanted "  ${line}\n")
  endif()
endforeach()
if(NOT monitor_seen)
  message(FATAL_ERROR "${OBJECT} holds no GradientMonitor<double>::close_step: nm's output is "
    "not what this check expects, so it cannot tell what the program compiled")
endif()
if(unwanted)
  message(FATAL_ERROR "${OBJECT} compiles code the program never asked for:\n${unwanted}")
endif()
message(STATUS "a plain mlp() under a monitor compiles no per-sample reductions and no unused "
  "layers: ${out}")
