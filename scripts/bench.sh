#!/usr/bin/env bash
# gradscope benchmarks: builds and runs them, and prints docs/PERFORMANCE.md's tables.
#
#   scripts/bench.sh [REPETITIONS]      (default 5; the tables use the median)
#
# Runs, one after another on an otherwise idle machine:
#   eigen        gradscope_bench (gradscope and the hand-written Eigen baseline), build/release
#   blas         gradscope_bench built with GRADSCOPE_USE_BLAS=ON (OpenBLAS), build/bench-blas
#   torch        gradscope_bench_libtorch, libtorch as Debian installs it (reference BLAS)
#   torch_tuned  the same on OpenBLAS's AVX-512 kernels with glibc's malloc kept from returning
#                big tensors to the kernel every step and OpenMP threads that sleep when idle
# libtorch runs only if Debian's libtorch-dev is installed (not installed by this script: it is
# large). JSON goes to build/bench/*.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

repetitions=${1:-5}
[[ $repetitions =~ ^[1-9][0-9]*$ ]] || die "REPETITIONS must be a positive integer, got '$repetitions'"

source scripts/debian_packages.sh
install_missing_packages "${BENCH_PACKAGES[@]}"

out=build/bench
mkdir -p "$out"
lib=/usr/lib/x86_64-linux-gnu
reference_blas=$lib/blas        # Debian's reference BLAS (libblas3)
openblas=$lib/openblas-pthread  # libopenblas0-pthread

run() {  # run LABEL BINARY [env assignments...]
  local label=$1 binary=$2
  shift 2
  say "$label: $binary"
  env "$@" "$binary" --benchmark_repetitions="$repetitions" --benchmark_report_aggregates_only=true \
    --benchmark_out="$out/$label.json" --benchmark_out_format=json
}

say "Building gradscope_bench (build/release) and, with OpenBLAS, build/bench-blas"
cmake --preset release >/dev/null
cmake --build --preset release -j 2 --target gradscope_bench
cmake -S . -B build/bench-blas -G Ninja -DCMAKE_BUILD_TYPE=Release -DGRADSCOPE_USE_BLAS=ON \
  -DGRADSCOPE_BUILD_TESTS=OFF -DGRADSCOPE_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build/bench-blas -j 2 --target gradscope_bench

labels=(eigen=$out/eigen.json blas=$out/blas.json)
run eigen build/release/bench/gradscope_bench
run blas build/bench-blas/bench/gradscope_bench OPENBLAS_CORETYPE=SkylakeX

if cmake --build --preset release -j 2 --target gradscope_bench_libtorch 2>/dev/null; then
  torch_bench=build/release/bench/gradscope_bench_libtorch
  run torch "$torch_bench" LD_LIBRARY_PATH="$reference_blas"
  run torch_tuned "$torch_bench" LD_LIBRARY_PATH="$openblas" OPENBLAS_CORETYPE=SkylakeX \
    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 OMP_WAIT_POLICY=PASSIVE
  labels+=(torch=$out/torch.json torch_tuned=$out/torch_tuned.json)
else
  say "libtorch benchmark not built (Debian: apt-get install libtorch-dev): skipping libtorch"
fi

scripts/compile_time.sh

say "Tables (paste into docs/PERFORMANCE.md)"
python3 tools/bench_table.py "${labels[@]}" | tee "$out/tables.md"
