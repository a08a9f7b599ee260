# Sourced by gradscope's scripts (quickstart.sh, bench.sh): the Debian packages they need, and
# install_missing_packages PKG..., which installs those not yet installed (as root, or through
# sudo). Expects the caller to define say() and die().

# The toolchain, for a bare machine: g++ and cmake. Chosen by command rather than by package, so
# that a compiler or cmake the user already has (CXX=clang++, a newer cmake first on PATH) is used
# and nothing is installed beside it. The build needs no git (the consumer tests' FetchContent
# takes a SOURCE_DIR) and no make (the presets use ninja).
TOOLCHAIN_PACKAGES=()
[[ -n ${CXX:-} ]] || command -v c++ >/dev/null 2>&1 || TOOLCHAIN_PACKAGES+=(g++)
command -v cmake >/dev/null 2>&1 || TOOLCHAIN_PACKAGES+=(cmake)

# Every Debian package gradscope's build, tests, examples and benchmarks use: keep it here only.
DEBIAN_PACKAGES=(
  "${TOOLCHAIN_PACKAGES[@]}"
  libeigen3-dev      # Eigen 3 (the one dependency of the library itself)
  catch2             # Catch2 v2 (tests)
  libbenchmark-dev   # Google Benchmark (bench/)
  ninja-build        # the generator the presets use
  nlohmann-json3-dev # JSON (reports, test data)
  libcli11-dev       # command line of the example tools
  zlib1g-dev         # compressed dataset readers
  dataset-fashion-mnist # the data of examples/fashion_mnist.cpp and its test
  openmpi-bin        # mpiexec, for the data-parallel tests (tests/dist)
  libopenmpi-dev     # MPI for gradscope::mpi (gradscope/dist.hpp)
)

# Beyond those, scripts/bench.sh needs OpenBLAS: the BLAS build and tuned libtorch.
BENCH_PACKAGES=("${DEBIAN_PACKAGES[@]}" libopenblas-dev)

# Installs those of PKG... that dpkg does not list as installed; touches neither apt nor the
# network when all are. On a bare root (a debootstrap or a container image) the package lists are
# empty and there is no sudo, so: apt-get update first, no sudo when root, no questions asked.
install_missing_packages() {
  local missing=() pkg
  if ! command -v dpkg-query >/dev/null 2>&1; then
    say "dpkg-query not found: not a Debian system, assuming dependencies are installed"
    return 0
  fi
  for pkg in "$@"; do
    if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)" != installed ]]; then
      missing+=("$pkg")
    fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    say "Debian packages: all present ($*)"
    return 0
  fi
  say "Installing missing Debian packages: ${missing[*]}"
  local by_hand="as root: apt-get update && apt-get install --no-install-recommends ${missing[*]}"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 ||
      die "not root and sudo not found; run this script as root, or install the packages $by_hand"
    sudo=(sudo)
  fi
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q)
  "${apt[@]}" update ||
    die "apt-get update failed: check the network and /etc/apt/sources.list, then run this again"
  "${apt[@]}" install -y --no-install-recommends "${missing[@]}" ||
    die "apt-get install failed (see above); install the packages $by_hand"
}
