"""The per-domain circuit breaker: the dam stops sending into a domain that is failing.

One breaker per target domain, global across the dam's regions (it lives inside the domain's
:class:`~engine.limiter.DomainLimiter`). States (``docs/SEMANTICS.md`` §8a has every default
and its source):

* ``CLOSED``: permits flow. Every finished attempt leaves a :class:`Verdict`; the breaker keeps
  the last ``window_calls`` of them that are younger than ``window_us``. When at least
  ``min_calls`` are in the window and the share of failures reaches ``failure_rate``, it opens.
* ``OPEN``: no permit at all until ``open_until``. Jobs waiting for a permit simply wait (in the
  limiter's queue): waiting spends none of their retries.
* ``HALF_OPEN``: a *probe round* of at most ``probes`` permits, at least ``probe_interval_us``
  apart. A failure re-opens the breaker for the next, longer interval (doubled, capped at
  ``max_open_us``); ``probes`` successes close it (and reset the interval). A round whose permits
  all came back without a verdict (a 4xx, a cancelled branch) is renewed once nothing is in
  flight, so the breaker can never stall half-open.

A failure is a timeout, a connection error, or a status in the job's retry or reroute codes;
a 2xx is a success; anything else (another 4xx: the caller's problem) is :data:`Verdict.NEUTRAL`
and never moves the breaker (:func:`verdict`).
"""

from __future__ import annotations

import enum
from collections import deque

from .configs import BreakerConfig
from .spec import RetryPolicy

__all__ = ["BreakerConfig", "BreakerState", "CircuitBreaker", "Verdict", "verdict"]



class Verdict(enum.IntEnum):
    SUCCESS = 0
    FAILURE = 1
    NEUTRAL = 2


class BreakerState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


def verdict(status: int | None, error: str | None, policy: RetryPolicy | None) -> Verdict:
    """What one finished attempt says about its domain's health.

    ``policy`` None (the job is gone) uses the default retry policy's codes."""
    if error is not None or status is None:
        return Verdict.FAILURE
    if 200 <= status <= 299:
        return Verdict.SUCCESS
    p = policy if policy is not None else _DEFAULT_POLICY
    if status in p.retry_codes or status in p.reroute_codes:
        return Verdict.FAILURE
    return Verdict.NEUTRAL


_DEFAULT_POLICY = RetryPolicy()


class CircuitBreaker:
    """Sans-IO breaker. The limiter asks :meth:`admit` before pacing, calls :meth:`on_grant`
    for every permit it grants and :meth:`record` for every permit that comes back."""

    __slots__ = ("_failures", "_interval", "_window", "config", "next_probe_at", "open_until",
                 "open_us_total", "opened_at", "opens", "probe_attempts", "probe_grants",
                 "probe_successes", "reopens", "state")

    def __init__(self, config: BreakerConfig | None = None) -> None:
        self.config = config or BreakerConfig()
        self.state = BreakerState.CLOSED
        self._window: deque[tuple[int, bool]] = deque()
        self._failures = 0
        self._interval = self.config.open_us
        self.open_until = 0
        self.opened_at = -1  # when the current not-closed spell began; -1 while closed
        self.next_probe_at = 0
        self.probe_grants = 0  # permits granted in this probe round
        self.probe_successes = 0
        # figures
        self.opens = 0  # closed -> open
        self.reopens = 0  # half-open -> open (a probe failed)
        self.probe_attempts = 0
        self.open_us_total = 0  # closed spells only; add ``now - opened_at`` for a live one

    # -- permits ---------------------------------------------------------------------------------
    def admit(self, now: int, in_flight: int) -> int:
        """0: a permit may be granted now (pacing still applies); > 0: not before that time;
        -1: not until a permit comes back."""
        state = self.state
        if state is BreakerState.CLOSED:
            return 0
        if state is BreakerState.OPEN:
            if now < self.open_until:
                return self.open_until
            self.state = BreakerState.HALF_OPEN
            self.probe_grants = self.probe_successes = 0
            self.next_probe_at = now
        if self.probe_grants >= self.config.probes:
            if in_flight > 0:
                return -1
            self.probe_grants = 0  # every probe came back without a verdict: a new round
        return 0 if now >= self.next_probe_at else self.next_probe_at

    def on_grant(self, now: int) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self.probe_grants += 1
            self.probe_attempts += 1
            self.next_probe_at = now + self.config.probe_interval_us

    # -- outcomes --------------------------------------------------------------------------------
    def record(self, now: int, v: int) -> bool:
        """Learn from one finished attempt (``v``: a :class:`Verdict`, or its plain int after a
        trip through msgpack); True when this closed the breaker."""
        state = self.state
        if v == Verdict.NEUTRAL:  # == not is: a Verdict may arrive as a plain int (msgpack)
            return False
        failed = v == Verdict.FAILURE
        if state is BreakerState.CLOSED:
            c = self.config
            w = self._window
            w.append((now, failed))
            self._failures += failed
            horizon = now - c.window_us
            while len(w) > c.window_calls or w[0][0] <= horizon:
                self._failures -= w.popleft()[1]
            n = len(w)
            if n >= c.min_calls and self._failures >= c.failure_rate * n:
                self._open(now)
            return False
        if state is BreakerState.HALF_OPEN:
            if failed:
                self._open(now)
                return False
            self.probe_successes += 1
            if self.probe_successes >= self.config.probes:
                self._close(now)
                return True
        return False  # OPEN: late answers to permits granted before it opened

    def _open(self, now: int) -> None:
        if self.state is BreakerState.CLOSED:
            self.opened_at = now
            self._window.clear()
            self._failures = 0
            self.opens += 1
        else:
            self.reopens += 1
        self.state = BreakerState.OPEN
        self.open_until = now + self._interval
        self._interval = min(self.config.max_open_us, self._interval * 2)

    def _close(self, now: int) -> None:
        self.state = BreakerState.CLOSED
        self.open_us_total += now - self.opened_at
        self.opened_at = -1
        self._interval = self.config.open_us

    def open_us(self, now: int) -> int:
        """Total time spent open or half-open up to ``now``."""
        live = now - self.opened_at if self.opened_at >= 0 else 0
        return self.open_us_total + live
