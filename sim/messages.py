"""Every message between the simulator's actors, in one catalogue.

A message is a frozen msgspec Struct: its payload fields by name. Each class also declares its
``routes``: which kind of actor sends it to which, over which link. The Ray runtime's link floors
(``sim.runtime.planning.link_floors``) are derived from these routes, so a new message is
declared once, here, and the runtimes know who talks to whom.

Actor kinds: ``gateway``, ``region``, ``limiter``, ``dispatcher`` (the dam), ``upstream``,
``receiver``, ``client`` (the world). Links (one-way latencies of the scenario's ``[network]``):

======================  =============================================================
``dam``                 between the gateway's region (gateway, limiters) and a region
``intra``               within one region (gateway ↔ limiters, region ↔ its dispatcher)
``internet``            the dam or a client ↔ an upstream or a webhook receiver
``client``              a client → the gateway
``self``                an actor's own timer (may be due now; never crosses actors)
======================  =============================================================

Messages are tagged by class name when they cross process boundaries (msgpack, see
:func:`encode_batch`); inside one process they are passed as objects.
"""

from __future__ import annotations

from typing import Any, ClassVar, Union

import msgspec

__all__ = [
    "KINDS",
    "LINKS",
    "MESSAGES",
    "Arrive",
    "AttemptTag",
    "CallerDeadline",
    "ClientRetry",
    "Decision",
    "HookRequest",
    "HookResponse",
    "HookResult",
    "HookSend",
    "HookTag",
    "JobDecided",
    "JobDone",
    "JobTimer",
    "LimiterWake",
    "Message",
    "OutageEnds",
    "OutageStarts",
    "PermitAsk",
    "PermitCancel",
    "PermitGrant",
    "PermitRelease",
    "PermitsReclaim",
    "PermitsRestore",
    "RegionDownNotice",
    "RegionUpNotice",
    "Request",
    "Response",
    "Route",
    "RunJob",
    "ServiceDone",
    "SpawnChild",
    "Submit",
    "Tick",
    "TokenWake",
    "decode_batch",
    "encode_batch",
    "routes",
]

KINDS = ("gateway", "region", "limiter", "dispatcher", "upstream", "receiver", "client")
LINKS = ("dam", "intra", "internet", "client", "self")


class Route(msgspec.Struct, frozen=True):
    sender: str
    receiver: str
    link: str


def _r(sender: str, receiver: str, link: str) -> Route:
    assert sender in KINDS and receiver in KINDS and link in LINKS, (sender, receiver, link)
    return Route(sender, receiver, link)


def _self(kind: str) -> tuple[Route, ...]:
    return (_r(kind, kind, "self"),)


class Message(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=True):
    """Base of every message (tagged by class name on the wire)."""

    routes: ClassVar[tuple[Route, ...]] = ()


# -- payload records (not messages) --------------------------------------------------------------
class AttemptTag(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """Which dam attempt an upstream answer belongs to (echoed by the upstream)."""

    job_id: str
    branch: int
    attempt: int
    domain: int  # index of the target domain


class HookTag(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """Which webhook delivery a receiver's answer belongs to (echoed by the receiver)."""

    region_actor: int
    job_id: str
    hook: int
    round: int
    place: int


class Decision(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """A job's result, as the gateway keeps it for re-delivery after a region dies."""

    succeeded: bool
    status: int | None
    error: str | None


# -- clients ---------------------------------------------------------------------------------------
class Tick(Message):
    """Generate the next simulated second of arrivals."""

    routes = _self("client")


class Arrive(Message):
    """Job ``n`` of this client's workload arrives (DIY and FRUGAL clients)."""

    routes = _self("client")
    n: int


class ClientRetry(Message):
    """A DIY job's backoff is over: try again."""

    routes = _self("client")
    n: int


class TokenWake(Message):
    """The client-side rate limiter may have a token for the attempts waiting for one."""

    routes = _self("client")


class Submit(Message):
    """A job for the dam: the workload's template, the client's job number ``n``."""

    routes = (_r("client", "gateway", "client"),)
    workload: int
    n: int
    arrived: int  # µs, when the client's job arrived (latency is measured from here)


# -- the gateway -----------------------------------------------------------------------------------
class OutageStarts(Message):
    """A scripted dam-region outage begins (to the gateway: it notices; to a region or a
    dispatcher: it stops)."""

    routes = (*_self("gateway"), *_self("region"), *_self("dispatcher"))
    region: str


class OutageEnds(Message):
    routes = (*_self("gateway"), *_self("region"), *_self("dispatcher"))
    region: str


class RunJob(Message):
    """Host a job: fresh (``decided`` None), or recovered from a dead region."""

    routes = (_r("gateway", "region", "dam"),)
    job_id: str
    workload: int
    n: int  # the client's job number; -1 for a child job
    arrived: int
    key: str
    payload: dict[str, Any] | None  # a child job's payload; None: the workload's template
    decided: Decision | None


class RegionDownNotice(Message):
    routes = (_r("gateway", "region", "dam"),)
    region: str


class RegionUpNotice(Message):
    routes = (_r("gateway", "region", "dam"),)
    region: str


class PermitsReclaim(Message):
    """A region died: its permits will never come back."""

    routes = (_r("gateway", "limiter", "intra"),)
    region_actor: int


class PermitsRestore(Message):
    routes = (_r("gateway", "limiter", "intra"),)
    region_actor: int


# -- regions ---------------------------------------------------------------------------------------
class JobDecided(Message):
    routes = (_r("region", "gateway", "dam"),)
    job_id: str
    succeeded: bool
    status: int | None
    error: str | None
    at: int


class JobDone(Message):
    """The job's last command: nothing follows (``status`` is its final status)."""

    routes = (_r("region", "gateway", "dam"),)
    job_id: str
    status: str
    at: int


class SpawnChild(Message):
    """An ``on_success`` / ``on_failure`` child job."""

    routes = (_r("region", "gateway", "dam"),)
    workload: int
    payload: dict[str, Any]


class JobTimer(Message):
    routes = _self("region")
    job_id: str
    token: tuple


class PermitAsk(Message):
    routes = (_r("region", "limiter", "dam"),)
    region_actor: int
    job_id: str
    branch: int


class PermitRelease(Message):
    """A permit comes back: with the attempt's answer (headers, Retry-After, the breaker's
    verdict), or unused (``verdict`` None)."""

    routes = (_r("region", "limiter", "dam"),)
    region_actor: int
    status: int | None
    retry_after_us: int
    headers: dict[str, str] | None
    verdict: int | None  # engine.breaker.Verdict


class PermitCancel(Message):
    routes = (_r("region", "limiter", "dam"),)
    job_id: str
    branch: int


class HookSend(Message):
    routes = (_r("region", "dispatcher", "intra"),)
    region_actor: int
    job_id: str
    hook: int
    round: int
    place: int
    receiver: int  # actor id
    nbytes: int


# -- limiters --------------------------------------------------------------------------------------
class PermitGrant(Message):
    routes = (_r("limiter", "region", "dam"),)
    job_id: str
    branch: int
    domain: int


class LimiterWake(Message):
    routes = _self("limiter")


# -- the world -------------------------------------------------------------------------------------
class Request(Message):
    """An HTTP attempt at an upstream, from a dam region or a DIY/FRUGAL client."""

    routes = (_r("region", "upstream", "internet"), _r("client", "upstream", "internet"))
    reply_to: int
    tag: int | AttemptTag  # a client's job number, or the dam attempt
    logical: int  # the logical request (the side-effect ledger's key)
    place: int  # index of the sender's region ("client" is the last)
    deadline: int  # µs: the caller's timeout
    idempotency_key: bool
    nbytes: int
    workload: int


class Response(Message):
    routes = (_r("upstream", "region", "internet"), _r("upstream", "client", "internet"))
    tag: int | AttemptTag
    status: int | None
    error: str | None  # "timeout"
    retry_after_us: int
    headers: dict[str, str] | None


class ServiceDone(Message):
    """A queue-model upstream's server finishes the request it took (``sim.queue_world``)."""

    routes = _self("upstream")
    seq: int  # the request's number at this upstream


class CallerDeadline(Message):
    """A queue-model upstream's guard: answer ``timeout`` when the caller's deadline comes
    before the answer does."""

    routes = _self("upstream")
    seq: int


class HookRequest(Message):
    routes = (_r("dispatcher", "receiver", "internet"),)
    reply_to: int
    tag: HookTag
    place: int
    deadline: int


class HookResponse(Message):
    routes = (_r("receiver", "dispatcher", "internet"),)
    tag: HookTag
    status: int | None
    error: str | None


class HookResult(Message):
    routes = (_r("dispatcher", "region", "intra"),)
    job_id: str
    hook: int
    round: int
    place: int
    status: int | None
    error: str | None


MESSAGES: tuple[type[Message], ...] = tuple(
    c for c in list(globals().values())
    if isinstance(c, type) and issubclass(c, Message) and c is not Message)


def routes() -> dict[tuple[str, str], str]:
    """``(sender kind, receiver kind) → link`` for every pair of distinct actors that talk."""
    out: dict[tuple[str, str], str] = {}
    for cls in MESSAGES:
        for r in cls.routes:
            if r.link == "self":
                continue
            if out.setdefault((r.sender, r.receiver), r.link) != r.link:
                raise AssertionError(f"{r.sender} → {r.receiver} declared over two links")
    return out


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(list[tuple[int, int, int, Union[MESSAGES]]])  # noqa: UP007


def encode_batch(entries: list[tuple[int, int, int, Message]]) -> bytes:
    """``[(deliver µs, low key bits, target actor, message), ...]`` → msgpack bytes."""
    return _ENCODER.encode(entries)


def decode_batch(data: bytes) -> list[tuple[int, int, int, Message]]:
    return _DECODER.decode(data)
