"""JobMachine, rule by rule, through the scripted driver (no simulator, no real time)."""

import json

from driver import Script

from engine.events import (
    AskPermit,
    Cancel,
    CancelBranch,
    Finished,
    RegionDown,
    ReturnPermit,
    SetTimer,
    SpawnJob,
    StartAttempt,
)
from engine.signing import verify_webhook_signature
from engine.webhooks import SendWebhook

S = 1_000_000
A = "https://api.example.com/v1/x"
HOOK = [{"url": "https://app.com/hook"}]


def test_single_region_success_lifecycle_and_idempotency_header():
    s = Script({"url": A, "method": "POST", "body": "b", "headers": {"X": "1"}})
    cmds = s.submit()
    assert s.asks(cmds) == [AskPermit("job_0_1", 0, "https://api.example.com", "iad")]
    start = s.grant(0)[0]
    assert isinstance(start, StartAttempt) and start.region == "iad" and start.method == "POST"
    assert start.headers == {"X": "1", "Idempotency-Key": s.key} and start.body == "b"
    s.answer(0, 200)
    assert s.statuses() == ["queued", "dispatching", "succeeded"]
    o = s.outcome
    assert o.status == "succeeded" and o.succeeded and o.attempts == 1
    assert o.winner_region == "iad" and o.response_status == 200
    assert isinstance(s.log[-1], Finished)


def test_retry_in_region_with_backoff_then_success():
    s = Script({"url": A})
    s.submit()
    s.grant(0)
    cmds = s.answer(0, 503)
    # the backoff (constant 1 s in the driver's context) rides on the permit request
    assert s.asks(cmds) == [AskPermit("job_0_1", 0, "https://api.example.com", "iad", S)]
    assert s.of(SetTimer, cmds) == []
    s.now = S
    s.grant(0)
    s.answer(0, 200)
    assert s.outcome.attempts == 2 and s.outcome.winner_region == "iad"


def test_retry_after_is_honoured_exactly():
    s = Script({"url": A})
    s.submit()
    s.grant(0)
    s.now = 100
    cmds = s.answer(0, 429, headers={"retry-after": "7"})
    assert s.asks(cmds)[0].not_before == 100 + 7 * S


def test_reroute_code_moves_to_next_region_without_backoff():
    s = Script({"url": A, "regions": ["iad", "lax"], "execution_mode": "fanout"})
    s.submit()
    s.grant(0)
    cmds = s.answer(0, 502)
    assert s.asks(cmds) == [AskPermit("job_0_1", 0, "https://api.example.com", "ord")]
    # lax is busy with branch 1, so branch 0 went to ord (fallback policy: then any region)


def test_timeout_reroutes():
    s = Script({"url": A, "regions": ["iad", "lax"], "region_policy": "strict"})
    s.submit()
    s.grant(0)
    s.grant(1)
    s.answer(1, 200)
    assert s.outcome is None  # branch 0 still in flight: waiting for its answer
    s.answer(0, error="timeout")
    assert s.outcome.status == "succeeded" and s.outcome.duplicate_executions == 0


def test_final_failure_status_and_no_more_attempts():
    s = Script({"url": A})
    s.submit()
    s.grant(0)
    s.answer(0, 404)
    o = s.outcome
    assert o.status == "failed" and o.error == "upstream returned 404" and o.attempts == 1


def test_attempt_bound_one_plus_retries_plus_reroutes():
    s = Script({"url": A, "retry_policy": {"max_retries": 2, "max_reroutes": 1}})
    s.submit()
    for _ in range(10):
        if s.outcome:
            break
        s.grant(0)
        s.answer(0, 503)
        s.advance(s.now + 10 * S)
    assert s.outcome.status == "failed" and s.outcome.attempts == 4


def test_race_first_success_wins_losers_cancelled_and_duplicates_counted():
    s = Script({"url": A, "regions": ["iad", "lax", "ord"], "webhooks": HOOK})
    s.submit()
    assert [a.region for a in s.asks()] == ["iad", "lax", "ord"]
    assert s.statuses() == ["queued", "racing"]
    s.grant(0)
    s.grant(1)  # branch 2 still waits for a permit
    cmds = s.answer(1, 200, body="from-lax")
    cancels = s.of(CancelBranch, cmds)
    assert {(c.branch, c.in_flight) for c in cancels} == {(0, True), (2, False)}
    assert json.loads(s.of(SendWebhook)[0].body)["response"]["body"] == "from-lax"
    assert s.of(ReturnPermit, s.grant(2)) == [ReturnPermit("job_0_1", 2,
                                                           "https://api.example.com")]
    s.hook(0, 200)
    assert s.outcome is None  # branch 0's request is still out there
    s.answer(0, 200, body="from-iad")  # the loser also executed: a duplicate execution
    o = s.outcome
    assert o.status == "delivered" and o.winner_region == "lax" and o.duplicate_executions == 1


def test_race_only_one_winner_even_if_all_succeed():
    s = Script({"url": A, "regions": ["iad", "lax"]})
    s.submit()
    s.grant(0)
    s.grant(1)
    s.answer(0, 200)
    s.answer(1, 201)
    assert s.outcome.winner_region == "iad" and s.outcome.response_status == 200
    assert s.outcome.duplicate_executions == 1


def test_fanout_runs_every_branch_and_reports_first_success():
    s = Script({"url": A, "regions": ["iad", "lax"], "execution_mode": "fanout"})
    s.submit()
    s.grant(0)
    s.grant(1)
    assert s.of(CancelBranch, s.answer(1, 200)) == []
    assert s.statuses()[-1] == "succeeded" and s.outcome is None
    s.answer(0, 200)
    assert s.outcome.winner_region == "lax" and s.outcome.duplicate_executions == 0


def test_hedge_starts_next_region_only_after_delay():
    s = Script({"url": A, "regions": ["iad", "lax", "ord"], "execution_mode": "hedge",
                "hedge_delay_ms": 50})
    cmds = s.submit()
    assert [a.region for a in s.asks(cmds)] == ["iad"]
    assert s.of(SetTimer, cmds)[0].at == 50_000
    s.grant(0)
    assert [a.region for a in s.asks(s.advance(50_000))] == ["lax"]
    s.grant(1)
    s.answer(1, 200)
    assert s.advance(200_000) == []  # no third region after a winner
    s.answer(0, 500)
    assert s.outcome.winner_region == "lax"


def test_hedge_result_before_delay_means_no_hedge():
    s = Script({"url": A, "regions": ["iad", "lax"], "execution_mode": "hedge"})
    s.submit()
    s.grant(0)
    s.answer(0, 200)
    s.advance(10 * S)
    assert len(s.asks()) == 1 and s.outcome.attempts == 1


def test_hedge_final_failure_starts_next_region_at_once():
    s = Script({"url": A, "regions": ["iad", "lax"], "execution_mode": "hedge"})
    s.submit()
    s.grant(0)
    cmds = s.answer(0, 404)
    assert [a.region for a in s.asks(cmds)] == ["lax"]


def test_strict_with_no_healthy_listed_region_fails_region_unavailable():
    s = Script({"url": A, "regions": ["lax"], "region_policy": "strict"})
    s.ctx.health.mark_down("lax", 0)
    s.submit()
    assert s.outcome.status == "failed" and s.outcome.error == "region_unavailable"
    assert s.outcome.attempts == 0


def test_fallback_policy_substitutes_a_down_region():
    s = Script({"url": A, "regions": ["lax"]})
    s.ctx.health.mark_down("lax", 0)
    assert [a.region for a in s.asks(s.submit())] == ["iad"]


def test_region_down_recovers_waiting_and_in_flight_branches():
    s = Script({"url": A, "regions": ["iad", "lax"], "execution_mode": "fanout",
                "retry_policy": {"max_reroutes": 1}})
    s.submit()
    s.grant(0)  # branch 0 in flight in iad; branch 1 waits in lax
    s.ctx.health.mark_down("iad", 0)
    cmds = s.feed(RegionDown("iad"))
    assert [(a.branch, a.region) for a in s.asks(cmds)] == [(0, "ord")]  # rerouted
    s.ctx.health.mark_down("lax", 0)
    cmds = s.feed(RegionDown("lax"))
    # Branch 1 made no attempt, so moving it would cost nothing, but the only healthy region
    # (ord) is busy with branch 0: it fails with region_unavailable; the arm lives on.
    assert s.asks(cmds) == [] and s.m.branches[1].last_error == "region_unavailable"
    assert s.m.branches[0].attempts == 1 and s.m.branches[0].reroutes == 1
    s.grant(0)
    s.answer(0, 200)
    assert s.outcome.winner_region == "ord" and s.outcome.attempts == 2


def test_retry_at_delays_first_dispatch():
    s = Script({"url": A, "retry_at": 5000})  # unix ms 5000 = 5 s of virtual time
    cmds = s.submit()
    assert s.asks(cmds) == [] and s.of(SetTimer, cmds)[0].at == 5 * S
    assert len(s.asks(s.advance(5 * S))) == 1


def test_webhooks_signed_delivered_with_quorum():
    secret = "whsec_0123456789abcdef"
    s = Script({"url": A, "webhooks": [{"url": "https://a.com/h"},
                                       {"url": "https://b.com/h", "has_quorum_vote": False},
                                       {"url": "https://c.com/h"}],
                "webhook_quorum": 2, "metadata": {"order": 7}}, secret=secret)
    s.submit()
    s.now = 3 * S
    s.grant(0)
    s.answer(0, 200, body="paid", headers={"content-type": "application/json"})
    sends = s.of(SendWebhook)
    assert [x.url for x in sends] == ["https://a.com/h", "https://b.com/h", "https://c.com/h"]
    body = json.loads(sends[0].body)
    assert body == {"job_id": "job_0_1", "idempotent_key": s.key, "status": "success",
                    "response": {"status_code": 200,
                                 "headers": {"content-type": "application/json"},
                                 "body": "paid"}, "metadata": {"order": 7}}
    assert verify_webhook_signature(sends[0].body, sends[0].headers["X-EZThrottle-Signature"],
                                    secret, now=3) == (True, "valid")
    s.hook(0, 200)
    s.hook(1, 200)  # a non-voter
    assert s.statuses()[-1] == "delivering"
    s.hook(2, 204)
    assert s.outcome.status == "delivered" and s.outcome.webhook_attempts == 3


def test_undelivered_as_soon_as_quorum_unreachable():
    s = Script({"url": A, "webhooks": [{"url": "https://a.com"}, {"url": "https://b.com"}],
                "webhook_quorum": 2})
    s.submit()
    s.grant(0)
    s.answer(0, 200)
    s.hook(0, 410)
    assert s.statuses()[-1] == "undelivered"
    assert s.outcome is None  # webhook 1 is still being delivered
    s.hook(1, 200)
    assert s.outcome.status == "undelivered"


def test_failed_job_webhook_carries_error():
    s = Script({"url": A, "webhooks": HOOK})
    s.submit()
    s.grant(0)
    s.answer(0, 400, body="bad")
    body = json.loads(s.of(SendWebhook)[0].body)
    assert body["status"] == "failed" and body["error"] == "upstream returned 400"
    assert body["response"]["status_code"] == 400


def test_on_success_and_on_failure_children():
    s = Script({"url": A, "on_success": {"url": "https://s.com"},
                "on_failure": {"url": "https://f.com"}})
    s.submit()
    s.grant(0)
    s.answer(0, 200)
    assert [(c.relation, c.payload["url"]) for c in s.of(SpawnJob)] == [("on_success",
                                                                         "https://s.com")]
    f = Script({"url": A, "on_failure": {"url": "https://f.com"}})
    f.submit()
    f.grant(0)
    f.answer(0, 400)
    assert [(c.relation, c.payload["url"]) for c in f.of(SpawnJob)] == [("on_failure",
                                                                         "https://f.com")]


def test_on_failure_timeout_spawns_once_while_unfinished():
    s = Script({"url": A, "on_failure": {"url": "https://f.com"}, "on_failure_timeout_ms": 100})
    s.submit()
    s.grant(0)
    s.advance(100_000)
    assert len(s.of(SpawnJob)) == 1
    s.answer(0, 400)
    assert len(s.of(SpawnJob)) == 1 and s.outcome.status == "failed"


def test_fallback_on_error_fires_on_matching_code_and_reports_under_parent():
    s = Script({"url": A, "webhooks": HOOK, "fallback_job": {
        "url": "https://backup.com/x", "trigger": {"type": "on_error", "codes": [500]}}},
        regions=("iad",))
    s.submit()
    s.grant(0)
    cmds = s.answer(0, 500)  # only one region: a reroute code retries in place first
    assert [(a.region, a.not_before) for a in s.asks(cmds)] == [("iad", S)]
    for _ in range(3):
        s.now += S
        s.grant(0)
        cmds = s.answer(0, 500)
    assert [a.domain for a in s.asks(cmds)] == ["https://backup.com"]
    s.grant(1)
    s.answer(1, 200, body="backup")
    body = json.loads(s.of(SendWebhook)[0].body)
    assert body["job_id"] == "job_0_1" and body["response"]["body"] == "backup"
    assert s.outcome is None and s.statuses()[-1] == "delivering"
    s.hook(0, 200)
    assert s.outcome.winner_arm == 1 and s.outcome.status == "delivered"
    assert s.outcome.attempts == 5


def test_fallback_on_error_does_not_fire_on_other_codes():
    s = Script({"url": A, "fallback_job": {"url": "https://b.com",
                                           "trigger": {"type": "on_error", "codes": [500]}}})
    s.submit()
    s.grant(0)
    s.answer(0, 404)
    assert s.outcome.status == "failed" and len(s.asks()) == 1


def test_empty_trigger_fires_on_any_failure():
    s = Script({"url": A, "fallback_job": {"url": "https://b.com", "trigger": {}}})
    s.submit()
    s.grant(0)
    cmds = s.answer(0, 404)
    assert [a.domain for a in s.asks(cmds)] == ["https://b.com"]


def test_on_timeout_fallback_races_the_parent_and_chain_is_recursive():
    s = Script({"url": A, "fallback_job": {
        "url": "https://b.com", "trigger": {"type": "on_timeout", "timeout_ms": 500},
        "fallback_job": {"url": "https://c.com", "trigger": {"type": "on_timeout",
                                                             "timeout_ms": 300}}}})
    s.submit()
    s.grant(0)
    cmds = s.advance(500_000)
    assert [a.domain for a in s.asks(cmds)] == ["https://b.com"]
    s.grant(1)
    cmds = s.advance(800_000)  # c fires 300 ms after b started, b still running
    assert [a.domain for a in s.asks(cmds)] == ["https://c.com"]
    s.grant(2)
    s.answer(2, 200)
    assert s.m.winner.arm == 2
    cancelled = {c.branch for c in s.of(CancelBranch)}
    assert cancelled == {0, 1}
    s.answer(0, 500)
    s.answer(1, 200)
    assert s.outcome.duplicate_executions == 1 and s.outcome.winner_arm == 2


def test_on_timeout_does_not_fire_when_parent_finished():
    s = Script({"url": A, "fallback_job": {"url": "https://b.com",
                                           "trigger": {"type": "on_timeout", "timeout_ms": 5}}})
    s.submit()
    s.grant(0)
    s.answer(0, 200)
    assert s.outcome is not None
    assert s.advance(S) == []


def test_cancel_fails_the_job_and_nothing_follows_finished():
    s = Script({"url": A})
    s.submit()
    s.grant(0)
    s.feed(Cancel())
    assert s.outcome is None  # the request is in flight
    s.answer(0, 500)
    assert s.outcome.status == "failed" and s.outcome.error == "cancelled"
    assert s.feed(Cancel()) == [] and s.answer(0, 200) == []


def test_duplicate_submit_event_is_ignored():
    s = Script({"url": A})
    s.submit()
    assert s.submit() == []


def test_region_down_releases_a_cancelled_in_flight_loser():
    # Found by test_job_properties: a race loser cancelled while in flight in a region that then
    # went down was awaited forever, so the job never finished.
    s = Script({"url": A, "regions": ["iad", "ord"]})
    s.submit()
    s.grant(0)
    s.grant(1)
    s.answer(0, 200)
    assert s.outcome is None  # waiting for ord's in-flight loser
    s.ctx.health.mark_down("ord", 0)
    s.feed(RegionDown("ord"))
    assert s.outcome.status == "succeeded" and s.outcome.winner_region == "iad"


def test_resume_redelivers_a_decided_job_without_executing_it():
    s = Script({"url": A, "webhooks": HOOK})
    cmds = s.m.resume(True, 201, None, 5 * S)
    s.log.extend(cmds)
    assert s.of(StartAttempt) == [] and s.asks() == []
    body = json.loads(s.of(SendWebhook)[0].body)
    assert body["status"] == "success" and body["response"]["status_code"] == 201
    s.now = 5 * S
    s.hook(0, 200)
    assert s.outcome.status == "delivered" and s.outcome.attempts == 0
