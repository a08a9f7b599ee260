#!/usr/bin/env python3
"""Summarises a clang -ftime-trace file: the front end / back end split of the compile, the time
spent parsing, and the instantiation time of the templates whose names start with each PREFIX.

    tools/time_trace_summary.py TRACE.json [PREFIX...]

Instantiation events nest (instantiating a class instantiates its members), so each figure is the
wall time covered by the matching events, with nested and overlapping ones counted once.
docs/PERFORMANCE.md ("Compile time") quotes it.
"""
import json
import sys


def covered_seconds(events):
    """The wall time the events' [ts, ts + dur) intervals cover, each instant once."""
    total, current = 0, None
    for start, end in sorted((e["ts"], e["ts"] + e["dur"]) for e in events):
        if current is None or start > current[1]:
            if current is not None:
                total += current[1] - current[0]
            current = [start, end]
        else:
            current[1] = max(current[1], end)
    if current is not None:
        total += current[1] - current[0]
    return total / 1e6


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    totals = {e["name"]: e["dur"] / 1e6 for e in events if e["name"].startswith("Total ")}
    whole = totals.get("Total ExecuteCompiler")
    if not whole:
        sys.exit(f"{sys.argv[1]}: no 'Total ExecuteCompiler' event (not a clang -ftime-trace file?)")
    for label, key in [("front end", "Total Frontend"), ("  parsing (Source)", "Total Source"),
                       ("back end", "Total Backend")]:
        seconds = totals.get(key, 0.0)
        print(f"{label:28s} {seconds:7.2f} s  {100 * seconds / whole:5.1f}%")
    instantiations = [e for e in events if e["name"] in ("InstantiateClass", "InstantiateFunction")]
    print(f"{'instantiation (all)':28s} {covered_seconds(instantiations):7.2f} s")
    for prefix in sys.argv[2:]:
        matching = [e for e in instantiations if e["args"]["detail"].startswith(prefix)]
        print(f"  {prefix:26s} {covered_seconds(matching):7.2f} s")
    print(f"{'whole compile':28s} {whole:7.2f} s")


main()
