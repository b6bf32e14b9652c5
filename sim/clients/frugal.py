"""FRUGAL: one local attempt first (timeout ``local_timeout``); a status in
``fallback_on_error`` or a network error forwards the job to the dam; another status fails it."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ..messages import Arrive, Request, Response, Submit, Tick
from ..metrics import Metrics
from ..scenario.resolved import WorkloadSpec
from .base import ClientBase

__all__ = ["FrugalClient"]


class FrugalClient(ClientBase):
    HANDLERS: ClassVar[dict[type, str]] = {
        Tick: "_on_tick",
        Arrive: "_on_arrive",
        Response: "_on_response",
    }

    def __init__(self, w: WorkloadSpec, topo, metrics: Metrics,
                 base_dir: Path | None = None) -> None:
        super().__init__(w, topo, metrics, base_dir)
        self.timeout = self.w.frugal.local_timeout_us
        self.fallback_codes = frozenset(self.w.frugal.fallback_on_error)
        self.arrived_at: dict[int, int] = {}  # job -> arrival time, while its local try runs

    def _arrivals(self, times: list[int], now: int) -> None:
        for t in times:
            self.send(self.id, t, Arrive(self.next_n))
            self.next_n += 1

    def _on_arrive(self, msg: Arrive, now: int) -> None:
        n = msg.n
        self.metrics.arrival(self.index, now)
        self.arrived_at[n] = now
        self.metrics.add("egress_bytes", self.index, self.nbytes)
        at = now + self.link_up + (self.jitter() if self.jitter is not None else 0)
        self.send(self.upstream, at,
                  Request(self.id, n, self.logical_base | n, self.region, now + self.timeout,
                          self.w.diy.idempotency_key, self.nbytes, self.index))

    def _on_response(self, msg: Response, now: int) -> None:
        n = msg.tag
        assert isinstance(n, int)  # the local attempt's tag is its job number
        arrived = self.arrived_at.pop(n, None)
        if arrived is None:
            return
        status, m = msg.status, self.metrics
        if status is not None and 200 <= status <= 299:
            m.add("local_success", self.index)
            m.finish(self.index, True, now - arrived, now)
        elif msg.error is not None or status in self.fallback_codes:
            m.add("forwarded", self.index)
            m.add("egress_bytes", self.index, self.nbytes)
            self.send(self.topo.gateway, now + self.link_gw, Submit(self.index, n, arrived))
        else:
            m.finish(self.index, False, now - arrived, now)
