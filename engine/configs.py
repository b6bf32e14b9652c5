"""The configuration records of the per-domain limiter, its circuit breaker and its pacing.

Frozen msgspec Structs, validated on construction. They live apart from the state machines
that use them (:mod:`engine.limiter`, :mod:`engine.breaker`, :mod:`engine.pacing`, which
re-export them) because those modules are compiled in the optional compiled build, and mypyc
drops a class statement's keyword arguments (``frozen=True``, ``kw_only=True``) without a word.
"""

from __future__ import annotations

import math

import msgspec

from .units import US_PER_S as S

__all__ = ["BreakerConfig", "LimiterConfig", "PacingConfig"]


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


class BreakerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Defaults are the dam's (reasons in docs/SEMANTICS.md §8a)."""

    enabled: bool = True
    failure_rate: float = 0.5  # Resilience4j failureRateThreshold 50 %
    window_calls: int = 100  # Resilience4j slidingWindowSize 100 (count-based)
    window_us: int = 30 * S  # outcomes older than this are forgotten (time-based bound)
    min_calls: int = 10  # Resilience4j: 100; a 2 req/s domain would need 50 s to react
    open_us: int = 5 * S  # first open interval (Resilience4j 60 s; Envoy ejection 30 s)
    max_open_us: int = 30 * S  # cap of the doubling open interval (Envoy max_ejection_time)
    probes: int = 3  # probe permits per half-open round = successes needed to close
    probe_interval_us: int = S  # probes at least this far apart

    def __post_init__(self) -> None:
        if not 0 < self.failure_rate <= 1:
            raise ValueError(f"failure_rate must be in (0, 1], got {self.failure_rate}")
        if not 1 <= self.min_calls <= self.window_calls:
            raise ValueError("need 1 <= min_calls <= window_calls")
        if self.window_us <= 0 or self.open_us <= 0 or self.probe_interval_us < 0:
            raise ValueError("window_us and open_us must be > 0, probe_interval_us >= 0")
        if self.max_open_us < self.open_us:
            raise ValueError("max_open_us must be >= open_us")
        if self.probes < 1:
            raise ValueError("probes must be >= 1")


class PacingConfig(msgspec.Struct, frozen=True, kw_only=True):
    slow_start_us: int = 20 * S  # 0 = off
    slow_start_floor: float = 0.1  # Envoy slow_start_config.min_weight_percent: 10 %
    adaptive: bool = True
    min_rate: float = 0.5  # requests/s; the AWS SDKs' minimum fill rate
    beta: float = 0.7  # AWS SDK adaptive mode (CUBIC β)
    scale: float = 0.4  # AWS SDK adaptive mode (CUBIC C)

    def __post_init__(self) -> None:
        if self.slow_start_us < 0:
            raise ValueError("slow_start_us must be >= 0")
        if not 0 < self.slow_start_floor <= 1:
            raise ValueError("slow_start_floor must be in (0, 1]")
        if not (math.isfinite(self.min_rate) and self.min_rate > 0):
            raise ValueError("min_rate must be a finite number > 0")
        if not 0 < self.beta < 1:
            raise ValueError("beta must be in (0, 1)")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError("scale must be a finite number > 0")
