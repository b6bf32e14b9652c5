"""A validated scenario resolved once: every duration in integer µs, every default filled.

:func:`resolve` is the only place where a scenario's duration strings become numbers; actors
and reports take these frozen records. Engine settings come out as the engine's own configs
(``LimiterConfig``, ``BreakerConfig``, ``PacingConfig``, ``Backoff``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from engine.breaker import BreakerConfig
from engine.limiter import LimiterConfig
from engine.pacing import PacingConfig
from engine.retry import Backoff
from engine.spec import domain_of

from .schema import (
    DEFAULT_REGION_LATENCY,
    BackoffCfg,
    Budget,
    ConcurrentRetryBudget,
    Latency,
    Outage,
    RateLimiter,
    Receiver,
    RetryQuota,
    Scenario,
    Upstream,
    parse_duration,
)

__all__ = [
    "AdaptiveSpec",
    "ArrivalsSpec",
    "ClientBreakerSpec",
    "DamSpec",
    "DefencesSpec",
    "DiySpec",
    "FrugalSpec",
    "LatencySpec",
    "NetworkSpec",
    "OutageSpec",
    "ReceiverSpec",
    "RegionOutage",
    "ResolvedScenario",
    "SegmentSpec",
    "ServiceSpec",
    "UpstreamSpec",
    "WindowSpec",
    "WorkloadSpec",
    "receiver_spec",
    "resolve",
    "upstream_spec",
]


class _R(msgspec.Struct, frozen=True, kw_only=True):
    pass


class LatencySpec(_R):
    median_us: int
    p99_us: int
    slow_fraction: float
    slow_factor: float


class OutageSpec(_R):
    start_us: int
    end_us: int
    mode: str  # error | slow | blackhole | partial | capacity
    statuses: dict[int, float]  # status -> weight > 0, by status
    fraction: float
    factor: float
    regions: tuple[str, ...]  # empty: every region
    retry_after_us: int | None
    servers: int | None = None  # capacity: servers left (None: ``fraction`` of them)


class ServiceSpec(_R):
    kind: str  # exponential | constant | lognormal | empirical
    mean_us: int
    median_us: int
    p99_us: int
    values_us: tuple[int, ...]
    slow_fraction: float
    slow_factor: float


class DefencesSpec(_R):
    drop_expired: bool = False
    lifo_above: int | None = None
    codel_target_us: int | None = None
    codel_interval_us: int = 100_000


class UpstreamSpec(_R):
    name: str
    url: str
    domain: str
    servers: int
    service_us: int
    queue: int
    rate_limit: float
    rate_burst: int
    idempotency: bool
    advertise_rps: float | None
    advertise_max_concurrent: int | None
    latency: LatencySpec
    region_latency: dict[str, LatencySpec]
    outages: tuple[OutageSpec, ...]
    model: str = "queue"  # queue | latency | legacy
    service: ServiceSpec | None = None  # the queue model's service-time distribution
    defences: DefencesSpec = DefencesSpec()
    contention_keys: int | None = None


class ReceiverSpec(_R):
    name: str
    url: str
    domain: str
    latency: LatencySpec
    outages: tuple[OutageSpec, ...]


class SegmentSpec(_R):
    until_us: int
    rate: float


class ArrivalsSpec(_R):
    process: str  # poisson | constant | piecewise | trace
    rate: float
    segments: tuple[SegmentSpec, ...]
    file: str | None


class AdaptiveSpec(_R):
    """Google SRE adaptive throttling."""

    k: float
    window_us: int


class ClientBreakerSpec(_R):
    failure_rate: float
    window_calls: int
    min_calls: int
    open_us: int
    half_open_calls: int


class DiySpec(_R):
    retries: int
    backoff: Backoff
    timeout_us: int
    concurrency: int
    idempotency_key: bool
    budget: Budget | None  # gRPC retry throttling
    adaptive: AdaptiveSpec | None
    honor_retry_after: bool
    retry_quota: RetryQuota | None  # AWS standard mode
    rate_limiter: RateLimiter | None  # AWS adaptive mode
    concurrent_retry_budget: ConcurrentRetryBudget | None  # Envoy
    breaker: ClientBreakerSpec | None  # Resilience4j


class FrugalSpec(_R):
    local_timeout_us: int
    fallback_on_error: tuple[int, ...]


class WorkloadSpec(_R):
    index: int
    name: str
    upstream: str
    domain: str
    path: str
    method: str
    payload_bytes: int
    customer: str
    strategy: str  # diy | performance | frugal
    arrivals: ArrivalsSpec
    start_us: int
    stop_us: int
    resubmit_fraction: float
    diy: DiySpec
    frugal: FrugalSpec
    step: dict[str, Any]


class RegionOutage(_R):
    region: str
    start: int
    end: int


class DamSpec(_R):
    regions: tuple[str, ...]
    default_region: str
    gateway_region: str
    tier: str
    attempt_timeout_us: int
    webhook_timeout_us: int
    webhook_schedule_us: tuple[int, ...]
    limiter: LimiterConfig
    breaker: BreakerConfig
    pacing: PacingConfig
    backoff: Backoff
    outages: tuple[RegionOutage, ...]
    webhook_secret: str | None


class NetworkSpec(_R):
    client_to_gateway_us: int
    intra_us: int
    to_upstream_us: int
    between_regions_us: dict[str, int]  # "a-b" for every ordered pair of dam regions
    jitter_kind: str = "none"  # on the internet links: none | exponential | uniform
    jitter_scale_us: int = 0


class WindowSpec(_R):
    name: str
    start_us: int
    end_us: int


class ResolvedScenario(_R):
    scenario: Scenario  # as written (names, costs, descriptions)
    duration_us: int
    drain_us: int
    network: NetworkSpec
    dam: DamSpec
    upstreams: tuple[UpstreamSpec, ...]
    receivers: tuple[ReceiverSpec, ...]
    workloads: tuple[WorkloadSpec, ...]
    windows: tuple[WindowSpec, ...] = ()

    @property
    def horizon_us(self) -> int:
        return self.duration_us + self.drain_us


def _latency(lat: Latency) -> LatencySpec:
    return LatencySpec(median_us=parse_duration(lat.median), p99_us=parse_duration(lat.p99),
                       slow_fraction=lat.slow_fraction, slow_factor=lat.slow_factor)


def _outage(o: Outage) -> OutageSpec:
    return OutageSpec(
        start_us=parse_duration(o.start), end_us=parse_duration(o.end), mode=o.mode,
        statuses={int(k): w for k, w in sorted(o.statuses.items(), key=lambda kv: int(kv[0]))
                  if w > 0},
        fraction=o.fraction, factor=o.factor, regions=tuple(o.regions), servers=o.servers,
        retry_after_us=parse_duration(o.retry_after) if o.retry_after else None)


def _backoff(b: BackoffCfg) -> Backoff:
    return Backoff(kind=b.kind, base_us=parse_duration(b.base), cap_us=parse_duration(b.cap))


def upstream_spec(u: Upstream) -> UpstreamSpec:
    return UpstreamSpec(
        name=u.name, url=u.url, domain=domain_of(u.url), servers=u.servers,
        service_us=parse_duration(u.service), queue=u.queue, rate_limit=u.rate_limit,
        rate_burst=u.rate_burst, idempotency=u.idempotency, advertise_rps=u.advertise.rps,
        advertise_max_concurrent=u.advertise.max_concurrent, latency=_latency(u.latency),
        region_latency={r: _latency(x) for r, x in u.region_latency.items()},
        outages=tuple(_outage(o) for o in u.outages), model=u.model,
        service=ServiceSpec(
            kind=u.service_time.kind, mean_us=parse_duration(u.service),
            median_us=parse_duration(u.service_time.median) if u.service_time.median else 0,
            p99_us=parse_duration(u.service_time.p99) if u.service_time.p99 else 0,
            values_us=tuple(parse_duration(v) for v in u.service_time.values),
            slow_fraction=u.service_time.slow_fraction,
            slow_factor=u.service_time.slow_factor),
        defences=DefencesSpec(
            drop_expired=u.defences.drop_expired, lifo_above=u.defences.lifo_above,
            codel_target_us=parse_duration(u.defences.codel_target)
            if u.defences.codel_target else None,
            codel_interval_us=parse_duration(u.defences.codel_interval)),
        contention_keys=u.contention_keys)


def receiver_spec(r: Receiver) -> ReceiverSpec:
    return ReceiverSpec(name=r.name, url=r.url, domain=domain_of(r.url),
                        latency=_latency(r.latency), outages=tuple(_outage(o) for o in r.outages))


def resolve(sc: Scenario) -> ResolvedScenario:
    """``sc`` must have passed ``load_scenario`` (its cross-field checks)."""
    us = parse_duration
    duration = us(sc.duration)
    net = sc.network
    pairs: dict[str, int] = {}
    for key, value in net.regions.items():
        a, b = key.split("-")
        pairs[f"{a}-{b}"] = pairs[f"{b}-{a}"] = us(value)
    d = sc.dam
    for a in d.regions:  # pairs the scenario does not give: the default
        for b in d.regions:
            if a != b:
                pairs.setdefault(f"{a}-{b}", us(DEFAULT_REGION_LATENCY))
    br, pc = d.breaker, d.pacing
    dam = DamSpec(
        regions=tuple(d.regions), default_region=d.regions[0],
        gateway_region=d.gateway_region or d.regions[0], tier=d.tier,
        attempt_timeout_us=us(d.attempt_timeout), webhook_timeout_us=us(d.webhook_timeout),
        webhook_schedule_us=tuple(us(x) for x in d.webhook_schedule),
        limiter=LimiterConfig(rate=d.limiter.rate, burst=d.limiter.burst,
                              max_concurrent=d.limiter.max_concurrent),
        breaker=BreakerConfig(
            enabled=br.enabled, failure_rate=br.failure_rate, window_calls=br.window_calls,
            window_us=us(br.window), min_calls=br.min_calls, open_us=us(br.open),
            max_open_us=us(br.max_open), probes=br.probes,
            probe_interval_us=us(br.probe_interval)),
        pacing=PacingConfig(
            slow_start_us=us(pc.slow_start), slow_start_floor=pc.slow_start_floor,
            adaptive=pc.adaptive, min_rate=pc.min_rate, beta=pc.beta, scale=pc.scale),
        backoff=_backoff(d.backoff),
        outages=tuple(RegionOutage(region=o.region, start=us(o.start), end=us(o.end))
                      for o in d.outages),
        webhook_secret=d.webhook_secret)
    upstreams = tuple(upstream_spec(u) for u in sc.upstreams)
    receivers = tuple(receiver_spec(r) for r in sc.receivers)
    domains = {u.name: u.domain for u in upstreams}
    workloads = []
    for i, w in enumerate(sc.workloads):
        dy = w.diy
        cb = dy.breaker
        workloads.append(WorkloadSpec(
            index=i, name=w.name, upstream=w.upstream, domain=domains[w.upstream], path=w.path,
            method=w.method, payload_bytes=w.payload_bytes, customer=w.customer,
            strategy=w.strategy,
            arrivals=ArrivalsSpec(process=w.arrivals.process, rate=w.arrivals.rate,
                                  segments=tuple(SegmentSpec(until_us=us(s.until), rate=s.rate)
                                                 for s in w.arrivals.segments),
                                  file=w.arrivals.file),
            start_us=us(w.start), stop_us=us(w.stop) if w.stop else duration,
            resubmit_fraction=w.resubmit_fraction,
            diy=DiySpec(
                retries=dy.retries, backoff=_backoff(dy.backoff), timeout_us=us(dy.timeout),
                concurrency=dy.concurrency, idempotency_key=dy.idempotency_key,
                budget=dy.budget,
                adaptive=AdaptiveSpec(k=dy.adaptive.k, window_us=us(dy.adaptive.window))
                if dy.adaptive else None,
                honor_retry_after=dy.honor_retry_after, retry_quota=dy.retry_quota,
                rate_limiter=dy.rate_limiter, concurrent_retry_budget=dy.concurrent_retry_budget,
                breaker=ClientBreakerSpec(
                    failure_rate=cb.failure_rate, window_calls=cb.window_calls,
                    min_calls=cb.min_calls, open_us=us(cb.open),
                    half_open_calls=cb.half_open_calls) if cb else None),
            frugal=FrugalSpec(local_timeout_us=us(w.frugal.local_timeout),
                              fallback_on_error=tuple(w.frugal.fallback_on_error)),
            step=dict(w.step)))
    return ResolvedScenario(
        scenario=sc, duration_us=duration, drain_us=us(sc.drain),
        network=NetworkSpec(client_to_gateway_us=us(net.client_to_gateway),
                            intra_us=us(net.intra_region), to_upstream_us=us(net.to_upstream),
                            between_regions_us=pairs, jitter_kind=net.jitter.kind,
                            jitter_scale_us=us(net.jitter.scale)),
        dam=dam, upstreams=upstreams, receivers=receivers, workloads=tuple(workloads),
        windows=tuple(WindowSpec(name=w.name, start_us=us(w.start), end_us=us(w.end))
                      for w in sc.windows))
