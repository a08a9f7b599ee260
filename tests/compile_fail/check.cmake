# ctest compile_fail.<name>: compiles tests/compile_fail/<name>.cpp with -fsyntax-only and checks
# the result against the file's own expectation, a line
#   // expect-error: <regex>
# A file with that line must fail to compile, with at most MAX_LINES lines of diagnostics that
# match <regex> (the concept that names the requirement); a file without it must compile (the
# control, compiles.cpp, without which a broken include path would make every failure "pass").
#   cmake -DCXX=<compiler> -DSTD=<-std=c++20> -DINCLUDES=<dir|dir...> -DSOURCE=<file.cpp>
#         -DMAX_LINES=<n> -P check.cmake
# INCLUDES is '|'-separated: a ';' in a ctest argument would split it.
include("${CMAKE_CURRENT_LIST_DIR}/../support/compiler_check_args.cmake")
require_check_variables(check.cmake CXX STD INCLUDES SOURCE MAX_LINES)

file(STRINGS "${SOURCE}" expect REGEX "^// expect-error: ")
list(LENGTH expect expect_count)
if(expect_count GREATER 1)
  message(FATAL_ERROR "${SOURCE}: more than one '// expect-error:' line")
endif()
string(REGEX REPLACE "^// expect-error: " "" expect "${expect}")

include_flags(include_flags)

# Plain ASCII quotes and no colour, so that the regex sees what a reader of the log sees.
set(ENV{LC_ALL} C)
execute_process(
  COMMAND "${CXX}" ${STD} -fsyntax-only -fdiagnostics-color=never ${include_flags} "${SOURCE}"
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE out)
string(REGEX MATCHALL "\n" newlines "${out}")
list(LENGTH newlines lines)

if(expect STREQUAL "")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${SOURCE} must compile, but the compiler said (${rc}):\n${out}")
  endif()
  message(STATUS "${SOURCE} compiles, as it must")
  return()
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but it must not: the misuse it holds is accepted")
endif()
if(NOT out MATCHES "${expect}")
  message(FATAL_ERROR "${SOURCE} failed to compile, as it must, but the diagnostics do not "
    "match '${expect}' (the requirement it breaks):\n${out}")
endif()
if(lines GREATER MAX_LINES)
  message(FATAL_ERROR "${SOURCE}: ${lines} lines of diagnostics, more than ${MAX_LINES}:\n${out}")
endif()
message(STATUS "${SOURCE} is refused in ${lines} lines naming '${expect}':\n${out}")
