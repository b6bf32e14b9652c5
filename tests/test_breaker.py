"""Failure feedback in the limiter: the circuit breaker, slow start and the CUBIC adaptive pace."""

import itertools
import math

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from engine.breaker import BreakerConfig, BreakerState, CircuitBreaker, Verdict, verdict
from engine.limiter import BLOCKED, GRANTED, DomainLimiter, LimiterConfig
from engine.pacing import CubicPace, PacingConfig, slow_start_factor
from engine.spec import RetryPolicy

S = 1_000_000
OK, FAIL, NEUTRAL = Verdict.SUCCESS, Verdict.FAILURE, Verdict.NEUTRAL
SMALL = BreakerConfig(min_calls=4, window_calls=10, open_us=2 * S, max_open_us=5 * S,
                      probes=2, probe_interval_us=S // 2)


def test_verdicts_follow_the_jobs_codes():
    p = RetryPolicy(retry_codes=(429, 409), reroute_codes=(502,))
    assert verdict(200, None, p) == OK
    assert verdict(None, "timeout", p) == FAIL and verdict(None, "connect", None) == FAIL
    assert verdict(409, None, p) == FAIL and verdict(502, None, p) == FAIL
    assert verdict(503, None, p) == NEUTRAL  # not in this job's lists
    assert verdict(404, None, p) == NEUTRAL and verdict(400, None, None) == NEUTRAL
    assert verdict(503, None, None) == FAIL  # a gone job: the default lists


def test_opens_at_the_failure_share_once_min_calls_are_in():
    b = CircuitBreaker(SMALL)
    for t, v in enumerate([FAIL, FAIL, FAIL]):
        b.record(t, v)
    assert b.state is BreakerState.CLOSED  # 3 calls < min_calls 4
    b.record(3, OK)
    assert b.state is BreakerState.OPEN and b.opens == 1  # 3 of 4 >= 50 %
    b = CircuitBreaker(SMALL)
    for t, v in enumerate([OK, OK, FAIL, OK, FAIL]):
        b.record(t, v)
    assert b.state is BreakerState.CLOSED  # 2 of 5 = 40 %
    b.record(5, FAIL)
    assert b.state is BreakerState.OPEN  # 3 of 6: the share reaches 50 %


def test_4xx_never_opens_it():
    b = CircuitBreaker(SMALL)
    for t in range(1000):
        b.record(t, NEUTRAL)
    assert b.state is BreakerState.CLOSED and b.opens == 0


def test_old_outcomes_leave_the_window_by_count_and_by_time():
    b = CircuitBreaker(BreakerConfig(min_calls=4, window_calls=4, window_us=10 * S))
    for t in range(3):
        b.record(t, FAIL)
    b.record(11 * S, OK)  # the three failures are older than 10 s: gone
    b.record(11 * S + 1, FAIL)
    assert b.state is BreakerState.CLOSED
    for t in range(4):
        b.record(12 * S + t, OK)
    b.record(13 * S, FAIL)  # 1 of the last 4
    assert b.state is BreakerState.CLOSED


def _open(b, now=0):
    for t in range(SMALL.min_calls):
        b.record(now + t, FAIL)
    assert b.state is BreakerState.OPEN


def test_half_open_probes_are_paced_bounded_and_close_after_enough_successes():
    b = CircuitBreaker(SMALL)
    _open(b)
    assert b.admit(S, 0) == 2 * S + 3  # open for 2 s from the opening failure (t=3)
    t = 2 * S + 3
    assert b.admit(t, 0) == 0 and b.state is BreakerState.HALF_OPEN
    b.on_grant(t)
    assert b.admit(t, 1) == t + S // 2  # the next probe no earlier than the interval
    b.on_grant(t + S // 2)
    assert b.admit(t + S, 2) == -1  # the round's 2 probes are out: wait for an answer
    b.record(t + S, OK)
    assert b.state is BreakerState.HALF_OPEN
    assert not b.record(t + S, NEUTRAL)
    assert b.record(t + S + 1, OK) and b.state is BreakerState.CLOSED
    assert b.probe_attempts == 2 and b.open_us(t + S + 1) == t + S + 1 - 3


def test_a_probe_failure_reopens_for_a_doubled_capped_interval():
    b = CircuitBreaker(SMALL)
    _open(b)
    failed_at, gaps = 3, []  # the opening failure
    for _ in range(4):
        gaps.append(b.open_until - failed_at)
        probe = b.open_until
        assert b.admit(probe, 0) == 0
        b.on_grant(probe)
        failed_at = probe + 10
        b.record(failed_at, FAIL)
    gaps.append(b.open_until - failed_at)
    assert gaps == [2 * S, 4 * S, 5 * S, 5 * S, 5 * S]  # 2 s, doubled, capped at 5 s
    assert b.opens == 1 and b.reopens == 4


def test_a_round_of_neutral_answers_is_renewed_so_the_breaker_never_stalls():
    b = CircuitBreaker(SMALL)
    _open(b)
    t = b.open_until
    for k in range(2):
        assert b.admit(t + k * S, 0) == 0
        b.on_grant(t + k * S)
    assert b.admit(t + 2 * S, 1) == -1
    b.record(t + 2 * S, NEUTRAL)
    b.record(t + 2 * S, NEUTRAL)
    assert b.admit(t + 3 * S, 0) == 0  # nothing in flight: a new round


def test_limiter_grants_nothing_while_open_and_ramps_up_after_closing():
    lim = DomainLimiter("d", LimiterConfig(rate=100.0, max_concurrent=100), breaker=SMALL,
                        pacing=PacingConfig(slow_start_us=10 * S, slow_start_floor=0.1,
                                            adaptive=False))
    for t in range(4):
        assert lim.acquire(t * 10_000) == GRANTED
        lim.release(t * 10_000 + 1)
        lim.record(t * 10_000 + 1, FAIL, 503)
    until = lim.breaker.open_until
    assert lim.acquire(until - 1) == until
    assert lim.current_pace(until - 1) == 0.0
    t = until
    for _ in range(SMALL.probes):
        assert lim.acquire(t) == GRANTED
        lim.release(t + 1)
        lim.record(t + 1, OK, 200)
        t += SMALL.probe_interval_us
    assert lim.breaker.state is BreakerState.CLOSED
    closed = t - SMALL.probe_interval_us + 1
    assert lim.current_pace(closed) == pytest.approx(10.0)  # 10 % of 100/s
    assert lim.current_pace(closed + 5 * S) == pytest.approx(55.0)  # linear ramp
    assert lim.current_pace(closed + 10 * S) == 100.0


def test_breaker_disabled_is_the_plain_limiter():
    lim = DomainLimiter("d", LimiterConfig(rate=100.0, max_concurrent=100),
                        breaker=BreakerConfig(enabled=False), pacing=PacingConfig(adaptive=False))
    for t in range(1000):
        assert lim.acquire(t * 10_000) == GRANTED
        lim.release(t * 10_000)
        lim.record(t * 10_000, FAIL, 503)
    assert lim.breaker is None and lim.pace == 100.0


def test_slow_start_factor_is_linear_from_the_floor():
    cfg = PacingConfig(slow_start_us=20 * S, slow_start_floor=0.1)
    assert [slow_start_factor(t * S, 0, cfg) for t in (0, 10, 20, 30)] == \
        [pytest.approx(0.1), pytest.approx(0.55), 1.0, 1.0]
    assert slow_start_factor(0, 0, PacingConfig(slow_start_us=0)) == 1.0


def test_cubic_matches_the_closed_form():
    """After a throttle at W: rate = β·W; it is back at W exactly K = ∛(W(1−β)/C) s later."""
    c = CubicPace(ceiling=100.0, cfg=PacingConfig())
    c.rate = 40.0
    c.on_throttle(0)
    assert c.rate == pytest.approx(28.0)  # 40 × 0.7
    k = (40.0 * 0.3 / 0.4) ** (1 / 3)
    assert c.k == pytest.approx(k)
    c.on_success(round(k * S))
    assert c.rate == pytest.approx(40.0, abs=1e-3)
    c.on_success(round((k + 2) * S))
    assert c.rate == pytest.approx(0.4 * 8 + 40.0, abs=1e-3)  # C·(t−K)³ + W_max
    c.on_success(3600 * S)
    assert c.rate == 100.0  # the ceiling


def test_adaptive_pace_stands_down_once_the_domain_advertises():
    lim = DomainLimiter("d", LimiterConfig(rate=10.0, max_concurrent=100),
                        breaker=BreakerConfig(enabled=False))
    lim.record(0, FAIL, 429)
    assert lim.pace == pytest.approx(7.0)
    lim.observe(1, 200, {"X-EZTHROTTLE-RPS": "50"})
    assert lim.pace == 50.0
    lim.record(2, FAIL, 429)
    assert lim.pace == 50.0  # the advertised rate governs


class FeedbackMachine(RuleBasedStateMachine):
    """A limiter with breaker and adaptive pace under random answers and time; the
    invariants of docs/SEMANTICS.md §8a–b after every step."""

    CFG = BreakerConfig(min_calls=3, window_calls=6, open_us=S, max_open_us=4 * S, probes=2,
                        probe_interval_us=200_000)
    PACING = PacingConfig(slow_start_us=3 * S, min_rate=0.5)

    def __init__(self):
        super().__init__()
        self.lim = DomainLimiter("https://x.example", LimiterConfig(rate=5.0, max_concurrent=3),
                                 breaker=self.CFG, pacing=self.PACING)
        self.now = 0
        self.round_grants = 0
        self.successes_in_half_open = 0
        self.last_state = BreakerState.CLOSED
        self.starts: list[int] = []

    def _track(self):
        b = self.lim.breaker
        if b.state is not self.last_state:
            event(f"breaker {self.last_state.name} -> {b.state.name}")
            if b.state is BreakerState.CLOSED:
                assert self.successes_in_half_open >= self.CFG.probes
            if b.state is not BreakerState.HALF_OPEN:
                self.successes_in_half_open = 0
            self.round_grants = 0
            self.last_state = b.state

    @rule(dt=st.integers(0, 1_500_000))
    def acquire(self, dt):
        self.now += dt
        before = self.lim.breaker.state
        inflight = self.lim.in_flight
        if before is BreakerState.HALF_OPEN and self.round_grants >= self.CFG.probes \
                and inflight == 0:
            self.round_grants = 0  # the breaker renews an exhausted round
        r = self.lim.acquire(self.now)
        self._track()
        state = self.lim.breaker.state
        if r == GRANTED:
            assert state is not BreakerState.OPEN  # no grant while open
            self.starts.append(self.now)
            if state is BreakerState.HALF_OPEN:
                self.round_grants += 1
                assert self.round_grants <= self.CFG.probes  # probes within their budget
        else:
            assert r == BLOCKED or r > self.now

    @precondition(lambda self: self.lim.in_flight > 0)
    @rule(v=st.sampled_from([OK, OK, OK, FAIL, NEUTRAL]),
          status=st.sampled_from([200, 503, 429, 404, None]), dt=st.integers(0, 400_000))
    def answer(self, v, status, dt):
        self.now += dt
        self.lim.release(self.now)
        opens = self.lim.breaker.opens + self.lim.breaker.reopens
        if self.lim.breaker.state is BreakerState.HALF_OPEN and v == OK:
            self.successes_in_half_open += 1
        self.lim.record(self.now, v, status)
        if v == NEUTRAL:  # a 4xx never opens a breaker
            assert self.lim.breaker.opens + self.lim.breaker.reopens == opens
        self._track()

    @invariant()
    def pace_between_floor_and_cap(self):
        assert self.PACING.min_rate <= self.lim.pace <= self.lim.rate

    @invariant()
    def pacing_bound_at_the_configured_rate(self):
        s = self.starts
        for a, b in itertools.pairwise(s):
            assert b - a >= math.ceil(S / self.lim.config.rate)


TestFeedbackMachine = FeedbackMachine.TestCase


def test_a_start_early_in_the_ramp_does_not_hold_back_the_later_ones():
    """Ramp from 1e-6 of 10/s: the first start's spacing would be days, yet once the ramp has
    reached full pace the next start waits only the full-pace interval."""
    lim = DomainLimiter("d", LimiterConfig(rate=10.0, max_concurrent=100),
                        breaker=BreakerConfig(min_calls=1, window_calls=1, probes=1,
                                              open_us=S, max_open_us=S),
                        pacing=PacingConfig(slow_start_us=10 * S, slow_start_floor=1e-6,
                                            adaptive=False))
    assert lim.acquire(0) == GRANTED
    lim.release(0)
    lim.record(0, FAIL)  # opens
    assert lim.acquire(S) == GRANTED  # the probe
    lim.release(S)
    lim.record(S, OK)  # closes: the ramp runs from 1 s to 11 s
    at = lim.acquire(S + 1)
    # the first t with (t − 1 s) · 10/s · f(t) >= 1, f linear from ~0 to 1 over 10 s: ≈ 2 s
    assert 2 * S - 1000 <= at <= 2 * S + 1000
    assert lim.acquire(at - 1) == at and lim.acquire(at) == GRANTED
    t = 11 * S  # the ramp is over: the full-pace spacing applies
    assert lim.acquire(t) == GRANTED and lim.acquire(t + 100_000) == GRANTED


@given(floor=st.floats(1e-6, 1.0), span_s=st.integers(1, 120), rate=st.floats(0.01, 5000.0),
       last=st.integers(-5 * S, 60 * S), now_off=st.integers(0, 30 * S))
def test_ramp_ready_time_is_the_earliest_ready_time(floor, span_s, rate, last, now_off):
    """The closed form agrees with the definition: ready at the answer, not one µs before."""
    lim = DomainLimiter("d", LimiterConfig(rate=rate, max_concurrent=10),
                        pacing=PacingConfig(slow_start_us=span_s * S, slow_start_floor=floor,
                                            adaptive=False))
    lim._ramp_start, lim._ramp_end = 0, span_s * S
    lim._last_start = last
    now = max(0, last) + now_off

    def ready(t):
        return t - last >= math.ceil(S / (rate * slow_start_factor(t, 0, lim.pacing)))

    t = lim._ramp_ready_at(now)
    assert t >= now
    end = max(span_s * S, last + lim._interval)
    assert ready(t) or t == end
    assert t == now or not ready(t - 1)
