"""Scenario files: TOML → validated, typed :class:`Scenario` (msgspec), with exact error paths.

Durations are strings (``"250ms"``, ``"5m"``, ``"5m30s"``; units us, ms, s, m, h),
rates are numbers per second. ``--set path=value`` overrides any field before validation
(``workloads.diy-immediate.arrivals.rate=500``: list items can be named by index or by ``name``).
Every problem raises :class:`ScenarioError` with the path and what was expected.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import msgspec.inspect

from engine.breaker import BreakerConfig
from engine.errors import ApidamError
from engine.pacing import PacingConfig
from engine.retry import BACKOFF_KINDS
from engine.spec import SpecError, domain_of, parse_job

__all__ = [
    "Scenario",
    "ScenarioError",
    "apply_override",
    "load_scenario",
    "parse_duration",
]

Duration = Annotated[str, msgspec.Meta(pattern=r"^(\d+(\.\d+)?(us|ms|s|m|h))+$")]
Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
Rate = Annotated[float, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
PosInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
Share = Annotated[float, msgspec.Meta(gt=0, le=1)]

_UNITS = {"us": 1, "ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000}


class ScenarioError(ApidamError):
    def __init__(self, path: str, reason: str, file: str | None = None) -> None:
        self.path = path
        self.reason = reason
        self.file = file
        super().__init__(f"{file + ': ' if file else ''}{path}: {reason}")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")


def format_duration(us: int) -> str:
    """The inverse of :func:`parse_duration` for whole units: 5000000 → ``"5s"``."""
    for unit in ("h", "m", "s", "ms"):
        if us and us % _UNITS[unit] == 0:
            return f"{us // _UNITS[unit]}{unit}"
    return f"{us}us"


def parse_duration(text: str) -> int:
    """``"250ms"`` → 250000, ``"5m30s"`` → 330000000 (µs)."""
    if not re.fullmatch(r"(?:\d+(?:\.\d+)?(?:us|ms|s|m|h))+", text):
        raise ValueError(f"not a duration: {text!r}")
    return round(sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text)))


class _S(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class Latency(_S, kw_only=True):
    median: Duration = "50ms"
    p99: Duration = "250ms"
    slow_fraction: Fraction = 0.0
    slow_factor: Annotated[float, msgspec.Meta(ge=1)] = 10.0


class Outage(_S, kw_only=True):
    start: Duration
    end: Duration
    mode: Literal["error", "slow", "blackhole", "partial"] = "error"
    statuses: dict[str, float] = msgspec.field(default_factory=lambda: {"503": 1.0})
    fraction: Fraction = 0.5
    factor: Annotated[float, msgspec.Meta(ge=1)] = 10.0
    retry_after: Duration | None = None
    regions: list[str] = msgspec.field(default_factory=list)


class Advertise(_S, kw_only=True):
    rps: float | None = None
    max_concurrent: int | None = None


class Upstream(_S, kw_only=True):
    name: Name
    url: str
    servers: PosInt = 200
    service: Duration = "20ms"
    queue: NonNegInt = 1000
    rate_limit: Rate = 0.0  # own token bucket, requests/s; 0 = none
    rate_burst: PosInt = 1
    idempotency: bool = False
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


class BackoffCfg(_S, kw_only=True):
    kind: str = "full_jitter"
    base: Duration = "1s"
    cap: Duration = "60s"


class Budget(_S, kw_only=True):
    max_tokens: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    token_ratio: Annotated[float, msgspec.Meta(ge=0)] = 0.1


class Adaptive(_S, kw_only=True):
    k: Annotated[float, msgspec.Meta(ge=1)] = 2.0
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
    retries: NonNegInt = 3
    backoff: BackoffCfg = BackoffCfg()
    timeout: Duration = "10s"
    concurrency: PosInt = 1000
    idempotency_key: bool = False
    budget: Budget | None = None
    adaptive: Adaptive | None = None
    honor_retry_after: bool = False
    retry_quota: RetryQuota | None = None
    rate_limiter: RateLimiter | None = None
    concurrent_retry_budget: ConcurrentRetryBudget | None = None
    breaker: ClientBreakerCfg | None = None


class Frugal(_S, kw_only=True):
    local_timeout: Duration = "30s"
    fallback_on_error: list[int] = msgspec.field(
        default_factory=lambda: [429, 500, 502, 503, 504])


class Workload(_S, kw_only=True):
    name: Name
    upstream: Name
    path: str = "/"
    method: str = "POST"
    payload_bytes: NonNegInt = 1024
    customer: str = "cust_default"
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


class Limiter(_S, kw_only=True):
    rate: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    burst: PosInt = 1
    max_concurrent: PosInt = 2


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
    tier: Literal["free", "indie", "growth", "pro"] = "growth"
    attempt_timeout: Duration = "30s"
    webhook_timeout: Duration = "10s"
    webhook_schedule: list[Duration] = msgspec.field(
        default_factory=lambda: ["0s", "1s", "5s", "30s", "2m", "10m", "30m", "1h"])
    limiter: Limiter = Limiter()
    breaker: Breaker = Breaker()
    pacing: Pacing = Pacing()
    backoff: BackoffCfg = BackoffCfg()
    outages: list[RegionOutage] = msgspec.field(default_factory=list)
    webhook_secret: str | None = None


class Network(_S, kw_only=True):
    client_to_gateway: Duration = "20ms"
    intra_region: Duration = "500us"
    to_upstream: Duration = "1ms"
    regions: dict[str, Duration] = msgspec.field(default_factory=dict)  # "iad-lax" = "30ms"


class Costs(_S, kw_only=True):
    egress_usd_per_gb: Rate = 0.09
    invocation_usd_per_million: Rate = 0.20
    gb_second_usd: Rate = 0.0000166667
    memory_gb: Rate = 0.5
    queue_usd_per_million: Rate = 0.40


class Scenario(_S, kw_only=True):
    name: str
    description: str = ""
    seed: NonNegInt = 0
    duration: Duration
    drain: Duration = "10m"
    network: Network = Network()
    dam: Dam = Dam()
    upstreams: list[Upstream]
    receivers: list[Receiver] = msgspec.field(default_factory=list)
    workloads: list[Workload]
    costs: Costs = Costs()

    # -- derived (validated by load_scenario) --------------------------------------------------
    def us(self, value: str) -> int:
        return parse_duration(value)

    def upstream(self, name: str) -> Upstream:
        return next(u for u in self.upstreams if u.name == name)


def _msgspec_error(e: msgspec.ValidationError) -> tuple[str, str]:
    text = str(e)
    m = re.match(r"^(?P<msg>.*?)(?: - at `(?P<path>[^`]*)`)?$", text, re.S)
    msg, path = m.group("msg"), m.group("path") or "$"
    missing = re.match(r"Object missing required field `(\w+)`", msg)
    if missing:
        return (f"{path}.{missing.group(1)}" if path != "$" else f"$.{missing.group(1)}",
                "required field is missing")
    unknown = re.match(r"Object contains unknown field `([^`]+)`", msg)
    if unknown:
        return (f"{path}.{unknown.group(1)}" if path != "$" else f"$.{unknown.group(1)}",
                "unknown field")
    msg = msg.replace("Expected `", "expected `").replace(" | null`", "`")
    if msg.startswith("Invalid enum value"):
        choices = _literal_choices(path)
        if choices:
            msg += f" (expected one of {', '.join(repr(c) for c in choices)})"
    if "(us|ms|s|m|h)" in msg:
        msg = "expected a duration like \"250ms\", \"30s\", \"5m30s\" (units us, ms, s, m, h)"
    elif "matching regex" in msg:
        msg = "expected a lowercase name (letters, digits, '-' and '_')"
    return path, msg


def _literal_choices(path: str) -> tuple | None:
    """The allowed values of the Literal field at ``path`` (``$.workloads[0].strategy``)."""
    t: Any = msgspec.inspect.type_info(Scenario)
    for seg in re.findall(r"\.(\w+)|\[\d+\]", path):
        while isinstance(t, msgspec.inspect.UnionType):
            t = next(x for x in t.types if not isinstance(x, msgspec.inspect.NoneType))
        if isinstance(t, msgspec.inspect.ListType):
            t = t.item_type
        if not seg:
            continue
        if not isinstance(t, msgspec.inspect.StructType):
            return None
        field = next((f for f in t.fields if f.name == seg), None)
        if field is None:
            return None
        t = field.type
    while isinstance(t, msgspec.inspect.UnionType):
        t = next(x for x in t.types if not isinstance(x, msgspec.inspect.NoneType))
    return tuple(t.values) if isinstance(t, msgspec.inspect.LiteralType) else None


def _find(doc: Any, seg: str, path: str) -> tuple[Any, Any]:
    """Resolve one override path segment in ``doc``: (container, key)."""
    if isinstance(doc, list):
        if seg.isdigit():
            i = int(seg)
            if i >= len(doc):
                raise ScenarioError(path, f"index {i} out of range ({len(doc)} items)")
            return doc, i
        for i, item in enumerate(doc):
            if isinstance(item, dict) and item.get("name") == seg:
                return doc, i
        raise ScenarioError(path, f"no item named {seg!r}")
    if isinstance(doc, dict):
        return doc, seg
    raise ScenarioError(path, "cannot descend into a scalar")


def apply_override(doc: dict, assignment: str) -> None:
    """Apply ``path=value`` to the raw TOML document (value parsed as TOML, else a string)."""
    if "=" not in assignment:
        raise ScenarioError("--set", f"expected path=value, got {assignment!r}")
    path, raw = assignment.split("=", 1)
    path = path.strip()
    if not path:
        raise ScenarioError("--set", "empty path")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    node: Any = doc
    segs = path.split(".")
    for seg in segs[:-1]:
        container, key = _find(node, seg, path)
        if isinstance(container, dict) and key not in container:
            container[key] = {}
        node = container[key]
    container, key = _find(node, segs[-1], path)
    container[key] = value


def _checks(sc: Scenario) -> None:
    def err(path: str, reason: str):
        raise ScenarioError(path, reason)

    def dur(path: str, value: str) -> int:
        return parse_duration(value)

    regions = sc.dam.regions
    if not regions:
        err("$.dam.regions", "at least one region is required")
    if len(set(regions)) != len(regions):
        err("$.dam.regions", "region names must be unique")
    if sc.dam.gateway_region is not None and sc.dam.gateway_region not in regions:
        err("$.dam.gateway_region", f"not one of the dam's regions {regions}")
    if dur("$.duration", sc.duration) <= 0:
        err("$.duration", "must be > 0")
    for key in sc.network.regions:
        pair = key.split("-")
        if len(pair) != 2 or not all(p in regions for p in pair):
            err(f"$.network.regions.{key}", f"expected 'a-b' with a, b among {regions}")
    for name in ("client_to_gateway", "intra_region", "to_upstream"):
        if dur(f"$.network.{name}", getattr(sc.network, name)) <= 0:
            err(f"$.network.{name}", "every link latency must be > 0")
    for key, value in sc.network.regions.items():
        if dur(f"$.network.regions.{key}", value) <= 0:
            err(f"$.network.regions.{key}", "every link latency must be > 0")
    if not sc.dam.webhook_schedule:
        err("$.dam.webhook_schedule", "at least one delay is required")
    for i, o in enumerate(sc.dam.outages):
        if o.region not in regions:
            err(f"$.dam.outages[{i}].region", f"not one of the dam's regions {regions}")
        if dur("", o.end) <= dur("", o.start):
            err(f"$.dam.outages[{i}].end", "must be after start")
    for name in ("attempt_timeout", "webhook_timeout"):
        if dur("", getattr(sc.dam, name)) < 4 * max_link_us(sc):
            err(f"$.dam.{name}", "must be at least 4x the largest link latency")
    br = sc.dam.breaker
    if br.min_calls > br.window_calls:
        err("$.dam.breaker.min_calls", f"must be <= window_calls ({br.window_calls})")
    for name in ("window", "open"):
        if dur("", getattr(br, name)) <= 0:
            err(f"$.dam.breaker.{name}", "must be > 0")
    if dur("", br.max_open) < dur("", br.open):
        err("$.dam.breaker.max_open", f"must be >= open ({br.open})")
    if sc.dam.backoff.kind not in BACKOFF_KINDS:
        err("$.dam.backoff.kind", f"expected one of {', '.join(BACKOFF_KINDS)}")
    if sc.dam.webhook_secret is not None and len(sc.dam.webhook_secret) < 16:
        err("$.dam.webhook_secret", "must be at least 16 characters")

    names = [u.name for u in sc.upstreams]
    if not names:
        err("$.upstreams", "at least one upstream is required")
    if len(set(names)) != len(names):
        err("$.upstreams", "upstream names must be unique")
    domains: dict[str, str] = {}
    for i, u in enumerate(sc.upstreams):
        p = f"$.upstreams[{i}]"
        try:
            parse_job({"url": u.url}, "scenario")
        except SpecError as e:
            err(f"{p}.url", e.reason)
        d = domain_of(u.url)
        if d in domains:
            err(f"{p}.url", f"domain {d} is already upstream {domains[d]!r}")
        domains[d] = u.name
        _check_latency(u.latency, f"{p}.latency")
        for r, lat in u.region_latency.items():
            if r not in regions and r != "client":
                err(f"{p}.region_latency.{r}", f"not a dam region {regions} or 'client'")
            _check_latency(lat, f"{p}.region_latency.{r}")
        if u.advertise.rps is not None and not u.advertise.rps > 0:
            err(f"{p}.advertise.rps", "must be > 0")
        if u.advertise.max_concurrent is not None and u.advertise.max_concurrent < 1:
            err(f"{p}.advertise.max_concurrent", "must be >= 1")
        for j, o in enumerate(u.outages):
            _check_outage(o, f"{p}.outages[{j}]", [*regions, "client"])

    rnames = [r.name for r in sc.receivers]
    if len(set(rnames)) != len(rnames):
        err("$.receivers", "receiver names must be unique")
    receiver_domains = set()
    for i, r in enumerate(sc.receivers):
        try:
            parse_job({"url": r.url}, "scenario")
        except SpecError as e:
            err(f"$.receivers[{i}].url", e.reason)
        receiver_domains.add(domain_of(r.url))
        _check_latency(r.latency, f"$.receivers[{i}].latency")
        for j, o in enumerate(r.outages):
            _check_outage(o, f"$.receivers[{i}].outages[{j}]", regions)

    wnames = [w.name for w in sc.workloads]
    if not wnames:
        err("$.workloads", "at least one workload is required")
    if len(set(wnames)) != len(wnames):
        err("$.workloads", "workload names must be unique")
    for i, w in enumerate(sc.workloads):
        p = f"$.workloads[{i}]"
        if w.upstream not in names:
            err(f"{p}.upstream", f"no upstream named {w.upstream!r} (have {', '.join(names)})")
        a = w.arrivals
        if a.process == "piecewise" and not a.segments:
            err(f"{p}.arrivals.segments", "piecewise arrivals need at least one segment")
        if a.process == "trace" and not a.file:
            err(f"{p}.arrivals.file", "trace arrivals need a CSV file of timestamps")
        if w.diy.backoff.kind not in BACKOFF_KINDS:
            err(f"{p}.diy.backoff.kind", f"expected one of {', '.join(BACKOFF_KINDS)}")
        cb = w.diy.breaker
        if cb is not None:
            if cb.min_calls > cb.window_calls:
                err(f"{p}.diy.breaker.min_calls",
                    f"must be <= window_calls ({cb.window_calls})")
            if dur("", cb.open) <= 0:
                err(f"{p}.diy.breaker.open", "must be > 0")
        if dur("", w.diy.timeout) < 4 * max_link_us(sc):
            err(f"{p}.diy.timeout", "must be at least 4x the largest link latency")
        if dur("", w.frugal.local_timeout) < 4 * max_link_us(sc):
            err(f"{p}.frugal.local_timeout", "must be at least 4x the largest link latency")
        for j, code in enumerate(w.frugal.fallback_on_error):
            if not 100 <= code <= 599:
                err(f"{p}.frugal.fallback_on_error[{j}]", "HTTP status must be 100-599")
        if w.strategy != "diy":
            payload = {**w.step, "url": sc.upstream(w.upstream).url.rstrip("/") + w.path,
                       "method": w.method}
            try:
                spec = parse_job(payload, w.customer)
            except SpecError as e:
                err(f"{p}.step{e.path[1:]}", e.reason)
            _check_step(spec, f"{p}.step", regions, receiver_domains)
            if "idempotent_key" in w.step:
                err(f"{p}.step.idempotent_key", "keys are derived per job by the simulator")
            if "body" in w.step:
                err(f"{p}.step.body", "bodies are generated from payload_bytes")


def _check_step(spec, path: str, regions: list[str], receiver_domains: set[str]) -> None:
    """Regions and webhook receivers of a job and of every job nested in it."""
    for r in spec.regions:
        if r not in regions:
            raise ScenarioError(f"{path}.regions", f"region {r!r} is not a dam region {regions}")
    for j, h in enumerate(spec.webhooks):
        if domain_of(h.url) not in receiver_domains:
            raise ScenarioError(f"{path}.webhooks[{j}].url",
                                "no receiver serves this URL's domain")
        for r in h.regions or ():
            if r not in regions:
                raise ScenarioError(f"{path}.webhooks[{j}].regions", f"{r!r} is not a dam region")
    for name in ("fallback_job", "on_success", "on_failure"):
        child = getattr(spec, name)
        if child is not None:
            _check_step(child, f"{path}.{name}", regions, receiver_domains)


def max_link_us(sc: Scenario) -> int:
    links = [sc.network.client_to_gateway, sc.network.intra_region, sc.network.to_upstream,
             *sc.network.regions.values()]
    return max(parse_duration(x) for x in links)


def _check_latency(lat: Latency, path: str) -> None:
    if parse_duration(lat.median) <= 0:
        raise ScenarioError(f"{path}.median", "must be > 0")
    if parse_duration(lat.p99) < parse_duration(lat.median):
        raise ScenarioError(f"{path}.p99", "must be >= median")


def _check_outage(o: Outage, path: str, regions: list[str]) -> None:
    if parse_duration(o.end) <= parse_duration(o.start):
        raise ScenarioError(f"{path}.end", "must be after start")
    total = 0.0
    for code, weight in o.statuses.items():
        if not code.isdigit() or not 100 <= int(code) <= 599:
            raise ScenarioError(f"{path}.statuses.{code}", "keys are HTTP statuses 100-599")
        if weight < 0:
            raise ScenarioError(f"{path}.statuses.{code}", "weights must be >= 0")
        total += weight
    if o.mode in ("error", "partial") and total <= 0:
        raise ScenarioError(f"{path}.statuses", "needs at least one status with weight > 0")
    for i, r in enumerate(o.regions):
        if r not in regions:
            raise ScenarioError(f"{path}.regions[{i}]", f"not one of {regions}")


def load_scenario(source: str | Path | dict, overrides: list[str] = ()) -> Scenario:
    """Read, override, validate. Raises ScenarioError (never another exception)."""
    file = None
    if isinstance(source, dict):
        doc = source
    else:
        file = str(source)
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as e:
            raise ScenarioError("$", f"cannot read: {e.strerror or e}", file) from None
        except UnicodeDecodeError:
            raise ScenarioError("$", "not UTF-8 text", file) from None
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ScenarioError("$", f"invalid TOML: {e}", file) from None
    try:
        for o in overrides:
            apply_override(doc, o)
        try:
            sc = msgspec.convert(doc, Scenario)
        except msgspec.ValidationError as e:
            raise ScenarioError(*_msgspec_error(e)) from None
        _checks(sc)
    except ScenarioError as e:
        raise ScenarioError(e.path, e.reason, file) from None
    return sc
