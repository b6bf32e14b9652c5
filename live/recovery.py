"""Recovery: rebuild the live dam from its journal, then resume every unfinished job.

Replay feeds each unfinished job's machine its journaled events at their journaled times. The
machine is deterministic given those inputs (its random source is seeded by the job id), so it
reaches the state it had when the process stopped. Meanwhile a :class:`Pending` tracker follows
which of the machine's requests were still unanswered, and afterwards they are resumed:

=========================  ==================================================================
still unanswered           resumed as
=========================  ==================================================================
a permit request           asked again (a retry's ``not_before`` kept)
an attempt in flight       run again — same request, same ``Idempotency-Key`` — after a new
                           permit; it costs the job no retry (the machine never saw it end)
a cancelled loser in       reported lost (``error="reset"``): nobody waits for its answer
flight
a timer                    set again (fires at once if its time has passed)
a webhook round            delivered again, signed afresh
no event at all            the job is submitted now (its ``job`` row was committed, its
                           ``Submit`` was not)
=========================  ==================================================================

So delivery is **at-least-once**: an attempt or webhook in flight at a crash may be executed
twice (the upstream sees the same ``Idempotency-Key``; the receiver the same
``X-EZThrottle-Event-Id``). Limiter state (pace, breaker, Retry-After pauses) is not journaled:
after a restart each domain starts from its configured rate.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from engine.errors import CapReached, SecretError, SpecError
from engine.events import (
    AskPermit,
    AttemptFinished,
    CancelBranch,
    Finished,
    JobOutcome,
    PermitGranted,
    SetTimer,
    StartAttempt,
    Submit,
    TimerFired,
    WebhookResult,
)
from engine.job import BranchState, JobStatus
from engine.spec import decode_job_json, parse_job
from engine.webhooks import SendWebhook

from .journal import Accepted, JournalEntry, SecretDeleted, SecretSet
from .permits import Waiter

if TYPE_CHECKING:
    from .dam import LiveDam, LiveJob

__all__ = ["Pending", "recover"]


class Pending:
    """What one machine asked for and has not had an answer to, followed through a replay."""

    __slots__ = ("asks", "attempts", "finished", "hooks", "timers")

    def __init__(self) -> None:
        self.asks: dict[int, AskPermit] = {}
        self.attempts: dict[int, StartAttempt] = {}
        self.timers: dict[tuple, SetTimer] = {}
        self.hooks: dict[tuple[int, int, str], SendWebhook] = {}
        self.finished: JobOutcome | None = None

    def answered(self, event) -> None:
        t = type(event)
        if t is PermitGranted:
            self.asks.pop(event.branch, None)
        elif t is AttemptFinished:
            a = self.attempts.get(event.branch)
            if a is not None and a.attempt == event.attempt:
                del self.attempts[event.branch]
        elif t is TimerFired:
            self.timers.pop(tuple(event.token), None)
        elif t is WebhookResult:
            self.hooks.pop((event.hook, event.round, event.region), None)

    def asked(self, cmds: list) -> None:
        for c in cmds:
            t = type(c)
            if t is AskPermit:
                self.asks[c.branch] = c
            elif t is CancelBranch and not c.in_flight:
                self.asks.pop(c.branch, None)
            elif t is StartAttempt:
                self.attempts[c.branch] = c
            elif t is SetTimer:
                self.timers[tuple(c.token)] = c
            elif t is SendWebhook:
                self.hooks[(c.hook, c.round, c.region)] = c
            elif t is Finished:
                self.finished = c.outcome


def recover(dam: LiveDam, entries: list[JournalEntry]) -> int:
    """Replay ``entries`` into ``dam`` and resume its unfinished jobs; returns how many."""
    done_ids = {e.job_id for e in entries if e.kind == "done"}
    pending: dict[str, Pending] = {}
    owner: dict[str, str] = {}  # finished job -> customer
    for e in entries:
        r = e.record
        if type(r) is Accepted:
            if e.job_id in done_ids:
                owner[e.job_id] = r.customer_id
            _accepted(dam, e.job_id, r, e.at, e.job_id in done_ids, pending)
        elif type(r) is JobOutcome:
            job = dam.jobs.get(e.job_id)
            if job is not None:
                dam._retire(e.job_id, job, r, e.at)
            elif e.job_id in owner:
                dam.remember(e.job_id, owner[e.job_id], r, e.at)
            pending.pop(e.job_id, None)
        elif type(r) is SecretSet:
            dam.secrets.create(r.customer_id, r.primary, r.secondary)
        elif type(r) is SecretDeleted:
            with contextlib.suppress(SecretError):  # already absent
                dam.secrets.delete(r.customer_id)
        else:  # an engine event of a job
            job, p = dam.jobs.get(e.job_id), pending.get(e.job_id)
            if job is None or p is None:
                continue
            p.answered(r)
            p.asked(job.machine.handle(r, e.at))
    if entries:
        dam.clock.not_before(max(e.at for e in entries))
    now = dam.clock.now()
    for job_id, p in pending.items():
        job = dam.jobs.get(job_id)
        if job is not None:
            _resume(dam, job_id, job, p, now)
    return len(pending)


def _accepted(dam: LiveDam, job_id: str, r: Accepted, at: int, done: bool,
              pending: dict[str, Pending]) -> None:
    n = int(job_id.rsplit("_", 1)[1])
    dam.counter = max(dam.counter, n)
    dam.dedupe.submit(r.customer_id, r.key, job_id, at)
    acct = dam.accounts.get(r.customer_id)
    if acct is None:
        acct = dam.accounts[r.customer_id] = dam.account_for(r.customer_id)
    with contextlib.suppress(CapReached):  # the plan changed since: it was accepted then
        acct.charge(at)
    if done:
        return  # only its outcome is kept
    try:
        spec = parse_job(decode_job_json(r.payload), r.customer_id)
    except SpecError as err:  # a journal from a version with other rules
        dam.counters.inc("apidam_jobs_refused_total", (("reason", "unreadable"),))
        dam.log(f"job {job_id}: its journaled payload no longer parses ({err}); dropped")
        return
    dam.jobs[job_id] = dam._build(job_id, r.customer_id, spec, r.key)
    pending[job_id] = Pending()


def _resume(dam: LiveDam, job_id: str, job: LiveJob, p: Pending, now: int) -> None:
    m = job.machine
    if p.finished is not None:  # finished before the crash, its ``done`` row lost
        dam._finish(job_id, job, p.finished, now)
        return
    if m.status == JobStatus.NEW:
        dam._feed(job_id, job, Submit(), now)
        return
    for key, t in p.timers.items():
        dam._set_timer(job_id, job, t.at, key, now)
    for c in p.hooks.values():
        dam.resend_webhook(job_id, c, now)
    for b in m.branches:
        if b.state == BranchState.WAIT and b.id in p.asks:
            a = p.asks[b.id]
            dam._ask(a.domain, Waiter(job_id, b.id, a.not_before), now)
        elif b.state == BranchState.FLIGHT and b.id in p.attempts:
            s = p.attempts[b.id]
            dam._ask(s.domain, Waiter(job_id, b.id, 0, resend=s), now)
        elif b.state == BranchState.GHOST and b.id in p.attempts:
            s = p.attempts[b.id]
            dam._feed(job_id, job, AttemptFinished(b.id, s.attempt, error="reset"), now)
            if job_id not in dam.jobs:
                return
