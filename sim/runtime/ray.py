"""The Ray runtime: the same actors, grouped onto Ray actors, advanced in conservative windows.

Every group (a Ray actor, :class:`GroupWorker`) builds the whole topology from the scenario (so
every actor gets the same id and the same RNG as in the local runtime) and runs only its
members. A coordinator advances virtual time in windows ``[T, T + L)``: ``T`` is the earliest
pending event anywhere (empty stretches are skipped), ``L`` the smallest latency a message
between two groups can have. Within a window no group can receive a message from another group
that it would have to process in that window, so each group runs its window alone; messages to
other groups are shipped at the window's end as one msgpack ``bytes`` per (group → group): one
round trip per group per window, never a ``ray.get`` per message.

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


def placement_groups(placement: str, groups: list[str]) -> list[str]:
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
        return groups  # refined by the caller, which knows the dispatchers' regions
    raise ValueError(f"unknown placement {placement!r} (expected one of {', '.join(PLACEMENTS)})")


def _encode(entries: list) -> bytes:
    return msgpack.packb([(k >> TIME_SHIFT, k & _LOW, t, m) for k, t, m in entries],
                         use_bin_type=True)


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
        self.window_end = 0
        self.outbox: dict[int, list] = {}
        self.kernel.add(self.actors, spawn_rngs(sc.seed, len(self.actors)), push=self._route)
        self.members = [a for a in self.actors if actor_group[a.id] == me]

    def _route(self, entry: tuple) -> None:
        g = self.actor_group[entry[1]]
        if g == self.me:
            heapq.heappush(self.kernel.heap, entry)
            return
        if entry[0] >> TIME_SHIFT < self.window_end:
            raise CausalityError(
                f"a message from group {self.me} to group {g} is due at "
                f"{entry[0] >> TIME_SHIFT} us, inside the current window (ends "
                f"{self.window_end} us): a link is shorter than the lookahead")
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

    def step(self, inbox: list[bytes], until: int) -> tuple:
        heap = self.kernel.heap
        for chunk in inbox:
            for t, low, target, msg in msgpack.unpackb(chunk, raw=False, use_list=True,
                                                       strict_map_key=False):
                heapq.heappush(heap, ((t << TIME_SHIFT) | low, target, tuple(msg)))
        self.window_end = until
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

    def ping(self) -> int:
        return os.getpid()


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
    topo, _actors, groups, _metrics = build(sc, base_dir)
    names = placement_groups(placement, groups)
    if placement == "regions":
        for r, did in topo.dispatcher_ids.items():
            names[did] = f"region:{r}"
    order = sorted(set(names), key=names.index)
    gid = {n: i for i, n in enumerate(order)}
    actor_group = [gid[n] for n in names]
    lookahead = topo.min_link()
    doc = msgspec.to_builtins(sc)
    Worker = ray.remote(num_cpus=0)(GroupWorker)
    workers = [Worker.options(name=None).remote(doc, str(base_dir) if base_dir else None,
                                                actor_group, g) for g in range(len(order))]
    hasher_block: list[int] = []
    hasher = hashlib.blake2b(digest_size=16)
    events = 0
    windows = 0
    cross_messages = 0
    now = 0

    def absorb(results) -> tuple[list[list[bytes]], list[int | None], int | None]:
        nonlocal events, cross_messages
        inboxes: list[list[bytes]] = [[] for _ in workers]
        nexts: list[int | None] = []
        earliest_msg = None
        streams = []
        for out, nxt, keys, n in results:
            events += n
            nexts.append(nxt)
            for g, (blob, first) in out.items():
                inboxes[g].append(blob)
                cross_messages += 1
                earliest_msg = first if earliest_msg is None else min(earliest_msg, first)
            if n:
                a = np.frombuffer(keys, dtype=np.int64).reshape(-1, 2)
                streams.append(((int(t) << TIME_SHIFT) | int(low) for t, low in a))
        for k in heapq.merge(*streams):
            hasher_block.append(k)
            if len(hasher_block) >= _HASH_BLOCK:
                hasher.update(str(hasher_block[:_HASH_BLOCK]).encode())
                del hasher_block[:_HASH_BLOCK]
        return inboxes, nexts, earliest_msg

    current_group = None
    try:
        results = ray.get([w.start.remote() for w in workers])
        inboxes, nexts, earliest = absorb(results)
        horizon = topo.horizon
        while True:
            candidates = [t for t in nexts if t is not None]
            if earliest is not None:
                candidates.append(earliest)
            if not candidates:
                break
            start = min(candidates)
            if start >= horizon:
                break
            end = min(start + lookahead, horizon)
            now = start
            windows += 1
            if on_window is not None:
                on_window(windows, {"workers": workers, "groups": order})
            refs = [w.step.remote(inboxes[i], end) for i, w in enumerate(workers)]
            results = []
            for i, ref in enumerate(refs):
                current_group = order[i]
                results.append(ray.get(ref))
            current_group = None
            inboxes, nexts, earliest = absorb(results)
            if progress is not None:
                progress(end, horizon)
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
