"""The Region: hosts the JobMachines of the jobs homed there and carries out their commands.

A branch in another region is proxied by the home region with that region's network latency
(``docs/SEMANTICS.md``). While the region is down it drops every message (counted in
``dropped_messages``) and loses its jobs, which the gateway recovers.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from engine.breaker import verdict
from engine.events import (
    AskPermit,
    AttemptFinished,
    CancelBranch,
    Finished,
    PermitGranted,
    RegionDown,
    ReturnPermit,
    SetTimer,
    SpawnJob,
    StartAttempt,
    StatusChanged,
    Submit,
    TimerFired,
    WebhookResult,
)
from engine.job import DamContext, JobMachine
from engine.retry import BlockRandom
from engine.spec import parse_job
from engine.units import US_PER_S
from engine.webhooks import SendWebhook

from ..jitter import link_jitter
from ..kernel import Actor
from ..messages import (
    AttemptTag,
    HookResult,
    HookSend,
    JobDecided,
    JobDone,
    JobTimer,
    OutageEnds,
    OutageStarts,
    PermitAsk,
    PermitCancel,
    PermitGrant,
    PermitRelease,
    RegionDownNotice,
    RegionUpNotice,
    Request,
    Response,
    RunJob,
    SpawnChild,
)
from ..metrics import Metrics
from .gateway import job_body

__all__ = ["HostedJob", "Region"]


class HostedJob:
    """A job hosted by a region: its machine and what its commands need."""

    __slots__ = ("arrived", "logical", "machine", "nbytes", "workload")

    def __init__(self, machine: JobMachine, workload: int, arrived: int, logical: int,
                 nbytes: int) -> None:
        self.machine = machine
        self.workload = workload
        self.arrived = arrived
        self.logical = logical  # the upstream ledger's key for this job's side effect
        self.nbytes = nbytes


class Region(Actor):
    kind = "region"
    HANDLERS: ClassVar[dict[type, str]] = {
        Response: "_on_response",
        PermitGrant: "_on_grant",
        JobTimer: "_on_timer",
        HookResult: "_on_hook_result",
        RunJob: "_on_job",
        RegionDownNotice: "_on_region_down",
        RegionUpNotice: "_on_region_up",
        OutageStarts: "_on_outage_starts",
        OutageEnds: "_on_outage_ends",
    }

    def __init__(self, region: str, topo, metrics: Metrics) -> None:
        self.region = region
        self.name = f"region:{region}"
        self.topo = topo
        self.metrics = metrics
        self.jobs: dict[str, HostedJob] = {}
        self.lost = 0

    def start(self, now: int) -> None:
        topo = self.topo
        self.ctx = DamContext(topo.regions, rng=BlockRandom(self.rng),
                              default_region=topo.default_region, backoff=topo.backoff,
                              attempt_timeout_us=topo.attempt_timeout,
                              webhook_schedule_us=topo.webhook_schedule,
                              secret_for=topo.secret_for)
        self.jitter = link_jitter(topo.jitter, self.rng)  # on the way to the upstreams
        self.to_gw = topo.lat(self.region, topo.gateway_region)
        self.to_lim = self.to_gw
        self.dispatcher = topo.dispatcher_ids[self.region]
        for o in topo.region_outages:
            if o.region == self.region:
                self.send(self.id, o.start, OutageStarts(o.region))
                self.send(self.id, o.end, OutageEnds(o.region))

    # -- its own outage ----------------------------------------------------------------------------
    def _on_outage_starts(self, msg: OutageStarts, now: int) -> None:
        self.lost += len(self.jobs)
        self.jobs.clear()
        for t in self.HANDLERS:
            if t is not OutageEnds:
                self._table[t] = self._drop

    def _on_outage_ends(self, msg: OutageEnds, now: int) -> None:
        self._table.update({t: getattr(self, name) for t, name in self.HANDLERS.items()})

    def _drop(self, msg, now: int) -> None:
        self.metrics.dropped_messages += 1

    # -- messages --------------------------------------------------------------------------------
    def _on_job(self, msg: RunJob, now: int) -> None:
        topo = self.topo
        w, n = msg.workload, msg.n
        if msg.payload is None:
            spec = msgspec.structs.replace(topo.templates[w], body=job_body(w, n))
        else:
            spec = parse_job(msg.payload, topo.templates[w].customer_id)
        m = JobMachine(msg.job_id, spec, msg.key, self.ctx)
        # The ledger's logical request: the client's (workload, n), so a FRUGAL job's local
        # attempt and the dam's attempts are the same request; child jobs get their own.
        child = (1 << 31) | int(msg.job_id.rsplit("_", 1)[1])
        logical = (w << 32) | (n if n >= 0 else child)
        job = self.jobs[msg.job_id] = HostedJob(m, w, msg.arrived, logical,
                                                topo.workload_nbytes[w])
        d = msg.decided
        if d is not None:
            self._run(job, m.resume(d.succeeded, d.status, d.error, now), now)
        else:
            self._run(job, m.handle(Submit(), now), now)

    def _on_grant(self, msg: PermitGrant, now: int) -> None:
        job = self.jobs.get(msg.job_id)
        if job is None:
            self._release(msg.domain, None, 0, None, now)
        else:
            self._run(job, job.machine.handle(PermitGranted(msg.branch), now), now)

    def _on_timer(self, msg: JobTimer, now: int) -> None:
        job = self.jobs.get(msg.job_id)
        if job is not None:
            self._run(job, job.machine.handle(TimerFired(msg.token), now), now)

    def _on_hook_result(self, msg: HookResult, now: int) -> None:
        job = self.jobs.get(msg.job_id)
        if job is not None:
            ev = WebhookResult(msg.hook, msg.round, self.topo.place_names[msg.place], msg.status,
                               msg.error)
            self._run(job, job.machine.handle(ev, now), now)

    def _on_region_down(self, msg: RegionDownNotice, now: int) -> None:
        self.ctx.health.mark_down(msg.region, now)
        ev = RegionDown(msg.region)
        for job in list(self.jobs.values()):
            self._run(job, job.machine.handle(ev, now), now)

    def _on_region_up(self, msg: RegionUpNotice, now: int) -> None:
        self.ctx.health.mark_up(msg.region)  # no job waits on it: new plans simply use it again

    def _on_response(self, msg: Response, now: int) -> None:
        tag = msg.tag
        assert isinstance(tag, AttemptTag)  # the dam's attempts are tagged so
        status, error, retry_after = msg.status, msg.error, msg.retry_after_us
        job = self.jobs.get(tag.job_id)
        policy = job.machine.retry_policy(tag.branch) if job is not None else None
        self._release(tag.domain, status, retry_after, msg.headers, now,
                      verdict(status, error, policy))
        if job is None:
            return
        h = None
        if retry_after and status in (429, 503):
            h = {"retry-after": str(retry_after / US_PER_S)}
        ev = AttemptFinished(tag.branch, tag.attempt, status=status, headers=h, error=error)
        self._run(job, job.machine.handle(ev, now), now)

    # -- commands --------------------------------------------------------------------------------
    def _release(self, d: int, status: int | None, retry_after: int, headers, now: int,
                 outcome: int | None = None) -> None:
        """Give a permit back; ``outcome`` (a breaker Verdict) when an attempt used it."""
        self.send(self.topo.limiter_by_idx[d], now + self.to_lim,
                  PermitRelease(self.id, status, retry_after, headers, outcome))

    def _run(self, job: HostedJob, cmds: list, now: int) -> None:
        topo = self.topo
        for c in cmds:
            t = type(c)
            if t is AskPermit:
                at = c.not_before if c.not_before > now else now
                self.send(topo.limiter_by_idx[topo.domain_idx[c.domain]], at + self.to_lim,
                          PermitAsk(self.id, c.job_id, c.branch))
            elif t is StartAttempt:
                di = topo.domain_idx[c.domain]
                at = now + topo.to_upstream
                if self.jitter is not None:
                    at += self.jitter()
                self.send(topo.upstream_by_idx[di], at,
                          Request(self.id, AttemptTag(c.job_id, c.branch, c.attempt, di),
                                  job.logical, topo.place_idx[c.region], now + c.timeout_us,
                                  True, job.nbytes, job.workload))
            elif t is SetTimer:
                self.send(self.id, c.at, JobTimer(c.job_id, c.token))
            elif t is StatusChanged:
                st = c.status
                if st == "succeeded" or st == "failed":
                    r = job.machine.result
                    self.send(topo.gateway, now + self.to_gw,
                              JobDecided(c.job_id, st == "succeeded", r.status if r else None,
                                         r.error if r else None, now))
            elif t is SendWebhook:
                self.metrics.add("webhook_attempts", job.workload)  # counted when made
                self.send(self.dispatcher, now + topo.intra,
                          HookSend(self.id, c.job_id, c.hook, c.round, topo.place_idx[c.region],
                                   topo.receiver_for(c.url), len(c.body)))
            elif t is CancelBranch:
                if not c.in_flight:
                    self.send(topo.limiter_by_idx[topo.domain_idx[c.domain]], now + self.to_lim,
                              PermitCancel(c.job_id, c.branch))
            elif t is ReturnPermit:
                self._release(topo.domain_idx[c.domain], None, 0, None, now)
            elif t is SpawnJob:
                self.send(topo.gateway, now + self.to_gw, SpawnChild(job.workload, c.payload))
            elif t is Finished:
                o = c.outcome
                met = self.metrics
                met.add("dam_duplicates", job.workload, o.duplicate_executions)
                del self.jobs[o.job_id]
                self.send(topo.gateway, now + self.to_gw, JobDone(o.job_id, o.status, now))
