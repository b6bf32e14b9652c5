"""Clients: the customers' workloads and their strategies.

* ``diy``: the request goes straight to the upstream with up to ``retries`` retries, a backoff
  strategy, a per-attempt timeout, a concurrency cap (jobs beyond it wait in a FIFO, as async
  Lambda invocations do) and, optionally, a gRPC-style retry budget (a token bucket: a failure
  costs 1 token, a success earns ``token_ratio``; retries only while tokens > max/2) and Google
  SRE adaptive throttling (reject locally with p = max(0, (requests − K·accepts)/(requests + 1))
  over a sliding window).
  The peers' policies can be added to any DIY client (``sim.policies``): honouring
  ``Retry-After``, the AWS SDKs' retry quota (standard mode) and client-side CUBIC rate limiter
  (adaptive mode), Envoy's concurrent retry budget, a Resilience4j circuit breaker.
* ``performance``: every job is submitted to the dam's gateway.
* ``frugal``: one local attempt first (timeout ``local_timeout``); a status in
  ``fallback_on_error`` or a network error forwards the job to the dam; another status fails it.

Arrivals: ``poisson``, ``constant``, ``piecewise`` (rate by segment) or ``trace`` (a CSV of
arrival times in seconds), generated one simulated second at a time.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from engine.breaker import Verdict, verdict
from engine.retry import Backoff, BlockRandom

from .kernel import Actor
from .metrics import Metrics
from .policies import ClientBreaker, ClientRateLimiter, ConcurrentRetryBudget, RetryQuota
from .scenario import ScenarioError, Workload, parse_duration

__all__ = ["Client", "arrival_times"]

S = 1_000_000


def arrival_times(w: Workload, t0: int, t1: int, rng: np.random.Generator,
                  trace: np.ndarray | None, state: dict) -> list[int]:
    """Arrival times (µs) in [t0, t1) for workload ``w``."""
    a = w.arrivals
    if a.process == "trace":
        assert trace is not None
        lo, hi = np.searchsorted(trace, [t0, t1])
        return trace[lo:hi].tolist()
    if a.process == "piecewise":
        rate = a.segments[-1].rate
        for seg in a.segments:
            if t0 < parse_duration(seg.until):
                rate = seg.rate
                break
    else:
        rate = a.rate
    if rate <= 0:
        return []
    span = t1 - t0
    if a.process == "constant":
        step = S / rate
        nxt = state.get("next", float(t0))
        out = []
        while nxt < t1:
            if nxt >= t0:
                out.append(int(nxt))
            nxt += step
        state["next"] = nxt
        return out
    n = int(rng.poisson(rate * span / S))
    return np.sort(t0 + (rng.random(n) * span).astype(np.int64)).tolist()


class Client(Actor):
    def __init__(self, index: int, w: Workload, topo, metrics: Metrics,
                 base_dir: Path | None = None) -> None:
        self.index = index
        self.name = f"client:{w.name}"
        self.w = w
        self.topo = topo
        self.metrics = metrics
        self.strategy = w.strategy
        self.start_at = parse_duration(w.start)
        self.stop_at = parse_duration(w.stop) if w.stop else topo.duration
        self.upstream = topo.upstream_ids[topo.workload_domain[index]]
        self.region = topo.client_region
        self.link_up = topo.to_upstream
        self.link_gw = topo.client_to_gateway
        self.nbytes = w.payload_bytes
        self.logical_base = index << 32
        self.trace = None
        if w.arrivals.process == "trace":
            path = Path(w.arrivals.file)
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            try:
                times = np.loadtxt(path, delimiter=",", ndmin=1, dtype=np.float64)
            except (OSError, ValueError) as e:
                raise ScenarioError(f"$.workloads[{index}].arrivals.file",
                                    f"cannot read arrival times from {path}: {e}") from None
            if times.ndim != 1 or not np.all(np.isfinite(times)) or np.any(times < 0):
                raise ScenarioError(f"$.workloads[{index}].arrivals.file",
                                    "expected one non-negative number of seconds per line")
            self.trace = np.sort((times * S).astype(np.int64))
        d = w.diy
        self.retries = d.retries
        self.backoff = Backoff(kind=d.backoff.kind, base_us=parse_duration(d.backoff.base),
                               cap_us=parse_duration(d.backoff.cap))
        self.timeout = parse_duration(d.timeout if w.strategy == "diy"
                                      else w.frugal.local_timeout)
        self.cap = d.concurrency
        self.idem = d.idempotency_key
        self.budget = d.budget
        self.tokens = d.budget.max_tokens if d.budget else 0.0
        self.adaptive = d.adaptive
        if d.adaptive:
            self.win_n = max(1, parse_duration(d.adaptive.window) // S)
            self.win_req = [0] * self.win_n
            self.win_acc = [0] * self.win_n
            self.win_sec = -1
        if w.strategy != "diy":  # the DIY section configures DIY clients only
            d = type(d)()
        self.honor_retry_after = d.honor_retry_after
        q = d.retry_quota
        self.quota = RetryQuota(q.max_tokens, q.retry_cost, q.timeout_cost,
                                q.success_refund) if q else None
        rl = d.rate_limiter
        self.rate_limiter = ClientRateLimiter(rl.beta, rl.scale, rl.min_rate,
                                              rl.smoothing) if rl else None
        self.rl_queue: deque[int] = deque()
        self.rl_wake_at: int | None = None
        cb = d.concurrent_retry_budget
        self.retry_budget = ConcurrentRetryBudget(cb.percent, cb.min_concurrency) if cb \
            else None
        br = d.breaker
        self.breaker = ClientBreaker(br.failure_rate, br.window_calls, br.min_calls,
                                     parse_duration(br.open), br.half_open_calls) if br else None
        self.fallback_codes = frozenset(w.frugal.fallback_on_error)
        self.jobs: dict[int, list] = {}
        self.waiting: deque = deque()
        self.active = 0
        self.next_n = 0
        self.arr_state: dict = {}

    def start(self, now: int) -> None:
        self.u = BlockRandom(self.rng)
        if self.start_at < self.stop_at:
            self.send(self.id, self.start_at, ("tick",))

    # -- arrivals ------------------------------------------------------------------------------
    def handle(self, msg: tuple, now: int) -> None:
        kind = msg[0]
        if kind == "resp":
            self._on_resp(msg, now)
        elif kind == "arrive":
            self._arrive(msg[1], now)
        elif kind == "retry":
            self._attempt(msg[1], now)
        elif kind == "rl_wake":
            if self.rl_wake_at is not None and now >= self.rl_wake_at:
                self.rl_wake_at = None
            self._rl_drain(now)
        elif kind == "tick":
            self._tick(now)

    def _tick(self, now: int) -> None:
        end = min(now + S, self.stop_at)
        times = arrival_times(self.w, now, end, self.rng, self.trace, self.arr_state)
        m = self.metrics
        if self.strategy == "performance":
            resubmit = self.w.resubmit_fraction
            gw, link = self.topo.gateway, self.link_gw
            for t in times:
                n = self.next_n
                self.next_n += 1
                m.add("jobs", self.index)
                m.add("egress_bytes", self.index, self.nbytes)
                self.send(gw, t + link, ("submit", self.index, n, t))
                if resubmit and self.u.random() < resubmit:
                    # the client did not see the answer and submits again a second later
                    m.add("jobs", self.index)
                    m.add("egress_bytes", self.index, self.nbytes)
                    self.send(gw, t + S + link, ("submit", self.index, n, t + S))
        else:
            for t in times:
                self.send(self.id, t, ("arrive", self.next_n))
                self.next_n += 1
        if end < self.stop_at:
            self.send(self.id, end, ("tick",))

    def _arrive(self, n: int, now: int) -> None:
        self.metrics.add("jobs", self.index)
        if self.strategy == "frugal":
            self.jobs[n] = [0, now, 0, now, 0, False]
            self._send_attempt(n, now)
            return
        if self.active < self.cap:
            self._begin(n, now, now)
        else:
            self.waiting.append((n, now))

    def _begin(self, n: int, arrived: int, now: int) -> None:
        self.active += 1
        if self.active > self.metrics.peak_concurrency[self.index]:
            self.metrics.peak_concurrency[self.index] = self.active
        # attempts, arrived_at, prev_delay, started_at, quota paid for the retry, holds a
        # concurrent-retry-budget slot
        self.jobs[n] = [0, arrived, 0, now, 0, False]
        self._attempt(n, now)

    # -- attempts ------------------------------------------------------------------------------
    def _attempt(self, n: int, now: int) -> None:
        st = self.jobs[n]
        if self.adaptive is not None:
            req, acc = self._window(now)
            p = max(0.0, (req - self.adaptive.k * acc) / (req + 1))
            self._count(now, req=1)
            if p > 0 and self.u.random() < p:
                self._rejected(n, st, now)
                return
        if self.breaker is not None and not self.breaker.allow(now):
            self._rejected(n, st, now)
            return
        if self.rate_limiter is not None and (self.rl_queue
                                              or self.rate_limiter.try_acquire(now)):
            self.rl_queue.append(n)  # waits for a token, in order
            self._rl_drain(now)
            return
        self._send_attempt(n, now)

    def _rl_drain(self, now: int) -> None:
        """Send the attempts waiting for the client-side rate limiter's tokens, in order."""
        q, rl = self.rl_queue, self.rate_limiter
        while q:
            wait = rl.try_acquire(now)
            if wait:
                if self.rl_wake_at is None or now + wait < self.rl_wake_at:
                    self.rl_wake_at = now + wait
                    self.send(self.id, now + wait, ("rl_wake",))
                return
            self._send_attempt(q.popleft(), now)

    def _rejected(self, n: int, st: list, now: int) -> None:
        """The client's own throttle or breaker refused the attempt: it fails locally."""
        st[0] += 1
        self.metrics.add("client_rejects", self.index)
        self._release_retry_slot(st)
        self._failed_attempt(n, st, now)

    def _release_retry_slot(self, st: list) -> None:
        if st[5]:
            st[5] = False
            self.retry_budget.retries -= 1

    def _send_attempt(self, n: int, now: int) -> None:
        st = self.jobs[n]
        st[0] += 1
        if self.retry_budget is not None:
            self.retry_budget.active += 1
        self.metrics.add("egress_bytes", self.index, self.nbytes)
        self.send(self.upstream, now + self.link_up,
                  ("req", self.id, n, self.logical_base | n, self.region, now + self.timeout,
                   self.idem, self.nbytes, self.index))

    def _on_resp(self, msg: tuple, now: int) -> None:
        _, n, status, error, retry_after, _headers = msg
        st = self.jobs.get(n)
        if st is None:
            return
        ok = status is not None and 200 <= status <= 299
        if self.retry_budget is not None:
            self.retry_budget.active -= 1
            self._release_retry_slot(st)
        if self.rate_limiter is not None:
            self.rate_limiter.on_response(now, status == 429 or status == 503)
            if self.rl_queue:
                self._rl_drain(now)  # a new rate may shorten the wait
        if self.breaker is not None:
            self.breaker.record(now, verdict(status, error, None) == Verdict.FAILURE)
        if ok and self.quota is not None:
            self.quota.on_success(st[4])
        if self.strategy == "frugal":
            del self.jobs[n]
            if ok:
                self.metrics.add("local_success", self.index)
                self.metrics.finish(self.index, True, now - st[1])
            elif error is not None or status in self.fallback_codes:
                self.metrics.add("forwarded", self.index)
                self.metrics.add("egress_bytes", self.index, self.nbytes)
                self.send(self.topo.gateway, now + self.link_gw,
                          ("submit", self.index, n, st[1]))
            else:
                self.metrics.finish(self.index, False, now - st[1])
            return
        if self.adaptive is not None and status is not None and status not in (429, 503):
            self._count(now, acc=1)  # the backend accepted the request (SRE "accepts")
        if self.budget is not None:
            if ok:
                self.tokens = min(self.budget.max_tokens, self.tokens + self.budget.token_ratio)
            else:
                self.tokens = max(0.0, self.tokens - 1.0)
        if ok:
            self._done(n, st, True, now)
        else:
            self._failed_attempt(n, st, now, retry_after if status in (429, 503) else 0,
                                 error == "timeout")

    def _failed_attempt(self, n: int, st: list, now: int, retry_after: int = 0,
                        timed_out: bool = False) -> None:
        if st[0] > self.retries:
            self._done(n, st, False, now)
            return
        if self.budget is not None and self.tokens <= self.budget.max_tokens / 2:
            self._denied(n, st, now)
            return
        if self.quota is not None:
            paid = self.quota.take(timed_out)
            if paid is None:
                self._denied(n, st, now)
                return
            st[4] = paid
        if self.retry_budget is not None:
            if not self.retry_budget.allow_retry():
                self._denied(n, st, now)
                return
            st[5] = True
        if self.honor_retry_after and retry_after > 0:
            st[2] = retry_after
            self.send(self.id, now + retry_after, ("retry", n))
            return
        delay = self.backoff.delay(st[0] - 1, st[2], self.u)
        st[2] = delay
        if delay <= 0:
            self._attempt(n, now)
        else:
            self.send(self.id, now + delay, ("retry", n))

    def _denied(self, n: int, st: list, now: int) -> None:
        """A retry budget or quota refused the retry: the job fails now."""
        self.metrics.add("budget_denied", self.index)
        self._done(n, st, False, now)

    def _done(self, n: int, st: list, ok: bool, now: int) -> None:
        del self.jobs[n]
        self.metrics.finish(self.index, ok, now - st[1])
        self.metrics.add("busy_us", self.index, now - st[3])
        self.active -= 1
        if self.waiting:
            nxt, arrived = self.waiting.popleft()
            self._begin(nxt, arrived, now)

    # -- adaptive throttling window (1 s buckets) ------------------------------------------------
    def _roll(self, now: int) -> None:
        sec = now // S
        if sec != self.win_sec:
            steps = min(self.win_n, sec - self.win_sec) if self.win_sec >= 0 else self.win_n
            for k in range(1, steps + 1):
                i = (self.win_sec + k) % self.win_n if self.win_sec >= 0 else k - 1
                self.win_req[i] = 0
                self.win_acc[i] = 0
            self.win_sec = sec

    def _window(self, now: int) -> tuple[int, int]:
        self._roll(now)
        return sum(self.win_req), sum(self.win_acc)

    def _count(self, now: int, req: int = 0, acc: int = 0) -> None:
        self._roll(now)
        i = (now // S) % self.win_n
        self.win_req[i] += req
        self.win_acc[i] += acc
