"""Webhook payloads, rounds, retries, 410 / 4xx, region racing, signing, quorum."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.signing import verify_webhook_signature
from engine.spec import WebhookSpec
from engine.webhooks import (
    DEFAULT_SCHEDULE_US,
    HookOutcome,
    QuorumTracker,
    WebhookFanout,
    classify_webhook,
    webhook_payload,
)

S = 1_000_000
SECRET = "whsec_0123456789abcdef"


def test_payload_shape_success_and_failure():
    ok = json.loads(webhook_payload("job_1_1", "k", True, 200, {"content-type": "a/b"}, "x",
                                    {"m": 1}))
    assert ok == {"job_id": "job_1_1", "idempotent_key": "k", "status": "success",
                  "response": {"status_code": 200, "headers": {"content-type": "a/b"},
                               "body": "x"}, "metadata": {"m": 1}}
    bad = json.loads(webhook_payload("j", "k", False, 404, None, None, {}, "upstream returned 404"))
    assert bad["status"] == "failed" and bad["error"] == "upstream returned 404"
    assert bad["response"] == {"status_code": 404, "headers": {}, "body": ""}


@pytest.mark.parametrize("status,error,outcome", [
    (200, None, HookOutcome.ACK), (204, None, HookOutcome.ACK), (410, None, HookOutcome.GONE),
    (400, None, HookOutcome.REJECTED), (401, None, HookOutcome.REJECTED),
    (404, None, HookOutcome.REJECTED), (408, None, HookOutcome.RETRY),
    (429, None, HookOutcome.RETRY), (500, None, HookOutcome.RETRY),
    (503, None, HookOutcome.RETRY), (None, "timeout", HookOutcome.RETRY),
    (None, "connect", HookOutcome.RETRY), (302, None, HookOutcome.RETRY),
])
def test_classify_webhook(status, error, outcome):
    assert classify_webhook(status, error) is outcome


def hooks(*specs):
    return [WebhookSpec(url=u, regions=r, has_quorum_vote=v) for u, r, v in specs]


def test_default_schedule():
    assert DEFAULT_SCHEDULE_US == (0, S, 5 * S, 30 * S, 120 * S, 600 * S, 1800 * S, 3600 * S)


def test_retry_schedule_then_exhausted_each_attempt_resigned():
    f = WebhookFanout("j", hooks(("https://h.com", None, True)), 1, b"{}", "iad", SECRET)
    sends, timers = f.start(10 * S)
    assert timers == [] and len(sends) == 1 and sends[0].region == "iad"
    now, seen_t = 10 * S, set()
    for k in range(1, len(DEFAULT_SCHEDULE_US)):
        assert verify_webhook_signature(b"{}", sends[0].headers["X-EZThrottle-Signature"],
                                        SECRET, now=now // S) == (True, "valid")
        seen_t.add(sends[0].headers["X-EZThrottle-Signature"].split(",")[0])
        assert sends[0].headers["X-EZThrottle-Event-Id"] == "evt_j_0"
        timers = f.on_result(0, k - 1, 503, None, now)
        assert timers == [(now + DEFAULT_SCHEDULE_US[k], 0)]
        now = timers[0][0]
        sends = f.on_timer(0, now)
    assert len(seen_t) == len(DEFAULT_SCHEDULE_US) - 1  # each attempt has its own timestamp
    assert f.on_result(0, 7, None, "timeout", now) == []
    assert f.status == "undelivered" and f.done and f.attempts == 8


def test_410_stops_and_other_4xx_is_final():
    f = WebhookFanout("j", hooks(("https://a.com", None, True), ("https://b.com", None, True)),
                      1, b"{}", "iad")
    f.start(0)
    assert f.on_result(0, 0, 410, None, 0) == [] and f.hooks[0].state == "gone"
    assert f.status == "delivering"
    assert f.on_result(1, 0, 400, None, 0) == [] and f.hooks[1].state == "rejected"
    assert f.status == "undelivered" and f.done


def test_region_race_first_ack_wins_and_round_needs_all_failures():
    f = WebhookFanout("j", hooks(("https://a.com", ("iad", "lax"), True)), 1, b"{}", "ord")
    sends, _ = f.start(0)
    assert sorted(s.region for s in sends) == ["iad", "lax"]
    assert f.on_result(0, 0, 503, None, 1) == []  # one region failed: wait for the other
    assert f.on_result(0, 0, 200, None, 2) == []
    assert f.status == "delivered" and f.hooks[0].state == "acked"
    assert f.on_result(0, 0, 200, None, 3) == []  # late answers change nothing


def test_round_of_all_failures_schedules_retry_and_gone_beats_retry():
    f = WebhookFanout("j", hooks(("https://a.com", ("iad", "lax"), True)), 1, b"{}", "ord")
    f.start(0)
    f.on_result(0, 0, 503, None, 1)
    assert f.on_result(0, 0, None, "timeout", 2) == [(2 + S, 0)]
    f.on_timer(0, 2 + S)
    f.on_result(0, 1, 503, None, 3 + S)
    assert f.on_result(0, 1, 410, None, 4 + S) == [] and f.hooks[0].state == "gone"


def test_nonzero_first_delay_uses_timers():
    f = WebhookFanout("j", hooks(("https://a.com", None, True)), 1, b"{}", "iad",
                      schedule=(S, 2 * S))
    sends, timers = f.start(5)
    assert sends == [] and timers == [(S + 5, 0)]


def test_unsigned_without_secret():
    f = WebhookFanout("j", hooks(("https://a.com", None, True)), 1, b"{}", "iad")
    sends, _ = f.start(0)
    assert "X-EZThrottle-Signature" not in sends[0].headers


def test_non_voter_never_counts():
    q = QuorumTracker([True, False], 1)
    q.ack(1)
    assert q.status == "delivering"
    q.fail(0)
    assert q.status == "undelivered"
    q.ack(0)
    assert q.status == "undelivered"  # final: never flips


def test_quorum_rejects_impossible_values():
    with pytest.raises(ValueError):
        QuorumTracker([True], 2)


@given(st.lists(st.booleans(), min_size=1, max_size=6).filter(any), st.data())
def test_quorum_status_matches_definition_and_never_flips(voters, data):
    n = sum(voters)
    quorum = data.draw(st.integers(1, n))
    q = QuorumTracker(voters, quorum)
    order = data.draw(st.permutations(range(len(voters))))
    acked, failed, final = set(), set(), None
    for i in order:
        if data.draw(st.booleans()):
            q.ack(i)
            if voters[i]:
                acked.add(i)
        else:
            q.fail(i)
            if voters[i]:
                failed.add(i)
        if len(acked) >= quorum and final is None:
            expected = "delivered"
        elif n - len(failed) < quorum and final is None:
            expected = "undelivered"
        else:
            expected = final or "delivering"
        assert q.status == expected
        if q.status != "delivering":
            final = final or q.status
