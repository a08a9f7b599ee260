#!/usr/bin/env bash
# Fuzzes the checkpoint loader (tests/fuzz/fuzz_safetensors.cpp) with libFuzzer under ASan and
# UBSan for SECONDS seconds, starting from a copy of the seed corpus tests/fuzz/corpus/.
#
#   scripts/fuzz.sh SECONDS
#
# Builds with clang++ (Debian: clang and libclang-rt-<N>-dev) into build/fuzz. Fails on any
# finding (crash, sanitizer report, timeout, out of memory, an exception that is not a
# gradscope::error); the input that caused it is saved as build/fuzz/artifacts/crash-* etc.
# Inputs found along the way stay in build/fuzz/corpus; the committed corpus is not touched.
set -euo pipefail

if [[ $# -ne 1 || ! $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 SECONDS" >&2
  exit 2
fi
seconds=$1
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=build/fuzz
mkdir -p "$out/artifacts"
command -v clang++ >/dev/null 2>&1 || { echo "fuzz.sh: clang++ not found (Debian: apt-get install clang)" >&2; exit 1; }

eigen_flags=$(pkg-config --cflags eigen3 2>/dev/null || echo "-I/usr/include/eigen3")
echo "==> building $out/fuzz_safetensors"
# shellcheck disable=SC2086  # eigen_flags is a list of flags
clang++ -std=c++20 -O1 -g -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -Wall -Wextra -Wpedantic \
  -Iinclude $eigen_flags \
  tests/fuzz/fuzz_safetensors.cpp -o "$out/fuzz_safetensors"

# A fresh copy of the seed corpus each run, so that runs are reproducible from the repository.
rm -rf "$out/corpus"
cp -r tests/fuzz/corpus "$out/corpus"

echo "==> fuzzing for $seconds s"
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
"$out/fuzz_safetensors" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$out/artifacts/" -print_final_stats=1 "$out/corpus"
echo "==> no findings in $seconds s"
