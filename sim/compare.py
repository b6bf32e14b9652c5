"""``apidam compare``: runs (or a sweep's grid points) side by side.

Each input is a run folder, its ``summary.json``, a scenario's output folder (its ``latest``
run), or a sweep folder / ``sweep.json`` (each grid point, averaged over its seeds, becomes a
column). Per workload and per domain, the key figures of every run beside the first one's, with
the difference (absolute and %). What differs in how the runs were made (scenario, scenario
file, seed, overrides, backend) is flagged, so a difference in numbers is not mistaken for a
difference in policy.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from .provenance import LATEST, resolve_run

__all__ = ["DOMAIN_METRICS", "WORKLOAD_METRICS", "CompareError", "RunView", "compare",
           "load_views"]

#: (name, how to read it from a run summary's workload entry)
WORKLOAD_METRICS: tuple[tuple[str, str], ...] = (
    ("jobs", "jobs"), ("succeeded", "succeeded"), ("failed", "failed"), ("pending", "pending"),
    ("success_rate", "*success_rate"), ("upstream_attempts", "upstream_attempts"),
    ("amplification", "amplification"), ("peak_attempts_per_s", "peak_attempts_per_s"),
    ("duplicate_executions", "duplicate_executions"), ("p50_ms", "latency_ms.p50"),
    ("p99_ms", "latency_ms.p99"), ("lost_revenue_usd", "costs_usd.lost_revenue"),
    ("cost_usd", "cost_usd"))
DOMAIN_METRICS = ("permits", "attempts", "max_rate_1s", "backlog_max", "breaker_opens",
                  "open_seconds")
_PROVENANCE_KEYS = ("scenario", "scenario_sha256", "seed", "overrides", "backend")


class CompareError(ValueError):
    """An input that is not a run or a sweep (the message names it)."""


class RunView(msgspec.Struct):
    label: str
    source: str
    made: dict  # scenario, scenario_sha256, seed, overrides, backend (what is known)
    workloads: dict[str, dict[str, float | None]]
    domains: dict[str, dict[str, float | None]]


def _get(entry: dict, path: str) -> float | None:
    if path == "*success_rate":
        done = entry.get("succeeded", 0) + entry.get("failed", 0)
        return round(entry["succeeded"] / done, 6) if done else None
    v: object = entry
    for part in path.split("."):
        if not isinstance(v, dict) or part not in v:
            return None
        v = v[part]
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


def _read_json(p: Path) -> dict:
    try:
        doc = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CompareError(f"{p}: not a readable JSON file ({e})") from None
    if not isinstance(doc, dict):
        raise CompareError(f"{p}: not a run summary or a sweep")
    return doc


def _run_view(folder: Path, doc: dict) -> RunView:
    if not isinstance(doc.get("workloads"), dict):
        raise CompareError(f"{folder}: summary.json has no workloads")
    prov = doc.get("provenance") or {}
    made = {"scenario": doc.get("scenario"), "scenario_sha256": prov.get("scenario_sha256"),
            "seed": doc.get("seed"), "overrides": prov.get("overrides"),
            "backend": doc.get("backend")}
    workloads = {name: {m: _get(w, path) for m, path in WORKLOAD_METRICS}
                 for name, w in doc["workloads"].items() if isinstance(w, dict)}
    domains = {name: {m: _get(d, m) for m in DOMAIN_METRICS}
               for name, d in (doc.get("domains") or {}).items() if isinstance(d, dict)}
    return RunView(folder.name, str(folder), made, workloads, domains)


def _sweep_views(path: Path, doc: dict) -> list[RunView]:
    keys = list(doc.get("grid") or {})
    points: dict[tuple, dict[str, dict]] = {}
    for e in doc.get("summary") or []:
        point = tuple((k, e.get(k)) for k in keys)
        points.setdefault(point, {})[e["workload"]] = e
    views = []
    for point, workloads in points.items():
        label = ",".join(f"{k}={v}" for k, v in point) or "base"
        made = {"scenario": doc.get("scenario"), "overrides": [f"{k}={v}" for k, v in point],
                "seed": f"{doc.get('seeds')} seeds", "backend": doc.get("backend")}
        wl = {name: {m: e.get(m) for m, _ in WORKLOAD_METRICS if m in e}
              for name, e in workloads.items()}
        views.append(RunView(label, str(path), made, wl, {}))
    if not views:
        raise CompareError(f"{path}: the sweep has no finished run")
    return views


def load_views(inputs: list[str]) -> list[RunView]:
    views: list[RunView] = []
    for raw in inputs:
        p = Path(raw)
        if not p.exists():
            raise CompareError(f"{raw}: no such file or folder")
        if p.is_dir() and not (p / "sweep.json").exists() and (p / LATEST / "sweep.json").exists():
            p = p / LATEST
        if p.is_dir() and (p / "sweep.json").exists():
            p = p / "sweep.json"
        if p.name == "sweep.json" or (p.is_file() and "rows" in _read_json(p)):
            views.extend(_sweep_views(p, _read_json(p)))
            continue
        folder = resolve_run(p)
        summary = folder / "summary.json"
        if not summary.is_file():
            raise CompareError(f"{raw}: no summary.json (expected a run folder, its "
                               f"summary.json, a scenario's output folder or a sweep)")
        views.append(_run_view(folder, _read_json(summary)))
    seen: dict[str, int] = {}
    for v in views:  # labels must tell the columns apart
        n = seen[v.label] = seen.get(v.label, 0) + 1
        if n > 1:
            v.label = f"{v.label}#{n}"
    return views


def _delta(base: float | None, v: float | None) -> tuple[float | None, float | None]:
    if base is None or v is None:
        return None, None
    d = v - base
    return round(d, 6), (round(100.0 * d / base, 2) if base else None)


def compare(views: list[RunView]) -> dict:
    """The comparison as data: runs, what differs in how they were made, and per workload and
    domain each metric's values with the difference to the first run."""
    if len(views) < 2:
        raise CompareError("give at least two runs (or a sweep with two grid points)")
    differs = [k for k in _PROVENANCE_KEYS
               if len({json.dumps(v.made.get(k), sort_keys=True) for v in views}) > 1]

    def table(kind: str, metrics) -> dict:
        names = list(dict.fromkeys(n for v in views for n in getattr(v, kind)))
        out: dict = {}
        for name in names:
            rows = {}
            for m in metrics:
                vals = [getattr(v, kind).get(name, {}).get(m) for v in views]
                if all(x is None for x in vals):
                    continue
                deltas = [_delta(vals[0], x) for x in vals[1:]]
                rows[m] = {"values": vals, "delta": [d for d, _ in deltas],
                           "delta_pct": [p for _, p in deltas]}
            out[name] = rows
        return out

    return {
        "runs": [{"label": v.label, "source": v.source, **v.made} for v in views],
        "differs_in": differs,
        "workloads": table("workloads", [m for m, _ in WORKLOAD_METRICS]),
        "domains": table("domains", DOMAIN_METRICS),
    }
