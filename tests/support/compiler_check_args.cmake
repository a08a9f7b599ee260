# For the checks that run the compiler on one source file (tests/compile_fail/check.cmake,
# tests/header_only/check_parse_instantiations.cmake), run as `cmake -D...=... -P <check>`.
#   require_check_variables(<script> <var>...)  FATAL_ERROR naming the first one unset or empty
#   include_flags(<output-var>)                 INCLUDES ('|'-separated, as a ';' would split a
#                                               ctest argument) as a list of -I flags
function(require_check_variables script)
  foreach(var IN LISTS ARGN)
    if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
      message(FATAL_ERROR "${script}: ${var} is not set")
    endif()
  endforeach()
endfunction()

function(include_flags output_var)
  string(REPLACE "|" ";" dirs "${INCLUDES}")
  set(flags "")
  foreach(dir IN LISTS dirs)
    list(APPEND flags "-I${dir}")
  endforeach()
  set(${output_var} "${flags}" PARENT_SCOPE)
endfunction()
