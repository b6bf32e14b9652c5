"""Client workloads: arrival processes and DIY strategies, in small end-to-end runs."""

import numpy as np
import pytest

from sim.clients import arrival_times
from sim.runtime.local import run_local
from sim.scenario import load_scenario, resolve

S = 1_000_000


def scenario(workload: dict, upstream: dict | None = None, **top):
    doc = {"name": "t", "duration": "20s", "drain": "2m",
           "upstreams": [{"name": "api", "url": "https://api.example",
                          "latency": {"median": "50ms", "p99": "100ms"}, **(upstream or {})}],
           "receivers": [{"name": "app", "url": "https://app.example"}],
           "workloads": [{"name": "w", "upstream": "api", **workload}], **top}
    return load_scenario(doc)


def test_poisson_constant_piecewise_and_trace_arrivals(tmp_path):
    rng = np.random.default_rng(0)
    w = resolve(scenario({"arrivals": {"process": "poisson", "rate": 200.0}})).workloads[0]
    n = sum(len(arrival_times(w, t, t + S, rng, None, {})) for t in range(0, 100 * S, S))
    assert 19_000 < n < 21_000
    w = resolve(scenario({"arrivals": {"process": "constant", "rate": 4.0}})).workloads[0]
    st = {}
    times = arrival_times(w, 0, S, rng, None, st) + arrival_times(w, S, 2 * S, rng, None, st)
    assert times == [0, 250_000, 500_000, 750_000, S, 1_250_000, 1_500_000, 1_750_000]
    w = resolve(scenario({"arrivals": {"process": "piecewise", "segments": [
        {"until": "10s", "rate": 0.0}, {"until": "20s", "rate": 50.0}]}})).workloads[0]
    assert arrival_times(w, 5 * S, 6 * S, rng, None, {}) == []
    assert len(arrival_times(w, 15 * S, 16 * S, rng, None, {})) > 20
    (tmp_path / "t.csv").write_text("0.5\n1.25\n3.0\n")
    sc = scenario({"arrivals": {"process": "trace", "file": "t.csv"}})
    r = run_local(sc, base_dir=tmp_path)
    assert r.summary["workloads"]["w"]["jobs"] == 3


def test_diy_immediate_retries_make_one_plus_n_attempts_in_an_outage():
    sc = scenario({"arrivals": {"process": "constant", "rate": 10.0},
                   "diy": {"retries": 5, "backoff": {"kind": "none"}}},
                  {"outages": [{"start": "0s", "end": "1h", "statuses": {"503": 1.0}}]})
    w = run_local(sc).summary["workloads"]["w"]
    assert w["jobs"] == 200 and w["failed"] == 200 and w["upstream_attempts"] == 1200
    assert w["amplification"] == 6.0 and w["pending"] == 0


def test_diy_retry_budget_stops_retrying():
    sc = scenario({"arrivals": {"process": "constant", "rate": 10.0},
                   "diy": {"retries": 5, "backoff": {"kind": "none"},
                           "budget": {"max_tokens": 10.0, "token_ratio": 0.1}}},
                  {"outages": [{"start": "0s", "end": "1h", "statuses": {"503": 1.0}}]})
    w = run_local(sc).summary["workloads"]["w"]
    assert w["upstream_attempts"] < 260 and w["budget_denied"] > 150


def test_adaptive_throttling_rejects_locally():
    sc = scenario({"arrivals": {"process": "constant", "rate": 20.0},
                   "diy": {"retries": 3, "backoff": {"kind": "none"},
                           "adaptive": {"k": 2.0, "window": "10s"}}},
                  {"outages": [{"start": "0s", "end": "1h", "statuses": {"503": 1.0}}]})
    w = run_local(sc).summary["workloads"]["w"]
    assert w["client_rejects"] > 500
    assert w["upstream_attempts"] + w["client_rejects"] == 400 * 4


def test_diy_concurrency_cap_queues_jobs():
    sc = scenario({"arrivals": {"process": "constant", "rate": 10.0},
                   "diy": {"concurrency": 2, "retries": 0}},
                  {"latency": {"median": "500ms", "p99": "500ms"}})
    w = run_local(sc).summary["workloads"]["w"]
    assert w["peak_concurrency"] == 2 and w["succeeded"] == 200
    assert w["latency_ms"]["p99"] > 10_000  # the queue shows up as latency


@pytest.mark.parametrize("status,forwarded", [(200, 0), (503, 200), (404, 0)])
def test_frugal_forwards_only_on_fallback_codes(status, forwarded):
    up = {"advertise": {"rps": 100.0, "max_concurrent": 50}}
    if status != 200:
        up["outages"] = [{"start": "0s", "end": "1h", "statuses": {str(status): 1.0}}]
    sc = scenario({"strategy": "frugal", "arrivals": {"process": "constant", "rate": 10.0},
                   "step": {"retry_policy": {"max_retries": 1}}}, up)
    r = run_local(sc).summary
    w = r["workloads"]["w"]
    assert w["forwarded"] == forwarded and w["jobs"] == 200
    if status == 503:
        # The API never recovers: the dam's breaker holds the forwarded jobs (they wait, with
        # their retries unspent) instead of burning them; a handful of attempts reach the API.
        assert w["pending"] > 150 and w["failed"] < 50
        assert r["domains"]["https://api.example"]["breaker_open_at_end"]
        assert w["dam_attempts"] < 2 * (w["failed"] + 10) + 20
        off = scenario({"strategy": "frugal", "arrivals": {"process": "constant", "rate": 10.0},
                        "step": {"retry_policy": {"max_retries": 1}}}, up,
                       dam={"breaker": {"enabled": False}})
        w = run_local(off).summary["workloads"]["w"]
    assert w["succeeded"] + w["failed"] == 200
    if status == 404:
        assert w["failed"] == 200 and w["dam_attempts"] == 0


def test_resubmits_are_deduped_by_the_gateway():
    sc = scenario({"strategy": "performance", "arrivals": {"process": "constant", "rate": 10.0},
                   "resubmit_fraction": 0.5})
    w = run_local(sc).summary["workloads"]["w"]
    assert w["deduped"] > 50 and w["jobs"] == 200 + w["deduped"]
    assert w["succeeded"] == 200 and w["dam_attempts"] == 200


def test_waiting_on_an_open_breaker_spends_no_retries():
    """A 20 s hard outage and jobs allowed one retry. With the breaker only the jobs that met
    the outage before it opened (it needs half of its window to fail: ~5 s at this rate) can
    fail; every job that arrived while it was open waits it out and succeeds. Without it the
    jobs burn their retry during the outage and fail."""
    up = {"advertise": {"rps": 50.0, "max_concurrent": 50},
          "outages": [{"start": "5s", "end": "25s", "statuses": {"503": 1.0}}]}
    job = {"strategy": "performance", "arrivals": {"process": "constant", "rate": 10.0},
           "step": {"retry_policy": {"max_retries": 1, "max_reroutes": 0}}}
    on = run_local(scenario(job, up)).summary
    w = on["workloads"]["w"]
    assert w["jobs"] == 200 and w["pending"] == 0 and w["failed"] <= 35  # 23 measured
    assert w["amplification"] < 1.2
    assert on["domains"]["https://api.example"]["breaker_opens"] >= 1
    off = run_local(scenario(job, up, dam={"breaker": {"enabled": False}})).summary
    w = off["workloads"]["w"]
    assert w["failed"] >= 140 and w["amplification"] > 1.5  # 150 and 1.75 measured


def test_deliveries_still_running_at_the_end_are_reported_pending():
    """A receiver down for the whole run: every decided job is still delivering when the run
    ends. Its attempts are counted as they are made, and the jobs show as pending."""
    sc = scenario({"strategy": "performance", "arrivals": {"process": "constant", "rate": 5.0},
                   "step": {"webhooks": [{"url": "https://app.example/h"}]}},
                  receivers=[{"name": "app", "url": "https://app.example",
                              "outages": [{"start": "0s", "end": "10h", "mode": "error"}]}])
    w = run_local(sc).summary["workloads"]["w"]
    hooks = w["webhooks"]
    assert w["succeeded"] == 100 and hooks["delivered"] == hooks["undelivered"] == 0
    assert hooks["pending"] == 100 and hooks["attempts"] >= 300  # rounds 0 s, 1 s, 5 s, 30 s ...
    ok = run_local(scenario({"strategy": "performance",
                             "arrivals": {"process": "constant", "rate": 5.0},
                             "step": {"webhooks": [{"url": "https://app.example/h"}]}}))
    assert ok.summary["workloads"]["w"]["webhooks"]["pending"] == 0
