#!/usr/bin/env bash
# Interleaved gradscope-vs-baseline comparison, for checking one change quickly (the full
# tables come from scripts/bench.sh):
#
#   tools/bench_ab.sh [SHAPES_REGEX] [KIND] [REPETITIONS] [THREADS]
#   tools/bench_ab.sh 'deep|deep_bn' train 7
#
# Runs build/release/bench/gradscope_bench's <shape>/{gradscope,baseline}/<kind>/threads:<n>
# benchmarks with Google Benchmark's random interleaving, so that both sides see the same
# machine noise, and prints the medians and baseline time / gradscope time (> 1: gradscope is
# faster). Needs Debian's /usr/bin/python3 only for its json module.
set -euo pipefail
shapes=${1:-deep.*}
kind=${2:-train}
repetitions=${3:-5}
threads=${4:-1}
binary=$(dirname "${BASH_SOURCE[0]}")/../build/release/bench/gradscope_bench
[[ -x $binary ]] || { echo "bench_ab: build $binary first (cmake --build --preset release --target gradscope_bench)" >&2; exit 1; }

"$binary" --benchmark_filter="^($shapes)/(gradscope|baseline)/$kind/threads:$threads/real_time\$" \
  --benchmark_min_time=0.2 --benchmark_repetitions="$repetitions" \
  --benchmark_enable_random_interleaving=true --benchmark_format=json 2>/dev/null |
  python3 -c '
import json, sys
medians = {}
for b in json.load(sys.stdin)["benchmarks"]:
    if b.get("aggregate_name") == "median":
        shape, impl = b["run_name"].split("/")[:2]
        medians.setdefault(shape, {})[impl] = b["real_time"]
for shape, m in medians.items():
    g, b = m["gradscope"], m["baseline"]
    print(f"{shape:12s} baseline {b:10.2f} us  gradscope {g:10.2f} us  baseline/gradscope {b / g:.3f}")
'
