"""Billing: tiers, calendar months of virtual time, overage and the hard cap."""

import pytest

from engine import (
    TIERS,
    BillingAccount,
    CapReached,
    DiyCostModel,
    cheapest_tier,
    month_of,
    monthly_cost,
)

DAY = 86_400 * 1_000_000


def test_month_of_virtual_time():
    assert month_of(0) == (1970, 1)
    assert month_of(31 * DAY - 1) == (1970, 1)
    assert month_of(31 * DAY) == (1970, 2)
    # 2024-02-29 is a leap day: unix 1709164800
    assert month_of(1709164800 * 1_000_000) == (2024, 2)
    assert month_of(1709251200 * 1_000_000) == (2024, 3)
    assert month_of(1767225600 * 1_000_000) == (2026, 1)  # 2026-01-01


def test_tier_table():
    assert [(t.name, t.included, t.base_usd, t.overage_usd_per_100k, t.cap)
            for t in TIERS.values()] == [
        ("free", 1_000_000, 0, 0, 1_000_000),
        ("indie", 2_000_000, 50, 50, 5_000_000),
        ("growth", 5_000_000, 200, 40, 10_000_000),
        ("pro", 10_000_000, 500, 25, 25_000_000),
    ]


@pytest.mark.parametrize("tier,requests,usd", [
    ("free", 0, 0), ("free", 1_000_000, 0),
    ("indie", 2_000_000, 50), ("indie", 2_000_001, 100), ("indie", 2_100_000, 100),
    ("indie", 3_000_000, 550), ("indie", 5_000_000, 1550), ("indie", 9_000_000, 1550),
    ("growth", 5_000_000, 200), ("growth", 8_000_000, 1400), ("growth", 10_000_000, 2200),
    ("pro", 8_000_000, 500), ("pro", 10_000_000, 500), ("pro", 12_000_000, 1000),
    ("pro", 25_000_000, 4250),
])
def test_monthly_cost_rule(tier, requests, usd):
    assert monthly_cost(TIERS[tier], requests) == usd


def test_eight_million_requests_cheapest_is_pro():
    # The README's 8M/month example: Growth would cost $200 + 30 x $40 = $1,400; Pro covers 8M
    # in its included 10M for $500. The rule, not the README's table, is what is tested.
    assert cheapest_tier(8_000_000).name == "pro"
    assert cheapest_tier(500_000).name == "free"
    assert cheapest_tier(2_050_000).name == "indie"


def test_cap_refuses_with_429_cap_reached_and_resets_next_month():
    acct = BillingAccount("c", "free")
    acct.usage[(1970, 1)] = 999_999
    acct.charge(0)
    with pytest.raises(CapReached) as info:
        acct.charge(1)
    assert info.value.status_code == 429 and info.value.code == "cap_reached"
    with pytest.raises(CapReached):
        acct.check(2)
    acct.charge(31 * DAY)  # February: a new month
    assert acct.used(31 * DAY) == 1 and acct.bill(1970, 1) == 0


def test_usage_is_billed_per_month():
    acct = BillingAccount("c", "indie")
    acct.usage[(2026, 3)] = 2_500_000
    assert acct.bill(2026, 3) == 300 and acct.bill(2026, 4) == 50


def test_diy_cost_model():
    m = DiyCostModel()
    assert m.cost(attempts=0, egress_bytes=10**9, busy_seconds=0) == pytest.approx(0.09)
    assert m.cost(attempts=1_000_000, egress_bytes=0, busy_seconds=0) == pytest.approx(0.20)
    assert m.cost(attempts=0, egress_bytes=0, busy_seconds=1000) == pytest.approx(0.00833335)
