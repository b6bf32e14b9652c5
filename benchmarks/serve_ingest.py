"""Durable ingest of ``apidam serve``: jobs accepted per second on one core, submit latency.

The server runs pinned to CPU 0 (``taskset``), the load generator (aiohttp, ``--concurrency``
connections) on CPU 1. Every answer is a job the server has committed to its SQLite journal
before answering (group commit). The jobs target a closed loopback port, so executing them costs
the server almost nothing beside the intake (the domain is paced at 2 req/s). Measured for both
journal sync modes; compare with ezthrottle-local's published 800-1,000 submits/s on one vCPU.

    python benchmarks/serve_ingest.py [--jobs 20000] [--concurrency 64] [--proxy]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, table, write_json

KEY = "bench-key-000001"


def start_server(data: Path, sync: str) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "sim.cli", "serve", "--port", "0", "--data", str(data),
           "--api-key", f"{KEY}=bench:pro", "--allow-private-targets", "--sync", sync]
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r":(\d+) \(", line)
    if not m:
        raise SystemExit(f"server did not start: {line!r}")
    return proc, int(m.group(1))


async def load(port: int, jobs: int, concurrency: int, proxy: bool, tag: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/{'proxy' if proxy else 'jobs'}"
    lat = np.zeros(jobs)
    nxt = 0
    errors = 0

    async def worker(s: aiohttp.ClientSession) -> None:
        nonlocal nxt, errors
        while nxt < jobs:
            i = nxt
            nxt += 1
            job = {"url": "http://127.0.0.1:1/charge", "method": "POST",
                   "body": json.dumps({"order": f"{tag}-{i}", "amount": 1000})}
            data = {"scope": "customer", "metric_name": "", "method": "POST", "headers": {},
                    "target_url": "http://dam/api/v1/jobs", "body": json.dumps(job)} if proxy \
                else job
            t0 = time.perf_counter()
            async with s.post(url, json=data) as r:
                await r.read()
                if r.status != 200:
                    errors += 1
            lat[i] = time.perf_counter() - t0

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn,
                                     headers={"Authorization": f"Bearer {KEY}"}) as s:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"jobs": jobs, "errors": errors, "wall_s": wall, "jobs_per_s": jobs / wall,
            "p50_ms": float(np.percentile(lat, 50) * 1e3),
            "p99_ms": float(np.percentile(lat, 99) * 1e3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--proxy", action="store_true", help="submit through /api/v1/proxy")
    args = ap.parse_args()
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    rows, results = [], {}
    for sync in ("full", "normal"):
        for proxy in ((False, True) if not args.proxy else (True,)):
            data = Path(tempfile.mkdtemp(prefix="apidam-ingest-"))
            proc, port = start_server(data, sync)
            try:
                asyncio.run(load(port, 2000, args.concurrency, proxy, "warm"))
                r = asyncio.run(load(port, args.jobs, args.concurrency, proxy, "run"))
            finally:
                proc.terminate()
                proc.wait(30)
                shutil.rmtree(data, ignore_errors=True)
            name = f"{sync}/{'proxy' if proxy else 'direct'}"
            results[name] = r
            rows.append([name, f"{r['jobs_per_s']:,.0f}", f"{r['p50_ms']:.1f}",
                         f"{r['p99_ms']:.1f}", r["errors"]])
    print(table(["sync / endpoint", "durable jobs/s", "p50 ms", "p99 ms", "errors"], rows))
    write_json("serve_ingest", {"concurrency": args.concurrency, "results": results})


if __name__ == "__main__":
    main()
