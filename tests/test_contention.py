"""Optimistic concurrency at a queue-model upstream: Brooker's 100-client experiment."""

from __future__ import annotations

import pytest
from shortened import path

from sim.runtime.local import run_local
from sim.scenario import ScenarioError, load_scenario


@pytest.fixture(scope="module")
def occ():
    return run_local(load_scenario(path("occ-contention"))).summary["workloads"]


def test_without_backoff_one_writer_commits_per_round(occ):
    """N clients retrying at once: each round of concurrent writes commits exactly one, so
    the calls are N + (N - 1) + ... + 1 = N (N + 1) / 2 = 5,050 for N = 100."""
    assert occ["none"]["upstream_attempts"] == 100 * 101 // 2
    assert occ["none"]["succeeded"] == 100


def test_jitter_is_what_breaks_the_contention(occ):
    """Brooker's finding: exponential backoff without jitter stays synchronised (as many
    calls as no backoff, and slower); any jittered backoff needs a fraction of the calls."""
    exp = occ["exponential"]
    assert exp["upstream_attempts"] > 0.8 * occ["none"]["upstream_attempts"]
    for kind in ("full-jitter", "equal-jitter", "decorrelated-jitter"):
        w = occ[kind]
        assert w["succeeded"] == 100
        assert w["upstream_attempts"] < 0.2 * exp["upstream_attempts"]
    assert exp["latency_ms"]["p50"] > 10 * occ["full-jitter"]["latency_ms"]["p50"]


def test_network_jitter_desynchronises_plain_exponential_backoff(occ):
    sc = load_scenario(path("occ-contention"), ['network.jitter.kind="exponential"',
                                                'network.jitter.scale="1ms"'])
    jittered = run_local(sc).summary["workloads"]["exponential"]
    assert jittered["succeeded"] == 100
    assert jittered["upstream_attempts"] < 0.6 * occ["exponential"]["upstream_attempts"]


def test_contention_needs_the_queue_model():
    with pytest.raises(ScenarioError) as e:
        load_scenario(path("openai-429-storm"), ["upstreams.0.contention_keys=1"])
    assert any("$.upstreams[0].contention_keys" in line for line in e.value.lines())
