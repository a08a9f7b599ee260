# Runs gradscope-sweep under mpiexec with two processes and checks that its four reports are
# byte for byte those of the single-process run in REFERENCE (ctest example.sweep).
#   cmake -DMPIEXEC=<mpiexec> -DPROGRAM=<gradscope-sweep> -DREFERENCE=<dir> -DOUT=<dir>
#         -DARGS=<the sweep's arguments, space separated> -P check_sweep_mpi.cmake
separate_arguments(args UNIX_COMMAND "${ARGS}")
file(REMOVE_RECURSE "${OUT}")
set(files sweep.json sweep.csv sweep.svg sweep.html)
execute_process(
  COMMAND "${MPIEXEC}" -n 2 "${PROGRAM}" ${args}
    --json "${OUT}/sweep.json" --csv "${OUT}/sweep.csv" --svg "${OUT}/sweep.svg"
    --html "${OUT}/sweep.html"
  RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "mpiexec -n 2 gradscope-sweep exited with ${status}")
endif()
foreach(f IN LISTS files)
  execute_process(COMMAND "${CMAKE_COMMAND}" -E compare_files "${REFERENCE}/${f}" "${OUT}/${f}"
    RESULT_VARIABLE differs)
  if(differs)
    message(FATAL_ERROR "${f} from two processes differs from the single-process ${f}")
  endif()
  message(STATUS "${f}: the same as one process's")
endforeach()
