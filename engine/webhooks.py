"""Webhook delivery: the payload, fanout, per-webhook region racing, retries and quorum.

* Payload: ``{job_id, idempotent_key, status: "success"|"failed", response: {status_code,
  headers, body}, metadata}`` plus ``error`` when failed, encoded once as compact JSON.
* Every webhook is delivered independently. A delivery *round* sends the body to the webhook's
  URL from each of its ``regions`` at once (or from the job's region), the first 2xx wins; a round
  ends at the first acknowledgement or when every region has answered.
* Round outcome → next step: 2xx → acknowledged; 410 → the endpoint is gone, stop; any other 4xx
  except 408/429 → rejected, stop; 408, 429, 5xx, timeouts and connection errors → retry after the
  next delay of the schedule (default 0, 1 s, 5 s, 30 s, 2 min, 10 min, 30 min, 1 h: eight
  rounds), then give up.
* Every attempt is signed afresh (its own ``t``) when a secret is set; the event id
  ``evt_<job_id>_<webhook index>`` is the same across attempts.
* Quorum: ``delivered`` as soon as ``quorum`` distinct voters acknowledged; ``undelivered`` as soon
  as the voters that acknowledged plus those still pending cannot reach the quorum. The status
  never changes after that (non-voters and the remaining voters keep being delivered).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from .events import SendWebhook
from .signing import SIGNATURE_HEADER, sign_webhook
from .spec import WebhookSpec
from .units import US_PER_S as S

__all__ = [
    "DEFAULT_SCHEDULE_US",
    "DEFAULT_WEBHOOK_TIMEOUT_US",
    "EVENT_ID_HEADER",
    "HookOutcome",
    "QuorumTracker",
    "SendWebhook",
    "WebhookFanout",
    "classify_webhook",
    "webhook_payload",
]

DEFAULT_SCHEDULE_US: tuple[int, ...] = (0, S, 5 * S, 30 * S, 120 * S, 600 * S, 1800 * S, 3600 * S)
DEFAULT_WEBHOOK_TIMEOUT_US = 10 * S  # one delivery attempt, before it counts as a timeout
EVENT_ID_HEADER = "X-EZThrottle-Event-Id"
_encode = msgspec.json.Encoder().encode


class HookOutcome(enum.IntEnum):
    ACK = 0
    RETRY = 1
    GONE = 2
    REJECTED = 3


def classify_webhook(status: int | None, error: str | None) -> HookOutcome:
    if error is not None or status is None:
        return HookOutcome.RETRY
    if 200 <= status <= 299:
        return HookOutcome.ACK
    if status == 410:
        return HookOutcome.GONE
    if 400 <= status <= 499 and status not in (408, 429):
        return HookOutcome.REJECTED
    return HookOutcome.RETRY


def webhook_payload(job_id: str, idempotent_key: str, succeeded: bool, status_code: int | None,
                    headers: Mapping[str, str] | None, body: str | None,
                    metadata: Mapping[str, Any], error: str | None = None) -> bytes:
    doc: dict[str, Any] = {
        "job_id": job_id,
        "idempotent_key": idempotent_key,
        "status": "success" if succeeded else "failed",
        "response": {"status_code": status_code, "headers": dict(headers or {}),
                     "body": body or ""},
        "metadata": dict(metadata),
    }
    if not succeeded:
        doc["error"] = error or "failed"
    return _encode(doc)


class QuorumTracker:
    __slots__ = ("acked", "failed", "quorum", "status", "voters")

    def __init__(self, voters: Sequence[bool], quorum: int) -> None:
        n = sum(1 for v in voters if v)
        if not 1 <= quorum <= max(n, 1):
            raise ValueError(f"quorum {quorum} is not between 1 and {n} voters")
        self.voters = tuple(voters)
        self.quorum = quorum
        self.acked: set[int] = set()
        self.failed: set[int] = set()
        self.status = "delivering" if n else "delivered"

    def ack(self, i: int) -> None:
        if i in self.failed:
            return
        if self.voters[i]:
            self.acked.add(i)
        self._settle()

    def fail(self, i: int) -> None:
        if i in self.acked:
            return
        if self.voters[i]:
            self.failed.add(i)
        self._settle()

    def _settle(self) -> None:
        if self.status != "delivering":
            return
        n = sum(1 for v in self.voters if v)
        if len(self.acked) >= self.quorum:
            self.status = "delivered"
        elif n - len(self.failed) < self.quorum:
            self.status = "undelivered"


class _Hook:
    __slots__ = ("answered", "outcomes", "regions", "round", "state", "url")

    def __init__(self, url: str, regions: tuple[str, ...]) -> None:
        self.url = url
        self.regions = regions
        self.round = -1
        self.state = "pending"  # pending | waiting | acked | gone | rejected | exhausted
        self.answered = 0
        self.outcomes: list[HookOutcome] = []


class WebhookFanout:
    """Delivers one job's webhooks. Drive it with ``start``, ``on_result`` and ``on_timer``.

    ``timer`` callbacks are returned as ``(at, hook_index)`` pairs for the host to schedule.
    """

    __slots__ = ("attempts", "body", "event_prefix", "hooks", "job_id", "quorum", "schedule",
                 "secret")

    def __init__(self, job_id: str, webhooks: Sequence[WebhookSpec], quorum: int, body: bytes,
                 sender_region: str, secret: str | None = None,
                 schedule: Sequence[int] = DEFAULT_SCHEDULE_US) -> None:
        if not schedule:
            raise ValueError("the webhook schedule needs at least one delay")
        self.job_id = job_id
        self.body = body
        self.secret = secret
        self.schedule = tuple(schedule)
        self.hooks = [_Hook(w.url, tuple(w.regions) if w.regions else (sender_region,))
                      for w in webhooks]
        self.quorum = QuorumTracker([w.has_quorum_vote for w in webhooks], quorum)
        self.event_prefix = f"evt_{job_id}_"
        self.attempts = 0

    @property
    def status(self) -> str:
        return self.quorum.status

    @property
    def done(self) -> bool:
        return all(h.state in ("acked", "gone", "rejected", "exhausted") for h in self.hooks)

    def start(self, now: int) -> tuple[list[SendWebhook], list[tuple[int, int]]]:
        sends: list[SendWebhook] = []
        timers: list[tuple[int, int]] = []
        first = self.schedule[0]
        for i in range(len(self.hooks)):
            if first == 0:
                sends.extend(self._round(i, now))
            else:
                timers.append((now + first, i))
        return sends, timers

    def on_timer(self, hook: int, now: int) -> list[SendWebhook]:
        h = self.hooks[hook]
        if h.state != "pending":
            return []
        return self._round(hook, now)

    def _round(self, i: int, now: int) -> list[SendWebhook]:
        h = self.hooks[i]
        h.round += 1
        h.state = "waiting"
        h.answered = 0
        h.outcomes = []
        headers = {"Content-Type": "application/json", EVENT_ID_HEADER: f"{self.event_prefix}{i}"}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign_webhook(self.body, self.secret, now // S)
        self.attempts += len(h.regions)
        return [SendWebhook(self.job_id, i, h.round, r, h.url, self.body, headers)
                for r in h.regions]

    def on_result(self, hook: int, round_: int, status: int | None, error: str | None,
                  now: int) -> list[tuple[int, int]]:
        """Record one region's answer; returns timers ``(at, hook)`` for a retry round."""
        h = self.hooks[hook]
        if h.state != "waiting" or round_ != h.round:
            return []  # a late answer of a finished round
        outcome = classify_webhook(status, error)
        if outcome is HookOutcome.ACK:
            h.state = "acked"
            self.quorum.ack(hook)
            return []
        h.answered += 1
        h.outcomes.append(outcome)
        if h.answered < len(h.regions):
            return []
        worst = min(h.outcomes, key=_stop_rank)
        if worst is HookOutcome.GONE:
            h.state = "gone"
        elif worst is HookOutcome.REJECTED:
            h.state = "rejected"
        elif h.round + 1 < len(self.schedule):
            h.state = "pending"
            return [(now + self.schedule[h.round + 1], hook)]
        else:
            h.state = "exhausted"
        self.quorum.fail(hook)
        return []


def _stop_rank(o: HookOutcome) -> int:
    # A round's failures resolve as: gone beats rejected beats retry.
    return {HookOutcome.GONE: 0, HookOutcome.REJECTED: 1, HookOutcome.RETRY: 2}[o]
