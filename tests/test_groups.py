"""The grouped protocol without Ray (``sim.runtime.coordinator``): conservative bounds, cross-group
batches on the wire format, the merged trace hash. Whatever the partition of actors into groups,
results equal the local runtime's; a link shorter than its declared floor is caught."""

import itertools

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shortened import SHORT, path
from test_properties_system import scenarios
from test_sim_scenarios import GOLDEN

from sim.runtime.coordinator import Coordinator, GroupFailure, InProcess, run_groups
from sim.runtime.local import run_local
from sim.runtime.planning import INF, PLACEMENTS, GroupPlan, entry_paths, make_plan, plan_groups
from sim.runtime.workers import CausalityError
from sim.scenario import load_scenario


# metastable-retries (the slowest) is run on placements by tests/test_windows.py
@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("name", sorted(set(GOLDEN) - {"metastable-retries"}))
def test_every_placement_reproduces_the_golden_hash(name, placement):
    r = run_groups(load_scenario(path(name), SHORT[name]), placement=placement)
    assert r.trace_hash == GOLDEN[name]
    assert r.summary["sync"]["windows"] >= 1


def test_summaries_equal_the_local_runtime():
    sc = load_scenario(path("region-down"), SHORT["region-down"])
    local, grouped = run_local(sc), run_groups(sc, placement="default")
    for key in ("workloads", "domains", "events", "recovered_jobs", "lost_machines",
                "sim_seconds", "dropped_messages"):
        assert grouped.summary[key] == local.summary[key], key
    assert grouped.summary["sync"]["groups"] == 6  # control, 3 regions, dispatchers, world


def _plan(sc, groups):
    """A plan putting actor ``i`` in group ``groups[i]`` (any labels)."""
    _single, topo, actors = plan_groups(sc, "single")
    return make_plan("custom", [f"g{g}" for g in groups], topo, actors), topo


def _run(sc, plan, topo):
    transport = InProcess(msgspec.to_builtins(sc), None, plan)
    return Coordinator(plan, topo.horizon).run(transport)


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios(), st.data())
def test_any_partition_of_the_actors_gives_the_local_results(doc, data):
    doc["duration"] = "4s"
    doc["drain"] = "10s"
    sc = load_scenario(doc)
    local = run_local(sc)
    n_actors = len(plan_groups(sc, "single")[0].actor_group)
    groups = data.draw(st.lists(st.integers(0, 3), min_size=n_actors, max_size=n_actors))
    plan, topo = _plan(sc, groups)
    out = _run(sc, plan, topo)
    assert out.trace_hash == local.trace_hash
    assert out.events == local.summary["events"]


def test_entry_paths_are_shortest_paths_of_at_least_one_link():
    la = [[None, 5, None],
          [1, None, 7],
          [None, 2, None]]
    p = entry_paths(la)
    assert p[0][1] == 5 and p[0][0] == 6 and p[0][2] == 12  # 0->1, 0->1->0, 0->1->2
    assert p[2][0] == 3 and p[2][2] == 9  # 2->1->0, 2->1->2
    assert p[1][1] == 6  # the shorter of 1->0->1 (6) and 1->2->1 (9)
    assert entry_paths([[None]]) == [[INF]]


def test_a_link_shorter_than_its_floor_is_a_causality_error():
    sc = load_scenario(path("region-down"), SHORT["region-down"])
    plan, topo = _plan(sc, plan_groups(sc, "default")[0].actor_group)
    lying = [[None if x is None else x + 5_000 for x in row] for row in plan.floors]
    plan = GroupPlan("lying", plan.names, plan.actor_group, lying, entry_paths(lying))
    with pytest.raises(GroupFailure) as info:
        _run(sc, plan, topo)
    assert not info.value.died
    assert isinstance(info.value.__cause__, CausalityError)
    assert "below that group's bound" in info.value.detail


def test_a_failing_group_is_named_with_the_virtual_time(monkeypatch):
    sc = load_scenario(path("region-down"), SHORT["region-down"])
    calls = []

    def boom(self, inbox, until, floors):
        calls.append(until)
        if len(calls) == 20:
            raise ValueError("disk on fire")
        return original(self, inbox, until, floors)

    from sim.runtime import workers

    original = workers.GroupWorker.step
    monkeypatch.setattr(workers.GroupWorker, "step", boom)
    with pytest.raises(RuntimeError, match=r"group '.*' failed at virtual time [0-9.]+ s: "
                                           r"ValueError: disk on fire"):
        run_groups(sc, placement="default")


def test_unknown_placement_is_refused():
    sc = load_scenario(path("region-down"), SHORT["region-down"])
    with pytest.raises(ValueError, match="unknown placement 'rack'"):
        plan_groups(sc, "rack")


def test_progress_is_reported_about_once_per_simulated_second():
    sc = load_scenario(path("region-down"), SHORT["region-down"])
    calls = []
    r = run_groups(sc, placement="default", progress=lambda t, horizon: calls.append(t))
    assert r.summary["sync"]["windows"] > 10 * len(calls)  # not once per round
    assert all(b - a >= 1_000_000 for a, b in itertools.pairwise(calls))
    assert len(calls) >= r.summary["sim_seconds"] - 1


def test_cross_group_messages_are_exactly_the_deliveries_between_groups():
    sc = load_scenario(path("race-vs-fallback"), SHORT["race-vs-fallback"])
    trace = run_local(sc, trace=True).trace
    for placement in ("default", "regions", "single"):
        plan = plan_groups(sc, placement)[0]
        group = plan.actor_group
        crossing = sum(1 for _t, origin, _seq, target, _kind in trace
                       if group[origin] != group[target])
        r = run_groups(sc, placement=placement)
        assert r.summary["sync"]["cross_group_messages"] == crossing
        assert (crossing == 0) == (placement == "single")
