"""The arithmetic docs/CLAIMS.md states about the EZThrottle README, recomputed from apidam's
billing rules (the README's tier table), so the document cannot drift from the code."""

import pytest

from engine.billing import TIERS, DiyCostModel, cheapest_tier, monthly_cost


def test_tier_examples():
    assert monthly_cost(TIERS["indie"], 3_000_000) == 550.0  # README: "$100"
    assert monthly_cost(TIERS["indie"], 8_000_000) == 1_550.0  # holds: billed up to the cap
    assert monthly_cost(TIERS["growth"], 8_000_000) == 1_400.0
    assert monthly_cost(TIERS["pro"], 8_000_000) == 500.0
    assert cheapest_tier(2_000_000).name == "indie"  # README's comparison uses Pro
    assert monthly_cost(cheapest_tier(2_000_000), 2_000_000) * 12 == 600.0
    assert pytest.approx(33_333, abs=1) == 1_000_000 / 30


def test_egress_and_price_arithmetic():
    egress = DiyCostModel()
    assert egress.breakdown(attempts=0, egress_bytes=15 * 10**9,
                            busy_seconds=0)["egress"] == pytest.approx(1.35)  # README: $1,350
    assert egress.breakdown(attempts=0, egress_bytes=20 * 10**9,
                            busy_seconds=0)["egress"] == pytest.approx(1.80)  # README: $1,800
    per_1k = {t: TIERS[t].base_usd / TIERS[t].included * 1000 for t in ("growth", "pro")}
    assert per_1k == {"growth": pytest.approx(0.04), "pro": pytest.approx(0.05)}
    assert 300 * per_1k["pro"] == pytest.approx(15.0)  # README: $150 (at $0.50/1k)
    assert pytest.approx(348) == 52_200 / 150
