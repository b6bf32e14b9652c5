"""Actor groups advanced in parallel by conservative synchronisation, whatever carries the bytes.

A *placement* (``sim.runtime.planning``) splits the actors into groups. Every group
(``sim.runtime.workers.GroupWorker``) builds the whole
topology from the scenario, so every actor gets the same id and the same RNG as in the local
runtime, and runs only its members. The :class:`Coordinator` advances virtual time with
per-group Chandy–Misra bounds: ``LA[h][g]`` is the shortest delay any message from group ``h`` to
group ``g`` can have (from the actors' link latencies; none if they never talk). Each round,
``E[k]`` is the earliest event group ``k`` holds or has been sent, and group ``g`` may run every
event before ``H[g] = min over k of E[k] + P[k][g]``, where ``P[k][g]`` is the shortest path of at
least one link from ``k`` into ``g`` (precomputed): nothing can reach ``g`` earlier. Groups with
nothing to do before their bound sit the round out; empty stretches are skipped. Messages to
other groups leave a round as one msgpack ``bytes`` per (group → group) pair (tagged messages,
``sim.messages.encode_batch``), and a message that would arrive below its receiver's bound raises
``CausalityError``, so a wrong link floor
can never go unnoticed.

Each group returns the keys of the events it processed; the coordinator merges them (keys are
unique and totally ordered) into the same trace hash as the local runtime's.

How requests reach the groups is a *transport*: :class:`InProcess` calls them directly (tests,
and the protocol's own cost), ``sim.runtime.ray`` runs each group as a Ray actor.
"""

from __future__ import annotations

import hashlib
import heapq
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import msgspec

from engine.units import US_PER_S

from ..gctune import long_run_gc
from ..kernel import TIME_SHIFT, fold_trace
from ..metrics import Metrics
from ..result import RunResult, summarize
from ..scenario import Scenario
from .planning import INF, GroupPlan, plan_groups
from .workers import GroupWorker, Reply

__all__ = ["Coordinator", "GroupFailure", "InProcess", "Outcome", "Transport", "merge_finals",
           "run_groups", "summarize_groups"]

_REPORT_EVERY = US_PER_S  # µs of virtual time between progress reports


class GroupFailure(RuntimeError):
    """A group could not answer: it died (``died``) or its step raised (``detail``)."""

    def __init__(self, group: int, detail: str, *, died: bool) -> None:
        super().__init__(detail)
        self.group = group
        self.detail = detail
        self.died = died


class Transport(Protocol):
    """Carries the coordinator's requests to the groups. Raises :class:`GroupFailure`."""

    def start(self) -> list[Reply]: ...

    def step(self, requests: dict[int, tuple[list[bytes], int, list[int]]]) -> dict[int, Reply]:
        """Run every requested group (concurrently if the transport can); their replies."""

    def finish(self) -> list[dict]: ...

    def salvage(self) -> list[dict]:
        """After a failure: the final state of every group that can still answer."""


class InProcess:
    """Every group in this process, called in turn: the protocol without a network."""

    def __init__(self, scenario_doc: dict, base_dir: str | None, plan: GroupPlan) -> None:
        self.workers = [GroupWorker(scenario_doc, base_dir, plan.actor_group, g)
                        for g in range(len(plan.names))]
        self.failed: set[int] = set()

    def _call(self, g: int, method: Callable, *args):
        try:
            return method(*args)
        except Exception as e:
            self.failed.add(g)
            raise GroupFailure(g, f"{type(e).__name__}: {e}", died=False) from e

    def start(self) -> list[Reply]:
        return [self._call(g, w.start) for g, w in enumerate(self.workers)]

    def step(self, requests):
        return {g: self._call(g, self.workers[g].step, *req) for g, req in requests.items()}

    def finish(self) -> list[dict]:
        return [w.finish() for w in self.workers]

    def salvage(self) -> list[dict]:
        return [w.finish() for g, w in enumerate(self.workers) if g not in self.failed]


@dataclass
class Outcome:
    """What a coordinated run produced."""

    trace_hash: str
    events: int
    windows: int
    batches: int
    messages: int
    finals: list[dict]
    interrupted_at: int | None = None  # virtual µs, when a stop request ended the run


class Coordinator:
    """Advances the groups of ``plan`` to ``horizon`` through ``transport``; see the module doc."""

    def __init__(self, plan: GroupPlan, horizon: int) -> None:
        self.plan = plan
        self.horizon = horizon
        n = len(plan.names)
        self.n = n
        self.interrupted_at: int | None = None  # virtual µs where a stop request ended it
        self.inputs = [[(k, plan.paths[k][g]) for k in range(n) if plan.paths[k][g] < INF]
                       for g in range(n)]
        self.inboxes: list[list[bytes]] = [[] for _ in range(n)]
        self.inbox_min = [INF] * n
        self.nexts = [INF] * n
        self.pending: list[list[int]] = [[] for _ in range(n)]  # delivered keys not yet hashed
        self.block: list[int] = []
        self.hasher = hashlib.blake2b(digest_size=16)
        self.events = 0
        self.windows = 0
        self.batches = 0
        self.messages = 0
        self.now = 0  # the earliest pending event when the current round began

    def _absorb(self, g: int, reply: Reply) -> None:
        out, nxt, keys = reply
        self.nexts[g] = INF if nxt < 0 else nxt
        for h, blob, first, count in out:
            self.inboxes[h].append(blob)
            if first < self.inbox_min[h]:
                self.inbox_min[h] = first
            self.messages += count
        self.batches += len(out)
        if keys:
            self.events += len(keys)
            self.pending[g].extend(keys)

    def _hash_below(self, time_us: int) -> None:
        """Fold into the hash, in global order, every delivered key due before ``time_us``:
        every group has delivered all of those."""
        limit = time_us << TIME_SHIFT
        ready = []
        for keys in self.pending:
            cut = bisect_left(keys, limit)
            if cut:
                ready.append(keys[:cut])
                del keys[:cut]
        block = self.block
        if len(ready) == 1:
            block.extend(ready[0])
        elif ready:
            block.extend(heapq.merge(*ready))
        fold_trace(self.hasher, block, final=False)

    def bounds(self) -> tuple[list[int], list[int]]:
        """Each group's earliest event and the time it may run to this round."""
        earliest = [min(a, b) for a, b in zip(self.nexts, self.inbox_min, strict=True)]
        bounds = []
        for ins in self.inputs:
            b = self.horizon
            for k, p in ins:
                v = earliest[k] + p
                if v < b:
                    b = v
            bounds.append(b)
        return earliest, bounds

    def run(self, transport: Transport, *,
            progress: Callable[[int, int], None] | None = None,
            on_window: Callable[[int], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> Outcome:
        for g, reply in enumerate(transport.start()):
            self._absorb(g, reply)
        report_at = 0
        while True:
            earliest, bounds = self.bounds()
            active = [g for g in range(self.n) if earliest[g] < bounds[g]]
            if not active:
                break
            self.now = min(earliest)
            self.windows += 1
            if on_window is not None:
                on_window(self.windows)
            requests = {}
            for g in active:
                requests[g] = (self.inboxes[g], bounds[g], bounds)
                self.inboxes[g] = []
                self.inbox_min[g] = INF
            for g, reply in transport.step(requests).items():
                self._absorb(g, reply)
            done = min(bounds)
            self._hash_below(done)
            if progress is not None and done >= report_at:  # once per simulated second
                progress(done, self.horizon)
                report_at = done + _REPORT_EVERY
            if should_stop is not None and should_stop():
                self.interrupted_at = done
                break
        self._hash_below(INF)
        finals = transport.finish()
        fold_trace(self.hasher, self.block, final=True)
        return Outcome(self.hasher.hexdigest(), self.events, self.windows, self.batches,
                       self.messages, finals, self.interrupted_at)


def merge_finals(finals: list[dict]) -> Metrics:
    metrics = Metrics.from_state(finals[0]["metrics"])
    for f in finals[1:]:
        metrics.merge(Metrics.from_state(f["metrics"]))
    return metrics


def run_groups(sc: Scenario, *, placement: str = "default", base_dir: Path | None = None,
               progress: Callable[[int, int], None] | None = None) -> RunResult:
    """Run ``sc`` as groups in this process: the Ray runtime's protocol (bounds, batches, wire
    format, merged hash) without Ray. Same results and trace hash as ``run_local``."""
    with long_run_gc():
        return _run_groups(sc, placement, base_dir, progress)


def _run_groups(sc: Scenario, placement: str, base_dir: Path | None,
                progress: Callable[[int, int], None] | None) -> RunResult:
    t0 = time.perf_counter()
    plan, topo, _actors = plan_groups(sc, placement, base_dir)
    transport = InProcess(msgspec.to_builtins(sc), str(base_dir) if base_dir else None, plan)
    coordinator = Coordinator(plan, topo.horizon)
    try:
        out = coordinator.run(transport, progress=progress)
    except GroupFailure as e:
        raise RuntimeError(f"group {plan.names[e.group]!r} failed at virtual time "
                           f"{coordinator.now / US_PER_S:.6f} s: {e.detail}") from e
    return summarize_groups(sc, topo, plan, out, backend="groups", wall_s=time.perf_counter() - t0)


def summarize_groups(sc: Scenario, topo, plan: GroupPlan, out: Outcome, *, backend: str,
                     wall_s: float) -> RunResult:
    return summarize(sc, topo, merge_finals(out.finals), backend=backend,
                     trace_hash=out.trace_hash, events=out.events,
                     sim_us=max(f["now"] for f in out.finals), wall_s=wall_s,
                     extra={"recovered_jobs": sum(f["recovered"] for f in out.finals),
                            "lost_machines": sum(f["lost"] for f in out.finals),
                            "sync": {"placement": plan.placement, "groups": len(plan.names),
                                      "windows": out.windows, "lookahead_us": plan.lookahead,
                                      "cross_group_batches": out.batches,
                                      "cross_group_messages": out.messages},
                            **({"interrupted": True,
                                "interrupted_at_s": out.interrupted_at / US_PER_S}
                               if out.interrupted_at is not None else {})})
