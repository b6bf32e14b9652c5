"""World models: upstream outages, rate limits, capacity, latency, ledger; receivers."""

import numpy as np
import pytest
from simkit import receiver_cfg, run_receiver, run_upstream, upstream_cfg

from sim.scenario import parse_duration

S = 1_000_000
MS = 1000


def statuses(probe):
    return [m.status if m.status is not None else m.error
            for _, m in sorted(probe.answers, key=lambda a: a[1].tag)]


def test_healthy_upstream_answers_200_with_lognormal_latency_and_headers():
    cfg = upstream_cfg(latency={"median": "100ms", "p99": "400ms"}, servers=1000,
                       advertise={"rps": 50.0, "max_concurrent": 7})
    reqs = [(i * 10 * MS, i, 0, 30 * S, False, 0) for i in range(3000)]
    probe, _, m = run_upstream(cfg, reqs)
    assert set(statuses(probe)) == {200}
    lat = np.array([t - (msg.tag * 10 * MS + MS) for t, msg in probe.answers])
    assert 85 * MS < np.median(lat) < 115 * MS
    assert 300 * MS < np.percentile(lat, 99) < 550 * MS
    assert probe.answers[0][1].headers == {"x-ezthrottle-rps": "50.0",
                                      "x-ezthrottle-max-concurrent": "7"}
    assert m.count["upstream_attempts"][0] == 3000


def test_error_outage_with_status_mix_and_regions():
    cfg = upstream_cfg(outages=[{"start": "1s", "end": "2s", "mode": "error",
                                 "statuses": {"503": 3.0, "500": 1.0}, "regions": ["iad"]}])
    reqs = [(1 * S + i * MS, i, 0, 10 * S, False, 0) for i in range(400)]
    reqs += [(1 * S + i * MS, 1000 + i, 1, 10 * S, False, 1) for i in range(100)]  # from lax
    probe, _, _ = run_upstream(cfg, reqs)
    got = statuses(probe)
    iad, lax = got[:400], got[400:]
    assert set(iad) == {503, 500} and 0.65 < iad.count(503) / 400 < 0.85
    assert set(lax) == {200}


def test_blackhole_times_out_at_the_deadline_and_executes_nothing():
    cfg = upstream_cfg(outages=[{"start": "0s", "end": "10s", "mode": "blackhole"}])
    probe, up, _ = run_upstream(cfg, [(0, 1, 0, 2 * S, False, 0)])
    (t, msg), = probe.answers
    assert msg.status is None and msg.error == "timeout" and t == 2 * S + 1000
    assert up.ledger == {}


def test_slow_mode_multiplies_latency_and_times_out_but_still_executes():
    cfg = upstream_cfg(latency={"median": "100ms", "p99": "100ms"},
                       outages=[{"start": "0s", "end": "10s", "mode": "slow", "factor": 50.0}])
    probe, up, _ = run_upstream(cfg, [(0, 7, 0, 1 * S, False, 0)])
    (_, msg), = probe.answers
    assert msg.error == "timeout" and up.ledger == {7: 1}  # the work happened anyway


def test_partial_outage_fraction():
    cfg = upstream_cfg(outages=[{"start": "0s", "end": "100s", "mode": "partial",
                                 "fraction": 0.25, "statuses": {"502": 1.0}}], servers=5000)
    probe, _, _ = run_upstream(cfg, [(i * MS, i, 0, 30 * S, False, 0) for i in range(4000)])
    got = statuses(probe)
    assert set(got) == {200, 502} and 0.21 < got.count(502) / 4000 < 0.29


def test_own_rate_limit_answers_429_with_retry_after():
    cfg = upstream_cfg(rate_limit=10.0, rate_burst=5)
    probe, _, _ = run_upstream(cfg, [(0, i, 0, 10 * S, False, 0) for i in range(20)])
    got = statuses(probe)
    assert got.count(200) == 5 and got.count(429) == 15
    ra = [msg.retry_after_us for _, msg in probe.answers if msg.status == 429]
    assert min(ra) >= S  # Retry-After: at least one second, in µs


def test_capacity_queues_then_sheds_with_503():
    cfg = upstream_cfg(servers=2, service="1s", queue=3,
                       latency={"median": "10ms", "p99": "10ms"})
    probe, _, _ = run_upstream(cfg, [(0, i, 0, 60 * S, False, 0) for i in range(10)])
    got = statuses(probe)
    assert got.count(200) == 5 and got.count(503) == 5  # 2 in service + 3 waiting
    ok_times = sorted(t for t, msg in probe.answers if msg.status == 200)
    assert ok_times[-1] > ok_times[0] + 500 * MS  # queueing delay shows up as latency


def test_ledger_counts_duplicates_unless_idempotency_key_is_honoured():
    plain = upstream_cfg(idempotency=False)
    _, up, m = run_upstream(plain, [(0, 1, 0, 10 * S, True, 0), (S, 1, 0, 10 * S, True, 0)])
    assert up.ledger == {1: 2} and m.count["duplicates"][0] == 1
    honours = upstream_cfg(idempotency=True)
    _, up, m = run_upstream(honours, [(0, 1, 0, 10 * S, True, 0), (S, 1, 0, 10 * S, True, 0)])
    assert up.ledger == {1: 1} and m.count["duplicates"][0] == 0
    # a request without the key is executed even if a keyed one ran
    _, up, m = run_upstream(honours, [(0, 1, 0, 10 * S, True, 0), (S, 1, 0, 10 * S, False, 0)])
    assert m.count["duplicates"][0] == 1


def test_dam_attempts_are_told_apart_from_client_attempts():
    cfg = upstream_cfg()
    _, _, m = run_upstream(cfg, [(0, 1, 0, S, False, 0)], dam_senders={0})
    assert m.count["dam_attempts"][0] == 1


def test_receiver_latency_outages_and_timeouts():
    cfg = receiver_cfg(latency={"median": "30ms", "p99": "30ms"},
                       outages=[{"start": "1s", "end": "2s", "mode": "error",
                                 "statuses": {"503": 1.0}},
                                {"start": "3s", "end": "4s", "mode": "blackhole"}])
    probe, rc = run_receiver(cfg, [0, int(1.5 * S), int(3.5 * S)], timeout=S)
    ans = {msg.tag.hook: (t, msg) for t, msg in probe.answers}
    assert ans[0][1].status == 200 and abs(ans[0][0] - 31 * MS) <= MS
    assert ans[1][1].status == 503
    assert ans[2][1].status is None and ans[2][1].error == "timeout"
    assert rc.received == 3


@pytest.mark.parametrize("text,us", [("250ms", 250_000), ("5m30s", 330 * S), ("1.5s", 1_500_000),
                                     ("500us", 500), ("2h", 7200 * S)])
def test_parse_duration(text, us):
    assert parse_duration(text) == us


def test_overlapping_outages_first_matching_window_applies():
    cfg = upstream_cfg(outages=[
        {"start": "0s", "end": "10s", "mode": "blackhole", "regions": ["lax"]},
        {"start": "0s", "end": "10s", "mode": "error", "statuses": {"502": 1.0}}])
    probe, _, _ = run_upstream(cfg, [(0, 1, 1, 2 * S, False, 0), (0, 2, 0, 2 * S, False, 0)])
    got = {msg.tag: (msg.status, msg.error) for _, msg in probe.answers}
    assert got[0] == (None, "timeout") and got[1] == (502, None)


def test_capacity_outage_parks_servers_for_its_window_then_brings_them_back():
    cfg = upstream_cfg(servers=10, service="10ms", queue=100_000,
                       latency={"median": "1ms", "p99": "1ms"},
                       outages=[{"start": "2s", "end": "4s", "mode": "capacity", "servers": 2}])
    reqs = [(i * 2 * MS, i, 0, 60 * S, False, 0) for i in range(3000)]  # 500/s for 6 s
    probe, up, _ = run_upstream(cfg, reqs)
    lat = {msg.tag: t - (msg.tag * 2 * MS + MS) for t, msg in probe.answers}
    before = np.mean([lat[i] for i in range(0, 1000)])  # 0-2 s: 10 servers, 50 % busy
    during = np.mean([lat[i] for i in range(1000, 2000)])  # 2-4 s: 2 servers, 250 % busy
    assert before < 20 * MS and during > 500 * MS  # a queue builds while capacity is lost
    assert lat[2999] < during  # ... and drains once the servers are back
    assert len(up.servers) == 10 and up.parked == []


def test_capacity_outage_fraction_and_validation():
    from shortened import path

    from sim.scenario import ScenarioError, load_scenario

    cfg = upstream_cfg(servers=8, outages=[{"start": "0s", "end": "1s", "mode": "capacity",
                                            "fraction": 0.25}])
    _, up, _ = run_upstream(cfg, [(0, 0, 0, S, False, 0)])
    assert len(up.servers) == 2  # 25 % of 8, during the window
    for bad, where in (("upstreams.0.outages=[{start=\"1s\",end=\"2s\",mode=\"capacity\","
                        "regions=[\"iad\"]}]", ".regions"),
                       ("upstreams.0.outages=[{start=\"1s\",end=\"2s\",mode=\"error\","
                        "servers=3}]", ".servers")):
        with pytest.raises(ScenarioError) as e:
            load_scenario(path("openai-429-storm"), [bad])
        assert any(where in line for line in e.value.lines())


def test_a_slow_outage_holds_the_servers_longer():
    base = dict(servers=1, service="20ms", queue=1000, latency={"median": "1ms", "p99": "1ms"})
    normal = run_upstream(upstream_cfg(**base), [(0, i, 0, 60 * S, False, 0)
                                                 for i in range(200)])[0]
    slow = run_upstream(upstream_cfg(**base, outages=[
        {"start": "0s", "end": "100s", "mode": "slow", "factor": 5.0}]),
        [(0, i, 0, 600 * S, False, 0) for i in range(200)])[0]
    last = max(t for t, _ in normal.answers)
    last_slow = max(t for t, _ in slow.answers)
    assert 3.5 < last_slow / last < 6.5  # ~5x the busy time for the same work


def test_work_served_after_the_caller_gave_up_is_counted_as_wasted():
    cfg = upstream_cfg(servers=1, service="100ms", queue=1000,
                       latency={"median": "1ms", "p99": "1ms"})
    probe, up, m = run_upstream(cfg, [(0, i, 0, 150 * MS, False, 0) for i in range(20)])
    timeouts = sum(1 for _, msg in probe.answers if msg.error == "timeout")
    assert timeouts >= 15 and m.count["wasted_work"][0] == timeouts
    assert len(up.ledger) == 20  # every request was executed: the side effects happened


# -- the queue model -----------------------------------------------------------------------------
def _mm1(model, n=40_000, seed=5):
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(12_500, n)).astype(int)  # λ = 80/s
    cfg = upstream_cfg(model=model, servers=1, service="10ms", queue=1_000_000,
                       latency={"median": "1ms", "p99": "1ms"})  # μ = 100/s: ρ = 0.8
    probe, up, m = run_upstream(cfg, [(int(t), i, 0, 3600 * S, False, 0)
                                      for i, t in enumerate(times)], until=10**12)
    sent = {i: int(t) for i, t in enumerate(times)}
    return np.array([t - sent[msg.tag] - 2 * MS for t, msg in probe.answers]), up, m


def test_queue_model_matches_the_mm1_closed_form():
    """M/M/1, ρ = 0.8, mean service 10 ms: the time in system is exponential with mean
    1/(μ - λ) = 50 ms, so p50 = 50 ln 2 = 34.7 ms and p90 = 50 ln 10 = 115 ms (±10 %: 40,000
    correlated samples). The legacy model, which answers at service start + a latency draw,
    misses it (its p50 is ~24 ms)."""
    sojourn, _, _ = _mm1("queue")
    assert abs(np.median(sojourn) - 34_657) < 3_500
    assert abs(np.percentile(sojourn, 90) - 115_129) < 11_500
    assert abs(sojourn.mean() - 50_000) < 5_000
    legacy, _, _ = _mm1("legacy")
    assert np.median(legacy) < 28_000


def test_service_time_distributions():
    from sim.queue_world import ServiceSampler
    from sim.scenario.resolved import ServiceSpec

    rng = np.random.default_rng(3)

    def spec(**kw):
        base = dict(kind="exponential", mean_us=10_000, median_us=0, p99_us=0, values_us=(),
                    slow_fraction=0.0, slow_factor=10.0)
        return ServiceSpec(**{**base, **kw})

    def draws(s):
        sampler = ServiceSampler(s, rng)
        return np.array([sampler() for _ in range(40_000)])

    assert set(draws(spec(kind="constant"))) == {10_000}
    ln = draws(spec(kind="lognormal", median_us=20_000, p99_us=100_000))
    assert abs(np.median(ln) - 20_000) < 800 and abs(np.percentile(ln, 99) - 100_000) < 12_000
    emp = draws(spec(kind="empirical", values_us=(1_000, 5_000, 9_000)))
    assert set(emp) == {1_000, 5_000, 9_000} and abs(emp.mean() - 5_000) < 100
    slow = draws(spec(kind="constant", slow_fraction=0.1, slow_factor=4.0))
    assert abs((slow == 40_000).mean() - 0.1) < 0.01


def _overload(defences, n=6_000, timeout=200 * MS):
    """200 req/s at a 1-server API serving 100/s, callers time out after 200 ms."""
    cfg = upstream_cfg(model="queue", servers=1, service="10ms", queue=100_000,
                       latency={"median": "1ms", "p99": "1ms"}, defences=defences)
    reqs = [(i * 5 * MS, i, 0, timeout, False, 0) for i in range(n)]
    probe, _, m = run_upstream(cfg, reqs, until=10**12)
    ok = sum(1 for _, msg in probe.answers if msg.status == 200)
    return ok, m, probe


def test_under_overload_fifo_serves_nobody_in_time_and_defences_restore_goodput():
    """Open-loop 2x overload for 30 s (capacity ~3,000 answers in time at best). FIFO collapses:
    every answer comes after its caller's timeout. Serving the newest first (LIFO) restores
    goodput to capacity; dropping the expired or CoDel alone help (the served are still old);
    CoDel with LIFO, the pairing of Facebook's "Fail at Scale" (Maurer, ACM Queue 2015), and
    dropping the expired with LIFO, are at capacity with almost no wasted work."""
    fifo_ok, fifo_m, _ = _overload({})
    assert fifo_ok < 100 and fifo_m.count["wasted_work"][0] > 5_000
    lifo_ok, _, _ = _overload({"lifo_above": 5})
    assert lifo_ok > 2_700
    drop_ok, drop_m, _ = _overload({"drop_expired": True})
    codel_ok, codel_m, _ = _overload({"codel_target": "5ms", "codel_interval": "100ms"})
    assert drop_ok > 10 * fifo_ok and codel_ok > 10 * fifo_ok
    assert drop_m.count["dropped_expired"][0] > 1_000 and codel_m.count["codel_drops"][0] > 1_000
    both_ok, both_m, _ = _overload({"codel_target": "5ms", "codel_interval": "100ms",
                                    "lifo_above": 5})
    assert both_ok > 2_700 and both_m.count["wasted_work"][0] < 0.5 * fifo_m.count[
        "wasted_work"][0]


def test_queue_model_timeouts_arrive_at_the_deadline_and_answers_never_twice():
    _, _, probe = _overload({}, n=1_000)
    seen = [msg.tag for _, msg in probe.answers]
    assert len(seen) == len(set(seen)) == 1_000  # one answer per request
    for t, msg in probe.answers:
        if msg.error == "timeout":
            assert t == msg.tag * 5 * MS + MS + 200 * MS  # sent + link + timeout


def test_latency_model_has_no_capacity():
    cfg = upstream_cfg(model="latency", servers=1, service="1s",
                       latency={"median": "10ms", "p99": "10ms"})
    probe, _, _ = run_upstream(cfg, [(0, i, 0, 10 * S, False, 0) for i in range(500)])
    assert {t for t, _ in probe.answers} == {MS + 10 * MS}  # all at once: infinite servers


def test_queue_model_md1_matches_pollaczek_khinchine_and_lindley():
    """M/D/1, ρ = 0.8, constant 10 ms service: mean time in system D + ρD / (2(1 - ρ)) = 30 ms
    (Pollaczek–Khinchine; ±5 % over 40,000 correlated samples). With constant service, every
    request's wait is Lindley's recursion on the same arrivals, exactly."""
    rng = np.random.default_rng(9)
    times = np.cumsum(rng.exponential(12_500, 40_000)).astype(int)
    cfg = upstream_cfg(model="queue", servers=1, service="10ms", queue=1_000_000,
                       service_time={"kind": "constant"},
                       latency={"median": "1ms", "p99": "1ms"})
    probe, _, _ = run_upstream(cfg, [(int(t), i, 0, 3600 * S, False, 0)
                                     for i, t in enumerate(times)], until=10**12)
    got = {msg.tag: t - int(times[msg.tag]) - 2 * MS for t, msg in probe.answers}
    sojourn = np.array([got[i] for i in range(len(times))])
    assert abs(sojourn.mean() - 30_000) < 1_500
    wait, expected = 0, []
    for i, t in enumerate(times):  # Lindley: W(n+1) = max(0, W(n) + S - A(n+1))
        if i:
            wait = max(0, wait + 10_000 - int(t - times[i - 1]))
        expected.append(wait + 10_000)
    assert sojourn.tolist() == expected


@pytest.mark.parametrize(("sets", "where"), [
    (['upstreams.0.model="latency"', 'upstreams.0.service_time.kind="constant"'],
     "$.upstreams[0].service_time"),
    (['upstreams.0.model="legacy"', "upstreams.0.defences.drop_expired=true"],
     "$.upstreams[0].defences"),
    (['upstreams.0.model="queue"', 'upstreams.0.service_time.kind="lognormal"'],
     "$.upstreams[0].service_time"),
    (['upstreams.0.model="queue"', 'upstreams.0.service_time.kind="lognormal"',
      'upstreams.0.service_time.median="50ms"', 'upstreams.0.service_time.p99="10ms"'],
     "$.upstreams[0].service_time.p99"),
    (['upstreams.0.model="queue"', 'upstreams.0.service_time.kind="empirical"'],
     "$.upstreams[0].service_time.values"),
    (['upstreams.0.model="queue"', 'upstreams.0.service_time.kind="empirical"',
      'upstreams.0.service_time.values=["5ms", "0s"]'], "$.upstreams[0].service_time.values[1]"),
    (['upstreams.0.model="queue"', 'upstreams.0.defences.codel_target="200ms"'],
     "$.upstreams[0].defences.codel_target"),
    (['upstreams.0.model="queue"', "upstreams.0.defences.lifo_above=-1"],
     "$.upstreams[0].defences.lifo_above"),
    (['upstreams.0.model="bogus"'], "$.upstreams[0].model"),
])
def test_new_upstream_fields_are_validated_with_their_path(sets, where):
    from shortened import path

    from sim.scenario import ScenarioError, load_scenario

    with pytest.raises(ScenarioError) as e:
        load_scenario(path("openai-429-storm"), sets)
    assert any(line.startswith(f"{where}:") or f"{where}:" in line for line in e.value.lines()), \
        e.value.lines()


def test_queue_model_never_lets_a_newcomer_pass_those_waiting():
    """When a capacity window ends, the servers it gives back go to the oldest waiting
    requests, not to the next arrival (FIFO)."""
    cfg = upstream_cfg(model="queue", servers=4, service="10ms", queue=100_000,
                       service_time={"kind": "constant"},
                       latency={"median": "1ms", "p99": "1ms"},
                       outages=[{"start": "0s", "end": "1s", "mode": "capacity", "servers": 1}])
    reqs = [(i * 5 * MS, i, 0, 3600 * S, False, 0) for i in range(400)]  # 200/s for 2 s
    probe, _, _ = run_upstream(cfg, reqs, until=10**12)
    order = [msg.tag for _, msg in sorted(probe.answers, key=lambda a: (a[0], a[1].tag))]
    assert order == sorted(order)  # answered in arrival order: constant service, FIFO


def test_series_slots_bound_what_the_metrics_grow_to():
    from sim.metrics import Metrics, series_slots

    horizon = 3 * 3600 * 1_000_000 + 5  # past a chunk boundary
    m = Metrics(["a", "b", "c"], ["d1", "d2"], horizon)
    m._grow(10**9)  # asked past the horizon: clamped
    grown = [m.attempts_series, m.goodput_series, m.dam_domain_series, m.permit_series,
             m.backlog_max, m.pace_series, m.breaker_state_max]
    slots = sum(len(row) for rows in grown for row in rows)
    assert slots == series_slots(3, 2, horizon)
