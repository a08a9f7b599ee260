#!/usr/bin/env bash
# The compile-time table of docs/PERFORMANCE.md ("Compile time"): times g++ -O2 on the two probes
# in bench/compile_time/ against their Eigen-only twins, median of 3 user-CPU times each, and the
# one-off costs. Run on an otherwise idle machine; scripts/bench.sh runs it after the benchmarks.
#
#   scripts/compile_time.sh            (writes build/bench/compile_time.txt)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\n==> %s\n' "$*"; }

out=build/bench
mkdir -p "$out"

say "Compile time: bench/compile_time/*.cpp with g++ -O2, user CPU seconds, median of 3"
# Each probe (gradscope_mlp.cpp: float, SGD, MSE; gradscope_newcomer.cpp: double, Adam,
# cross-entropy, a GradientMonitor, NoGradGuard) is timed against its Eigen-only twin five ways:
# header-only, as a user who just includes gradscope.hpp compiles it; header-only including only
# the part headers the probe uses (-DPROBE_PART_HEADERS); in precompiled mode
# (-DGRADSCOPE_PRECOMPILED, what linking gradscope::precompiled does); the same with the part
# headers only; and in precompiled mode with gradscope.hpp
# as a precompiled header (what linking gradscope::pch as well does): the time of every rebuild
# once the header is built. One-off costs, compiling src/precompiled_*.cpp (the sum
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
  library_s=$(python3 -c "print(round($library_s + $(compile_seconds 1 "$part" -DGRADSCOPE_PRECOMPILED), 2))")
done
{
  for probe in mlp newcomer; do
    eigen_s=$(compile_seconds 3 "bench/compile_time/eigen_$probe.cpp")
    eigen_with_pch_s=$(compile_seconds 3 "bench/compile_time/eigen_$probe.cpp" -I "$out/pch_eigen")
    header_only_s=$(compile_seconds 3 "bench/compile_time/gradscope_$probe.cpp")
    header_only_parts_s=$(compile_seconds 3 "bench/compile_time/gradscope_$probe.cpp" \
      -DPROBE_PART_HEADERS)
    precompiled_s=$(compile_seconds 3 "bench/compile_time/gradscope_$probe.cpp" -DGRADSCOPE_PRECOMPILED)
    parts_s=$(compile_seconds 3 "bench/compile_time/gradscope_$probe.cpp" -DGRADSCOPE_PRECOMPILED \
      -DPROBE_PART_HEADERS)
    fast_s=$(compile_seconds 3 "bench/compile_time/gradscope_$probe.cpp" -DGRADSCOPE_PRECOMPILED \
      -I "$out/pch_gradscope")
    printf 'eigen_%s.cpp %s s; with <Eigen/Dense> precompiled %s s\n' "$probe" "$eigen_s" "$eigen_with_pch_s"
    printf 'gradscope_%s.cpp header-only %s s, ratio %s\n' "$probe" "$header_only_s" "$(ratio "$header_only_s" "$eigen_s")"
    printf 'gradscope_%s.cpp header-only, part headers %s s, ratio %s\n' "$probe" "$header_only_parts_s" "$(ratio "$header_only_parts_s" "$eigen_s")"
    printf 'gradscope_%s.cpp precompiled %s s, ratio %s\n' "$probe" "$precompiled_s" "$(ratio "$precompiled_s" "$eigen_s")"
    printf 'gradscope_%s.cpp precompiled, part headers %s s, ratio %s\n' "$probe" "$parts_s" "$(ratio "$parts_s" "$eigen_s")"
    printf 'gradscope_%s.cpp precompiled + pch %s s, ratio %s (%s against Eigen with its pch)\n' \
      "$probe" "$fast_s" "$(ratio "$fast_s" "$eigen_s")" "$(ratio "$fast_s" "$eigen_with_pch_s")"
  done
  printf 'once: src/precompiled_*.cpp %s s; gradscope.hpp precompiled header %s s; <Eigen/Dense> %s s\n' \
    "$library_s" "$gradscope_pch_s" "$eigen_pch_s"
} | tee "$out/compile_time.txt"
