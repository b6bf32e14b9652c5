"""The event kernel: virtual time in int µs, one heap, a total order, per-actor RNGs.

Every message has a key ``deliver_at << 40 | origin << 28 | origin_seq``: the total order
(deliver time, origin actor id, origin sequence) packed into one int. The heap holds only the
keys; each ``(target, message)`` waits in a dict under its key. Comparing two ints costs a
fraction of comparing two tuples (which compares their first items twice, for equality and then
for order), and a heap operation makes ~log2(n) comparisons; keeping the target out of the int
spares three big-int operations per event (6.7 % of the kernel benchmark's instructions,
``benchmarks/kernel.py --instructions``, against a heap of ``key << 12 | target``). Actors
never call each other: they ``send`` messages (``sim.messages``) with a delivery time (≥ now;
> now across actors, by the link latencies); timers are messages to self. The kernel delivers a
message straight to the method its receiver declared for its type (``Actor.HANDLERS``).

The trace hash folds every delivered event's key (time, origin, sequence) into BLAKE2b, in
fixed-size blocks, in delivery order.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import pickle
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np

try:  # the compiled build (sim/compiled.py) needs it; mypy brings it
    from mypy_extensions import mypyc_attr
except ImportError:  # pure Python without mypy installed: the decorator changes nothing
    _C = TypeVar("_C")

    def mypyc_attr(*attrs: str, **kwattrs: object) -> Callable[[_C], _C]:  # type: ignore[misc]
        return lambda cls: cls

__all__ = ["Actor", "Kernel", "fold_trace", "kind_of", "spawn_rngs"]

ORIGIN_SHIFT = 28
TIME_SHIFT = 40
SEQ_MASK = (1 << ORIGIN_SHIFT) - 1
MAX_ACTORS = 1 << (TIME_SHIFT - ORIGIN_SHIFT)
_TRACE_BLOCK = 1 << 16
_encode = pickle.dumps


def spawn_rngs(seed: int, n: int) -> list[np.random.Generator]:
    """One independent Generator per actor, spawned from the scenario seed in actor-id order."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def fold_trace(hasher, keys: list[int], *, final: bool) -> None:
    """Fold delivered keys into the trace hash in fixed blocks, consuming them from ``keys``.

    Fixed-size blocks make the hash depend only on the key sequence, not on when or by which
    runtime it was folded; every runtime hashes through this one function. A block is encoded
    as pickle protocol 2 (a documented, frozen format whose bytes depend only on the values:
    4-byte ints, or length-prefixed little-endian ones beyond 2**31), 2.6× faster than its
    decimal text."""
    while len(keys) >= _TRACE_BLOCK:
        hasher.update(_encode(keys[:_TRACE_BLOCK], 2))
        del keys[:_TRACE_BLOCK]
    if final and keys:
        hasher.update(_encode(keys, 2))
        keys.clear()


def kind_of(msg) -> str:
    """A message's kind for traces: its class name (a test actor's tuple: its first item)."""
    if type(msg) is tuple:
        kind, *_ = msg
        return kind
    return type(msg).__name__


class _Dispatch(dict):
    """message type → bound handler; a type the actor declares no handler for goes to its
    ``handle`` (test actors that speak tuples), cached on first use."""

    __slots__ = ("actor",)
    actor: Actor

    def __missing__(self, kind: type) -> Callable:
        handler = self[kind] = self.actor.handle
        return handler


@mypyc_attr(allow_interpreted_subclasses=True)  # the gateway, tests, benchmarks
class Actor:
    """Base class: an actor has an id, a kind (``sim.messages.KINDS``), an RNG, and a handler
    per message type it receives (``HANDLERS``: type → method name).

    ``send`` is bound by the runtime (local heap or a group outbox); subclasses only call it.
    """

    id: int = -1
    name: str = "actor"
    kind: str = "actor"
    HANDLERS: ClassVar[dict[type, str]] = {}
    #: ``send(target, at, msg)``: deliver ``msg`` to actor ``target`` at ``at`` µs; bound per
    #: actor by the runtime (see :meth:`bind`)
    send: Callable[[int, int, Any], None]

    def dispatch(self) -> dict[type, Callable]:
        """The kernel's table for this actor (kept as ``self._table``: an actor may swap
        handlers in it, e.g. to drop everything while its region is down)."""
        table = _Dispatch({t: getattr(self, name) for t, name in self.HANDLERS.items()})
        table.actor = self
        self._table = table
        return table

    def bind(self, actor_id: int, push: Kernel | Callable[[tuple], None],
             rng: np.random.Generator) -> None:
        """``push`` is the kernel that delivers (local runs) or a router that takes one
        ``(key, target, msg)`` entry (the grouped runtimes). ``send`` is bound here as a closure
        over everything it needs: it runs once per message, so it reads no attribute."""
        if actor_id >= MAX_ACTORS:
            raise ValueError(f"at most {MAX_ACTORS} actors")
        self.id = actor_id
        self.rng = rng
        if isinstance(push, Kernel):
            # origin | sequence in one counter (sequences stay below 2**28: the key's low bits);
            # next(seq) is a cheaper call than seq.__next__ (a method-wrapper)
            seq = itertools.count((actor_id << ORIGIN_SHIFT) + 1)

            def send_local(target: int, at: int, msg, _push=heapq.heappush, _heap=push.heap,
                           _msgs=push.msgs, _shift=TIME_SHIFT, _next=next) -> None:
                # Kernel.schedule, inlined (this runs once per message)
                key = (at << _shift) | _next(seq)
                _msgs[key] = (target, msg)
                _push(_heap, key)
            self.send = send_local
        else:
            seq = itertools.count((actor_id << ORIGIN_SHIFT) + 1)

            def send_routed(target: int, at: int, msg, _push=push, _shift=TIME_SHIFT,
                            _next=next) -> None:
                _push(((at << _shift) | _next(seq), target, msg))
            self.send = send_routed

    def start(self, now: int) -> None:
        """Called once at time 0 before any message: schedule initial timers here."""

    def handle(self, msg, now: int) -> None:
        """Deliver ``msg`` by its type (what the kernel does, for callers outside a kernel)."""
        name = self.HANDLERS.get(type(msg))
        if name is None:
            raise TypeError(f"{self.name} does not handle {kind_of(msg)}")
        getattr(self, name)(msg, now)


class Kernel:
    """A tiny discrete-event kernel (SimPy's core, without processes)."""

    __slots__ = ("_handlers", "_trace_block", "actors", "events", "hash_trace", "hasher", "heap",
                 "msgs", "now", "trace_sink")

    def __init__(self, trace_sink: list | None = None, hash_trace: bool = True) -> None:
        self.heap: list[int] = []  # the keys of the messages waiting to be delivered
        self.msgs: dict[int, tuple[int, object]] = {}  # key -> (target, message)
        self.actors: list[Actor] = []
        self._handlers: list[dict[type, Callable]] = []
        self.now = 0
        self.events = 0
        self.hasher = hashlib.blake2b(digest_size=16)
        self._trace_block: list[int] = []
        self.trace_sink = trace_sink
        self.hash_trace = hash_trace  # False: keys are collected for a coordinator instead

    def add(self, actors: Sequence[Actor], rngs: Sequence[np.random.Generator],
            push: Callable[[tuple], None] | None = None) -> None:
        """Bind ``actors`` (ids in order); ``push`` routes their messages as ``(key, target,
        msg)`` entries (default: straight into this kernel)."""
        for actor, rng in zip(actors, rngs, strict=True):
            actor.bind(len(self.actors), push or self, rng)
            self.actors.append(actor)
        self._handlers = [a.dispatch() for a in self.actors]

    def schedule(self, key: int, target: int, msg) -> None:
        """Queue ``msg`` for ``target`` under ``key`` (a message from another group)."""
        self.msgs[key] = (target, msg)
        heapq.heappush(self.heap, key)

    def start(self) -> None:
        for a in self.actors:
            a.start(0)

    def next_time(self) -> int | None:
        return self.heap[0] >> TIME_SHIFT if self.heap else None

    def run(self, until: int) -> int:
        """Deliver every event with deliver time < ``until``; returns how many."""
        heap = self.heap
        pop, push = heapq.heappop, heapq.heappush
        take = self.msgs.pop
        handlers = self._handlers
        block = self._trace_block  # block.append in the loops: a specialised call, cheaper
        sink = self.trace_sink
        shift = TIME_SHIFT
        limit = until << shift
        before = len(block)
        if sink is None:
            while True:
                try:  # zero-cost unless raised (3.11+): cheaper than testing the heap first
                    key = pop(heap)
                except IndexError:  # nothing left to happen
                    break
                if key >= limit:
                    push(heap, key)  # not yet: back it goes (once per call)
                    break
                block.append(key)
                target, msg = take(key)
                handlers[target][type(msg)](msg, key >> shift)
        else:
            while heap and heap[0] < limit:
                key = pop(heap)
                target, msg = take(key)
                now = key >> TIME_SHIFT
                block.append(key)
                sink.append((now, (key >> ORIGIN_SHIFT) & (MAX_ACTORS - 1), key & SEQ_MASK,
                             target, kind_of(msg)))
                handlers[target][type(msg)](msg, now)
        n = len(block) - before
        if n:
            self.now = block[-1] >> TIME_SHIFT
        self.events += n
        if self.hash_trace:
            self._flush(final=False)
        return n

    def _flush(self, final: bool) -> None:
        fold_trace(self.hasher, self._trace_block, final=final)

    def take_keys(self) -> list[int]:
        """The keys delivered since the last call (when ``hash_trace`` is off)."""
        keys = self._trace_block
        self._trace_block = []
        return keys

    def trace_hash(self) -> str:
        self._flush(final=True)
        return self.hasher.hexdigest()
