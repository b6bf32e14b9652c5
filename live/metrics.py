"""Prometheus text exposition (format 0.0.4) of the live dam's counters and gauges.

The format is small and stable, so it is written here rather than pulling in a client library
with a process-global registry (several dams run in one test process). Label values are escaped
(backslash, double quote, newline); the number of distinct ``domain`` labels is capped so a
customer cannot grow the exposition without bound.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

__all__ = ["MAX_DOMAIN_LABELS", "Counters", "render"]

MAX_DOMAIN_LABELS = 1000
Labels = tuple[tuple[str, str], ...]

HELP: dict[str, tuple[str, str]] = {
    "apidam_jobs_accepted_total": ("counter", "Jobs accepted (durable), children included."),
    "apidam_jobs_deduplicated_total": ("counter", "Submits answered with an existing job."),
    "apidam_jobs_refused_total": ("counter", "Submits refused, by reason."),
    "apidam_jobs_finished_total": ("counter", "Jobs that reached a terminal status."),
    "apidam_jobs": ("gauge", "Jobs in memory by status (finished ones until retention ends)."),
    "apidam_attempts_total": ("counter",
                              "Upstream attempts by domain and outcome (status code or error)."),
    "apidam_limiter_backlog": ("gauge", "Branches waiting for a permit (backoff included)."),
    "apidam_limiter_in_flight": ("gauge", "Permits out (attempts in flight)."),
    "apidam_limiter_pace": ("gauge", "Requests per second a start is held to now."),
    "apidam_breaker_state": ("gauge", "Circuit breaker: 0 closed, 1 half-open, 2 open."),
    "apidam_webhook_attempts_total": ("counter",
                                      "Webhook delivery attempts by outcome (status or error)."),
    "apidam_journal_commits_total": ("counter", "Group commits of the journal."),
    "apidam_journal_rows_total": ("counter", "Rows written to the journal."),
}


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Counters:
    """Monotonic counters keyed by name and labels."""

    def __init__(self) -> None:
        self.values: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self._domains: set[str] = set()

    def domain_label(self, domain: str) -> str:
        if domain in self._domains:
            return domain
        if len(self._domains) < MAX_DOMAIN_LABELS:
            self._domains.add(domain)
            return domain
        return "other"

    def inc(self, name: str, labels: Labels = (), value: float = 1.0) -> None:
        self.values[name][labels] += value

    def get(self, name: str, labels: Labels = ()) -> float:
        return self.values.get(name, {}).get(labels, 0.0)


def render(families: Iterable[tuple[str, Iterable[tuple[Labels, float]]]]) -> str:
    out: list[str] = []
    for name, samples in families:
        kind, text = HELP[name]
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lab = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            v = int(value) if float(value).is_integer() else value
            out.append(f"{name}{{{lab}}} {v}" if lab else f"{name} {v}")
    return "\n".join(out) + "\n"
