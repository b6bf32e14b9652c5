"""Link jitter: draws with the stated distribution, never below the link's floor, the same
trace on every runtime, and nothing drawn when it is off (the golden hashes pin that)."""

from __future__ import annotations

import numpy as np
import pytest
from shortened import SHORT, path

from sim.jitter import LinkJitter, link_jitter
from sim.runtime.coordinator import run_groups
from sim.runtime.local import run_local
from sim.scenario import ScenarioError, load_scenario

JITTER = ['network.jitter.kind="exponential"', 'network.jitter.scale="20ms"']


def test_draws_follow_the_distribution():
    rng = np.random.default_rng(1)
    ex = LinkJitter("exponential", 20_000, rng)
    draws = np.array([ex() for _ in range(50_000)])
    assert draws.min() >= 0 and abs(draws.mean() - 20_000) < 400  # 4 standard errors
    un = LinkJitter("uniform", 8_000, rng)
    draws = np.array([un() for _ in range(50_000)])
    assert draws.min() >= 0 and draws.max() < 8_000 and abs(draws.mean() - 4_000) < 60
    assert link_jitter(("none", 5), rng) is None and link_jitter(("exponential", 0), rng) is None


def test_jitter_comes_from_its_own_stream():
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    j = link_jitter(("exponential", 1000), a)
    j()
    assert a.random() == b.random()  # the actor's own stream did not move


def test_a_jittered_run_is_the_same_on_the_grouped_runtime_and_answers_no_faster():
    sc = load_scenario(path("stripe-5min-outage"), [*SHORT["stripe-5min-outage"], *JITTER])
    local = run_local(sc, trace=True)
    assert run_groups(sc, placement="default").trace_hash == local.trace_hash
    plain = run_local(load_scenario(path("stripe-5min-outage"), SHORT["stripe-5min-outage"]))
    assert local.trace_hash != plain.trace_hash
    fast = {n: w["latency_ms"]["p50"] for n, w in plain.summary["workloads"].items()}
    slow = {n: w["latency_ms"]["p50"] for n, w in local.summary["workloads"].items()}
    assert slow["diy-immediate"] > fast["diy-immediate"]  # ~2 x 20 ms more per round trip


@pytest.mark.parametrize("bad", ['network.jitter.scale="0s"', 'network.jitter.scale="2m"'])
def test_jitter_scale_is_checked_when_on(bad):
    with pytest.raises(ScenarioError) as e:
        load_scenario(path("openai-429-storm"), ['network.jitter.kind="uniform"', bad])
    assert any("$.network.jitter.scale" in line for line in e.value.lines())
