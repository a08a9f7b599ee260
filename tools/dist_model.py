"""Where data parallelism stops paying: the alpha-beta model of docs/DISTRIBUTED.md.

Reads the JSON of gradscope_dist_scaling run on one rank (the compute time of every benchmark
shape at per-rank batches B/P, P = 1, 2, 4, ..., 64) and prints, for each shape and network,
the modelled step time and parallel efficiency for P ranks:

    T_allreduce(P) = 2 (P - 1) alpha + 2 (P - 1) / P * bytes * beta      (ring all-reduce)
    T_step(P)      = T_compute(B / P) + T_allreduce(P)                   (no overlap)
                     max(T_compute(B / P), T_allreduce(P))               (perfect overlap)
    efficiency(P)  = T_compute(B) / (P * T_step(P))

bytes is the shape's float gradient (4 bytes per parameter, in the JSON). The networks' alpha and beta
are assumptions, stated in NETWORKS; the measured machine's own come from a two-rank run
(--local dist_2.json).

    python3 tools/dist_model.py dist_1.json [--local dist_2.json]

Standard library only.
"""
import argparse
import json

# (name, alpha seconds, beta seconds per byte): a latency typical of MPI over each link and the
# link's line rate.
NETWORKS = [
    ("25 Gb/s Ethernet (alpha 25 us)", 25e-6, 8 / 25e9),
    ("InfiniBand HDR 200 Gb/s (alpha 1.5 us)", 1.5e-6, 8 / 200e9),
]

def model(compute, alpha, beta, nbytes):
    """compute: {P: seconds at B/P}. Returns [(P, no-overlap step, overlap step, efficiencies)]."""
    rows = []
    for p, t_compute in sorted(compute.items()):
        t_allreduce = 0.0 if p == 1 else 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes * beta
        serial = t_compute + t_allreduce
        overlapped = max(t_compute, t_allreduce)
        base = compute[1]
        rows.append((p, serial, overlapped, base / (p * serial), base / (p * overlapped)))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("one_rank_json")
    parser.add_argument("--local", help="a two-rank run's JSON, for this machine's alpha and beta")
    args = parser.parse_args()
    data = json.load(open(args.one_rank_json))
    networks = list(NETWORKS)
    if args.local:
        local = json.load(open(args.local))
        networks.insert(0, ("this machine's shared memory (measured)", local["alpha_seconds"],
                            local["beta_seconds_per_byte"]))
    for entry in data["compute"]:
        shape = entry["shape"]
        compute = {row["ranks"]: row["step_seconds"] for row in entry["seconds"]}
        nbytes = entry["gradient_bytes"]
        print(f"\n{shape}: {nbytes / 1e6:.2f} MB of gradient, one rank {1e3 * compute[1]:.3f} ms")
        for name, alpha, beta in networks:
            print(f"  {name}")
            print("    P   step ms (no overlap)   step ms (overlap)   efficiency   (overlap)")
            for p, serial, overlapped, eff, eff_overlap in model(compute, alpha, beta, nbytes):
                print(f"  {p:4d}   {1e3 * serial:18.3f}   {1e3 * overlapped:17.3f}   "
                      f"{100 * eff:9.0f}%   {100 * eff_overlap:8.0f}%")


main()
