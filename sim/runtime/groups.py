"""Actor groups advanced in parallel by conservative synchronisation, whatever carries the bytes.

A *placement* splits the actors into groups. Every group (:class:`GroupWorker`) builds the whole
topology from the scenario, so every actor gets the same id and the same RNG as in the local
runtime, and runs only its members. The :class:`Coordinator` advances virtual time with
per-group Chandy–Misra bounds: ``LA[h][g]`` is the shortest delay any message from group ``h`` to
group ``g`` can have (from the actors' link latencies; none if they never talk). Each round,
``E[k]`` is the earliest event group ``k`` holds or has been sent, and group ``g`` may run every
event before ``H[g] = min over k of E[k] + P[k][g]``, where ``P[k][g]`` is the shortest path of at
least one link from ``k`` into ``g`` (precomputed): nothing can reach ``g`` earlier. Groups with
nothing to do before their bound sit the round out; empty stretches are skipped. Messages to
other groups leave a round as one msgpack ``bytes`` per (group → group) pair, and a message that
would arrive below its receiver's bound raises :class:`CausalityError`, so a wrong link floor
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import msgspec

from ..build import build
from ..kernel import TIME_SHIFT, Kernel, fold_trace, spawn_rngs
from ..messages import decode_batch, encode_batch, routes
from ..metrics import Metrics
from ..result import RunResult, summarize
from ..scenario import Scenario, load_scenario

__all__ = ["PLACEMENTS", "CausalityError", "Coordinator", "GroupFailure", "GroupPlan",
           "GroupWorker", "InProcess", "Transport", "link_floors", "make_plan", "merge_finals",
           "placement_groups", "plan_groups", "run_groups"]

PLACEMENTS = ("default", "single", "per-actor", "regions")
INF = 1 << 62
_LOW = (1 << TIME_SHIFT) - 1
_REPORT_EVERY = 1_000_000  # µs of virtual time between progress reports


class CausalityError(RuntimeError):
    """A message arrived below its receiver's bound: a link is shorter than its floor."""


class GroupFailure(RuntimeError):
    """A group could not answer: it died (``died``) or its step raised (``detail``)."""

    def __init__(self, group: int, detail: str, *, died: bool) -> None:
        super().__init__(detail)
        self.group = group
        self.detail = detail
        self.died = died


def placement_groups(placement: str, groups: list[str], actors: list) -> list[str]:
    """The group name of every actor under ``placement``.

    ``default``: one group per dam region, one for the gateway and the limiters, one for the
    webhook dispatchers, one for the world (the design card's shape); ``regions``: like
    default, but each region's dispatcher joins its region's group; ``single``: one group;
    ``per-actor``: one group per actor.
    """
    if placement == "default":
        return list(groups)
    if placement == "single":
        return ["all"] * len(groups)
    if placement == "per-actor":
        return [f"actor-{i}" for i in range(len(groups))]
    if placement == "regions":
        return [f"region:{a.region}" if a.kind == "dispatcher" else g
                for g, a in zip(groups, actors, strict=True)]
    raise ValueError(f"unknown placement {placement!r} (expected one of {', '.join(PLACEMENTS)})")


def link_floors(topo, actors: list, actor_group: list[int], n_groups: int) -> list[list]:
    """``LA[h][g]``: the shortest delay (µs) of any message from group ``h`` to group ``g``,
    None if no actor of ``h`` ever sends to one of ``g``. Who talks to whom, and over which
    link, comes from the message catalogue (``sim.messages``); the latencies from the
    scenario."""
    talk = routes()
    gw = topo.gateway_region

    def link(name: str, a, b) -> int:
        if name == "dam":  # the gateway's region ↔ a region
            return topo.lat(gw, a.region if a.kind == "region" else b.region)
        if name == "intra":
            return topo.intra
        if name == "internet":
            return topo.to_upstream
        return topo.client_to_gateway  # "client"

    def floor(a, b) -> int | None:
        name = talk.get((a.kind, b.kind))
        return None if name is None else link(name, a, b)

    la: list[list[int | None]] = [[None] * n_groups for _ in range(n_groups)]
    for ia, a in enumerate(actors):  # actors in id order (ids are bound later, by a kernel)
        for ib, b in enumerate(actors):
            ga, gb = actor_group[ia], actor_group[ib]
            if ga == gb:
                continue
            f = floor(a, b)
            if f is not None and (la[ga][gb] is None or f < la[ga][gb]):
                la[ga][gb] = f
    return la


def entry_paths(la: list[list[int | None]]) -> list[list[int]]:
    """``P[k][g]``: the shortest path of at least one link from group ``k`` into group ``g``
    (``INF`` if there is none); ``P[g][g]`` is ``g``'s shortest cycle."""
    n = len(la)
    dist = [[0 if k == g else (la[k][g] if la[k][g] is not None else INF) for g in range(n)]
            for k in range(n)]
    for m in range(n):  # Floyd–Warshall
        for k in range(n):
            for g in range(n):
                if dist[k][m] + dist[m][g] < dist[k][g]:
                    dist[k][g] = dist[k][m] + dist[m][g]
    return [[min((dist[k][h] + la[h][g] for h in range(n) if h != g and la[h][g] is not None),
                 default=INF) for g in range(n)] for k in range(n)]


@dataclass(frozen=True)
class GroupPlan:
    """Which group every actor belongs to, and the link floors between groups."""

    placement: str
    names: list[str]          # group names, in order of first appearance in actor-id order
    actor_group: list[int]    # group index of every actor
    floors: list[list]        # LA[h][g] (µs or None)
    paths: list[list[int]] = field(repr=False)

    @property
    def lookahead(self) -> int | None:
        """The smallest floor between two groups (None for a single group)."""
        return min((x for row in self.floors for x in row if x is not None), default=None)


def make_plan(label: str, names: list[str], topo, actors: list) -> GroupPlan:
    """The plan that puts actor ``i`` in the group called ``names[i]``."""
    order = list(dict.fromkeys(names))
    gid = {n: i for i, n in enumerate(order)}
    actor_group = [gid[n] for n in names]
    la = link_floors(topo, actors, actor_group, len(order))
    return GroupPlan(label, order, actor_group, la, entry_paths(la))


def plan_groups(sc: Scenario, placement: str, base_dir: Path | None = None):
    """``(plan, topo, actors)`` for ``sc`` under ``placement``."""
    topo, actors, groups, _metrics = build(sc, base_dir)
    names = placement_groups(placement, groups, actors)
    return make_plan(placement, names, topo, actors), topo, actors


#: A group's answer to start/step: (outgoing batches [(group, msgpack bytes, earliest µs,
#: message count)], its next event time or -1, the keys it delivered in order).
Reply = tuple[list[tuple[int, bytes, int, int]], int, list[int]]


class GroupWorker:
    """One group of actors in one process."""

    def __init__(self, scenario_doc: dict, base_dir: str | None, actor_group: list[int],
                 me: int) -> None:
        sc = load_scenario(scenario_doc)
        self.topo, self.actors, _, self.metrics = build(sc, Path(base_dir) if base_dir else None)
        self.kernel = Kernel(hash_trace=False)
        self.actor_group = actor_group
        self.me = me
        self.floors: list[int] = [0] * (max(actor_group) + 1)
        self.outbox: dict[int, list] = {}
        self.kernel.add(self.actors, spawn_rngs(sc.seed, len(self.actors)), push=self._route)
        self.members = [a for a in self.actors if actor_group[a.id] == me]

    def _route(self, entry: tuple) -> None:
        key, target, _msg = entry
        g = self.actor_group[target]
        if g == self.me:
            heapq.heappush(self.kernel.heap, entry)
            return
        if key >> TIME_SHIFT < self.floors[g]:
            raise CausalityError(
                f"a message from group {self.me} to group {g} is due at "
                f"{key >> TIME_SHIFT} us, below that group's bound ({self.floors[g]} us): "
                f"a link is shorter than its declared floor")
        box = self.outbox.get(g)
        if box is None:
            box = self.outbox[g] = []
        box.append(entry)

    def _reply(self) -> Reply:
        out = []
        for g, entries in self.outbox.items():
            packed = encode_batch([(k >> TIME_SHIFT, k & _LOW, t, m) for k, t, m in entries])
            out.append((g, packed, min(entries)[0] >> TIME_SHIFT, len(entries)))
        self.outbox = {}
        heap = self.kernel.heap
        return out, heap[0][0] >> TIME_SHIFT if heap else -1, self.kernel.take_keys()

    def start(self) -> Reply:
        for a in self.members:
            a.start(0)
        return self._reply()

    def step(self, inbox: list[bytes], until: int, floors: list[int]) -> Reply:
        heap = self.kernel.heap
        push = heapq.heappush
        for chunk in inbox:
            for t, low, target, msg in decode_batch(chunk):
                push(heap, ((t << TIME_SHIFT) | low, target, msg))
        self.floors = floors
        self.kernel.run(until)
        return self._reply()

    def finish(self) -> dict:
        gw = self.actors[self.topo.gateway]
        return {
            "metrics": self.metrics.to_state(),
            "events": self.kernel.events,
            "now": self.kernel.now,
            "recovered": gw.recovered if self.actor_group[gw.id] == self.me else 0,
            "lost": sum(getattr(a, "lost", 0) for a in self.members),
        }


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


class Coordinator:
    """Advances the groups of ``plan`` to ``horizon`` through ``transport``; see the module doc."""

    def __init__(self, plan: GroupPlan, horizon: int) -> None:
        self.plan = plan
        self.horizon = horizon
        n = len(plan.names)
        self.n = n
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
            on_window: Callable[[int], None] | None = None) -> Outcome:
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
        self._hash_below(INF)
        finals = transport.finish()
        fold_trace(self.hasher, self.block, final=True)
        return Outcome(self.hasher.hexdigest(), self.events, self.windows, self.batches,
                       self.messages, finals)


def merge_finals(finals: list[dict]) -> Metrics:
    metrics = Metrics.from_state(finals[0]["metrics"])
    for f in finals[1:]:
        metrics.merge(Metrics.from_state(f["metrics"]))
    return metrics


def run_groups(sc: Scenario, *, placement: str = "default", base_dir: Path | None = None,
               progress: Callable[[int, int], None] | None = None) -> RunResult:
    """Run ``sc`` as groups in this process: the Ray runtime's protocol (bounds, batches, wire
    format, merged hash) without Ray. Same results and trace hash as ``run_local``."""
    t0 = time.perf_counter()
    plan, topo, _actors = plan_groups(sc, placement, base_dir)
    transport = InProcess(msgspec.to_builtins(sc), str(base_dir) if base_dir else None, plan)
    coordinator = Coordinator(plan, topo.horizon)
    try:
        out = coordinator.run(transport, progress=progress)
    except GroupFailure as e:
        raise RuntimeError(f"group {plan.names[e.group]!r} failed at virtual time "
                           f"{coordinator.now / 1e6:.6f} s: {e.detail}") from e
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
                                      "cross_group_messages": out.messages}})
