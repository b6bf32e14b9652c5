"""A domain's permit queue in wall-clock time: waiters in front of an engine ``DomainLimiter``.

Sans-IO like the engine: :meth:`PermitQueue.pump` takes the time and returns the waiters granted
now plus when to pump again; the live dam does the sleeping. Order is FIFO among waiters that are
due; a waiter asking ``not_before`` a later time (a retry's backoff) waits in a heap until then,
as the simulator's limiter actor does.
"""

from __future__ import annotations

import heapq
from collections import deque

from engine.breaker import Verdict
from engine.events import StartAttempt
from engine.limiter import BLOCKED, GRANTED, DomainLimiter

__all__ = ["PermitQueue", "Waiter"]


class Waiter:
    """A branch waiting for a permit; ``resend`` re-runs an attempt that was in flight when the
    dam stopped (recovery), instead of asking the machine for a new one."""

    __slots__ = ("branch", "cancelled", "job_id", "not_before", "resend")

    def __init__(self, job_id: str, branch: int, not_before: int,
                 resend: StartAttempt | None = None) -> None:
        self.job_id = job_id
        self.branch = branch
        self.not_before = not_before
        self.resend = resend
        self.cancelled = False


class PermitQueue:
    __slots__ = ("_by_key", "_delayed", "_ready", "_seq", "last_used", "limiter")

    def __init__(self, limiter: DomainLimiter) -> None:
        self.limiter = limiter
        self._ready: deque[Waiter] = deque()
        self._delayed: list[tuple[int, int, Waiter]] = []
        self._by_key: dict[tuple[str, int], Waiter] = {}
        self._seq = 0
        self.last_used = 0

    def __len__(self) -> int:
        """Waiters not cancelled (the backlog)."""
        return len(self._by_key)

    @property
    def idle(self) -> bool:
        return not self._by_key and self.limiter.in_flight == 0

    def ask(self, w: Waiter, now: int) -> None:
        old = self._by_key.get((w.job_id, w.branch))
        if old is not None:
            old.cancelled = True
        self._by_key[(w.job_id, w.branch)] = w
        self.last_used = now
        if w.not_before > now:
            self._seq += 1
            heapq.heappush(self._delayed, (w.not_before, self._seq, w))
        else:
            self._ready.append(w)

    def cancel(self, job_id: str, branch: int) -> None:
        w = self._by_key.pop((job_id, branch), None)
        if w is not None:
            w.cancelled = True

    def release(self, now: int, *, status: int | None = None,
                headers: dict[str, str] | None = None, verdict: Verdict | None = None) -> None:
        """A permit comes back; with ``verdict``, after an attempt that used it (feedback)."""
        lim = self.limiter
        lim.release(now)
        self.last_used = now
        if verdict is not None:
            if headers:
                lim.observe(now, status, headers)
            lim.record(now, verdict, status)

    def pump(self, now: int) -> tuple[list[Waiter], int | None]:
        """Grant what the limiter allows now; returns the granted waiters and the time at which
        to pump again (None: after the next release or ask)."""
        delayed, ready = self._delayed, self._ready
        while delayed and delayed[0][0] <= now:
            ready.append(heapq.heappop(delayed)[2])
        granted: list[Waiter] = []
        wake: int | None = None
        lim = self.limiter
        while ready:
            w = ready[0]
            if w.cancelled:
                ready.popleft()
                continue
            r = lim.acquire(now)
            if r == GRANTED:
                ready.popleft()
                del self._by_key[(w.job_id, w.branch)]
                granted.append(w)
            else:
                if r != BLOCKED:
                    wake = r
                break
        while delayed and delayed[0][2].cancelled:
            heapq.heappop(delayed)
        if delayed and (wake is None or delayed[0][0] < wake):
            wake = delayed[0][0]
        return granted, wake
