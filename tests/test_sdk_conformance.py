"""Conformance with the official ``ezthrottle`` 1.3.0 SDK, unchanged: every job its ``Step``
builder makes (every method, nested fallbacks / on_success / on_failure) is accepted by
``parse_job`` and round-trips; its webhook verifiers accept apidam's signatures. No network: the
SDK builds payloads and verifies signatures locally."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import SecretStore, parse_job, sign_webhook

ezthrottle = pytest.importorskip("ezthrottle")
from ezthrottle import IdempotentStrategy, Step, StepType  # noqa: E402
from ezthrottle.webhook_utils import (  # noqa: E402
    try_verify_with_secrets,
    verify_webhook_signature,
    verify_webhook_signature_strict,
)

HOSTS = ["https://api.stripe.com", "https://api.openai.com:8443", "http://localhost:9000"]
REGIONS = ["iad", "lax", "ord", "fra"]
token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-",
                min_size=1, max_size=12)
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
# RFC 9110 field values: visible characters, spaces, tabs (never CR, LF, NUL: no HTTP library
# would send them, and parse_job refuses them with a clear error)
header_value = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                       max_size=40)
codes = st.lists(st.sampled_from([408, 409, 425, 429, 500, 502, 503, 504]), min_size=1,
                 max_size=4, unique=True)


@st.composite
def steps(draw, depth=0):
    s = Step().url(draw(st.sampled_from(HOSTS)) + "/" + draw(token))
    calls = draw(st.sets(st.sampled_from([
        "type", "method", "headers", "body", "metadata", "webhooks", "regions", "region_policy",
        "execution_mode", "retry_policy", "retry_at", "idempotent_key", "idempotent_strategy",
        "fallback_on_error", "local_timeout"])))
    if "type" in calls:
        s.type(draw(st.sampled_from([StepType.FRUGAL, StepType.PERFORMANCE])))
    if "method" in calls:
        s.method(draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "post"])))
    if "headers" in calls:
        s.headers(draw(st.dictionaries(token, header_value, max_size=3)))
    if "body" in calls:
        s.body(draw(text))
    if "metadata" in calls:
        s.metadata(draw(st.dictionaries(token, text, max_size=3)))
    if "webhooks" in calls:
        hooks = []
        for _ in range(draw(st.integers(1, 3))):
            h = {"url": draw(st.sampled_from(HOSTS)) + "/hook/" + draw(token)}
            if draw(st.booleans()):
                h["regions"] = draw(st.lists(st.sampled_from(REGIONS), min_size=1, unique=True))
            if draw(st.booleans()):
                h["has_quorum_vote"] = draw(st.booleans())
            hooks.append(h)
        s.webhooks(hooks)
        voters = sum(1 for h in hooks if h.get("has_quorum_vote", True))
        if voters > 1 and draw(st.booleans()):
            s.webhook_quorum(draw(st.integers(1, voters)))  # the SDK sends it when != 1
    if "regions" in calls:
        s.regions(draw(st.lists(st.sampled_from(REGIONS), min_size=1, unique=True)))
    if "region_policy" in calls:
        s.region_policy(draw(st.sampled_from(["fallback", "strict"])))
    if "execution_mode" in calls:
        s.execution_mode(draw(st.sampled_from(["race", "fanout"])))
    if "retry_policy" in calls:
        policy = {}
        for key, value in (("max_retries", st.integers(0, 10)), ("max_reroutes", st.integers(0, 5)),
                           ("retry_codes", codes), ("reroute_codes", codes)):
            if draw(st.booleans()):
                policy[key] = draw(value)
        s.retry_policy(policy)  # the two lists may share a code, as the SDK allows
    if "retry_at" in calls:
        s.retry_at(draw(st.integers(1_600_000_000_000, 2_000_000_000_000)))
    if "idempotent_key" in calls:
        s.idempotent_key(draw(token))
    if "idempotent_strategy" in calls:
        s.idempotent_strategy(draw(st.sampled_from([IdempotentStrategy.HASH,
                                                     IdempotentStrategy.UNIQUE])))
    if "fallback_on_error" in calls:
        s.fallback_on_error(draw(codes))  # FRUGAL, client side: not in the payload
    if "local_timeout" in calls:
        s.local_timeout(draw(st.integers(1, 60)))
    if depth < 2:
        for _ in range(draw(st.integers(0, 2))):
            kind = draw(st.sampled_from(["error", "timeout", "any"]))
            child = draw(steps(depth + 1))
            if kind == "error":
                s.fallback(child, trigger_on_error=draw(codes))
            elif kind == "timeout":
                s.fallback(child, trigger_on_timeout=draw(st.integers(1, 600_000)))
            else:
                s.fallback(child)
        if draw(st.booleans()):
            s.on_success(draw(steps(depth + 1)))
        if draw(st.booleans()):
            timeout = draw(st.one_of(st.none(), st.integers(1, 3_600_000)))
            s.on_failure(draw(steps(depth + 1)), timeout_ms=timeout)
    return s


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(steps())
def test_every_sdk_built_job_is_accepted_and_round_trips(step):
    payload = step._build_job_payload()  # exactly what the SDK posts to /api/v1/jobs
    spec = parse_job(payload, "cust_1")
    assert spec.to_payload() == payload


SECRET = "whsec_conformance_primary_0001"
OTHER = "whsec_conformance_secondary_02"


@given(body=st.text(max_size=300).map(str.encode),  # webhook bodies are JSON: UTF-8
       t=st.integers(1_600_000_000, 2_000_000_000))
def test_the_sdk_verifies_apidam_signatures(body, t):
    header = sign_webhook(body, SECRET, t)
    import time

    now = int(time.time())
    fresh = sign_webhook(body, SECRET, now)
    assert verify_webhook_signature(body, fresh, SECRET) == (True, "valid")
    verify_webhook_signature_strict(body, fresh, SECRET)
    ok, reason = verify_webhook_signature(body, header, SECRET, tolerance=10**10)
    assert ok, reason
    assert not verify_webhook_signature(body + b"x", fresh, SECRET)[0]
    assert not verify_webhook_signature(body, fresh, OTHER)[0]


def test_the_sdk_accepts_primary_and_rotated_secondary_signatures():
    import time

    store = SecretStore()
    store.create("c", SECRET)
    body = b'{"job_id": "job_1_1", "status": "success"}'
    now = int(time.time())
    signed_old = sign_webhook(body, store.secrets("c").primary, now)
    store.rotate("c", OTHER)
    signed_new = sign_webhook(body, store.secrets("c").primary, now)
    assert try_verify_with_secrets(body, signed_new, OTHER, SECRET) == (True, "valid_primary")
    assert try_verify_with_secrets(body, signed_old, OTHER, SECRET) == (True, "valid_secondary")
