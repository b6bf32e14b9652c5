"""How fast the dam paces a domain beyond its configured or advertised rate.

Two controllers, both inside :class:`~engine.limiter.DomainLimiter` (defaults and sources in
``docs/SEMANTICS.md`` §8b):

* **Slow start** (after Envoy's ``slow_start_config``): when a domain's breaker closes, its pace
  ramps linearly from ``slow_start_floor`` × pace to the full pace over ``slow_start_us``, so the
  backlog that piled up during the outage does not hit an API that has only just come back at
  full speed.
* **Adaptive pace** (the AWS SDKs' adaptive retry mode: CUBIC, ``C = 0.4``, ``β = 0.7``), for
  domains that advertise no ``X-EZTHROTTLE-RPS``: a 429 or 503 multiplies the pace by β and
  remembers it as ``W_max``; every success then sets the pace to
  ``C·(t − K)³ + W_max`` with ``K = ∛(W_max·(1 − β)/C)`` and ``t`` the seconds since the last
  throttle, so the pace climbs back fast, flattens near ``W_max`` and then probes beyond it.
  It never exceeds the configured rate (the ceiling) nor falls below ``min_rate`` (the floor).
  Unlike the AWS client, the dam does not also cap the pace at twice a measured send rate: a dam
  with a backlog sends at its pace, and the ceiling already bounds it.
"""

from __future__ import annotations

from .configs import PacingConfig
from .units import US_PER_S as S

__all__ = ["CubicPace", "PacingConfig", "slow_start_factor"]



def slow_start_factor(now: int, started: int, cfg: PacingConfig) -> float:
    """The share of the full pace allowed at ``now`` in a ramp that began at ``started``."""
    span = cfg.slow_start_us
    if span <= 0 or now >= started + span:
        return 1.0
    f = cfg.slow_start_floor
    return f + (1.0 - f) * (now - started) / span


class CubicPace:
    """The CUBIC rate controller of the AWS SDKs' adaptive mode, in requests per second."""

    __slots__ = ("beta", "ceiling", "floor", "k", "last_throttle", "rate", "scale", "w_max")

    def __init__(self, ceiling: float, cfg: PacingConfig) -> None:
        self.beta = cfg.beta
        self.scale = cfg.scale
        self.ceiling = ceiling
        self.floor = min(cfg.min_rate, ceiling)
        self.rate = ceiling
        self.w_max = ceiling
        self.k = 0.0
        self.last_throttle: int | None = None

    def on_throttle(self, now: int) -> None:
        self.w_max = self.rate
        self.k = (self.w_max * (1.0 - self.beta) / self.scale) ** (1.0 / 3.0)
        self.last_throttle = now
        self.rate = max(self.floor, self.rate * self.beta)

    def on_success(self, now: int) -> bool:
        """Grow after a throttle; True when the rate changed."""
        if self.last_throttle is None:
            return False
        t = (now - self.last_throttle) / S
        new = self.scale * (t - self.k) ** 3 + self.w_max
        new = self.ceiling if new > self.ceiling else (self.floor if new < self.floor else new)
        if new >= self.ceiling:
            self.last_throttle = None  # back at the ceiling: nothing left to recover
        if new == self.rate:
            return False
        self.rate = new
        return True
