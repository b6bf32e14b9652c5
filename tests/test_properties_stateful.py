"""Stateful hypothesis machines for the dam's invariants (docs/SEMANTICS.md): rules drive the
system, invariants are checked after every step."""

import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)

from engine.idempotency import DedupeTable, hash_key, unique_key
from engine.limiter import GRANTED, DomainLimiter
from engine.signing import SecretStore, sign_webhook
from engine.spec import WebhookSpec
from engine.webhooks import WebhookFanout

H = 3600 * 1_000_000
S = 1_000_000


class DedupeMachine(RuleBasedStateMachine):
    """HASH / UNIQUE / custom keys, several customers, time passing retention."""

    def __init__(self):
        super().__init__()
        self.table = DedupeTable(retention_us=24 * H)
        self.now = 0
        self.rng = np.random.default_rng(0)
        self.n = 0
        self.model: dict[tuple, tuple[str, int | None]] = {}  # key -> (job, expires_at)
        self.unique_keys: set[str] = set()

    customers = st.sampled_from(["acme", "globex", "initech"])
    jobs = Bundle("jobs")

    def _live(self, k):
        e = self.model.get(k)
        return e is not None and (e[1] is None or e[1] > self.now)

    def _submit(self, customer, key):
        self.n += 1
        jid = f"job_{self.n}"
        out = self.table.submit(customer, key, jid, self.now)
        if self._live((customer, key)):
            assert out.duplicate and out.job_id == self.model[(customer, key)][0]
        else:
            assert not out.duplicate and out.job_id == jid
            self.model[(customer, key)] = (jid, None)
        return out

    @rule(target=jobs, customer=customers, body=st.sampled_from(["a", "b", "c"]))
    def submit_hash(self, customer, body):
        out = self._submit(customer, hash_key(customer, "POST", "https://x.example", body))
        return out.job_id

    @rule(target=jobs, customer=customers, key=st.sampled_from(["order-1", "order-2"]))
    def submit_custom(self, customer, key):
        return self._submit(customer, key).job_id

    @rule(target=jobs, customer=customers)
    def submit_unique(self, customer):
        key = unique_key(self.rng)
        assert key not in self.unique_keys
        self.unique_keys.add(key)
        out = self._submit(customer, key)
        assert not out.duplicate  # UNIQUE never dedupes
        return out.job_id

    @rule(job=consumes(jobs))
    def finish(self, job):
        for k, (jid, exp) in self.model.items():
            if jid == job and exp is None:
                self.model[k] = (jid, self.now + 24 * H)
                self.table.set_status(job, "succeeded", self.now, terminal=True)

    @rule(dt=st.sampled_from([1, S, H, 23 * H, 25 * H]))
    def advance(self, dt):
        self.now += dt

    @invariant()
    def at_most_one_live_job_per_key(self):
        for (customer, key), (jid, _) in self.model.items():
            got = self.table.lookup(customer, key, self.now)
            if self._live((customer, key)):
                assert got is not None and got.job_id == jid
            else:
                assert got is None  # expired keys admit a new job


class QuorumMachine(RuleBasedStateMachine):
    """Random webhooks, quorum, acks / failures / 410 / timeouts in random orders."""

    @initialize(votes=st.lists(st.booleans(), min_size=1, max_size=5).filter(any), data=st.data())
    def setup(self, votes, data):
        n = sum(votes)
        self.quorum = data.draw(st.integers(1, n))
        self.votes = votes
        hooks = [WebhookSpec(url=f"https://h{i}.example", has_quorum_vote=v)
                 for i, v in enumerate(votes)]
        self.f = WebhookFanout("job_1", hooks, self.quorum, b"{}", "iad",
                               schedule=(0, S, 2 * S))
        self.f.start(0)
        self.now = 0
        self.acked: set[int] = set()
        self.failed: set[int] = set()
        self.final = None
        self.pending_timers: list[tuple[int, int]] = []

    @rule(data=st.data(), answer=st.sampled_from([200, 204, 500, 503, 429, 410, 400, "timeout"]))
    def answer(self, data, answer):
        waiting = [i for i, h in enumerate(self.f.hooks) if h.state == "waiting"]
        if not waiting:
            return
        i = data.draw(st.sampled_from(waiting))
        h = self.f.hooks[i]
        status, error = (None, "timeout") if answer == "timeout" else (answer, None)
        timers = self.f.on_result(i, h.round, status, error, self.now)
        self.pending_timers += timers
        if h.state == "acked" and self.votes[i]:
            self.acked.add(i)
        if h.state in ("gone", "rejected", "exhausted") and self.votes[i]:
            self.failed.add(i)

    @precondition(lambda self: self.pending_timers)
    @rule()
    def fire_timer(self):
        at, i = self.pending_timers.pop(0)
        self.now = max(self.now, at)
        self.f.on_timer(i, self.now)

    @invariant()
    def status_matches_definition_and_never_flips(self):
        n = sum(self.votes)
        status = self.f.status
        if self.final is not None:
            assert status == self.final
            return
        if len(self.acked) >= self.quorum:
            assert status == "delivered"
        elif n - len(self.failed) < self.quorum:
            assert status == "undelivered"
        else:
            assert status == "delivering"
        if status != "delivering":
            self.final = status


class LimiterMachine(RuleBasedStateMachine):
    """Permit requests, releases, header updates (valid and malformed), 429 + Retry-After."""

    def __init__(self):
        super().__init__()
        self.lim = DomainLimiter("https://x.example")
        self.now = 0
        self.starts: list[tuple[int, float]] = []
        self.max_rate = self.lim.rate

    @rule(dt=st.integers(0, 700_000))
    def acquire(self, dt):
        self.now += dt
        if self.lim.acquire(self.now) == GRANTED:
            self.starts.append((self.now, self.lim.rate))
            # a grant never exceeds the cap (lowering the cap later may leave more in flight)
            assert self.lim.in_flight <= self.lim.max_concurrent

    @precondition(lambda self: self.lim.in_flight > 0)
    @rule(dt=st.integers(0, 300_000))
    def release(self, dt):
        self.now += dt
        self.lim.release(self.now)

    @rule(rps=st.sampled_from(["0.5", "1", "3", "10", "x", "-1", "0", "inf", "1e300"]))
    def rps_header(self, rps):
        self.lim.observe(self.now, 200, {"X-EZTHROTTLE-RPS": rps})
        self.max_rate = max(self.max_rate, self.lim.rate)

    @rule(mc=st.sampled_from(["1", "2", "5", "0", "-3", "two"]))
    def concurrency_header(self, mc):
        self.lim.observe(self.now, 200, {"X-EZTHROTTLE-MAX-CONCURRENT": mc})

    @rule(ra=st.sampled_from(["0", "1", "2.5", "soon"]))
    def too_many_requests(self, ra):
        self.lim.observe(self.now, 429, {"Retry-After": ra})

    @invariant()
    def in_flight_is_never_negative(self):
        assert self.lim.in_flight >= 0

    @invariant()
    def pacing_bound_in_every_window(self):
        times = [t for t, _ in self.starts]
        for (t0, _), (t1, r1) in zip(self.starts, self.starts[1:], strict=False):
            assert t1 - t0 >= math.ceil(S / r1)
        if len(times) > 1:
            span = times[-1] - times[0]
            assert len(times) <= math.floor(span * self.max_rate / S) + 1


class SignatureMachine(RuleBasedStateMachine):
    """sign → verify round trips; changes fail; rotation accepts the secondary until expiry."""

    def __init__(self):
        super().__init__()
        self.store = SecretStore()
        self.store.create("c", "whsec_first_secret_000")
        self.secrets = ["whsec_first_secret_000"]
        self.expires: int | None = None
        self.now = 0

    @rule(body=st.binary(max_size=50))
    def sign_with_primary_verifies(self, body):
        h = sign_webhook(body, self.secrets[-1], self.now // S)
        assert self.store.verify("c", body, h, self.now) == (True, "valid_primary")
        assert self.store.verify("c", body + b"x", h, self.now)[0] is False

    @rule(suffix=st.integers(0, 10**6), ttl=st.none() | st.integers(1, 10 * S))
    def rotate(self, suffix, ttl):
        new = f"whsec_rotated_{suffix:07d}_x"
        if new == self.secrets[-1]:
            return
        self.store.rotate("c", new, now=self.now, secondary_ttl_us=ttl)
        self.secrets.append(new)
        self.expires = None if ttl is None else self.now + ttl

    @rule(dt=st.integers(0, 5 * S))
    def advance(self, dt):
        self.now += dt

    @rule(body=st.binary(max_size=20))
    def old_secret_valid_until_expiry(self, body):
        if len(self.secrets) < 2:
            return
        h = sign_webhook(body, self.secrets[-2], self.now // S)
        ok, reason = self.store.verify("c", body, h, self.now)
        if self.expires is None or self.now < self.expires:
            assert (ok, reason) == (True, "valid_secondary")
        else:
            assert not ok


TestDedupe = DedupeMachine.TestCase
TestQuorum = QuorumMachine.TestCase
TestLimiter = LimiterMachine.TestCase
TestSignatures = SignatureMachine.TestCase
