"""The Gateway: the dam's intake.

It builds each job from its workload's template (validated once at load), derives the HASH key,
dedupes, bills (429 ``cap_reached`` at the cap), assigns ``job_<ms>_<n>`` ids and a *home* region
(the first healthy listed region), and keeps the active jobs so that when a region dies it can
re-home them: undecided jobs run again elsewhere, decided ones only re-deliver their webhooks.
It tells the regions and the limiters about region health.
"""

from __future__ import annotations

from typing import ClassVar

from engine.billing import BillingAccount
from engine.errors import CapReached, SpecError
from engine.idempotency import DedupeTable, hash_key
from engine.routing import RegionHealth
from engine.spec import parse_job

from ..kernel import Actor
from ..messages import (
    Decision,
    JobDecided,
    JobDone,
    OutageEnds,
    OutageStarts,
    PermitsReclaim,
    PermitsRestore,
    RegionDownNotice,
    RegionUpNotice,
    RunJob,
    SpawnChild,
    Submit,
)
from ..metrics import Metrics
from .active import ActiveJob

__all__ = ["ActiveJob", "Gateway", "job_body"]


def job_body(w: int, n: int) -> str:
    """The body of job ``n`` of workload ``w`` (distinct per job, so HASH keys are distinct)."""
    return f'{{"workload":{w},"n":{n}}}'


class Gateway(Actor):
    name = "gateway"
    kind = "gateway"
    HANDLERS: ClassVar[dict[type, str]] = {
        Submit: "_on_submit",
        JobDecided: "_on_decided",
        JobDone: "_on_done",
        SpawnChild: "_on_spawn",
        OutageStarts: "_on_outage_starts",
        OutageEnds: "_on_outage_ends",
    }

    def __init__(self, topo, metrics: Metrics) -> None:
        self.topo = topo
        self.metrics = metrics
        self.table = DedupeTable()
        self.accounts: dict[str, BillingAccount] = {}
        self.health = RegionHealth(topo.regions)
        self.active: dict[str, ActiveJob] = {}
        self.counter = 0
        self.recovered = 0

    def start(self, now: int) -> None:
        for o in self.topo.region_outages:
            self.send(self.id, o.start, OutageStarts(o.region))
            self.send(self.id, o.end, OutageEnds(o.region))

    # -- messages --------------------------------------------------------------------------------
    def _on_submit(self, msg: Submit, now: int) -> None:
        self._submit(msg.workload, msg.n, msg.arrived, None, now)

    def _on_spawn(self, msg: SpawnChild, now: int) -> None:
        self.metrics.add("children", msg.workload)
        self._submit(msg.workload, -1, now, msg.payload, now)

    def _on_decided(self, msg: JobDecided, now: int) -> None:
        # Counted here, once per job: a job recovered after its region died may be decided
        # again by its new home (re-delivery, or a re-run if the first decision was still on
        # its way when the region died).
        job = self.active.get(msg.job_id)
        if job is not None and job.decision is None:
            job.decision = Decision(msg.succeeded, msg.status, msg.error)
            self.metrics.finish(job.workload, msg.succeeded, msg.at - job.arrived, msg.at)
            self.metrics.add("webhooks_pending", job.workload)  # until its JobDone
            self.table.set_status(msg.job_id, "succeeded" if msg.succeeded else "failed", now)

    def _on_done(self, msg: JobDone, now: int) -> None:
        job = self.active.pop(msg.job_id, None)
        if job is None:  # once per job (a recovered job may finish twice)
            return
        self.table.set_status(msg.job_id, msg.status, now, terminal=True)
        if job.decision is not None:
            self.metrics.add("webhooks_pending", job.workload, -1)
        if msg.status == "delivered":
            self.metrics.add("delivered", job.workload)
            self.metrics.delivery_latency[job.workload].append((msg.at - job.arrived) / 1000.0)
        elif msg.status == "undelivered":
            self.metrics.add("undelivered", job.workload)

    def _on_outage_starts(self, msg: OutageStarts, now: int) -> None:
        region = msg.region
        if not self.health.mark_down(region, now):
            return
        topo = self.topo
        for r, rid in topo.region_ids.items():
            if r != region:
                self.send(rid, now + topo.lat(topo.gateway_region, r), RegionDownNotice(region))
        for lid in topo.limiter_ids.values():
            self.send(lid, now + topo.intra, PermitsReclaim(topo.region_ids[region]))
        for job_id, job in self.active.items():
            if job.home == region:
                home = self._home(job.listed)  # its listed regions first, then any healthy
                if home is None:
                    continue  # no region left: the jobs wait for one to come back
                job.home = home
                self.recovered += 1
                self._send_job(job_id, job, now)

    def _on_outage_ends(self, msg: OutageEnds, now: int) -> None:
        region = msg.region
        if not self.health.mark_up(region):
            return
        topo = self.topo
        for r, rid in topo.region_ids.items():
            self.send(rid, now + topo.lat(topo.gateway_region, r), RegionUpNotice(region))
        for lid in topo.limiter_ids.values():
            self.send(lid, now + topo.intra, PermitsRestore(topo.region_ids[region]))
        orphans = [(j, job) for j, job in self.active.items() if not self.health.is_up(job.home)]
        for job_id, job in orphans:
            job.home = region
            self._send_job(job_id, job, now)

    # -- intake ----------------------------------------------------------------------------------
    def _submit(self, w: int, n: int, arrived: int, payload: dict | None, now: int) -> None:
        topo, m = self.topo, self.metrics
        tpl = topo.templates[w]
        if payload is None:
            body = job_body(w, n)
            key = hash_key(tpl.customer_id, tpl.method, tpl.url, body)
            regions = tpl.regions
        else:
            try:
                spec = parse_job(payload, tpl.customer_id)
            except SpecError:
                m.add("failed", w)
                return
            key = spec.idempotent_key or hash_key(spec.customer_id, spec.method, spec.url,
                                                  spec.body)
            regions = spec.regions
        self.counter += 1
        job_id = f"job_{now // 1000}_{self.counter}"
        outcome = self.table.submit(tpl.customer_id, key, job_id, now)
        if outcome.duplicate:
            m.add("deduped", w)
            return
        acct = self.accounts.get(tpl.customer_id)
        if acct is None:
            acct = self.accounts[tpl.customer_id] = BillingAccount(tpl.customer_id, topo.tier)
        try:
            acct.charge(now)
        except CapReached:
            self.table.forget(job_id)
            m.add("refused", w)
            m.finish(w, False, now - arrived, now)
            return
        home = self._home(regions)
        if home is None:
            self.table.forget(job_id)
            m.finish(w, False, now - arrived, now)
            return
        job = ActiveJob(w, n, arrived, key, home, None, payload, tuple(regions))
        self.active[job_id] = job
        self._send_job(job_id, job, now)

    def _home(self, regions) -> str | None:
        for r in regions or (self.topo.default_region,):
            if self.health.is_up(r):
                return r
        healthy = self.health.healthy()
        return healthy[0] if healthy else None

    def _send_job(self, job_id: str, job: ActiveJob, now: int) -> None:
        topo = self.topo
        self.send(topo.region_ids[job.home], now + topo.lat(topo.gateway_region, job.home),
                  RunJob(job_id, job.workload, job.n, job.arrived, job.key, job.payload,
                         job.decision))
