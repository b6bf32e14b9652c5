"""The scenario schema: TOML → typed, validated Structs (msgspec), exactly as the user wrote it.

Durations are strings (``"250ms"``, ``"5m"``, ``"5m30s"``; units us, ms, s, m, h), rates are
numbers per second. Defaults that are the engine's own (limiter, breaker, pacing, backoff,
webhook schedule, FRUGAL codes, secret length) are read from the engine's constants, so there is
one source for each. ``sim.scenario.resolved`` turns a validated scenario into µs records.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

from engine.billing import TierName
from engine.breaker import BreakerConfig
from engine.errors import ApidamError
from engine.job import DEFAULT_ATTEMPT_TIMEOUT_US
from engine.limiter import LimiterConfig
from engine.pacing import PacingConfig
from engine.retry import Backoff, BackoffKind
from engine.step import DEFAULT_FALLBACK_ON_ERROR, DEFAULT_LOCAL_TIMEOUT_S
from engine.units import US_PER_MS, US_PER_S
from engine.webhooks import DEFAULT_SCHEDULE_US, DEFAULT_WEBHOOK_TIMEOUT_US

__all__ = [
    "DEFAULT_REGION_LATENCY", "Adaptive", "Advertise", "Arrivals", "BackoffCfg", "Breaker",
    "Budget", "ClientBreakerCfg",
    "ConcurrentRetryBudget", "Costs", "Dam", "Defences", "Diy", "Frugal", "Jitter", "Latency",
    "Limiter", "Network",
    "Outage", "Pacing", "RateLimiter", "Receiver", "RegionOutage", "RetryQuota", "Scenario",
    "ScenarioError", "Segment", "ServiceTime", "Upstream", "Window", "Workload",
    "format_duration",
    "parse_duration",
]

DEFAULT_REGION_LATENCY = "25ms"  # one way, between dam regions the scenario does not list
_UNITS = {"us": 1, "ms": US_PER_MS, "s": US_PER_S, "m": 60 * US_PER_S, "h": 3600 * US_PER_S}


class ScenarioError(ApidamError):
    """A scenario's problems: the first as ``path`` / ``reason``, all of them (one line each,
    in file order) as ``problems``."""

    def __init__(self, path: str, reason: str, file: str | None = None) -> None:
        self.path = path
        self.reason = reason
        self.file = file
        self.problems: list[tuple[str, str]] = [(path, reason)]
        super().__init__(f"{file + ': ' if file else ''}{path}: {reason}")

    def lines(self) -> list[str]:
        prefix = f"{self.file}: " if self.file else ""
        return [f"{prefix}{p}: {r}" for p, r in self.problems]


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")


def format_duration(us: int) -> str:
    """The inverse of :func:`parse_duration` for whole units: 5000000 → ``"5s"``, 0 → ``"0s"``."""
    if us == 0:
        return "0s"
    for unit in ("h", "m", "s", "ms"):
        if us % _UNITS[unit] == 0:
            return f"{us // _UNITS[unit]}{unit}"
    return f"{us}us"


def parse_duration(text: str) -> int:
    """``"250ms"`` → 250000, ``"5m30s"`` → 330000000 (µs)."""
    if not re.fullmatch(r"(?:\d+(?:\.\d+)?(?:us|ms|s|m|h))+", text):
        raise ValueError(f"not a duration: {text!r}")
    return round(sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text)))



Duration = Annotated[str, msgspec.Meta(pattern=r"^(\d+(\.\d+)?(us|ms|s|m|h))+$")]
Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
# a scenario's name is also its output folder: letters, digits, '.', '_', '-', no path parts
ScenarioName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
#: Limits that keep a run's memory and time bounded whatever a scenario says (documented in
#: docs/SCENARIOS.md, "Limits").
MAX_RATE = 1_000_000.0  # requests/s: an arrival rate, a rate limit, a pace
MAX_COUNT = 1_000_000  # concurrency caps, bursts, queues, tokens
MAX_SERVERS = 100_000  # an upstream's servers (a list entry each)
MAX_FACTOR = 1000.0  # slow-mode and outage latency factors
MAX_DURATION_US = 30 * 24 * 3600 * 1_000_000  # any duration: 30 days
#: jobs a run may expect (the arrival processes' means, summed over workloads; a trace file's
#: lines): a job alive in a backlog holds 1.1-4.7 KB, so even if every job waits at once the
#: run stays under ~15 GB (a 1,000,000-job run of the benchmarks peaks at 642 MB)
MAX_JOBS = 3_000_000
#: one-second slots of the run's time series (2 per workload, 5 per upstream, over duration +
#: drain): 8 bytes each while the run lasts, again as arrays at its end, so at most ~2 GB
MAX_SERIES_SLOTS = 125_000_000
Rate = Annotated[float, msgspec.Meta(ge=0, le=MAX_RATE)]
Count = Annotated[int, msgspec.Meta(ge=1, le=MAX_COUNT)]
Factor = Annotated[float, msgspec.Meta(ge=1, le=MAX_FACTOR)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
Share = Annotated[float, msgspec.Meta(gt=0, le=1)]

class _S(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class Latency(_S, kw_only=True):
    median: Duration = "50ms"
    p99: Duration = "250ms"
    slow_fraction: Fraction = 0.0
    slow_factor: Factor = 10.0


class Outage(_S, kw_only=True):
    start: Duration
    end: Duration
    mode: Literal["error", "slow", "blackhole", "partial", "capacity"] = "error"
    statuses: dict[str, Annotated[float, msgspec.Meta(ge=0, le=1e9)]] = msgspec.field(
        default_factory=lambda: {"503": 1.0})
    fraction: Fraction = 0.5
    factor: Factor = 10.0
    servers: Annotated[int, msgspec.Meta(ge=1, le=MAX_SERVERS)] | None = None  # capacity
    retry_after: Duration | None = None
    regions: list[str] = msgspec.field(default_factory=list)


class Advertise(_S, kw_only=True):
    rps: Annotated[float, msgspec.Meta(gt=0, le=MAX_RATE)] | None = None
    max_concurrent: Count | None = None


class ServiceTime(_S, kw_only=True):
    """``[upstreams.service_time]`` (``model = "queue"``): how long a request holds a server."""

    kind: Literal["exponential", "constant", "lognormal", "empirical"] = "exponential"
    median: Duration | None = None  # lognormal
    p99: Duration | None = None  # lognormal
    values: list[Duration] = msgspec.field(default_factory=list)  # empirical: drawn uniformly
    slow_fraction: Fraction = 0.0  # a slow mode: that share of requests x slow_factor
    slow_factor: Factor = 10.0


class Defences(_S, kw_only=True):
    """``[upstreams.defences]`` (``model = "queue"``): server-side overload defences."""

    drop_expired: bool = False  # drop a queued request whose caller already gave up, unserved
    lifo_above: Count | None = None  # serve the newest first while the queue is longer
    codel_target: Duration | None = None  # CoDel: the acceptable standing queueing delay
    codel_interval: Duration = "100ms"  # CoDel: how long above target before dropping


class Upstream(_S, kw_only=True):
    name: Name
    url: str
    # legacy: FCFS capacity, answer = service start + an independent latency draw;
    # queue: the answer leaves when service ends, + the network; latency: infinite servers
    model: Literal["legacy", "queue", "latency"] = "queue"
    servers: Annotated[int, msgspec.Meta(ge=1, le=MAX_SERVERS)] = 200
    service: Duration = "20ms"  # the mean service time (exponential and constant)
    service_time: ServiceTime = ServiceTime()
    defences: Defences = Defences()
    # queue model: requests conflict on key (logical request mod this): optimistic concurrency
    contention_keys: Annotated[int, msgspec.Meta(ge=1, le=MAX_COUNT)] | None = None
    queue: Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)] = 1000
    rate_limit: Rate = 0.0  # own token bucket, requests/s; 0 = none
    rate_burst: Count = 1
    idempotency: bool = False
    usd_per_attempt: Rate = 0.0  # what the API bills per call (successful ones by default)
    bill_errors: bool = False  # ... and per failed call too
    advertise: Advertise = Advertise()
    latency: Latency = Latency()
    region_latency: dict[str, Latency] = msgspec.field(default_factory=dict)
    outages: list[Outage] = msgspec.field(default_factory=list)


class Receiver(_S, kw_only=True):
    name: Name
    url: str
    latency: Latency = Latency(median="30ms", p99="150ms")
    outages: list[Outage] = msgspec.field(default_factory=list)


class Segment(_S, kw_only=True):
    until: Duration
    rate: Rate


class Arrivals(_S, kw_only=True):
    process: Literal["poisson", "constant", "piecewise", "trace"] = "poisson"
    rate: Rate = 1.0
    segments: list[Segment] = msgspec.field(default_factory=list)
    file: str | None = None


_BACKOFF = Backoff()


class BackoffCfg(_S, kw_only=True):
    kind: BackoffKind = _BACKOFF.kind
    base: Duration = format_duration(_BACKOFF.base_us)
    cap: Duration = format_duration(_BACKOFF.cap_us)


class Budget(_S, kw_only=True):
    max_tokens: Annotated[float, msgspec.Meta(gt=0, le=MAX_COUNT)] = 10.0
    token_ratio: Annotated[float, msgspec.Meta(ge=0, le=MAX_COUNT)] = 0.1


class Adaptive(_S, kw_only=True):
    k: Annotated[float, msgspec.Meta(ge=1, le=MAX_FACTOR)] = 2.0
    window: Duration = "2m"


class RetryQuota(_S, kw_only=True):
    """AWS SDK standard mode's retry quota (defaults: the SDKs')."""

    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 500
    retry_cost: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 5
    timeout_cost: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 10
    success_refund: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 1


class RateLimiter(_S, kw_only=True):
    """AWS SDK adaptive mode's client-side rate limiter (CUBIC; defaults: the SDKs')."""

    beta: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.7
    scale: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)] = 0.4
    min_rate: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)] = 0.5
    smoothing: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.8


class ConcurrentRetryBudget(_S, kw_only=True):
    """Envoy's retry budget (defaults: Envoy's)."""

    percent: Annotated[float, msgspec.Meta(gt=0, le=100)] = 20.0
    min_concurrency: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 3


class ClientBreakerCfg(_S, kw_only=True):
    """A Resilience4j circuit breaker in the client (defaults: Resilience4j's)."""

    failure_rate: Share = 0.5
    window_calls: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 100
    min_calls: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 100
    open: Duration = "60s"
    half_open_calls: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 10


class Diy(_S, kw_only=True):
    retries: Annotated[int, msgspec.Meta(ge=0, le=100)] = 3
    backoff: BackoffCfg = BackoffCfg()
    timeout: Duration = "10s"
    concurrency: Count = 1000
    idempotency_key: bool = False
    budget: Budget | None = None
    adaptive: Adaptive | None = None
    honor_retry_after: bool = False
    retry_quota: RetryQuota | None = None
    rate_limiter: RateLimiter | None = None
    concurrent_retry_budget: ConcurrentRetryBudget | None = None
    breaker: ClientBreakerCfg | None = None


class Frugal(_S, kw_only=True):
    local_timeout: Duration = format_duration(round(DEFAULT_LOCAL_TIMEOUT_S * US_PER_S))
    fallback_on_error: list[int] = msgspec.field(
        default_factory=lambda: list(DEFAULT_FALLBACK_ON_ERROR))


class Workload(_S, kw_only=True):
    name: Name
    upstream: Name
    path: str = "/"
    method: str = "POST"
    payload_bytes: Annotated[int, msgspec.Meta(ge=0, le=1 << 30)] = 1024
    customer: str = "cust_default"
    value_per_job_usd: Rate | None = None  # overrides [costs] value_per_job_usd
    strategy: Literal["diy", "performance", "frugal"] = "diy"
    arrivals: Arrivals = Arrivals()
    start: Duration = "0s"
    stop: Duration | None = None
    resubmit_fraction: Fraction = 0.0
    diy: Diy = Diy()
    frugal: Frugal = Frugal()
    step: dict[str, Any] = msgspec.field(default_factory=dict)


class RegionOutage(_S, kw_only=True):
    region: str
    start: Duration
    end: Duration


_LIMITER = LimiterConfig()


class Limiter(_S, kw_only=True):
    rate: Annotated[float, msgspec.Meta(gt=0, le=MAX_RATE)] = _LIMITER.rate
    burst: Count = _LIMITER.burst
    max_concurrent: Count = _LIMITER.max_concurrent


_BREAKER = BreakerConfig()
_PACING = PacingConfig()


class Breaker(_S, kw_only=True):
    """``[dam.breaker]``: the per-domain circuit breaker (defaults: ``engine.breaker``)."""

    enabled: bool = _BREAKER.enabled
    failure_rate: Share = _BREAKER.failure_rate
    window_calls: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = _BREAKER.window_calls
    window: Duration = format_duration(_BREAKER.window_us)
    min_calls: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = _BREAKER.min_calls
    open: Duration = format_duration(_BREAKER.open_us)
    max_open: Duration = format_duration(_BREAKER.max_open_us)
    probes: Annotated[int, msgspec.Meta(ge=1, le=1000)] = _BREAKER.probes
    probe_interval: Duration = format_duration(_BREAKER.probe_interval_us)


class Pacing(_S, kw_only=True):
    """``[dam.pacing]``: slow start and the adaptive pace (defaults: ``engine.pacing``)."""

    slow_start: Duration = format_duration(_PACING.slow_start_us)
    slow_start_floor: Share = _PACING.slow_start_floor
    adaptive: bool = _PACING.adaptive
    min_rate: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)] = _PACING.min_rate
    beta: Annotated[float, msgspec.Meta(gt=0, lt=1)] = _PACING.beta
    scale: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)] = _PACING.scale


class Dam(_S, kw_only=True):
    regions: list[Name] = msgspec.field(default_factory=lambda: ["iad"])
    gateway_region: str | None = None
    tier: TierName = "growth"
    attempt_timeout: Duration = format_duration(DEFAULT_ATTEMPT_TIMEOUT_US)
    webhook_timeout: Duration = format_duration(DEFAULT_WEBHOOK_TIMEOUT_US)
    webhook_schedule: list[Duration] = msgspec.field(
        default_factory=lambda: [format_duration(d) for d in DEFAULT_SCHEDULE_US])
    limiter: Limiter = Limiter()
    breaker: Breaker = Breaker()
    pacing: Pacing = Pacing()
    backoff: BackoffCfg = BackoffCfg()
    outages: list[RegionOutage] = msgspec.field(default_factory=list)
    webhook_secret: str | None = None


class Jitter(_S, kw_only=True):
    """``[network.jitter]``: extra delay per message on the internet links (sim/jitter.py)."""

    kind: Literal["none", "exponential", "uniform"] = "none"
    scale: Duration = "0s"  # exponential: the mean; uniform: the maximum


class Network(_S, kw_only=True):
    client_to_gateway: Duration = "20ms"
    intra_region: Duration = "500us"
    to_upstream: Duration = "1ms"
    regions: dict[str, Duration] = msgspec.field(default_factory=dict)  # "iad-lax" = "30ms"
    jitter: Jitter = Jitter()


class Window(_S, kw_only=True):
    """``[[windows]]``: a stretch of the run measured on its own (e.g. before / during / after
    the outage): ``windows.<name>.<workload>`` in ``summary.json``."""

    name: Name
    start: Duration
    end: Duration


class Costs(_S, kw_only=True):
    egress_usd_per_gb: Rate = 0.09
    invocation_usd_per_million: Rate = 0.20
    gb_second_usd: Rate = 0.0000166667
    memory_gb: Rate = 0.5
    queue_usd_per_million: Rate = 0.40
    # what an outage costs beyond infrastructure (0 = not counted; see docs/SCENARIOS.md)
    value_per_job_usd: Rate = 0.0  # revenue lost per job failed or still pending at the end
    refund_usd_per_duplicate: Rate = 0.0  # per duplicate execution (a double charge refunded)


class Scenario(_S, kw_only=True):
    name: ScenarioName
    description: str = ""
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 0
    duration: Duration
    drain: Duration = "10m"
    network: Network = Network()
    dam: Dam = Dam()
    upstreams: list[Upstream]
    receivers: list[Receiver] = msgspec.field(default_factory=list)
    workloads: list[Workload]
    windows: list[Window] = msgspec.field(default_factory=list)
    costs: Costs = Costs()

    def upstream(self, name: str) -> Upstream:
        return next(u for u in self.upstreams if u.name == name)
