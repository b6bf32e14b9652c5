"""The peers' retry policies (sim/policies.py): their published arithmetic, then in a client."""

import pytest
from test_clients import scenario

from sim.policies import ClientBreaker, ClientRateLimiter, ConcurrentRetryBudget, RetryQuota
from sim.runtime.local import run_local

S = 1_000_000


def test_aws_retry_quota_costs_and_refunds():
    q = RetryQuota(max_tokens=500, cost=5, timeout_cost=10, refund=1)
    assert q.take(timed_out=False) == 5 and q.tokens == 495
    assert q.take(timed_out=True) == 10 and q.tokens == 485
    q.on_success(10)  # the retry that succeeded gives back what it paid
    q.on_success(0)  # a first-try success earns 1
    assert q.tokens == 496
    q.on_success(5)
    q.on_success(0)
    assert q.tokens == 500  # capped at the maximum
    for _ in range(100):
        assert q.take(False) == 5
    assert q.tokens == 0 and q.take(False) is None  # empty: no retry
    free = RetryQuota(max_tokens=1, cost=0, timeout_cost=0, refund=0)
    free.tokens = 0
    assert free.take(False) == 0  # a free retry is still a retry


def test_envoy_budget_is_a_share_of_active_requests_with_a_floor():
    b = ConcurrentRetryBudget(percent=20.0, min_concurrency=3)
    b.active = 10
    assert [b.allow_retry() for _ in range(4)] == [True, True, True, False]  # max(3, 2) = 3
    b.retries, b.active = 0, 100
    assert sum(b.allow_retry() for _ in range(30)) == 20  # 20 % of 100


def test_resilience4j_breaker_defaults_open_then_judge_ten_half_open_calls():
    b = ClientBreaker(failure_rate=0.5, window=100, min_calls=100, open_us=60 * S,
                      half_open_calls=10)
    for t in range(99):
        b.record(t, True)
    assert b.allow(100)  # 99 calls < minimumNumberOfCalls
    b.record(100, True)
    assert not b.allow(101) and not b.allow(60 * S + 99)  # open for 60 s
    assert all(b.allow(60 * S + 100 + i) for i in range(10))  # 10 half-open calls
    assert not b.allow(60 * S + 200)
    for i in range(10):  # 4 of 10 fail: 40 % < 50 % -> closed
        b.record(60 * S + 300 + i, i < 4)
    assert b.state == ClientBreaker.CLOSED and b.allow(61 * S)


def test_aws_adaptive_limiter_cuts_on_throttles_and_waits_for_tokens():
    rl = ClientRateLimiter(beta=0.7, scale=0.4, min_rate=0.5, smoothing=0.8)
    assert rl.try_acquire(0) == 0  # off until the first throttle
    for k in range(40):  # 20 responses/s for 2 s
        rl.on_response(k * 50_000, throttled=False)
    assert not rl.enabled and 10 < rl.measured <= 20
    rl.on_response(2 * S, throttled=True)  # the first throttle: β × the measured rate
    assert rl.enabled and rl.rate == pytest.approx(0.7 * rl.measured)
    assert rl.w_max == pytest.approx(rl.measured)
    rl.tokens = 0.0
    wait = rl.try_acquire(2 * S)
    assert wait == pytest.approx(S / rl.rate, abs=1)  # one token at the new rate


def test_honouring_retry_after_waits_exactly_that_long():
    """A 4 s outage answering 503 + Retry-After: 3 s. Immediate retries burn all 5 retries in
    the outage; a client that honours Retry-After waits 3 s, so at most two of its attempts
    fall in the outage and every job succeeds."""
    up = {"outages": [{"start": "2s", "end": "6s", "statuses": {"503": 1.0},
                       "retry_after": "3s"}]}
    base = {"arrivals": {"process": "constant", "rate": 10.0},
            "diy": {"retries": 5, "backoff": {"kind": "none"}, "timeout": "5s"}}
    plain = run_local(scenario(base, up)).summary["workloads"]["w"]
    honour = {**base, "diy": {**base["diy"], "honor_retry_after": True}}
    polite = run_local(scenario(honour, up)).summary["workloads"]["w"]
    assert plain["failed"] >= 35  # ~40 jobs arrived in the outage
    assert polite["failed"] == 0 and polite["succeeded"] == 200
    in_outage = 40
    assert polite["upstream_attempts"] <= 200 + 2 * in_outage


@pytest.mark.parametrize("policy,mode,share", [
    ({"retry_quota": {}}, "error", 0.5), ({"rate_limiter": {}}, "error", 0.5),
    ({"breaker": {}}, "error", 0.5),
    # Envoy's budget bounds *concurrent* retries: fast 503s hardly pile up, hanging ones do
    # (20 % of ~200 hanging first tries: 58 % of the attempts measured)
    ({"concurrent_retry_budget": {}}, "blackhole", 0.7),
])
def test_each_peer_policy_runs_and_limits_the_storm(policy, mode, share):
    up = {"outages": [{"start": "2s", "end": "15s", "mode": mode, "statuses": {"503": 1.0}}]}
    base = {"arrivals": {"process": "constant", "rate": 40.0},
            "diy": {"retries": 5, "backoff": {"kind": "none"}, "timeout": "5s"}}
    plain = run_local(scenario(base, up)).summary["workloads"]["w"]
    with_policy = {**base, "diy": {**base["diy"], **policy}}
    w = run_local(scenario(with_policy, up)).summary["workloads"]["w"]
    assert w["jobs"] == w["succeeded"] + w["failed"] + w["pending"]
    assert w["upstream_attempts"] < share * plain["upstream_attempts"]
