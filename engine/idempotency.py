"""Idempotency keys and the per-customer dedupe table.

Key derivation (docs/SEMANTICS.md §3): a custom ``idempotent_key`` wins; HASH (the default) is
the hex SHA-256 of the UTF-8 compact JSON array ``[customer_id, METHOD, url, body or ""]``;
UNIQUE is a UUID4 drawn from the caller's ``numpy.random.Generator`` (never from global random
state).

The table maps ``(customer_id, key) -> job_id``. Entries live while their job is active and for
``retention_us`` after it ends. Expiry is driven by a min-heap of deadlines, so ``expire(now)``
costs O(expired · log n), not O(table). A job reported terminal twice keeps its first deadline;
stale heap entries are skipped lazily.
"""

from __future__ import annotations

import enum
import hashlib
import heapq
import json
import uuid
from typing import TYPE_CHECKING

import msgspec

from .units import US_PER_S

if TYPE_CHECKING:
    import numpy as np

    from .spec import JobSpec

__all__ = [
    "DEFAULT_RETENTION_US",
    "DedupeTable",
    "IdempotentStrategy",
    "SubmitOutcome",
    "derive_key",
    "hash_key",
    "unique_key",
]

#: How long a key outlives its job's terminal state (24 h), in microseconds.
DEFAULT_RETENTION_US = 24 * 3600 * US_PER_S


class IdempotentStrategy(enum.Enum):
    """How the key of a job without a custom ``idempotent_key`` is chosen (SDK names)."""

    HASH = "hash"
    UNIQUE = "unique"


_encode = msgspec.json.Encoder().encode


def hash_key(customer_id: str, method: str, url: str, body: str | None) -> str:
    """HASH strategy: hex SHA-256 of ``[customer_id, METHOD, url, body or ""]`` as compact JSON
    (``json.dumps(..., separators=(",", ":"), ensure_ascii=False)``, UTF-8)."""
    doc = [customer_id, method.upper(), url, body or ""]
    try:
        raw = _encode(doc)  # byte-identical to the json.dumps form, 10x faster
    except (UnicodeEncodeError, msgspec.EncodeError):  # lone surrogates
        raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()


def unique_key(rng: np.random.Generator) -> str:
    """UNIQUE strategy: an RFC 4122 version-4 UUID whose random bits come from ``rng``."""
    return str(uuid.UUID(bytes=bytes(rng.bytes(16)), version=4))


def derive_key(spec: JobSpec, strategy: IdempotentStrategy = IdempotentStrategy.HASH,
               rng: np.random.Generator | None = None) -> str:
    """The effective key of ``spec``: its custom key, else by ``strategy``."""
    if spec.idempotent_key is not None:
        return spec.idempotent_key
    if strategy is IdempotentStrategy.UNIQUE:
        if rng is None:
            raise ValueError("the UNIQUE strategy needs an rng (numpy.random.Generator)")
        return unique_key(rng)
    return hash_key(spec.customer_id, spec.method, spec.url, spec.body)


class SubmitOutcome(msgspec.Struct, frozen=True):
    """What the dedupe table says about a submit: a new job, or the original one."""

    job_id: str
    duplicate: bool
    status: str


class _Entry:
    __slots__ = ("expires_at", "job_id", "status")

    def __init__(self, job_id: str, status: str) -> None:
        self.job_id = job_id
        self.status = status
        self.expires_at: int | None = None  # None while the job is active


class DedupeTable:
    """``(customer_id, key) -> job_id`` with retention after the job's terminal state."""

    __slots__ = ("_by_job", "_deadlines", "_entries", "retention_us")

    def __init__(self, retention_us: int = DEFAULT_RETENTION_US) -> None:
        if retention_us < 0:
            raise ValueError("retention_us must be >= 0")
        self.retention_us = retention_us
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._by_job: dict[str, tuple[str, str]] = {}
        self._deadlines: list[tuple[int, str, str]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, customer_id: str, key: str, now: int) -> SubmitOutcome | None:
        """The live entry for ``(customer_id, key)``, or None (expired entries are dropped)."""
        self.expire(now)
        e = self._entries.get((customer_id, key))
        return None if e is None else SubmitOutcome(e.job_id, True, e.status)

    def submit(self, customer_id: str, key: str, job_id: str, now: int,
               status: str = "queued") -> SubmitOutcome:
        """Register ``job_id`` under the key, or return the original job if the key is live.

        A duplicate never registers anything: the caller must not execute it.
        """
        self.expire(now)
        k = (customer_id, key)
        e = self._entries.get(k)
        if e is not None:
            return SubmitOutcome(e.job_id, True, e.status)
        if job_id in self._by_job:
            raise ValueError(f"job id {job_id!r} is already registered")
        self._entries[k] = _Entry(job_id, status)
        self._by_job[job_id] = k
        return SubmitOutcome(job_id, False, status)

    def set_status(self, job_id: str, status: str, now: int, *, terminal: bool = False) -> None:
        """Record a job's status; a terminal status starts the retention clock."""
        k = self._by_job.get(job_id)
        if k is None:
            return
        e = self._entries[k]
        e.status = status
        if terminal and e.expires_at is None:
            e.expires_at = now + self.retention_us
            heapq.heappush(self._deadlines, (e.expires_at, k[0], k[1]))

    def forget(self, job_id: str) -> None:
        """Drop a job's key at once (e.g. its submit was refused after the dedupe check)."""
        k = self._by_job.pop(job_id, None)
        if k is not None:
            del self._entries[k]

    def expire(self, now: int) -> int:
        """Drop every entry whose retention ended at or before ``now``; returns how many."""
        dl = self._deadlines
        dropped = 0
        while dl and dl[0][0] <= now:
            at, cust, key = heapq.heappop(dl)
            e = self._entries.get((cust, key))
            if e is not None and e.expires_at == at:
                del self._entries[(cust, key)]
                del self._by_job[e.job_id]
                dropped += 1
        return dropped
