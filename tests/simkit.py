"""Small harnesses for testing world actors in a bare kernel."""

from __future__ import annotations

import msgspec

from sim.kernel import Actor, Kernel, spawn_rngs
from sim.messages import HookRequest, HookTag, Request
from sim.metrics import Metrics
from sim.scenario import Receiver as ReceiverCfg
from sim.scenario import Upstream as UpstreamCfg
from sim.scenario.resolved import ReceiverSpec, UpstreamSpec, receiver_spec, upstream_spec
from sim.world import Receiver, Upstream

REGIONS = ["iad", "lax", "client"]


class Probe(Actor):
    """Sends scripted requests at given times; records every answer with its arrival time."""

    name = "probe"

    def __init__(self, target_of, script):
        self.target_of = target_of
        self.script = script  # list of (at, make(reply_to) -> message)
        self.answers: list[tuple[int, object]] = []

    def start(self, now):
        for at, make in self.script:
            self.send(self.id, at, ("go", make))

    def handle(self, msg, now):
        if type(msg) is tuple and msg[0] == "go":
            self.send(self.target_of(), now + 1000, msg[1](self.id))
        else:
            self.answers.append((now, msg))


def upstream_cfg(**kw) -> UpstreamSpec:
    base = {"name": "u", "url": "https://u.example", "model": "legacy"}  # these tests' model
    base.update(kw)
    return upstream_spec(msgspec.convert(base, UpstreamCfg))


def receiver_cfg(**kw) -> ReceiverSpec:
    base = {"name": "r", "url": "https://r.example"}
    base.update(kw)
    return receiver_spec(msgspec.convert(base, ReceiverCfg))


def run_upstream(cfg: UpstreamSpec, requests, *, until=10**9, dam_senders=(), seed=0):
    """requests: list of (at, logical, region_idx, timeout_us, idem, workload)."""
    metrics = Metrics(["w0", "w1"], ["https://u.example"], 10**9)
    k = Kernel()
    from sim.queue_world import LatencyUpstream, QueueUpstream

    model = {"legacy": Upstream, "queue": QueueUpstream, "latency": LatencyUpstream}[cfg.model]
    up = model(cfg, REGIONS, metrics, set(dam_senders), 1000)
    def request(i, at, logical, region, timeout, idem, w):
        return lambda reply_to: Request(reply_to, i, logical, region, at + 1000 + timeout, idem,
                                        100, w)

    script = [(at, request(i, at, *rest)) for i, (at, *rest) in enumerate(requests)]
    probe = Probe(lambda: up.id, script)
    k.add([probe, up], spawn_rngs(seed, 2))
    k.start()
    k.run(until)
    return probe, up, metrics


def run_receiver(cfg: ReceiverSpec, times, *, timeout=5_000_000, seed=0):
    metrics = Metrics(["w0"], [], 10**9)
    k = Kernel()
    rc = Receiver(cfg, REGIONS, metrics, 1000)
    def hook(i, at):
        return lambda reply_to: HookRequest(reply_to, HookTag(-1, "job", i, 0, 0), 0,
                                            at + 1000 + timeout)

    script = [(at, hook(i, at)) for i, at in enumerate(times)]
    probe = Probe(lambda: rc.id, script)
    k.add([probe, rc], spawn_rngs(seed, 2))
    k.start()
    k.run(10**10)
    return probe, rc
