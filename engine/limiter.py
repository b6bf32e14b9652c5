"""The per-domain limiter: GCRA pacing + a concurrency cap + header adaptation + Retry-After
pauses + failure feedback (circuit breaker, slow start, adaptive pace).

One limiter per target domain (``scheme://host[:port]``), global across the dam's regions.

* **Pacing** is GCRA with emission interval ``T = ceil(1e6 / rate)`` µs and burst ``b``: a start at
  ``now`` is allowed when ``now >= tat - (b - 1)·T``; it then sets ``tat = max(tat, now) + T``.
  With the default ``b = 1`` consecutive starts are at least ``T`` apart, so any window of length
  ``W`` holds at most ``floor(W·rate) + 1`` starts (T is rounded *up* so rounding never breaks
  that bound).
* **Concurrency**: at most ``max_concurrent`` permits out at once; ``release`` returns one.
* **Adaptation**: ``X-EZTHROTTLE-RPS`` (finite float > 0) and ``X-EZTHROTTLE-MAX-CONCURRENT``
  (integer ≥ 1) replace the current values from that response on. Malformed or out-of-range
  values are ignored and counted in ``malformed_headers``. Optional floors/caps clamp them and an
  optional decay returns to the configured values after a quiet period (both off by default).
* **Retry-After**: a 429 or 503 carrying ``Retry-After`` (delta seconds, RFC 9110 §10.2.3)
  pauses the whole domain until ``now + Retry-After``.
* **Failure feedback** (:meth:`DomainLimiter.record`, one call per finished attempt): the
  domain's :class:`~engine.breaker.CircuitBreaker` (no permit while open except paced probes),
  slow start when it closes, and the CUBIC adaptive pace while the domain advertises no rate
  (:mod:`engine.pacing`). The pace actually used is
  ``min(rate, adaptive pace) × slow-start factor``, so it never exceeds the configured or
  advertised rate.

``acquire(now)`` answers :data:`GRANTED`, :data:`BLOCKED` (at the concurrency cap: ask again after
a release) or the earliest time (µs, > now) at which asking again can succeed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .breaker import BreakerState, CircuitBreaker, Verdict
from .configs import BreakerConfig, LimiterConfig, PacingConfig
from .pacing import CubicPace, slow_start_factor
from .units import US_PER_S

__all__ = ["BLOCKED", "GRANTED", "DomainLimiter", "LimiterConfig", "parse_retry_after"]

GRANTED = 0
BLOCKED = -1
RPS_HEADER = "x-ezthrottle-rps"
MAX_CONCURRENT_HEADER = "x-ezthrottle-max-concurrent"
MAX_RPS = 1_000_000.0
MAX_CONCURRENT = 1_000_000


def _interval(rate: float) -> int:
    return max(1, math.ceil(US_PER_S / rate))


def parse_retry_after(value: str | None) -> int | None:
    """Retry-After as delta seconds → µs; None when absent or not a non-negative number.

    HTTP-dates are not parsed (the engine has no clock to compare them with) and count as
    malformed.
    """
    if value is None:
        return None
    try:
        secs = float(value.strip())
    except (ValueError, AttributeError):
        return None
    if not math.isfinite(secs) or secs < 0:
        return None
    return round(secs * US_PER_S)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    v = headers.get(name)
    if v is not None:
        return v
    for k, val in headers.items():
        if k.lower() == name:
            return val
    return None


class DomainLimiter:
    __slots__ = ("_cubic", "_interval", "_last_mc", "_last_rps", "_last_signal", "_last_start",
                 "_ramp_end", "_ramp_start", "advertised", "breaker", "config", "domain", "grants",
                 "in_flight", "malformed_headers", "max_concurrent", "pace", "pacing",
                 "paused_until", "rate", "tat")

    def __init__(self, domain: str, config: LimiterConfig | None = None, *,
                 breaker: BreakerConfig | None = None,
                 pacing: PacingConfig | None = None) -> None:
        self.domain = domain
        self.config = config or LimiterConfig()
        bc = breaker or BreakerConfig()
        self.breaker = CircuitBreaker(bc) if bc.enabled else None
        self.pacing = pacing or PacingConfig()
        self.rate = self.config.rate  # configured or advertised
        self.advertised = False  # an X-EZTHROTTLE-RPS is in force
        self._cubic = CubicPace(self.rate, self.pacing) if self.pacing.adaptive else None
        self.pace = self.rate  # the rate used: min(rate, adaptive pace)
        self.max_concurrent = self.config.max_concurrent
        self._interval = _interval(self.pace)
        self._ramp_start = self._ramp_end = 0  # slow start in [start, end)
        self._last_start = -(1 << 62)
        self.tat = 0  # theoretical arrival time of the next conforming start
        self.in_flight = 0
        self.paused_until = 0
        self.grants = 0
        self.malformed_headers = 0
        self._last_signal: int | None = None
        self._last_rps: str | None = None  # the raw header last applied (skip re-parsing it)
        self._last_mc: str | None = None

    def acquire(self, now: int) -> int:
        """Take a permit if pause, breaker, concurrency and pacing allow; else say when to ask
        again (:data:`BLOCKED`: after a permit comes back)."""
        if self._last_signal is not None and self.config.decay_after_us is not None \
                and now - self._last_signal >= self.config.decay_after_us:
            self._reset_to_config()
        if now < self.paused_until:
            return self.paused_until
        b = self.breaker
        if b is not None:
            at = b.admit(now, self.in_flight)
            if at:
                return at
        if self.in_flight >= self.max_concurrent:
            return BLOCKED
        interval = self._interval
        allowed_at = self.tat - (self.config.burst - 1) * interval
        if now < self._ramp_end:
            ready = self._ramp_ready_at(now)
            if ready > allowed_at:
                allowed_at = ready
        if now < allowed_at:
            return allowed_at
        self.tat = (self.tat if self.tat > now else now) + interval
        self._last_start = now
        self.in_flight += 1
        self.grants += 1
        if b is not None:
            b.on_grant(now)
        return GRANTED

    def _ramp_ready_at(self, now: int) -> int:
        """Slow start: the earliest ``t >= now`` at which the time since the last start covers
        the ramp's spacing *at t* (no burst while ramping). The spacing shrinks as the ramp
        climbs, so a start made at the ramp's low beginning does not hold back the next one,
        and the answer is exact rather than a wake-up far in the future.

        With ``x = t - last`` and the factor ``f = c + b·x`` linear in ``x``, readiness is
        ``x · pace · f >= 1e6``: the root of ``b·x² + c·x - 1e6/pace``, then a step or two for
        the interval's rounding (``ready`` is monotone in ``t``)."""
        last, start, cfg, pace = self._last_start, self._ramp_start, self.pacing, self.pace

        def ready(t: int) -> bool:
            return t - last >= _interval(pace * slow_start_factor(t, start, cfg))

        if ready(now):
            return now
        end = max(self._ramp_end, last + self._interval)  # ready(end): full pace there
        b = (1.0 - cfg.slow_start_floor) / cfg.slow_start_us
        c = cfg.slow_start_floor + b * (last - start)
        k = US_PER_S / pace
        x = 2.0 * k / (c + math.sqrt(c * c + 4.0 * b * k))  # the root, stable for b -> 0
        t = min(end, max(now + 1, last + math.ceil(x)))
        lo, hi = now, end  # not ready(lo), ready(hi): tighten around the estimate
        if ready(t):
            hi = t
            if t - 1 <= now or not ready(t - 1):
                return t
        else:
            lo = t
            if t + 1 >= end or ready(t + 1):
                return min(t + 1, end)
        while hi - lo > 1:  # the estimate was off (rounding at the ramp's ends): bisect
            mid = (lo + hi) // 2
            if ready(mid):
                hi = mid
            else:
                lo = mid
        return hi

    def current_pace(self, now: int) -> float:
        """The pace (requests/s) a start at ``now`` is held to; 0 while the breaker is open or
        the domain is paused."""
        if now < self.paused_until:
            return 0.0
        b = self.breaker
        if b is not None and b.state is not BreakerState.CLOSED:
            return 0.0 if b.state is BreakerState.OPEN and now < b.open_until \
                else US_PER_S / max(1, b.config.probe_interval_us)
        if now < self._ramp_end:
            return self.pace * slow_start_factor(now, self._ramp_start, self.pacing)
        return self.pace

    def release(self, now: int) -> None:
        if self.in_flight <= 0:
            raise RuntimeError(f"release without a permit on {self.domain}")
        self.in_flight -= 1

    def reclaim(self, n: int) -> None:
        """``n`` permits are gone without an answer (their region died): forget them."""
        if not 0 <= n <= self.in_flight:
            raise RuntimeError(f"reclaim {n} of {self.in_flight} permits on {self.domain}")
        self.in_flight -= n

    def record(self, now: int, verdict: int, status: int | None = None) -> None:
        """Failure feedback from one finished attempt (call after :meth:`release`); ``verdict``
        is a :class:`~engine.breaker.Verdict` or its plain int."""
        b = self.breaker
        if b is not None and b.record(now, verdict) and self.pacing.slow_start_us > 0:
            self._ramp_start = now
            self._ramp_end = now + self.pacing.slow_start_us
        cubic = self._cubic
        if cubic is None or self.advertised:
            return
        if status == 429 or status == 503:
            cubic.on_throttle(now)
        elif verdict != Verdict.SUCCESS or not cubic.on_success(now):
            return
        self._update_pace()

    def observe(self, now: int, status: int | None, headers: Mapping[str, str] | None) -> None:
        """Learn from a response: adaptation headers and 429/503 Retry-After pauses."""
        if not headers:
            return
        rps = _header(headers, RPS_HEADER)
        if rps is not None:
            if rps == self._last_rps:
                self._last_signal = now
            else:
                self._set_rate(rps, now)
        mc = _header(headers, MAX_CONCURRENT_HEADER)
        if mc is not None:
            if mc == self._last_mc:
                self._last_signal = now
            else:
                self._set_concurrency(mc, now)
        if status == 429 or status == 503:
            ra = _header(headers, "retry-after")
            if ra is not None:
                delay = parse_retry_after(ra)
                if delay is None:
                    self.malformed_headers += 1
                else:
                    self.paused_until = max(self.paused_until, now + delay)

    def _set_rate(self, raw: str, now: int) -> None:
        try:
            value = float(raw.strip())
        except (ValueError, AttributeError):
            self.malformed_headers += 1
            return
        if not math.isfinite(value) or value <= 0 or value > MAX_RPS:
            self.malformed_headers += 1
            return
        c = self.config
        if c.min_rate is not None:
            value = max(value, c.min_rate)
        if c.max_rate is not None:
            value = min(value, c.max_rate)
        self.advertised = True  # the server said what it takes: the adaptive pace stands down
        self._apply_rate(value)
        self._last_signal = now
        self._last_rps = raw

    def _apply_rate(self, value: float) -> None:
        self.rate = value
        self._update_pace()

    def _update_pace(self) -> None:
        cubic = self._cubic
        pace = self.rate
        if cubic is not None and not self.advertised and cubic.rate < pace:
            pace = cubic.rate
        new = _interval(pace)
        # Re-base the next start on the *new* interval, so a lowered rate holds from now on.
        if self.grants:
            self.tat += new - self._interval
        self._interval = new
        self.pace = pace

    def _set_concurrency(self, raw: str, now: int) -> None:
        s = raw.strip() if isinstance(raw, str) else ""
        if not s.isdigit() or not s.isascii():
            self.malformed_headers += 1
            return
        value = int(s)
        if value < 1 or value > MAX_CONCURRENT:
            self.malformed_headers += 1
            return
        c = self.config
        if c.min_concurrent is not None:
            value = max(value, c.min_concurrent)
        if c.max_concurrent_cap is not None:
            value = min(value, c.max_concurrent_cap)
        self.max_concurrent = value
        self._last_signal = now
        self._last_mc = raw

    def _reset_to_config(self) -> None:
        self._last_rps = self._last_mc = None
        self.advertised = False
        if self._cubic is not None:
            self._cubic = CubicPace(self.config.rate, self.pacing)
        self._apply_rate(self.config.rate)
        self.max_concurrent = self.config.max_concurrent
        self._last_signal = None
