"""The Ray runtime: identical results to the local runtime for every placement, a dying group
ends the run with a clear message and partial results, and sweeps run as Ray tasks.

One session-scoped ``ray.init`` (the ``ray_session`` fixture) serves every test here.
"""

import json

import pytest
from shortened import path

from sim.cli import main
from sim.runtime.local import run_local
from sim.runtime.planning import plan_groups
from sim.runtime.ray import RayRunError, run_ray
from sim.scenario import load_scenario
from sim.sweep import run_sweep

# Every shipped scenario, small and sparse: what costs time on Ray is starting its actors (~0.7 s
# each) and the rounds (one per ~0.5 ms of busy virtual time, ~0.3 ms each here).
TINY = {
    "region-down": ['duration="6s"', 'drain="6s"', 'dam.outages.0.start="2s"',
                    'dam.outages.0.end="4s"', "workloads.race-3-regions.arrivals.rate=4",
                    "workloads.lax-fallback.arrivals.rate=4",
                    "workloads.lax-strict.arrivals.rate=3"],
    "stripe-5min-outage": ['duration="5s"', 'drain="20s"',
                           'upstreams.stripe.outages.0.start="1s"',
                           'upstreams.stripe.outages.0.end="3s"',
                           "workloads.diy-immediate.arrivals.rate=3",
                           "workloads.diy-backoff.arrivals.rate=3",
                           "workloads.dam-performance.arrivals.rate=3",
                           "workloads.dam-frugal.arrivals.rate=3"],
    "webhook-receiver-flapping": ['duration="30s"', 'drain="2m"',
                                  "workloads.orders.arrivals.rate=1"],
    "payment-processor-15min": ['duration="6s"', 'drain="20s"',
                                'upstreams.psp.outages.0.start="1s"',
                                'upstreams.psp.outages.0.end="4s"',
                                'upstreams.psp.outages.1.start="1s"',
                                'upstreams.psp.outages.1.end="4s"',
                                *(f"workloads.{w}.arrivals.rate=2" for w in (
                                    "diy-exponential", "diy-budget", "diy-adaptive",
                                    "dam-performance", "dam-frugal"))],
    "openai-429-storm": ['duration="5s"', 'drain="30s"',
                         "workloads.diy-immediate.arrivals.rate=6",
                         "workloads.diy-full-jitter.arrivals.rate=3",
                         "workloads.dam-performance.arrivals.rate=3"],
    "race-vs-fallback": ['duration="5s"', 'drain="5s"',
                         *(f"workloads.{w}.arrivals.rate=4" for w in (
                             "single-region", "race-3", "hedge-150ms", "fanout-3"))],
}


@pytest.fixture(scope="module")
def locals_():
    return {name: run_local(load_scenario(path(name), ov)) for name, ov in TINY.items()}


@pytest.mark.parametrize("placement", ["default", "single", "regions"])
@pytest.mark.parametrize("name", sorted(TINY))
def test_ray_equals_local(ray_session, locals_, name, placement):
    sc = load_scenario(path(name), TINY[name])
    r = run_ray(sc, placement=placement)
    local = locals_[name]
    assert r.trace_hash == local.trace_hash
    assert r.summary["workloads"] == local.summary["workloads"]
    assert r.summary["domains"] == local.summary["domains"]
    assert r.summary["events"] == local.summary["events"]
    assert r.summary["backend"] == "ray" and r.summary["sync"]["windows"] > 0


def test_one_ray_actor_per_actor_also_equals_local(ray_session, locals_):
    sc = load_scenario(path("region-down"), TINY["region-down"])
    r = run_ray(sc, placement="per-actor")
    assert r.trace_hash == locals_["region-down"].trace_hash
    assert r.summary["sync"]["groups"] == len(plan_groups(sc, "single")[0].actor_group)


def test_a_dying_group_ends_the_run_with_a_clear_message(ray_session):
    import ray

    sc = load_scenario(path("region-down"), TINY["region-down"])

    def kill_world(window, ctx):
        if window == 300:
            ray.kill(ctx["workers"][ctx["groups"].index("world")])

    with pytest.raises(RayRunError) as info:
        run_ray(sc, on_window=kill_world)
    msg = str(info.value)
    assert "'world'" in msg and "died at virtual time" in msg
    assert info.value.partial is not None
    assert info.value.partial.summary["incomplete"] is True
    # what the surviving groups measured (the limiters' permits) is in the partial result
    assert sum(d["permits"] for d in info.value.partial.summary["domains"].values()) > 0


def test_the_cli_reports_a_dead_group_exits_1_and_writes_partial_results(
        ray_session, monkeypatch, tmp_path, capsys):
    import functools

    import ray

    from sim.runtime import ray as ray_runtime

    def kill_dispatchers(window, ctx):
        if window == 40:
            ray.kill(ctx["workers"][ctx["groups"].index("dispatchers")])

    monkeypatch.setattr(ray_runtime, "run_ray",
                        functools.partial(ray_runtime.run_ray, on_window=kill_dispatchers))
    sets = [a for o in TINY["region-down"] for a in ("--set", o)]
    code = main(["run", str(path("region-down")), *sets, "--backend", "ray", "--out",
                 str(tmp_path), "--no-plots", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Ray group 'dispatchers' died at virtual time" in err
    assert "partial results written" in err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["incomplete"] is True and summary["trace_hash"] == "incomplete"


def test_sweep_on_ray_matches_local(ray_session):
    src = str(path("webhook-receiver-flapping"))
    grid = [("dam.webhook_timeout", ['"2s"', '"5s"'])]
    extra = TINY["webhook-receiver-flapping"]
    on_ray = run_sweep(src, grid, 1, backend="ray", extra=extra)
    local = run_sweep(src, grid, 1, backend="local", extra=extra)
    assert on_ray["runs"] == 2
    assert [r["trace_hash"] for r in on_ray["rows"]] == [r["trace_hash"] for r in local["rows"]]


def test_cli_run_on_ray(ray_session, tmp_path):
    sets = [a for o in TINY["webhook-receiver-flapping"] for a in ("--set", o)]
    assert main(["run", str(path("webhook-receiver-flapping")), *sets, "--backend", "ray",
                 "--placement", "single", "--out", str(tmp_path), "--no-plots",
                 "--quiet"]) == 0
    assert (tmp_path / "summary.json").exists()


def test_groups_reached_over_tcp_give_the_same_results(ray_session, locals_, monkeypatch):
    """Groups on other nodes are reached over TCP: the same protocol, here on loopback."""
    from sim.runtime import ray as ray_runtime

    monkeypatch.setattr(ray_runtime, "_LOCAL_FAMILY", "AF_INET")
    addresses = []

    def client(address, **kw):
        addresses.append(address)
        return original(address, **kw)

    original = ray_runtime.Client
    monkeypatch.setattr(ray_runtime, "Client", client)
    sc = load_scenario(path("webhook-receiver-flapping"), TINY["webhook-receiver-flapping"])
    r = run_ray(sc, placement="default")
    assert r.trace_hash == locals_["webhook-receiver-flapping"].trace_hash
    assert len(addresses) == r.summary["sync"]["groups"]
    assert all(isinstance(a, tuple) and a[0] == "127.0.0.1" for a in addresses)


def test_a_stop_request_ends_a_ray_run_with_partial_results(ray_session):
    sc = load_scenario(path("region-down"), ['duration="40s"', 'drain="30s"'])
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > 2000  # a couple of thousand windows in

    r = run_ray(sc, placement="default", should_stop=should_stop)
    assert r.summary["interrupted"] is True and 0 < r.summary["interrupted_at_s"] < 70
    assert r.summary["workloads"]["race-3-regions"]["jobs"] > 0


# The world models added since: link jitter (its floor is the Ray lookahead), a queue-model
# upstream with its self-timers, a capacity outage and the dam, measurement windows.
WORLD = {
    "stripe-5min-outage": [*TINY["stripe-5min-outage"], 'network.jitter.kind="exponential"',
                           'network.jitter.scale="5ms"'],
    "metastable-retries": ['duration="8s"', 'drain="4s"', 'upstreams.0.outages.0.start="2s"',
                           'upstreams.0.outages.0.end="4s"', 'windows.0.start="0s"',
                           'windows.0.end="2s"', 'windows.1.start="2s"', 'windows.1.end="4s"',
                           'windows.2.start="5s"', 'windows.2.end="8s"',
                           *(f"workloads.{i}.arrivals.rate=20" for i in range(3))],
}


@pytest.mark.parametrize("name", sorted(WORLD))
def test_ray_equals_local_for_the_newer_world_models(ray_session, name):
    sc = load_scenario(path(name), WORLD[name])
    local = run_local(sc)
    remote = run_ray(sc, placement="default")
    assert remote.trace_hash == local.trace_hash
    assert remote.summary["workloads"] == local.summary["workloads"]
    assert remote.summary.get("windows") == local.summary.get("windows")
