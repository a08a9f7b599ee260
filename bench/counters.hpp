// The counters every benchmark of a workload reports, so that gradscope_bench and
// gradscope_bench_libtorch count alike and tools/bench_table.py can put them side by side.
#pragma once

#include "workload.hpp"

#include <benchmark/benchmark.h>

namespace gradscope::bench {

inline void report_throughput(benchmark::State& state, const Workload& w) {
    using benchmark::Counter;
    state.counters["samples_per_s"] =
        Counter(static_cast<double>(w.batch), Counter::kIsIterationInvariantRate);
    state.counters["GFLOPs"] =
        Counter(w.flops_per_step() * 1e-9, Counter::kIsIterationInvariantRate);
}

}  // namespace gradscope::bench
