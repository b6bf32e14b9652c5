"""Billing: the EZThrottle tier table, monthly usage, overage and hard caps; DIY cost model.

One accepted, non-duplicate job is one request. Usage is counted per calendar month (UTC) of
virtual time, where virtual time 0 is the unix epoch (so ``now`` may be unix microseconds).
Overage is billed per *started* block of 100k requests above the included amount. At the cap a
submit is refused with :class:`~engine.errors.CapReached` (429 ``cap_reached``).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from .errors import CapReached
from .units import US_PER_S

__all__ = [
    "TIERS",
    "BillingAccount",
    "DiyCostModel",
    "Tier",
    "TierName",
    "cheapest_tier",
    "month_of",
    "month_start_us",
    "monthly_cost",
]

TierName = Literal["free", "indie", "growth", "pro"]
US_PER_DAY = 86_400 * US_PER_S
OVERAGE_BLOCK = 100_000


class Tier(msgspec.Struct, frozen=True):
    name: str
    included: int
    base_usd: float
    overage_usd_per_100k: float
    cap: int


#: The SDK README's tier table.
TIERS: dict[str, Tier] = {
    "free": Tier("free", 1_000_000, 0.0, 0.0, 1_000_000),
    "indie": Tier("indie", 2_000_000, 50.0, 50.0, 5_000_000),
    "growth": Tier("growth", 5_000_000, 200.0, 40.0, 10_000_000),
    "pro": Tier("pro", 10_000_000, 500.0, 25.0, 25_000_000),
}


def month_of(now_us: int) -> tuple[int, int]:
    """(year, month) in UTC of a virtual time in µs since the unix epoch (proleptic Gregorian)."""
    z = now_us // US_PER_DAY + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return year, month


def month_start_us(year: int, month: int) -> int:
    """µs since the unix epoch at 00:00 UTC on the first day of ``month`` (1-12) of ``year``:
    the inverse of :func:`month_of` at month starts (when a capped customer may submit again)."""
    y = year - (1 if month <= 2 else 0)
    era = y // 400
    yoe = y - era * 400
    mp = month - 3 if month > 2 else month + 9
    doy = (153 * mp + 2) // 5
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return (era * 146_097 + doe - 719_468) * US_PER_DAY


def monthly_cost(tier: Tier, requests: int) -> float:
    """Dollars for ``requests`` in one month on ``tier`` (requests above the cap are refused, so
    they are never billed)."""
    if requests < 0:
        raise ValueError("requests must be >= 0")
    billed = min(requests, tier.cap)
    over = max(0, billed - tier.included)
    blocks = -(-over // OVERAGE_BLOCK)
    return tier.base_usd + blocks * tier.overage_usd_per_100k


def cheapest_tier(requests: int) -> Tier:
    """The tier with the lowest bill whose cap admits ``requests`` (Pro if none does)."""
    fitting = [t for t in TIERS.values() if t.cap >= requests]
    if not fitting:
        return TIERS["pro"]
    return min(fitting, key=lambda t: (monthly_cost(t, requests), t.included))


class BillingAccount:
    """Usage of one customer on one tier; ``charge`` counts an accepted, non-duplicate job."""

    __slots__ = ("customer_id", "tier", "usage")

    def __init__(self, customer_id: str, tier: Tier | str = "free") -> None:
        self.customer_id = customer_id
        self.tier = TIERS[tier] if isinstance(tier, str) else tier
        self.usage: dict[tuple[int, int], int] = {}

    def used(self, now_us: int) -> int:
        return self.usage.get(month_of(now_us), 0)

    def check(self, now_us: int) -> None:
        """Raise :class:`CapReached` if one more request would pass the cap this month."""
        if self.used(now_us) >= self.tier.cap:
            raise CapReached(self.customer_id, self.tier.name, self.tier.cap)

    def charge(self, now_us: int) -> None:
        m = month_of(now_us)
        n = self.usage.get(m, 0)
        if n >= self.tier.cap:
            raise CapReached(self.customer_id, self.tier.name, self.tier.cap)
        self.usage[m] = n + 1

    def bill(self, year: int, month: int) -> float:
        return monthly_cost(self.tier, self.usage.get((year, month), 0))


class DiyCostModel(msgspec.Struct, frozen=True, kw_only=True):
    """What running your own retry infrastructure costs (unit prices from the scenario).

    Defaults: AWS list prices of the kind the SDK README's DIY comparison uses — egress
    $0.09/GB, Lambda $0.20 per million invocations and $0.0000166667 per GB-second, SQS $0.40
    per million requests.
    """

    egress_usd_per_gb: float = 0.09
    invocation_usd_per_million: float = 0.20
    gb_second_usd: float = 0.0000166667
    queue_usd_per_million: float = 0.40
    memory_gb: float = 0.5

    def cost(self, *, attempts: int, egress_bytes: int, busy_seconds: float,
             queue_requests: int = 0) -> float:
        return sum(self.breakdown(attempts=attempts, egress_bytes=egress_bytes,
                                  busy_seconds=busy_seconds,
                                  queue_requests=queue_requests).values())

    def breakdown(self, *, attempts: int, egress_bytes: int, busy_seconds: float,
                  queue_requests: int = 0) -> dict[str, float]:
        """``compute`` (invocations + GB-seconds), ``egress`` and ``queue`` dollars."""
        return {
            "compute": (attempts / 1e6 * self.invocation_usd_per_million
                        + busy_seconds * self.memory_gb * self.gb_second_usd),
            "egress": egress_bytes / 1e9 * self.egress_usd_per_gb,
            "queue": queue_requests / 1e6 * self.queue_usd_per_million,
        }
