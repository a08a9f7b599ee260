# ctest header_only.parse_instantiations: tests/header_only/parse_instantiations.cpp includes
# gradscope.hpp and has an empty main. Parsing it must instantiate none of the Eigen classes
# below: they belong to functions a training program may never call (diag/spectrum.hpp,
# diag/jacobian.hpp, nn/init.hpp, data/scaler.hpp, ...), and a template whose body names them
# through a plain Matrix<double> would still instantiate them in every file that includes the
# header (core/matrix.hpp, DependentDouble). The control compiles the file with -DCALL_THEM,
# which calls those functions: then each class must be instantiated, or this check cannot see
# instantiations at all. clang only: its AST dump lists a class template's instantiations.
#   cmake -DCLANGXX=<clang++> -DSTD=<-std=c++20> -DINCLUDES=<dir|dir...> -DSOURCE=<file.cpp>
#         -P check_parse_instantiations.cmake
# INCLUDES is '|'-separated: a ';' in a ctest argument would split it.
include("${CMAKE_CURRENT_LIST_DIR}/../support/compiler_check_args.cmake")
require_check_variables(check_parse_instantiations.cmake CLANGXX STD INCLUDES SOURCE)

include_flags(include_flags)

set(classes SelfAdjointEigenSolver BDCSVD HouseholderQR PartialReduxExpr)
list(JOIN classes "|" alternatives)

# The instantiated definitions of those classes that parsing SOURCE (with the extra flags) makes,
# one name per instantiation. The dump of namespace Eigen runs to hundreds of megabytes when the
# functions are called, so grep reads it rather than CMake.
function(instantiations result)
  execute_process(
    COMMAND "${CLANGXX}" ${STD} -fsyntax-only ${include_flags} ${ARGN}
      -Xclang -ast-dump -Xclang -ast-dump-filter=Eigen:: "${SOURCE}"
    COMMAND grep -E -o "ClassTemplateSpecializationDecl.* (${alternatives}) definition"
    RESULTS_VARIABLE codes
    OUTPUT_VARIABLE out
    ERROR_VARIABLE err)
  list(GET codes 0 rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${CLANGXX} could not parse ${SOURCE} ${ARGN} (${rc}):\n${err}")
  endif()
  string(REGEX MATCHALL " (${alternatives}) definition" found "${out}")
  set(${result} "${found}" PARENT_SCOPE)
endfunction()

instantiations(included)
instantiations(called -DCALL_THEM)
set(failures "")
foreach(name IN LISTS classes)
  set(included_name "${included}")
  list(FILTER included_name INCLUDE REGEX " ${name} ")
  list(LENGTH included_name count_included)
  set(called_name "${called}")
  list(FILTER called_name INCLUDE REGEX " ${name} ")
  list(LENGTH called_name count_called)
  if(count_called EQUAL 0)
    string(APPEND failures "  control: calling the functions that use Eigen::${name} "
      "instantiated none, so this check cannot see its instantiations\n")
  endif()
  if(NOT count_included EQUAL 0)
    string(APPEND failures "  including gradscope.hpp instantiates Eigen::${name} "
      "${count_included} time(s): a template spells its type without its parameter (use "
      "DependentDouble<T>), or a non-template function uses it\n")
  endif()
  message(STATUS "Eigen::${name}: ${count_included} instantiation(s) from the include, "
    "${count_called} when the functions that use it are called")
endforeach()
if(failures)
  message(FATAL_ERROR "${SOURCE}:\n${failures}")
endif()
