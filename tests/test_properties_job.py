"""A stateful machine over one JobMachine: random permits, answers, timers, webhook results,
region failures and cancels, for race / fanout / hedge jobs with fallback arms.

Invariants after every step: attempt bounds per branch; at most one winner, and the reported
response is the winner's; a cancelled branch starts no new attempt; duplicate executions are
counted exactly; one terminal status, and nothing after Finished. Liveness: while unfinished,
some action is always possible (the machine never waits on nothing).
"""

from driver import Script
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

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
        p["fallback_job"] = {
            "url": "https://backup.example.com/y",
            "trigger": draw(st.sampled_from([{}, {"type": "on_error", "codes": [500, 404]},
                                             {"type": "on_timeout", "timeout_ms": 700}])),
            "execution_mode": draw(st.sampled_from(["race", "fanout", "hedge"])),
            "regions": draw(st.lists(st.sampled_from(REGIONS), max_size=2, unique=True))}
    return p


class JobLifecycle(RuleBasedStateMachine):
    @initialize(payload=payloads())
    def setup(self, payload):
        self.s = Script(payload, regions=REGIONS, schedule=(0, 1000, 2000))
        self.permits: list[int] = []
        self.flights: dict[tuple[int, int], StartAttempt] = {}
        self.timers: list[SetTimer] = []
        self.sends: list[SendWebhook] = []
        self.cancelled: set[int] = set()
        self.winner = None
        self.expected_duplicates = 0
        self.absorb(self.s.submit())

    def absorb(self, cmds):
        for c in cmds:
            if isinstance(c, AskPermit):
                self.permits.append(c.branch)
            elif isinstance(c, StartAttempt):
                assert c.branch not in self.cancelled, "a cancelled branch started an attempt"
                self.flights[(c.branch, c.attempt)] = c
            elif isinstance(c, SetTimer):
                self.timers.append(c)
            elif isinstance(c, SendWebhook):
                self.sends.append(c)
            elif isinstance(c, CancelBranch):
                self.cancelled.add(c.branch)
                if not c.in_flight:
                    while c.branch in self.permits:
                        self.permits.remove(c.branch)

    def finished(self):
        return self.s.outcome is not None

    @precondition(lambda self: self.permits and not self.finished())
    @rule(data=st.data())
    def grant(self, data):
        b = self.permits.pop(data.draw(st.integers(0, len(self.permits) - 1)))
        self.absorb(self.s.feed(PermitGranted(b)))

    @precondition(lambda self: self.flights and not self.finished())
    @rule(data=st.data(), answer=st.sampled_from([200, 201, 429, 500, 502, 503, 404, "timeout"]))
    def answer(self, data, answer):
        key = data.draw(st.sampled_from(sorted(self.flights)))
        start = self.flights.pop(key)
        ok = isinstance(answer, int) and 200 <= answer < 300
        decided = self.s.m.succeeded is not None
        if ok:
            if self.winner is None and not decided:
                self.winner = (answer, start.region, start.branch)
            else:
                w = self.s.m.winner
                same_fanout = (w is not None and self.s.m.branches[key[0]].arm == w.arm
                               and self.s.m.arms[w.arm].spec.execution_mode == "fanout")
                if not same_fanout:
                    self.expected_duplicates += 1
        ev = (AttemptFinished(key[0], key[1], error=answer) if isinstance(answer, str)
              else AttemptFinished(key[0], key[1], status=answer, body=f"{start.region}"))
        self.absorb(self.s.feed(ev))

    @precondition(lambda self: self.timers and not self.finished())
    @rule()
    def fire_timer(self):
        t = min(self.timers, key=lambda t: t.at)
        self.timers.remove(t)
        self.s.now = max(self.s.now, t.at)
        self.absorb(self.s.feed(TimerFired(t.token)))

    @precondition(lambda self: self.sends and not self.finished())
    @rule(data=st.data(), status=st.sampled_from([200, 500, 410, 400]))
    def webhook(self, data, status):
        w = self.sends.pop(data.draw(st.integers(0, len(self.sends) - 1)))
        self.absorb(self.s.feed(WebhookResult(w.hook, w.round, w.region, status=status)))

    @precondition(lambda self: not self.finished())
    @rule(region=st.sampled_from(REGIONS))
    def region_down(self, region):
        self.s.ctx.health.mark_down(region, self.s.now)
        for k in [k for k, v in self.flights.items() if v.region == region]:
            del self.flights[k]  # the region died with its requests
        self.absorb(self.s.feed(RegionDown(region)))

    @precondition(lambda self: not self.finished())
    @rule()
    def cancel(self):
        self.absorb(self.s.feed(Cancel()))

    @precondition(lambda self: self.finished())
    @rule(event=st.sampled_from([Cancel(), PermitGranted(0), TimerFired(("hedge", 0)),
                                 RegionDown("iad")]))
    def nothing_after_finished(self, event):
        assert self.s.feed(event) == []

    @invariant()
    def live(self):
        if not self.finished():
            assert self.permits or self.flights or self.timers or self.sends, \
                f"stuck in {self.s.m.status}"

    @invariant()
    def attempt_bounds(self):
        for b in self.s.m.branches:
            policy = self.s.m.arms[b.arm].spec.retry_policy
            assert b.attempts <= 1 + policy.max_retries + policy.max_reroutes

    @invariant()
    def one_decision_and_finished_last(self):
        statuses = [c.status for c in self.s.of(StatusChanged)]
        assert statuses.count("succeeded") + statuses.count("failed") <= 1
        fins = [i for i, c in enumerate(self.s.log) if isinstance(c, Finished)]
        assert len(fins) <= 1 and (not fins or fins[0] == len(self.s.log) - 1)

    @invariant()
    def winner_is_reported_and_duplicates_are_exact(self):
        o = self.s.outcome
        if o is None:
            return
        if o.succeeded:
            assert self.winner is not None
            assert (o.response_status, o.winner_region) == self.winner[:2]
        assert o.duplicate_executions == self.expected_duplicates


TestJobLifecycle = JobLifecycle.TestCase
