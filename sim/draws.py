"""Random integers handed out one at a time from blocks drawn at once.

A numpy draw costs ~1 µs whatever its size, so the world's samplers (latencies, service times,
link jitter) draw 4,096 values per call and hand them out one by one. Every sampler refills
through this one class; the sequence of values depends only on the refill function.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["BLOCK", "BlockDraws"]

BLOCK = 4096


class BlockDraws:
    """Calls ``refill()`` (an array of ``BLOCK`` values) when empty; returns them as ints."""

    __slots__ = ("_buf", "_i", "_refill")

    def __init__(self, refill: Callable[[], np.ndarray]) -> None:
        self._refill = refill
        self._buf: list[int] = []
        self._i = 0

    def __call__(self) -> int:
        i = self._i
        if i >= len(self._buf):
            self._buf = self._refill().astype(np.int64).tolist()
            i = 0
        self._i = i + 1
        return self._buf[i]
