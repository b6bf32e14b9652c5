"""What every client shares: its workload's arrivals, one simulated second at a time."""

from __future__ import annotations

from pathlib import Path

from engine.retry import BlockRandom
from engine.units import US_PER_S as S

from ..jitter import link_jitter
from ..kernel import Actor
from ..messages import Tick
from ..metrics import Metrics
from ..scenario.resolved import WorkloadSpec
from .arrivals import arrival_times, load_trace

__all__ = ["ClientBase"]



class ClientBase(Actor):
    """A workload's client. Subclasses say what happens to each arriving job
    (:meth:`_arrivals`)."""

    kind = "client"

    def __init__(self, w: WorkloadSpec, topo, metrics: Metrics,
                 base_dir: Path | None = None) -> None:
        index = self.index = w.index
        self.name = f"client:{w.name}"
        self.w = w
        self.topo = topo
        self.metrics = metrics
        self.strategy = w.strategy
        self.start_at = w.start_us
        self.stop_at = w.stop_us
        self.upstream = topo.upstream_ids[w.domain]
        self.region = topo.client_region
        self.link_up = topo.to_upstream
        self.link_gw = topo.client_to_gateway
        self.nbytes = w.payload_bytes
        self.logical_base = index << 32
        self.trace = None
        if w.arrivals.process == "trace":
            assert w.arrivals.file is not None  # validated: a trace names its file
            self.trace = load_trace(index, w.arrivals.file, base_dir)
        self.next_n = 0
        self.arr_state: dict = {}

    def start(self, now: int) -> None:
        self.u = BlockRandom(self.rng)
        self.jitter = link_jitter(self.topo.jitter, self.rng)  # None: the fixed link only
        if self.start_at < self.stop_at:
            self.send(self.id, self.start_at, Tick())

    def _on_tick(self, msg: Tick, now: int) -> None:
        end = min(now + S, self.stop_at)
        self._arrivals(arrival_times(self.w, now, end, self.rng, self.trace, self.arr_state),
                       now)
        if end < self.stop_at:
            self.send(self.id, end, Tick())

    def _arrivals(self, times: list[int], now: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
