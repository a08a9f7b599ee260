# ctest precompiled.same_results: runs the header-only and the precompiled build of
# tests/precompiled/train.cpp and fails unless they print exactly the same.
#   cmake -DHEADER_ONLY=<exe> -DPRECOMPILED=<exe> -P compare.cmake
foreach(build IN ITEMS HEADER_ONLY PRECOMPILED)
  execute_process(COMMAND "${${build}}" RESULT_VARIABLE rc OUTPUT_VARIABLE out_${build})
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${${build}} failed (${rc}):\n${out_${build}}")
  endif()
endforeach()
if(NOT out_HEADER_ONLY STREQUAL out_PRECOMPILED)
  message(FATAL_ERROR "the precompiled build differs from the header-only build\n"
    "header-only:\n${out_HEADER_ONLY}\nprecompiled:\n${out_PRECOMPILED}")
endif()
message(STATUS "header-only and precompiled builds agree:\n${out_PRECOMPILED}")
