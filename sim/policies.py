"""Retry policies as DIY client add-ons (sources in docs/SCENARIOS.md).

Each is a small state machine that a :class:`~sim.clients.DiyClient` consults; none does I/O.

* :class:`RetryTokens`: gRPC's retry throttling (a token bucket: a failure costs 1 token, a
  success earns ``token_ratio``; retries only while more than half the tokens are left).
* :class:`ThrottleWindow`: Google SRE adaptive throttling (reject locally with probability
  ``max(0, (requests − K·accepts)/(requests + 1))`` over a sliding window of 1 s buckets).

* :class:`RetryQuota`: the AWS SDKs' *standard* retry mode quota (500 tokens; a retry costs 5,
  a retry after a timeout 10; a success refunds what its retry cost, or 1 if it needed none).
* :class:`ClientRateLimiter`: the AWS SDKs' *adaptive* mode client-side rate limiter: a token
  bucket whose fill rate is set by CUBIC (``engine.pacing.CubicPace``'s formula) from the
  measured send rate; off until the first throttle.
* :class:`ConcurrentRetryBudget`: Envoy's retry budget: retries outstanding at most
  ``max(min_concurrency, percent % of the requests outstanding)``.
* :class:`ClientBreaker`: a Resilience4j circuit breaker with its defaults (count window of
  100, at least 100 calls, 50 %, 60 s open, 10 half-open calls judged together).
"""

from __future__ import annotations

import math
from collections import deque

from engine.units import US_PER_S as S

__all__ = ["ClientBreaker", "ClientRateLimiter", "ConcurrentRetryBudget", "RetryQuota",
           "RetryTokens", "ThrottleWindow"]



class RetryTokens:
    __slots__ = ("max_tokens", "token_ratio", "tokens")

    def __init__(self, max_tokens: float, token_ratio: float) -> None:
        self.max_tokens = self.tokens = max_tokens
        self.token_ratio = token_ratio

    def record(self, ok: bool) -> None:
        if ok:
            self.tokens = min(self.max_tokens, self.tokens + self.token_ratio)
        else:
            self.tokens = max(0.0, self.tokens - 1.0)

    def allow_retry(self) -> bool:
        return self.tokens > self.max_tokens / 2


class ThrottleWindow:
    """Requests and accepts over the last ``seconds`` 1 s buckets."""

    __slots__ = ("accepts", "k", "n", "requests", "sec")

    def __init__(self, k: float, window_us: int) -> None:
        self.k = k
        self.n = max(1, window_us // S)
        self.requests = [0] * self.n
        self.accepts = [0] * self.n
        self.sec = -1

    def reject_probability(self, now: int) -> float:
        self._roll(now)
        req, acc = sum(self.requests), sum(self.accepts)
        return max(0.0, (req - self.k * acc) / (req + 1))

    def count(self, now: int, requests: int = 0, accepts: int = 0) -> None:
        self._roll(now)
        i = (now // S) % self.n
        self.requests[i] += requests
        self.accepts[i] += accepts

    def _roll(self, now: int) -> None:
        sec = now // S
        if sec != self.sec:
            steps = min(self.n, sec - self.sec) if self.sec >= 0 else self.n
            for k in range(1, steps + 1):
                i = (self.sec + k) % self.n if self.sec >= 0 else k - 1
                self.requests[i] = 0
                self.accepts[i] = 0
            self.sec = sec


class RetryQuota:
    __slots__ = ("cost", "max_tokens", "refund", "timeout_cost", "tokens")

    def __init__(self, max_tokens: int, cost: int, timeout_cost: int, refund: int) -> None:
        self.max_tokens = self.tokens = max_tokens
        self.cost = cost
        self.timeout_cost = timeout_cost
        self.refund = refund

    def take(self, timed_out: bool) -> int | None:
        """Pay for one retry: the amount paid, None when the quota cannot pay (no retry)."""
        amount = self.timeout_cost if timed_out else self.cost
        if self.tokens < amount:
            return None
        self.tokens -= amount
        return amount

    def on_success(self, paid: int) -> None:
        """A success gives back what its last retry paid, or ``refund`` if it was a first try."""
        self.tokens = min(self.max_tokens, self.tokens + (paid if paid else self.refund))


class ClientRateLimiter:
    """AWS adaptive mode. Sends wait for a token; the fill rate follows CUBIC on throttles."""

    __slots__ = ("_bin", "_count", "beta", "capacity", "enabled", "k", "last_fill",
                 "last_throttle", "measured", "min_rate", "rate", "scale", "smoothing",
                 "tokens", "w_max")

    BIN_US = S // 2  # the send rate is measured in 0.5 s bins

    def __init__(self, beta: float, scale: float, min_rate: float, smoothing: float) -> None:
        self.beta = beta
        self.scale = scale
        self.min_rate = min_rate
        self.smoothing = smoothing
        self.enabled = False
        self.rate = min_rate  # the bucket's fill rate (requests/s) once enabled
        self.capacity = 1.0
        self.tokens = 0.0
        self.last_fill = 0
        self.measured = 0.0
        self._bin = 0
        self._count = 0
        self.w_max = min_rate
        self.k = 0.0
        self.last_throttle = 0

    def try_acquire(self, now: int) -> int:
        """Take a token for a send at ``now``: 0 when taken, else how long (µs) until one is
        there at the current rate (the caller waits and asks again, as the SDK's blocked
        thread does, so a rate that rises meanwhile shortens the wait)."""
        if not self.enabled:
            return 0
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0
        return max(1, math.ceil((1.0 - self.tokens) / self.rate * S))

    def on_response(self, now: int, throttled: bool) -> None:
        measured = self._clock(now)
        if throttled:
            rate_to_use = min(measured, self.rate) if self.enabled else measured
            self.w_max = rate_to_use
            self.k = (self.w_max * (1.0 - self.beta) / self.scale) ** (1.0 / 3.0)
            self.last_throttle = now
            new = rate_to_use * self.beta
            self.enabled = True
        elif self.enabled:
            t = (now - self.last_throttle) / S
            new = self.scale * (t - self.k) ** 3 + self.w_max
        else:
            return
        self._refill(now)
        self.rate = max(self.min_rate, min(new, 2.0 * measured))
        self.capacity = max(1.0, self.rate)
        self.tokens = min(self.tokens, self.capacity)

    def _refill(self, now: int) -> None:
        if now > self.last_fill:
            self.tokens = min(self.capacity, self.tokens + (now - self.last_fill) / S * self.rate)
            self.last_fill = now

    def _clock(self, now: int) -> float:
        """The smoothed send rate (requests/s), updated when a new 0.5 s bin begins."""
        self._count += 1
        b = now // self.BIN_US
        if b > self._bin:
            current = self._count / ((b - self._bin) * self.BIN_US / S)
            self.measured = current * self.smoothing + self.measured * (1 - self.smoothing)
            self._count = 0
            self._bin = b
        return self.measured


class ConcurrentRetryBudget:
    __slots__ = ("active", "min_concurrency", "percent", "retries")

    def __init__(self, percent: float, min_concurrency: int) -> None:
        self.percent = percent
        self.min_concurrency = min_concurrency
        self.active = 0  # requests outstanding (first tries and retries)
        self.retries = 0  # retries outstanding (scheduled or in flight)

    def allow_retry(self) -> bool:
        limit = max(self.min_concurrency, self.percent / 100.0 * self.active)
        if self.retries >= limit:
            return False
        self.retries += 1
        return True


class ClientBreaker:
    """Resilience4j's CircuitBreaker (count-based window)."""

    CLOSED, OPEN, HALF_OPEN = range(3)

    __slots__ = ("failure_rate", "failures", "half_open_calls", "min_calls", "open_until",
                 "open_us", "permitted", "results", "state", "window")

    def __init__(self, failure_rate: float, window: int, min_calls: int, open_us: int,
                 half_open_calls: int) -> None:
        self.failure_rate = failure_rate
        self.window = window
        self.min_calls = min_calls
        self.open_us = open_us
        self.half_open_calls = half_open_calls
        self.state = self.CLOSED
        self.results: deque[bool] = deque()
        self.failures = 0
        self.open_until = 0
        self.permitted = 0

    def allow(self, now: int) -> bool:
        if self.state == self.OPEN:
            if now < self.open_until:
                return False
            self.state = self.HALF_OPEN
            self.results.clear()
            self.failures = 0
            self.permitted = 0
        if self.state == self.HALF_OPEN:
            if self.permitted >= self.half_open_calls:
                return False
            self.permitted += 1
        return True

    def record(self, now: int, failed: bool) -> None:
        r = self.results
        if self.state == self.OPEN:
            return
        r.append(failed)
        self.failures += failed
        if self.state == self.HALF_OPEN:
            if len(r) < self.half_open_calls:
                return
            if self.failures >= self.failure_rate * len(r):
                self._open(now)
            else:
                self.state = self.CLOSED
                r.clear()
                self.failures = 0
            return
        if len(r) > self.window:
            self.failures -= r.popleft()
        if len(r) >= self.min_calls and self.failures >= self.failure_rate * len(r):
            self._open(now)

    def _open(self, now: int) -> None:
        self.state = self.OPEN
        self.open_until = now + self.open_us
        self.results.clear()
        self.failures = 0
