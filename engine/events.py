"""Events into a :class:`~engine.job.JobMachine` and the commands it answers with.

All are frozen, slotted msgspec Structs (``gc=False``: they hold no cycles), cheap to make and to
serialise (msgpack) across process boundaries.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "AskPermit",
    "AttemptFinished",
    "Cancel",
    "CancelBranch",
    "Command",
    "Event",
    "Finished",
    "JobOutcome",
    "PermitGranted",
    "RegionDown",
    "RegionUp",
    "ReturnPermit",
    "SendWebhook",
    "SetTimer",
    "SpawnJob",
    "StartAttempt",
    "StatusChanged",
    "Submit",
    "TimerFired",
    "WebhookResult",
]


class SendWebhook(msgspec.Struct, frozen=True, gc=False):
    """Command: POST ``body`` with ``headers`` to ``url`` from ``region``."""

    job_id: str
    hook: int
    round: int
    region: str
    url: str
    body: bytes
    headers: dict[str, str]


class _Msg(msgspec.Struct, frozen=True, gc=False):
    pass


# -- events --------------------------------------------------------------------------------------
class Submit(_Msg):
    pass


class PermitGranted(_Msg):
    branch: int


class AttemptFinished(_Msg):
    branch: int
    attempt: int
    status: int | None = None
    headers: dict[str, str] | None = None
    body: str = ""
    body_size: int = 0
    latency_us: int = 0
    error: str | None = None  # "timeout" | "connect" | "reset" | "region_down"


class TimerFired(_Msg):
    token: tuple


class RegionDown(_Msg):
    region: str


class RegionUp(_Msg):
    region: str


class WebhookResult(_Msg):
    hook: int
    round: int
    region: str
    status: int | None = None
    error: str | None = None


class Cancel(_Msg):
    reason: str = "cancelled"


Event = (Submit | PermitGranted | AttemptFinished | TimerFired | RegionDown | RegionUp
         | WebhookResult | Cancel)


# -- commands ------------------------------------------------------------------------------------
class AskPermit(_Msg):
    """Ask the domain's limiter for a permit, not before ``not_before`` (µs): a retry's backoff
    is carried by the ask itself, so a driver needs no timer event for it."""

    job_id: str
    branch: int
    domain: str
    region: str
    not_before: int = 0


class ReturnPermit(_Msg):
    """A permit arrived for a branch that no longer wants it: give it back unused."""

    job_id: str
    branch: int
    domain: str


class StartAttempt(_Msg):
    """Send the request now (the permit is held; the driver releases it when the attempt ends
    and must report an AttemptFinished within ``timeout_us``)."""

    job_id: str
    branch: int
    attempt: int
    region: str
    domain: str
    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    timeout_us: int


class CancelBranch(_Msg):
    """Best-effort cancel: drop a pending permit request / backoff; an in-flight request cannot
    be recalled (``in_flight``) and its answer will still arrive."""

    job_id: str
    branch: int
    region: str
    domain: str
    in_flight: bool


class SetTimer(_Msg):
    job_id: str
    at: int
    token: tuple


class SpawnJob(_Msg):
    parent_id: str
    relation: str  # "on_success" | "on_failure"
    payload: dict


class StatusChanged(_Msg):
    """queued | dispatching | racing | succeeded | failed | delivering | delivered | undelivered"""

    job_id: str
    status: str


class JobOutcome(_Msg):
    job_id: str
    status: str  # final: succeeded | failed | delivered | undelivered
    succeeded: bool
    submitted_at: int
    result_at: int  # when succeeded/failed was decided
    finished_at: int
    attempts: int
    duplicate_executions: int
    winner_arm: int | None
    winner_region: str | None
    response_status: int | None
    error: str | None
    webhook_attempts: int


class Finished(_Msg):
    """The last command of a job: nothing follows it."""

    outcome: JobOutcome


Command = (AskPermit | ReturnPermit | StartAttempt | CancelBranch | SetTimer | SendWebhook
           | SpawnJob | StatusChanged | Finished)
