"""Ctrl-C and SIGTERM as a request to stop: runs check it between steps and keep what they
computed. A second signal is not trapped (Ctrl-C raises KeyboardInterrupt at once)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["StopRequest", "trap_signals"]


class StopRequest:
    """Set by the first SIGINT / SIGTERM; ``requested()`` is what runs poll."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def requested(self) -> bool:
        return self.signal is not None


@contextmanager
def trap_signals() -> Iterator[StopRequest]:
    """Within the block, SIGINT and SIGTERM ask the run to stop instead of killing it."""
    stop = StopRequest()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, _frame) -> None:
        stop.signal = signum
        for s, h in previous.items():  # the next one acts at once
            signal.signal(s, h)

    for s in previous:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
