"""The local runtime: every actor in one process, one heap."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from engine.units import US_PER_S

from ..build import build
from ..gctune import long_run_gc
from ..kernel import Kernel, spawn_rngs
from ..result import RunResult, summarize
from ..scenario import Scenario
from ..tracefile import TraceWriter

__all__ = ["run_local"]

STEP = US_PER_S  # progress and interruption checks once per simulated second ...
MIN_STEP = US_PER_S // 1024  # ... or down to ~1 ms of simulated time when a step is slow
SLOW_STEP_S = 0.25  # wall seconds


def run_local(sc: Scenario, *, base_dir: Path | None = None, trace: bool = False,
              trace_to: TraceWriter | None = None,
              progress: Callable[[int, int], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> RunResult:
    """Run ``sc`` to its horizon (duration + drain) or until nothing is left to happen; when
    ``should_stop()`` turns true, stop there and return the partial result, marked
    ``interrupted``. It is checked after every step: a simulated second, or less where a
    second of a dense scenario would take more than a fraction of a wall second (the step
    adapts; the trace hash does not depend on it).

    ``trace``: keep every delivered event in ``result.trace``; ``trace_to``: stream them to a
    file instead, one step at a time (memory stays bounded whatever the run's length)."""
    with long_run_gc():
        return _run(sc, base_dir, trace or trace_to is not None, trace_to, progress,
                    should_stop)


def _run(sc: Scenario, base_dir: Path | None, trace: bool, trace_to: TraceWriter | None,
         progress: Callable[[int, int], None] | None,
         should_stop: Callable[[], bool] | None) -> RunResult:
    t0 = time.perf_counter()
    topo, actors, _groups, metrics = build(sc, base_dir)
    kernel = Kernel(trace_sink=[] if trace else None)
    sink = kernel.trace_sink
    kernel.add(actors, spawn_rngs(sc.seed, len(actors)))
    kernel.start()
    horizon = topo.horizon
    t = 0
    interrupted = False
    step = STEP
    while t < horizon:
        nxt = kernel.next_time()
        if nxt is None:
            break
        if nxt >= t + step:
            t = nxt - nxt % step
        t = min(t + step, horizon)
        began = time.perf_counter()
        kernel.run(t)
        if trace_to is not None:
            trace_to.write(sink)
            sink.clear()
        took = time.perf_counter() - began
        if took > SLOW_STEP_S and step > MIN_STEP:
            # stay responsive to a stop request in dense stretches
            step = max(MIN_STEP, int(step * SLOW_STEP_S / took))
        elif took < SLOW_STEP_S / 4 and step < STEP:
            step *= 2
        if progress is not None:
            progress(t, horizon)
        if should_stop is not None and should_stop():
            interrupted = True
            break
    wall = time.perf_counter() - t0
    gw = actors[topo.gateway]
    result = summarize(sc, topo, metrics, backend="local", trace_hash=kernel.trace_hash(),
                       events=kernel.events, sim_us=kernel.now, wall_s=wall,
                       extra={"recovered_jobs": gw.recovered,
                              "lost_machines": sum(getattr(a, "lost", 0) for a in actors),
                              **({"interrupted": True, "interrupted_at_s": t / STEP}
                                 if interrupted else {})})
    result.trace = sink if trace_to is None else None
    return result
