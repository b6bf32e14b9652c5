"""Loading a scenario: TOML → ``--set`` overrides → the schema → cross-field checks.

Every problem raises :class:`~sim.scenario.schema.ScenarioError` with the exact path
(``$.workloads[2].arrivals.rate``) and what was expected; never another exception.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect

from engine.errors import validation_path
from engine.signing import MIN_SECRET_LENGTH
from engine.spec import SpecError, domain_of, parse_job
from engine.units import US_PER_S

from .schema import (
    MAX_DURATION_US,
    MAX_JOBS,
    MAX_SERIES_SLOTS,
    Defences,
    Latency,
    Outage,
    Scenario,
    ScenarioError,
    ServiceTime,
    format_duration,
    parse_duration,
)

__all__ = ["actor_count", "apply_override", "expected_jobs", "load_scenario", "max_link_us"]


def _msgspec_error(e: msgspec.ValidationError, doc: dict) -> tuple[str, str]:
    path, msg = validation_path(e)
    path = _name_dict_keys(path, doc)
    if msg.startswith("Invalid enum value"):
        choices = _literal_choices(path)
        if choices:
            msg += f" (expected one of {', '.join(repr(c) for c in choices)})"
    if "(us|ms|s|m|h)" in msg:
        msg = "expected a duration like \"250ms\", \"30s\", \"5m30s\" (units us, ms, s, m, h)"
    elif "matching regex" in msg and path == "$.name":
        msg = ("expected a name of at most 64 letters, digits, '.', '_' and '-', starting with "
               "a letter or digit (it names the output folder)")
    elif "matching regex" in msg:
        msg = "expected a lowercase name (letters, digits, '-' and '_')"
    return path, msg


def _name_dict_keys(path: str, doc: dict) -> str:
    """msgspec marks a bad value inside a table of free keys (``network.regions``, an outage's
    ``statuses``) as ``[...]``; name its key instead (``$.network.regions.iad-ord``), as the
    ``--set`` path does. The key is found by converting the document again with that table cut
    down to one entry at a time: the entry that alone still fails at the same path is the one.
    This runs only when a scenario is already being rejected, on a document of bounded size."""
    while "[...]" in path:
        prefix, rest = path.split("[...]", 1)
        table = _at(doc, prefix)
        if not isinstance(table, dict):
            return path
        for key, value in table.items():
            trial = copy.deepcopy(doc)
            _at(trial, prefix, replace={key: value})
            try:
                msgspec.convert(trial, Scenario)
            except msgspec.ValidationError as e:
                if validation_path(e)[0] == path:
                    path = f"{prefix}.{key}{rest}"
                    break
        else:
            return path
    return path


def _at(doc: Any, path: str, replace: Any = None) -> Any:
    """The value at ``path`` (``$.upstreams[0].outages[1].statuses``) in a loaded document, or
    None; with ``replace``, that value is replaced (in place)."""
    segs = re.findall(r"\.([^.\[]+)|\[(\d+)\]", path.removeprefix("$"))
    node: Any = doc
    parent: Any = None
    key: str | int = ""
    for name, index in segs:
        parent, key = node, name or int(index)
        if isinstance(node, dict) and name in node:
            node = node[name]
        elif isinstance(node, list) and not name and int(index) < len(node):
            node = node[int(index)]
        else:
            return None
    if replace is not None and parent is not None:
        parent[key] = replace
    return node


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
    if path.count(".") >= MAX_KEY_PARTS:
        raise ScenarioError("--set", f"a path of more than {MAX_KEY_PARTS} parts")
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ScenarioError("--set", f"a value larger than {MAX_SCENARIO_BYTES} bytes")
    try:
        _check_toml_shape(f"v = {raw}")
        value = tomllib.loads(f"v = {raw}")["v"]
    except ScenarioError as e:
        raise ScenarioError("--set", f"{path}: {e.reason.split(': ', 1)[-1]}") from None
    except (tomllib.TOMLDecodeError, RecursionError):
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


class _Problems:
    """Every problem of one scenario, in order (all reported at once, one line each)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def __call__(self, path: str, reason: str) -> None:
        self.items.append((path, reason))


def _durations(obj, path: str, out: list[tuple[str, str]]) -> None:
    """Every duration string in the scenario, with its path (for the range check)."""
    if isinstance(obj, msgspec.Struct):
        for f in msgspec.structs.fields(obj):
            _durations(getattr(obj, f.name), f"{path}.{f.name}", out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _durations(v, f"{path}[{i}]", out)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, str | msgspec.Struct | list):
                _durations(v, f"{path}.{k}", out)
    elif isinstance(obj, str) and _DURATION_TEXT.fullmatch(obj):
        out.append((path, obj))


_DURATION_TEXT = re.compile(r"(?:\d+(?:\.\d+)?(?:us|ms|s|m|h))+")


def _checks(sc: Scenario) -> None:
    err = _Problems()
    found: list[tuple[str, str]] = []
    _durations(sc, "$", found)
    for path, text in found:
        if path.startswith("$.workloads") and ".step." in path:
            continue  # job fields are checked as job payloads
        if parse_duration(text) > MAX_DURATION_US:
            err(path, f"at most {format_duration(MAX_DURATION_US)} (30 days)")
    if err.items:
        raise _as_error(err)  # nothing below is meaningful with absurd durations

    def dur(value: str) -> int:
        return parse_duration(value)

    duration = dur(sc.duration)
    regions = sc.dam.regions
    if not regions:
        err("$.dam.regions", "at least one region is required")
    if len(set(regions)) != len(regions):
        err("$.dam.regions", "region names must be unique")
    if sc.dam.gateway_region is not None and sc.dam.gateway_region not in regions:
        err("$.dam.gateway_region", f"not one of the dam's regions {regions}")
    if duration <= 0:
        err("$.duration", "must be > 0")
    for key in sc.network.regions:
        pair = key.split("-")
        if len(pair) != 2 or not all(p in regions for p in pair):
            err(f"$.network.regions.{key}", f"expected 'a-b' with a, b among {regions}")
    for name in ("client_to_gateway", "intra_region", "to_upstream"):
        if dur(getattr(sc.network, name)) <= 0:
            err(f"$.network.{name}", "every link latency must be > 0")
    for key, value in sc.network.regions.items():
        if dur(value) <= 0:
            err(f"$.network.regions.{key}", "every link latency must be > 0")
    jit = sc.network.jitter
    if jit.kind != "none" and not 0 < dur(jit.scale) <= 60 * US_PER_S:
        err("$.network.jitter.scale", "must be > 0 and at most 1m when jitter is on")
    schedule = [dur(x) for x in sc.dam.webhook_schedule]
    if not schedule:
        err("$.dam.webhook_schedule", "at least one delay is required")
    for i in range(1, len(schedule)):
        if schedule[i] < schedule[i - 1]:
            err(f"$.dam.webhook_schedule[{i}]", "the schedule must not go back in time "
                                                 f"({sc.dam.webhook_schedule[i]} after "
                                                 f"{sc.dam.webhook_schedule[i - 1]})")
    horizon = duration + dur(sc.drain)
    seen_windows: set[str] = set()
    for i, w in enumerate(sc.windows):
        if w.name in seen_windows:
            err(f"$.windows[{i}].name", f"window {w.name!r} is defined twice")
        seen_windows.add(w.name)
        if dur(w.end) <= dur(w.start):
            err(f"$.windows[{i}].end", "must be after start")
        if dur(w.start) >= horizon:
            err(f"$.windows[{i}].start", f"must be before the run ends (duration + drain = "
                                         f"{format_duration(horizon)})")
    if len(sc.windows) > 64:
        err("$.windows", "at most 64 windows")
    for i, o in enumerate(sc.dam.outages):
        if o.region not in regions:
            err(f"$.dam.outages[{i}].region", f"not one of the dam's regions {regions}")
        if dur(o.end) <= dur(o.start):
            err(f"$.dam.outages[{i}].end", "must be after start")
    for name in ("attempt_timeout", "webhook_timeout"):
        if dur(getattr(sc.dam, name)) < 4 * max_link_us(sc):
            err(f"$.dam.{name}", "must be at least 4x the largest link latency")
    _check_backoff(sc.dam.backoff, "$.dam.backoff", err)
    br = sc.dam.breaker
    if br.min_calls > br.window_calls:
        err("$.dam.breaker.min_calls", f"must be <= window_calls ({br.window_calls})")
    for name in ("window", "open"):
        if dur(getattr(br, name)) <= 0:
            err(f"$.dam.breaker.{name}", "must be > 0")
    if dur(br.max_open) < dur(br.open):
        err("$.dam.breaker.max_open", f"must be >= open ({br.open})")
    if sc.dam.webhook_secret is not None and len(sc.dam.webhook_secret) < MIN_SECRET_LENGTH:
        err("$.dam.webhook_secret", f"must be at least {MIN_SECRET_LENGTH} characters")

    names = [u.name for u in sc.upstreams]
    if not names:
        err("$.upstreams", "at least one upstream is required")
    if len(set(names)) != len(names):
        err("$.upstreams", "upstream names must be unique")
    domains: dict[str, str] = {}
    for i, u in enumerate(sc.upstreams):
        p = f"$.upstreams[{i}]"
        try:
            d = parse_job({"url": u.url}, "scenario").domain
        except SpecError as e:
            err(f"{p}.url", e.reason)
        else:
            if d in domains:
                err(f"{p}.url", f"domain {d} is already upstream {domains[d]!r}")
            domains[d] = u.name
        _check_latency(u.latency, f"{p}.latency", err)
        for r, lat in u.region_latency.items():
            if r not in regions and r != "client":
                err(f"{p}.region_latency.{r}", f"not a dam region {regions} or 'client'")
            _check_latency(lat, f"{p}.region_latency.{r}", err)
        _check_service_model(u, p, err)
        for j, o in enumerate(u.outages):
            _check_outage(o, f"{p}.outages[{j}]", [*regions, "client"], err)
            if o.mode == "capacity":
                if o.regions:
                    err(f"{p}.outages[{j}].regions", "a capacity outage applies to every "
                                                     "caller (the servers are the API's)")
                if o.servers is not None and o.servers > u.servers:
                    err(f"{p}.outages[{j}].servers", f"at most the upstream's {u.servers} "
                                                     f"servers")
            elif o.servers is not None:
                err(f"{p}.outages[{j}].servers", "only for mode = \"capacity\"")

    rnames = [r.name for r in sc.receivers]
    if len(set(rnames)) != len(rnames):
        err("$.receivers", "receiver names must be unique")
    receiver_domains = set()
    for i, r in enumerate(sc.receivers):
        try:
            receiver_domains.add(parse_job({"url": r.url}, "scenario").domain)
        except SpecError as e:
            err(f"$.receivers[{i}].url", e.reason)
        _check_latency(r.latency, f"$.receivers[{i}].latency", err)
        for j, o in enumerate(r.outages):
            _check_outage(o, f"$.receivers[{i}].outages[{j}]", regions, err)
            if o.mode == "capacity":
                err(f"$.receivers[{i}].outages[{j}].mode", "receivers have no servers to lose "
                                                           "(error, slow, blackhole, partial)")

    wnames = [w.name for w in sc.workloads]
    if not wnames:
        err("$.workloads", "at least one workload is required")
    if len(set(wnames)) != len(wnames):
        err("$.workloads", "workload names must be unique")
    for i, w in enumerate(sc.workloads):
        p = f"$.workloads[{i}]"
        if not w.path.startswith("/"):
            err(f"{p}.path", "expected a path starting with '/'")
        start = dur(w.start)
        if start >= duration:
            err(f"{p}.start", f"must be before the end of the arrivals (duration "
                              f"{sc.duration})")
        if w.stop is not None and not start < dur(w.stop) <= duration:
            err(f"{p}.stop", f"must be after start and at most duration ({sc.duration})")
        a = w.arrivals
        if a.process == "piecewise" and not a.segments:
            err(f"{p}.arrivals.segments", "piecewise arrivals need at least one segment")
        for j in range(1, len(a.segments)):
            if dur(a.segments[j].until) <= dur(a.segments[j - 1].until):
                err(f"{p}.arrivals.segments[{j}].until",
                    "segments must be in order: each until later than the one before")
        if a.process == "trace" and not a.file:
            err(f"{p}.arrivals.file", "trace arrivals need a CSV file of timestamps")
        _check_backoff(w.diy.backoff, f"{p}.diy.backoff", err)
        cb = w.diy.breaker
        if cb is not None:
            if cb.min_calls > cb.window_calls:
                err(f"{p}.diy.breaker.min_calls",
                    f"must be <= window_calls ({cb.window_calls})")
            if dur(cb.open) <= 0:
                err(f"{p}.diy.breaker.open", "must be > 0")
        if dur(w.diy.timeout) < 4 * max_link_us(sc):
            err(f"{p}.diy.timeout", "must be at least 4x the largest link latency")
        if dur(w.frugal.local_timeout) < 4 * max_link_us(sc):
            err(f"{p}.frugal.local_timeout", "must be at least 4x the largest link latency")
        for j, code in enumerate(w.frugal.fallback_on_error):
            if not 100 <= code <= 599:
                err(f"{p}.frugal.fallback_on_error[{j}]", "HTTP status must be 100-599")
        if w.upstream not in names:
            err(f"{p}.upstream", f"no upstream named {w.upstream!r} (have {', '.join(names)})")
            continue
        if w.strategy != "diy":
            if "idempotent_key" in w.step:
                err(f"{p}.step.idempotent_key", "keys are derived per job by the simulator")
            if "body" in w.step:
                err(f"{p}.step.body", "bodies are generated from payload_bytes")
            payload = {**w.step, "url": sc.upstream(w.upstream).url.rstrip("/") + w.path,
                       "method": w.method}
            try:
                spec = parse_job(payload, w.customer)
            except SpecError as e:
                err(f"{p}.step{e.path[1:]}", e.reason)
            else:
                _check_step(spec, f"{p}.step", regions, receiver_domains, err)
    if err.items:
        raise _as_error(err)
    _check_size(sc, horizon)
    jobs = {w.name: expected_jobs(w, duration) for w in sc.workloads}
    total = sum(jobs.values())
    if total > MAX_JOBS:
        largest = max(jobs, key=jobs.__getitem__)
        raise ScenarioError("$.workloads", f"the arrivals add up to {total:,.0f} "
                                           f"expected jobs ({largest!r}: {jobs[largest]:,.0f}); "
                                           f"at most {MAX_JOBS:,} per run, so that its memory "
                                           "stays bounded")


def actor_count(sc: Scenario) -> int:
    """The actors a run of ``sc`` builds (``sim.build``: the gateway, a region and a webhook
    dispatcher per dam region, a limiter and an upstream per upstream, the receivers, a
    client per workload)."""
    return (1 + 2 * len(sc.dam.regions) + 2 * len(sc.upstreams) + len(sc.receivers)
            + len(sc.workloads))


def _check_size(sc: Scenario, horizon_us: int) -> None:
    """What the run will hold in memory whatever it simulates: its actors and its series."""
    from ..kernel import MAX_ACTORS
    from ..metrics import series_slots

    actors = actor_count(sc)
    if actors > MAX_ACTORS:
        raise ScenarioError("$.workloads", f"{actors:,} actors (a client per workload, two per "
                                           f"dam region and per upstream, a receiver each, "
                                           f"the gateway); at most {MAX_ACTORS:,}")
    slots = series_slots(len(sc.workloads), len(sc.upstreams), horizon_us)
    if slots > MAX_SERIES_SLOTS:
        raise ScenarioError("$.drain" if parse_duration(sc.drain) else "$.duration",
                            f"{len(sc.workloads)} workloads and {len(sc.upstreams)} upstreams "
                            f"over {format_duration(horizon_us)} (duration + drain) make "
                            f"{slots:,} one-second series slots; at most {MAX_SERIES_SLOTS:,} "
                            f"(fewer workloads, or a shorter run)")


def expected_jobs(w, duration_us: int) -> float:
    """The mean number of jobs workload ``w`` submits in a run of ``duration_us`` (0 for a
    trace: its file's lines are counted when it is read, by ``validate`` and by the run)."""
    start = parse_duration(w.start)
    stop = parse_duration(w.stop) if w.stop is not None else duration_us
    a = w.arrivals
    if a.process in ("poisson", "constant"):
        return a.rate * (stop - start) / US_PER_S
    if a.process != "piecewise":
        return 0.0
    total, begin = 0.0, start  # a segment's rate holds until its ``until``; the last one's after
    for i, seg in enumerate(a.segments):
        until = stop if i == len(a.segments) - 1 else min(parse_duration(seg.until), stop)
        if until > begin:
            total += seg.rate * (until - begin) / US_PER_S
            begin = until
    return total


def _as_error(err: _Problems) -> ScenarioError:
    (path, reason), *_ = err.items
    e = ScenarioError(path, reason)
    e.problems = list(err.items)
    return e


def _check_backoff(b, path: str, err: _Problems) -> None:
    if parse_duration(b.cap) < parse_duration(b.base):
        err(f"{path}.cap", f"must be >= base ({b.base})")


def _check_step(spec, path: str, regions: list[str], receiver_domains: set[str],
                err: _Problems) -> None:
    """Regions and webhook receivers of a job and of every job nested in it."""
    for r in spec.regions:
        if r not in regions:
            err(f"{path}.regions", f"region {r!r} is not a dam region {regions}")
    for j, h in enumerate(spec.webhooks):
        if domain_of(h.url) not in receiver_domains:
            err(f"{path}.webhooks[{j}].url", "no receiver serves this URL's domain")
        for r in h.regions or ():
            if r not in regions:
                err(f"{path}.webhooks[{j}].regions", f"{r!r} is not a dam region")
    for name in ("fallback_job", "on_success", "on_failure"):
        child = getattr(spec, name)
        if child is not None:
            _check_step(child, f"{path}.{name}", regions, receiver_domains, err)


def max_link_us(sc: Scenario) -> int:
    links = [sc.network.client_to_gateway, sc.network.intra_region, sc.network.to_upstream,
             *sc.network.regions.values()]
    return max(parse_duration(x) for x in links)


def _check_latency(lat: Latency, path: str, err: _Problems) -> None:
    if parse_duration(lat.median) <= 0:
        err(f"{path}.median", "must be > 0")
    elif parse_duration(lat.p99) < parse_duration(lat.median):
        err(f"{path}.p99", "must be >= median")


def _check_service_model(u, p: str, err: _Problems) -> None:
    st, d = u.service_time, u.defences
    if u.model != "queue":
        if st != ServiceTime():
            err(f"{p}.service_time", 'only with model = "queue" (legacy and latency draw no '
                                     'service-time distribution)')
        if d != Defences():
            err(f"{p}.defences", 'only with model = "queue" (they act on its waiting line)')
        if u.contention_keys is not None:
            err(f"{p}.contention_keys", 'only with model = "queue" (a write conflicts with '
                                        'those that commit during its service)')
        return
    if parse_duration(u.service) <= 0 and st.kind in ("exponential", "constant"):
        err(f"{p}.service", "must be > 0")
    if st.kind == "lognormal":
        if st.median is None or st.p99 is None:
            err(f"{p}.service_time", "lognormal needs median and p99")
        elif not 0 < parse_duration(st.median) <= parse_duration(st.p99):
            err(f"{p}.service_time.p99", "needs 0 < median <= p99")
    if st.kind == "empirical":
        if not 1 <= len(st.values) <= 100_000:
            err(f"{p}.service_time.values", "1 to 100,000 durations")
        for k, v in enumerate(st.values[:100_000]):
            if parse_duration(v) <= 0:
                err(f"{p}.service_time.values[{k}]", "must be > 0")
                break
    if d.codel_target is not None and not 0 < parse_duration(d.codel_target) \
            < parse_duration(d.codel_interval):
        err(f"{p}.defences.codel_target", "needs 0 < codel_target < codel_interval")


def _check_outage(o: Outage, path: str, regions: list[str], err: _Problems) -> None:
    if parse_duration(o.end) <= parse_duration(o.start):
        err(f"{path}.end", "must be after start")
    total = 0.0
    for code, weight in o.statuses.items():
        if not code.isdigit() or not 100 <= int(code) <= 599:
            err(f"{path}.statuses.{code}", "keys are HTTP statuses 100-599")
        total += weight
    if o.mode in ("error", "partial") and total <= 0:
        err(f"{path}.statuses", "needs at least one status with weight > 0")
    for i, r in enumerate(o.regions):
        if r not in regions:
            err(f"{path}.regions[{i}]", f"not one of {regions}")


MAX_SCENARIO_BYTES = 1 << 20  # a scenario file
MAX_TOML_DEPTH = 32  # nested arrays / inline tables
MAX_KEY_PARTS = 32  # parts of a dotted key (a.b.c) or of a --set path

_TOML_TOKENS = re.compile(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|'
                          r"'[^'\n]*'|#[^\n]*|[\[\]{}=.\n]")


def _check_toml_shape(text: str) -> None:
    """Refuse, before parsing, what would make the TOML parser slow or recursive: keys with
    too many parts, nesting too deep (both found by a linear scan that skips strings)."""
    depth = line = dots = 0
    in_key = True
    for m in _TOML_TOKENS.finditer(text):
        t = m.group()
        if t == "\n":
            line += 1
            in_key, dots = True, 0
        elif t in "[{":
            depth += 1
            if depth > MAX_TOML_DEPTH:
                raise ScenarioError("$", f"line {line + 1}: nested deeper than "
                                         f"{MAX_TOML_DEPTH} levels")
        elif t in "]}":
            depth = max(0, depth - 1)
        elif t == "=":
            in_key = False
        elif t == "." and in_key and depth == 0:
            dots += 1
            if dots >= MAX_KEY_PARTS:
                raise ScenarioError("$", f"line {line + 1}: a key with more than "
                                         f"{MAX_KEY_PARTS} parts")


def load_scenario(source: str | Path | dict, overrides: list[str] = ()) -> Scenario:
    """Read, override, validate. Raises ScenarioError (never another exception)."""
    file = None
    if isinstance(source, dict):
        doc = source
    else:
        file = str(source)
        try:
            with Path(source).open("rb") as fh:
                raw = fh.read(MAX_SCENARIO_BYTES + 1)  # bounded, whatever the file is
        except OSError as e:
            raise ScenarioError("$", f"cannot read: {e.strerror or e}", file) from None
        if len(raw) > MAX_SCENARIO_BYTES:
            raise ScenarioError("$", f"larger than {MAX_SCENARIO_BYTES} bytes", file)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ScenarioError("$", "not UTF-8 text", file) from None
        try:
            _check_toml_shape(text)
        except ScenarioError as e:
            raise ScenarioError(e.path, e.reason, file) from None
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ScenarioError("$", f"invalid TOML: {e}", file) from None
        except RecursionError:
            raise ScenarioError("$", "nested too deeply", file) from None
    try:
        for o in overrides:
            apply_override(doc, o)
        try:
            sc = msgspec.convert(doc, Scenario)
        except msgspec.ValidationError as e:
            raise ScenarioError(*_msgspec_error(e, doc)) from None
        except RecursionError:
            raise ScenarioError("$", "nested too deeply") from None
        _checks(sc)
    except ScenarioError as e:
        out = ScenarioError(e.path, e.reason, file)
        out.problems = getattr(e, "problems", [(e.path, e.reason)])
        raise out from None
    return sc
