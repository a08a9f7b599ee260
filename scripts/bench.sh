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

say "Compile time: bench/compile_time/*.cpp with g++ -O2, user CPU seconds, median of 3"
# Each probe (gradscope_mlp.cpp: float, SGD, MSE; gradscope_newcomer.cpp: double, Adam,
# cross-entropy, a GradientMonitor, NoGradGuard) is timed against its Eigen-only twin three ways:
# header-only, as a user who just includes gradscope.hpp compiles it; in precompiled mode
# (-DGRADSCOPE_PRECOMPILED, what linking gradscope::precompiled does); and in precompiled mode with
# gradscope.hpp as a precompiled header (what linking gradscope::pch as well does): the time of
# every rebuild once the header is built. One-off costs, compiling src/precompiled_*.cpp (the sum
# of its parts: CPU time, which a parallel build spreads over the cores) and the precompiled
# header, are timed once and reported on their own. The twins are also timed with <Eigen/Dense>
# as a precompiled header, the same help given to Eigen alone.
compile_seconds() {  # compile_seconds RUNS SOURCE [FLAGS...]: the median user time of RUNS compiles
  local runs=$1 source=$2 i
  shift 2
  for ((i = 0; i < runs; ++i)); do
    { TIMEFORMAT=%U; time c++ -std=c++20 -O2 "$@" -I include -isystem /usr/include/eigen3 \
        -c "$source" -o "$out/$(basename "$source" .cpp).o"; } 2>&1
  done | sort -n | sed -n "$(((runs + 1) / 2))p"
}
# precompile_header DIR HEADER [FLAGS...]: builds DIR/HEADER.gch from HEADER as found on the include
# path; GCC then uses it for `#include <HEADER>` when DIR comes first (-I DIR) and the flags match.
precompile_header() {
  local dir=$1 header=$2
  shift 2
  mkdir -p "$dir/$(dirname "$header")"
  printf '#include <%s>\n' "$header" > "$dir/pch_source.hpp"
  { TIMEFORMAT=%U; time c++ -std=c++20 -O2 "$@" -I include -isystem /usr/include/eigen3 \
      -x c++-header "$dir/pch_source.hpp" -o "$dir/$header.gch"; } 2>&1
}
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
gradscope_pch_s=$(precompile_header "$out/pch_gradscope" gradscope/gradscope.hpp -DGRADSCOPE_PRECOMPILED)
eigen_pch_s=$(precompile_header "$out/pch_eigen" Eigen/Dense)
library_s=0
for part in src/precompiled_*.cpp; do
  library_s=$(python3 -c "print(round($library_s + $(compile_seconds 1 "$part"), 2))")
done
{
  for probe in mlp newcomer; do
    eigen_s=$(compile_seconds 3 "bench/compile_time/eigen_$probe.cpp")
    eigen_with_pch_s=$(compile_seconds 3 "bench/compile_time/eigen_$probe.cpp" -I "$out/pch_eigen")
    header_only_s=$(compile_seconds 3 "bench/compile_time/gradscope_$probe.cpp")
    precompiled_s=$(compile_seconds 3 "bench/compile_time/gradscope_$probe.cpp" -DGRADSCOPE_PRECOMPILED)
    fast_s=$(compile_seconds 3 "bench/compile_time/gradscope_$probe.cpp" -DGRADSCOPE_PRECOMPILED \
      -I "$out/pch_gradscope")
    printf 'eigen_%s.cpp %s s; with <Eigen/Dense> precompiled %s s\n' "$probe" "$eigen_s" "$eigen_with_pch_s"
    printf 'gradscope_%s.cpp header-only %s s, ratio %s\n' "$probe" "$header_only_s" "$(ratio "$header_only_s" "$eigen_s")"
    printf 'gradscope_%s.cpp precompiled %s s, ratio %s\n' "$probe" "$precompiled_s" "$(ratio "$precompiled_s" "$eigen_s")"
    printf 'gradscope_%s.cpp precompiled + pch %s s, ratio %s (%s against Eigen with its pch)\n' \
      "$probe" "$fast_s" "$(ratio "$fast_s" "$eigen_s")" "$(ratio "$fast_s" "$eigen_with_pch_s")"
  done
  printf 'once: src/precompiled_*.cpp %s s; gradscope.hpp precompiled header %s s; <Eigen/Dense> %s s\n' \
    "$library_s" "$gradscope_pch_s" "$eigen_pch_s"
} | tee "$out/compile_time.txt"

say "Tables (paste into docs/PERFORMANCE.md)"
python3 tools/bench_table.py "${labels[@]}" | tee "$out/tables.md"
