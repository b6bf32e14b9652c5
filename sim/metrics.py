"""Counters and 1 s time series, kept in plain Python lists on the hot path and turned into numpy
arrays at the end. The series grow with simulated activity (in chunks of an hour, up to the last
second anything happened), never with the declared horizon; latency samples take 8 bytes per
finished job; nothing keeps per-job state.

Every field is additive across actor groups (``merge``), except the ``*_max`` series (max) and
the latency samples (concatenated: percentiles do not depend on order).
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.units import US_PER_S as S

__all__ = ["PEAK_BIN_US", "WINDOW_COUNTS", "Metrics", "series_slots"]

CHUNK = 3600  # seconds of series allocated at a time
SERIES_PER_WORKLOAD = 2  # attempts, goodput
SERIES_PER_DOMAIN = 5  # the dam's attempts, permits, backlog, pace, breaker state


def series_slots(workloads: int, domains: int, horizon_us: int) -> int:
    """The most one-second slots the series can hold: a run active until its horizon
    (validation bounds it, so that a run's memory is bounded)."""
    return ((SERIES_PER_WORKLOAD * workloads + SERIES_PER_DOMAIN * domains)
            * (horizon_us // S + 2))



PEAK_BIN_US = 100_000  # the short bins of ``peak_attempts_per_100ms``
WINDOW_COUNTS = ("jobs", "succeeded", "failed", "completed", "attempts")


class Metrics:
    def __init__(self, workloads: list[str], domains: list[str], horizon_us: int,
                 windows: Sequence[Sequence] = ()) -> None:
        self.workloads = list(workloads)
        self.domains = list(domains)
        self.horizon_s = horizon_us // S + 1  # the last second a series can have
        self.n = min(self.horizon_s + 1, CHUNK)  # seconds allocated so far (grows on demand)
        nw, nd, n = len(workloads), len(domains), self.n
        self.attempts_series = [[0] * n for _ in range(nw)]
        self.goodput_series = [[0] * n for _ in range(nw)]  # jobs succeeded, per second
        self.dam_domain_series = [[0] * n for _ in range(nd)]
        self.permit_series = [[0] * n for _ in range(nd)]
        self.backlog_max = [[0] * n for _ in range(nd)]
        # the pace (requests/s) last in force in each second; -1 = no sample (forward-filled)
        self.pace_series = [[-1.0] * n for _ in range(nd)]
        self.breaker_state_max = [[0] * n for _ in range(nd)]  # 0 closed, 1 half-open, 2 open
        # per domain, a snapshot taken at every breaker change: opens, reopens, probe attempts,
        # open µs of finished spells, start of the live spell (-1: closed)
        self.breakers = [[0, 0, 0, 0, -1] for _ in range(nd)]
        self.outcomes: list[Counter] = [Counter() for _ in range(nw)]
        self.count = {k: [0] * nw for k in (
            "jobs", "deduped", "refused", "succeeded", "failed", "children", "forwarded",
            "local_success", "duplicates", "dam_duplicates", "webhook_attempts", "delivered",
            "undelivered", "egress_bytes", "busy_us", "client_rejects", "budget_denied",
            "upstream_attempts", "dam_attempts", "webhooks_pending", "wasted_work",
            "dropped_expired", "codel_drops")}
        self.peak_concurrency = [0] * nw
        self.latency = [array("d") for _ in range(nw)]
        self.delivery_latency = [array("d") for _ in range(nw)]
        self.dropped_messages = 0
        # the busiest 100 ms per workload, tracked as a stream (attempts come in time order
        # at each upstream; a workload's attempts all reach one upstream)
        self.peak_bin = [-1] * nw
        self.bin_count = [0] * nw
        self.peak_100ms = [0] * nw
        # [[windows]]: (name, start µs, end µs); per window, counters by workload: jobs that
        # arrived in it and how many of them succeeded / failed (whenever decided), jobs that
        # succeeded within it (goodput), attempts made within it; latencies of its arrivals
        self.windows: list[tuple[str, int, int]] = [(w[0], w[1], w[2]) for w in windows]
        self.win = [{k: [0] * nw for k in WINDOW_COUNTS} for _ in self.windows]
        self.win_latency = [[array("d") for _ in range(nw)] for _ in self.windows]

    def domain_index(self, domain: str) -> int:
        return self.domains.index(domain)

    # -- hot path ------------------------------------------------------------------------------
    def _grow(self, sec: int) -> int:
        """Make every series long enough for ``sec``; the second to write (clamped to the
        horizon: a run never writes past it)."""
        sec = min(sec, self.horizon_s)
        if sec >= self.n:
            n = min(self.horizon_s + 1, max(sec + 1, self.n + CHUNK))
            extra = n - self.n
            grown: tuple[tuple[list[list[Any]], Any], ...] = (
                (self.attempts_series, 0), (self.goodput_series, 0), (self.dam_domain_series, 0),
                (self.permit_series, 0), (self.backlog_max, 0), (self.pace_series, -1.0),
                (self.breaker_state_max, 0))
            for rows, fill in grown:
                for row in rows:
                    row.extend([fill] * extra)
            self.n = n
        return sec

    def arrival(self, w: int, now: int) -> None:
        """A job of workload ``w`` arrives at ``now``."""
        self.count["jobs"][w] += 1
        if self.windows:
            for k, (_, start, end) in enumerate(self.windows):
                if start <= now < end:
                    self.win[k]["jobs"][w] += 1

    def attempt(self, w: int, now: int, d: int, dam: bool) -> None:
        sec = now // S
        if sec >= self.n:
            sec = self._grow(sec)
        self.attempts_series[w][sec] += 1
        b = now // PEAK_BIN_US
        if b != self.peak_bin[w]:
            self.peak_bin[w] = b
            self.bin_count[w] = 1
        else:
            self.bin_count[w] += 1
        if self.bin_count[w] > self.peak_100ms[w]:
            self.peak_100ms[w] = self.bin_count[w]
        if self.windows:
            for k, (_, start, end) in enumerate(self.windows):
                if start <= now < end:
                    self.win[k]["attempts"][w] += 1
        count = self.count
        count["upstream_attempts"][w] += 1
        if dam:
            self.dam_domain_series[d][sec] += 1
            count["dam_attempts"][w] += 1

    def outcome(self, w: int, status) -> None:
        self.outcomes[w][status] += 1

    def duplicate(self, w: int) -> None:
        self.count["duplicates"][w] += 1

    def permit(self, d: int, now: int, backlog: int, pace: float) -> None:
        sec = now // S
        if sec >= self.n:
            sec = self._grow(sec)
        self.permit_series[d][sec] += 1
        self.pace_series[d][sec] = pace
        if backlog > self.backlog_max[d][sec]:
            self.backlog_max[d][sec] = backlog

    def breaker(self, d: int, now: int, state: int, opens: int, reopens: int, probes: int,
                open_us: int, open_since: int, pace: float) -> None:
        sec = now // S
        if sec >= self.n:
            sec = self._grow(sec)
        self.breakers[d] = [opens, reopens, probes, open_us, open_since]
        self.pace_series[d][sec] = pace
        if state > self.breaker_state_max[d][sec]:
            self.breaker_state_max[d][sec] = state

    def backlog(self, d: int, now: int, backlog: int) -> None:
        sec = now // S
        if sec >= self.n:
            sec = self._grow(sec)
        if backlog > self.backlog_max[d][sec]:
            self.backlog_max[d][sec] = backlog

    def add(self, key: str, w: int, n: int = 1) -> None:
        self.count[key][w] += n

    def finish(self, w: int, ok: bool, latency_us: int, now: int) -> None:
        """A job's result (success or failure) is known at ``now``."""
        self.count["succeeded" if ok else "failed"][w] += 1
        self.latency[w].append(latency_us / 1000.0)
        if ok:
            sec = now // S
            if sec >= self.n:
                sec = self._grow(sec)
            self.goodput_series[w][sec] += 1
        if self.windows:
            arrived = now - latency_us
            for k, (_, start, end) in enumerate(self.windows):
                c = self.win[k]
                if start <= arrived < end:
                    c["succeeded" if ok else "failed"][w] += 1
                    self.win_latency[k][w].append(latency_us / 1000.0)
                if ok and start <= now < end:
                    c["completed"][w] += 1

    # -- merging and export --------------------------------------------------------------------
    def merge(self, other: Metrics) -> None:
        if other.n > self.n:
            self._grow(other.n - 1)
        for mine, theirs in ((self.attempts_series, other.attempts_series),
                             (self.goodput_series, other.goodput_series),
                             (self.dam_domain_series, other.dam_domain_series),
                             (self.permit_series, other.permit_series)):
            for a, b in zip(mine, theirs, strict=True):
                for i, v in enumerate(b):
                    if v:
                        a[i] += v
        for a, b in zip(self.backlog_max, other.backlog_max, strict=True):
            for i, v in enumerate(b):
                if v > a[i]:
                    a[i] = v
        for series in ("pace_series", "breaker_state_max"):  # floats, ints: untyped (a
            # compiled build types a loop variable once, from its first use above)
            row: list[Any]
            for row, their_row in zip(getattr(self, series), getattr(other, series),
                                      strict=True):
                for i, x in enumerate(their_row):
                    if x > row[i]:
                        row[i] = x
        for d, snap in enumerate(other.breakers):
            if snap != [0, 0, 0, 0, -1]:  # one group owns each domain's limiter
                self.breakers[d] = list(snap)
        for counter, theirs_counter in zip(self.outcomes, other.outcomes, strict=True):
            counter.update(theirs_counter)
        for k, counts in other.count.items():
            for i, x in enumerate(counts):
                self.count[k][i] += x
        self.peak_concurrency = [max(p, q) for p, q in zip(self.peak_concurrency,
                                                          other.peak_concurrency, strict=True)]
        for samples, theirs_samples in zip(self.latency, other.latency, strict=True):
            samples.extend(theirs_samples)
        for samples, theirs_samples in zip(self.delivery_latency, other.delivery_latency,
                                           strict=True):
            samples.extend(theirs_samples)
        self.dropped_messages += other.dropped_messages
        self.peak_100ms = [max(p, q) for p, q in zip(self.peak_100ms, other.peak_100ms,
                                                     strict=True)]
        for win, theirs_win in zip(self.win, other.win, strict=True):
            for k, counts in theirs_win.items():
                for i, x in enumerate(counts):
                    win[k][i] += x
        for win_lat, theirs_lat in zip(self.win_latency, other.win_latency, strict=True):
            for samples, theirs_samples in zip(win_lat, theirs_lat, strict=True):
                samples.extend(theirs_samples)

    def to_state(self) -> dict:
        """A msgpack-friendly snapshot (for shipping between processes)."""
        return {
            "workloads": self.workloads, "domains": self.domains, "n": self.n,
            "horizon_s": self.horizon_s,
            "attempts_series": self.attempts_series, "goodput_series": self.goodput_series,
            "dam_domain_series": self.dam_domain_series,
            "permit_series": self.permit_series, "backlog_max": self.backlog_max,
            "pace_series": self.pace_series, "breaker_state_max": self.breaker_state_max,
            "breakers": self.breakers,
            "outcomes": [{str(k): v for k, v in c.items()} for c in self.outcomes],
            "count": self.count, "peak_concurrency": self.peak_concurrency,
            "latency": [a.tobytes() for a in self.latency],
            "delivery_latency": [a.tobytes() for a in self.delivery_latency],
            "dropped_messages": self.dropped_messages,
            "peak_100ms": self.peak_100ms, "windows": self.windows, "win": self.win,
            "win_latency": [[a.tobytes() for a in row] for row in self.win_latency],
        }

    @classmethod
    def from_state(cls, st: dict) -> Metrics:
        m = cls(st["workloads"], st["domains"], (st["horizon_s"] - 1) * S, st["windows"])
        m.n = st["n"]
        m.attempts_series = st["attempts_series"]
        m.goodput_series = st["goodput_series"]
        m.dam_domain_series = st["dam_domain_series"]
        m.permit_series = st["permit_series"]
        m.backlog_max = st["backlog_max"]
        m.pace_series = st["pace_series"]
        m.breaker_state_max = st["breaker_state_max"]
        m.breakers = st["breakers"]
        m.outcomes = [Counter({(int(k) if k.isdigit() else k): v for k, v in c.items()})
                      for c in st["outcomes"]]
        m.count = st["count"]
        m.peak_concurrency = st["peak_concurrency"]
        for arr, raw in zip(m.latency, st["latency"], strict=True):
            arr.frombytes(raw)
        for arr, raw in zip(m.delivery_latency, st["delivery_latency"], strict=True):
            arr.frombytes(raw)
        m.dropped_messages = st["dropped_messages"]
        m.peak_100ms = st["peak_100ms"]
        m.win = st["win"]
        for row, raws in zip(m.win_latency, st["win_latency"], strict=True):
            for arr, raw in zip(row, raws, strict=True):
                arr.frombytes(raw)
        return m

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "attempts_per_s": np.array(self.attempts_series, dtype=np.int64),
            "goodput_per_s": np.array(self.goodput_series, dtype=np.int64),
            "dam_attempts_per_s_by_domain": np.array(self.dam_domain_series, dtype=np.int64),
            "permits_per_s_by_domain": np.array(self.permit_series, dtype=np.int64),
            "backlog_max_by_domain": np.array(self.backlog_max, dtype=np.int64),
            "pace_by_domain": _forward_fill(np.array(self.pace_series, dtype=np.float64)),
            "breaker_state_by_domain": np.array(self.breaker_state_max, dtype=np.int8),
        }


def _forward_fill(a: np.ndarray) -> np.ndarray:
    """Replace the -1 gaps of each row by the last sample before them (NaN before the first)."""
    out = a.copy()
    for row in out:
        have = row >= 0
        idx = np.where(have, np.arange(row.size), 0)
        np.maximum.accumulate(idx, out=idx)
        filled = row[idx]
        filled[~have & (idx == 0) & ~have[0]] = np.nan
        row[:] = filled
    return out
