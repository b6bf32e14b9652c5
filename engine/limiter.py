"""The per-domain limiter: GCRA pacing + a concurrency cap + header adaptation + 429 pauses.

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
* **Retry-After**: a 429 carrying ``Retry-After`` (delta seconds) pauses the whole domain until
  ``now + Retry-After``.

``acquire(now)`` answers :data:`GRANTED`, :data:`BLOCKED` (at the concurrency cap: ask again after
a release) or the earliest time (µs, > now) at which asking again can succeed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import msgspec

__all__ = ["BLOCKED", "GRANTED", "DomainLimiter", "LimiterConfig", "parse_retry_after"]

GRANTED = 0
BLOCKED = -1
RPS_HEADER = "x-ezthrottle-rps"
MAX_CONCURRENT_HEADER = "x-ezthrottle-max-concurrent"
MAX_RPS = 1_000_000.0
MAX_CONCURRENT = 1_000_000


class LimiterConfig(msgspec.Struct, frozen=True, kw_only=True):
    rate: float = 2.0
    burst: int = 1
    max_concurrent: int = 2
    min_rate: float | None = None
    max_rate: float | None = None
    min_concurrent: int | None = None
    max_concurrent_cap: int | None = None
    decay_after_us: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate must be a finite number > 0, got {self.rate}")
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst}")
        if self.max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {self.max_concurrent}")


def _interval(rate: float) -> int:
    return max(1, math.ceil(1_000_000 / rate))


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
    return round(secs * 1_000_000)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    v = headers.get(name)
    if v is not None:
        return v
    for k, val in headers.items():
        if k.lower() == name:
            return val
    return None


class DomainLimiter:
    __slots__ = ("_interval", "_last_mc", "_last_rps", "_last_signal", "config", "domain",
                 "grants", "in_flight", "malformed_headers", "max_concurrent", "paused_until",
                 "rate", "tat")

    def __init__(self, domain: str, config: LimiterConfig | None = None) -> None:
        self.domain = domain
        self.config = config or LimiterConfig()
        self.rate = self.config.rate
        self.max_concurrent = self.config.max_concurrent
        self._interval = _interval(self.rate)
        self.tat = 0  # theoretical arrival time of the next conforming start
        self.in_flight = 0
        self.paused_until = 0
        self.grants = 0
        self.malformed_headers = 0
        self._last_signal: int | None = None
        self._last_rps: str | None = None  # the raw header last applied (skip re-parsing it)
        self._last_mc: str | None = None

    def acquire(self, now: int) -> int:
        """Take a permit if pacing, pause and concurrency allow; else say when to ask again."""
        if self._last_signal is not None and self.config.decay_after_us is not None \
                and now - self._last_signal >= self.config.decay_after_us:
            self._reset_to_config()
        if now < self.paused_until:
            return self.paused_until
        if self.in_flight >= self.max_concurrent:
            return BLOCKED
        allowed_at = self.tat - (self.config.burst - 1) * self._interval
        if now < allowed_at:
            return allowed_at
        self.tat = (self.tat if self.tat > now else now) + self._interval
        self.in_flight += 1
        self.grants += 1
        return GRANTED

    def next_allowed(self, now: int) -> int:
        """Earliest time ≥ now at which pacing and pause would allow a start (ignores the cap)."""
        at = max(now, self.paused_until, self.tat - (self.config.burst - 1) * self._interval)
        return at

    def release(self, now: int) -> None:
        if self.in_flight <= 0:
            raise RuntimeError(f"release without a permit on {self.domain}")
        self.in_flight -= 1

    def observe(self, now: int, status: int | None, headers: Mapping[str, str] | None) -> None:
        """Learn from a response: adaptation headers and 429 Retry-After pauses."""
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
        if status == 429:
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
        self._apply_rate(value)
        self._last_signal = now
        self._last_rps = raw

    def _apply_rate(self, value: float) -> None:
        new = _interval(value)
        # Re-base the next start on the *new* interval, so a lowered rate holds from now on.
        if self.grants:
            self.tat += new - self._interval
        self._interval = new
        self.rate = value

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
        self._apply_rate(self.config.rate)
        self.max_concurrent = self.config.max_concurrent
        self._last_signal = None
