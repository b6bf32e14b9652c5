"""The Ray runtime against the local one, the cost of a synchronisation round, and sweeps.

    python benchmarks/ray_runtime.py [--no-full]

1. Round cost: six no-op groups answering a ~100-byte request per round, over Ray actor calls,
   a Ray compiled graph, and the runtime's direct channels (why the runtime uses the latter).
2. A shortened and (unless ``--no-full``, ~6 min) the full ``stripe-5min-outage`` on the local
   runtime, the grouped protocol in one process (``run_groups``: the protocol's own cost), and
   Ray with several placements; every trace hash is asserted equal to the local one.
3. Sweep runs per minute with 1 and 2 Ray workers.

Prints markdown tables and writes benchmarks/results/ray_runtime.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time
from multiprocessing.connection import Client, Listener

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "stripe-5min-outage.toml"
SHORT = ['duration="20s"', 'drain="30s"', 'upstreams.stripe.outages.0.start="5s"',
         'upstreams.stripe.outages.0.end="15s"', "workloads.diy-immediate.arrivals.rate=25",
         "workloads.diy-backoff.arrivals.rate=25", "workloads.dam-performance.arrivals.rate=25",
         "workloads.dam-frugal.arrivals.rate=25"]
SWEEP = ['duration="20s"', 'drain="30s"', 'upstreams.stripe.outages.0.start="5s"',
         'upstreams.stripe.outages.0.end="15s"']
GROUPS = 6
ROUNDS = 3000


class Echo:
    def echo(self, x: bytes) -> bytes:
        return x

    def listen(self, authkey: bytes):
        self.listener = Listener(None, family="AF_UNIX", authkey=authkey)
        return self.listener.address

    def serve(self) -> None:
        with self.listener.accept() as conn:
            while True:
                try:
                    conn.send_bytes(conn.recv_bytes())
                except EOFError:
                    return


def round_costs(ray) -> dict:
    """Milliseconds per round for GROUPS groups, by transport."""
    actors = [ray.remote(num_cpus=0)(Echo).remote() for _ in range(GROUPS)]
    payload = b"x" * 100
    ray.get([a.echo.remote(payload) for a in actors])
    out = {}
    t = time.perf_counter()
    for _ in range(ROUNDS // 5):
        ray.get([a.echo.remote(payload) for a in actors])
    out["ray actor calls"] = (time.perf_counter() - t) / (ROUNDS // 5) * 1e3
    try:
        from ray.dag import InputNode, MultiOutputNode

        with InputNode() as inp:
            dag = MultiOutputNode([a.echo.bind(inp) for a in actors])
        compiled = dag.experimental_compile()
        for _ in range(20):
            ray.get(compiled.execute(payload))
        t = time.perf_counter()
        for _ in range(ROUNDS):
            ray.get(compiled.execute(payload))
        out["ray compiled graph"] = (time.perf_counter() - t) / ROUNDS * 1e3
        compiled.teardown()
    except Exception as e:  # an optional comparison: say why it is missing
        print(f"compiled graph unavailable: {e}", file=sys.stderr)
    for a in actors:
        ray.kill(a)
    actors = [ray.remote(num_cpus=0)(Echo).remote() for _ in range(GROUPS)]
    key = os.urandom(32)
    addresses = ray.get([a.listen.remote(key) for a in actors])
    serving = [a.serve.remote() for a in actors]
    conns = [Client(addr, authkey=key) for addr in addresses]
    t = time.perf_counter()
    for _ in range(ROUNDS):
        for c in conns:
            c.send_bytes(payload)
        for c in conns:
            c.recv_bytes()
    out["direct channels (apidam)"] = (time.perf_counter() - t) / ROUNDS * 1e3
    for c in conns:
        c.close()
    ray.get(serving)
    for a in actors:
        ray.kill(a)
    return out


def compare(sc, placements, label: str) -> dict:
    from sim.runtime.coordinator import run_groups
    from sim.runtime.local import run_local
    from sim.runtime.ray import run_ray

    local = run_local(sc)
    rows = {"local": {"wall_s": local.summary["wall_seconds"], "ratio": 1.0, "groups": 1,
                      "windows": None}}

    def row(r) -> dict:
        assert r.trace_hash == local.trace_hash, f"{label}: trace hashes differ"
        info = r.summary["sync"]
        wall = r.summary["wall_seconds"]
        return {"wall_s": wall, "ratio": round(wall / local.summary["wall_seconds"], 1),
                "groups": info["groups"], "windows": info["windows"],
                "windows_per_s": round(info["windows"] / wall),
                "events_per_window": round(r.summary["events"] / info["windows"], 1),
                "batches_per_window": round(info["cross_group_batches"] / info["windows"], 2),
                "messages_per_window": round(info["cross_group_messages"] / info["windows"], 2)}

    rows["in-process groups (default)"] = row(run_groups(sc, placement="default"))
    for p in placements:
        rows[f"ray {p}"] = row(run_ray(sc, placement=p))
        print(f"  {label}: ray {p} {rows[f'ray {p}']['wall_s']} s", file=sys.stderr)
    return {"events": local.summary["events"], "rows": rows}


def table(title: str, res: dict) -> None:
    print(f"\n{title}: {res['events']:,} events\n")
    print("| runtime | groups | wall s | ÷ local | windows | windows/s | events/window "
          "| batches/window | messages/window |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in res["rows"].items():
        if r["windows"] is None:
            print(f"| {name} | 1 | {r['wall_s']} | 1.0 | | | | | |")
            continue
        print(f"| {name} | {r['groups']} | {r['wall_s']} | {r['ratio']} | {r['windows']:,} "
              f"| {r['windows_per_s']:,} | {r['events_per_window']} | {r['batches_per_window']} "
              f"| {r['messages_per_window']} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-full", action="store_true",
                    help="skip the full 300k-job scenario (~6 min: local, in-process groups, Ray)")
    args = ap.parse_args()
    import ray

    from sim.scenario import load_scenario
    from sim.sweep import run_sweep

    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t
    costs = round_costs(ray)
    short = compare(load_scenario(SCENARIO, SHORT), ("single", "default", "regions", "per-actor"),
                    "shortened")
    full = None if args.no_full else compare(load_scenario(SCENARIO), ("single", "default"),
                                             "full")
    ray.shutdown()
    sweep = {}
    for n in (1, 2):
        ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False)
        res = run_sweep(str(SCENARIO), [("dam.limiter.rate", ["2", "10"])], 4, backend="ray",
                        extra=SWEEP)
        ray.shutdown()
        sweep[n] = {"runs": res["runs"], "wall_s": res["wall_seconds"],
                    "runs_per_minute": res["runs_per_minute"]}
    print(f"ray.init {init_s:.1f} s. Round cost, {GROUPS} groups, {ROUNDS:,} rounds:\n")
    print("| transport | ms per round |\n|---|---:|")
    for name, ms in costs.items():
        print(f"| {name} | {ms:.3f} |")
    table("Shortened stripe-5min-outage (20 s + 30 s drain, 100 jobs/s)", short)
    if full is not None:
        table("Full stripe-5min-outage (300k jobs)", full)
    print("\n| sweep workers | runs | wall s | runs/min |\n|---:|---:|---:|---:|")
    for n, s in sweep.items():
        print(f"| {n} | {s['runs']} | {s['wall_s']} | {s['runs_per_minute']} |")
    out = ROOT / "benchmarks" / "results" / "ray_runtime.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"ray_init_s": init_s, "round_ms": costs, "shortened": short,
                               "full": full, "sweep": sweep}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
