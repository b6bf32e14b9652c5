"""DomainLimiter: GCRA pacing, concurrency, header adaptation, Retry-After pauses."""

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.limiter import BLOCKED, GRANTED, DomainLimiter, LimiterConfig, parse_retry_after

S = 1_000_000


def test_default_is_two_per_second_no_burst_two_concurrent():
    lim = DomainLimiter("https://a.com")
    assert lim.acquire(0) == GRANTED
    assert lim.acquire(0) == 500_000  # next conforming start
    assert lim.acquire(499_999) == 500_000
    assert lim.acquire(500_000) == GRANTED
    assert lim.acquire(1_000_000) == BLOCKED  # two in flight
    lim.release(1_000_000)
    assert lim.acquire(1_000_000) == GRANTED


def test_idle_time_does_not_bank_burst():
    lim = DomainLimiter("d", LimiterConfig(rate=2.0, max_concurrent=100))
    assert lim.acquire(0) == GRANTED
    assert lim.acquire(100 * S) == GRANTED
    assert lim.acquire(100 * S) == 100 * S + 500_000


def test_burst_allows_b_starts_at_once():
    lim = DomainLimiter("d", LimiterConfig(rate=10.0, burst=3, max_concurrent=100))
    assert [lim.acquire(0) for _ in range(4)] == [GRANTED, GRANTED, GRANTED, 100_000]


def test_headers_replace_rate_and_concurrency():
    lim = DomainLimiter("d")
    lim.acquire(0)
    lim.observe(0, 200, {"X-EZTHROTTLE-RPS": "100", "X-EZTHROTTLE-MAX-CONCURRENT": "50"})
    assert lim.rate == 100.0 and lim.max_concurrent == 50
    assert lim.acquire(10_000) == GRANTED
    lim.observe(10_000, 200, {"x-ezthrottle-rps": "0.5"})
    assert lim.acquire(10_001) == 10_000 + 2 * S  # spacing re-based on the new, slower rate


@pytest.mark.parametrize("headers", [
    {"X-EZTHROTTLE-RPS": "fast"}, {"X-EZTHROTTLE-RPS": "0"}, {"X-EZTHROTTLE-RPS": "-3"},
    {"X-EZTHROTTLE-RPS": "nan"}, {"X-EZTHROTTLE-RPS": "inf"}, {"X-EZTHROTTLE-RPS": "1e9"},
    {"X-EZTHROTTLE-MAX-CONCURRENT": "0"}, {"X-EZTHROTTLE-MAX-CONCURRENT": "2.5"},
    {"X-EZTHROTTLE-MAX-CONCURRENT": "-1"}, {"X-EZTHROTTLE-MAX-CONCURRENT": "ten"},
])
def test_malformed_headers_are_ignored_and_counted(headers):
    lim = DomainLimiter("d")
    lim.observe(0, 200, headers)
    assert (lim.rate, lim.max_concurrent, lim.malformed_headers) == (2.0, 2, 1)


def test_429_and_503_retry_after_pause_the_domain():
    lim = DomainLimiter("d", LimiterConfig(rate=100.0, max_concurrent=10))
    lim.acquire(0)
    lim.observe(5, 429, {"Retry-After": "3"})
    assert lim.acquire(10) == 3 * S + 5
    assert lim.acquire(3 * S + 5) == GRANTED
    lim.observe(4 * S, 503, {"Retry-After": "9"})  # RFC 9110 §10.2.3: 503 too
    assert lim.paused_until == 13 * S
    lim.observe(4 * S, 500, {"Retry-After": "60"})  # other statuses never pause
    assert lim.paused_until == 13 * S
    lim.observe(0, 429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert lim.malformed_headers == 1


def test_floor_cap_and_decay():
    cfg = LimiterConfig(rate=2.0, min_rate=1.0, max_rate=50.0, min_concurrent=2,
                        max_concurrent_cap=8, decay_after_us=60 * S)
    lim = DomainLimiter("d", cfg)
    lim.observe(0, 200, {"X-EZTHROTTLE-RPS": "1000", "X-EZTHROTTLE-MAX-CONCURRENT": "99"})
    assert lim.rate == 50.0 and lim.max_concurrent == 8
    lim.observe(1, 200, {"X-EZTHROTTLE-RPS": "0.1", "X-EZTHROTTLE-MAX-CONCURRENT": "1"})
    assert lim.rate == 1.0 and lim.max_concurrent == 2
    lim.acquire(60 * S + 1)
    assert (lim.rate, lim.max_concurrent) == (2.0, 2)  # decayed to the configured values


def test_config_is_validated():
    with pytest.raises(ValueError):
        LimiterConfig(rate=0)
    with pytest.raises(ValueError):
        LimiterConfig(max_concurrent=0)


def test_release_without_permit_is_an_error():
    with pytest.raises(RuntimeError):
        DomainLimiter("d").release(0)


@pytest.mark.parametrize("raw,us", [("1", S), ("0", 0), ("2.5", 2_500_000), (" 7 ", 7 * S),
                                    ("-1", None), ("soon", None), (None, None), ("inf", None)])
def test_parse_retry_after(raw, us):
    assert parse_retry_after(raw) == us


ops = st.lists(st.one_of(
    st.tuples(st.just("acquire"), st.integers(0, 400_000)),
    st.tuples(st.just("release"), st.integers(0, 400_000)),
    st.tuples(st.just("rps"), st.sampled_from(["0.5", "1", "2", "5", "20", "bogus", "0", "-1"])),
    st.tuples(st.just("mc"), st.sampled_from(["1", "2", "3", "10", "0", "x"])),
    st.tuples(st.just("429"), st.sampled_from(["0", "1", "2.5", "bad"])),
), max_size=150)


@given(ops)
def test_limiter_never_exceeds_pacing_or_concurrency(sequence):
    lim = DomainLimiter("d")
    now = 0
    starts: list[tuple[int, float]] = []  # (time, rate in force when granted)
    max_rate = lim.rate
    for op, arg in sequence:
        if op == "acquire":
            now += arg
            if lim.acquire(now) == GRANTED:
                starts.append((now, lim.rate))
                assert lim.in_flight <= lim.max_concurrent
        elif op == "release":
            now += arg
            if lim.in_flight:
                lim.release(now)
        elif op == "rps":
            lim.observe(now, 200, {"X-EZTHROTTLE-RPS": arg})
        elif op == "mc":
            lim.observe(now, 200, {"X-EZTHROTTLE-MAX-CONCURRENT": arg})
        else:
            lim.observe(now, 429, {"Retry-After": arg})
        max_rate = max(max_rate, lim.rate)
    times = [t for t, _ in starts]
    # Consecutive starts are at least one emission interval (of the rate then in force) apart.
    for (t0, _), (t1, r1) in itertools.pairwise(starts):
        assert t1 - t0 >= math.ceil(S / r1)
    # Any window of length W holds at most floor(W * rate) + 1 starts (rate: the fastest seen).
    for i, t0 in enumerate(times):
        for j in range(i, len(times)):
            w = times[j] - t0
            assert j - i + 1 <= math.floor(w * max_rate / S) + 1
