"""Workflow rules: fallback triggers, on_success / on_failure children, ``retry_at``.

A job and its ``fallback_job`` chain are *arms*: arm 0 is the job, arm k+1 is arm k's
``fallback_job``. Arm k+1 fires

* ``on_error``: when arm k fails with a final HTTP status in the trigger's codes (a failure
  without a status — timeouts, connection errors, no region — does not match);
* ``on_timeout``: when arm k has not finished ``timeout_ms`` after it started (arm k keeps
  running: both race);
* ``{}`` (any): when arm k fails, for any reason.

Fired arms race; the first success of any arm wins and is reported under the parent's job_id;
the other arms are cancelled. The job fails when every fired arm has failed and no trigger can
fire any more.

``on_success`` / ``on_failure`` are child jobs with their own ids, spawned when the job succeeds /
fails. ``on_failure_timeout_ms`` spawns ``on_failure`` if the job is still unfinished by then
(at most once: a later failure does not spawn it again). The winning fallback arm's own
``on_success`` is spawned too. ``retry_at`` (unix ms) delays the first dispatch.
"""

from __future__ import annotations

from .spec import JobSpec, Trigger

__all__ = ["failure_fires", "first_dispatch_at", "timeout_fires_at"]


def failure_fires(trigger: Trigger, status: int | None) -> bool:
    """Does a failure of the parent arm with ``status`` fire an arm with ``trigger``?"""
    if trigger.type == "any":
        return True
    if trigger.type == "on_error":
        return status is not None and status in trigger.codes
    return False


def timeout_fires_at(trigger: Trigger, parent_started_at: int) -> int | None:
    """When an ``on_timeout`` arm fires if its parent arm is still running (µs), else None."""
    if trigger.type == "on_timeout" and trigger.timeout_ms is not None:
        return parent_started_at + trigger.timeout_ms * 1000
    return None


def first_dispatch_at(spec: JobSpec, now: int) -> int:
    """``retry_at`` (unix ms) as virtual µs, never before ``now``."""
    if spec.retry_at is None:
        return now
    return max(now, spec.retry_at * 1000)
