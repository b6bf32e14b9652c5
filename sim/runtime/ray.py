"""The Ray runtime: every actor group (see :mod:`sim.runtime.coordinator`) is a Ray actor.

Ray places the groups, starts and kills them, reports their deaths and carries the scenario
and the final metrics. The per-round traffic (a step request with the group's inbox, its reply
with the outgoing batches and the delivered keys) is one msgpack ``bytes`` each way over a
direct, authenticated channel between the coordinator and the group: a Unix socket when the
group runs on the coordinator's node, TCP to the group's node otherwise; the channel authenticates
with a fresh key handed over by Ray, and carries msgpack only (never pickle). Why not an actor call
per round: a conservative run of the default placement needs one round per ~0.5-1 ms of dense
virtual time (686k rounds for the full ``stripe-5min-outage``), and measured here (2 cores,
6 groups) a round of actor calls costs 3-5 ms, a round of a Ray compiled graph 0.5-0.8 ms, and a
round over direct channels 0.13-0.25 ms (benchmarks/ray_runtime.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from multiprocessing.connection import Client, Listener
from pathlib import Path

import msgpack
import msgspec

from engine.units import US_PER_S

from ..gctune import tune_for_long_run
from ..kernel import TIME_SHIFT
from ..result import RunResult, summarize
from ..scenario import Scenario
from .coordinator import Coordinator, GroupFailure, merge_finals, summarize_groups
from .planning import PLACEMENTS, placement_groups, plan_groups
from .workers import GroupWorker

__all__ = ["PLACEMENTS", "RayChannels", "RayGroup", "RayRunError", "parse_ray_address",
           "placement_groups", "run_ray"]

_LOW = (1 << TIME_SHIFT) - 1
_START, _STEP, _FINISH = 0, 1, 2
_OK, _ERROR = 0, 1
_LIVENESS_S = 2.0  # how often a waiting coordinator asks Ray whether a silent group is alive
_LOCAL_FAMILY = "AF_UNIX"  # for groups on the coordinator's node (AF_INET: loopback TCP)


class RayRunError(RuntimeError):
    """A Ray run failed (a group died, ...): the message names the group and the virtual time;
    ``partial`` holds what the surviving groups had measured."""

    def __init__(self, message: str, partial: RunResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial


def _pack_reply(reply) -> bytes:
    out, nxt, keys = reply
    return msgpack.packb([_OK, out, nxt, [k >> TIME_SHIFT for k in keys],
                          [k & _LOW for k in keys]], use_bin_type=True)


def _unpack_reply(data: bytes, group: int):
    status, *body = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=False)
    if status == _ERROR:
        raise GroupFailure(group, body[0], died=False)
    out, nxt, times, lows = body
    return out, nxt, [(t << TIME_SHIFT) | low for t, low in zip(times, lows, strict=True)]


class RayGroup(GroupWorker):
    """A group as a Ray actor: ``listen`` opens its end of the channel, ``serve`` answers the
    coordinator's requests until it asks for the final state."""

    def __init__(self, *args) -> None:
        logging.getLogger().setLevel(logging.WARNING)  # a Ray worker: keep its log quiet
        tune_for_long_run()  # this process runs one simulation group and nothing else
        super().__init__(*args)

    def where(self) -> tuple[str, str]:
        import ray

        return ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()

    def listen(self, family: str, host: str, authkey: bytes):
        address = None if family == "AF_UNIX" else (host, 0)
        self._listener = Listener(address, family=family, authkey=authkey)
        return self._listener.address

    def serve(self) -> None:
        with self._listener.accept() as conn:
            self._listener.close()
            while True:
                try:
                    op, *args = msgpack.unpackb(conn.recv_bytes(), raw=False, use_list=True)
                except EOFError:  # the coordinator went away
                    return
                try:
                    if op == _STEP:
                        reply = _pack_reply(self.step(*args))
                    elif op == _START:
                        reply = _pack_reply(self.start())
                    else:
                        conn.send_bytes(msgpack.packb([_OK, self.finish()], use_bin_type=True))
                        return
                except Exception as e:  # reported to the coordinator, which ends the run
                    reply = msgpack.packb([_ERROR, f"{type(e).__name__}: {e}"])
                conn.send_bytes(reply)


class RayChannels:
    """The transport: one Ray actor and one direct channel per group."""

    def __init__(self, workers: list, authkey: bytes) -> None:
        import ray

        self.ray = ray
        self.workers = workers
        self.failed: set[int] = set()
        here = ray.get_runtime_context().get_node_id()
        places = self._gather([w.where.remote() for w in workers])
        addresses = self._gather([
            w.listen.remote(*((_LOCAL_FAMILY, "127.0.0.1") if node == here else ("AF_INET", ip)),
                            authkey)
            for w, (node, ip) in zip(workers, places, strict=True)])
        self.serving = [w.serve.remote() for w in workers]
        self.conns = []
        for g, address in enumerate(addresses):
            try:
                self.conns.append(Client(address, authkey=authkey))
            except OSError as e:  # it died since it opened its end
                self.failed.add(g)
                raise GroupFailure(g, f"the channel could not be opened: {e}", died=True) from None
        self.owed = [0] * len(workers)  # requests sent and not yet answered

    def _gather(self, refs: list) -> list:
        """``ray.get`` of one call per group, naming the group that could not answer."""
        from ray.exceptions import RayError

        values = []
        for g, ref in enumerate(refs):
            try:
                values.append(self.ray.get(ref))
            except RayError as e:
                self.failed.add(g)
                raise GroupFailure(g, f"the Ray actor could not start: {e}", died=True) from None
        return values

    def _send(self, g: int, request: list) -> None:
        try:
            self.conns[g].send_bytes(msgpack.packb(request, use_bin_type=True))
        except OSError:
            self._died(g)
        self.owed[g] += 1

    def _recv(self, g: int, timeout: float | None = None) -> bytes:
        conn = self.conns[g]
        waited = 0.0
        while not conn.poll(_LIVENESS_S):
            waited += _LIVENESS_S
            done, _ = self.ray.wait([self.serving[g]], timeout=0)
            if done or (timeout is not None and waited >= timeout):
                self._died(g)
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            self._died(g)
        self.owed[g] -= 1
        return data

    def _died(self, g: int):
        self.failed.add(g)
        raise GroupFailure(g, "the Ray actor died", died=True)

    def start(self):
        for g in range(len(self.workers)):
            self._send(g, [_START])
        return [_unpack_reply(self._recv(g), g) for g in range(len(self.workers))]

    def step(self, requests):
        for g, (inbox, until, floors) in requests.items():
            self._send(g, [_STEP, inbox, until, floors])
        return {g: _unpack_reply(self._recv(g), g) for g in requests}

    def _final(self, g: int, timeout: float | None = None) -> dict:
        while self.owed[g]:
            self._recv(g, timeout)
        self._send(g, [_FINISH])
        return msgpack.unpackb(self._recv(g, timeout), raw=False, strict_map_key=False)[1]

    def finish(self) -> list[dict]:
        return [self._final(g) for g in range(len(self.workers))]

    def salvage(self) -> list[dict]:
        finals = []
        for g in range(len(self.workers)):
            if g in self.failed:
                continue
            with contextlib.suppress(GroupFailure):
                finals.append(self._final(g, timeout=30.0))
        return finals

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        for w in self.workers:
            with contextlib.suppress(Exception):  # already dead
                self.ray.kill(w)


def parse_ray_address(address: str) -> tuple[str, int] | None:
    """``host:port`` or ``ray://host:port`` → (host, port); None for ``auto`` / ``local``.
    Raises ``ValueError`` naming what is wrong."""
    if address in ("auto", "local"):
        return None
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"--ray-address {address!r}: expected host:port, ray://host:port, "
                         f"auto or local")
    return host.strip("[]"), int(port)


def _init_ray(address: str | None, connect_timeout_s: float = 10.0) -> bool:
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        try:
            target = parse_ray_address(address)
        except ValueError as e:
            raise RayRunError(str(e)) from None
        if target is not None:  # a quick probe: ray.init would retry for minutes
            try:
                socket.create_connection(target, timeout=connect_timeout_s).close()
            except OSError as e:
                raise RayRunError(f"cannot reach Ray at {address}: {e.strerror or e}") from None
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False, configure_logging=True,
                 runtime_env={"env_vars": {"PYTHONHASHSEED": "0"}})
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise RayRunError(f"cannot start or join Ray ({address or 'local'}): {e}") from None
    return True


def run_ray(sc: Scenario, *, base_dir: Path | None = None, address: str | None = None,
            placement: str = "default", progress: Callable[[int, int], None] | None = None,
            on_window: Callable[[int, dict], None] | None = None,
            shutdown: bool | None = None,
            should_stop: Callable[[], bool] | None = None) -> RunResult:
    """Run ``sc`` on Ray. Same results and trace hash as :func:`run_local`.

    ``on_window(n, {"workers", "groups"})`` is called before every round (tests use it to kill
    a group mid-run). Ray is started when not already running (``address``, else
    ``RAY_ADDRESS``, else a local one) and then shut down again unless ``shutdown`` says.
    """
    import ray

    t0 = time.perf_counter()
    started = _init_ray(address)
    plan, topo, _actors = plan_groups(sc, placement, base_dir)
    doc = msgspec.to_builtins(sc)
    Worker = ray.remote(num_cpus=0)(RayGroup)
    workers = [Worker.remote(doc, str(base_dir) if base_dir else None, plan.actor_group, g)
               for g in range(len(plan.names))]
    coordinator = Coordinator(plan, topo.horizon)
    channels = None
    try:
        channels = RayChannels(workers, os.urandom(32))
        hook = None
        if on_window is not None:
            def hook(n: int) -> None:
                on_window(n, {"workers": workers, "groups": plan.names})
        out = coordinator.run(channels, progress=progress, on_window=hook,
                              should_stop=should_stop)
    except GroupFailure as e:
        where = plan.names[e.group]
        at = f"virtual time {coordinator.now / US_PER_S:.6f} s"
        partial = _partial(sc, topo, channels.salvage() if channels else [], coordinator, t0)
        if e.died:
            message = f"Ray group {where!r} died at {at} ({e.detail}); the run is incomplete"
        else:
            message = f"Ray group {where!r} failed at {at}: {e.detail}"
        raise RayRunError(message, partial) from None
    finally:
        if channels is not None:
            channels.close()
        else:
            for w in workers:
                with contextlib.suppress(Exception):
                    ray.kill(w)
        if shutdown or (shutdown is None and started):
            ray.shutdown()
    return summarize_groups(sc, topo, plan, out, backend="ray", wall_s=time.perf_counter() - t0)


def _partial(sc, topo, finals: list[dict], coordinator: Coordinator, t0: float):
    if not finals:
        return None
    return summarize(sc, topo, merge_finals(finals), backend="ray", trace_hash="incomplete",
                     events=coordinator.events, sim_us=coordinator.now,
                     wall_s=time.perf_counter() - t0,
                     extra={"incomplete": True, "failed_at_us": coordinator.now})
