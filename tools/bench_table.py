#!/usr/bin/env python3
"""Turns Google Benchmark JSON from scripts/bench.sh into docs/PERFORMANCE.md's tables.

    tools/bench_table.py RUN=path.json [RUN=path.json ...]

Each RUN label names one binary run: "eigen" (gradscope_bench: gradscope and the hand-written
baseline), "blas" (gradscope_bench built with GRADSCOPE_USE_BLAS), "torch" (libtorch as Debian
installs it) and "torch_tuned" (libtorch on OpenBLAS with the tuned environment). Benchmark
names are "<shape>/<implementation>/<kind>/threads:<n>" (bench/workload.hpp). With
repetitions, the median of the real time is used. Standard library only.
"""
import json
import sys

SHAPES = ["tiny", "small", "medium", "large", "deep", "deep_bn", "deep_res", "deep_bn_res"]


def load(path):
    """{(shape, impl, kind, threads): (median real time in us, GFLOP/s)}"""
    with open(path) as f:
        data = json.load(f)
    runs = {}
    for b in data["benchmarks"]:
        name = b.get("run_name", b["name"]).removesuffix("/real_time")
        aggregate = b.get("aggregate_name")
        if aggregate not in (None, "median"):
            continue
        if aggregate is None and b.get("run_type") == "iteration" and any(
                x.get("aggregate_name") for x in data["benchmarks"]):
            continue  # repetitions present: use their median only
        if b.get("error_occurred"):
            continue
        shape, impl, kind, threads = name.split("/")
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b["time_unit"]]
        runs[(shape, impl, kind, int(threads.split(":")[1]))] = (
            b["real_time"] * scale, b.get("GFLOPs", float("nan")))
    return runs, data.get("context", {})


def fmt_time(us):
    if us is None:
        return "–"
    return f"{us:.2f} µs" if us < 100 else (f"{us / 1e3:.2f} ms" if us < 1e5 else f"{us / 1e3:.0f} ms")


def ratio(num, den):
    return "–" if num is None or den is None else f"{num / den:.2f}×"


def get(runs, *key):
    value = runs.get(key)
    return None if value is None else value[0]


def main(argv):
    runs = {}
    for arg in argv:
        label, path = arg.split("=", 1)
        runs[label], context = load(path)
        if label == "eigen":
            print(f"<!-- host: {context.get('host_name', '?')}, {context.get('num_cpus', '?')} CPUs at "
                  f"{context.get('mhz_per_cpu', '?')} MHz, date {context.get('date', '?')} -->")
    eigen = runs.get("eigen", {})
    torch = runs.get("torch", {})
    tuned = runs.get("torch_tuned", {})
    blas = runs.get("blas", {})

    for kind in ("backprop", "train"):
        print(f"\n#### {kind}: time per step (median) and speed ratios (>1 means gradscope is faster)\n")
        print("| shape | threads | baseline | gradscope | GFLOP/s | gradscope vs baseline | libtorch | vs libtorch "
              "| libtorch tuned | vs tuned | gradscope+BLAS | BLAS vs tuned |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for shape in SHAPES:
            for threads in (1, 2):
                g = get(eigen, shape, "gradscope", kind, threads)
                if g is None:
                    continue
                b = get(eigen, shape, "baseline", kind, threads)
                t = get(torch, shape, "libtorch", kind, threads)
                tt = get(tuned, shape, "libtorch", kind, threads)
                gb = get(blas, shape, "gradscope", kind, threads)
                gflops = eigen[(shape, "gradscope", kind, threads)][1]
                print(f"| {shape} | {threads} | {fmt_time(b)} | {fmt_time(g)} | {gflops:.1f} | {ratio(b, g)} "
                      f"| {fmt_time(t)} | {ratio(t, g)} | {fmt_time(tt)} | {ratio(tt, g)} | {fmt_time(gb)} "
                      f"| {ratio(tt, gb)} |")

    print("\n#### The matrix products alone (backprop's GEMMs on preallocated buffers, Eigen's threads)\n")
    print("| shape | threads | GEMMs only | GFLOP/s | gradscope | GFLOP/s | gradscope's share of the GEMM ceiling "
          "| GEMMs only, BLAS build | GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for shape in SHAPES:
        for threads in (1, 2):
            ceiling = eigen.get((shape, "gemms_only", "backprop", threads))
            g = eigen.get((shape, "gradscope", "backprop", threads))
            if ceiling is None or g is None:
                continue
            ceiling_blas = blas.get((shape, "gemms_only", "backprop", threads), (None, float("nan")))
            print(f"| {shape} | {threads} | {fmt_time(ceiling[0])} | {ceiling[1]:.1f} | {fmt_time(g[0])} | {g[1]:.1f} "
                  f"| {ratio(ceiling[0], g[0])} | {fmt_time(ceiling_blas[0])} | {ceiling_blas[1]:.1f} |")

    print("\n#### Two threads against one (time at 1 thread / time at 2 threads)\n")
    print("| shape | kind | baseline | gradscope | libtorch |")
    print("|---|---|---|---|---|")
    for shape in SHAPES:
        for kind in ("backprop", "train"):
            cells = []
            for source, impl in ((eigen, "baseline"), (eigen, "gradscope"), (torch, "libtorch")):
                cells.append(ratio(get(source, shape, impl, kind, 1), get(source, shape, impl, kind, 2)))
            if any(c != "–" for c in cells):
                print(f"| {shape} | {kind} | " + " | ".join(cells) + " |")

    print("\n#### Diagnostics attached (train step, 1 thread; bare time / time with it)\n")
    print("| shape | bare | + GradientMonitor | ratio | + per-sample mode | ratio | per-sample time / bare time | per-sample, no GSNR | its time / bare time | + anomaly mode | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for shape in SHAPES:
        bare = get(eigen, shape, "gradscope", "train", 1)
        monitor = get(eigen, shape, "gradscope+monitor", "train", 1)
        per_sample = get(eigen, shape, "gradscope+per_sample", "train", 1)
        no_gsnr = get(eigen, shape, "gradscope+per_sample_no_gsnr", "train", 1)
        anomaly = get(eigen, shape, "gradscope+anomaly", "train", 1)
        if bare is None:
            continue
        # The issue states the per-sample target as a time ratio (with / bare), so it is shown too.
        print(f"| {shape} | {fmt_time(bare)} | {fmt_time(monitor)} | {ratio(bare, monitor)} "
              f"| {fmt_time(per_sample)} | {ratio(bare, per_sample)} | {ratio(per_sample, bare)} "
              f"| {fmt_time(no_gsnr)} | {ratio(no_gsnr, bare)} "
              f"| {fmt_time(anomaly)} | {ratio(bare, anomaly)} |")

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
