#!/usr/bin/env bash
# gradscope quick start.
#
#   scripts/quickstart.sh example   build and run the main example, the depth sweep (gradscope-sweep)
#   scripts/quickstart.sh test      build everything and run the whole test suite
#
# Works on a bare Debian 12 machine (apt, and root or sudo, are all it needs): missing Debian
# packages are installed first, the compiler and cmake included (scripts/debian_packages.sh).
# Builds go to build/release (CMakePresets.json, preset "release").
set -euo pipefail

JOBS=2

usage() {
  cat <<USAGE
usage: $0 example|test
  example   build and run the depth sweep with its defaults (build/release/examples/gradscope-sweep):
            prints a table and a summary of where gradients vanish or explode, and writes
            sweep.html (the report to open in a browser), sweep.json, sweep.csv and sweep.svg
            into build/release/sweep/
  test      build everything and run all tests (ctest --preset release)
USAGE
}

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'quickstart: error: %s\n' "$*" >&2; exit 1; }

if [[ $# -ne 1 ]]; then usage >&2; exit 2; fi
mode=$1
case "$mode" in
  example|test) ;;
  -h|--help|help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac

# Run from the repository root whatever the caller's directory.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/debian_packages.sh
install_missing_packages "${DEBIAN_PACKAGES[@]}"

# After the install, so that these name only what it could not provide.
cxx=${CXX:-c++}
command -v "${cxx%% *}" >/dev/null 2>&1 ||
  die "C++ compiler '$cxx' not found; install one (Debian: apt-get install g++) or set CXX to one"
command -v cmake >/dev/null 2>&1 || die "cmake not found (Debian: apt-get install cmake)"
cmake_version=$(cmake --version | sed -n '1s/^cmake version //p')
[[ $(printf '%s\n' 3.23 "$cmake_version" | sort -V | head -n 1) == 3.23 ]] ||
  die "$(command -v cmake) is version '$cmake_version'; the presets need 3.23 or newer (Debian 12's, apt-get install cmake, is 3.25): put one first on PATH"
command -v ninja >/dev/null 2>&1 || die "ninja not found even after installing ninja-build"

say "Configuring (cmake --preset release)"
cmake --preset release

case "$mode" in
  example)
    say "Building the depth sweep (gradscope-sweep)"
    cmake --build --preset release -j "$JOBS" --target gradscope-sweep
    say "Running build/release/examples/gradscope-sweep in build/release/sweep/"
    mkdir -p build/release/sweep
    (cd build/release/sweep && ../examples/gradscope-sweep)
    say "Open build/release/sweep/sweep.html in a browser for the report"
    ;;
  test)
    say "Building everything"
    cmake --build --preset release -j "$JOBS"
    say "Running the tests (ctest --preset release)"
    ctest --preset release -j "$JOBS" --output-on-failure
    ;;
esac
say "Done"
