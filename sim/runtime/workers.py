"""One group of actors in one process: it runs its members up to a bound and hands back the
messages for other groups as one msgspec-encoded batch per receiving group."""

from __future__ import annotations

from pathlib import Path

from ..build import build
from ..kernel import TIME_SHIFT, Kernel, spawn_rngs
from ..messages import decode_batch, encode_batch
from ..scenario import load_scenario

__all__ = ["CausalityError", "GroupWorker", "Reply"]

_LOW = (1 << TIME_SHIFT) - 1


class CausalityError(RuntimeError):
    """A message arrived below its receiver's bound: a link is shorter than its floor."""


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
        key, target, msg = entry
        g = self.actor_group[target]
        if g == self.me:
            self.kernel.schedule(key, target, msg)
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
        nxt = self.kernel.next_time()
        return out, -1 if nxt is None else nxt, self.kernel.take_keys()

    def start(self) -> Reply:
        for a in self.members:
            a.start(0)
        return self._reply()

    def step(self, inbox: list[bytes], until: int, floors: list[int]) -> Reply:
        schedule = self.kernel.schedule
        for chunk in inbox:
            for t, low, target, msg in decode_batch(chunk):
                schedule((t << TIME_SHIFT) | low, target, msg)
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
