"""A scripted driver for one JobMachine: feed events by hand, inspect the commands.

Tests only. No simulator, no real time: the test decides what happens and when.
"""

from __future__ import annotations

import numpy as np

from engine.events import (
    AskPermit,
    AttemptFinished,
    Finished,
    PermitGranted,
    SetTimer,
    StartAttempt,
    Submit,
    TimerFired,
    WebhookResult,
)
from engine.idempotency import derive_key
from engine.job import DamContext, JobMachine
from engine.retry import Backoff
from engine.spec import parse_job

REGIONS = ("iad", "lax", "ord")


class Script:
    def __init__(self, payload: dict, *, regions=REGIONS, backoff=None, secret=None,
                 schedule=None, now: int = 0, job_id: str = "job_0_1", **ctx_kw):
        self.spec = parse_job(payload, "cust")
        kw = dict(ctx_kw)
        if schedule is not None:
            kw["webhook_schedule_us"] = schedule
        self.ctx = DamContext(regions, rng=np.random.default_rng(0),
                              backoff=backoff or Backoff(kind="constant", base_us=1_000_000),
                              secret_for=(lambda c: secret) if secret else None, **kw)
        self.key = derive_key(self.spec)
        self.m = JobMachine(job_id, self.spec, self.key, self.ctx)
        self.now = now
        self.log: list = []
        self.timers: list[SetTimer] = []

    # -- feeding -------------------------------------------------------------------------------
    def feed(self, event) -> list:
        cmds = self.m.handle(event, self.now)
        if self.log and isinstance(self.log[-1], Finished):
            assert cmds == [], "a command after Finished"
        for c in cmds:
            if isinstance(c, SetTimer):
                assert c.at >= self.now
                self.timers.append(c)
        self.log.extend(cmds)
        return cmds

    def submit(self) -> list:
        return self.feed(Submit())

    def grant(self, branch: int) -> list:
        return self.feed(PermitGranted(branch))

    def answer(self, branch: int, status: int | None = 200, *, headers=None, error=None,
               body: str = "ok", attempt: int | None = None) -> list:
        if attempt is None:
            attempt = self.last_start(branch).attempt
        return self.feed(AttemptFinished(branch, attempt, status=None if error else status,
                                         headers=headers, body=body, error=error))

    def hook(self, hook: int, status=200, *, region=None, round_=None, error=None) -> list:
        sends = [c for c in self.log if type(c).__name__ == "SendWebhook" and c.hook == hook]
        last = sends[-1]
        return self.feed(WebhookResult(hook, last.round if round_ is None else round_,
                                       region or last.region, status=status, error=error))

    def advance(self, to: int) -> list:
        """Move time to ``to``, firing due timers in time order."""
        out = []
        while True:
            due = sorted((t for t in self.timers if t.at <= to), key=lambda t: t.at)
            if not due:
                break
            t = due[0]
            self.timers.remove(t)
            self.now = t.at
            out += self.feed(TimerFired(t.token))
        self.now = to
        return out

    # -- inspection ----------------------------------------------------------------------------
    def of(self, kind, cmds=None) -> list:
        return [c for c in (self.log if cmds is None else cmds) if isinstance(c, kind)]

    def last_start(self, branch: int) -> StartAttempt:
        return [c for c in self.of(StartAttempt) if c.branch == branch][-1]

    def asks(self, cmds=None) -> list[AskPermit]:
        return self.of(AskPermit, cmds)

    def statuses(self) -> list[str]:
        return [c.status for c in self.log if type(c).__name__ == "StatusChanged"]

    @property
    def outcome(self):
        fin = self.of(Finished)
        assert len(fin) <= 1
        return fin[0].outcome if fin else None

    def run_branch_to_answer(self, branch: int, status=200, **kw) -> list:
        """Grant the pending permit of ``branch`` and answer its attempt."""
        self.grant(branch)
        return self.answer(branch, status, **kw)
