"""Forwarding legacy code to the dam: ``ForwardRequest``, ``ForwardToEZThrottle``,
``execute_with_forwarding`` and the ``auto_forward`` decorator (SDK names).

User code either *returns* a :class:`ForwardRequest` or *raises* :class:`ForwardToEZThrottle`;
both become a PERFORMANCE submit of the described request, and the caller gets the dam's submit
answer (``{"job_id", "status", ...}``) instead of the function's own result.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from .errors import ClientError
from .step import DEFAULT_FALLBACK_ON_ERROR

__all__ = ["ForwardRequest", "ForwardToEZThrottle", "auto_forward", "execute_with_forwarding"]

F = TypeVar("F", bound=Callable[..., Any])


class ForwardRequest(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    method: str = "GET"
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    body: str | None = None
    idempotent_key: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    webhooks: list[dict[str, Any]] = msgspec.field(default_factory=list)
    regions: list[str] | None = None
    fallback_on_error: tuple[int, ...] = DEFAULT_FALLBACK_ON_ERROR

    def to_payload(self) -> dict[str, Any]:
        """The job payload, shaped like the SDK's ``submit_job`` (empty fields omitted)."""
        p: dict[str, Any] = {"url": self.url, "method": self.method.upper()}
        if self.headers:
            p["headers"] = dict(self.headers)
        if self.body:
            p["body"] = self.body
        if self.metadata:
            p["metadata"] = dict(self.metadata)
        if self.webhooks:
            p["webhooks"] = list(self.webhooks)
        if self.regions:
            p["regions"] = list(self.regions)
        if self.idempotent_key:
            p["idempotent_key"] = self.idempotent_key
        return p


class ForwardToEZThrottle(ClientError):
    """Raised by user code to hand the described request to the dam (SDK signature)."""

    def __init__(self, message: str = "Forwarding to EZThrottle", url: str | None = None,
                 method: str = "GET", headers: dict[str, str] | None = None,
                 body: str | None = None, idempotent_key: str | None = None,
                 metadata: dict[str, Any] | None = None, webhooks: list | None = None,
                 regions: list | None = None, fallback_on_error: list | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.method = method
        self.headers = headers or {}
        self.body = body
        self.idempotent_key = idempotent_key
        self.metadata = metadata or {}
        self.webhooks = webhooks or []
        self.regions = regions
        self.fallback_on_error = list(fallback_on_error or DEFAULT_FALLBACK_ON_ERROR)

    def to_request(self) -> ForwardRequest:
        if not self.url:
            raise ClientError("ForwardToEZThrottle needs url= to know what to forward")
        return ForwardRequest(url=self.url, method=self.method, headers=self.headers,
                              body=self.body, idempotent_key=self.idempotent_key,
                              metadata=self.metadata, webhooks=self.webhooks,
                              regions=self.regions,
                              fallback_on_error=tuple(self.fallback_on_error))


def execute_with_forwarding(client: Any, fn: Callable[..., Any], *args: Any,
                            **kwargs: Any) -> Any:
    """Call ``fn``; if it returns a ForwardRequest or raises ForwardToEZThrottle, submit it."""
    try:
        result = fn(*args, **kwargs)
    except ForwardToEZThrottle as fwd:
        return client.submit(fwd.to_request().to_payload())
    if isinstance(result, ForwardRequest):
        return client.submit(result.to_payload())
    return result


def auto_forward(client: Any) -> Callable[[F], F]:
    """Decorator form of :func:`execute_with_forwarding`."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            return execute_with_forwarding(client, fn, *args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap
