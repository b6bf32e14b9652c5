"""World actors: the third-party APIs (Upstream) and the customers' webhook endpoints (Receiver).

Upstream model, per request arriving at ``now`` from region ``r``:

1. active outage for (now, r)? ``blackhole`` → never answered (the caller's timeout fires; not
   executed); ``error`` → an answer drawn from the status mix, fast (no server time);
   ``partial`` → that with probability ``fraction``; ``slow`` → latency × ``factor``.
2. own rate limit (token bucket ``rate_limit``/s, ``rate_burst``) → 429 with ``Retry-After``.
3. capacity: ``servers`` FCFS servers with exponential service times (mean ``service``); a request
   starts when the earliest server frees up; if ``queue`` requests already wait, it is shed with
   503. Queueing delay adds to the latency, so overload raises latency and clients time out.
4. latency: lognormal per region (median, p99; optional slow-mode mixture) + queueing.
5. a 2xx is a side effect, recorded in a ledger per logical request: a second side effect of the
   same logical request is a **duplicate execution**, unless the request carried an
   Idempotency-Key the upstream honours (then the cached answer is replayed, no side effect).
6. the answer reaches the caller at ``now + latency``, or a timeout reaches it at its deadline if
   that is sooner (the work still happens: timed-out work is how retry storms go metastable).

Responses carry the upstream's advertised ``X-EZTHROTTLE-*`` headers.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from typing import ClassVar

import numpy as np

from engine.retry import BlockRandom
from engine.units import US_PER_S

from .draws import BLOCK, BlockDraws
from .jitter import link_jitter
from .kernel import Actor
from .messages import HookRequest, HookResponse, Request, Response
from .metrics import Metrics
from .scenario.resolved import LatencySpec, OutageSpec, ReceiverSpec, UpstreamSpec

__all__ = ["LatencySampler", "OutageTable", "OutageWindow", "Receiver", "Upstream"]

Z99 = 2.3263478740408408


class LatencySampler(BlockDraws):
    """Lognormal (median, p99) with an optional slow-mode mixture, drawn in blocks (µs ints)."""

    __slots__ = ("factor", "fraction", "mu", "rng", "sigma")

    def __init__(self, lat: LatencySpec, rng: np.random.Generator) -> None:
        super().__init__(self._block)
        median = lat.median_us
        p99 = lat.p99_us
        self.mu = math.log(median)
        self.sigma = math.log(p99 / median) / Z99 if p99 > median else 0.0
        self.fraction = lat.slow_fraction
        self.factor = lat.slow_factor
        self.rng = rng

    def _block(self) -> np.ndarray:
        v = self.rng.lognormal(self.mu, self.sigma, BLOCK)
        if self.fraction > 0:
            v[self.rng.random(BLOCK) < self.fraction] *= self.factor
        return np.maximum(v, 1.0)


class OutageWindow:
    """One outage window: its µs bounds, the status mix as cumulative shares, the regions it
    applies to as place indexes."""

    __slots__ = ("cumulative", "end", "factor", "fraction", "mode", "regions", "retry_after",
                 "start")

    def __init__(self, o: OutageSpec, region_index: dict[str, int]) -> None:
        self.start = o.start_us
        self.end = o.end_us
        self.mode = o.mode
        total = sum(o.statuses.values()) or 1.0
        self.cumulative: list[tuple[float, int]] = []  # (cumulative share, status)
        acc = 0.0
        for code, w in o.statuses.items():
            acc += w / total
            self.cumulative.append((acc, code))
        self.fraction = o.fraction  # ``partial``: the share of requests that fail
        self.factor = o.factor  # ``slow``: the latency factor
        self.regions = frozenset(region_index[r] for r in o.regions) if o.regions else None
        self.retry_after = o.retry_after_us

    def status(self, u: float) -> int:
        """The status drawn from the mix for a uniform ``u``."""
        for acc, code in self.cumulative:
            if u < acc:
                return code
        return self.cumulative[-1][1]


class OutageTable:
    """The outage windows of one actor, queried by (now, region index); the first window that
    matches applies."""

    __slots__ = ("windows",)

    def __init__(self, outages, region_index: dict[str, int]) -> None:
        self.windows = [OutageWindow(o, region_index) for o in outages]

    def active(self, now: int, region: int) -> OutageWindow | None:
        for w in self.windows:
            if w.start <= now < w.end and (w.regions is None or region in w.regions):
                return w
        return None


class Upstream(Actor):
    """One third-party API (one domain): answers each :class:`~sim.messages.Request` with a
    :class:`~sim.messages.Response` to its ``reply_to``."""

    kind = "upstream"
    HANDLERS: ClassVar[dict[type, str]] = {
        Request: "_on_request",
    }

    def __init__(self, cfg: UpstreamSpec, region_names: list[str], metrics: Metrics,
                 dam_senders: set[int], min_rtt: int,
                 jitter: tuple[str, int] = ("none", 0)) -> None:
        self.name = cfg.name
        self.jitter_spec = jitter
        self.domain = cfg.domain
        self.cfg = cfg
        self.region_names = region_names  # index -> name; the last index is "client"
        self.metrics = metrics
        self.dam_senders = dam_senders  # actor ids of the dam's regions
        self.min_rtt = min_rtt  # the way back: no answer is faster than the link
        self.servers = [0] * cfg.servers
        self.waiting: deque[int] = deque()
        self.queue_limit = cfg.queue
        self.service_mean = cfg.service_us
        self.tokens = float(cfg.rate_burst)
        self.token_at = 0
        self.ledger: dict[int, int] = {}
        self.keyed_done: set[int] = set()
        hdr: dict[str, str] = {}
        if cfg.advertise_rps is not None:
            hdr["x-ezthrottle-rps"] = repr(float(cfg.advertise_rps))
        if cfg.advertise_max_concurrent is not None:
            hdr["x-ezthrottle-max-concurrent"] = str(cfg.advertise_max_concurrent)
        self.headers = hdr or None
        self.m_idx = metrics.domain_index(cfg.domain)

    def start(self, now: int) -> None:
        idx = {n: i for i, n in enumerate(self.region_names)}
        self.outages = OutageTable([o for o in self.cfg.outages if o.mode != "capacity"], idx)
        total = self.cfg.servers
        # capacity windows: (start, end, servers left); servers beyond that finish their
        # current work, then take none until the window ends
        self.capacity = [(o.start_us, o.end_us,
                          o.servers if o.servers is not None
                          else max(1, round(o.fraction * total)))
                         for o in self.cfg.outages if o.mode == "capacity"]
        self.parked: list[int] = []
        self.latency = []
        for name in self.region_names:
            lat = self.cfg.region_latency.get(name, self.cfg.latency)
            self.latency.append(LatencySampler(lat, self.rng))
        self.uniform = BlockRandom(self.rng).random
        self.jitter = link_jitter(self.jitter_spec, self.rng)  # on the way back
        self._service = BlockDraws(  # exponential service times (legacy model)
            lambda: np.maximum(self.rng.exponential(self.service_mean, BLOCK), 1))

    def _servers_now(self, now: int) -> int:
        """How many servers the capacity windows allow at ``now``."""
        n = self.cfg.servers
        for start, end, k in self.capacity:
            if start <= now < end and k < n:
                n = k
        return n

    def _set_capacity(self, now: int) -> None:
        """Park or bring back servers so that as many are active as the windows at ``now``
        allow (checked lazily, on each request: only requests use servers)."""
        want = self._servers_now(now)
        servers = self.servers
        if len(servers) == want:
            return
        servers.sort()
        if len(servers) > want:  # the busiest leave once their current request is done
            self.parked.extend(servers[want:])
            del servers[want:]
        else:
            self.parked.sort()
            back = self.parked[:want - len(servers)]
            del self.parked[:len(back)]
            servers.extend(t if t > now else now for t in back)
            servers.sort()

    def _admit(self, msg: Request, now: int) -> float | None:
        """What every model does first: count the attempt, apply an outage, the own rate
        limit. Returns the latency factor (slow outages), or None when already answered."""
        reply_to, tag, region = msg.reply_to, msg.tag, msg.place
        deadline, workload = msg.deadline, msg.workload
        m = self.metrics
        m.attempt(workload, now, self.m_idx, reply_to in self.dam_senders)
        outage = self.outages.active(now, region) if self.outages.windows else None
        factor = 1.0
        if outage is not None:
            mode = outage.mode
            if mode == "blackhole":
                m.outcome(workload, "timeout")
                self.send(reply_to, deadline, Response(tag, None, "timeout", 0, None))
                return None
            if mode == "error" or (mode == "partial" and self.uniform() < outage.fraction):
                status = outage.status(self.uniform())
                self._answer(reply_to, tag, status, self._fast(now, region), deadline,
                             outage.retry_after, workload)
                return None
            if mode == "slow":
                factor = outage.factor
        cfg = self.cfg
        if cfg.rate_limit > 0:
            self.tokens = min(float(cfg.rate_burst),
                              self.tokens + (now - self.token_at) * cfg.rate_limit / US_PER_S)
            self.token_at = now
            if self.tokens < 1.0:
                wait = math.ceil((1.0 - self.tokens) / cfg.rate_limit * US_PER_S)
                self._answer(reply_to, tag, 429, self._fast(now, region), deadline,
                             max(wait, US_PER_S), workload)
                return None
            self.tokens -= 1.0
        return factor

    def _side_effect(self, msg: Request) -> None:
        """The request's work is done: record it in the ledger (a second one of the same
        logical request is a duplicate execution, unless an honoured Idempotency-Key)."""
        logical = msg.logical
        idem = msg.idempotency_key and self.cfg.idempotency
        if idem and logical in self.keyed_done:
            return  # replayed from the idempotency cache: no new side effect
        n = self.ledger.get(logical, 0) + 1
        self.ledger[logical] = n
        if n > 1:
            self.metrics.duplicate(msg.workload)
        if idem:
            self.keyed_done.add(logical)

    def _on_request(self, msg: Request, now: int) -> None:
        factor = self._admit(msg, now)
        if factor is None:
            return
        reply_to, tag, region = msg.reply_to, msg.tag, msg.place
        deadline, workload = msg.deadline, msg.workload
        m = self.metrics
        # capacity: FCFS over `servers`, bounded waiting line
        if self.capacity:
            self._set_capacity(now)
        waiting = self.waiting
        while waiting and waiting[0] <= now:
            waiting.popleft()
        free = self.servers[0]
        if free > now and len(waiting) >= self.queue_limit:
            self._answer(reply_to, tag, 503, self._fast(now, region), deadline, None,
                         workload)
            return
        begin = free if free > now else now
        service = self._service()
        if factor != 1.0:  # a slow outage holds the server longer too
            service = int(service * factor)
        heapq.heapreplace(self.servers, begin + service)
        if begin > now:
            waiting.append(begin)
        done = begin + max(self.min_rtt, int(self.latency[region]() * factor))
        if self.jitter is not None:
            done += self.jitter()
        if done > deadline:
            m.add("wasted_work", workload)  # served for a caller that already gave up
        self._side_effect(msg)  # whether or not the caller is still waiting
        self._answer(reply_to, tag, 200, done, deadline, None, workload)

    def _fast(self, now: int, region: int) -> int:
        """When a fast answer (an error, a 429, a shed 503) reaches the caller."""
        at = now + max(self.min_rtt, self.latency[region]() // 4)
        return at + self.jitter() if self.jitter is not None else at

    def _answer(self, reply_to: int, tag, status: int, at: int, deadline: int,
                retry_after: int | None, workload: int) -> None:
        if at > deadline:
            self.metrics.outcome(workload, "timeout")
            self.send(reply_to, deadline, Response(tag, None, "timeout", 0, None))
            return
        self.metrics.outcome(workload, status)
        self.send(reply_to, at, Response(tag, status, None, retry_after or 0, self.headers))


class Receiver(Actor):
    """A webhook endpoint: answers each :class:`~sim.messages.HookRequest` with a
    :class:`~sim.messages.HookResponse`; outages as for upstreams (``error`` statuses, ``slow``,
    ``blackhole``)."""

    kind = "receiver"
    HANDLERS: ClassVar[dict[type, str]] = {HookRequest: "_on_request"}

    def __init__(self, cfg: ReceiverSpec, region_names: list[str], metrics: Metrics,
                 min_rtt: int, jitter: tuple[str, int] = ("none", 0)) -> None:
        self.name = cfg.name
        self.min_rtt = min_rtt
        self.jitter_spec = jitter
        self.cfg = cfg
        self.region_names = region_names
        self.metrics = metrics
        self.received = 0

    def start(self, now: int) -> None:
        self.outages = OutageTable(self.cfg.outages, {n: i for i, n in
                                                      enumerate(self.region_names)})
        self.latency = LatencySampler(self.cfg.latency, self.rng)
        self.uniform = BlockRandom(self.rng).random
        self.jitter = link_jitter(self.jitter_spec, self.rng)

    def _on_request(self, msg: HookRequest, now: int) -> None:
        reply_to, tag, deadline = msg.reply_to, msg.tag, msg.deadline
        self.received += 1
        lat = self.latency()
        status = 200
        outage = self.outages.active(now, msg.place)
        if outage is not None:
            mode = outage.mode
            if mode == "blackhole":
                self.send(reply_to, deadline, HookResponse(tag, None, "timeout"))
                return
            if mode == "error" or (mode == "partial" and self.uniform() < outage.fraction):
                status = outage.status(self.uniform())
            elif mode == "slow":
                lat = int(lat * outage.factor)
        at = now + max(self.min_rtt, lat)
        if self.jitter is not None:
            at += self.jitter()
        if at > deadline:
            self.send(reply_to, deadline, HookResponse(tag, None, "timeout"))
        else:
            self.send(reply_to, at, HookResponse(tag, status, None))
