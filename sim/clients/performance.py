"""PERFORMANCE: every job is submitted to the dam's gateway."""

from __future__ import annotations

from typing import ClassVar

from ..messages import Submit, Tick
from .base import ClientBase, S

__all__ = ["PerformanceClient"]


class PerformanceClient(ClientBase):
    HANDLERS: ClassVar[dict[type, str]] = {
        Tick: "_on_tick",
    }

    def _arrivals(self, times: list[int], now: int) -> None:
        m, i, nbytes = self.metrics, self.index, self.nbytes
        resubmit = self.w.resubmit_fraction
        gw, link = self.topo.gateway, self.link_gw
        for t in times:
            n = self.next_n
            self.next_n += 1
            m.arrival(i, t)
            m.add("egress_bytes", i, nbytes)
            self.send(gw, t + link, Submit(i, n, t))
            if resubmit and self.u.random() < resubmit:
                # the client did not see the answer and submits again a second later
                m.arrival(i, t + S)
                m.add("egress_bytes", i, nbytes)
                self.send(gw, t + S + link, Submit(i, n, t + S))
