"""``X-EZThrottle-Signature``: HMAC-SHA256 webhook signatures, verification and secret storage.

Header: ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``. Verification parses
the header by key (whitespace around parts is ignored), accepts any matching ``v1`` (so a sender may
sign with two secrets during a rotation), ignores unknown schemes, rejects a non-numeric or
non-finite ``t``, checks the timestamp within ±tolerance in both directions, and compares in
constant time. Reason strings follow the SDK's (``no_signature_header``, ``missing_v1_signature``,
``timestamp_expired (diff=Xs, tolerance=Ys)``, ``signature_mismatch``) plus ``invalid_timestamp``,
``missing_timestamp`` and ``timestamp_in_future (...)``.

``now`` is always passed in (unix seconds): the engine reads no clock. Callers at the edge pass
``time.time()``.
"""

from __future__ import annotations

import hashlib
import hmac
import math

import msgspec

from .errors import SecretError, WebhookVerificationError
from .units import US_PER_S

__all__ = [
    "MIN_SECRET_LENGTH",
    "SIGNATURE_HEADER",
    "SecretStore",
    "WebhookSecrets",
    "mask_secret",
    "sign_webhook",
    "try_verify_with_secrets",
    "verify_webhook_signature",
    "verify_webhook_signature_strict",
]

SIGNATURE_HEADER = "X-EZThrottle-Signature"
MIN_SECRET_LENGTH = 16
DEFAULT_TOLERANCE_S = 300
_MAX_HEADER = 4096


def _as_bytes(payload: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogatepass")
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    # never bytes(int): that would allocate that many zero bytes
    raise TypeError(f"payload must be bytes or str, not {type(payload).__name__}")


def _finite(x) -> bool:
    return (isinstance(x, int | float) and not isinstance(x, bool)
            and (isinstance(x, int) or math.isfinite(x)))


def _mac(secret: str, timestamp: str, body: bytes) -> str:
    msg = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8", "surrogatepass"), msg, hashlib.sha256).hexdigest()


def sign_webhook(body: bytes | str, secret: str, timestamp: int) -> str:
    """The ``X-EZThrottle-Signature`` header value for ``body`` signed at ``timestamp`` (unix s)."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError("timestamp must be an int of unix seconds")
    if not isinstance(secret, str):
        raise TypeError(f"secret must be a str, not {type(secret).__name__}")
    if len(secret) < MIN_SECRET_LENGTH:
        raise SecretError(f"secret must be at least {MIN_SECRET_LENGTH} characters, "
                          f"got {len(secret)}")
    return f"t={timestamp},v1={_mac(secret, str(timestamp), _as_bytes(body))}"


def _parse_header(header: str) -> tuple[str | None, list[str]]:
    t: str | None = None
    v1: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "t" and t is None:
            t = value
        elif key == "v1":
            v1.append(value)
    return t, v1


def verify_webhook_signature(payload: bytes | str, header: str | None, secret: str,
                             tolerance: int = DEFAULT_TOLERANCE_S,
                             now: float | None = None) -> tuple[bool, str]:
    """``(True, "valid")`` or ``(False, reason)``; never raises on bad input.

    ``now`` (unix seconds) is required for the timestamp check; ``None`` skips it, which only a
    caller that checks freshness elsewhere should do.
    """
    try:
        if now is not None and not _finite(now):
            return False, "verification_error: now must be a finite number of unix seconds"
        if not _finite(tolerance) or tolerance < 0:
            return False, "verification_error: tolerance must be a finite number >= 0"
        if not isinstance(payload, bytes | bytearray | memoryview | str):
            return False, "verification_error: payload must be bytes or str"
        if not header or not isinstance(header, str):
            return False, "no_signature_header"
        if len(header) > _MAX_HEADER:
            return False, "verification_error: header too long"
        if not isinstance(secret, str) or not secret:
            return False, "verification_error: empty secret"
        t, v1s = _parse_header(header)
        if t is None:
            return False, "missing_timestamp"
        try:
            ts = float(t)
        except ValueError:
            return False, "invalid_timestamp"
        if not math.isfinite(ts) or not t.isascii() or not t.lstrip("-").isdigit():
            return False, "invalid_timestamp"
        if not v1s:
            return False, "missing_v1_signature"
        if now is not None:
            diff = now - int(t)
            if diff > tolerance:
                return False, f"timestamp_expired (diff={int(diff)}s, tolerance={tolerance}s)"
            if -diff > tolerance:
                return False, f"timestamp_in_future (diff={int(-diff)}s, tolerance={tolerance}s)"
        expected = _mac(secret, t, _as_bytes(payload))
        ok = False
        for candidate in v1s:
            ok |= hmac.compare_digest(expected.encode("ascii"),
                                      candidate.encode("utf-8", "surrogatepass"))
        return (True, "valid") if ok else (False, "signature_mismatch")
    except (TypeError, ValueError, OverflowError, UnicodeError) as e:
        return False, f"verification_error: {e}"


def verify_webhook_signature_strict(payload: bytes | str, header: str | None, secret: str,
                                    tolerance: int = DEFAULT_TOLERANCE_S,
                                    now: float | None = None) -> None:
    """Like :func:`verify_webhook_signature` but raises :class:`WebhookVerificationError`."""
    ok, reason = verify_webhook_signature(payload, header, secret, tolerance, now)
    if not ok:
        raise WebhookVerificationError(reason)


def try_verify_with_secrets(payload: bytes | str, header: str | None, primary: str,
                            secondary: str | None = None, tolerance: int = DEFAULT_TOLERANCE_S,
                            now: float | None = None) -> tuple[bool, str]:
    """``(True, "valid_primary" | "valid_secondary")`` or ``(False, reason)``."""
    ok, reason = verify_webhook_signature(payload, header, primary, tolerance, now)
    if ok:
        return True, "valid_primary"
    if secondary:
        ok2, reason2 = verify_webhook_signature(payload, header, secondary, tolerance, now)
        if ok2:
            return True, "valid_secondary"
        return False, f"both_secrets_failed (primary: {reason}, secondary: {reason2})"
    return False, reason


def mask_secret(secret: str) -> str:
    """First 4 characters + ``****`` + last 3 (the SDK README's examples)."""
    return f"{secret[:4]}****{secret[-3:]}"


class WebhookSecrets(msgspec.Struct, frozen=True):
    """A customer's secrets; ``secondary_expires_at`` in µs of virtual time (None: never)."""

    primary: str
    secondary: str | None = None
    secondary_expires_at: int | None = None

    def active_secondary(self, now: int) -> str | None:
        if self.secondary is None:
            return None
        if self.secondary_expires_at is not None and now >= self.secondary_expires_at:
            return None
        return self.secondary


def _check_secret(secret: object, name: str) -> str:
    if not isinstance(secret, str):
        raise SecretError(f"{name} must be a string")
    if len(secret) < MIN_SECRET_LENGTH:
        raise SecretError(f"{name} must be at least {MIN_SECRET_LENGTH} characters, "
                          f"got {len(secret)}")
    return secret


class SecretStore:
    """Per-customer webhook secrets: create / get (masked) / rotate / delete.

    ``rotate`` keeps the old primary as secondary (optionally until ``secondary_ttl_us`` after
    ``now``); unlike the SDK's rotate, which re-reads a masked secret and so loses the old one.
    """

    __slots__ = ("_secrets",)

    def __init__(self) -> None:
        self._secrets: dict[str, WebhookSecrets] = {}

    def create(self, customer_id: str, primary: str, secondary: str | None = None) -> None:
        _check_secret(primary, "primary_secret")
        if secondary is not None:
            _check_secret(secondary, "secondary_secret")
        self._secrets[customer_id] = WebhookSecrets(primary, secondary)

    def secrets(self, customer_id: str, now: int | None = None) -> WebhookSecrets:
        """The unmasked secrets (for the dam's own signer); expired secondaries are dropped."""
        s = self._secrets.get(customer_id)
        if s is None:
            raise SecretError(f"no webhook secret configured for customer {customer_id!r}")
        if now is not None and s.secondary is not None and s.active_secondary(now) is None:
            s = WebhookSecrets(s.primary)
            self._secrets[customer_id] = s
        return s

    def get(self, customer_id: str, now: int | None = None) -> dict:
        """The SDK's GET shape, with secrets masked."""
        s = self.secrets(customer_id, now)
        return {
            "customer_id": customer_id,
            "primary_secret": mask_secret(s.primary),
            "secondary_secret": mask_secret(s.secondary) if s.secondary else None,
            "has_secondary": s.secondary is not None,
        }

    def rotate(self, customer_id: str, new_primary: str, now: int = 0,
               secondary_ttl_us: int | None = None) -> None:
        _check_secret(new_primary, "primary_secret")
        old = self.secrets(customer_id, now)
        if new_primary == old.primary:
            raise SecretError("the new primary secret equals the current one")
        expires = None if secondary_ttl_us is None else now + secondary_ttl_us
        self._secrets[customer_id] = WebhookSecrets(new_primary, old.primary, expires)

    def delete(self, customer_id: str) -> dict:
        if self._secrets.pop(customer_id, None) is None:
            raise SecretError(f"no webhook secret configured for customer {customer_id!r}")
        return {"status": "ok", "message": "Webhook secrets deleted"}

    def verify(self, customer_id: str, payload: bytes | str, header: str | None, now_us: int,
               tolerance: int = DEFAULT_TOLERANCE_S) -> tuple[bool, str]:
        """Verify with the customer's current secrets at virtual time ``now_us``."""
        s = self.secrets(customer_id, now_us)
        return try_verify_with_secrets(payload, header, s.primary, s.active_secondary(now_us),
                                       tolerance, now_us / US_PER_S)
