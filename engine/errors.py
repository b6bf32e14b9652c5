"""One documented error tree for the engine.

Every error a caller can provoke with bad input is an :class:`ApidamError`. Errors raised for input
carry the exact place of the problem (``path``) and a human reason, so a driver (CLI, HTTP server,
simulator) can show one clear line instead of a traceback.
"""

from __future__ import annotations

import re

__all__ = [
    "ApidamError",
    "BillingError",
    "CapReached",
    "ClientError",
    "LocalRequestError",
    "SecretError",
    "SpecError",
    "WebhookVerificationError",
    "validation_path",
]

_MSGSPEC_AT = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.S)


def validation_path(err: Exception) -> tuple[str, str]:
    """A ``msgspec.ValidationError`` as ``(path, reason)``: the path of the offending field
    (``$.a.b[2]``; a missing or unknown field's own path, not its parent's) and a reason in
    apidam's wording. The one translator for payloads and scenario files alike."""
    m = _MSGSPEC_AT.match(str(err))
    assert m is not None  # the pattern matches any string
    msg, path = m.group("msg"), m.group("path") or "$"
    for pattern, reason in (
            (r"Object missing required field `([^`]+)`", "required field is missing"),
            (r"Object contains unknown field `([^`]+)`", "unknown field")):
        hit = re.match(pattern, msg)
        if hit:
            return f"{path}.{hit.group(1)}", reason
    return path, msg.replace("Expected `", "expected `").replace(" | null`", "`")


class ApidamError(Exception):
    """Base class of every error the engine raises on purpose."""


class SpecError(ApidamError, ValueError):
    """A job payload (or a part of one) is invalid.

    ``path`` is a JSONPath-like location (``$.fallback_job.trigger.codes[1]``) and ``reason`` says
    what was expected there.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class WebhookVerificationError(ApidamError):
    """A webhook signature did not verify; ``reason`` is the machine-readable cause."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class SecretError(ApidamError, ValueError):
    """A webhook-secret operation was refused (too short, none configured, ...)."""


class BillingError(ApidamError):
    """Base class for billing refusals."""


class CapReached(BillingError):
    """The customer's tier hard cap is reached; the dam answers 429 ``cap_reached``."""

    status_code = 429
    code = "cap_reached"

    def __init__(self, customer_id: str, tier: str, cap: int) -> None:
        self.customer_id = customer_id
        self.tier = tier
        self.cap = cap
        super().__init__(f"cap_reached: customer {customer_id!r} used {cap} requests ({tier} cap)")


class ClientError(ApidamError):
    """A dam client refused a submit (the SDK's ``EZThrottleError``); ``retry_at`` in ms."""

    def __init__(self, message: str, retry_at: int | None = None) -> None:
        self.retry_at = retry_at
        super().__init__(message)


class LocalRequestError(ApidamError):
    """A FRUGAL local execution failed at the network level (connection error or timeout)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}" if detail else kind)
