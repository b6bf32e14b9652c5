"""Sweeps: a grid of scenario overrides × seeds, each run an independent local-runtime run.

``--backend ray`` runs each grid point as a Ray task (a cluster adds throughput); ``local`` runs
them in this process, one after the other. Results: one row per run (``sweep.csv``,
``sweep.json``) and a table grouped by the grid keys with the mean and a 95 % interval
(Student's t) over seeds.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

from .scenario import ScenarioError, load_scenario

__all__ = ["MAX_RUNS", "METRICS", "WINDOW_METRICS", "check_size", "metric_names", "parse_grid",
           "run_sweep", "summarize_sweep", "write_sweep"]

#: at most this many runs (grid points × seeds) in one sweep: every run's rows stay in memory
#: until the sweep is written, and a typo (``--seeds 100000000``) should be refused at once, not
#: discovered hours later
MAX_RUNS = 100_000

METRICS = ("success_rate", "amplification", "peak_attempts_per_s", "duplicate_executions",
           "p50_ms", "p99_ms", "cost_usd")
#: per ``[[windows]]`` entry, also ``<window>.<metric>`` columns
WINDOW_METRICS = ("success_rate", "goodput_per_s", "amplification")
# two-sided 95 % Student t quantiles, by degrees of freedom
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}


def _t95(df: int) -> float:
    if df in _T95:
        return _T95[df]
    keys = sorted(_T95)
    for k in keys:
        if df < k:
            return _T95[k]
    return 1.96


def parse_grid(specs: list[str]) -> list[tuple[str, list[str]]]:
    """``["a.b=1,2", "c=x,y"]`` → ``[("a.b", ["1", "2"]), ("c", ["x", "y"])]``."""
    grid = []
    for spec in specs:
        if "=" not in spec:
            raise ScenarioError("--grid", f"expected path=v1,v2,..., got {spec!r}")
        path, values = spec.split("=", 1)
        path = path.strip()
        vals = [v.strip() for v in values.split(",") if v.strip() != ""]
        if not path or not vals:
            raise ScenarioError("--grid", f"expected path=v1,v2,..., got {spec!r}")
        if path == "seed":
            raise ScenarioError("--grid", "the seed is varied by --seeds (each grid point runs "
                                          "seeds seed, seed+1, ...): a grid over it would run "
                                          "the same seeds twice")
        if len(set(vals)) != len(vals):
            twice = sorted({v for v in vals if vals.count(v) > 1})
            raise ScenarioError("--grid", f"{path}: value(s) {', '.join(twice)} listed twice")
        if any(p == path for p, _ in grid):
            raise ScenarioError("--grid", f"{path} is given twice")
        grid.append((path, vals))
    return grid


def check_size(grid: list[tuple[str, list[str]]], seeds: int) -> None:
    """Refuse a sweep of fewer than one or more than :data:`MAX_RUNS` runs, naming the option."""
    if seeds < 1:
        raise ScenarioError("--seeds", f"expected an integer >= 1, got {seeds}")
    if seeds > MAX_RUNS:
        raise ScenarioError("--seeds", f"expected at most {MAX_RUNS:,} (runs in one sweep), "
                                       f"got {seeds:,}")
    points = math.prod(len(v) for _, v in grid)
    if points * seeds > MAX_RUNS:
        raise ScenarioError("--grid", f"{points:,} grid points x {seeds:,} seeds = "
                                      f"{points * seeds:,} runs; at most {MAX_RUNS:,}")


def _row(point: dict, seed: int, summary: dict) -> list[dict]:
    rows = []
    for name, w in summary["workloads"].items():
        done = w["succeeded"] + w["failed"]
        rows.append({
            **point, "seed": seed, "workload": name, "strategy": w["strategy"],
            "jobs": w["jobs"],
            "success_rate": round(w["succeeded"] / done, 6) if done else None,
            "amplification": w["amplification"],
            "peak_attempts_per_s": w["peak_attempts_per_s"],
            "duplicate_executions": w["duplicate_executions"],
            "p50_ms": w["latency_ms"]["p50"], "p99_ms": w["latency_ms"]["p99"],
            "cost_usd": w["cost_usd"], "trace_hash": summary["trace_hash"],
            **{f"{win}.{m}": entry[name].get(m)
               for win, entry in (summary.get("windows") or {}).items() if name in entry
               for m in WINDOW_METRICS},
        })
    return rows


def metric_names(window_names: list[str]) -> list[str]:
    """The columns a sweep has per workload (and so what ``--heatmap`` can map)."""
    return [*METRICS, *(f"{w}.{m}" for w in window_names for m in WINDOW_METRICS)]


def _one(source: str, overrides: list[str], base_dir: str | None,
         should_stop: Callable[[], bool] | None = None) -> dict:
    from .runtime.local import run_local

    sc = load_scenario(source, overrides)
    return run_local(sc, base_dir=Path(base_dir) if base_dir else None,
                     should_stop=should_stop).summary


def run_sweep(source: str, grid: list[tuple[str, list[str]]], seeds: int, *,
              backend: str = "local", address: str | None = None, base_seed: int | None = None,
              extra: list[str] = (),
              progress: Callable[[int, int], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> dict:
    """Run every grid point × seed; returns ``{"runs": [...], "rows": [...], ...}``. When
    ``should_stop()`` turns true the sweep keeps every run that finished and is marked
    ``interrupted``."""
    check_size(grid, seeds)
    stop = should_stop or (lambda: False)
    keys = [k for k, _ in grid]
    points = [dict(zip(keys, combo, strict=True))
              for combo in itertools.product(*(v for _, v in grid))] or [{}]
    first = load_scenario(source, list(extra))  # validates the file and the base overrides
    seed0 = first.seed if base_seed is None else base_seed
    jobs = []
    for point in points:
        if stop():
            break
        values = [*extra, *(f"{k}={v}" for k, v in point.items())]
        # fail fast, before any run, on a bad value; the seed only moves within its range,
        # so the point's last seed stands for all of them
        load_scenario(source, [*values, f"seed={seed0 + seeds - 1}"])
        jobs.extend((point, seed0 + i, [*values, f"seed={seed0 + i}"]) for i in range(seeds))
    base_dir = str(Path(source).parent)
    t0 = time.perf_counter()
    summaries: list[dict | None] = []
    if backend == "local":
        for n, (_, _, ov) in enumerate(jobs):
            if stop():
                break
            summaries.append(_one(source, ov, base_dir, stop))
            if progress:
                progress(n + 1, len(jobs))
    else:
        import ray

        from .runtime.ray import _init_ray

        started = _init_ray(address)
        try:
            task = ray.remote(num_cpus=1)(_one)
            refs = [task.remote(source, ov, base_dir) for _, _, ov in jobs]
            index = {ref: i for i, ref in enumerate(refs)}
            results: list[dict | None] = [None] * len(refs)
            remaining = list(refs)
            while remaining:
                ready, remaining = ray.wait(remaining, num_returns=1, timeout=0.5)
                for ref in ready:
                    results[index[ref]] = ray.get(ref)
                if progress and ready:
                    progress(len(refs) - len(remaining), len(refs))
                if stop():
                    for ref in remaining:
                        ray.cancel(ref, force=True)
                    break
            summaries = results
        finally:
            if started:
                ray.shutdown()
    wall = time.perf_counter() - t0
    rows = []
    finished = 0
    for (point, seed, _), summary in zip(jobs, summaries, strict=False):
        if summary is None or summary.get("interrupted"):
            continue  # a run the stop request cut short is not a result
        finished += 1
        rows.extend(_row(point, seed, summary))
    out = {"scenario": first.name, "grid": dict(grid), "seeds": seeds, "backend": backend,
           "runs": finished, "wall_seconds": round(wall, 3),
           "runs_per_minute": round(finished / wall * 60, 2) if wall else None,
           "rows": rows}
    if finished < len(jobs):
        out["interrupted"] = True
        out["runs_planned"] = len(jobs)
    return out


def summarize_sweep(result: dict) -> list[dict]:
    """Mean and 95 % interval half-width per (grid point, workload) over seeds."""
    keys = list(result["grid"])
    groups: dict[tuple, list[dict]] = {}
    for row in result["rows"]:
        groups.setdefault((*(row[k] for k in keys), row["workload"]), []).append(row)
    out = []
    for gkey, rows in groups.items():
        entry = dict(zip([*keys, "workload"], gkey, strict=True))
        entry["runs"] = len(rows)
        for m in [m for m in rows[0] if m in METRICS or ("." in m and m not in keys)]:
            vals = [r[m] for r in rows if r.get(m) is not None]
            if not vals:
                entry[m] = entry[f"{m}_ci95"] = None
                continue
            mean = sum(vals) / len(vals)
            if len(vals) > 1:
                sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
                half = _t95(len(vals) - 1) * sd / math.sqrt(len(vals))
            else:
                half = None
            entry[m] = mean
            entry[f"{m}_ci95"] = half
        out.append(entry)
    return out


def write_sweep(result: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "sweep.json", out / "sweep.csv"]
    files[0].write_text(json.dumps({**result, "summary": summarize_sweep(result)}, indent=2))
    rows = result["rows"]
    with files[1].open("w", newline="") as fh:
        if rows:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return files
