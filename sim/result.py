"""RunResult: the summary (a JSON-able dict) and the arrays (1 s time series, latency samples)."""

from __future__ import annotations

import json
from pathlib import Path

import msgpack
import numpy as np

from engine.units import US_PER_S as S

from .costs import workload_costs
from .metrics import Metrics
from .scenario import Scenario

__all__ = ["RunResult", "summarize"]



def _pcts(samples) -> dict[str, float | None]:
    if len(samples) == 0:
        return {"p50": None, "p90": None, "p99": None, "p999": None}
    a = np.frombuffer(samples, dtype=np.float64) if not isinstance(samples, np.ndarray) \
        else samples
    p = np.percentile(a, [50, 90, 99, 99.9])
    return {"p50": round(float(p[0]), 3), "p90": round(float(p[1]), 3),
            "p99": round(float(p[2]), 3), "p999": round(float(p[3]), 3)}


class RunResult:
    def __init__(self, summary: dict, arrays: dict[str, np.ndarray],
                 trace: list | None = None) -> None:
        self.summary = summary
        self.arrays = arrays
        self.trace = trace

    @property
    def trace_hash(self) -> str:
        return self.summary["trace_hash"]

    def save(self, out: Path) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "summary.json", out / "series.msgpack"]
        written[0].write_text(json.dumps(self.summary, indent=2, sort_keys=False) + "\n")
        packed = {k: {"dtype": str(v.dtype), "shape": list(v.shape), "data": v.tobytes()}
                  for k, v in self.arrays.items()}
        written[1].write_bytes(msgpack.packb(packed, use_bin_type=True))
        return written

    @classmethod
    def load(cls, folder: Path) -> RunResult:
        """What :meth:`save` wrote (``summary.json``; ``series.msgpack`` when present)."""
        summary = json.loads((folder / "summary.json").read_text())
        arrays: dict[str, np.ndarray] = {}
        series = folder / "series.msgpack"
        if series.is_file():
            for k, v in msgpack.unpackb(series.read_bytes(), raw=False).items():
                arrays[k] = np.frombuffer(v["data"], dtype=v["dtype"]).reshape(v["shape"])
        return cls(summary, arrays)


def summarize(sc: Scenario, topo, metrics: Metrics, *, backend: str, trace_hash: str,
              events: int, sim_us: int, wall_s: float, extra: dict | None = None) -> RunResult:
    c = metrics.count
    arrays = metrics.arrays()
    workloads = {}
    for i, w in enumerate(sc.workloads):
        jobs = c["jobs"][i]
        done = c["succeeded"][i] + c["failed"][i] + c["deduped"][i]
        attempts = c["upstream_attempts"][i]
        logical = jobs - c["deduped"][i]
        series = arrays["attempts_per_s"][i]
        dam_jobs = (logical if w.strategy == "performance" else c["forwarded"][i]) \
            if w.strategy != "diy" else 0
        dam_jobs_charged = max(0, dam_jobs - c["refused"][i])
        local_invocations = logical if w.strategy != "performance" else 0
        outcomes = metrics.outcomes[i]
        costs = workload_costs(
            sc, i, local_invocations=local_invocations, egress_bytes=c["egress_bytes"][i],
            busy_seconds=c["busy_us"][i] / S,
            queue_requests=attempts - c["dam_attempts"][i] if w.strategy == "diy" else 0,
            dam_jobs_charged=dam_jobs_charged, attempts=attempts,
            successful_attempts=sum(n for k, n in outcomes.items()
                                    if isinstance(k, int) and 200 <= k <= 299),
            lost_jobs=c["failed"][i] + jobs - done, duplicates=c["duplicates"][i])
        workloads[w.name] = {
            "strategy": w.strategy,
            "jobs": jobs,
            "deduped": c["deduped"][i],
            "succeeded": c["succeeded"][i],
            "failed": c["failed"][i],
            "pending": jobs - done,
            "refused": c["refused"][i],
            "children": c["children"][i],
            "local_success": c["local_success"][i],
            "forwarded": c["forwarded"][i],
            "upstream_attempts": attempts,
            "dam_attempts": c["dam_attempts"][i],
            "amplification": round(attempts / logical, 4) if logical else None,
            "peak_attempts_per_s": int(series.max()) if series.size else 0,
            # the busiest 100 ms, as a rate per second (1 s bins hide retry waves)
            "peak_attempts_per_100ms": metrics.peak_100ms[i] * 10,
            "duplicate_executions": c["duplicates"][i],
            # attempts an upstream served after the caller had timed out (abandoned work)
            "wasted_work": c["wasted_work"][i],
            # queue-model defences: requests dropped unserved (caller gone) / by CoDel
            "dropped_expired": c["dropped_expired"][i],
            "codel_drops": c["codel_drops"][i],
            "dam_observed_duplicates": c["dam_duplicates"][i],
            "latency_ms": _pcts(metrics.latency[i]),
            "delivery_latency_ms": _pcts(metrics.delivery_latency[i]),
            "webhooks": {"attempts": c["webhook_attempts"][i], "delivered": c["delivered"][i],
                         "undelivered": c["undelivered"][i],
                         # decided jobs whose deliveries were still scheduled or in flight
                         "pending": c["webhooks_pending"][i]},
            "egress_bytes": c["egress_bytes"][i],
            "peak_concurrency": metrics.peak_concurrency[i],
            "client_rejects": c["client_rejects"][i],
            "budget_denied": c["budget_denied"][i],
            "cost_usd": costs["total"],
            "costs_usd": costs,
            "outcomes": {str(k): v for k, v in sorted(metrics.outcomes[i].items(),
                                                      key=lambda kv: str(kv[0]))},
        }
    domains = {}
    for d, dom in enumerate(topo.domains):
        permits = int(arrays["permits_per_s_by_domain"][d].sum())
        dam_attempts = int(arrays["dam_attempts_per_s_by_domain"][d].sum())
        opens, reopens, probes, open_us, open_since = metrics.breakers[d]
        if open_since >= 0:  # still open (or half-open) when the run ended
            open_us += max(0, sim_us - open_since)
        domains[dom] = {
            "permits": permits,
            "attempts": dam_attempts,
            "max_rate_1s": int(arrays["dam_attempts_per_s_by_domain"][d].max()),
            "backlog_max": int(arrays["backlog_max_by_domain"][d].max()),
            "breaker_opens": opens,
            "breaker_reopens": reopens,
            "open_seconds": round(open_us / S, 3),
            "probe_attempts": probes,
            "breaker_open_at_end": open_since >= 0,
        }
    for i in range(len(sc.workloads)):
        arrays[f"latency_ms/{sc.workloads[i].name}"] = np.frombuffer(
            metrics.latency[i], dtype=np.float64).copy()
    outages = []
    rs = topo.spec
    for u in rs.upstreams:
        for o in u.outages:
            outages.append({"upstream": u.name, "start_s": o.start_us / S,
                            "end_s": o.end_us / S, "mode": o.mode})
    for o in rs.dam.outages:
        outages.append({"region": o.region, "start_s": o.start / S, "end_s": o.end / S,
                        "mode": "region_down"})
    windows = {}
    for k, (wname, start, end) in enumerate(metrics.windows):
        c = metrics.win[k]
        span = (min(end, sim_us) - start) / S if sim_us > start else 0.0
        windows[wname] = {"start_s": start / S, "end_s": end / S}
        for i, w in enumerate(sc.workloads):
            jobs, ok, failed = c["jobs"][i], c["succeeded"][i], c["failed"][i]
            lat = _pcts(metrics.win_latency[k][i])
            windows[wname][w.name] = {
                "jobs": jobs, "succeeded": ok, "failed": failed,
                "success_rate": round(ok / (ok + failed), 6) if ok + failed else None,
                "goodput_per_s": round(c["completed"][i] / span, 3) if span > 0 else None,
                "upstream_attempts": c["attempts"][i],
                "amplification": round(c["attempts"][i] / jobs, 4) if jobs else None,
                "latency_ms": {"p50": lat["p50"], "p99": lat["p99"]},
            }
    summary = {
        "scenario": sc.name,
        "seed": sc.seed,
        "backend": backend,
        "trace_hash": trace_hash,
        "events": events,
        "sim_seconds": round(sim_us / S, 3),
        "wall_seconds": round(wall_s, 3),
        "events_per_second": round(events / wall_s) if wall_s > 0 else None,
        "workloads": workloads,
        "domains": domains,
        "outages": outages,
        **({"windows": windows} if windows else {}),
        "dropped_messages": metrics.dropped_messages,
        **(extra or {}),
    }
    return RunResult(summary, arrays)
