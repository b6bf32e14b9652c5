"""The live dam: the engine's JobMachines driven in wall-clock time, with real HTTP.

One process, one asyncio loop. The engine is used unchanged: every job is a
:class:`~engine.job.JobMachine`; every domain a :class:`~engine.limiter.DomainLimiter` behind a
:class:`~live.permits.PermitQueue`. This module only carries out the machines' commands
(permits, attempts, timers, webhook deliveries, child jobs) and feeds their results back, each
input journaled first (:mod:`live.journal`) so a restart can rebuild every unfinished job
(:mod:`live.recovery`).

Regions are labels: every region's branch runs from this process (a race in three regions is
three concurrent attempts through the one domain limiter; the first 2xx wins). Engine time is
wall-clock µs since the unix epoch (never going backwards), so webhook signatures carry real
unix timestamps.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import time
from typing import Any

import msgspec
import numpy as np

from engine.billing import BillingAccount, month_of, month_start_us
from engine.breaker import verdict
from engine.errors import CapReached, SecretError, SpecError
from engine.events import (
    AskPermit,
    AttemptFinished,
    CancelBranch,
    Finished,
    JobOutcome,
    PermitGranted,
    ReturnPermit,
    SetTimer,
    SpawnJob,
    StartAttempt,
    StatusChanged,
    Submit,
    TimerFired,
    WebhookResult,
)
from engine.idempotency import DedupeTable, hash_key
from engine.job import DamContext, JobMachine
from engine.limiter import DomainLimiter
from engine.routing import RegionHealth
from engine.signing import SIGNATURE_HEADER, SecretStore, sign_webhook
from engine.spec import JobSpec, decode_job_json, parse_job
from engine.units import US_PER_S
from engine.webhooks import SendWebhook

from .journal import Accepted, Journal, JournalError, SecretDeleted, SecretSet
from .metrics import Counters
from .outbound import Outbound
from .permits import PermitQueue, Waiter
from .settings import LiveSettings
from .targets import check_job_targets

__all__ = ["Clock", "DamUnavailable", "FinishedJob", "JobRandom", "LiveDam", "LiveJob",
           "SubmitResult"]

_json = msgspec.json.Encoder()
IDLE_LIMITER_US = 600 * US_PER_S  # an idle domain's limiter is dropped after this long


class DamUnavailable(RuntimeError):
    """The dam cannot take the job now (shutting down, or its journal cannot be written)."""


class SubmitResult(msgspec.Struct, frozen=True, gc=False):
    job_id: str
    status: str
    duplicate: bool


class FinishedJob(msgspec.Struct, frozen=True, gc=False):
    customer_id: str
    outcome: JobOutcome


class JobRandom:
    """A job's own random source (backoff jitter), seeded from the dam's seed and the job id so
    that replaying the job's journal draws the same numbers. Made on first use."""

    __slots__ = ("_gen", "_seed")

    def __init__(self, seed: int, job_id: str) -> None:
        digest = hashlib.blake2b(f"{seed}:{job_id}".encode(), digest_size=8).digest()
        self._seed = int.from_bytes(digest, "little")
        self._gen: np.random.Generator | None = None

    def random(self) -> float:
        if self._gen is None:
            self._gen = np.random.default_rng(self._seed)
        return float(self._gen.random())


class LiveJob:
    __slots__ = ("customer_id", "machine", "timers")

    def __init__(self, customer_id: str, machine: JobMachine) -> None:
        self.customer_id = customer_id
        self.machine = machine
        self.timers: dict[tuple, asyncio.TimerHandle] = {}


class Clock:
    """Wall-clock µs since the epoch, never going backwards."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0

    def now(self) -> int:
        t = time.time_ns() // 1000
        if t < self._last:
            return self._last
        self._last = t
        return t

    def not_before(self, t: int) -> None:
        """Never answer earlier than ``t`` (a journaled time, should the clock have stepped
        back across a restart)."""
        self._last = max(self._last, t)


class LiveDam:
    def __init__(self, settings: LiveSettings, journal: Journal, *,
                 tiers: dict[str, str] | None = None, outbound: Outbound | None = None,
                 log=None) -> None:
        self.settings = settings
        self.tiers = dict(tiers or {})  # customer -> billing tier (from the API keys)
        self._log = log
        self.journal = journal
        self.outbound = outbound or Outbound(allow_private=settings.allow_private_targets,
                                             limit_per_host=settings.connections_per_host)
        self.clock = Clock()
        self.health = RegionHealth(settings.regions)
        self.secrets = SecretStore()
        self.dedupe = DedupeTable(settings.retention_us)
        self.accounts: dict[str, BillingAccount] = {}
        self.jobs: dict[str, LiveJob] = {}
        self.finished: dict[str, FinishedJob] = {}
        self._expiry: list[tuple[int, str]] = []
        self.queues: dict[str, PermitQueue] = {}
        self._wakes: dict[str, tuple[int, asyncio.TimerHandle]] = {}
        self._kicked: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self.counters = Counters()
        self.counter = 0
        self.recovered = 0
        self.stopping = False
        self._housekeeper: asyncio.Task | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        from .recovery import recover  # recovery drives this class's internals

        self.loop = asyncio.get_running_loop()
        entries = self.journal.open(self.clock.now())
        await self.outbound.start()
        self.recovered = recover(self, entries)
        self._housekeeper = self.loop.create_task(self._housekeeping())

    async def stop(self) -> None:
        """Stop working; what is in flight is journaled as far as it got (an attempt whose
        answer did not arrive runs again after a restart)."""
        self.stopping = True
        if self._housekeeper is not None:
            self._housekeeper.cancel()
        for job in self.jobs.values():
            for h in job.timers.values():
                h.cancel()
        for _, h in self._wakes.values():
            h.cancel()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.outbound.close()
        await self.journal.close()

    # -- intake ----------------------------------------------------------------------------------
    async def submit(self, customer_id: str, text: bytes | str) -> SubmitResult:
        """Validate, dedupe, bill and journal one job; returns once it is durable.

        Raises SpecError (bad payload or target), CapReached (plan limit) or DamUnavailable."""
        if self.stopping:
            raise DamUnavailable("the dam is shutting down")
        payload = decode_job_json(text)
        spec = parse_job(payload, customer_id)
        check_job_targets(spec, allow_private=self.settings.allow_private_targets)
        raw = text.encode() if isinstance(text, str) else bytes(text)
        now = self.clock.now()
        result, job = self._admit(customer_id, spec, raw, now)
        try:
            await self.journal.durable()
        except JournalError as e:
            if job is not None:
                del self.jobs[result.job_id]
                self.dedupe.forget(result.job_id)
            raise DamUnavailable(str(e)) from None
        if job is not None:
            self._feed(result.job_id, job, Submit(), self.clock.now())
        return result

    def _admit(self, customer_id: str, spec: JobSpec, raw: bytes, now: int,
               parent: str | None = None,
               relation: str | None = None) -> tuple[SubmitResult, LiveJob | None]:
        key = spec.idempotent_key or hash_key(customer_id, spec.method, spec.url, spec.body)
        job_id = f"job_{now // 1000}_{self.counter + 1}"
        out = self.dedupe.submit(customer_id, key, job_id, now)
        if out.duplicate:
            self.counters.inc("apidam_jobs_deduplicated_total")
            return SubmitResult(out.job_id, out.status, True), None
        if parent is None and len(self.jobs) >= self.settings.max_active_jobs:
            self.dedupe.forget(job_id)
            self.counters.inc("apidam_jobs_refused_total", (("reason", "backlog_full"),))
            raise DamUnavailable(f"{len(self.jobs)} unfinished jobs, the most this dam holds")
        acct = self.accounts.get(customer_id)
        if acct is None:
            acct = self.accounts[customer_id] = self.account_for(customer_id)
        try:
            acct.charge(now)
        except CapReached:
            self.dedupe.forget(job_id)
            self.counters.inc("apidam_jobs_refused_total", (("reason", "cap_reached"),))
            raise
        self.counter += 1
        self.journal.append(job_id, now, Accepted(customer_id, key, raw, parent, relation))
        job = self.jobs[job_id] = self._build(job_id, customer_id, spec, key)
        self.counters.inc("apidam_jobs_accepted_total")
        return SubmitResult(job_id, "queued", False), job

    def _build(self, job_id: str, customer_id: str, spec: JobSpec, key: str) -> LiveJob:
        s = self.settings
        ctx = DamContext(s.regions, rng=JobRandom(self.journal.seed, job_id), backoff=s.backoff,
                         attempt_timeout_us=s.attempt_timeout_us,
                         webhook_schedule_us=s.webhook_schedule_us,
                         secret_for=self._secret_for, health=self.health)
        return LiveJob(customer_id, JobMachine(job_id, spec, key, ctx))

    def account_for(self, customer_id: str) -> BillingAccount:
        return BillingAccount(customer_id, self.tiers.get(customer_id, "free"))

    def log(self, line: str) -> None:
        if self._log is not None:
            self._log(line)

    def retry_after_s(self, now: int | None = None) -> int:
        """Whole seconds until the next calendar month (when a capped customer may submit)."""
        now = self.clock.now() if now is None else now
        y, m = month_of(now)
        nxt = month_start_us(y + (m == 12), m % 12 + 1)
        return max(1, -(-(nxt - now) // US_PER_S))

    # -- secrets ---------------------------------------------------------------------------------
    def _secret_for(self, customer_id: str) -> str | None:
        try:
            return self.secrets.secrets(customer_id).primary
        except SecretError:
            return None

    async def set_secrets(self, customer_id: str, primary: Any, secondary: Any) -> None:
        self.secrets.create(customer_id, primary, secondary)  # validates (SecretError)
        self.journal.append(None, self.clock.now(), SecretSet(customer_id, primary, secondary))
        await self._durable()

    async def delete_secrets(self, customer_id: str) -> dict:
        out = self.secrets.delete(customer_id)
        self.journal.append(None, self.clock.now(), SecretDeleted(customer_id))
        await self._durable()
        return out

    async def _durable(self) -> None:
        try:
            await self.journal.durable()
        except JournalError as e:
            raise DamUnavailable(str(e)) from None

    # -- the machines ----------------------------------------------------------------------------
    def _feed(self, job_id: str, job: LiveJob, event, now: int) -> None:
        self.journal.append(job_id, now, event)
        self._execute(job_id, job, job.machine.handle(event, now), now)

    def _execute(self, job_id: str, job: LiveJob, cmds: list, now: int) -> None:
        for c in cmds:
            t = type(c)
            if t is AskPermit:
                self._ask(c.domain, Waiter(job_id, c.branch, c.not_before), now)
            elif t is StartAttempt:
                self._spawn(self._attempt(job_id, c))
            elif t is SetTimer:
                self._set_timer(job_id, job, c.at, c.token, now)
            elif t is SendWebhook:
                self._spawn(self._deliver(job_id, c))
            elif t is CancelBranch:
                q = self.queues.get(c.domain)
                if q is not None and not c.in_flight:
                    q.cancel(job_id, c.branch)
            elif t is ReturnPermit:
                self.queues[c.domain].release(now)
                self._kick(c.domain)
            elif t is StatusChanged:
                self.dedupe.set_status(job_id, c.status, now)
            elif t is SpawnJob:
                self._spawn_child(job_id, job, c, now)
            elif t is Finished:
                self._finish(job_id, job, c.outcome, now)

    def _spawn_child(self, parent_id: str, parent: LiveJob, c: SpawnJob, now: int) -> None:
        try:
            spec = parse_job(c.payload, parent.customer_id)
            check_job_targets(spec, allow_private=self.settings.allow_private_targets)
            result, job = self._admit(parent.customer_id, spec,
                                      _json.encode(c.payload), now, parent_id, c.relation)
        except (SpecError, CapReached):
            self.counters.inc("apidam_jobs_refused_total", (("reason", "child_refused"),))
            return
        if job is not None:
            self._feed(result.job_id, job, Submit(), now)

    def _finish(self, job_id: str, job: LiveJob, outcome: JobOutcome, now: int) -> None:
        self.journal.append(job_id, now, outcome)
        self._retire(job_id, job, outcome, now)

    def _retire(self, job_id: str, job: LiveJob, outcome: JobOutcome, now: int) -> None:
        del self.jobs[job_id]
        for h in job.timers.values():
            h.cancel()
        self.remember(job_id, job.customer_id, outcome, now)

    def remember(self, job_id: str, customer_id: str, outcome: JobOutcome, now: int) -> None:
        """Keep a finished job's outcome (GET, dedupe status) until retention ends."""
        self.finished[job_id] = FinishedJob(customer_id, outcome)
        heapq.heappush(self._expiry, (now + self.settings.retention_us, job_id))
        self.dedupe.set_status(job_id, outcome.status, now, terminal=True)
        self.counters.inc("apidam_jobs_finished_total", (("status", str(outcome.status)),))

    # -- timers ----------------------------------------------------------------------------------
    def _set_timer(self, job_id: str, job: LiveJob, at: int, token: tuple, now: int) -> None:
        key = tuple(token)
        old = job.timers.pop(key, None)
        if old is not None:
            old.cancel()
        delay = max(0.0, (at - now) / US_PER_S)
        job.timers[key] = self.loop.call_later(delay, self._on_timer, job_id, key)

    def _on_timer(self, job_id: str, key: tuple) -> None:
        job = self.jobs.get(job_id)
        if job is None or self.stopping:
            return
        job.timers.pop(key, None)
        self._feed(job_id, job, TimerFired(key), self.clock.now())

    # -- permits ---------------------------------------------------------------------------------
    def _queue(self, domain: str) -> PermitQueue:
        q = self.queues.get(domain)
        if q is None:
            s = self.settings
            q = self.queues[domain] = PermitQueue(
                DomainLimiter(domain, s.limiter, breaker=s.breaker, pacing=s.pacing))
        return q

    def _ask(self, domain: str, w: Waiter, now: int) -> None:
        self._queue(domain).ask(w, now)
        self._kick(domain)

    def _kick(self, domain: str) -> None:
        """Pump the domain's queue soon (once per loop turn however many asks and releases)."""
        if domain not in self._kicked:
            self._kicked.add(domain)
            self.loop.call_soon(self._pump, domain)

    def _pump(self, domain: str) -> None:
        self._kicked.discard(domain)
        q = self.queues.get(domain)
        if q is None or self.stopping:
            return
        now = self.clock.now()
        granted, wake = q.pump(now)
        for w in granted:
            job = self.jobs.get(w.job_id)
            if job is None:
                q.release(now)  # its job finished meanwhile: the permit goes back unused
                self._kick(domain)
            elif w.resend is not None:
                self._spawn(self._attempt(w.job_id, w.resend))
            else:
                self._feed(w.job_id, job, PermitGranted(w.branch), now)
        if wake is not None:
            self._wake_at(domain, wake, now)

    def _wake_at(self, domain: str, at: int, now: int) -> None:
        cur = self._wakes.get(domain)
        if cur is not None:
            if cur[0] <= at and not cur[1].cancelled():
                return
            cur[1].cancel()
        h = self.loop.call_later(max(0.0, (at - now) / US_PER_S), self._woken, domain)
        self._wakes[domain] = (at, h)

    def _woken(self, domain: str) -> None:
        self._wakes.pop(domain, None)
        self._pump(domain)

    # -- I/O -------------------------------------------------------------------------------------
    def _spawn(self, coro) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attempt(self, job_id: str, c: StartAttempt) -> None:
        ans = await self.outbound.request(c.method, c.url, c.headers, c.body,
                                          c.timeout_us / US_PER_S)
        now = self.clock.now()
        job = self.jobs.get(job_id)
        policy = job.machine.retry_policy(c.branch) if job is not None else None
        self.queues[c.domain].release(now, status=ans.status, headers=ans.headers,
                                      verdict=verdict(ans.status, ans.error, policy))
        outcome = ans.error or str(ans.status)
        self.counters.inc("apidam_attempts_total",
                          (("domain", self.counters.domain_label(c.domain)),
                           ("outcome", outcome)))
        if job is not None:
            self._feed(job_id, job, AttemptFinished(
                c.branch, c.attempt, status=ans.status, headers=ans.headers, body=ans.body,
                body_size=ans.body_size, latency_us=ans.latency_us, error=ans.error), now)
        self._kick(c.domain)

    async def _deliver(self, job_id: str, c: SendWebhook) -> None:
        ans = await self.outbound.request("POST", c.url, c.headers, c.body,
                                          self.settings.webhook_timeout_us / US_PER_S)
        self.counters.inc("apidam_webhook_attempts_total",
                          (("outcome", ans.error or str(ans.status)),))
        job = self.jobs.get(job_id)
        if job is not None:
            self._feed(job_id, job, WebhookResult(c.hook, c.round, c.region, ans.status,
                                                  ans.error), self.clock.now())

    def resend_webhook(self, job_id: str, c: SendWebhook, now: int) -> None:
        """Deliver again a round whose answer was lost in a restart, signed afresh."""
        headers = dict(c.headers)
        if SIGNATURE_HEADER in headers:
            job = self.jobs[job_id]
            secret = self._secret_for(job.customer_id)
            if secret is None:
                del headers[SIGNATURE_HEADER]
            else:
                headers[SIGNATURE_HEADER] = sign_webhook(c.body, secret, now // US_PER_S)
        self._spawn(self._deliver(job_id, msgspec.structs.replace(c, headers=headers)))

    # -- upkeep ----------------------------------------------------------------------------------
    async def _housekeeping(self, every_s: float = 30.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.expire(self.clock.now())

    def expire(self, now: int) -> None:
        """Forget finished jobs past retention and limiters idle for long."""
        self.dedupe.expire(now)
        while self._expiry and self._expiry[0][0] <= now:
            self.finished.pop(heapq.heappop(self._expiry)[1], None)
        for d in [d for d, q in self.queues.items()
                  if q.idle and now - q.last_used > IDLE_LIMITER_US and d not in self._wakes
                  and (q.limiter.breaker is None or q.limiter.breaker.state == 0)]:
            del self.queues[d]

    # -- views -----------------------------------------------------------------------------------
    def job_view(self, customer_id: str, job_id: str) -> dict | None:
        job = self.jobs.get(job_id)
        if job is not None:
            if job.customer_id != customer_id:
                return None
            m = job.machine
            return {"job_id": job_id, "status": str(m.status), "attempts": m.attempts,
                    "outcome": None}
        done = self.finished.get(job_id)
        if done is None or done.customer_id != customer_id:
            return None
        o = done.outcome
        return {"job_id": job_id, "status": str(o.status), "attempts": o.attempts,
                "outcome": msgspec.to_builtins(o)}
