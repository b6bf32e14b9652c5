"""The job lifecycle state machine.

``queued → dispatching | racing → succeeded | failed → delivering → delivered | undelivered``

One :class:`JobMachine` per accepted job. It takes :mod:`engine.events` events with the current
time and answers with commands; it never performs I/O. A job's *arms* (the job and its fallback
chain, see :mod:`engine.workflow`) each run one or more *branches* (one per region, by the arm's
``execution_mode``); a branch asks the domain limiter for a permit before every attempt and
spends its retry budget by :mod:`engine.retry`'s rules.

Guarantees (tested): exactly one :class:`~engine.events.Finished`, and it is the last command; a
branch makes at most ``1 + max_retries + max_reroutes`` attempts; at most one winner; the
reported response is the winner's; a successful answer that arrives after another branch won is
counted as a duplicate execution (except between branches of one ``fanout`` arm, where every
branch is meant to run).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from .events import (
    AskPermit,
    AttemptFinished,
    Cancel,
    CancelBranch,
    Finished,
    JobOutcome,
    PermitGranted,
    RegionDown,
    RegionUp,
    ReturnPermit,
    SetTimer,
    SpawnJob,
    StartAttempt,
    StatusChanged,
    Submit,
    TimerFired,
    WebhookResult,
)
from .limiter import parse_retry_after
from .retry import Backoff, Outcome, UniformSource, classify, decide
from .routing import RegionHealth, initial_regions, listed_regions, reroute_target
from .spec import JobSpec, RetryPolicy
from .webhooks import DEFAULT_SCHEDULE_US, WebhookFanout, webhook_payload
from .workflow import failure_fires, first_dispatch_at, timeout_fires_at

__all__ = ["DEFAULT_ATTEMPT_TIMEOUT_US", "ArmState", "BranchState", "DamContext", "JobMachine",
           "JobStatus", "Timer"]

IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_ATTEMPT_TIMEOUT_US = 30_000_000  # per upstream attempt



class JobStatus(enum.StrEnum):
    """A job's status (``StatusChanged.status``, ``JobOutcome.status``); equal to its string."""

    NEW = "new"
    QUEUED = "queued"
    DISPATCHING = "dispatching"
    RACING = "racing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"


class BranchState(enum.IntEnum):
    WAIT = 0  # asked for a permit (possibly not before a backoff time)
    FLIGHT = 1  # an attempt is in flight
    OK = 2
    FAIL = 3
    CANCELLED = 4
    GHOST = 5  # cancelled while in flight: its answer is still awaited


class ArmState(enum.IntEnum):
    IDLE = 0
    RUNNING = 1
    OK = 2
    FAIL = 3


class Timer(enum.StrEnum):
    """The first item of a job's timer token (``SetTimer.token``)."""

    START = "start"  # retry_at: the first dispatch
    HEDGE = "hedge"  # (HEDGE, arm): start the arm's next region
    FALLBACK = "fallback"  # (FALLBACK, arm): an on_timeout fallback arm fires
    HOOK = "hook"  # (HOOK, webhook): a webhook's next delivery round
    ON_FAILURE = "on_failure"  # on_failure_timeout_ms


WAIT, FLIGHT, OK, FAIL, CANCELLED, GHOST = BranchState
LIVE = (WAIT, FLIGHT)
LIVE_OR_OK = (WAIT, FLIGHT, OK)
IDLE, RUNNING, ARM_OK, ARM_FAIL = ArmState


class DamContext:
    """What every job of one dam shares: regions and their health, retry/backoff settings, the
    webhook schedule, signing secrets and the RNG. Passed by reference, never copied."""

    __slots__ = ("attempt_timeout_us", "backoff", "default_region", "health", "rng", "schedule",
                 "secret_for")

    def __init__(self, regions: Sequence[str], *, rng: UniformSource,
                 default_region: str | None = None, backoff: Backoff | None = None,
                 attempt_timeout_us: int = DEFAULT_ATTEMPT_TIMEOUT_US,
                 webhook_schedule_us: Sequence[int] = DEFAULT_SCHEDULE_US,
                 secret_for=None, health: RegionHealth | None = None) -> None:
        self.health = health or RegionHealth(regions)
        self.default_region = default_region or self.health.regions[0]
        if self.default_region not in self.health.regions:
            raise ValueError(f"default region {self.default_region!r} is not a dam region")
        self.backoff = backoff or Backoff()
        self.attempt_timeout_us = attempt_timeout_us
        self.schedule = tuple(webhook_schedule_us)
        self.secret_for = secret_for  # callable(customer_id) -> str | None
        self.rng = rng


class _Branch:
    __slots__ = ("arm", "attempt", "attempts", "id", "last_error", "last_status", "prev_delay",
                 "region", "reroutes", "retries", "state", "tried")

    def __init__(self, bid: int, arm: int, region: str) -> None:
        self.id = bid
        self.arm = arm
        self.region = region
        self.state = WAIT
        self.attempt = -1
        self.attempts = self.retries = self.reroutes = self.prev_delay = 0
        self.tried: list[str] = []
        self.last_status: int | None = None
        self.last_error: str | None = None


class _Arm:
    __slots__ = ("branches", "headers", "index", "listed", "next_plan", "plan", "spec", "state")

    def __init__(self, index: int, spec: JobSpec, key: str, default_region: str) -> None:
        self.index = index
        self.spec = spec
        self.state = IDLE
        self.branches: list[int] = []
        self.plan: tuple[str, ...] = ()
        self.next_plan = 0
        self.listed = listed_regions(spec.regions, default_region)
        self.headers = {**spec.headers, IDEMPOTENCY_HEADER: key}


class JobMachine:
    __slots__ = ("arms", "branches", "ctx", "duplicates", "fanout", "final", "job_id", "key",
                 "on_failure_spawned", "out", "result", "result_at", "spec", "status",
                 "submitted_at", "succeeded", "winner")

    def __init__(self, job_id: str, spec: JobSpec, key: str, ctx: DamContext) -> None:
        self.job_id = job_id
        self.spec = spec
        self.key = key
        self.ctx = ctx
        chain = (spec, *spec.fallback_chain())
        self.arms = [_Arm(i, s, key, ctx.default_region) for i, s in enumerate(chain)]
        self.branches: list[_Branch] = []
        self.status = JobStatus.NEW
        self.winner: _Branch | None = None
        self.result: AttemptFinished | None = None
        self.result_at = 0
        self.submitted_at = 0
        self.succeeded: bool | None = None
        self.duplicates = 0
        self.on_failure_spawned = False
        self.fanout: WebhookFanout | None = None
        self.final = False
        self.out: list = []

    # -- public ----------------------------------------------------------------------------------
    def handle(self, event, now: int) -> list:
        """Feed one event; returns the commands it causes (empty once finished)."""
        if self.final:
            return []
        out: list = []
        self.out = out
        kind = type(event)
        if kind is PermitGranted:
            self._on_permit(event, now)
        elif kind is AttemptFinished:
            self._on_attempt(event, now)
        elif kind is TimerFired:
            self._on_timer(event.token, now)
        elif kind is Submit:
            self._on_submit(now)
        elif kind is WebhookResult:
            self._on_webhook(event, now)
        elif kind is RegionDown:
            self._on_region_down(event.region, now)
        elif kind is Cancel:
            self._on_cancel(event.reason, now)
        elif kind is RegionUp:
            pass  # health is the driver's; nothing waits on a region coming back
        else:
            raise TypeError(f"not a job event: {event!r}")
        self._maybe_finish(now)
        return out

    def resume(self, succeeded: bool, status: int | None, error: str | None, now: int) -> list:
        """Recovery: this job was decided by a machine that was lost (its region died while it
        delivered webhooks). Deliver the decided result from here; execute nothing."""
        if self.status != JobStatus.NEW:
            raise RuntimeError("resume() is only for a fresh machine")
        out: list = []
        self.out = out
        self.submitted_at = now
        self.result = AttemptFinished(-1, -1, status=status, error=error)
        for a in self.arms:
            a.state = ARM_OK if succeeded else ARM_FAIL
        self._decide(succeeded, now)
        self._maybe_finish(now)
        return out

    def retry_policy(self, branch: int) -> RetryPolicy:
        """The retry policy of ``branch``'s arm (its codes classify the domain's health)."""
        return self.arms[self.branches[branch].arm].spec.retry_policy

    @property
    def attempts(self) -> int:
        return sum(b.attempts for b in self.branches)

    # -- lifecycle -------------------------------------------------------------------------------
    def _set_status(self, status: JobStatus) -> None:
        if status != self.status:
            self.status = status
            self.out.append(StatusChanged(self.job_id, status))

    def _on_submit(self, now: int) -> None:
        if self.status != JobStatus.NEW:
            return
        self.submitted_at = now
        self._set_status(JobStatus.QUEUED)
        spec = self.spec
        if spec.on_failure is not None and spec.on_failure_timeout_ms is not None:
            self.out.append(SetTimer(self.job_id, now + spec.on_failure_timeout_ms * 1000,
                                     (Timer.ON_FAILURE,)))
        at = first_dispatch_at(spec, now)
        if at > now:
            self.out.append(SetTimer(self.job_id, at, (Timer.START,)))
        else:
            self._fire_arm(0, now)

    def _decided(self) -> bool:
        return self.succeeded is not None

    def _fire_arm(self, k: int, now: int) -> None:
        arm = self.arms[k]
        if arm.state != IDLE or self._decided():
            return
        arm.state = RUNNING
        arm.plan = initial_regions(arm.listed, arm.spec.region_policy, self.ctx.health)
        if k + 1 < len(self.arms):
            at = timeout_fires_at(self.arms[k + 1].spec.effective_trigger, now)
            if at is not None:
                self.out.append(SetTimer(self.job_id, at, (Timer.FALLBACK, k + 1)))
        if not arm.plan:
            self._arm_failed(arm, None, "region_unavailable", now)
            return
        if arm.spec.execution_mode == "hedge":
            self._start_next_hedge(arm, now)
        else:
            for region in arm.plan:
                self._new_branch(arm, region)
            arm.next_plan = len(arm.plan)
        self._update_running_status()

    def _update_running_status(self) -> None:
        if self._decided():
            return
        live = sum(1 for b in self.branches if b.state in LIVE)
        self._set_status(JobStatus.RACING if live > 1 else JobStatus.DISPATCHING)

    def _start_next_hedge(self, arm: _Arm, now: int) -> None:
        used = {self.branches[b].region for b in arm.branches if self.branches[b].state in LIVE}
        while arm.next_plan < len(arm.plan):
            region = arm.plan[arm.next_plan]
            arm.next_plan += 1
            if region in used or not self.ctx.health.is_up(region):
                continue
            self._new_branch(arm, region)
            if arm.next_plan < len(arm.plan):
                self.out.append(SetTimer(self.job_id, now + arm.spec.hedge_delay_ms * 1000,
                                         (Timer.HEDGE, arm.index)))
            return

    def _new_branch(self, arm: _Arm, region: str) -> None:
        b = _Branch(len(self.branches), arm.index, region)
        self.branches.append(b)
        arm.branches.append(b.id)
        self.out.append(AskPermit(self.job_id, b.id, arm.spec.domain, region))

    # -- permits and attempts --------------------------------------------------------------------
    def _on_permit(self, ev: PermitGranted, now: int) -> None:
        b = self.branches[ev.branch]
        arm = self.arms[b.arm]
        if b.state != WAIT:
            self.out.append(ReturnPermit(self.job_id, b.id, arm.spec.domain))
            return
        b.state = FLIGHT
        b.attempts += 1
        b.attempt += 1
        spec = arm.spec
        self.out.append(StartAttempt(self.job_id, b.id, b.attempt, b.region, spec.domain,
                                     spec.method, spec.url, arm.headers, spec.body,
                                     self.ctx.attempt_timeout_us))

    def _on_attempt(self, ev: AttemptFinished, now: int) -> None:
        b = self.branches[ev.branch]
        arm = self.arms[b.arm]
        ok = ev.error is None and ev.status is not None and 200 <= ev.status <= 299
        current = b.state == FLIGHT and ev.attempt == b.attempt
        if not current:
            # An answer nobody waits for: a cancelled loser, or an attempt given up as lost.
            if b.state == GHOST and ev.attempt == b.attempt:
                b.state = OK if ok else FAIL
            if ok:
                if self.winner is None and not self._decided():
                    self._win(b, ev, now)
                elif not self._same_fanout(b):
                    self.duplicates += 1
            return
        b.last_status, b.last_error = ev.status, ev.error
        if ok:
            b.state = OK
            if self.winner is None and not self._decided():
                self._win(b, ev, now)
            elif not self._same_fanout(b):
                self.duplicates += 1
            return
        policy = arm.spec.retry_policy
        wanted = classify(ev.status, ev.error, policy)
        target = None
        if b.reroutes < policy.max_reroutes and (
                wanted is Outcome.REROUTE
                or (wanted is Outcome.RETRY and b.retries >= policy.max_retries)):
            target = self._reroute_target(b, arm)
        step = decide(wanted, b.retries, b.reroutes, policy, target is not None)
        if step is Outcome.RETRY:
            b.retries += 1
            delay = None
            if ev.headers and ev.status in (429, 503):
                delay = parse_retry_after(ev.headers.get("retry-after")
                                          or ev.headers.get("Retry-After"))
            if delay is None:
                delay = self.ctx.backoff.delay(b.retries - 1, b.prev_delay, self.ctx.rng)
            b.prev_delay = delay
            b.state = WAIT
            self.out.append(AskPermit(self.job_id, b.id, arm.spec.domain, b.region,
                                      now + delay if delay > 0 else 0))
        elif step is Outcome.REROUTE:
            assert target is not None  # decide() reroutes only when told a target exists
            b.reroutes += 1
            self._move(b, arm, target)
        else:
            b.state = FAIL
            self._branch_failed(b, arm, now)

    def _same_fanout(self, b: _Branch) -> bool:
        w = self.winner
        return (w is not None and w.arm == b.arm
                and self.arms[b.arm].spec.execution_mode == "fanout")

    def _reroute_target(self, b: _Branch, arm: _Arm) -> str | None:
        busy = [self.branches[i].region for i in arm.branches
                if i != b.id and self.branches[i].state in LIVE]
        return reroute_target(b.region, b.tried, busy, arm.listed, arm.spec.region_policy,
                              self.ctx.health)

    def _move(self, b: _Branch, arm: _Arm, target: str) -> None:
        b.tried.append(b.region)
        b.region = target
        b.state = WAIT
        self.out.append(AskPermit(self.job_id, b.id, arm.spec.domain, target))

    def _win(self, b: _Branch, ev: AttemptFinished, now: int) -> None:
        self.winner = b
        self.result = ev
        b.state = OK
        arm = self.arms[b.arm]
        arm.state = ARM_OK
        self._cancel_others(keep_fanout_arm=b.arm if arm.spec.execution_mode == "fanout"
                            else None)
        self._decide(True, now)
        if self.spec.on_success is not None:
            self.out.append(SpawnJob(self.job_id, "on_success", self.spec.on_success.to_payload()))
        if b.arm > 0 and arm.spec.on_success is not None:
            self.out.append(SpawnJob(self.job_id, "on_success", arm.spec.on_success.to_payload()))

    def _cancel_others(self, keep_fanout_arm: int | None) -> None:
        for o in self.branches:
            if o is self.winner or o.arm == keep_fanout_arm:
                continue
            if o.state == WAIT:
                o.state = CANCELLED
                self.out.append(CancelBranch(self.job_id, o.id, o.region,
                                             self.arms[o.arm].spec.domain, False))
            elif o.state == FLIGHT:
                o.state = GHOST
                self.out.append(CancelBranch(self.job_id, o.id, o.region,
                                             self.arms[o.arm].spec.domain, True))

    # -- failures --------------------------------------------------------------------------------
    def _branch_failed(self, b: _Branch, arm: _Arm, now: int) -> None:
        if arm.state != RUNNING:
            return
        if arm.spec.execution_mode == "hedge" and arm.next_plan < len(arm.plan):
            self._start_next_hedge(arm, now)
        if any(self.branches[i].state in LIVE_OR_OK for i in arm.branches):
            self._update_running_status()
            return
        self._arm_failed(arm, b.last_status, b.last_error, now)

    def _arm_failed(self, arm: _Arm, status: int | None, error: str | None, now: int) -> None:
        arm.state = ARM_FAIL
        k = arm.index
        if k + 1 < len(self.arms) and failure_fires(self.arms[k + 1].spec.effective_trigger,
                                                     status):
            self._fire_arm(k + 1, now)
        if any(a.state == RUNNING for a in self.arms):
            return
        self._fail(status, error or (f"upstream returned {status}" if status else "failed"), now)

    def _fail(self, status: int | None, error: str, now: int) -> None:
        if self._decided():
            return
        self.result = AttemptFinished(-1, -1, status=status, error=error)
        self._decide(False, now)
        if self.spec.on_failure is not None and not self.on_failure_spawned:
            self.on_failure_spawned = True
            self.out.append(SpawnJob(self.job_id, "on_failure", self.spec.on_failure.to_payload()))

    def _decide(self, succeeded: bool, now: int) -> None:
        self.result_at = now
        self.succeeded = succeeded
        self._set_status(JobStatus.SUCCEEDED if succeeded else JobStatus.FAILED)
        spec = self.spec
        if not spec.webhooks:
            return
        r = self.result
        assert r is not None
        body = webhook_payload(self.job_id, self.key, succeeded, r.status, r.headers, r.body,
                               spec.metadata, None if succeeded else r.error)
        region = self.winner.region if self.winner is not None else self.ctx.default_region
        secret = self.ctx.secret_for(spec.customer_id) if self.ctx.secret_for else None
        self.fanout = WebhookFanout(self.job_id, spec.webhooks, spec.webhook_quorum, body, region,
                                    secret, self.ctx.schedule)
        self._set_status(JobStatus.DELIVERING)
        sends, timers = self.fanout.start(now)
        self.out.extend(sends)
        for at, hook in timers:
            self.out.append(SetTimer(self.job_id, at, (Timer.HOOK, hook)))
        self._webhook_status()

    # -- timers, regions, webhooks, cancel -------------------------------------------------------
    def _on_timer(self, token: tuple, now: int) -> None:
        kind, *arg = token
        if kind == Timer.HOOK:
            if self.fanout is not None:
                self.out.extend(self.fanout.on_timer(arg[0], now))
        elif kind == Timer.HEDGE:
            arm = self.arms[arg[0]]
            if arm.state == RUNNING and not self._decided():
                self._start_next_hedge(arm, now)
                self._update_running_status()
        elif kind == Timer.FALLBACK:
            k = arg[0]
            if self.arms[k - 1].state == RUNNING and not self._decided():
                self._fire_arm(k, now)
        elif kind == Timer.START:
            self._fire_arm(0, now)
        elif kind == Timer.ON_FAILURE and not self._decided() and not self.on_failure_spawned \
                and self.spec.on_failure is not None:  # (the timer is only set with one)
            self.on_failure_spawned = True
            self.out.append(SpawnJob(self.job_id, "on_failure", self.spec.on_failure.to_payload()))

    def _on_region_down(self, region: str, now: int) -> None:
        for b in self.branches:
            if b.region == region and b.state == GHOST:
                b.state = FAIL  # a cancelled loser's answer is lost with its region
                continue
            if b.region != region or b.state not in LIVE:
                continue
            arm = self.arms[b.arm]
            if b.state == FLIGHT:
                # The attempt is lost with the region: it counts against the budget, and a late
                # answer to it is stale (the branch has moved on).
                self._on_attempt(AttemptFinished(b.id, b.attempt, error="region_down"), now)
                continue
            target = self._reroute_target(b, arm)
            if target is not None:
                self._move(b, arm, target)  # no attempt was made: no budget spent
            else:
                b.state = FAIL
                b.last_status, b.last_error = None, "region_unavailable"
                self._branch_failed(b, arm, now)

    def _on_webhook(self, ev: WebhookResult, now: int) -> None:
        if self.fanout is None:
            return
        for at, hook in self.fanout.on_result(ev.hook, ev.round, ev.status, ev.error, now):
            self.out.append(SetTimer(self.job_id, at, (Timer.HOOK, hook)))
        self._webhook_status()

    def _webhook_status(self) -> None:
        st = self.fanout.status if self.fanout is not None else None
        if st in (JobStatus.DELIVERED, JobStatus.UNDELIVERED):
            self._set_status(JobStatus(st))

    def _on_cancel(self, reason: str, now: int) -> None:
        if self._decided():
            return
        self._cancel_others(keep_fanout_arm=None)
        for a in self.arms:
            if a.state == RUNNING:
                a.state = ARM_FAIL
        self._fail(None, reason, now)

    # -- the end ---------------------------------------------------------------------------------
    def _maybe_finish(self, now: int) -> None:
        if not self._decided():
            return
        for b in self.branches:
            if b.state in LIVE or b.state == GHOST:
                return
        if self.fanout is not None and not self.fanout.done:
            return
        self.final = True
        w = self.winner
        r = self.result
        self.out.append(Finished(JobOutcome(
            job_id=self.job_id, status=self.status, succeeded=bool(self.succeeded),
            submitted_at=self.submitted_at, result_at=self.result_at, finished_at=now,
            attempts=self.attempts, duplicate_executions=self.duplicates,
            winner_arm=w.arm if w else None, winner_region=w.region if w else None,
            response_status=r.status if r else None,
            error=None if self.succeeded else (r.error if r else None),
            webhook_attempts=self.fanout.attempts if self.fanout else 0)))
