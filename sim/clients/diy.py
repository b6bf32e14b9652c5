"""DIY: the request goes straight to the upstream with up to ``retries`` retries, a backoff
strategy, a per-attempt timeout and a concurrency cap (jobs beyond it wait in a FIFO, as async
Lambda invocations do), plus any of the retry policies of ``sim.policies``: gRPC retry
throttling, SRE adaptive throttling, honouring ``Retry-After``, the AWS SDKs' retry quota and
client-side rate limiter, Envoy's retry budget, a Resilience4j circuit breaker."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import ClassVar

from engine.breaker import Verdict, verdict

from ..messages import Arrive, ClientRetry, Request, Response, Tick, TokenWake
from ..metrics import Metrics
from ..policies import (
    ClientBreaker,
    ClientRateLimiter,
    ConcurrentRetryBudget,
    RetryQuota,
    RetryTokens,
    ThrottleWindow,
)
from ..scenario.resolved import WorkloadSpec
from .base import ClientBase

__all__ = ["DiyClient", "DiyJob"]


class DiyJob:
    """One DIY job in progress."""

    __slots__ = ("arrived", "attempts", "holds_retry_slot", "paid", "prev_delay", "started")

    def __init__(self, arrived: int, started: int) -> None:
        self.attempts = 0
        self.arrived = arrived
        self.prev_delay = 0
        self.started = started
        self.paid = 0  # what the AWS retry quota charged for the current retry
        self.holds_retry_slot = False  # counted in Envoy's concurrent retry budget


class DiyClient(ClientBase):
    HANDLERS: ClassVar[dict[type, str]] = {
        Tick: "_on_tick",
        Arrive: "_on_arrive",
        Response: "_on_response",
        ClientRetry: "_on_retry",
        TokenWake: "_on_token_wake",
    }

    def __init__(self, w: WorkloadSpec, topo, metrics: Metrics,
                 base_dir: Path | None = None) -> None:
        super().__init__(w, topo, metrics, base_dir)
        d = self.w.diy
        self.retries = d.retries
        self.backoff = d.backoff
        self.timeout = d.timeout_us
        self.cap = d.concurrency
        self.idem = d.idempotency_key
        self.honor_retry_after = d.honor_retry_after
        self.tokens = RetryTokens(d.budget.max_tokens, d.budget.token_ratio) if d.budget \
            else None
        self.throttle = ThrottleWindow(d.adaptive.k, d.adaptive.window_us) if d.adaptive \
            else None
        q = d.retry_quota
        self.quota = RetryQuota(q.max_tokens, q.retry_cost, q.timeout_cost,
                                q.success_refund) if q else None
        rl = d.rate_limiter
        self.rate_limiter = ClientRateLimiter(rl.beta, rl.scale, rl.min_rate,
                                              rl.smoothing) if rl else None
        self.rl_queue: deque[int] = deque()  # jobs whose attempt waits for a token
        self.rl_wake_at: int | None = None
        cb = d.concurrent_retry_budget
        self.retry_budget = ConcurrentRetryBudget(cb.percent, cb.min_concurrency) if cb \
            else None
        br = d.breaker
        self.breaker = ClientBreaker(br.failure_rate, br.window_calls, br.min_calls,
                                     br.open_us, br.half_open_calls) if br else None
        self.jobs: dict[int, DiyJob] = {}
        self.waiting: deque[tuple[int, int]] = deque()  # (job, arrived) beyond the cap
        self.active = 0

    # -- arrivals --------------------------------------------------------------------------------
    def _arrivals(self, times: list[int], now: int) -> None:
        for t in times:
            self.send(self.id, t, Arrive(self.next_n))
            self.next_n += 1

    def _on_arrive(self, msg: Arrive, now: int) -> None:
        self.metrics.arrival(self.index, now)
        if self.active < self.cap:
            self._begin(msg.n, now, now)
        else:
            self.waiting.append((msg.n, now))

    def _begin(self, n: int, arrived: int, now: int) -> None:
        self.active += 1
        if self.active > self.metrics.peak_concurrency[self.index]:
            self.metrics.peak_concurrency[self.index] = self.active
        self.jobs[n] = DiyJob(arrived, now)
        self._attempt(n, now)

    # -- attempts --------------------------------------------------------------------------------
    def _on_retry(self, msg: ClientRetry, now: int) -> None:
        self._attempt(msg.n, now)

    def _attempt(self, n: int, now: int) -> None:
        job = self.jobs[n]
        th = self.throttle
        if th is not None:
            p = th.reject_probability(now)
            th.count(now, requests=1)
            if p > 0 and self.u.random() < p:
                self._rejected(n, job, now)
                return
        if self.breaker is not None and not self.breaker.allow(now):
            self._rejected(n, job, now)
            return
        if self.rate_limiter is not None and (self.rl_queue
                                              or self.rate_limiter.try_acquire(now)):
            self.rl_queue.append(n)  # waits for a token, in order
            self._rl_drain(now)
            return
        self._send_attempt(n, now)

    def _on_token_wake(self, msg: TokenWake, now: int) -> None:
        if self.rl_wake_at is not None and now >= self.rl_wake_at:
            self.rl_wake_at = None
        self._rl_drain(now)

    def _rl_drain(self, now: int) -> None:
        """Send the attempts waiting for the client-side rate limiter's tokens, in order."""
        q, rl = self.rl_queue, self.rate_limiter
        assert rl is not None  # attempts only queue behind a rate limiter
        while q:
            wait = rl.try_acquire(now)
            if wait:
                if self.rl_wake_at is None or now + wait < self.rl_wake_at:
                    self.rl_wake_at = now + wait
                    self.send(self.id, now + wait, TokenWake())
                return
            self._send_attempt(q.popleft(), now)

    def _rejected(self, n: int, job: DiyJob, now: int) -> None:
        """The client's own throttle or breaker refused the attempt: it fails locally."""
        job.attempts += 1
        self.metrics.add("client_rejects", self.index)
        self._release_retry_slot(job)
        self._failed_attempt(n, job, now)

    def _release_retry_slot(self, job: DiyJob) -> None:
        if job.holds_retry_slot:
            assert self.retry_budget is not None  # slots are only taken from a budget
            job.holds_retry_slot = False
            self.retry_budget.retries -= 1

    def _send_attempt(self, n: int, now: int) -> None:
        job = self.jobs[n]
        job.attempts += 1
        if self.retry_budget is not None:
            self.retry_budget.active += 1
        self.metrics.add("egress_bytes", self.index, self.nbytes)
        at = now + self.link_up + (self.jitter() if self.jitter is not None else 0)
        self.send(self.upstream, at,
                  Request(self.id, n, self.logical_base | n, self.region, now + self.timeout,
                          self.idem, self.nbytes, self.index))

    def _on_response(self, msg: Response, now: int) -> None:
        n = msg.tag
        assert isinstance(n, int)  # a DIY attempt's tag is its job number
        job = self.jobs.get(n)
        if job is None:
            return
        status, error = msg.status, msg.error
        ok = status is not None and 200 <= status <= 299
        if self.retry_budget is not None:
            self.retry_budget.active -= 1
            self._release_retry_slot(job)
        if self.rate_limiter is not None:
            self.rate_limiter.on_response(now, status == 429 or status == 503)
            if self.rl_queue:
                self._rl_drain(now)  # a new rate may shorten the wait
        if self.breaker is not None:
            self.breaker.record(now, verdict(status, error, None) == Verdict.FAILURE)
        if ok and self.quota is not None:
            self.quota.on_success(job.paid)
        if self.throttle is not None and status is not None and status not in (429, 503):
            self.throttle.count(now, accepts=1)  # the backend accepted it (SRE "accepts")
        if self.tokens is not None:
            self.tokens.record(ok)
        if ok:
            self._done(n, job, True, now)
        else:
            self._failed_attempt(n, job, now,
                                 msg.retry_after_us if status in (429, 503) else 0,
                                 error == "timeout")

    def _failed_attempt(self, n: int, job: DiyJob, now: int, retry_after: int = 0,
                        timed_out: bool = False) -> None:
        if job.attempts > self.retries:
            self._done(n, job, False, now)
            return
        if self.tokens is not None and not self.tokens.allow_retry():
            self._denied(n, job, now)
            return
        if self.quota is not None:
            paid = self.quota.take(timed_out)
            if paid is None:
                self._denied(n, job, now)
                return
            job.paid = paid
        if self.retry_budget is not None:
            if not self.retry_budget.allow_retry():
                self._denied(n, job, now)
                return
            job.holds_retry_slot = True
        if self.honor_retry_after and retry_after > 0:
            job.prev_delay = retry_after
            self.send(self.id, now + retry_after, ClientRetry(n))
            return
        delay = self.backoff.delay(job.attempts - 1, job.prev_delay, self.u)
        job.prev_delay = delay
        if delay <= 0:
            self._attempt(n, now)
        else:
            self.send(self.id, now + delay, ClientRetry(n))

    def _denied(self, n: int, job: DiyJob, now: int) -> None:
        """A retry budget or quota refused the retry: the job fails now."""
        self.metrics.add("budget_denied", self.index)
        self._done(n, job, False, now)

    def _done(self, n: int, job: DiyJob, ok: bool, now: int) -> None:
        del self.jobs[n]
        self.metrics.finish(self.index, ok, now - job.arrived, now)
        self.metrics.add("busy_us", self.index, now - job.started)
        self.active -= 1
        if self.waiting:
            nxt, arrived = self.waiting.popleft()
            self._begin(nxt, arrived, now)
