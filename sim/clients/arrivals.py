"""Arrival processes: ``poisson``, ``constant``, ``piecewise`` (rate by segment) or ``trace``
(a CSV of arrival times in seconds), generated one simulated second at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.units import US_PER_S as S

from ..scenario import ScenarioError
from ..scenario.resolved import WorkloadSpec
from ..scenario.schema import MAX_DURATION_US, MAX_JOBS

#: a trace file read at all: MAX_JOBS lines of up to ~90 characters
MAX_TRACE_BYTES = 256 << 20

__all__ = ["arrival_times", "check_traces", "load_trace"]



def arrival_times(w: WorkloadSpec, t0: int, t1: int, rng: np.random.Generator,
                  trace: np.ndarray | None, state: dict) -> list[int]:
    """Arrival times (µs) in [t0, t1) for workload ``w``."""
    a = w.arrivals
    if a.process == "trace":
        assert trace is not None
        lo, hi = np.searchsorted(trace, [t0, t1])
        return trace[lo:hi].tolist()
    if a.process == "piecewise":
        rate = a.segments[-1].rate
        for seg in a.segments:
            if t0 < seg.until_us:
                rate = seg.rate
                break
    else:
        rate = a.rate
    if rate <= 0:
        return []
    span = t1 - t0
    if a.process == "constant":
        step = S / rate
        nxt = state.get("next", float(t0))
        out = []
        while nxt < t1:
            if nxt >= t0:
                out.append(int(nxt))
            nxt += step
        state["next"] = nxt
        return out
    n = int(rng.poisson(rate * span / S))
    return np.sort(t0 + (rng.random(n) * span).astype(np.int64)).tolist()


def load_trace(index: int, file: str, base_dir: Path | None) -> np.ndarray:
    """A trace workload's arrival times (µs, sorted); errors name the workload's field."""
    path = Path(file)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        if path.stat().st_size > MAX_TRACE_BYTES:
            raise ScenarioError(f"$.workloads[{index}].arrivals.file",
                                f"{path} is larger than {MAX_TRACE_BYTES:,} bytes")
        times = np.loadtxt(path, delimiter=",", ndmin=1, dtype=np.float64)
    except (OSError, ValueError) as e:
        raise ScenarioError(f"$.workloads[{index}].arrivals.file",
                            f"cannot read arrival times from {path}: {e}") from None
    if times.ndim != 1 or not np.all(np.isfinite(times)) or np.any(times < 0):
        raise ScenarioError(f"$.workloads[{index}].arrivals.file",
                            "expected one non-negative number of seconds per line")
    if len(times) > MAX_JOBS:
        raise ScenarioError(f"$.workloads[{index}].arrivals.file",
                            f"{len(times):,} arrivals; at most {MAX_JOBS:,} per run")
    if times.size and times.max() * S > MAX_DURATION_US:
        raise ScenarioError(f"$.workloads[{index}].arrivals.file",
                            f"an arrival at {times.max():,.0f} s; at most 30 days")
    return np.sort((times * S).astype(np.int64))


def check_traces(sc, base_dir: Path | None, file: str | None = None) -> None:
    """Read every trace workload's file as a run would (``apidam validate``: whatever it
    accepts, ``run`` runs); the first problem raises :class:`ScenarioError` (of ``file``)."""
    for i, w in enumerate(sc.workloads):
        if w.arrivals.process == "trace" and w.arrivals.file:
            try:
                load_trace(i, w.arrivals.file, base_dir)
            except ScenarioError as e:
                raise ScenarioError(e.path, e.reason, file) from None
