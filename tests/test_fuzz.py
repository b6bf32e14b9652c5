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
