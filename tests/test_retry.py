"""Outcome classification, budget spending and backoff formulas."""

import numpy as np
import pytest

from engine.retry import Backoff, BlockRandom, Outcome, classify, decide
from engine.spec import RetryPolicy

P = RetryPolicy()
S = 1_000_000


@pytest.mark.parametrize("status,error,outcome", [
    (200, None, Outcome.SUCCESS), (204, None, Outcome.SUCCESS), (299, None, Outcome.SUCCESS),
    (429, None, Outcome.RETRY), (503, None, Outcome.RETRY),
    (500, None, Outcome.REROUTE), (502, None, Outcome.REROUTE), (504, None, Outcome.REROUTE),
    (None, "timeout", Outcome.REROUTE), (None, "connect", Outcome.REROUTE),
    (400, None, Outcome.FAIL), (404, None, Outcome.FAIL), (501, None, Outcome.FAIL),
    (301, None, Outcome.FAIL), (418, None, Outcome.FAIL),
])
def test_classify_with_default_policy(status, error, outcome):
    assert classify(status, error, P) is outcome


def test_classify_uses_the_jobs_lists():
    p = RetryPolicy(retry_codes=(500,), reroute_codes=(429,))
    assert classify(500, None, p) is Outcome.RETRY and classify(429, None, p) is Outcome.REROUTE
    assert classify(503, None, p) is Outcome.FAIL


def test_decide_spends_and_escalates():
    p = RetryPolicy(max_retries=1, max_reroutes=1)
    assert decide(Outcome.RETRY, 0, 0, p, True) is Outcome.RETRY
    assert decide(Outcome.RETRY, 1, 0, p, True) is Outcome.REROUTE  # retries spent
    assert decide(Outcome.RETRY, 1, 1, p, True) is Outcome.FAIL
    assert decide(Outcome.REROUTE, 0, 0, p, True) is Outcome.REROUTE
    assert decide(Outcome.REROUTE, 0, 0, p, False) is Outcome.RETRY  # nowhere to go
    assert decide(Outcome.REROUTE, 0, 1, p, True) is Outcome.RETRY
    assert decide(Outcome.REROUTE, 1, 1, p, True) is Outcome.FAIL
    assert decide(Outcome.FAIL, 0, 0, p, True) is Outcome.FAIL


class Fixed:
    def __init__(self, u):
        self.u = u

    def random(self):
        return self.u


@pytest.mark.parametrize("kind,n,prev,u,expected", [
    ("none", 3, 0, 0.5, 0),
    ("constant", 5, 0, 0.5, S),
    ("exponential", 0, 0, 0.5, S), ("exponential", 3, 0, 0.5, 8 * S),
    ("exponential", 10, 0, 0.5, 60 * S),
    ("full_jitter", 2, 0, 0.5, 2 * S), ("full_jitter", 2, 0, 0.0, 0),
    ("full_jitter", 20, 0, 0.5, 30 * S),
    ("equal_jitter", 2, 0, 0.0, 2 * S), ("equal_jitter", 2, 0, 0.5, 3 * S),
    ("decorrelated_jitter", 0, 0, 0.0, S), ("decorrelated_jitter", 0, 0, 0.5, 2 * S),
    ("decorrelated_jitter", 4, 4 * S, 0.5, int(S + 0.5 * 11 * S)),
    ("decorrelated_jitter", 9, 50 * S, 0.9, 60 * S),
])
def test_backoff_formulas(kind, n, prev, u, expected):
    assert Backoff(kind=kind).delay(n, prev, Fixed(u)) == expected


def test_backoff_rejects_unknown_kind():
    with pytest.raises(ValueError):
        Backoff(kind="fibonacci")


def test_full_jitter_stays_within_bounds():
    rng = np.random.default_rng(3)
    b = Backoff()
    for n in range(12):
        for _ in range(50):
            assert 0 <= b.delay(n, 0, rng) <= min(60 * S, S << n)


def test_block_random_matches_generator_stream():
    a = BlockRandom(np.random.default_rng(5), block=7)
    expected = np.random.default_rng(5).random(7).tolist() + \
        np.random.default_rng(5).random(14).tolist()[7:]
    got = [a.random() for _ in range(14)]
    assert got[:7] == expected[:7]
    assert all(0 <= x < 1 for x in got)


def test_a_code_in_both_lists_is_retried_first_then_rerouted():
    p = RetryPolicy(max_retries=2, max_reroutes=1, retry_codes=(503, 500),
                    reroute_codes=(500, 502))
    assert classify(500, None, p) is Outcome.RETRY
    assert decide(Outcome.RETRY, 1, 0, p, True) is Outcome.RETRY
    assert decide(Outcome.RETRY, 2, 0, p, True) is Outcome.REROUTE  # retries spent: escalate
    assert decide(Outcome.RETRY, 2, 1, p, True) is Outcome.FAIL
