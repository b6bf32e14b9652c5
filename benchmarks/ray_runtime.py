"""The Ray runtime against the local one, and sweep throughput with 1 and 2 Ray workers.

    python benchmarks/ray_runtime.py

Prints a markdown table and writes benchmarks/results/ray_runtime.json. The Ray run uses a
shortened stripe-5min-outage (the full one needs ~10^6 windows of 0.5 ms: see the note in
benchmarks/README.md) and checks that the trace hash equals the local one.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "stripe-5min-outage.toml"
SHORT = ['duration="20s"', 'drain="30s"', 'upstreams.stripe.outages.0.start="5s"',
         'upstreams.stripe.outages.0.end="15s"', "workloads.diy-immediate.arrivals.rate=25",
         "workloads.diy-backoff.arrivals.rate=25", "workloads.dam-performance.arrivals.rate=25",
         "workloads.dam-frugal.arrivals.rate=25"]
SWEEP = ['duration="20s"', 'drain="30s"', 'upstreams.stripe.outages.0.start="5s"',
         'upstreams.stripe.outages.0.end="15s"']


def main() -> None:
    import ray

    from sim.runtime.local import run_local
    from sim.runtime.ray import run_ray
    from sim.scenario import load_scenario
    from sim.sweep import run_sweep

    sc = load_scenario(SCENARIO, SHORT)
    local = run_local(sc)
    rows = {}
    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t
    for placement in ("single", "default", "regions"):
        r = run_ray(sc, placement=placement)
        info = r.summary["ray"]
        assert r.trace_hash == local.trace_hash, "Ray and local disagree"
        rows[placement] = {
            "wall_s": r.summary["wall_seconds"],
            "ratio_vs_local": round(r.summary["wall_seconds"] / local.summary["wall_seconds"], 1),
            "groups": info["groups"], "windows": info["windows"],
            "windows_per_s": round(info["windows"] / r.summary["wall_seconds"], 1),
            "events_per_window": round(r.summary["events"] / info["windows"], 1),
            "cross_group_batches_per_window": round(info["cross_group_batches"]
                                                    / info["windows"], 2),
        }
    ray.shutdown()
    sweep = {}
    for n in (1, 2):
        ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False)
        res = run_sweep(str(SCENARIO), [("dam.limiter.rate", ["2", "10"])], 4, backend="ray",
                        extra=SWEEP)
        ray.shutdown()
        sweep[n] = {"runs": res["runs"], "wall_s": res["wall_seconds"],
                    "runs_per_minute": res["runs_per_minute"]}
    print(f"local: {local.summary['wall_seconds']} s, {local.summary['events']:,} events "
          f"(shortened stripe-5min-outage); ray.init {init_s:.1f} s\n")
    print("| placement | groups | wall s | Ray/local | windows | windows/s | events/window "
          "| batches/window |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for p, r in rows.items():
        print(f"| {p} | {r['groups']} | {r['wall_s']} | {r['ratio_vs_local']}x | {r['windows']:,} "
              f"| {r['windows_per_s']} | {r['events_per_window']} | "
              f"{r['cross_group_batches_per_window']} |")
    print("\n| sweep workers | runs | wall s | runs/min |\n|---:|---:|---:|---:|")
    for n, s in sweep.items():
        print(f"| {n} | {s['runs']} | {s['wall_s']} | {s['runs_per_minute']} |")
    out = ROOT / "benchmarks" / "results" / "ray_runtime.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"local_wall_s": local.summary["wall_seconds"],
                               "local_events": local.summary["events"], "ray_init_s": init_s,
                               "placements": rows, "sweep": sweep}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
