"""parse_job: every field of the SDK's payload, aliases, round trips and exact error paths."""

import copy

import pytest

from engine import JobSpec, SpecError, parse_job
from engine.spec import MAX_BODY_BYTES, MAX_NESTING, domain_of

FULL = {
    "url": "https://api.stripe.com/v1/charges",
    "method": "POST",
    "headers": {"Authorization": "Bearer sk_test", "Content-Type": "application/json"},
    "body": '{"amount": 1000}',
    "metadata": {"order_id": "o-1", "n": 3, "nested": {"a": [1, 2]}},
    "webhooks": [
        {"url": "https://app.com/payment-complete", "has_quorum_vote": True},
        {"url": "https://analytics.com/track", "has_quorum_vote": False},
        {"url": "https://notify.com/alert"},
        {"url": "https://backup.com/webhook", "regions": ["iad", "lax"], "has_quorum_vote": True},
    ],
    "webhook_quorum": 2,
    "regions": ["iad", "lax", "ord"],
    "region_policy": "strict",
    "execution_mode": "fanout",
    "retry_policy": {"max_retries": 5, "max_reroutes": 3, "retry_codes": [429, 503],
                     "reroute_codes": [500, 502, 504]},
    "retry_at": 1763674210055,
    "idempotent_key": "order-1",
    "fallback_job": {
        "url": "https://backup-api.com/charge", "method": "POST",
        "trigger": {"type": "on_error", "codes": [500, 502, 503]},
        "fallback_job": {"url": "https://third.com", "trigger": {"type": "on_timeout",
                                                                 "timeout_ms": 500},
                         "fallback_job": {"url": "https://fourth.com", "trigger": {}}},
    },
    "on_success": {"url": "https://notify.com/send", "on_success": {"url": "https://a.com/t"}},
    "on_failure": {"url": "https://hooks.slack.com/x", "method": "POST"},
    "on_failure_timeout_ms": 30000,
}


def test_full_payload_parses_with_every_field():
    spec = parse_job(FULL, "cust_1")
    assert isinstance(spec, JobSpec)
    assert spec.customer_id == "cust_1"
    assert spec.domain == "https://api.stripe.com"
    assert spec.method == "POST"
    assert spec.voters == 3 and spec.webhook_quorum == 2
    assert spec.webhooks[1].has_quorum_vote is False
    assert spec.webhooks[2].has_quorum_vote is True  # default
    assert spec.webhooks[3].regions == ("iad", "lax")
    assert spec.regions == ("iad", "lax", "ord")
    assert spec.region_policy == "strict" and spec.execution_mode == "fanout"
    assert spec.retry_policy.max_retries == 5 and spec.retry_policy.max_attempts == 9
    chain = spec.fallback_chain()
    assert [f.url for f in chain] == ["https://backup-api.com/charge", "https://third.com",
                                      "https://fourth.com"]
    assert chain[0].trigger.type == "on_error" and chain[0].trigger.codes == (500, 502, 503)
    assert chain[1].trigger.type == "on_timeout" and chain[1].trigger.timeout_ms == 500
    assert chain[2].trigger.type == "any"
    assert spec.on_success.on_success.url == "https://a.com/t"
    assert spec.on_failure.method == "POST" and spec.on_failure_timeout_ms == 30000
    assert spec.on_success.customer_id == "cust_1"


def test_round_trip_is_identity():
    assert parse_job(FULL, "c").to_payload() == FULL
    minimal = {"url": "https://a.com", "method": "GET"}
    assert parse_job(minimal, "c").to_payload() == minimal


def test_defaults():
    spec = parse_job({"url": "https://a.com"}, "c")
    assert spec.method == "GET" and spec.headers == {} and spec.body is None
    assert spec.webhooks == () and spec.webhook_quorum == 1
    assert spec.regions == () and spec.region_policy == "fallback"
    assert spec.execution_mode == "race"
    rp = spec.retry_policy
    assert (rp.max_retries, rp.max_reroutes, rp.retry_codes, rp.reroute_codes) == (
        3, 2, (429, 503), (500, 502, 504))
    assert spec.idempotent_key is None and spec.retry_at is None
    assert spec.effective_trigger.type == "any"


def test_partial_retry_policy_fills_defaults_and_round_trips():
    spec = parse_job({"url": "https://a.com", "retry_policy": {"max_retries": 0}}, "c")
    assert spec.retry_policy.max_retries == 0 and spec.retry_policy.max_reroutes == 2
    assert spec.to_payload()["retry_policy"] == {"max_retries": 0}


def test_one_code_list_overrides_the_other_lists_default():
    rp = parse_job({"url": A, "retry_policy": {"retry_codes": [500, 429]}}, "c").retry_policy
    assert rp.retry_codes == (500, 429) and rp.reroute_codes == (502, 504)
    rp = parse_job({"url": A, "retry_policy": {"reroute_codes": [503]}}, "c").retry_policy
    assert rp.retry_codes == (429,) and rp.reroute_codes == (503,)


def test_camel_case_aliases_from_node_and_go_sdks():
    payload = {
        "url": "https://a.com", "method": "post",
        "webhooks": [{"url": "https://h.com", "hasQuorumVote": True}],
        "webhookQuorum": 1, "regionPolicy": "fallback", "executionMode": "race",
        "retryPolicy": {"maxRetries": 1, "maxReroutes": 0, "retryCodes": [429],
                        "rerouteCodes": [502]},
        "idempotentKey": "k", "retryAt": 5,
        "fallbackJob": {"url": "https://b.com", "trigger": {"type": "on_timeout",
                                                            "timeoutMs": 100},
                        "fallbackJob": {"url": "https://c.com"}},
        "onSuccess": {"url": "https://d.com"}, "onFailure": {"url": "https://e.com"},
        "onFailureTimeoutMs": 10,
    }
    spec = parse_job(payload, "c")
    assert spec.method == "POST"
    assert spec.retry_policy.retry_codes == (429,) and spec.retry_policy.reroute_codes == (502,)
    assert spec.fallback_job.trigger.timeout_ms == 100
    assert spec.fallback_job.fallback_job.url == "https://c.com"
    assert spec.on_failure_timeout_ms == 10 and spec.idempotent_key == "k"
    canonical = spec.to_payload()
    assert "fallback_job" in canonical and "fallbackJob" not in canonical
    assert canonical["retry_policy"]["max_retries"] == 1
    assert parse_job(canonical, "c") == spec


def test_hedge_mode_with_delay():
    spec = parse_job({"url": "https://a.com", "execution_mode": "hedge", "hedge_delay_ms": 250,
                      "regions": ["iad", "ord"]}, "c")
    assert spec.execution_mode == "hedge" and spec.hedge_delay_ms == 250
    assert parse_job({"url": "https://a.com", "execution_mode": "hedge"}, "c").hedge_delay_ms == 100


@pytest.mark.parametrize("url,domain", [
    ("https://api.stripe.com/v1/x?y=1", "https://api.stripe.com"),
    ("HTTPS://API.Stripe.com:443/x", "https://api.stripe.com"),
    ("http://localhost:8080/a", "http://localhost:8080"),
    ("http://example.com:80", "http://example.com"),
    ("https://[::1]:8443/", "https://[::1]:8443"),
])
def test_domain_is_scheme_host_port(url, domain):
    assert domain_of(url) == domain
    assert parse_job({"url": url}, "c").domain == domain


def _with(path, value):
    """FULL with the value at ``path`` (a tuple of keys/indices) replaced (or deleted)."""
    doc = copy.deepcopy(FULL)
    node = doc
    for seg in path[:-1]:
        node = node[seg]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


_DELETE = object()
A = "https://a.com"
DEEP = {"url": A}
for _ in range(MAX_NESTING):
    DEEP = {"url": A, "on_success": DEEP}

BAD = [
    # (id, payload, expected path, reason fragment)
    ("not_an_object", ["url"], "$", "expected an object"),
    ("missing_url", {"method": "GET"}, "$.url", "required"),
    ("url_not_string", {"url": 5}, "$.url", "expected `str`"),
    ("url_empty", {"url": ""}, "$.url", "non-empty"),
    ("url_ftp", {"url": "ftp://a.com/x"}, "$.url", "http or https"),
    ("url_no_scheme", {"url": "a.com/x"}, "$.url", "http or https"),
    ("url_no_host", {"url": "https:///x"}, "$.url", "no host"),
    ("url_whitespace", {"url": "https://a.com/x y"}, "$.url", "whitespace"),
    ("url_bad_port", {"url": "https://a.com:99999/"}, "$.url", "not a valid URL"),
    ("url_too_long", {"url": "https://a.com/" + "x" * 9000}, "$.url", "longer than"),
    ("method_unknown", {"url": A, "method": "FETCH"}, "$.method", "unknown HTTP method"),
    ("method_not_string", {"url": A, "method": 1}, "$.method", "expected `str`"),
    ("headers_not_object", {"url": A, "headers": ["a"]}, "$.headers", "expected `object"),
    ("header_value_int", {"url": A, "headers": {"X-A": 1}}, "$.headers.X-A", "strings"),
    ("header_name_bad", {"url": A, "headers": {"Bad Name": "v"}}, "$.headers.Bad Name", "token"),
    ("header_crlf", {"url": A, "headers": {"X": "a\r\nEvil: 1"}}, "$.headers.X", "CR"),
    ("body_not_string", {"url": A, "body": {"a": 1}}, "$.body", "expected `str"),
    ("body_oversized", {"url": A, "body": "x" * (MAX_BODY_BYTES + 1)}, "$.body", "larger than"),
    ("metadata_not_object", {"url": A, "metadata": "x"}, "$.metadata", "expected `object"),
    ("webhooks_not_array", {"url": A, "webhooks": {"url": A}}, "$.webhooks", "expected `array"),
    ("webhook_missing_url", {"url": A, "webhooks": [{"regions": ["iad"]}]},
     "$.webhooks[0].url", "required"),
    ("webhook_url_bad", {"url": A, "webhooks": [{"url": "mailto:x@y.z"}]},
     "$.webhooks[0].url", "http or https"),
    ("webhook_vote_not_bool", {"url": A, "webhooks": [{"url": A, "has_quorum_vote": "yes"}]},
     "$.webhooks[0].has_quorum_vote", "expected `bool"),
    ("webhook_unknown_key", {"url": A, "webhooks": [{"url": A, "secret": "x"}]},
     "$.webhooks[0].secret", "unknown field"),
    ("webhook_regions_bad", {"url": A, "webhooks": [{"url": A, "regions": ["IAD"]}]},
     "$.webhooks[0].regions[0]", "region names"),
    ("quorum_zero", {"url": A, "webhooks": [{"url": A}], "webhook_quorum": 0},
     "$.webhook_quorum", "at least 1"),
    ("quorum_negative", {"url": A, "webhook_quorum": -1}, "$.webhook_quorum", "at least 1"),
    ("quorum_above_voters", _with(("webhook_quorum",), 4), "$.webhook_quorum", "exceeds"),
    ("quorum_without_webhooks", {"url": A, "webhook_quorum": 2}, "$.webhook_quorum", "exceeds"),
    ("quorum_explicit_no_voters", {"url": A, "webhooks": [{"url": A, "has_quorum_vote": False}],
                                   "webhook_quorum": 1},
     "$.webhook_quorum", "exceeds the number of voting webhooks (0)"),
    ("quorum_bool", {"url": A, "webhook_quorum": True}, "$.webhook_quorum", "expected `int"),
    ("quorum_string", {"url": A, "webhookQuorum": "2"}, "$.webhookQuorum", "expected `int"),
    ("regions_not_list", {"url": A, "regions": "iad"}, "$.regions", "expected `array"),
    ("regions_duplicate", {"url": A, "regions": ["iad", "iad"]}, "$.regions[1]", "twice"),
    ("region_item_not_str", {"url": A, "regions": ["iad", 3]}, "$.regions[1]", "expected `str`"),
    ("region_policy_unknown", {"url": A, "region_policy": "nearest"}, "$.region_policy",
     "unknown region_policy"),
    ("execution_mode_unknown", {"url": A, "execution_mode": "broadcast"}, "$.execution_mode",
     "unknown execution_mode"),
    ("hedge_delay_without_hedge", {"url": A, "hedge_delay_ms": 10}, "$.hedge_delay_ms",
     "only valid"),
    ("hedge_delay_negative", {"url": A, "execution_mode": "hedge", "hedge_delay_ms": -5},
     "$.hedge_delay_ms", "between 0"),
    ("retry_policy_not_object", {"url": A, "retry_policy": [3]}, "$.retry_policy",
     "expected an object"),
    ("max_retries_negative", _with(("retry_policy", "max_retries"), -1),
     "$.retry_policy.max_retries", "between 0 and 100"),
    ("max_retries_huge", {"url": A, "retry_policy": {"max_retries": 1000}},
     "$.retry_policy.max_retries", "between 0 and 100"),
    ("max_reroutes_negative", {"url": A, "retryPolicy": {"maxReroutes": -2}},
     "$.retryPolicy.maxReroutes", "between 0 and 100"),
    ("max_retries_float", {"url": A, "retry_policy": {"max_retries": 2.5}},
     "$.retry_policy.max_retries", "expected `int"),
    ("retry_code_too_low", {"url": A, "retry_policy": {"retry_codes": [99]}},
     "$.retry_policy.retry_codes[0]", "between 100 and 599"),
    ("retry_code_too_high", {"url": A, "retry_policy": {"reroute_codes": [500, 600]}},
     "$.retry_policy.reroute_codes[1]", "between 100 and 599"),
    ("retry_code_success", {"url": A, "retry_policy": {"retry_codes": [200]}},
     "$.retry_policy.retry_codes[0]", "success status"),
    ("retry_policy_unknown_key", {"url": A, "retry_policy": {"backoff": "exp"}},
     "$.retry_policy.backoff", "unknown field"),
    ("trigger_type_unknown", _with(("fallback_job", "trigger"), {"type": "on_success"}),
     "$.fallback_job.trigger.type", "unknown trigger type"),
    ("trigger_code_wrong_type", _with(("fallback_job", "trigger", "codes"), [500, "502"]),
     "$.fallback_job.trigger.codes[1]", "expected `int`"),
    ("trigger_code_out_of_range", _with(("fallback_job", "trigger", "codes"), [500, 1000]),
     "$.fallback_job.trigger.codes[1]", "between 100 and 599"),
    ("trigger_on_error_no_codes", _with(("fallback_job", "trigger"), {"type": "on_error"}),
     "$.fallback_job.trigger.codes", "non-empty"),
    ("trigger_on_timeout_no_ms", {"url": A, "fallback_job": {"url": A, "trigger": {
        "type": "on_timeout"}}}, "$.fallback_job.trigger.timeout_ms", "needs timeout_ms"),
    ("trigger_timeout_zero", {"url": A, "fallback_job": {"url": A, "trigger": {
        "type": "on_timeout", "timeout_ms": 0}}}, "$.fallback_job.trigger.timeout_ms",
     "between 1"),
    ("trigger_mixed_fields", {"url": A, "fallback_job": {"url": A, "trigger": {
        "type": "on_timeout", "timeout_ms": 5, "codes": [500]}}},
     "$.fallback_job.trigger.codes", "not allowed"),
    ("trigger_codes_without_type", {"url": A, "fallback_job": {"url": A, "trigger": {
        "codes": [500]}}}, "$.fallback_job.trigger.type", "required"),
    ("trigger_on_top_level", {"url": A, "trigger": {}}, "$.trigger", "only valid inside"),
    ("trigger_in_on_success", {"url": A, "on_success": {"url": A, "trigger": {}}},
     "$.on_success.trigger", "only valid inside"),
    ("trigger_unknown_key", {"url": A, "fallbackJob": {"url": A, "trigger": {"delay": 1}}},
     "$.fallbackJob.trigger.delay", "unknown field"),
    ("fallback_not_object", {"url": A, "fallback_job": "https://b.com"}, "$.fallback_job",
     "expected an object"),
    ("nested_fallback_bad_url", {"url": A, "fallback_job": {"url": A, "fallback_job": {
        "url": "nope"}}}, "$.fallback_job.fallback_job.url", "http or https"),
    ("nesting_too_deep", {"url": A, "on_success": DEEP}, "$" + ".on_success" * (MAX_NESTING + 1),
     "nested deeper"),
    ("on_failure_timeout_without_on_failure", {"url": A, "on_failure_timeout_ms": 100},
     "$.on_failure_timeout_ms", "requires on_failure"),
    ("on_failure_timeout_negative", {"url": A, "on_failure": {"url": A},
                                     "on_failure_timeout_ms": -1},
     "$.on_failure_timeout_ms", "between 1"),
    ("idempotent_key_empty", {"url": A, "idempotent_key": ""}, "$.idempotent_key", "1 to 256"),
    ("idempotent_key_long", {"url": A, "idempotent_key": "k" * 300}, "$.idempotent_key",
     "1 to 256"),
    ("idempotent_key_int", {"url": A, "idempotent_key": 42}, "$.idempotent_key",
     "expected `str"),
    ("retry_at_negative", {"url": A, "retry_at": -1}, "$.retry_at", "between 0"),
    ("retry_at_string", {"url": A, "retryAt": "soon"}, "$.retryAt", "expected `int"),
    ("unknown_top_level_key", {"url": A, "webhook_url": A}, "$.webhook_url", "unknown field"),
    ("alias_given_twice", {"url": A, "fallback_job": {"url": A}, "fallbackJob": {"url": A}},
     "$.fallbackJob", "given twice"),
    ("non_string_key", {"url": A, 5: "x"}, "$", "keys must be strings"),
    ("metadata_not_json", {"url": A, "metadata": {"s": object()}}, "$.metadata",
     "JSON-serialisable"),
]


@pytest.mark.parametrize("name,payload,path,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_path_and_reason(name, payload, path, reason):
    with pytest.raises(SpecError) as info:
        parse_job(payload, "cust")
    assert info.value.path == path, str(info.value)
    assert reason in info.value.reason, str(info.value)


def test_at_least_thirty_distinct_bad_inputs():
    assert len({b[0] for b in BAD}) >= 30


@pytest.mark.parametrize("customer", ["", None, 5, "a\x00b"])
def test_bad_customer_id(customer):
    with pytest.raises(SpecError) as info:
        parse_job({"url": A}, customer)
    assert info.value.path == "customer_id"


def test_nesting_at_the_limit_is_accepted():
    spec = parse_job(DEEP, "c")
    depth = 0
    while spec.on_success is not None:
        spec, depth = spec.on_success, depth + 1
    assert depth == MAX_NESTING


def test_spec_error_is_a_value_error_with_message():
    with pytest.raises(ValueError, match=r"^\$\.url: "):
        parse_job({"url": 1}, "c")


def test_null_fields_mean_absent():
    spec = parse_job({"url": A, "body": None, "retry_policy": None, "fallback_job": None}, "c")
    assert spec.body is None and spec.fallback_job is None
    assert spec.to_payload() == {"url": A}


def test_sdk_shapes_the_stricter_rules_used_to_reject():
    """The SDK omits webhook_quorum when it is 1 and lets the two code lists share a code."""
    hooks = [{"url": A, "has_quorum_vote": False}, {"url": A + "/2", "has_quorum_vote": False}]
    spec = parse_job({"url": A, "webhooks": hooks}, "c")
    assert spec.webhook_quorum == 1 and "webhook_quorum" not in spec.to_payload()
    payload = {"url": A, "retry_policy": {"retry_codes": [503, 500], "reroute_codes": [500, 502]}}
    spec = parse_job(payload, "c")
    assert spec.to_payload() == payload
    assert 500 in spec.retry_policy.retry_codes and 500 in spec.retry_policy.reroute_codes


@pytest.mark.parametrize("url", ["https://API.Example.com/x", "https://api.example.com./x",
                                 "https://api.example.com:443/x", "HTTPS://api.example.com"])
def test_one_host_is_one_domain_however_it_is_spelled(url):
    assert parse_job({"url": url}, "c").domain == "https://api.example.com"


def test_unicode_and_punycode_hosts_are_one_domain():
    a = parse_job({"url": "https://bücher.example/x"}, "c").domain
    b = parse_job({"url": "https://xn--bcher-kva.example/x"}, "c").domain
    assert a == b == "https://xn--bcher-kva.example"


@pytest.mark.parametrize("url", ["https://./x", "https://ü" + "a" * 70 + ".example/"])
def test_hosts_idna_cannot_encode_are_refused(url):
    with pytest.raises(SpecError) as e:
        parse_job({"url": url}, "c")
    assert e.value.path == "$.url"
