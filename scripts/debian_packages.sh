# Sourced by gradscope's scripts (quickstart.sh, bench.sh): the Debian packages they need, and
# install_missing_packages PKG..., which installs those not yet installed (as root, or through
# sudo). Expects the caller to define say() and die().

# Every Debian package gradscope's build, tests, examples and benchmarks use: keep it here only.
DEBIAN_PACKAGES=(
  libeigen3-dev      # Eigen 3 (the one dependency of the library itself)
  catch2             # Catch2 v2 (tests)
  libbenchmark-dev   # Google Benchmark (bench/)
  ninja-build        # the generator the presets use
  nlohmann-json3-dev # JSON (reports, test data)
  libcli11-dev       # command line of the example tools
  zlib1g-dev         # compressed dataset readers
  dataset-fashion-mnist # the data of examples/fashion_mnist.cpp and its test
)

# Beyond those, scripts/bench.sh needs OpenBLAS: the BLAS build and tuned libtorch.
BENCH_PACKAGES=("${DEBIAN_PACKAGES[@]}" libopenblas-dev)

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
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo not found; install as root: apt-get install ${missing[*]}"
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

