"""Engine decision cost: µs per job from `Submit` to the first dispatch command, bytes per live
JobMachine, and the peak RSS of a 1M-job simulation.

    python benchmarks/engine_decisions.py [--jobs 100000] [--rss-jobs 1000000]

Two figures per payload shape: *routing* (JobMachine construction + the Submit event, up to its
first AskPermit) and *intake* (parse_job + key derivation + dedupe-table insert + routing).
Memory: tracemalloc of 10k live machines (submitted, waiting for permits), per machine.
Peak RSS: a scenario of ``--rss-jobs`` PERFORMANCE jobs (2000/s, each with a webhook) runs in a
fresh process; its ``ru_maxrss`` is the figure (bar: under 2 GB).
Writes benchmarks/results/engine_decisions.json.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import subprocess
import sys
import time
import tracemalloc

import numpy as np

from engine.events import AskPermit, Submit
from engine.idempotency import DedupeTable, derive_key
from engine.job import DamContext, JobMachine
from engine.retry import BlockRandom
from engine.spec import parse_job

SHAPES = {
    "single": {"url": "https://api.stripe.com/v1/charges", "method": "POST",
               "body": '{"amount": 1000}'},
    "race3+webhook": {"url": "https://api.stripe.com/v1/charges", "method": "POST",
                      "body": '{"amount": 1000}', "regions": ["iad", "lax", "ord"],
                      "webhooks": [{"url": "https://app.example/hook"}]},
    "fallback-chain": {"url": "https://api.openai.com/v1/chat", "method": "POST",
                       "regions": ["iad"], "webhooks": [{"url": "https://app.example/hook"}],
                       "fallback_job": {"url": "https://api.anthropic.com/v1/messages",
                                        "trigger": {"type": "on_error", "codes": [429, 500]},
                                        "fallback_job": {"url": "https://backup.example/x",
                                                         "trigger": {"type": "on_timeout",
                                                                     "timeout_ms": 2000}}}},
}


def measure(payload: dict, jobs: int) -> dict:
    ctx = DamContext(("iad", "lax", "ord"), rng=BlockRandom(np.random.default_rng(0)))
    table = DedupeTable()
    route = np.empty(jobs, dtype=np.int64)
    intake = np.empty(jobs, dtype=np.int64)
    clock = time.perf_counter_ns
    submit = Submit()
    for i in range(jobs):
        body = dict(payload, body=f'{{"n": {i}}}')  # distinct keys: no dedupe hits
        t0 = clock()
        spec = parse_job(body, "cust_bench")
        key = derive_key(spec)
        job_id = f"job_0_{i}"
        table.submit("cust_bench", key, job_id, i)
        t1 = clock()
        m = JobMachine(job_id, spec, key, ctx)
        cmds = m.handle(submit, i)
        t2 = clock()
        assert any(type(c) is AskPermit for c in cmds)
        route[i] = t2 - t1
        intake[i] = t2 - t0
    return {
        "routing_us": {"median": float(np.median(route)) / 1e3,
                       "p99": float(np.percentile(route, 99)) / 1e3},
        "intake_us": {"median": float(np.median(intake)) / 1e3,
                      "p99": float(np.percentile(intake, 99)) / 1e3},
    }


def memory_per_machine(payload: dict, n: int = 10_000, with_spec: bool = False) -> float:
    ctx = DamContext(("iad", "lax", "ord"), rng=BlockRandom(np.random.default_rng(0)))
    payloads = [dict(payload, body=str(i)) for i in range(n)]
    if with_spec:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    specs = [parse_job(p, "c") for p in payloads]
    keys = [derive_key(s) for s in specs]
    if not with_spec:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    machines = []
    for i, (s, k) in enumerate(zip(specs, keys, strict=True)):
        m = JobMachine(f"job_0_{i}", s, k, ctx)
        m.handle(Submit(), 0)
        m.out = []  # the driver consumes the command list
        machines.append(m)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n


RSS_CHILD = """
import json, resource, sys, time
from sim.runtime.local import run_local
from sim.scenario import load_scenario
jobs = int(sys.argv[1])
rate = 2000.0
doc = {"name": "million", "seed": 1, "duration": f"{jobs / rate:.0f}s", "drain": "2m",
       "upstreams": [{"name": "api", "url": "https://api.example", "servers": 2000,
                      "advertise": {"rps": 5000.0, "max_concurrent": 2000}}],
       "receivers": [{"name": "app", "url": "https://app.example"}],
       "workloads": [{"name": "w", "upstream": "api", "strategy": "performance",
                      "arrivals": {"process": "constant", "rate": rate},
                      "step": {"webhooks": [{"url": "https://app.example/h"}]}}]}
t = time.perf_counter()
r = run_local(load_scenario(doc))
w = r.summary["workloads"]["w"]
print(json.dumps({"jobs": w["jobs"], "succeeded": w["succeeded"], "events": r.summary["events"],
                  "wall_s": time.perf_counter() - t,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def peak_rss(jobs: int) -> dict:
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(jobs)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--rss-jobs", type=int, default=1_000_000)
    args = ap.parse_args()
    rows = {}
    for name, payload in SHAPES.items():
        r = measure(payload, args.jobs)
        r["bytes_per_machine"] = memory_per_machine(payload)
        r["bytes_per_job_with_spec"] = memory_per_machine(payload, with_spec=True)
        rows[name] = r
    print(f"engine decisions over {args.jobs:,} jobs per shape ({platform.python_version()})\n")
    print("| payload | routing median µs | routing p99 µs | intake median µs | intake p99 µs "
          "| bytes / live machine | bytes / job incl. spec |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['routing_us']['median']:.1f} | {r['routing_us']['p99']:.1f} | "
              f"{r['intake_us']['median']:.1f} | {r['intake_us']['p99']:.1f} | "
              f"{r['bytes_per_machine']:,.0f} | {r['bytes_per_job_with_spec']:,.0f} |")
    rss = peak_rss(args.rss_jobs) if args.rss_jobs else None
    if rss:
        print(f"\n{rss['jobs']:,}-job simulation: peak RSS {rss['max_rss_mb']:,.0f} MB, "
              f"{rss['events']:,} events in {rss['wall_s']:.1f} s (bar: under 2048 MB)")
    out = pathlib.Path(__file__).parent / "results" / "engine_decisions.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"jobs": args.jobs, "python": platform.python_version(),
                               "shapes": rows, "million_job_run": rss}, indent=2))


if __name__ == "__main__":
    main()
