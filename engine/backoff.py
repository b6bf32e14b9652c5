"""Backoff strategies: the delay before a retry (the formulas are in :mod:`engine.retry`).

A frozen msgspec Struct, apart from :mod:`engine.retry` (which re-exports it) because that module
is compiled in the optional compiled build, and mypyc drops a class statement's keyword
arguments (``frozen=True``, ``kw_only=True``) without a word.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import msgspec

from .units import US_PER_S

if TYPE_CHECKING:
    from .retry import UniformSource

__all__ = ["BACKOFF_KINDS", "Backoff", "BackoffKind"]

BackoffKind = Literal["none", "constant", "exponential", "full_jitter", "equal_jitter",
                      "decorrelated_jitter"]
BACKOFF_KINDS: tuple[str, ...] = ("none", "constant", "exponential", "full_jitter",
                                  "equal_jitter", "decorrelated_jitter")


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    kind: BackoffKind = "full_jitter"
    base_us: int = US_PER_S
    cap_us: int = 60_000_000

    def __post_init__(self) -> None:
        if self.kind not in BACKOFF_KINDS:
            raise ValueError(f"unknown backoff kind {self.kind!r}")
        if self.base_us < 0 or self.cap_us < 0:
            raise ValueError("backoff base and cap must be >= 0")

    def delay(self, n: int, prev_us: int, rng: UniformSource) -> int:
        """Delay (µs) before retry number ``n`` (0-based); ``prev_us`` is the previous delay."""
        kind = self.kind
        if kind == "full_jitter":
            return int(rng.random() * self._exp(n))
        if kind == "none":
            return 0
        if kind == "constant":
            return min(self.base_us, self.cap_us)
        if kind == "exponential":
            return self._exp(n)
        if kind == "equal_jitter":
            v = self._exp(n)
            return v // 2 + int(rng.random() * (v - v // 2))
        prev = prev_us if prev_us > 0 else self.base_us
        hi = 3 * prev
        return min(self.cap_us, self.base_us + int(rng.random() * max(0, hi - self.base_us)))

    def _exp(self, n: int) -> int:
        if n >= 62:
            return self.cap_us
        return min(self.cap_us, self.base_us << n)
