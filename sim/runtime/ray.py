"""The Ray runtime: the same actors, grouped onto Ray actors, advanced in conservative windows.

Every group (a Ray actor, :class:`GroupWorker`) builds the whole topology from the scenario (so
every actor gets the same id and the same RNG as in the local runtime) and runs only its
members. A coordinator advances virtual time conservatively, per group (Chandy–Misra bounds):
``LA[h][g]`` is the shortest delay any message from group ``h`` to group ``g`` can have (from
the actors' link latencies; none if they never talk). Each round, ``E[g]`` is the earliest
event ``g`` holds or has been sent, ``E*`` its closure over the link graph
(``E*[g] = min(E[g], E*[h] + LA[h][g])``), and group ``g`` may run every event before
``H[g] = min over h≠g of E*[h] + LA[h][g]``: nothing can reach it earlier. Groups with nothing
to do before their bound sit the round out; empty stretches are skipped. Messages to other
groups are shipped after the round as one msgpack ``bytes`` per (group → group): one round trip
per active group per round, never a ``ray.get`` per message. A message that would arrive below
its receiver's bound raises ``CausalityError`` (a wrong link floor can never go unnoticed).

Each group returns the keys of the events it processed; the coordinator merges them (keys are
unique and totally ordered) into the same trace hash as the local runtime's.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import msgpack
import msgspec
import numpy as np

from ..build import build
from ..kernel import TIME_SHIFT, Kernel, spawn_rngs
from ..metrics import Metrics
from ..result import RunResult, summarize
from ..scenario import Scenario, load_scenario

__all__ = ["PLACEMENTS", "RayRunError", "placement_groups", "run_ray"]

PLACEMENTS = ("default", "single", "per-actor", "regions")
_LOW = (1 << TIME_SHIFT) - 1
_HASH_BLOCK = 1 << 16


class RayRunError(RuntimeError):
    """A Ray run failed (a group died, ...): the message names the group and the virtual time;
    ``partial`` holds what the surviving groups had measured."""

    def __init__(self, message: str, partial: RunResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial


class CausalityError(RuntimeError):
    pass


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
        from ..dam import Dispatcher

        return [f"region:{a.region}" if isinstance(a, Dispatcher) else g
                for g, a in zip(groups, actors, strict=True)]
    raise ValueError(f"unknown placement {placement!r} (expected one of {', '.join(PLACEMENTS)})")


def _encode(entries: list) -> bytes:
    return msgpack.packb([(k >> TIME_SHIFT, k & _LOW, t, m) for k, t, m in entries],
                         use_bin_type=True)


_INF = 1 << 62


def link_floors(topo, actors: list, actor_group: list[int], n_groups: int) -> list[list]:
    """``LA[h][g]``: the shortest delay (µs) of any message from group ``h`` to group ``g``,
    None if no actor of ``h`` ever sends to one of ``g``. Derived from who talks to whom (see
    sim/dam.py, sim/world.py, sim/clients.py) and the scenario's link latencies."""
    from ..clients import Client
    from ..dam import Dispatcher, Gateway, LimiterActor, Region
    from ..world import Receiver, Upstream

    gw = topo.gateway_region

    def floor(a, b) -> int | None:
        A, B = type(a), type(b)
        if A is Gateway:
            if B is Region:
                return topo.lat(gw, b.region)
            if B is LimiterActor:
                return topo.intra
        elif A is Region:
            if B is LimiterActor or B is Gateway:
                return topo.lat(a.region, gw)
            if B is Upstream:
                return topo.to_upstream
            if B is Dispatcher:
                return topo.intra
        elif A is LimiterActor:
            if B is Region:
                return topo.lat(gw, b.region)
        elif A is Dispatcher:
            if B is Receiver:
                return topo.to_upstream
            if B is Region:
                return topo.intra
        elif A is Upstream:
            if B is Region or B is Client:
                return topo.to_upstream
        elif A is Receiver:
            if B is Dispatcher:
                return topo.to_upstream
        elif A is Client:
            if B is Gateway:
                return topo.client_to_gateway
            if B is Upstream:
                return topo.to_upstream
        return None

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


class GroupWorker:
    """One group of actors in one process (wrapped by ``ray.remote`` at run time)."""

    def __init__(self, scenario_doc: dict, base_dir: str | None, actor_group: list[int],
                 me: int) -> None:
        logging.getLogger().setLevel(logging.WARNING)
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
        g = self.actor_group[entry[1]]
        if g == self.me:
            heapq.heappush(self.kernel.heap, entry)
            return
        if entry[0] >> TIME_SHIFT < self.floors[g]:
            raise CausalityError(
                f"a message from group {self.me} to group {g} is due at "
                f"{entry[0] >> TIME_SHIFT} us, below that group's bound ({self.floors[g]} us): "
                f"a link is shorter than its declared floor")
        box = self.outbox.get(g)
        if box is None:
            box = self.outbox[g] = []
        box.append(entry)

    def _reply(self) -> tuple:
        out = {g: (_encode(entries), min(e[0] for e in entries) >> TIME_SHIFT)
               for g, entries in self.outbox.items() if entries}
        self.outbox = {}
        keys = self.kernel.take_keys()
        arr = np.array([(k >> TIME_SHIFT, k & _LOW) for k in keys], dtype=np.int64)
        return out, self.kernel.next_time(), arr.tobytes(), len(keys)

    def start(self) -> tuple:
        for a in self.members:
            a.start(0)
        return self._reply()

    def step(self, inbox: list[bytes], until: int, floors: list[int]) -> tuple:
        heap = self.kernel.heap
        for chunk in inbox:
            for t, low, target, msg in msgpack.unpackb(chunk, raw=False, use_list=True,
                                                       strict_map_key=False):
                heapq.heappush(heap, ((t << TIME_SHIFT) | low, target, tuple(msg)))
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

def _init_ray(address: str | None) -> bool:
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False, configure_logging=True,
             runtime_env={"env_vars": {"PYTHONHASHSEED": "0"}})
    return True


def run_ray(sc: Scenario, *, base_dir: Path | None = None, address: str | None = None,
            placement: str = "default", progress: Callable[[int, int], None] | None = None,
            on_window: Callable[[int, dict], None] | None = None,
            shutdown: bool | None = None) -> RunResult:
    """Run ``sc`` on Ray. Same results and trace hash as :func:`run_local`."""
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    t0 = time.perf_counter()
    started = _init_ray(address)
    topo, actors, groups, _metrics = build(sc, base_dir)
    names = placement_groups(placement, groups, actors)
    order = sorted(set(names), key=names.index)
    gid = {n: i for i, n in enumerate(order)}
    actor_group = [gid[n] for n in names]
    la = link_floors(topo, actors, actor_group, len(order))
    lookahead = min((x for row in la for x in row if x is not None), default=topo.min_link())
    doc = msgspec.to_builtins(sc)
    Worker = ray.remote(num_cpus=0)(GroupWorker)
    workers = [Worker.options(name=None).remote(doc, str(base_dir) if base_dir else None,
                                                actor_group, g) for g in range(len(order))]
    hasher_block: list[int] = []
    hasher = hashlib.blake2b(digest_size=16)
    n_groups = len(order)
    events = 0
    windows = 0
    cross_messages = 0
    now = 0
    inboxes: list[list[bytes]] = [[] for _ in workers]
    inbox_min: list[int] = [_INF] * n_groups
    nexts: list[int] = [_INF] * n_groups
    pending: list[list[int]] = [[] for _ in workers]  # processed keys not yet hashed

    def absorb(group: int, result) -> None:
        nonlocal events, cross_messages
        out, nxt, keys, n = result
        events += n
        nexts[group] = _INF if nxt is None else nxt
        for g, (blob, first) in out.items():
            inboxes[g].append(blob)
            inbox_min[g] = min(inbox_min[g], first)
            cross_messages += 1
        if n:
            a = np.frombuffer(keys, dtype=np.int64).reshape(-1, 2)
            pending[group].extend((int(t) << TIME_SHIFT) | int(low) for t, low in a)

    def hash_below(threshold: int) -> None:
        """Hash, in global order, every processed key with a time below ``threshold``."""
        limit = threshold << TIME_SHIFT
        ready = []
        for i, keys in enumerate(pending):
            cut = 0
            while cut < len(keys) and keys[cut] < limit:
                cut += 1
            if cut:
                ready.append(keys[:cut])
                pending[i] = keys[cut:]
        for k in heapq.merge(*ready):
            hasher_block.append(k)
        while len(hasher_block) >= _HASH_BLOCK:
            hasher.update(str(hasher_block[:_HASH_BLOCK]).encode())
            del hasher_block[:_HASH_BLOCK]

    current_group = None
    try:
        for g, result in enumerate(ray.get([w.start.remote() for w in workers])):
            absorb(g, result)
        horizon = topo.horizon
        while True:
            earliest = [min(nexts[g], inbox_min[g]) for g in range(n_groups)]
            closure = list(earliest)
            for _ in range(n_groups):
                for h in range(n_groups):
                    for g in range(n_groups):
                        if la[h][g] is not None and closure[h] + la[h][g] < closure[g]:
                            closure[g] = closure[h] + la[h][g]
            bounds = []
            for g in range(n_groups):
                b = horizon
                for h in range(n_groups):
                    if h != g and la[h][g] is not None:
                        b = min(b, closure[h] + la[h][g])
                bounds.append(b)
            active = [g for g in range(n_groups) if earliest[g] < bounds[g]]
            if not active:
                break
            now = min(earliest)
            windows += 1
            if on_window is not None:
                on_window(windows, {"workers": workers, "groups": order})
            refs = {}
            for g in active:
                refs[g] = workers[g].step.remote(inboxes[g], bounds[g], bounds)
                inboxes[g] = []
                inbox_min[g] = _INF
            for g, ref in refs.items():
                current_group = order[g]
                absorb(g, ray.get(ref))
            current_group = None
            hash_below(min(bounds))
            if progress is not None:
                progress(min(bounds), horizon)
        hash_below(_INF >> 1)
        finals = ray.get([w.finish.remote() for w in workers])
    except RayActorError as e:
        where = current_group or "a group"
        partial = _partial(sc, topo, workers, order, now, t0)
        raise RayRunError(f"Ray group {where!r} died at virtual time {now / 1e6:.3f} s "
                          f"({type(e).__name__}); the run is incomplete", partial) from None
    except RayTaskError as e:
        where = current_group or "a group"
        partial = _partial(sc, topo, workers, order, now, t0)
        cause = str(e.cause) if getattr(e, "cause", None) is not None else str(e)
        raise RayRunError(f"Ray group {where!r} failed at virtual time {now / 1e6:.3f} s: "
                          f"{cause}", partial) from None
    finally:
        if shutdown or (shutdown is None and started):
            for w in workers:
                with contextlib.suppress(Exception):  # already dead
                    ray.kill(w)
            if started:
                ray.shutdown()
    if hasher_block:
        hasher.update(str(hasher_block).encode())
    metrics = Metrics.from_state(finals[0]["metrics"])
    for f in finals[1:]:
        metrics.merge(Metrics.from_state(f["metrics"]))
    wall = time.perf_counter() - t0
    return summarize(sc, topo, metrics, backend="ray", trace_hash=hasher.hexdigest(),
                     events=events, sim_us=max(f["now"] for f in finals), wall_s=wall,
                     extra={"recovered_jobs": sum(f["recovered"] for f in finals),
                            "lost_machines": sum(f["lost"] for f in finals),
                            "ray": {"placement": placement, "groups": len(order),
                                    "windows": windows, "lookahead_us": lookahead,
                                    "cross_group_batches": cross_messages}})


def _partial(sc, topo, workers, order, now, t0) -> RunResult | None:
    import ray

    merged = None
    for w in workers:
        try:
            st = ray.get(w.finish.remote(), timeout=30)
        except Exception:  # the dead group (or another) cannot answer
            continue
        m = Metrics.from_state(st["metrics"])
        if merged is None:
            merged = m
        else:
            merged.merge(m)
    if merged is None:
        return None
    return summarize(sc, topo, merged, backend="ray", trace_hash="incomplete", events=0,
                     sim_us=now, wall_s=time.perf_counter() - t0,
                     extra={"incomplete": True, "failed_at_us": now})
