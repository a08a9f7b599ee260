# cmake -DREADME=<README.md or a page of docs/> -DSOURCE=<file> -P ReadmeQuotes.cmake
# Fails unless the page quotes SOURCE verbatim (its whole text after the comment lines that
# open it, in a code block), so that a program the README shows is the one the build compiles
# and ctest runs.
file(READ "${README}" readme)
file(READ "${SOURCE}" source)
string(REGEX REPLACE "^(//[^\n]*\n)+" "" source "${source}")
string(FIND "${readme}" "${source}" at)
if(at EQUAL -1)
  get_filename_component(name "${SOURCE}" NAME)
  message(FATAL_ERROR "${README} does not quote ${name} verbatim: copy the file into its code block")
endif()
