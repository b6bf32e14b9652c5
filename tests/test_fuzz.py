"""Fuzzing the input boundaries: only the documented errors, never a traceback or a hang."""

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
