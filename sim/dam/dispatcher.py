"""The Dispatcher: one per dam region; sends webhook deliveries to the receivers and relays
their answers to the region that hosts the job. It stops while its region is down."""

from __future__ import annotations

from typing import ClassVar

from ..jitter import link_jitter
from ..kernel import Actor
from ..messages import (
    HookRequest,
    HookResponse,
    HookResult,
    HookSend,
    HookTag,
    OutageEnds,
    OutageStarts,
)

__all__ = ["Dispatcher"]


class Dispatcher(Actor):
    kind = "dispatcher"
    HANDLERS: ClassVar[dict[type, str]] = {
        HookSend: "_on_send",
        HookResponse: "_on_response",
        OutageStarts: "_on_outage_starts",
        OutageEnds: "_on_outage_ends",
    }

    def __init__(self, region: str, topo) -> None:
        self.region = region
        self.name = f"dispatcher:{region}"
        self.topo = topo
        self.down = False

    def start(self, now: int) -> None:
        self.jitter = link_jitter(self.topo.jitter, self.rng)
        for o in self.topo.region_outages:
            if o.region == self.region:
                self.send(self.id, o.start, OutageStarts(o.region))
                self.send(self.id, o.end, OutageEnds(o.region))

    def _on_send(self, msg: HookSend, now: int) -> None:
        if self.down:
            return
        tag = HookTag(msg.region_actor, msg.job_id, msg.hook, msg.round, msg.place)
        at = now + self.topo.to_upstream + (self.jitter() if self.jitter is not None else 0)
        self.send(msg.receiver, at,
                  HookRequest(self.id, tag, msg.place, now + self.topo.webhook_timeout))

    def _on_response(self, msg: HookResponse, now: int) -> None:
        if self.down:
            return
        t = msg.tag
        self.send(t.region_actor, now + self.topo.intra,
                  HookResult(t.job_id, t.hook, t.round, t.place, msg.status, msg.error))

    def _on_outage_starts(self, msg: OutageStarts, now: int) -> None:
        self.down = True

    def _on_outage_ends(self, msg: OutageEnds, now: int) -> None:
        self.down = False
