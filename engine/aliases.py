"""Pass 1 of job parsing: the shape walk. Maps the camelCase aliases the Node and Go SDKs send
to snake_case, rejects unknown keys and over-deep nesting, and remembers how the caller spelled
each path, so errors name the caller's own keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import SpecError
from .jobspec import NESTED_JOBS

__all__ = ["MAX_NESTING", "Shape", "fmt_path", "kind_of"]

#: Deepest chain of nested jobs (fallback_job / on_success / on_failure) accepted.
MAX_NESTING = 8


_JOB_KEYS = {
    "url": "url", "method": "method", "headers": "headers", "body": "body",
    "metadata": "metadata", "webhooks": "webhooks",
    "webhook_quorum": "webhook_quorum", "webhookQuorum": "webhook_quorum",
    "regions": "regions",
    "region_policy": "region_policy", "regionPolicy": "region_policy",
    "execution_mode": "execution_mode", "executionMode": "execution_mode",
    "hedge_delay_ms": "hedge_delay_ms", "hedgeDelayMs": "hedge_delay_ms",
    "retry_policy": "retry_policy", "retryPolicy": "retry_policy",
    "retry_at": "retry_at", "retryAt": "retry_at",
    "idempotent_key": "idempotent_key", "idempotentKey": "idempotent_key",
    "fallback_job": "fallback_job", "fallbackJob": "fallback_job",
    "on_success": "on_success", "onSuccess": "on_success",
    "on_failure": "on_failure", "onFailure": "on_failure",
    "on_failure_timeout_ms": "on_failure_timeout_ms",
    "onFailureTimeoutMs": "on_failure_timeout_ms",
    "trigger": "trigger",
}
_WEBHOOK_KEYS = {
    "url": "url", "regions": "regions",
    "has_quorum_vote": "has_quorum_vote", "hasQuorumVote": "has_quorum_vote",
}
_RETRY_KEYS = {
    "max_retries": "max_retries", "maxRetries": "max_retries",
    "max_reroutes": "max_reroutes", "maxReroutes": "max_reroutes",
    "retry_codes": "retry_codes", "retryCodes": "retry_codes",
    "reroute_codes": "reroute_codes", "rerouteCodes": "reroute_codes",
}
_TRIGGER_KEYS = {
    "type": "type", "codes": "codes", "timeout_ms": "timeout_ms", "timeoutMs": "timeout_ms",
}


def fmt_path(path: tuple[str | int, ...]) -> str:
    out = ["$"]
    for seg in path:
        out.append(f"[{seg}]" if isinstance(seg, int) else f".{seg}")
    return "".join(out)


class Shape:
    """Pass 1 state: the display path of every renamed prefix, for translating msgspec paths."""

    __slots__ = ("display",)

    def __init__(self) -> None:
        self.display: dict[str, str] = {}

    def rename(self, obj: Any, table: dict[str, str], canon: tuple, shown: tuple,
               what: str) -> dict:
        if not isinstance(obj, Mapping):
            raise SpecError(fmt_path(shown), f"expected an object ({what}), got {kind_of(obj)}")
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise SpecError(fmt_path(shown), f"object keys must be strings, got {kind_of(key)}")
            name = table.get(key)
            if name is None:
                known = ", ".join(sorted({v for v in table.values()}))
                raise SpecError(fmt_path((*shown, key)),
                                f"unknown field in {what} (known: {known})")
            if name in out:
                raise SpecError(fmt_path((*shown, key)), f"duplicate field: {name!r} given twice "
                                                     f"(snake_case and camelCase)")
            out[name] = value
            if name != key or canon != shown:
                self.display[fmt_path((*canon, name))] = fmt_path((*shown, key))
        return out

    def job(self, obj: Any, canon: tuple, shown: tuple, depth: int, in_fallback: bool) -> dict:
        if depth > MAX_NESTING:
            raise SpecError(fmt_path(shown), f"jobs nested deeper than {MAX_NESTING} levels")
        out = self.rename(obj, _JOB_KEYS, canon, shown, "job")
        key_of = {v: k for k, v in _JOB_KEYS.items() if k in obj}
        if out.get("trigger") is not None:
            if not in_fallback:
                raise SpecError(fmt_path((*shown, "trigger")),
                                "trigger is only valid inside fallback_job")
            out["trigger"] = self.rename(out["trigger"], _TRIGGER_KEYS, (*canon, "trigger"),
                                         (*shown, "trigger"), "trigger")
        if out.get("retry_policy") is not None:
            k = key_of["retry_policy"]
            out["retry_policy"] = self.rename(out["retry_policy"], _RETRY_KEYS,
                                              (*canon, "retry_policy"), (*shown, k), "retry_policy")
        headers = out.get("headers")
        if isinstance(headers, Mapping):
            for name, value in headers.items():
                if not isinstance(value, str):
                    hk = key_of["headers"]
                    raise SpecError(f"{fmt_path((*shown, hk))}.{name}",
                                    f"header values must be strings, got {kind_of(value)}")
        hooks = out.get("webhooks")
        if isinstance(hooks, list):
            out["webhooks"] = [
                self.rename(h, _WEBHOOK_KEYS, (*canon, "webhooks", i), (*shown, "webhooks", i),
                            "webhook")
                for i, h in enumerate(hooks)
            ]
        for name in NESTED_JOBS:
            if name in out and out[name] is not None:
                k = key_of[name]
                out[name] = self.job(out[name], (*canon, name), (*shown, k), depth + 1,
                                     in_fallback=name == "fallback_job")
        return out

    def translate(self, path: str) -> str:
        best = ""
        for canon in self.display:
            if (path == canon or path.startswith(canon + ".") or path.startswith(canon + "[")) \
                    and len(canon) > len(best):
                best = canon
        return self.display[best] + path[len(best):] if best else path


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
