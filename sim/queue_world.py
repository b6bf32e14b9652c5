"""Upstream service models beyond the legacy one: ``queue`` and ``latency``.

``model = "queue"`` — a request that passes the outages and the rate limit takes a free server
or waits in line (``queue`` long; 503 beyond). It holds the server for a service time drawn from
``service_time`` (exponential or constant with mean ``service``, lognormal by median and p99, an
empirical list, optionally a slow mode), and its answer leaves **when service ends**, plus the
network (``latency``). So response times are waiting + service + network, as in an M/M/c queue
(tested against the M/M/1 closed form). A caller that times out gets its ``timeout`` at its
deadline from a guard timer; the request keeps its place and, once served, its server (wasted
work) unless a defence says otherwise:

* ``drop_expired``: a request whose caller already gave up is dropped when it reaches the head
  of the line, unserved (no server time, no side effect);
* ``lifo_above = N``: while more than N wait, the newest is served first (the oldest are the
  likeliest to have been abandoned);
* ``codel_target`` / ``codel_interval``: CoDel (Nichols & Jacobson, "Controlling Queue Delay",
  ACM Queue 2012; RFC 8289): once the queueing delay has stayed above the target for an
  interval, requests are dropped at the head (503) at a rate that grows with the square root
  of the drop count, until the delay falls below the target.

``contention_keys = K``: optimistic concurrency. A request writes key ``logical mod K``; it
commits when its service ends only if no other write to that key committed since its service
began; otherwise it is answered 409 (no side effect) and the client retries. With ``K = 1``
and a burst of clients this is Brooker's experiment ("Exponential Backoff And Jitter", AWS
Architecture Blog, 2015).

Capacity outages park servers (a server above the allowed count finishes its request and takes
no new one); slow outages multiply the service and the network time.

``model = "latency"`` — infinite servers: the answer leaves after a ``latency`` draw, for APIs
whose capacity is not the point.
"""

from __future__ import annotations

import math
from collections import deque
from typing import ClassVar

import numpy as np

from .draws import BLOCK, BlockDraws
from .messages import CallerDeadline, Request, Response, ServiceDone
from .scenario.resolved import ServiceSpec
from .world import Z99, Upstream

__all__ = ["LatencyUpstream", "QueueUpstream", "ServiceSampler"]


class ServiceSampler(BlockDraws):
    """Service times (µs, >= 1) drawn in blocks from a :class:`ServiceSpec`."""

    __slots__ = ("rng", "spec")

    def __init__(self, spec: ServiceSpec, rng: np.random.Generator) -> None:
        super().__init__(self._block)
        self.spec = spec
        self.rng = rng

    def _block(self) -> np.ndarray:
        s, rng = self.spec, self.rng
        if s.kind == "exponential":
            v = rng.exponential(s.mean_us, BLOCK)
        elif s.kind == "constant":
            v = np.full(BLOCK, float(s.mean_us))
        elif s.kind == "lognormal":
            sigma = math.log(s.p99_us / s.median_us) / Z99 if s.p99_us > s.median_us else 0.0
            v = rng.lognormal(math.log(s.median_us), sigma, BLOCK)
        else:  # empirical
            v = np.asarray(s.values_us, dtype=float)[rng.integers(0, len(s.values_us), BLOCK)]
        if s.slow_fraction > 0:
            v[rng.random(BLOCK) < s.slow_fraction] *= s.slow_factor
        return np.maximum(v, 1.0)


class _Waiting:
    """A request at a queue-model upstream, from arrival until it is answered and served."""

    __slots__ = ("answered", "arrived", "factor", "finished", "msg", "version")

    def __init__(self, msg: Request, arrived: int, factor: float) -> None:
        self.version = 0  # contention: its key's commit count when its service began
        self.msg = msg
        self.arrived = arrived
        self.factor = factor
        self.answered = False  # the caller has its answer (or its timeout)
        self.finished = False  # served, shed or dropped: it holds no server and waits no more


class QueueUpstream(Upstream):
    """``model = "queue"``: answers when service ends (see the module doc)."""

    HANDLERS: ClassVar[dict[type, str]] = {
        Request: "_on_request",
        ServiceDone: "_on_done",
        CallerDeadline: "_on_deadline",
    }

    def start(self, now: int) -> None:
        super().start(now)
        assert self.cfg.service is not None  # resolved for every queue-model upstream
        self.sampler = ServiceSampler(self.cfg.service, self.rng)
        self.defences = self.cfg.defences
        self.line: deque[int] = deque()
        self.entries: dict[int, _Waiting] = {}
        self.busy = 0
        self.seq = 0
        self.keys = self.cfg.contention_keys
        self.versions: dict[int, int] = {}  # contention: commits per key
        # CoDel state (RFC 8289 names)
        self.first_above_time = 0
        self.dropping = False
        self.drop_next = 0
        self.drop_count = 0

    # -- arrival ---------------------------------------------------------------------------------
    def _on_request(self, msg: Request, now: int) -> None:
        factor = self._admit(msg, now)
        if factor is None:
            return
        self.seq += 1
        seq = self.seq
        entry = self.entries[seq] = _Waiting(msg, now, factor)
        guard = msg.deadline - self.min_rtt  # the timeout leaves in time to arrive at it
        self.send(self.id, guard if guard > now else now, CallerDeadline(seq))
        if self.line:  # servers a capacity window gave back go to those already waiting
            self._next(now)
        if not self.line and self.busy < self._servers_now(now):
            self._serve(seq, entry, now)
        elif len(self.line) < self.queue_limit:
            self.line.append(seq)
        else:
            self._shed(seq, entry, now)

    def _serve(self, seq: int, entry: _Waiting, now: int) -> None:
        self.busy += 1
        if self.keys is not None:
            entry.version = self.versions.get(entry.msg.logical % self.keys, 0)
        service = self.sampler()
        if entry.factor != 1.0:
            service = int(service * entry.factor)
        self.send(self.id, now + service, ServiceDone(seq))

    def _shed(self, seq: int, entry: _Waiting, now: int) -> None:
        """A fast 503: the line is full, or CoDel dropped it."""
        msg = entry.msg
        entry.finished = True
        if not entry.answered:
            entry.answered = True
            self._answer(msg.reply_to, msg.tag, 503, self._fast(now, msg.place), msg.deadline,
                         None, msg.workload)
        self._forget(seq, entry)

    def _forget(self, seq: int, entry: _Waiting) -> None:
        if entry.answered and entry.finished:
            del self.entries[seq]

    # -- service ends ----------------------------------------------------------------------------
    def _on_done(self, msg: ServiceDone, now: int) -> None:
        self.busy -= 1
        seq = msg.seq
        entry = self.entries[seq]
        entry.finished = True
        req = entry.msg
        status = 200
        if self.keys is not None:  # optimistic concurrency: commit unless another did first
            key = req.logical % self.keys
            if self.versions.get(key, 0) != entry.version:
                status = 409
            else:
                self.versions[key] = entry.version + 1
        if status == 200:
            self._side_effect(req)  # the work happened, whether or not the caller still waits
        at = now + max(self.min_rtt, int(self.latency[req.place]() * entry.factor))
        if self.jitter is not None:
            at += self.jitter()
        if entry.answered or at > req.deadline:
            self.metrics.add("wasted_work", req.workload)  # its caller gave up
        if not entry.answered and at <= req.deadline:
            entry.answered = True
            self.metrics.outcome(req.workload, status)
            self.send(req.reply_to, at, Response(req.tag, status, None, 0, self.headers))
        self._forget(seq, entry)
        self._next(now)

    def _on_deadline(self, msg: CallerDeadline, now: int) -> None:
        entry = self.entries.get(msg.seq)
        if entry is None or entry.answered:
            return
        entry.answered = True
        req = entry.msg
        self.metrics.outcome(req.workload, "timeout")
        self.send(req.reply_to, req.deadline, Response(req.tag, None, "timeout", 0, None))
        self._forget(msg.seq, entry)

    # -- the line --------------------------------------------------------------------------------
    def _next(self, now: int) -> None:
        """Start waiting requests while servers are free, by the line's discipline and
        defences."""
        line, d = self.line, self.defences
        while line and self.busy < self._servers_now(now):
            if d.lifo_above is not None and len(line) > d.lifo_above:
                seq = line.pop()
            else:
                seq = line.popleft()
            entry = self.entries[seq]
            if d.drop_expired and entry.answered:
                entry.finished = True  # its caller gave up: no server time, no side effect
                self.metrics.add("dropped_expired", entry.msg.workload)
                self._forget(seq, entry)
                continue
            if d.codel_target_us is not None and self._codel_drop(now - entry.arrived, now):
                self.metrics.add("codel_drops", entry.msg.workload)
                self._shed(seq, entry, now)
                continue
            self._serve(seq, entry, now)

    def _codel_drop(self, sojourn: int, now: int) -> bool:
        """RFC 8289's dequeue decision for a request that waited ``sojourn`` µs."""
        d = self.defences
        target, interval = d.codel_target_us, d.codel_interval_us
        assert target is not None and interval is not None  # only called with CoDel on
        ok_to_drop = False
        if sojourn < target or not self.line:
            self.first_above_time = 0
        elif self.first_above_time == 0:
            self.first_above_time = now + interval
        elif now >= self.first_above_time:
            ok_to_drop = True
        if self.dropping:
            if not ok_to_drop:
                self.dropping = False
                return False
            if now >= self.drop_next:
                self.drop_count += 1
                self.drop_next += int(interval / math.sqrt(self.drop_count))
                return True
            return False
        if ok_to_drop:
            self.dropping = True
            recent = now - self.drop_next < interval
            self.drop_count = self.drop_count - 2 if recent and self.drop_count > 2 else 1
            self.drop_next = now + int(interval / math.sqrt(self.drop_count))
            return True
        return False


class LatencyUpstream(Upstream):
    """``model = "latency"``: infinite servers; the answer leaves after a ``latency`` draw."""

    def _on_request(self, msg: Request, now: int) -> None:
        factor = self._admit(msg, now)
        if factor is None:
            return
        done = now + max(self.min_rtt, int(self.latency[msg.place]() * factor))
        if self.jitter is not None:
            done += self.jitter()
        if done > msg.deadline:
            self.metrics.add("wasted_work", msg.workload)
        self._side_effect(msg)
        self._answer(msg.reply_to, msg.tag, 200, done, msg.deadline, None, msg.workload)
