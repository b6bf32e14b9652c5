"""Scenario → actors and their topology (ids, links, templates), in a fixed order.

Actor ids: gateway, regions (dam order), limiters (upstream order), dispatchers (dam order),
upstreams, receivers, clients (workload order). RNGs are spawned from the seed in that order.
Group names (for the Ray runtime): ``region:<r>`` (a region), ``control`` (gateway + limiters),
``dispatchers``, ``world`` (upstreams, receivers, clients).
"""

from __future__ import annotations

from pathlib import Path

from engine.spec import JobSpec, domain_of, parse_job

from .clients import make_client
from .dam import Dispatcher, Gateway, LimiterActor, Region
from .kernel import Actor
from .metrics import Metrics
from .queue_world import LatencyUpstream, QueueUpstream
from .scenario import ResolvedScenario, Scenario, resolve
from .world import Receiver, Upstream

__all__ = ["Topology", "build"]


class Topology:
    """Everything actors need to know about each other: ids, latencies, templates, and the
    resolved scenario (``spec``). Complete when constructed: actor ids follow the fixed order
    above, so they are known before any actor exists."""

    def __init__(self, rs: ResolvedScenario) -> None:
        self.spec = rs
        dam, net = rs.dam, rs.network
        self.regions = list(dam.regions)
        self.default_region = dam.default_region
        self.gateway_region = dam.gateway_region
        self.place_names = [*self.regions, "client"]
        self.place_idx = {n: i for i, n in enumerate(self.place_names)}
        self.client_region = self.place_idx["client"]
        self.intra = net.intra_us
        self.to_upstream = net.to_upstream_us
        self.jitter = (net.jitter_kind, net.jitter_scale_us)  # sim.jitter.link_jitter's args
        self.client_to_gateway = net.client_to_gateway_us
        self._between = net.between_regions_us
        self.duration = rs.duration_us
        self.horizon = rs.horizon_us
        self.attempt_timeout = dam.attempt_timeout_us
        self.webhook_timeout = dam.webhook_timeout_us
        self.webhook_schedule = dam.webhook_schedule_us
        self.backoff = dam.backoff
        self.limiter_config = dam.limiter
        self.breaker_config = dam.breaker
        self.pacing_config = dam.pacing
        self.tier = dam.tier
        secret = dam.webhook_secret
        self.secret_for = (lambda _c: secret) if secret else None
        self.region_outages = dam.outages
        self.domains = [u.domain for u in rs.upstreams]
        self.domain_idx = {d: i for i, d in enumerate(self.domains)}
        self.receiver_domains = [r.domain for r in rs.receivers]
        self.workload_domain = [w.domain for w in rs.workloads]
        self.workload_nbytes = [w.payload_bytes for w in rs.workloads]
        self.templates: list[JobSpec | None] = []
        for w in rs.workloads:
            if w.strategy == "diy":
                self.templates.append(None)
                continue
            url = next(u.url for u in rs.upstreams if u.name == w.upstream)
            payload = {**w.step, "url": url.rstrip("/") + w.path, "method": w.method,
                       "body": "{}"}
            self.templates.append(parse_job(payload, w.customer))
        # actor ids, in the order build() creates the actors
        ids = iter(range(1 << 30))
        self.gateway = next(ids)
        self.region_ids = {r: next(ids) for r in self.regions}
        self.limiter_ids = {d: next(ids) for d in self.domains}
        self.limiter_by_idx = [self.limiter_ids[d] for d in self.domains]
        self.dispatcher_ids = {r: next(ids) for r in self.regions}
        self.upstream_ids = {d: next(ids) for d in self.domains}
        self.upstream_by_idx = [self.upstream_ids[d] for d in self.domains]
        self.receiver_ids = {d: next(ids) for d in self.receiver_domains}
        self.client_ids = [next(ids) for _ in rs.workloads]
        self.region_lat_from_gateway = {rid: self.lat(self.gateway_region, r)
                                        for r, rid in self.region_ids.items()}
        self._receiver_cache: dict[str, int] = {}

    def lat(self, a: str, b: str) -> int:
        """One-way latency between two dam regions (µs)."""
        return self.intra if a == b else self._between[f"{a}-{b}"]

    def receiver_for(self, url: str) -> int:
        rid = self._receiver_cache.get(url)
        if rid is None:
            rid = self._receiver_cache[url] = self.receiver_ids[domain_of(url)]
        return rid


def build(sc: Scenario, base_dir: Path | None = None) -> tuple[Topology, list[Actor],
                                                                 list[str], Metrics]:
    """Actors in id order, their group names, and the shared Metrics."""
    rs = resolve(sc)
    topo = Topology(rs)
    metrics = Metrics([w.name for w in rs.workloads], topo.domains, topo.horizon,
                      [(w.name, w.start_us, w.end_us) for w in rs.windows])
    actors: list[Actor] = []
    groups: list[str] = []

    def add(actor: Actor, group: str, expected_id: int) -> None:
        assert len(actors) == expected_id, "actors must be built in Topology's id order"
        actors.append(actor)
        groups.append(group)

    add(Gateway(topo, metrics), "control", topo.gateway)
    for r in topo.regions:
        add(Region(r, topo, metrics), f"region:{r}", topo.region_ids[r])
    for d in topo.domains:
        add(LimiterActor(d, topo, metrics), "control", topo.limiter_ids[d])
    for r in topo.regions:
        add(Dispatcher(r, topo), "dispatchers", topo.dispatcher_ids[r])
    dam_senders = set(topo.region_ids.values())
    models = {"legacy": Upstream, "queue": QueueUpstream, "latency": LatencyUpstream}
    for u in rs.upstreams:
        add(models[u.model](u, topo.place_names, metrics, dam_senders, topo.to_upstream,
                            topo.jitter), "world", topo.upstream_ids[u.domain])
    for r in rs.receivers:
        add(Receiver(r, topo.place_names, metrics, topo.to_upstream, topo.jitter), "world",
            topo.receiver_ids[r.domain])
    for w in rs.workloads:
        add(make_client(w, topo, metrics, base_dir), "world", topo.client_ids[w.index])
    return topo, actors, groups, metrics
