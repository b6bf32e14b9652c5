"""The validated job: frozen Structs with every default applied (see ``engine.spec``)."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

__all__ = [
    "DEFAULT_HEDGE_DELAY_MS",
    "DEFAULT_RETRY_POLICY",
    "ExecutionMode",
    "JobSpec",
    "RegionPolicy",
    "RetryPolicy",
    "Trigger",
    "WebhookSpec",
    "domain_of",
]

ExecutionMode = Literal["race", "fanout", "hedge"]
RegionPolicy = Literal["fallback", "strict"]
#: Hedge delay when ``execution_mode`` is ``hedge`` and ``hedge_delay_ms`` is not given.
DEFAULT_HEDGE_DELAY_MS = 100
NESTED_JOBS = ("fallback_job", "on_success", "on_failure")


class Trigger(msgspec.Struct, frozen=True):
    """When a fallback fires: ``on_error`` (parent failed with one of ``codes``), ``on_timeout``
    (parent unfinished after ``timeout_ms``) or ``any`` (the empty trigger ``{}``: any failure)."""

    type: Literal["on_error", "on_timeout", "any"]
    codes: tuple[int, ...] = ()
    timeout_ms: int | None = None

    def to_payload(self) -> dict[str, Any]:
        if self.type == "on_error":
            return {"type": "on_error", "codes": list(self.codes)}
        if self.type == "on_timeout":
            return {"type": "on_timeout", "timeout_ms": self.timeout_ms}
        return {}


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Per-branch retry budget. Counts are retries, not attempts: a branch makes at most
    ``1 + max_retries + max_reroutes`` upstream attempts."""

    max_retries: int = 3
    max_reroutes: int = 2
    retry_codes: tuple[int, ...] = (429, 503)
    reroute_codes: tuple[int, ...] = (500, 502, 504)
    explicit: frozenset[str] = frozenset()

    @property
    def max_attempts(self) -> int:
        return 1 + self.max_retries + self.max_reroutes

    def to_payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("max_retries", "max_reroutes", "retry_codes", "reroute_codes"):
            if name in self.explicit:
                value = getattr(self, name)
                out[name] = list(value) if isinstance(value, tuple) else value
        return out


DEFAULT_RETRY_POLICY = RetryPolicy()


class WebhookSpec(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    regions: tuple[str, ...] | None = None
    has_quorum_vote: bool = True
    explicit: frozenset[str] = frozenset()

    def to_payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url}
        if "regions" in self.explicit:
            out["regions"] = list(self.regions or ())
        if "has_quorum_vote" in self.explicit:
            out["has_quorum_vote"] = self.has_quorum_vote
        return out


class JobSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A validated job. Fields hold effective values (defaults applied); ``explicit`` names the
    fields the payload gave, so ``to_payload`` reproduces it. ``headers`` and ``metadata`` are
    plain dicts: treat them as read-only."""

    customer_id: str
    url: str
    domain: str
    method: str = "GET"
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    body: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    webhooks: tuple[WebhookSpec, ...] = ()
    webhook_quorum: int = 1
    regions: tuple[str, ...] = ()
    region_policy: RegionPolicy = "fallback"
    execution_mode: ExecutionMode = "race"
    hedge_delay_ms: int = DEFAULT_HEDGE_DELAY_MS
    retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY
    retry_at: int | None = None
    idempotent_key: str | None = None
    fallback_job: JobSpec | None = None
    trigger: Trigger | None = None
    on_success: JobSpec | None = None
    on_failure: JobSpec | None = None
    on_failure_timeout_ms: int | None = None
    explicit: frozenset[str] = frozenset()

    @property
    def voters(self) -> int:
        """Number of webhooks with ``has_quorum_vote``."""
        return sum(1 for w in self.webhooks if w.has_quorum_vote)

    @property
    def effective_trigger(self) -> Trigger:
        return self.trigger if self.trigger is not None else Trigger("any")

    def fallback_chain(self) -> tuple[JobSpec, ...]:
        """The fallbacks in the order they were added (outermost first)."""
        out = []
        node = self.fallback_job
        while node is not None:
            out.append(node)
            node = node.fallback_job
        return tuple(out)

    def to_payload(self) -> dict[str, Any]:
        ex = self.explicit
        out: dict[str, Any] = {"url": self.url}
        if "method" in ex:
            out["method"] = self.method
        if "headers" in ex:
            out["headers"] = dict(self.headers)
        if "body" in ex:
            out["body"] = self.body
        if "metadata" in ex:
            out["metadata"] = dict(self.metadata)
        if "webhooks" in ex:
            out["webhooks"] = [w.to_payload() for w in self.webhooks]
        for name in ("webhook_quorum", "region_policy", "execution_mode", "hedge_delay_ms",
                     "retry_at", "idempotent_key", "on_failure_timeout_ms"):
            if name in ex:
                out[name] = getattr(self, name)
        if "regions" in ex:
            out["regions"] = list(self.regions)
        if "retry_policy" in ex:
            out["retry_policy"] = self.retry_policy.to_payload()
        if "trigger" in ex and self.trigger is not None:
            out["trigger"] = self.trigger.to_payload()
        for name in NESTED_JOBS:
            child = getattr(self, name)
            if child is not None:
                out[name] = child.to_payload()
        return out

def domain_of(url: str) -> str:
    """The limiter key of a URL: ``scheme://host[:port]``, canonical so that one host has one
    limiter: lower-cased, a trailing dot removed, Unicode names in IDNA (punycode) form, default
    ports dropped. Raises ``ValueError`` on a host name IDNA cannot encode."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    else:
        host = host.rstrip(".")
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"
