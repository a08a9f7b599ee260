# For the checks that read what a program compiled (tests/precompiled/check_part_headers.cmake,
# tests/header_only/check_unused_code.cmake), run as `cmake -DNM=<nm> -DOBJECT=<object file>
# -DPROGRAM=<executable> -P <check>`: runs PROGRAM, which must succeed, and lists the symbols
# OBJECT defines, demangled, one per element.
#   run_and_read_symbols(<output-var> <symbols-var>)
function(run_and_read_symbols output_var symbols_var)
  execute_process(COMMAND "${PROGRAM}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${PROGRAM} failed (${rc}):\n${out}")
  endif()
  execute_process(COMMAND "${NM}" -C --defined-only "${OBJECT}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE symbols ERROR_VARIABLE error)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} could not read ${OBJECT}: ${error}")
  endif()
  string(REPLACE "\n" ";" lines "${symbols}")
  set(${output_var} "${out}" PARENT_SCOPE)
  set(${symbols_var} "${lines}" PARENT_SCOPE)
endfunction()
