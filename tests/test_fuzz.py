"""Fuzzing the input boundaries: only the documented errors, never a traceback or a hang."""

import contextlib
import string

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.errors import SpecError
from engine.signing import try_verify_with_secrets, verify_webhook_signature
from engine.spec import parse_job
from sim.scenario import ScenarioError, load_scenario

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=15), inner,
                                                                 max_size=4),
    max_leaves=30)
job_keys = st.sampled_from(["url", "method", "headers", "body", "metadata", "webhooks",
                            "webhook_quorum", "regions", "region_policy", "execution_mode",
                            "retry_policy", "fallback_job", "fallbackJob", "trigger",
                            "on_success", "on_failure", "on_failure_timeout_ms", "retry_at",
                            "idempotent_key", "hedge_delay_ms", "max_retries", "codes", "type",
                            "timeout_ms", "has_quorum_vote", "hasQuorumVote"])
job_like = st.recursive(
    st.fixed_dictionaries({"url": st.sampled_from(["https://a.com", "http://b.c/x", "x", ""])}),
    lambda inner: st.dictionaries(job_keys, inner | json_values, max_size=6),
    max_leaves=20)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(json_values | job_like)
@example({"url": "https://a.com", "fallback_job": {"url": "https://b.com", "trigger": None}})
@example({"url": "https://a.com", "headers": {"X": "a\nb"}})
@example({"url": "https://a.com", "metadata": {"x": float("nan")}})
def test_parse_job_raises_only_spec_error(payload):
    try:
        spec = parse_job(payload, "cust")
    except SpecError as e:
        assert e.path.startswith("$") and e.reason
        return
    assert parse_job(spec.to_payload(), "cust") == spec


toml_text = st.text(alphabet=string.printable, max_size=300)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(toml_text)
@example('name = "x"\nduration = "1s"\n[[upstreams]]\nname = "a"\nurl = "https://a"\n'
         '[[workloads]]\nname = "w"\nupstream = "a"\narrivals = { rate = 1e309 }\n')
def test_scenario_loader_raises_only_scenario_error_on_text(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("fz") / "s.toml"
    p.write_text(text)
    try:
        load_scenario(p)
    except ScenarioError as e:
        assert e.reason


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["name", "duration", "upstreams", "workloads", "dam",
                                        "network", "receivers", "seed", "drain", "costs"]),
                       json_values, max_size=8))
def test_scenario_loader_raises_only_scenario_error_on_documents(doc):
    try:
        load_scenario(doc)
    except ScenarioError as e:
        assert e.path.startswith("$") and e.reason


@given(st.binary(max_size=64), st.text(max_size=120) | st.none(), st.text(max_size=30),
       st.integers(-10**12, 10**12) | st.floats())
def test_signature_verification_never_raises(body, header, secret, now):
    ok, reason = verify_webhook_signature(body, header, secret or "x", now=now)
    assert isinstance(ok, bool) and isinstance(reason, str)
    ok2, reason2 = try_verify_with_secrets(body, header, secret or "x", "whsec_secondary_0001",
                                           now=now)
    assert isinstance(ok2, bool) and isinstance(reason2, str)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode)
       | st.builds(lambda d, k: ("[" * d + "]" * d if k else "{\"a\":" * d + "1" + "}" * d)
                   .encode(), st.integers(0, 200), st.booleans()))
@example(b"[" * 100_000 + b"]" * 100_000)
@example(b'{"url":"https://a.com","retry_at":' + b"9" * 5000 + b"}")
@example(b'{"url":"https://a.com","method":"GET","method":"POST"}')
@example(b'"\\ud800"')
def test_job_json_intake_raises_only_spec_error(data):
    from engine.spec import decode_job_json

    try:
        payload = decode_job_json(data)
    except SpecError as e:
        assert e.path.startswith("$") and e.reason
        return
    with contextlib.suppress(SpecError):
        parse_job(payload, "cust")


def test_job_json_limits_name_the_place():
    from engine.spec import MAX_WEBHOOKS, decode_job_json

    cases = {
        b'{"url":"https://a.com","metadata":{"a":{"b":1,"b":2}}}': ("$.metadata.a",
                                                                    "duplicate key 'b'"),
        b'{"url":"https://a.com","retry_at":1' + b"0" * 30 + b"}": ("$.retry_at",
                                                                  "more than 18 digits"),
        b"[" * 65 + b"]" * 65: ("$", "nested deeper than 64"),
        b"\xff\xfe": ("$", "not UTF-8"),
    }
    for data, (path, reason) in cases.items():
        try:
            decode_job_json(data)
        except SpecError as e:
            assert (e.path, reason in e.reason) == (path, True), (data[:40], e)
        else:
            raise AssertionError(f"accepted {data[:40]!r}")
    hooks = [{"url": f"https://h.example/{i}"} for i in range(MAX_WEBHOOKS + 1)]
    try:
        parse_job({"url": "https://a.com", "webhooks": hooks}, "c")
    except SpecError as e:
        assert e.path == "$.webhooks" and f"at most {MAX_WEBHOOKS}" in e.reason
    else:
        raise AssertionError("a job with too many webhooks was accepted")


FUZZ_PATHS = [
    "duration", "drain", "seed", "network.intra_region", "network.to_upstream",
    "dam.limiter.rate", "dam.limiter.burst", "dam.limiter.max_concurrent",
    "dam.breaker.failure_rate", "dam.breaker.window_calls", "dam.breaker.min_calls",
    "dam.breaker.open", "dam.breaker.max_open", "dam.breaker.probes", "dam.pacing.slow_start",
    "dam.pacing.slow_start_floor", "dam.pacing.min_rate", "dam.pacing.beta",
    "dam.attempt_timeout", "dam.webhook_schedule", "dam.backoff.base", "dam.backoff.cap",
    "upstreams.api.servers", "upstreams.api.queue", "upstreams.api.rate_limit",
    "upstreams.api.rate_burst", "upstreams.api.service", "upstreams.api.advertise.rps",
    "upstreams.api.advertise.max_concurrent", "upstreams.api.latency.median",
    "upstreams.api.latency.slow_factor", "upstreams.api.latency.slow_fraction",
    "workloads.w.arrivals.rate", "workloads.w.payload_bytes", "workloads.w.start",
    "workloads.w.stop", "workloads.w.resubmit_fraction", "workloads.w.diy.retries",
    "workloads.w.diy.timeout", "workloads.w.diy.concurrency", "workloads.w.path", "name",
]
FUZZ_VALUES = ["-1", "0", "0.5", "1", "7", "1e6", "1e7", "1e308", "inf", "-inf", "nan",
               str(2**63), str(10**30), '"x"', '"1s"', '"0s"', '"720h"', '"721h"',
               '"99999999999999999999h"', '["0s", "1s"]', '["5s", "1s"]', "true", '"/ok"']


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(st.sampled_from(FUZZ_PATHS), st.sampled_from(FUZZ_VALUES)),
                min_size=1, max_size=4))
def test_validate_accepts_only_what_run_runs(overrides):
    """Extreme numbers anywhere: a clean ScenarioError, or a scenario that builds and (when
    small enough to run in a test) runs to the end."""
    import time

    from sim.build import build
    from sim.runtime.local import run_local

    doc = {"name": "fuzz", "duration": "2s", "drain": "5s",
           "upstreams": [{"name": "api", "url": "https://api.example"}],
           "receivers": [{"name": "app", "url": "https://app.example"}],
           "workloads": [{"name": "w", "upstream": "api", "strategy": "diy",
                          "arrivals": {"rate": 5.0}}]}
    try:
        sc = load_scenario(doc, [f"{p}={v}" for p, v in overrides])
    except ScenarioError as e:
        assert e.path and e.reason
        return
    build(sc)  # allocations (servers, series) stay bounded
    rs = sc.workloads[0].arrivals.rate
    if rs <= 100 and sc.upstreams[0].service in ("20ms", "1s", "0s"):
        t0 = time.perf_counter()
        r = run_local(sc)
        w = r.summary["workloads"]["w"]
        assert w["jobs"] == w["succeeded"] + w["failed"] + w["pending"] + w["deduped"]
        assert time.perf_counter() - t0 < 30
