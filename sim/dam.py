"""The dam's actors: Gateway, Region, DomainLimiter (actor), WebhookDispatcher.

* **Gateway**: intake. Builds the job from the workload's template (validated once at load),
  derives the HASH key, dedupes, bills (429 ``cap_reached`` at the cap), assigns
  ``job_<ms>_<n>`` ids and a *home* region (the first healthy listed region), and keeps the
  active jobs so that when a region dies it can re-home them: undecided jobs run again elsewhere,
  decided ones only re-deliver their webhooks. It tells regions and limiters about region
  health.
* **Region**: hosts the JobMachines of the jobs homed there and carries out their commands. A
  branch in another region is proxied by the home region with that region's network latency
  (``docs/SEMANTICS.md``). While the region is down it drops every message and loses its state.
* **LimiterActor**: one per target domain, global across regions: a FIFO of permit requests in
  front of an ``engine.limiter.DomainLimiter``; releases feed the response headers back.
* **Dispatcher**: one per region, sends webhook deliveries to receivers and relays the answers.
"""

from __future__ import annotations

from collections import deque

import msgspec

from engine.billing import BillingAccount
from engine.breaker import BreakerState, verdict
from engine.errors import CapReached, SpecError
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
from engine.idempotency import DedupeTable, hash_key
from engine.job import DamContext, JobMachine
from engine.limiter import BLOCKED, GRANTED, DomainLimiter
from engine.retry import BlockRandom
from engine.routing import RegionHealth
from engine.spec import parse_job
from engine.webhooks import SendWebhook

from .kernel import Actor
from .metrics import Metrics

__all__ = ["Dispatcher", "Gateway", "LimiterActor", "Region"]


def job_body(w: int, n: int) -> str:
    return f'{{"workload":{w},"n":{n}}}'


class Gateway(Actor):
    name = "gateway"

    def __init__(self, topo, metrics: Metrics) -> None:
        self.topo = topo
        self.metrics = metrics
        self.table = DedupeTable()
        self.accounts: dict[str, BillingAccount] = {}
        self.health = RegionHealth(topo.regions)
        self.active: dict[str, list] = {}
        self.counter = 0
        self.recovered = 0

    def start(self, now: int) -> None:
        for region, start, end in self.topo.region_outages:
            self.send(self.id, start, ("gw_region_down", region))
            self.send(self.id, end, ("gw_region_up", region))

    def handle(self, msg: tuple, now: int) -> None:
        kind = msg[0]
        if kind == "submit":
            self._submit(msg[1], msg[2], msg[3], None, now)
        elif kind == "decided":
            # Counted here, once per job: a job recovered after its region died may be
            # decided again by its new home (re-delivery, or a re-run if the first decision
            # was still on its way when the region died).
            entry = self.active.get(msg[1])
            if entry is not None and entry[5] is None:
                entry[5] = (msg[2], msg[3], msg[4])
                self.metrics.finish(entry[0], msg[2], msg[5] - entry[2])
                self.table.set_status(msg[1], "succeeded" if msg[2] else "failed", now)
        elif kind == "done":
            entry = self.active.pop(msg[1], None)
            if entry is not None:  # once per job (a recovered job may finish twice)
                self.table.set_status(msg[1], msg[2], now, terminal=True)
                if msg[2] == "delivered":
                    self.metrics.add("delivered", entry[0])
                    self.metrics.delivery_latency[entry[0]].append((msg[3] - entry[2]) / 1000.0)
                elif msg[2] == "undelivered":
                    self.metrics.add("undelivered", entry[0])
        elif kind == "spawn":
            self.metrics.add("children", msg[1])
            self._submit(msg[1], -1, now, msg[2], now)
        elif kind == "gw_region_down":
            self._region_down(msg[1], now)
        elif kind == "gw_region_up":
            self._region_up(msg[1], now)

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
            m.finish(w, False, now - arrived)
            return
        home = self._home(regions)
        if home is None:
            self.table.forget(job_id)
            m.finish(w, False, now - arrived)
            return
        # [workload, n, arrived, key, home, decision, payload, listed regions]
        self.active[job_id] = [w, n, arrived, key, home, None, payload, tuple(regions)]
        self._send_job(job_id, home, now)

    def _home(self, regions) -> str | None:
        for r in regions or (self.topo.default_region,):
            if self.health.is_up(r):
                return r
        healthy = self.health.healthy()
        return healthy[0] if healthy else None

    def _send_job(self, job_id: str, home: str, now: int) -> None:
        w, n, arrived, key, _, decided, payload, _regions = self.active[job_id]
        self.send(self.topo.region_ids[home], now + self.topo.lat(self.topo.gateway_region, home),
                  ("job", job_id, w, n, arrived, key, payload, decided))

    def _region_down(self, region: str, now: int) -> None:
        if not self.health.mark_down(region, now):
            return
        topo = self.topo
        for r, rid in topo.region_ids.items():
            if r != region:
                self.send(rid, now + topo.lat(topo.gateway_region, r), ("region_down", region))
        for lid in topo.limiter_ids.values():
            self.send(lid, now + topo.intra, ("reclaim", topo.region_ids[region]))
        for job_id, entry in self.active.items():
            if entry[4] == region:
                home = self._home(entry[7])  # its listed regions first, then any healthy
                if home is None:
                    continue  # no region left: the jobs wait for one to come back
                entry[4] = home
                self.recovered += 1
                self._send_job(job_id, home, now)

    def _region_up(self, region: str, now: int) -> None:
        if not self.health.mark_up(region):
            return
        topo = self.topo
        for r, rid in topo.region_ids.items():
            self.send(rid, now + topo.lat(topo.gateway_region, r), ("region_up", region))
        for lid in topo.limiter_ids.values():
            self.send(lid, now + topo.intra, ("restore", topo.region_ids[region]))
        orphans = [j for j, e in self.active.items() if not self.health.is_up(e[4])]
        for job_id in orphans:
            self.active[job_id][4] = region
            self._send_job(job_id, region, now)


class Region(Actor):
    def __init__(self, region: str, topo, metrics: Metrics) -> None:
        self.region = region
        self.name = f"region:{region}"
        self.topo = topo
        self.metrics = metrics
        self.machines: dict[str, tuple] = {}
        self.down = False
        self.lost = 0

    def start(self, now: int) -> None:
        topo = self.topo
        self.ctx = DamContext(topo.regions, rng=BlockRandom(self.rng),
                              default_region=topo.default_region, backoff=topo.backoff,
                              attempt_timeout_us=topo.attempt_timeout,
                              webhook_schedule_us=topo.webhook_schedule,
                              secret_for=topo.secret_for)
        self.to_gw = topo.lat(self.region, topo.gateway_region)
        self.to_lim = self.to_gw
        self.dispatcher = topo.dispatcher_ids[self.region]
        for region, start, end in topo.region_outages:
            if region == self.region:
                self.send(self.id, start, ("self_down",))
                self.send(self.id, end, ("self_up",))

    def handle(self, msg: tuple, now: int) -> None:
        kind = msg[0]
        if self.down:
            if kind == "self_up":
                self.down = False
            else:
                self.metrics.dropped_messages += 1
            return
        if kind == "resp":
            self._on_resp(msg, now)
        elif kind == "grant":
            entry = self.machines.get(msg[1])
            if entry is None:
                self._release(msg[3], None, 0, None, now)
            else:
                self._run(entry, entry[0].handle(PermitGranted(msg[2]), now), now)
        elif kind == "timer":
            entry = self.machines.get(msg[1])
            if entry is not None:
                self._run(entry, entry[0].handle(TimerFired(tuple(msg[2])), now), now)
        elif kind == "hook_result":
            entry = self.machines.get(msg[1])
            if entry is not None:
                ev = WebhookResult(msg[2], msg[3], self.topo.place_names[msg[4]], msg[5], msg[6])
                self._run(entry, entry[0].handle(ev, now), now)
        elif kind == "job":
            self._on_job(msg, now)
        elif kind == "region_down":
            self.ctx.health.mark_down(msg[1], now)
            for entry in list(self.machines.values()):
                self._run(entry, entry[0].handle(RegionDown(msg[1]), now), now)
        elif kind == "region_up":
            self.ctx.health.mark_up(msg[1])  # no job waits on it: new plans simply use it again
        elif kind == "self_down":
            self.down = True
            self.lost += len(self.machines)
            self.machines.clear()

    def _on_job(self, msg: tuple, now: int) -> None:
        _, job_id, w, n, arrived, key, payload, decided = msg
        topo = self.topo
        if payload is None:
            tpl = topo.templates[w]
            spec = msgspec.structs.replace(tpl, body=job_body(w, n))
        else:
            spec = parse_job(payload, topo.templates[w].customer_id)
        m = JobMachine(job_id, spec, key, self.ctx)
        # The ledger's logical request: the client's (workload, n), so a FRUGAL job's local
        # attempt and the dam's attempts are the same request; child jobs get their own.
        logical = (w << 32) | (n if n >= 0 else (1 << 31) | int(job_id.rsplit("_", 1)[1]))
        entry = (m, w, arrived, logical, topo.workload_nbytes[w])
        self.machines[job_id] = entry
        if decided is not None:
            self._run(entry, m.resume(decided[0], decided[1], decided[2], now), now)
        else:
            self._run(entry, m.handle(Submit(), now), now)

    def _on_resp(self, msg: tuple, now: int) -> None:
        _, tag, status, error, retry_after, headers = msg
        job_id, branch, attempt, d = tag
        entry = self.machines.get(job_id)
        policy = entry[0].retry_policy(branch) if entry is not None else None
        self._release(d, status, retry_after, headers, now, verdict(status, error, policy))
        if entry is None:
            return
        h = None
        if retry_after and status in (429, 503):
            h = {"retry-after": str(retry_after / 1e6)}
        ev = AttemptFinished(branch, attempt, status=status, headers=h, error=error)
        self._run(entry, entry[0].handle(ev, now), now)

    def _release(self, d: int, status, retry_after: int, headers, now: int,
                 outcome=None) -> None:
        """Give a permit back; ``outcome`` (a breaker Verdict) when an attempt used it."""
        self.send(self.topo.limiter_by_idx[d], now + self.to_lim,
                  ("release", self.id, status, retry_after, headers, outcome))

    def _run(self, entry: tuple, cmds: list, now: int) -> None:
        m, w, _arrived, logical, nbytes = entry
        topo = self.topo
        for c in cmds:
            t = type(c)
            if t is AskPermit:
                at = c.not_before if c.not_before > now else now
                self.send(topo.limiter_by_idx[topo.domain_idx[c.domain]], at + self.to_lim,
                          ("ask", self.id, c.job_id, c.branch))
            elif t is StartAttempt:
                di = topo.domain_idx[c.domain]
                self.send(topo.upstream_by_idx[di], now + topo.to_upstream,
                          ("req", self.id, (c.job_id, c.branch, c.attempt, di),
                           logical, topo.place_idx[c.region],
                           now + c.timeout_us, True, nbytes, w))
            elif t is SetTimer:
                self.send(self.id, c.at, ("timer", c.job_id, c.token))
            elif t is StatusChanged:
                st = c.status
                if st == "succeeded" or st == "failed":
                    r = m.result
                    self.send(topo.gateway, now + self.to_gw,
                              ("decided", c.job_id, st == "succeeded", r.status if r else None,
                               r.error if r else None, now))
            elif t is SendWebhook:
                self.send(self.dispatcher, now + topo.intra,
                          ("send", self.id, c.job_id, c.hook, c.round,
                           topo.place_idx[c.region], topo.receiver_for(c.url), len(c.body)))
            elif t is CancelBranch:
                if not c.in_flight:
                    self.send(topo.limiter_by_idx[topo.domain_idx[c.domain]], now + self.to_lim,
                              ("cancel", c.job_id, c.branch))
            elif t is ReturnPermit:
                self._release(topo.domain_idx[c.domain], None, 0, None, now)
            elif t is SpawnJob:
                self.send(topo.gateway, now + self.to_gw, ("spawn", w, c.payload))
            elif t is Finished:
                o = c.outcome
                met = self.metrics
                met.add("dam_duplicates", w, o.duplicate_executions)
                met.add("webhook_attempts", w, o.webhook_attempts)
                del self.machines[o.job_id]
                self.send(topo.gateway, now + self.to_gw, ("done", o.job_id, o.status, now))


class LimiterActor(Actor):
    def __init__(self, domain: str, topo, metrics: Metrics) -> None:
        self.domain = domain
        self.name = f"limiter:{domain}"
        self.topo = topo
        self.metrics = metrics
        self.limiter = DomainLimiter(domain, topo.limiter_config, breaker=topo.breaker_config,
                                     pacing=topo.pacing_config)
        self.breaker = self.limiter.breaker
        self._state = BreakerState.CLOSED
        self.queue: deque = deque()
        self.pending: dict[tuple, int] = {}
        self.held: dict[int, int] = {}
        self.down: set[int] = set()
        self.wake_at: int | None = None
        self.d = metrics.domain_index(domain)

    def handle(self, msg: tuple, now: int) -> None:
        kind = msg[0]
        if kind == "ask":
            _, region, job_id, branch = msg
            if region in self.down:
                return
            if not self.queue and self.limiter.acquire(now) == GRANTED:  # fast path
                self._grant(region, job_id, branch, now)
                return
            self.pending[(job_id, branch)] = region
            self.queue.append((region, job_id, branch))
            self._drain(now)
        elif kind == "release":
            _, region, status, retry_after, headers, outcome = msg
            lim = self.limiter
            if self.held.get(region, 0) > 0:
                self.held[region] -= 1
                lim.release(now)
            if headers or retry_after:
                if retry_after and (status == 429 or status == 503):
                    headers = {**(headers or {}), "retry-after": str(retry_after / 1e6)}
                lim.observe(now, status, headers)
            if outcome is not None:
                lim.record(now, outcome, status)
                if self.breaker is not None and self.breaker.state is not self._state:
                    self._breaker_moved(now)
            self._drain(now)
        elif kind == "wake":
            if self.wake_at is not None and now >= self.wake_at:
                self.wake_at = None
            self._drain(now)
        elif kind == "cancel":
            self.pending.pop((msg[1], msg[2]), None)
        elif kind == "reclaim":
            region = msg[1]
            self.down.add(region)
            self.limiter.reclaim(self.held.pop(region, 0))
            self._drain(now)
        elif kind == "restore":
            self.down.discard(msg[1])

    def _drain(self, now: int) -> None:
        q = self.queue
        if not q:
            return
        pending = self.pending
        lim = self.limiter
        while q:
            region, job_id, branch = q[0]
            key = (job_id, branch)
            if pending.get(key) != region or region in self.down:
                q.popleft()
                if pending.get(key) == region:
                    del pending[key]
                continue
            r = lim.acquire(now)
            if r == GRANTED:
                q.popleft()
                del pending[key]
                self._grant(region, job_id, branch, now)
            else:
                if r != BLOCKED and (self.wake_at is None or r < self.wake_at):
                    self.wake_at = r
                    self.send(self.id, r, ("wake",))
                break
        if self.breaker is not None and self.breaker.state is not self._state:
            self._breaker_moved(now)
        self.metrics.backlog(self.d, now, len(q))

    def _breaker_moved(self, now: int) -> None:
        """Report a breaker state change (open / half-open / closed) to the metrics."""
        b = self.breaker
        self._state = b.state
        self.metrics.breaker(self.d, now, int(b.state), b.opens, b.reopens, b.probe_attempts,
                             b.open_us_total, b.opened_at, self.limiter.current_pace(now))


    def _grant(self, region: int, job_id: str, branch: int, now: int) -> None:
        self.held[region] = self.held.get(region, 0) + 1
        self.metrics.permit(self.d, now, len(self.queue), self.limiter.current_pace(now))
        if self.breaker is not None and self.breaker.state is BreakerState.HALF_OPEN:
            self._breaker_moved(now)  # a probe: keep the probe count current
        self.send(region, now + self.topo.region_lat_from_gateway[region],
                  ("grant", job_id, branch, self.d))


class Dispatcher(Actor):
    def __init__(self, region: str, topo) -> None:
        self.region = region
        self.name = f"dispatcher:{region}"
        self.topo = topo
        self.down = False

    def start(self, now: int) -> None:
        for region, start, end in self.topo.region_outages:
            if region == self.region:
                self.send(self.id, start, ("self_down",))
                self.send(self.id, end, ("self_up",))

    def handle(self, msg: tuple, now: int) -> None:
        kind = msg[0]
        if kind == "send":
            if self.down:
                return
            _, region_actor, job_id, hook, round_, place, receiver, _nbytes = msg
            self.send(receiver, now + self.topo.to_upstream,
                      ("hook", self.id, (region_actor, job_id, hook, round_, place), place,
                       now + self.topo.webhook_timeout))
        elif kind == "hook_resp":
            if self.down:
                return
            _, tag, status, error = msg
            region_actor, job_id, hook, round_, place = tag
            self.send(region_actor, now + self.topo.intra,
                      ("hook_result", job_id, hook, round_, place, status, error))
        elif kind == "self_down":
            self.down = True
        elif kind == "self_up":
            self.down = False
