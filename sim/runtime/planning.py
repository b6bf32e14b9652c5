"""How actors are grouped for a parallel run, and the link floors between the groups.

A *placement* splits the actors into groups. ``LA[h][g]`` (:func:`link_floors`) is the shortest
delay any message from group ``h`` to group ``g`` can have: who talks to whom, and over which
link, comes from the message catalogue (``sim.messages``), the latencies from the scenario.
``P[k][g]`` (:func:`entry_paths`) is the shortest path of at least one link from ``k`` into
``g``: the coordinator's lookahead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..build import build
from ..messages import routes
from ..scenario import Scenario

__all__ = ["INF", "PLACEMENTS", "GroupPlan", "entry_paths", "link_floors", "make_plan",
           "placement_groups", "plan_groups"]

PLACEMENTS = ("default", "single", "per-actor", "regions")
INF = 1 << 62


def placement_groups(placement: str, groups: list[str], actors: list) -> list[str]:
    """The group name of every actor under ``placement``.

    ``default``: one group per dam region, one for the gateway and the limiters, one for the
    webhook dispatchers, one for the world; ``regions``: like
    default, but each region's dispatcher joins its region's group; ``single``: one group;
    ``per-actor``: one group per actor.
    """
    if placement == "default":
        return list(groups)
    if placement == "single":
        return ["all"] * len(groups)
    if placement == "per-actor":
        return [f"actor-{i}" for i in range(len(groups))]
    if placement == "regions":
        return [f"region:{a.region}" if a.kind == "dispatcher" else g
                for g, a in zip(groups, actors, strict=True)]
    raise ValueError(f"unknown placement {placement!r} (expected one of {', '.join(PLACEMENTS)})")


def link_floors(topo, actors: list, actor_group: list[int], n_groups: int) -> list[list]:
    """``LA[h][g]``: the shortest delay (µs) of any message from group ``h`` to group ``g``,
    None if no actor of ``h`` ever sends to one of ``g``. Who talks to whom, and over which
    link, comes from the message catalogue (``sim.messages``); the latencies from the
    scenario."""
    talk = routes()
    gw = topo.gateway_region

    def link(name: str, a, b) -> int:
        if name == "dam":  # the gateway's region ↔ a region
            return topo.lat(gw, a.region if a.kind == "region" else b.region)
        if name == "intra":
            return topo.intra
        if name == "internet":
            return topo.to_upstream
        return topo.client_to_gateway  # "client"

    def floor(a, b) -> int | None:
        name = talk.get((a.kind, b.kind))
        return None if name is None else link(name, a, b)

    la: list[list[int | None]] = [[None] * n_groups for _ in range(n_groups)]
    for ia, a in enumerate(actors):  # actors in id order (ids are bound later, by a kernel)
        for ib, b in enumerate(actors):
            ga, gb = actor_group[ia], actor_group[ib]
            if ga == gb:
                continue
            f = floor(a, b)
            if f is not None and (la[ga][gb] is None or f < la[ga][gb]):
                la[ga][gb] = f
    return la


def entry_paths(la: list[list[int | None]]) -> list[list[int]]:
    """``P[k][g]``: the shortest path of at least one link from group ``k`` into group ``g``
    (``INF`` if there is none); ``P[g][g]`` is ``g``'s shortest cycle."""
    n = len(la)
    dist = [[0 if k == g else (la[k][g] if la[k][g] is not None else INF) for g in range(n)]
            for k in range(n)]
    for m in range(n):  # Floyd–Warshall
        for k in range(n):
            for g in range(n):
                if dist[k][m] + dist[m][g] < dist[k][g]:
                    dist[k][g] = dist[k][m] + dist[m][g]
    return [[min((dist[k][h] + la[h][g] for h in range(n) if h != g and la[h][g] is not None),
                 default=INF) for g in range(n)] for k in range(n)]


@dataclass(frozen=True)
class GroupPlan:
    """Which group every actor belongs to, and the link floors between groups."""

    placement: str
    names: list[str]          # group names, in order of first appearance in actor-id order
    actor_group: list[int]    # group index of every actor
    floors: list[list]        # LA[h][g] (µs or None)
    paths: list[list[int]] = field(repr=False)

    @property
    def lookahead(self) -> int | None:
        """The smallest floor between two groups (None for a single group)."""
        return min((x for row in self.floors for x in row if x is not None), default=None)


def make_plan(label: str, names: list[str], topo, actors: list) -> GroupPlan:
    """The plan that puts actor ``i`` in the group called ``names[i]``."""
    order = list(dict.fromkeys(names))
    gid = {n: i for i, n in enumerate(order)}
    actor_group = [gid[n] for n in names]
    la = link_floors(topo, actors, actor_group, len(order))
    return GroupPlan(label, order, actor_group, la, entry_paths(la))


def plan_groups(sc: Scenario, placement: str, base_dir: Path | None = None):
    """``(plan, topo, actors)`` for ``sc`` under ``placement``."""
    topo, actors, groups, _metrics = build(sc, base_dir)
    names = placement_groups(placement, groups, actors)
    return make_plan(placement, names, topo, actors), topo, actors
