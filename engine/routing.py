"""Region plans (race, fanout, hedge), region health, and reroute choice.

Regions have a preference order (the dam's configuration). A job's *listed* regions are its
``regions`` field, or the dam's default region when it has none.

* ``initial_regions``: the branch regions a job starts with. Under ``strict`` only healthy listed
  regions; under ``fallback`` a down listed region is replaced by the next healthy region not
  already used (listed ones first, then the rest in preference order). An empty plan means the job
  fails with ``region_unavailable``.
* ``reroute_target``: where a branch goes next: the first healthy region it has not tried and no
  other live branch is using, listed ones first; under ``strict`` only listed regions. None if
  there is none.
* ``RegionHealth``: a region is marked down by a gateway signal or after ``failure_threshold``
  consecutive network failures seen from it; it comes back up on a signal or after a successful
  probe (``probe_due`` tells the driver when to probe).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["RegionHealth", "initial_regions", "listed_regions", "reroute_target"]


class RegionHealth:
    __slots__ = ("_down_since", "_fails", "_next_probe", "_plans", "failure_threshold",
                 "probe_interval_us", "regions", "version")

    def __init__(self, regions: Sequence[str], failure_threshold: int = 5,
                 probe_interval_us: int = 5_000_000) -> None:
        if not regions:
            raise ValueError("at least one region is required")
        if len(set(regions)) != len(regions):
            raise ValueError("region names must be unique")
        self.regions = tuple(regions)
        self.failure_threshold = failure_threshold
        self.probe_interval_us = probe_interval_us
        self._down_since: dict[str, int] = {}
        self._next_probe: dict[str, int] = {}
        self._fails = dict.fromkeys(regions, 0)
        self.version = 0  # bumped on every up/down change (lets callers cache healthy lists)
        self._plans: dict[tuple, tuple[int, tuple[str, ...]]] = {}

    def is_up(self, region: str) -> bool:
        return region not in self._down_since and region in self._fails

    def healthy(self) -> tuple[str, ...]:
        return tuple(r for r in self.regions if r not in self._down_since)

    def mark_down(self, region: str, now: int) -> bool:
        """Mark ``region`` down; True if that changed anything."""
        if region not in self._fails or region in self._down_since:
            return False
        self._down_since[region] = now
        self._next_probe[region] = now + self.probe_interval_us
        self.version += 1
        return True

    def mark_up(self, region: str) -> bool:
        if self._down_since.pop(region, None) is None:
            return False
        self._next_probe.pop(region, None)
        self._fails[region] = 0
        self.version += 1
        return True

    def record(self, region: str, ok: bool, now: int) -> bool:
        """Feed one attempt result seen from ``region``; True if it marked the region down."""
        if region not in self._fails:
            return False
        if ok:
            self._fails[region] = 0
            return False
        self._fails[region] += 1
        if self._fails[region] >= self.failure_threshold:
            return self.mark_down(region, now)
        return False

    def probe_due(self, now: int) -> list[str]:
        """Down regions whose next probe time has come (each is re-armed one interval later)."""
        due = [r for r, at in self._next_probe.items() if at <= now]
        for r in due:
            self._next_probe[r] = now + self.probe_interval_us
        return sorted(due, key=self.regions.index)

    def probe_result(self, region: str, ok: bool, now: int) -> None:
        if ok:
            self.mark_up(region)

    def cached_plan(self, key: tuple) -> tuple[str, ...] | None:
        """A plan memoised under ``key`` at the current health version, if any."""
        hit = self._plans.get(key)
        return hit[1] if hit is not None and hit[0] == self.version else None

    def cache_plan(self, key: tuple, plan: tuple[str, ...]) -> None:
        if len(self._plans) > 4096:
            self._plans.clear()
        self._plans[key] = (self.version, plan)


def listed_regions(regions: Sequence[str], default_region: str) -> tuple[str, ...]:
    return tuple(regions) if regions else (default_region,)


def initial_regions(listed: Sequence[str], policy: str, health: RegionHealth) -> tuple[str, ...]:
    """The plan for ``listed`` under ``policy`` (memoised per health version: plans are asked
    for once per job, health changes rarely)."""
    key = (tuple(listed), policy)
    plan = health.cached_plan(key)
    if plan is None:
        plan = _plan(listed, policy, health)
        health.cache_plan(key, plan)
    return plan


def _plan(listed: Sequence[str], policy: str, health: RegionHealth) -> tuple[str, ...]:
    used = {r for r in listed if health.is_up(r)}
    plan: list[str] = []
    for r in listed:
        if r in used:
            plan.append(r)
        elif policy == "fallback":
            sub = next((x for x in health.regions if x not in used and health.is_up(x)), None)
            if sub is not None:
                plan.append(sub)
                used.add(sub)
    return tuple(plan)


def reroute_target(current: str, tried: Iterable[str], busy: Iterable[str],
                   listed: Sequence[str], policy: str, health: RegionHealth) -> str | None:
    avoid = {current, *tried, *busy}
    for r in listed:
        if r not in avoid and health.is_up(r):
            return r
    if policy == "strict":
        return None
    for r in health.regions:
        if r not in avoid and health.is_up(r):
            return r
    return None
