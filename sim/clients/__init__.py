"""Clients: the customers' workloads, one class per strategy.

* ``diy`` (:class:`DiyClient`): straight to the upstream, with retries and optional policies;
* ``performance`` (:class:`PerformanceClient`): every job is submitted to the dam;
* ``frugal`` (:class:`FrugalClient`): one local attempt first, then the dam.
"""

from __future__ import annotations

from pathlib import Path

from ..metrics import Metrics
from ..scenario.resolved import WorkloadSpec
from .arrivals import arrival_times
from .base import ClientBase
from .diy import DiyClient
from .frugal import FrugalClient
from .performance import PerformanceClient

__all__ = ["ClientBase", "DiyClient", "FrugalClient", "PerformanceClient", "arrival_times",
           "make_client"]

CLIENTS: dict[str, type[ClientBase]] = {"diy": DiyClient, "performance": PerformanceClient,
                                        "frugal": FrugalClient}


def make_client(w: WorkloadSpec, topo, metrics: Metrics,
                base_dir: Path | None = None) -> ClientBase:
    return CLIENTS[w.strategy](w, topo, metrics, base_dir)
