"""Outcome classification and backoff strategies.

``classify`` maps one upstream attempt to SUCCESS / RETRY (same region) / REROUTE (another
region) / FAIL using the job's :class:`~engine.spec.RetryPolicy`:

* 2xx → SUCCESS;
* connection errors and timeouts → REROUTE;
* a status in ``retry_codes`` → RETRY, in ``reroute_codes`` → REROUTE;
* anything else → FAIL (final).

``decide`` then spends the branch's budget: a RETRY with no retries left escalates to a REROUTE
if reroutes are left, a REROUTE with no reroutes left (or no region to go to) falls back to a
RETRY in place if retries are left; otherwise the branch FAILs. So a branch makes at most
``1 + max_retries + max_reroutes`` attempts.

Backoff formulas (``n`` = 0-based retry number, ``b`` = base, ``c`` = cap, ``U`` = uniform):

==================  ===============================================
none                0
constant            b
exponential         min(c, b·2ⁿ)
full_jitter         U(0, min(c, b·2ⁿ))                 (default)
equal_jitter        v/2 + U(0, v/2),  v = min(c, b·2ⁿ)
decorrelated        min(c, U(b, 3·prev)), prev₀ = b
==================  ===============================================

A ``Retry-After`` on the response is honoured exactly instead of the formula.
"""

from __future__ import annotations

import enum
from typing import Protocol

from .backoff import BACKOFF_KINDS, Backoff, BackoffKind
from .spec import RetryPolicy

__all__ = [
    "BACKOFF_KINDS",
    "Backoff",
    "BackoffKind",
    "BlockRandom",
    "Outcome",
    "UniformSource",
    "classify",
    "decide",
]



class Outcome(enum.IntEnum):
    SUCCESS = 0
    RETRY = 1
    REROUTE = 2
    FAIL = 3


class UniformSource(Protocol):
    """What the engine needs of an RNG: ``random()`` in [0, 1). ``numpy.random.Generator`` fits."""

    def random(self) -> float: ...


class BlockRandom:
    """Uniforms drawn from a ``numpy.random.Generator`` in blocks: one numpy call per ``block``
    draws instead of one per draw (the per-call overhead dominates in hot loops)."""

    __slots__ = ("_buf", "_i", "block", "rng")

    def __init__(self, rng, block: int = 4096) -> None:
        self.rng = rng
        self.block = block
        self._buf: list[float] = []
        self._i = 0

    def random(self) -> float:
        i = self._i
        if i >= len(self._buf):
            self._buf = self.rng.random(self.block).tolist()
            i = 0
        self._i = i + 1
        return self._buf[i]

    def bytes(self, n: int) -> bytes:
        return self.rng.bytes(n)


def classify(status: int | None, error: str | None, policy: RetryPolicy) -> Outcome:
    if error is not None:
        return Outcome.REROUTE
    if status is None:
        return Outcome.REROUTE
    if 200 <= status <= 299:
        return Outcome.SUCCESS
    if status in policy.retry_codes:
        return Outcome.RETRY
    if status in policy.reroute_codes:
        return Outcome.REROUTE
    return Outcome.FAIL


def decide(wanted: Outcome, retries_used: int, reroutes_used: int, policy: RetryPolicy,
           can_reroute: bool) -> Outcome:
    """Spend the budget: the outcome the branch actually takes (see the module doc)."""
    if wanted is Outcome.SUCCESS or wanted is Outcome.FAIL:
        return wanted
    retry_left = retries_used < policy.max_retries
    reroute_left = reroutes_used < policy.max_reroutes and can_reroute
    if wanted is Outcome.RETRY:
        if retry_left:
            return Outcome.RETRY
        return Outcome.REROUTE if reroute_left else Outcome.FAIL
    if reroute_left:
        return Outcome.REROUTE
    return Outcome.RETRY if retry_left else Outcome.FAIL
