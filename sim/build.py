"""Scenario → actors and their topology (ids, links, templates), in a fixed order.

Actor ids: gateway, regions (dam order), limiters (upstream order), dispatchers (dam order),
upstreams, receivers, clients (workload order). RNGs are spawned from the seed in that order.
Group names (for the Ray runtime): ``region:<r>`` (a region), ``control`` (gateway + limiters),
``dispatchers``, ``world`` (upstreams, receivers, clients).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from engine.breaker import BreakerConfig
from engine.limiter import LimiterConfig
from engine.pacing import PacingConfig
from engine.retry import Backoff
from engine.spec import JobSpec, domain_of, parse_job

from .clients import make_client
from .dam import Dispatcher, Gateway, LimiterActor, Region
from .kernel import Actor
from .metrics import Metrics
from .scenario import Scenario, parse_duration
from .world import Receiver, Upstream

__all__ = ["RegionOutage", "Topology", "build"]

DEFAULT_REGION_LATENCY = "25ms"


class RegionOutage(msgspec.Struct, frozen=True):
    """A scripted dam-region outage, in µs."""

    region: str
    start: int
    end: int


class Topology:
    """Everything actors need to know about each other: ids, latencies, templates."""

    def __init__(self, sc: Scenario) -> None:
        us = parse_duration
        net = sc.network
        self.regions = list(sc.dam.regions)
        self.default_region = self.regions[0]
        self.gateway_region = sc.dam.gateway_region or self.regions[0]
        self.place_names = [*self.regions, "client"]
        self.place_idx = {n: i for i, n in enumerate(self.place_names)}
        self.client_region = self.place_idx["client"]
        self.intra = us(net.intra_region)
        self.to_upstream = us(net.to_upstream)
        self.client_to_gateway = us(net.client_to_gateway)
        self._rr: dict[tuple[str, str], int] = {}
        for key, value in net.regions.items():
            a, b = key.split("-")
            self._rr[(a, b)] = self._rr[(b, a)] = us(value)
        self.duration = us(sc.duration)
        self.horizon = self.duration + us(sc.drain)
        self.attempt_timeout = us(sc.dam.attempt_timeout)
        self.webhook_timeout = us(sc.dam.webhook_timeout)
        self.webhook_schedule = tuple(us(x) for x in sc.dam.webhook_schedule)
        self.backoff = Backoff(kind=sc.dam.backoff.kind, base_us=us(sc.dam.backoff.base),
                               cap_us=us(sc.dam.backoff.cap))
        lc = sc.dam.limiter
        self.limiter_config = LimiterConfig(rate=lc.rate, burst=lc.burst,
                                            max_concurrent=lc.max_concurrent)
        br, pc = sc.dam.breaker, sc.dam.pacing
        self.breaker_config = BreakerConfig(
            enabled=br.enabled, failure_rate=br.failure_rate, window_calls=br.window_calls,
            window_us=us(br.window), min_calls=br.min_calls, open_us=us(br.open),
            max_open_us=us(br.max_open), probes=br.probes,
            probe_interval_us=us(br.probe_interval))
        self.pacing_config = PacingConfig(
            slow_start_us=us(pc.slow_start), slow_start_floor=pc.slow_start_floor,
            adaptive=pc.adaptive, min_rate=pc.min_rate, beta=pc.beta, scale=pc.scale)
        self.tier = sc.dam.tier
        secret = sc.dam.webhook_secret
        self.secret_for = (lambda _c: secret) if secret else None
        self.region_outages = [RegionOutage(o.region, us(o.start), us(o.end))
                               for o in sc.dam.outages]
        self.domains = [domain_of(u.url) for u in sc.upstreams]
        self.domain_idx = {d: i for i, d in enumerate(self.domains)}
        self.receiver_domains = [domain_of(r.url) for r in sc.receivers]
        self.workload_domain = [domain_of(sc.upstream(w.upstream).url) for w in sc.workloads]
        self.workload_nbytes = [w.payload_bytes for w in sc.workloads]
        self.templates: list[JobSpec | None] = []
        for w in sc.workloads:
            if w.strategy == "diy":
                self.templates.append(None)
                continue
            payload = {**w.step, "url": sc.upstream(w.upstream).url.rstrip("/") + w.path,
                       "method": w.method, "body": "{}"}
            self.templates.append(parse_job(payload, w.customer))
        self._receiver_cache: dict[str, int] = {}

    def lat(self, a: str, b: str) -> int:
        if a == b:
            return self.intra
        v = self._rr.get((a, b))
        return v if v is not None else parse_duration(DEFAULT_REGION_LATENCY)

    def receiver_for(self, url: str) -> int:
        rid = self._receiver_cache.get(url)
        if rid is None:
            rid = self.receiver_ids[domain_of(url)]
            self._receiver_cache[url] = rid
        return rid

    def min_link(self) -> int:
        links = [self.intra, self.to_upstream, self.client_to_gateway, *self._rr.values()]
        if len(self.regions) > 1 and len(self._rr) < len(self.regions) * (len(self.regions) - 1):
            links.append(parse_duration(DEFAULT_REGION_LATENCY))
        return min(links)


def build(sc: Scenario, base_dir: Path | None = None) -> tuple[Topology, list[Actor],
                                                                 list[str], Metrics]:
    """Actors in id order, their group names, and the shared Metrics."""
    topo = Topology(sc)
    metrics = Metrics([w.name for w in sc.workloads], topo.domains, topo.horizon)
    actors: list[Actor] = []
    groups: list[str] = []

    def add(actor: Actor, group: str) -> int:
        actors.append(actor)
        groups.append(group)
        return len(actors) - 1

    topo.gateway = add(Gateway(topo, metrics), "control")
    topo.region_ids = {r: add(Region(r, topo, metrics), f"region:{r}") for r in topo.regions}
    topo.limiter_ids = {d: add(LimiterActor(d, topo, metrics), "control") for d in topo.domains}
    topo.limiter_by_idx = [topo.limiter_ids[d] for d in topo.domains]
    topo.dispatcher_ids = {r: add(Dispatcher(r, topo), "dispatchers") for r in topo.regions}
    dam_senders = set(topo.region_ids.values())
    topo.upstream_ids = {}
    for u in sc.upstreams:
        d = domain_of(u.url)
        topo.upstream_ids[d] = add(Upstream(u.name, d, u, topo.place_names, metrics,
                                            dam_senders, topo.to_upstream), "world")
    topo.upstream_by_idx = [topo.upstream_ids[d] for d in topo.domains]
    topo.receiver_ids = {domain_of(r.url): add(Receiver(r.name, r, topo.place_names, metrics,
                                                        topo.to_upstream), "world")
                         for r in sc.receivers}
    for i, w in enumerate(sc.workloads):
        add(make_client(i, w, topo, metrics, base_dir), "world")
    topo.region_lat_from_gateway = {rid: topo.lat(topo.gateway_region, r)
                                    for r, rid in topo.region_ids.items()}
    return topo, actors, groups, metrics
