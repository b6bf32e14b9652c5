"""Step: SDK-identical payloads, the payload -> JobSpec -> payload identity, FRUGAL rules."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import (
    IdempotentStrategy,
    LocalRequestError,
    LocalResponse,
    SpecError,
    Step,
    StepType,
    parse_job,
)


def test_minimal_payload_matches_sdk():
    assert Step().url("https://a.com").to_payload() == {"url": "https://a.com", "method": "GET"}


def test_sdk_omits_defaults_and_sends_non_defaults():
    p = (Step().url("https://api.stripe.com/charges").method("post")
         .headers({"A": "b"}).body('{"x":1}').metadata({"m": "1"})
         .webhooks([{"url": "https://h.com", "has_quorum_vote": True}]).webhook_quorum(1)
         .regions(["iad", "lax"]).region_policy("fallback").execution_mode("race")
         .retry_policy({"max_retries": 5}).retry_at(123).idempotent_key("k")
         .to_payload())
    assert p == {"url": "https://api.stripe.com/charges", "method": "POST",
                 "headers": {"A": "b"}, "body": '{"x":1}', "metadata": {"m": "1"},
                 "webhooks": [{"url": "https://h.com", "has_quorum_vote": True}],
                 "regions": ["iad", "lax"], "retry_policy": {"max_retries": 5},
                 "retry_at": 123, "idempotent_key": "k"}
    p2 = Step().url("https://a.com").webhook_quorum(2).region_policy("strict") \
        .execution_mode("fanout").to_payload()
    assert p2["webhook_quorum"] == 2 and p2["region_policy"] == "strict"
    assert p2["execution_mode"] == "fanout"


def test_fallback_chain_first_call_is_outermost():
    b, c, d = (Step().url(f"https://{n}.com") for n in "bcd")
    p = (Step().url("https://a.com").fallback(b, trigger_on_error=[500])
         .fallback(c, trigger_on_timeout=500).fallback(d).to_payload())
    fb = p["fallback_job"]
    assert fb["url"] == "https://b.com" and fb["trigger"] == {"type": "on_error", "codes": [500]}
    assert fb["fallback_job"]["url"] == "https://c.com"
    assert fb["fallback_job"]["trigger"] == {"type": "on_timeout", "timeout_ms": 500}
    assert fb["fallback_job"]["fallback_job"] == {"url": "https://d.com", "method": "GET",
                                                  "trigger": {}}


def test_on_error_wins_over_on_timeout_like_the_sdk():
    p = Step().url("https://a.com").fallback(Step().url("https://b.com"), trigger_on_error=[502],
                                             trigger_on_timeout=100).to_payload()
    assert p["fallback_job"]["trigger"] == {"type": "on_error", "codes": [502]}


def test_on_success_on_failure_and_timeout():
    p = (Step().url("https://a.com").on_success(Step().url("https://s.com"))
         .on_failure(Step().url("https://f.com"), timeout_ms=5000).to_payload())
    assert p["on_success"]["url"] == "https://s.com"
    assert p["on_failure"]["url"] == "https://f.com" and p["on_failure_timeout_ms"] == 5000


def test_unique_strategy_draws_uuid4_from_rng():
    s = Step().url("https://a.com").idempotent_strategy(IdempotentStrategy.UNIQUE)
    k1 = s.to_payload(rng=np.random.default_rng(7))["idempotent_key"]
    k2 = s.to_payload(rng=np.random.default_rng(7))["idempotent_key"]
    k3 = s.to_payload(rng=np.random.default_rng(8))["idempotent_key"]
    assert k1 == k2 != k3 and k1[14] == "4" and len(k1) == 36
    with pytest.raises(ValueError, match="rng"):
        s.to_payload()
    assert "idempotent_key" not in Step().url("https://a.com").to_payload()  # HASH: dam derives
    assert s.idempotent_key("mine").to_payload()["idempotent_key"] == "mine"  # custom wins


def test_missing_url_is_a_spec_error():
    with pytest.raises(SpecError) as info:
        Step().to_payload()
    assert info.value.path == "$.url"


# -- the identity: Step -> payload -> JobSpec -> payload -------------------------------------

urls = st.sampled_from(["https://api.stripe.com/v1/charges", "http://localhost:8080/x",
                        "https://api.openai.com/v1/chat", "https://h.example/hook?x=1"])
codes = st.lists(st.integers(400, 599), max_size=3, unique=True)
regions = st.lists(st.sampled_from(["iad", "lax", "ord", "fra", "sin"]), max_size=3, unique=True)
webhook = st.fixed_dictionaries({"url": urls}, optional={
    "regions": regions, "has_quorum_vote": st.booleans()})


@st.composite
def steps(draw, depth=0):
    s = Step().url(draw(urls)).method(draw(st.sampled_from(["get", "POST", "Put", "DELETE"])))
    if draw(st.booleans()):
        s.headers(draw(st.dictionaries(st.sampled_from(["A", "X-Key", "Authorization"]),
                                       st.text("abc xyz", max_size=5), max_size=2)))
    if draw(st.booleans()):
        s.body(draw(st.text(max_size=20)))
    if draw(st.booleans()):
        s.metadata(draw(st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3),
                                        max_size=2)))
    hooks = draw(st.lists(webhook, max_size=3))
    if hooks and not any(h.get("has_quorum_vote", True) for h in hooks):
        hooks[0] = {**hooks[0], "has_quorum_vote": True}  # quorum needs >= 1 voter
    s.webhooks(hooks)
    voters = sum(1 for h in hooks if h.get("has_quorum_vote", True))
    if voters:
        s.webhook_quorum(draw(st.integers(1, voters)))
    if draw(st.booleans()):
        s.regions(draw(regions))
    s.region_policy(draw(st.sampled_from(["fallback", "strict"])))
    mode = draw(st.sampled_from(["race", "fanout", "hedge"]))
    s.execution_mode(mode)
    if mode == "hedge" and draw(st.booleans()):
        s.hedge_delay_ms(draw(st.integers(0, 5000)))
    if draw(st.booleans()):
        retry, reroute = draw(codes), draw(codes)
        reroute = [c for c in reroute if c not in retry]
        s.retry_policy(draw(st.fixed_dictionaries({}, optional={
            "max_retries": st.integers(0, 10), "max_reroutes": st.integers(0, 10),
            "retry_codes": st.just(retry), "reroute_codes": st.just(reroute)})))
    if draw(st.booleans()):
        s.retry_at(draw(st.integers(0, 2**41)))
    strategy = draw(st.sampled_from(["hash", "unique", "custom"]))
    if strategy == "custom":
        s.idempotent_key(draw(st.text(alphabet="abc-_0123", min_size=1, max_size=10)))
    elif strategy == "unique":
        s.idempotent_strategy(IdempotentStrategy.UNIQUE)
    if depth < 3:
        for _ in range(draw(st.integers(0, 2))):
            kind = draw(st.sampled_from(["error", "timeout", "any"]))
            child = draw(steps(depth=depth + 1))
            if kind == "error":
                s.fallback(child, trigger_on_error=draw(codes.filter(bool)))
            elif kind == "timeout":
                s.fallback(child, trigger_on_timeout=draw(st.integers(1, 60_000)))
            else:
                s.fallback(child)
        if draw(st.booleans()):
            s.on_success(draw(steps(depth=depth + 1)))
        if draw(st.booleans()):
            s.on_failure(draw(steps(depth=depth + 1)),
                         timeout_ms=draw(st.none() | st.integers(1, 10_000)))
    return s


@given(steps(), st.integers(0, 2**32))
def test_step_payload_round_trips_through_jobspec(step, seed):
    payload = step.to_payload(rng=np.random.default_rng(seed))
    spec = parse_job(payload, "cust_rt")
    assert spec.to_payload() == payload
    assert parse_job(spec.to_payload(), "cust_rt") == spec


# -- execute ---------------------------------------------------------------------------------

class FakeClient:
    """Records submits; answers local executions from a script keyed by URL."""

    def __init__(self, local=None):
        self.local = local or {}
        self.submitted = []
        self.local_calls = []
        self.rng = np.random.default_rng(1)

    def submit(self, payload):
        self.submitted.append(payload)
        return {"job_id": f"job_0_{len(self.submitted)}", "status": "queued"}

    def execute_local(self, request):
        self.local_calls.append(request)
        outcome = self.local[request.url]
        if isinstance(outcome, Exception):
            raise outcome
        return LocalResponse(outcome, text=f"body-{outcome}")


def test_performance_submits_immediately():
    c = FakeClient()
    r = Step(c).url("https://a.com").execute()
    assert r["status"] == "queued" and c.submitted == [{"url": "https://a.com", "method": "GET"}]
    assert c.local_calls == []


def test_frugal_local_success_runs_on_success_and_does_not_submit():
    c = FakeClient({"https://a.com": 200})
    r = (Step().url("https://a.com").type(StepType.FRUGAL)
         .on_success(Step().url("https://notify.com")).execute(c))
    assert r == {"status": "success", "executed_locally": True, "status_code": 200,
                 "response": "body-200"}
    assert [p["url"] for p in c.submitted] == ["https://notify.com"]  # only the on_success step
    assert c.local_calls[0].timeout_s == 30.0


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_frugal_forwards_on_fallback_codes(status):
    c = FakeClient({"https://a.com": status})
    r = Step().url("https://a.com").type(StepType.FRUGAL).execute(c)
    assert r["status"] == "queued" and c.submitted[0]["url"] == "https://a.com"


def test_frugal_other_status_is_a_local_failure_not_forwarded():
    c = FakeClient({"https://a.com": 404})
    r = Step().url("https://a.com").type(StepType.FRUGAL).execute(c)
    assert r == {"status": "failed", "executed_locally": True, "status_code": 404,
                 "error": "Request failed: 404"}
    assert c.submitted == []


def test_frugal_custom_fallback_on_error_list():
    c = FakeClient({"https://a.com": 503})
    r = Step().url("https://a.com").type(StepType.FRUGAL).fallback_on_error([429]).execute(c)
    assert r["status"] == "failed" and c.submitted == []


def test_frugal_network_error_tries_fallbacks_then_forwards():
    c = FakeClient({"https://a.com": LocalRequestError("timeout"), "https://b.com": 500})
    fb = Step().url("https://b.com").type(StepType.FRUGAL)
    r = Step().url("https://a.com").type(StepType.FRUGAL).local_timeout(5).fallback(fb).execute(c)
    assert r["status"] == "queued"
    assert [x.url for x in c.local_calls] == ["https://a.com", "https://b.com"]
    assert c.local_calls[0].timeout_s == 5.0
    assert c.submitted[0]["fallback_job"]["url"] == "https://b.com"  # whole step forwarded


def test_frugal_local_fallback_success_wins_and_triggers_are_checked():
    c = FakeClient({"https://a.com": 502, "https://b.com": 200, "https://c.com": 200,
                    "https://p.com": 200})
    not_matching = Step().url("https://c.com").type(StepType.FRUGAL)
    performance = Step().url("https://p.com")  # PERFORMANCE fallbacks are not run locally
    matching = Step().url("https://b.com").type(StepType.FRUGAL)
    r = (Step().url("https://a.com").type(StepType.FRUGAL)
         .fallback(not_matching, trigger_on_error=[500])
         .fallback(performance)
         .fallback(matching, trigger_on_error=[502]).execute(c))
    assert r["status"] == "success" and r["executed_locally"] is True
    assert [x.url for x in c.local_calls] == ["https://a.com", "https://b.com"]
    assert c.submitted == []


def test_frugal_on_timeout_fallback_always_tried_and_network_error_skips_on_error():
    c = FakeClient({"https://a.com": LocalRequestError("connect"), "https://b.com": 200,
                    "https://t.com": 200})
    on_err = Step().url("https://b.com").type(StepType.FRUGAL)
    on_to = Step().url("https://t.com").type(StepType.FRUGAL)
    r = (Step().url("https://a.com").type(StepType.FRUGAL)
         .fallback(on_err, trigger_on_error=[500]).fallback(on_to, trigger_on_timeout=100)
         .execute(c))
    assert r["status"] == "success"
    assert [x.url for x in c.local_calls] == ["https://a.com", "https://t.com"]


def test_execute_without_client_is_a_clear_error():
    with pytest.raises(ValueError, match="client"):
        Step().url("https://a.com").execute()
