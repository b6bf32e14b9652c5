"""What the gateway keeps of an accepted job until it is done.

Apart from :mod:`sim.dam.gateway` (which re-exports it) because that module is compiled in the
optional compiled build, and mypyc drops a class statement's keyword arguments (``gc=False``)
without a word.
"""

from __future__ import annotations

import msgspec

from ..messages import Decision

__all__ = ["ActiveJob"]


class ActiveJob(msgspec.Struct, gc=False):
    """What the gateway keeps of a job until it is done."""

    workload: int
    n: int
    arrived: int
    key: str
    home: str  # the region hosting it
    decision: Decision | None
    payload: dict | None  # a child job's payload
    listed: tuple[str, ...]  # its listed regions
