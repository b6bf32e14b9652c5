"""Job payloads: the wire format of ``POST /api/v1/jobs`` as the EZThrottle SDKs send it.

``parse_job`` turns a decoded JSON payload into a validated, frozen :class:`JobSpec` with every
default applied; ``JobSpec.to_payload`` turns it back into exactly the JSON that came in (canonical
snake_case keys, the same fields present). Validation happens in three passes:

1. *shape*: walk the payload once, map the camelCase aliases sent by the Node and Go SDKs to the
   snake_case names, reject unknown keys and over-deep nesting (paths keep the caller's spelling);
2. *types*: ``msgspec.convert`` into wire Structs (strict: no ``"5"`` for 5, no ``true`` for 1);
3. *rules*: ranges, enumerations, cross-field rules (quorum vs voters, triggers, ...).

Every failure raises :class:`~engine.errors.SpecError` with the exact path and the reason.
Pass 1 lives in :mod:`engine.aliases`, the resolved Structs in :mod:`engine.jobspec` (re-exported
here).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import msgspec

from .aliases import MAX_NESTING, Shape, fmt_path
from .errors import SpecError, validation_path
from .jobspec import (
    DEFAULT_HEDGE_DELAY_MS,
    ExecutionMode,
    JobSpec,
    RegionPolicy,
    RetryPolicy,
    Trigger,
    WebhookSpec,
    domain_of,
)

__all__ = [
    "DEFAULT_HEDGE_DELAY_MS",
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_NESTING",
    "MAX_PAYLOAD_BYTES",
    "MAX_WEBHOOKS",
    "METHODS",
    "REGION_NAME",
    "ExecutionMode",
    "JobSpec",
    "RegionPolicy",
    "RetryPolicy",
    "Trigger",
    "WebhookSpec",
    "decode_job_json",
    "domain_of",
    "parse_job",
]


METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
EXECUTION_MODES = ("race", "fanout", "hedge")
REGION_POLICIES = ("fallback", "strict")

#: Largest request body accepted, in UTF-8 bytes (ezthrottle-local's EZTHROTTLE_MAX_BODY_BYTES).
MAX_BODY_BYTES = 1 << 20
MAX_URL_LENGTH = 8192
MAX_HEADERS = 100
MAX_HEADER_VALUE = 8192
MAX_METADATA_BYTES = 64 * 1024
MAX_KEY_LENGTH = 256
MAX_TIMEOUT_MS = 7 * 24 * 3600 * 1000
MAX_RETRIES_LIMIT = 100
#: Webhooks per job (each is a delivery per round; ezthrottle-local has no limit).
MAX_WEBHOOKS = 50
#: A job payload as JSON text: the largest body and metadata plus room for everything else.
MAX_PAYLOAD_BYTES = 2 * MAX_BODY_BYTES
#: Deepest JSON nesting accepted (8 nested jobs need about 40).
MAX_JSON_DEPTH = 64
#: Integers beyond this many digits (±10^18, inside int64) are refused, not parsed.
MAX_INT_DIGITS = 18

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
REGION_NAME = _REGION = re.compile(r"^[a-z][a-z0-9-]{0,31}$")

# --------------------------------------------------------------------------------------------
# Pass 2: types (wire structs; None means "not given")
# --------------------------------------------------------------------------------------------


class _WireTrigger(msgspec.Struct, forbid_unknown_fields=True):
    type: str | None = None
    codes: list[int] | None = None
    timeout_ms: int | None = None


class _WireRetry(msgspec.Struct, forbid_unknown_fields=True):
    max_retries: int | None = None
    max_reroutes: int | None = None
    retry_codes: list[int] | None = None
    reroute_codes: list[int] | None = None


class _WireWebhook(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    regions: list[str] | None = None
    has_quorum_vote: bool | None = None


class _WireJob(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    method: str | None = None
    headers: dict[str, str] | None = None
    body: str | None = None
    metadata: dict[str, Any] | None = None
    webhooks: list[_WireWebhook] | None = None
    webhook_quorum: int | None = None
    regions: list[str] | None = None
    region_policy: str | None = None
    execution_mode: str | None = None
    hedge_delay_ms: int | None = None
    retry_policy: _WireRetry | None = None
    retry_at: int | None = None
    idempotent_key: str | None = None
    fallback_job: _WireJob | None = None
    trigger: _WireTrigger | None = None
    on_success: _WireJob | None = None
    on_failure: _WireJob | None = None
    on_failure_timeout_ms: int | None = None


def _type_error(err: msgspec.ValidationError, shape: Shape) -> SpecError:
    path, msg = validation_path(err)
    return SpecError(shape.translate(path), msg)


# --------------------------------------------------------------------------------------------
# Pass 3: rules
# --------------------------------------------------------------------------------------------


def _check_url(url: str, path: str) -> str:
    if not url:
        raise SpecError(path, "must be a non-empty http(s) URL")
    if len(url) > MAX_URL_LENGTH:
        raise SpecError(path, f"URL longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() for c in url) or "\x00" in url:
        raise SpecError(path, "URL must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as e:
        raise SpecError(path, f"not a valid URL ({e})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise SpecError(path, f"URL scheme must be http or https, got {parts.scheme or 'none'!r}")
    if not parts.hostname or not parts.hostname.rstrip("."):
        raise SpecError(path, "URL has no host")
    try:
        return domain_of(url)
    except (UnicodeError, ValueError) as e:
        raise SpecError(path, f"not a valid host name ({e})") from None


def _check_codes(codes: list[int], path: str, *, allow_2xx: bool = False) -> tuple[int, ...]:
    for i, code in enumerate(codes):
        if not 100 <= code <= 599:
            raise SpecError(f"{path}[{i}]", f"HTTP status must be between 100 and 599, got {code}")
        if not allow_2xx and 200 <= code <= 299:
            raise SpecError(f"{path}[{i}]", f"{code} is a success status and cannot be retried")
    return tuple(codes)


def _check_int(value: int | None, path: str, lo: int, hi: int) -> None:
    if value is not None and not lo <= value <= hi:
        raise SpecError(path, f"must be between {lo} and {hi}, got {value}")


def _check_regions(regions: list[str], path: str) -> tuple[str, ...]:
    seen: set[str] = set()
    for i, r in enumerate(regions):
        if not _REGION.match(r):
            raise SpecError(f"{path}[{i}]", f"region names are lowercase letters, digits and "
                                            f"dashes (e.g. 'iad'), got {r!r}")
        if r in seen:
            raise SpecError(f"{path}[{i}]", f"region {r!r} listed twice")
        seen.add(r)
    return tuple(regions)


def _check_headers(headers: dict[str, str], path: str) -> None:
    if len(headers) > MAX_HEADERS:
        raise SpecError(path, f"at most {MAX_HEADERS} headers, got {len(headers)}")
    for name, value in headers.items():
        if not _TOKEN.match(name):
            raise SpecError(f"{path}.{name}", "header names must be HTTP tokens (RFC 9110)")
        if len(value) > MAX_HEADER_VALUE or "\r" in value or "\n" in value or "\x00" in value:
            raise SpecError(f"{path}.{name}", f"header values must be at most {MAX_HEADER_VALUE} "
                                              f"characters without CR, LF or NUL")


def _check_metadata(meta: dict[str, Any], path: str) -> None:
    try:
        size = len(msgspec.json.encode(meta))
    except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError) as e:
        raise SpecError(path, f"metadata must be JSON-serialisable ({e})") from None
    if size > MAX_METADATA_BYTES:
        raise SpecError(path, f"metadata larger than {MAX_METADATA_BYTES} bytes as JSON")


class _Resolver:
    __slots__ = ("customer_id", "shape")

    def __init__(self, customer_id: str, shape: Shape) -> None:
        self.customer_id = customer_id
        self.shape = shape

    def p(self, canon: str) -> str:
        return self.shape.translate(canon)

    def trigger(self, t: _WireTrigger, at: str) -> Trigger:
        p = self.p
        if t.type is None:
            if t.codes is not None or t.timeout_ms is not None:
                raise SpecError(p(f"{at}.type"), "required when codes or timeout_ms is given "
                                                 "(one of 'on_error', 'on_timeout')")
            return Trigger("any")
        if t.type == "on_error":
            if t.timeout_ms is not None:
                raise SpecError(p(f"{at}.timeout_ms"), "not allowed for an on_error trigger")
            if not t.codes:
                raise SpecError(p(f"{at}.codes"), "an on_error trigger needs a non-empty list "
                                                  "of status codes")
            return Trigger("on_error", codes=_check_codes(t.codes, p(f"{at}.codes"),
                                                          allow_2xx=False))
        if t.type == "on_timeout":
            if t.codes is not None:
                raise SpecError(p(f"{at}.codes"), "not allowed for an on_timeout trigger")
            if t.timeout_ms is None:
                raise SpecError(p(f"{at}.timeout_ms"), "an on_timeout trigger needs timeout_ms")
            _check_int(t.timeout_ms, p(f"{at}.timeout_ms"), 1, MAX_TIMEOUT_MS)
            return Trigger("on_timeout", timeout_ms=t.timeout_ms)
        raise SpecError(p(f"{at}.type"), f"unknown trigger type {t.type!r} "
                                         f"(expected 'on_error' or 'on_timeout')")

    def retry(self, r: _WireRetry, at: str) -> RetryPolicy:
        p = self.p
        _check_int(r.max_retries, p(f"{at}.max_retries"), 0, MAX_RETRIES_LIMIT)
        _check_int(r.max_reroutes, p(f"{at}.max_reroutes"), 0, MAX_RETRIES_LIMIT)
        kw: dict[str, Any] = {}
        explicit = set()
        for name in ("max_retries", "max_reroutes", "retry_codes", "reroute_codes"):
            value = getattr(r, name)
            if value is None:
                continue
            explicit.add(name)
            kw[name] = _check_codes(value, p(f"{at}.{name}")) if isinstance(value, list) else value
        # A list given alone overrides the other list's *default* for the codes it names
        # (retry_codes [500] means "retry 500 in place"). Two explicit lists may share a code,
        # as the SDK allows: it is retried in place first and escalates to a reroute when the
        # retries run out (engine.retry.decide).
        if "retry_codes" in kw and "reroute_codes" not in kw:
            kw["reroute_codes"] = tuple(c for c in RetryPolicy().reroute_codes
                                        if c not in kw["retry_codes"])
        elif "reroute_codes" in kw and "retry_codes" not in kw:
            kw["retry_codes"] = tuple(c for c in RetryPolicy().retry_codes
                                      if c not in kw["reroute_codes"])
        return RetryPolicy(**kw, explicit=frozenset(explicit))

    def job(self, w: _WireJob, at: str) -> JobSpec:
        p = self.p
        explicit = {f for f in w.__struct_fields__ if getattr(w, f) is not None}
        domain = _check_url(w.url, p(f"{at}.url"))
        kw: dict[str, Any] = {"customer_id": self.customer_id, "url": w.url, "domain": domain}

        if w.method is not None:
            method = w.method.upper()
            if method not in METHODS:
                allowed = ", ".join(sorted(METHODS))
                raise SpecError(p(f"{at}.method"),
                                f"unknown HTTP method {w.method!r} (expected one of {allowed})")
            kw["method"] = method
        if w.headers is not None:
            _check_headers(w.headers, p(f"{at}.headers"))
            kw["headers"] = w.headers
        if w.body is not None:
            if len(w.body) > MAX_BODY_BYTES // 4 and len(w.body.encode("utf-8", "surrogatepass")) \
                    > MAX_BODY_BYTES:
                raise SpecError(p(f"{at}.body"), f"body larger than {MAX_BODY_BYTES} bytes")
            kw["body"] = w.body
        if w.metadata is not None:
            _check_metadata(w.metadata, p(f"{at}.metadata"))
            kw["metadata"] = w.metadata

        if w.webhooks is not None and len(w.webhooks) > MAX_WEBHOOKS:
            raise SpecError(p(f"{at}.webhooks"), f"at most {MAX_WEBHOOKS} webhooks per job, "
                                                 f"got {len(w.webhooks)}")
        hooks: list[WebhookSpec] = []
        for i, h in enumerate(w.webhooks or ()):
            hp = f"{at}.webhooks[{i}]"
            _check_url(h.url, p(f"{hp}.url"))
            hex_ = {f for f in ("regions", "has_quorum_vote") if getattr(h, f) is not None}
            hooks.append(WebhookSpec(
                url=h.url,
                regions=_check_regions(h.regions, p(f"{hp}.regions")) if h.regions is not None
                else None,
                has_quorum_vote=True if h.has_quorum_vote is None else h.has_quorum_vote,
                explicit=frozenset(hex_),
            ))
        kw["webhooks"] = tuple(hooks)
        voters = sum(1 for h in hooks if h.has_quorum_vote)
        # An implicit quorum (the SDK omits webhook_quorum when it is 1) never exceeds the
        # voters: webhooks with no voter need no acknowledgement. An explicit one must fit.
        quorum = 1 if w.webhook_quorum is None else w.webhook_quorum
        if quorum < 1:
            raise SpecError(p(f"{at}.webhook_quorum"), f"must be at least 1, got {quorum}")
        if w.webhook_quorum is not None and quorum > voters:
            raise SpecError(p(f"{at}.webhook_quorum"),
                            f"quorum {quorum} exceeds the number of voting webhooks ({voters})")
        kw["webhook_quorum"] = quorum

        if w.regions is not None:
            kw["regions"] = _check_regions(w.regions, p(f"{at}.regions"))
        if w.region_policy is not None:
            if w.region_policy not in REGION_POLICIES:
                raise SpecError(p(f"{at}.region_policy"), f"unknown region_policy "
                                f"{w.region_policy!r} (expected 'fallback' or 'strict')")
            kw["region_policy"] = w.region_policy
        if w.execution_mode is not None:
            if w.execution_mode not in EXECUTION_MODES:
                raise SpecError(p(f"{at}.execution_mode"), f"unknown execution_mode "
                                f"{w.execution_mode!r} (expected 'race', 'fanout' or 'hedge')")
            kw["execution_mode"] = w.execution_mode
        if w.hedge_delay_ms is not None:
            if kw.get("execution_mode", "race") != "hedge":
                raise SpecError(p(f"{at}.hedge_delay_ms"), "only valid with execution_mode 'hedge'")
            _check_int(w.hedge_delay_ms, p(f"{at}.hedge_delay_ms"), 0, MAX_TIMEOUT_MS)
            kw["hedge_delay_ms"] = w.hedge_delay_ms
        if w.retry_policy is not None:
            kw["retry_policy"] = self.retry(w.retry_policy, f"{at}.retry_policy")
        if w.retry_at is not None:
            _check_int(w.retry_at, p(f"{at}.retry_at"), 0, 2**53)
            kw["retry_at"] = w.retry_at
        if w.idempotent_key is not None:
            k = w.idempotent_key
            if not k or len(k) > MAX_KEY_LENGTH or "\x00" in k:
                raise SpecError(p(f"{at}.idempotent_key"), f"must be 1 to {MAX_KEY_LENGTH} "
                                                           f"characters without NUL")
            kw["idempotent_key"] = k
        if w.trigger is not None:
            kw["trigger"] = self.trigger(w.trigger, f"{at}.trigger")
        if w.on_failure_timeout_ms is not None:
            if w.on_failure is None:
                raise SpecError(p(f"{at}.on_failure_timeout_ms"), "requires on_failure")
            _check_int(w.on_failure_timeout_ms, p(f"{at}.on_failure_timeout_ms"), 1,
                       MAX_TIMEOUT_MS)
            kw["on_failure_timeout_ms"] = w.on_failure_timeout_ms
        if w.fallback_job is not None:
            kw["fallback_job"] = self.job(w.fallback_job, f"{at}.fallback_job")
        if w.on_success is not None:
            kw["on_success"] = self.job(w.on_success, f"{at}.on_success")
        if w.on_failure is not None:
            kw["on_failure"] = self.job(w.on_failure, f"{at}.on_failure")
        return JobSpec(**kw, explicit=frozenset(explicit))


def parse_job(payload: Any, customer_id: str) -> JobSpec:
    """Validate a decoded ``POST /api/v1/jobs`` payload for ``customer_id``.

    Raises :class:`SpecError` naming the exact path on any problem; never another exception.
    """
    if not isinstance(customer_id, str) or not customer_id or "\x00" in customer_id:
        raise SpecError("customer_id", "must be a non-empty string without NUL")
    shape = Shape()
    try:
        normalized = shape.job(payload, (), (), 0, in_fallback=False)
    except RecursionError:
        raise SpecError("$", "payload nested too deeply") from None
    try:
        wire = msgspec.convert(normalized, _WireJob)
    except msgspec.ValidationError as e:
        raise _type_error(e, shape) from None
    except RecursionError:
        raise SpecError("$", "payload nested too deeply") from None
    return _Resolver(customer_id, shape).job(wire, "$")


# --------------------------------------------------------------------------------------------
# JSON intake: the text a client sends, before parse_job
# --------------------------------------------------------------------------------------------

_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class _DuplicateKeys(dict):
    """An object whose text repeated a key (the last value won in the dict; we refuse it)."""

    __slots__ = ("duplicate",)


class _BigInt(str):
    """An integer literal with more than MAX_INT_DIGITS digits (never converted)."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    d = dict(pairs)
    if len(d) == len(pairs):
        return d
    seen: set[str] = set()
    dup = next(k for k, _ in pairs if k in seen or seen.add(k))
    out = _DuplicateKeys(d)
    out.duplicate = dup
    return out


def _int(text: str) -> int | _BigInt:
    return _BigInt(text) if len(text.lstrip("-")) > MAX_INT_DIGITS else int(text)


def _marked(obj: Any, path: tuple) -> tuple[tuple, str] | None:
    """The path and reason of the first duplicate key or oversized integer in ``obj``."""
    if isinstance(obj, _BigInt):
        return path, f"integer with more than {MAX_INT_DIGITS} digits"
    if isinstance(obj, dict):
        if isinstance(obj, _DuplicateKeys):
            return path, f"duplicate key {obj.duplicate!r}"
        for k, v in obj.items():
            hit = _marked(v, (*path, k))
            if hit:
                return hit
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            hit = _marked(v, (*path, i))
            if hit:
                return hit
    return None


def decode_job_json(data: bytes | str) -> Any:
    """Decode a job payload's JSON text with the dam's limits, never raising anything but
    :class:`SpecError`: at most ``MAX_PAYLOAD_BYTES``, nested at most ``MAX_JSON_DEPTH`` deep,
    no duplicate keys (``$.a.b: duplicate key 'x'``), no integer beyond ±10^18."""
    if isinstance(data, str):
        if len(data) > MAX_PAYLOAD_BYTES:  # characters >= bytes / 4: a cheap first bound
            raise SpecError("$", f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
        size = len(data.encode("utf-8", "surrogatepass"))
        text = data
    else:
        size = len(data)
        if size > MAX_PAYLOAD_BYTES:
            raise SpecError("$", f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SpecError("$", f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    if size > MAX_PAYLOAD_BYTES:
        raise SpecError("$", f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
    depth = 0
    for m in _JSON_TOKENS.finditer(text):  # strings are matched whole, so skipped
        c = m.group()
        if c == "{" or c == "[":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise SpecError("$", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        elif c == "}" or c == "]":
            depth -= 1
    try:
        obj = json.loads(text, object_pairs_hook=_pairs, parse_int=_int)
    except json.JSONDecodeError as e:
        raise SpecError("$", f"not JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except (RecursionError, ValueError) as e:
        raise SpecError("$", f"not JSON the dam accepts: {e}") from None
    hit = _marked(obj, ())
    if hit:
        path, reason = hit
        raise SpecError(fmt_path(path), reason)
    return obj
