"""Garbage-collector settings for long runs over many long-lived objects.

A simulation (and the live server) holds hundreds of thousands of small objects for a long
time: waiting jobs, their machines, metric arrays. With CPython's default thresholds (700, 10,
10) the collector keeps re-walking them: 14 % of the wall time of the full
``stripe-5min-outage`` run, and the live server's submit p99 went from 24 to 77 ms. These
thresholds collect young objects ~14× less often and full collections rarely; what exists when
the run starts is frozen out of collection. Nothing here changes a result: the objects are freed
by reference counting, the collector only finds cycles, and the engine makes none on the hot
path. Measured: ``benchmarks/README.md``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["THRESHOLDS", "long_run_gc", "tune_for_long_run"]

THRESHOLDS = (10_000, 20, 100)


def tune_for_long_run() -> None:
    """Set the thresholds and freeze what exists now (for a process that stays in that mode)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


@contextmanager
def long_run_gc() -> Iterator[None]:
    """The same for the duration of a ``with`` block; the caller's settings come back after."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
