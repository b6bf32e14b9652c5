"""Hypothesis drives a JobMachine with random answers in random orders.

Invariants: no branch exceeds 1 + max_retries + max_reroutes attempts; at most one winner and the
reported response is the winner's; exactly one Finished and nothing after it; and liveness: while
the job is unfinished there is always something pending that can move it on.
"""

from driver import Script
from hypothesis import given
from hypothesis import strategies as st

from engine.events import (
    AskPermit,
    AttemptFinished,
    Cancel,
    CancelBranch,
    Finished,
    PermitGranted,
    RegionDown,
    SetTimer,
    StartAttempt,
    StatusChanged,
    TimerFired,
    WebhookResult,
)
from engine.webhooks import SendWebhook

REGIONS = ("iad", "lax", "ord", "fra")
answers = st.sampled_from([200, 201, 429, 500, 502, 503, 504, 404, 410, "timeout", "connect"])


@st.composite
def payloads(draw):
    p = {"url": "https://api.example.com/x",
         "regions": draw(st.lists(st.sampled_from(REGIONS), max_size=3, unique=True)),
         "region_policy": draw(st.sampled_from(["fallback", "strict"])),
         "execution_mode": draw(st.sampled_from(["race", "fanout", "hedge"])),
         "retry_policy": {"max_retries": draw(st.integers(0, 3)),
                          "max_reroutes": draw(st.integers(0, 2))}}
    if draw(st.booleans()):
        n = draw(st.integers(1, 3))
        p["webhooks"] = [{"url": f"https://h{i}.com", "has_quorum_vote": i == 0 or draw(
            st.booleans())} for i in range(n)]
        voters = sum(1 for h in p["webhooks"] if h["has_quorum_vote"])
        p["webhook_quorum"] = draw(st.integers(1, voters))
    if draw(st.booleans()):
        trig = draw(st.sampled_from([{}, {"type": "on_error", "codes": [500, 404]},
                                     {"type": "on_timeout", "timeout_ms": 700}]))
        p["fallback_job"] = {"url": "https://backup.example.com/y", "trigger": trig,
                             "execution_mode": draw(st.sampled_from(["race", "hedge"])),
                             "regions": draw(st.lists(st.sampled_from(REGIONS), max_size=2,
                                                      unique=True))}
    return p


@given(payloads(), st.data())
def test_random_schedules_keep_the_invariants(payload, data):
    s = Script(payload, regions=REGIONS, schedule=(0, 1000, 2000))
    s.submit()
    permits, flights, timers, sends = [], {}, [], []
    winner_answer = None
    decided = False
    finished_at = None

    def absorb(cmds):
        nonlocal finished_at
        for c in cmds:
            assert finished_at is None, "command after Finished"
            if isinstance(c, AskPermit):
                permits.append(c.branch)
            elif isinstance(c, StartAttempt):
                flights[(c.branch, c.attempt)] = c
            elif isinstance(c, SetTimer):
                timers.append(c)
            elif isinstance(c, SendWebhook):
                sends.append(c)
            elif isinstance(c, Finished):
                finished_at = len(s.log)
            elif isinstance(c, CancelBranch) and not c.in_flight:
                while c.branch in permits:
                    permits.remove(c.branch)

    absorb(s.log)
    for _ in range(400):
        if finished_at is not None:
            break
        choices = (["permit"] * bool(permits) + ["answer"] * bool(flights)
                   + ["timer"] * bool(timers) + ["hook"] * bool(sends))
        assert choices, f"stuck: no pending action but not finished (status {s.m.status})"
        if data.draw(st.integers(0, 30)) == 0:
            choices.append("chaos")
        what = data.draw(st.sampled_from(choices))
        if what == "permit":
            b = permits.pop(data.draw(st.integers(0, len(permits) - 1)))
            absorb(s.feed(PermitGranted(b)))
        elif what == "answer":
            key = data.draw(st.sampled_from(sorted(flights)))
            start = flights.pop(key)
            a = data.draw(answers)
            ev = (AttemptFinished(key[0], key[1], error=a) if isinstance(a, str)
                  else AttemptFinished(key[0], key[1], status=a, body=f"{start.region}:{a}"))
            if isinstance(a, int) and 200 <= a < 300 and not decided and winner_answer is None:
                winner_answer = (a, start.region, start.branch)
            absorb(s.feed(ev))
        elif what == "timer":
            t = min(timers, key=lambda t: t.at)
            timers.remove(t)
            s.now = max(s.now, t.at)
            absorb(s.feed(TimerFired(t.token)))
        elif what == "hook":
            w = sends.pop(data.draw(st.integers(0, len(sends) - 1)))
            st_ = data.draw(st.sampled_from([200, 500, 410, 400]))
            absorb(s.feed(WebhookResult(w.hook, w.round, w.region, status=st_)))
        else:
            if data.draw(st.booleans()):
                region = data.draw(st.sampled_from(REGIONS))
                s.ctx.health.mark_down(region, s.now)
                lost = [k for k, v in flights.items() if v.region == region]
                for k in lost:
                    del flights[k]  # the region died with its requests
                absorb(s.feed(RegionDown(region)))
            else:
                absorb(s.feed(Cancel()))
        decided = decided or any(isinstance(c, StatusChanged) and c.status in ("succeeded",
                                                                               "failed")
                                 for c in s.log)

    assert finished_at is not None, "did not finish within 400 steps"
    assert isinstance(s.log[-1], Finished) and len(s.of(Finished)) == 1
    statuses = [c.status for c in s.of(StatusChanged)]
    assert statuses.count("succeeded") + statuses.count("failed") == 1
    # attempt bound per branch
    for b in s.m.branches:
        policy = s.m.arms[b.arm].spec.retry_policy
        starts = [c for c in s.of(StartAttempt) if c.branch == b.id]
        assert len(starts) == b.attempts <= 1 + policy.max_retries + policy.max_reroutes
    o = s.outcome
    if o.succeeded:
        assert winner_answer is not None
        assert (o.response_status, o.winner_region) == winner_answer[:2]
        assert s.m.result.body == f"{winner_answer[1]}:{winner_answer[0]}"
    else:
        assert "succeeded" not in statuses
