# Builds and runs tests/consumer against gradscope, from scratch, in one of three modes.
#
#   cmake -DMODE=find_package|find_package_precompiled|find_package_mpi|add_subdirectory|fetchcontent
#         -DGRADSCOPE_SOURCE_DIR=<gradscope source> -DWORK_DIR=<scratch dir>
#         [-DCONSUMER_SOURCE_DIR=<dir>] [-DEXPECTED_VERSION=0.1.0]
#         [-DGENERATOR=Ninja] [-DGENERATOR_PLATFORM=..] [-DGENERATOR_TOOLSET=..]
#         [-DMAKE_PROGRAM=..] [-DCXX_COMPILER=..] [-DBUILD_TYPE=Release] [-DMPIEXEC=mpiexec]
#         [-DINSTALL_FROM=<a built gradscope build tree>]
#         -P run_consumer.cmake
#
# find_package mode first configures gradscope alone (tests/examples/benchmarks OFF), installs it
# into WORK_DIR/prefix, and points the consumer there with CMAKE_PREFIX_PATH.
# find_package_precompiled does the same with the compiled library (GRADSCOPE_INSTALL_PRECOMPILED,
# so gradscope is built before it is installed), and the consumer links gradscope::precompiled and
# gradscope::pch (gradscope.hpp as a precompiled header). Given INSTALL_FROM, a build tree
# configured with GRADSCOPE_INSTALL_PRECOMPILED=ON and already built (the release preset's), it
# installs that tree instead of configuring and compiling the library again, as a packager does.
# find_package_mpi asks for the component `mpi` as well, and runs the consumer's MPI program under
# MPIEXEC with two ranks.
cmake_minimum_required(VERSION 3.21)

foreach(var IN ITEMS MODE GRADSCOPE_SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT CONSUMER_SOURCE_DIR)
  set(CONSUMER_SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}")
endif()
if(NOT BUILD_TYPE)
  set(BUILD_TYPE Release)
endif()

# Options every configure step shares: the outer build's generator and compiler.
set(common_args "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
if(GENERATOR)
  list(APPEND common_args -G "${GENERATOR}")
endif()
if(GENERATOR_PLATFORM)
  list(APPEND common_args -A "${GENERATOR_PLATFORM}")
endif()
if(GENERATOR_TOOLSET)
  list(APPEND common_args -T "${GENERATOR_TOOLSET}")
endif()
if(MAKE_PROGRAM)
  list(APPEND common_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(CXX_COMPILER)
  list(APPEND common_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()

function(run step)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "[${MODE}] ${step}: ${shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "[${MODE}] ${step} failed (${rc})")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# The consumer knows three ways to get gradscope; find_package_precompiled and find_package_mpi
# are its find_package.
string(REGEX REPLACE "_(precompiled|mpi)$" "" consumer_mode "${MODE}")
set(consumer_args "-DGRADSCOPE_CONSUMER_MODE=${consumer_mode}")
if(EXPECTED_VERSION)
  list(APPEND consumer_args "-DGRADSCOPE_EXPECTED_VERSION=${EXPECTED_VERSION}")
endif()

if(MODE STREQUAL "find_package_mpi")
  if(NOT MPIEXEC)
    message(FATAL_ERROR "run_consumer.cmake: find_package_mpi needs -DMPIEXEC=...")
  endif()
  list(APPEND consumer_args -DGRADSCOPE_CONSUMER_MPI=ON)
endif()

if(consumer_mode STREQUAL "find_package")
  set(prefix "${WORK_DIR}/prefix")
  set(package_files gradscopeConfig.cmake gradscopeConfigVersion.cmake gradscopeTargets.cmake)
  if(MODE STREQUAL "find_package_precompiled")
    set(precompiled ON)
    set(package_dir lib/cmake/gradscope)  # architecture specific now
    list(APPEND package_files gradscopePrecompiledTargets.cmake)
    # The fast-build recipe: the compiled library and gradscope.hpp as a precompiled header.
    list(APPEND consumer_args -DGRADSCOPE_CONSUMER_PRECOMPILED=ON -DGRADSCOPE_CONSUMER_PCH=ON)
    # Without INSTALL_FROM this mode compiles the whole library; in an optimised build type -O1
    # does that in about two thirds of the time of -O3, and what is tested here is the packaging,
    # not the optimiser.
    string(TOUPPER "${BUILD_TYPE}" build_type_upper)
    if(NOT INSTALL_FROM AND NOT build_type_upper STREQUAL "DEBUG")
      list(APPEND common_args "-DCMAKE_CXX_FLAGS_${build_type_upper}=-O1 -DNDEBUG")
    endif()
  elseif(MODE STREQUAL "find_package_mpi")
    set(precompiled OFF)
    set(package_dir share/cmake/gradscope)
    list(APPEND package_files gradscopeMpiTargets.cmake)
  else()
    set(precompiled OFF)
    set(package_dir share/cmake/gradscope)
  endif()
  if(precompiled AND INSTALL_FROM)
    set(gradscope_build "${INSTALL_FROM}")
  else()
    set(gradscope_build "${WORK_DIR}/gradscope-build")
    run("configure gradscope" "${CMAKE_COMMAND}" -S "${GRADSCOPE_SOURCE_DIR}"
      -B "${gradscope_build}" ${common_args}
      -DGRADSCOPE_BUILD_TESTS=OFF -DGRADSCOPE_BUILD_EXAMPLES=OFF -DGRADSCOPE_BUILD_BENCHMARKS=OFF
      "-DGRADSCOPE_INSTALL_PRECOMPILED=${precompiled}" "-DCMAKE_INSTALL_LIBDIR=lib"
      "-DCMAKE_INSTALL_PREFIX=${prefix}")
    if(precompiled)
      run("build gradscope" "${CMAKE_COMMAND}" --build "${gradscope_build}" --config "${BUILD_TYPE}")
    endif()
  endif()
  run("install gradscope" "${CMAKE_COMMAND}" --install "${gradscope_build}"
    --config "${BUILD_TYPE}" --prefix "${prefix}")
  if(precompiled AND INSTALL_FROM)
    # That tree chose its own library directory (GNUInstallDirs: lib, or lib/<multiarch> under /usr).
    file(GLOB_RECURSE config_files "${prefix}/gradscopeConfig.cmake")
    if(NOT config_files)
      message(FATAL_ERROR "[${MODE}] installing ${INSTALL_FROM} gave no gradscopeConfig.cmake")
    endif()
    list(GET config_files 0 config_file)
    get_filename_component(package_dir "${config_file}" DIRECTORY)
    file(RELATIVE_PATH package_dir "${prefix}" "${package_dir}")
    if(package_dir MATCHES "^share/")
      message(FATAL_ERROR "[${MODE}] ${INSTALL_FROM} installed an architecture-independent package "
        "(${package_dir}): was it configured with GRADSCOPE_INSTALL_PRECOMPILED=ON?")
    endif()
  endif()
  foreach(f IN LISTS package_files)
    if(NOT EXISTS "${prefix}/${package_dir}/${f}")
      message(FATAL_ERROR "[${MODE}] the install has no ${package_dir}/${f}")
    endif()
  endforeach()
  if(NOT EXISTS "${prefix}/include/gradscope/gradscope.hpp")
    message(FATAL_ERROR "[${MODE}] the install has no include/gradscope/gradscope.hpp")
  endif()
  # Only the installed copy may be visible to the consumer: not the source tree.
  list(APPEND consumer_args "-DCMAKE_PREFIX_PATH=${prefix}"
    "-DGRADSCOPE_SOURCE_DIR=${WORK_DIR}/no-source-tree-in-this-mode")
elseif(MODE STREQUAL "add_subdirectory" OR MODE STREQUAL "fetchcontent")
  list(APPEND consumer_args "-DGRADSCOPE_SOURCE_DIR=${GRADSCOPE_SOURCE_DIR}")
else()
  message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()

run("configure consumer" "${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}"
  -B "${WORK_DIR}/consumer-build" ${common_args} ${consumer_args})
run("build consumer" "${CMAKE_COMMAND}" --build "${WORK_DIR}/consumer-build"
  --config "${BUILD_TYPE}")

if(MODE STREQUAL "find_package_precompiled")
  # gradscope::pch must have made the build compile gradscope.hpp as a precompiled header:
  # GCC writes a .gch, clang a .pch, beside CMake's cmake_pch.hxx.
  file(GLOB_RECURSE pch_files "${WORK_DIR}/consumer-build/*cmake_pch.hxx.gch"
    "${WORK_DIR}/consumer-build/*cmake_pch.hxx.pch" "${WORK_DIR}/consumer-build/*cmake_pch.pch")
  if(NOT pch_files)
    message(FATAL_ERROR "[${MODE}] gradscope::pch built no precompiled header")
  endif()
  message(STATUS "[${MODE}] precompiled header: ${pch_files}")
endif()

set(exe "${WORK_DIR}/consumer-build/bin/gradscope_consumer")
if(CMAKE_HOST_WIN32)
  string(APPEND exe ".exe")
endif()
run("run consumer" "${exe}")
if(MODE STREQUAL "find_package_mpi")
  run("run consumer under MPI" "${MPIEXEC}" -n 2 "${exe}_mpi")
endif()
message(STATUS "[${MODE}] OK")
