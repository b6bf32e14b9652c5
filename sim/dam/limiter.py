"""The LimiterActor: one per target domain, global across regions.

A FIFO of permit requests in front of an ``engine.limiter.DomainLimiter`` (pacing, concurrency,
advertised headers, Retry-After pauses, the circuit breaker, slow start, the adaptive pace).
Releases feed each attempt's answer back into it. A request that cannot be granted now waits
in the queue; the actor wakes itself when the limiter says a permit may be due.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from engine.breaker import BreakerState
from engine.limiter import BLOCKED, GRANTED, DomainLimiter
from engine.units import US_PER_S

from ..kernel import Actor
from ..messages import (
    LimiterWake,
    PermitAsk,
    PermitCancel,
    PermitGrant,
    PermitRelease,
    PermitsReclaim,
    PermitsRestore,
)
from ..metrics import Metrics

__all__ = ["LimiterActor"]


class LimiterActor(Actor):
    kind = "limiter"
    HANDLERS: ClassVar[dict[type, str]] = {
        PermitAsk: "_on_ask",
        PermitRelease: "_on_release",
        LimiterWake: "_on_wake",
        PermitCancel: "_on_cancel",
        PermitsReclaim: "_on_reclaim",
        PermitsRestore: "_on_restore",
    }

    def __init__(self, domain: str, topo, metrics: Metrics) -> None:
        self.domain = domain
        self.name = f"limiter:{domain}"
        self.topo = topo
        self.metrics = metrics
        self.limiter = DomainLimiter(domain, topo.limiter_config, breaker=topo.breaker_config,
                                     pacing=topo.pacing_config)
        self.breaker = self.limiter.breaker
        self._state = BreakerState.CLOSED
        self.queue: deque[PermitAsk] = deque()
        self.pending: dict[tuple[str, int], int] = {}  # (job, branch) -> asking region actor
        self.held: dict[int, int] = {}  # region actor -> permits it holds
        self.down: set[int] = set()  # region actors that died
        self.wake_at: int | None = None
        self.d = metrics.domain_index(domain)

    # -- messages --------------------------------------------------------------------------------
    def _on_ask(self, msg: PermitAsk, now: int) -> None:
        if msg.region_actor in self.down:
            return
        if not self.queue and self.limiter.acquire(now) == GRANTED:  # fast path
            self._grant(msg, now)
            return
        self.pending[(msg.job_id, msg.branch)] = msg.region_actor
        self.queue.append(msg)
        self._drain(now)

    def _on_release(self, msg: PermitRelease, now: int) -> None:
        lim = self.limiter
        region, status, retry_after = msg.region_actor, msg.status, msg.retry_after_us
        if self.held.get(region, 0) > 0:
            self.held[region] -= 1
            lim.release(now)
        headers = msg.headers
        if headers or retry_after:
            if retry_after and (status == 429 or status == 503):
                headers = {**(headers or {}), "retry-after": str(retry_after / US_PER_S)}
            lim.observe(now, status, headers)
        if msg.verdict is not None:
            lim.record(now, msg.verdict, status)
            if self.breaker is not None and self.breaker.state is not self._state:
                self._breaker_moved(now)
        self._drain(now)

    def _on_wake(self, msg: LimiterWake, now: int) -> None:
        if self.wake_at is not None and now >= self.wake_at:
            self.wake_at = None
        self._drain(now)

    def _on_cancel(self, msg: PermitCancel, now: int) -> None:
        self.pending.pop((msg.job_id, msg.branch), None)

    def _on_reclaim(self, msg: PermitsReclaim, now: int) -> None:
        self.down.add(msg.region_actor)
        self.limiter.reclaim(self.held.pop(msg.region_actor, 0))
        self._drain(now)

    def _on_restore(self, msg: PermitsRestore, now: int) -> None:
        self.down.discard(msg.region_actor)

    # -- the queue -------------------------------------------------------------------------------
    def _drain(self, now: int) -> None:
        q = self.queue
        if not q:
            return
        pending = self.pending
        lim = self.limiter
        while q:
            ask = q[0]
            key = (ask.job_id, ask.branch)
            region = ask.region_actor
            if pending.get(key) != region or region in self.down:
                q.popleft()  # cancelled, asked again elsewhere, or its region died
                if pending.get(key) == region:
                    del pending[key]
                continue
            r = lim.acquire(now)
            if r == GRANTED:
                q.popleft()
                del pending[key]
                self._grant(ask, now)
            else:
                if r != BLOCKED and (self.wake_at is None or r < self.wake_at):
                    self.wake_at = r
                    self.send(self.id, r, LimiterWake())
                break
        if self.breaker is not None and self.breaker.state is not self._state:
            self._breaker_moved(now)
        self.metrics.backlog(self.d, now, len(q))

    def _grant(self, ask: PermitAsk, now: int) -> None:
        region = ask.region_actor
        self.held[region] = self.held.get(region, 0) + 1
        self.metrics.permit(self.d, now, len(self.queue), self.limiter.current_pace(now))
        if self.breaker is not None and self.breaker.state is BreakerState.HALF_OPEN:
            self._breaker_moved(now)  # a probe: keep the probe count current
        self.send(region, now + self.topo.region_lat_from_gateway[region],
                  PermitGrant(ask.job_id, ask.branch, self.d))

    def _breaker_moved(self, now: int) -> None:
        """Report a breaker state change (open / half-open / closed) to the metrics."""
        b = self.breaker
        assert b is not None  # only called where the breaker exists
        self._state = b.state
        self.metrics.breaker(self.d, now, int(b.state), b.opens, b.reopens, b.probe_attempts,
                             b.open_us_total, b.opened_at, self.limiter.current_pace(now))
