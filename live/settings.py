"""``apidam serve`` settings: one frozen record, every default from the engine."""

from __future__ import annotations

import msgspec

from engine.breaker import BreakerConfig
from engine.idempotency import DEFAULT_RETENTION_US
from engine.job import DEFAULT_ATTEMPT_TIMEOUT_US
from engine.limiter import LimiterConfig
from engine.pacing import PacingConfig
from engine.retry import Backoff
from engine.webhooks import DEFAULT_SCHEDULE_US, DEFAULT_WEBHOOK_TIMEOUT_US

__all__ = ["DEFAULT_REGIONS", "ApiKey", "LiveSettings"]

#: The region labels of the SDK's examples; a job listing another region is treated as listing
#: a region that is down (``strict`` fails, ``fallback`` substitutes one of these).
DEFAULT_REGIONS: tuple[str, ...] = ("iad", "lax", "ord")


class ApiKey(msgspec.Struct, frozen=True):
    customer_id: str
    tier: str = "free"

    def __repr__(self) -> str:
        return f"ApiKey({self.customer_id!r}, {self.tier!r})"


class LiveSettings(msgspec.Struct, frozen=True, kw_only=True):
    regions: tuple[str, ...] = DEFAULT_REGIONS
    allow_private_targets: bool = False
    limiter: LimiterConfig = LimiterConfig()
    breaker: BreakerConfig = BreakerConfig()
    pacing: PacingConfig = PacingConfig()
    backoff: Backoff = Backoff()
    attempt_timeout_us: int = DEFAULT_ATTEMPT_TIMEOUT_US
    webhook_timeout_us: int = DEFAULT_WEBHOOK_TIMEOUT_US
    webhook_schedule_us: tuple[int, ...] = DEFAULT_SCHEDULE_US
    retention_us: int = DEFAULT_RETENTION_US
    connections_per_host: int = 100
    #: Unfinished jobs held at most; a submit beyond it is refused with 503 + Retry-After
    #: (children of running jobs are still admitted). Bounds memory: ~3 KB per waiting job.
    max_active_jobs: int = 200_000
    seed: int = 0  # per-job random sources derive from it and the job id
