"""System properties: hypothesis writes small scenarios and runs them end to end."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.runtime.local import run_local
from sim.scenario import load_scenario

REGIONS = ["iad", "lax", "ord"]


@st.composite
def outage(draw, horizon_s, regions):
    start = draw(st.integers(0, horizon_s - 1))
    end = draw(st.integers(start + 1, horizon_s + 5))
    o = {"start": f"{start}s", "end": f"{end}s",
         "mode": draw(st.sampled_from(["error", "slow", "blackhole", "partial"]))}
    if o["mode"] in ("error", "partial"):
        o["statuses"] = draw(st.sampled_from([{"503": 1.0}, {"500": 1.0, "502": 1.0},
                                              {"429": 1.0}, {"404": 1.0}]))
    if draw(st.booleans()) and regions:
        o["regions"] = draw(st.lists(st.sampled_from(regions), min_size=1, unique=True))
    return o


@st.composite
def scenarios(draw):
    regions = draw(st.lists(st.sampled_from(REGIONS), min_size=1, max_size=3, unique=True))
    duration = draw(st.integers(3, 10))
    ups = []
    for i in range(draw(st.integers(1, 3))):
        u = {"name": f"u{i}", "url": f"https://u{i}.example", "servers": draw(st.integers(1, 50)),
             "queue": draw(st.integers(0, 50)), "idempotency": draw(st.booleans()),
             "latency": {"median": "50ms", "p99": draw(st.sampled_from(["80ms", "2s"]))},
             "outages": draw(st.lists(outage(duration, [*regions, "client"]), max_size=2))}
        if draw(st.booleans()):
            u["advertise"] = {"rps": draw(st.sampled_from([1.0, 20.0, 500.0])),
                              "max_concurrent": draw(st.integers(1, 50))}
        if draw(st.booleans()):
            u["rate_limit"] = draw(st.sampled_from([2.0, 20.0]))
        ups.append(u)
    receivers = [{"name": "app", "url": "https://app.example",
                  "outages": draw(st.lists(outage(duration, regions), max_size=1))}]
    workloads = []
    for i in range(draw(st.integers(1, 3))):
        strategy = draw(st.sampled_from(["diy", "performance", "frugal"]))
        w = {"name": f"w{i}", "upstream": draw(st.sampled_from([u["name"] for u in ups])),
             "strategy": strategy,
             "arrivals": {"process": draw(st.sampled_from(["poisson", "constant"])),
                          "rate": draw(st.sampled_from([1.0, 3.0, 8.0]))},
             "diy": {"retries": draw(st.integers(0, 3)),
                     "backoff": {"kind": draw(st.sampled_from(["none", "full_jitter"]))},
                     "timeout": "2s"},
             "frugal": {"local_timeout": "2s"},
             "resubmit_fraction": draw(st.sampled_from([0.0, 0.3]))}
        if strategy != "diy":
            step = {"regions": draw(st.lists(st.sampled_from(regions), max_size=len(regions),
                                             unique=True)),
                    "execution_mode": draw(st.sampled_from(["race", "fanout", "hedge"])),
                    "region_policy": draw(st.sampled_from(["fallback", "strict"])),
                    "retry_policy": {"max_retries": draw(st.integers(0, 3)),
                                     "max_reroutes": draw(st.integers(0, 2))}}
            if draw(st.booleans()):
                step["webhooks"] = [{"url": "https://app.example/h"}]
            w["step"] = step
        workloads.append(w)
    dam = {"regions": regions, "attempt_timeout": "3s", "webhook_timeout": "2s",
           "webhook_schedule": ["0s", "1s", "3s"],
           "breaker": {"enabled": draw(st.booleans()), "min_calls": draw(st.integers(1, 10)),
                       "open": draw(st.sampled_from(["500ms", "2s"])),
                       "probes": draw(st.integers(1, 3))},
           "pacing": {"adaptive": draw(st.booleans()),
                      "slow_start": draw(st.sampled_from(["0s", "5s"]))}}
    if len(regions) > 1 and draw(st.booleans()):
        start = draw(st.integers(0, duration - 1))
        dam["outages"] = [{"region": draw(st.sampled_from(regions)), "start": f"{start}s",
                           "end": f"{start + draw(st.integers(1, 5))}s"}]
    return {"name": "generated", "seed": draw(st.integers(0, 1000)), "duration": f"{duration}s",
            "drain": "60s", "network": {"client_to_gateway": "10ms"}, "dam": dam,
            "upstreams": ups, "receivers": receivers, "workloads": workloads}


def check(doc, result):
    s = result.summary
    for name, w in s["workloads"].items():
        assert w["jobs"] == w["succeeded"] + w["failed"] + w["pending"] + w["deduped"], name
        assert w["pending"] >= 0
        hooks = w["webhooks"]
        assert hooks["delivered"] + hooks["undelivered"] <= w["succeeded"] + w["failed"]
        spec = next(x for x in doc["workloads"] if x["name"] == name)
        up = next(u for u in doc["upstreams"] if u["name"] == spec["upstream"])
        if spec["strategy"] == "performance" and up["idempotency"]:
            # the dam sends one Idempotency-Key per job: an upstream that honours it never
            # executes a dam job twice, whatever racing, timeouts or recoveries happened
            assert w["duplicate_executions"] == 0, name
        if spec["strategy"] == "diy":
            assert w["webhooks"]["attempts"] == 0 and w["dam_attempts"] == 0
    for d in s["domains"].values():
        assert d["attempts"] <= d["permits"]
        assert d["probe_attempts"] <= d["permits"]
        assert d["open_seconds"] <= s["sim_seconds"] + 1e-6
        if not doc["dam"]["breaker"]["enabled"]:
            assert d["breaker_opens"] == 0 and d["probe_attempts"] == 0


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios())
def test_generated_scenarios_keep_the_invariants_and_are_deterministic(doc):
    sc = load_scenario(doc)
    first = run_local(sc)
    check(doc, first)
    again = run_local(load_scenario(doc))
    assert again.trace_hash == first.trace_hash


@pytest.mark.usefixtures("ray_session")
@settings(max_examples=2, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios())
def test_results_do_not_depend_on_actor_placement(doc):
    from sim.runtime.ray import run_ray

    doc["duration"] = "3s"
    doc["drain"] = "10s"
    for w in doc["workloads"]:
        w["arrivals"]["rate"] = 1.0
    sc = load_scenario(doc)
    local = run_local(sc)
    for placement in ("default", "single"):
        r = run_ray(sc, placement=placement)
        assert r.trace_hash == local.trace_hash
        assert r.summary["workloads"] == local.summary["workloads"]
