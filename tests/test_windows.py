"""Measurement windows (``[[windows]]``) and 100 ms peaks: counts that add up, on every runtime."""

from __future__ import annotations

import pytest
from shortened import SHORT, path

from sim.runtime.coordinator import run_groups
from sim.runtime.local import run_local
from sim.scenario import ScenarioError, load_scenario

PARTITION = ('windows=[{name="before",start="0s",end="10s"},'
             '{name="during",start="10s",end="30s"},{name="after",start="30s",end="100s"}]')


@pytest.fixture(scope="module")
def storm():
    sc = load_scenario(path("stripe-5min-outage"), [*SHORT["stripe-5min-outage"], PARTITION])
    return sc, run_local(sc)


def test_windows_that_partition_the_run_add_up_to_the_totals(storm):
    _, r = storm
    s = r.summary
    wins = s["windows"]
    assert list(wins) == ["before", "during", "after"]
    for name, w in s["workloads"].items():
        parts = [wins[k][name] for k in wins]
        assert sum(p["jobs"] for p in parts) == w["jobs"]
        assert sum(p["upstream_attempts"] for p in parts) == w["upstream_attempts"]
        assert sum(p["succeeded"] for p in parts) == w["succeeded"]
        assert sum(p["failed"] for p in parts) == w["failed"]
        goodput = r.arrays["goodput_per_s"][list(s["workloads"]).index(name)]
        assert wins["during"][name]["goodput_per_s"] == pytest.approx(
            goodput[10:30].sum() / 20, abs=1e-3)


def test_the_outage_window_shows_the_storm_and_the_dam_holding(storm):
    wins = storm[1].summary["windows"]
    during, before = wins["during"], wins["before"]
    assert during["diy-immediate"]["amplification"] > 5 > before["diy-immediate"]["amplification"]
    assert during["diy-immediate"]["success_rate"] < 0.1
    assert during["dam-performance"]["success_rate"] == 1.0  # held, then delivered
    assert during["dam-performance"]["upstream_attempts"] < 0.05 * during["dam-performance"]["jobs"]


def test_100ms_peaks_are_at_least_the_1s_peaks(storm):
    for w in storm[1].summary["workloads"].values():
        assert w["peak_attempts_per_100ms"] >= w["peak_attempts_per_s"]
    diy = storm[1].summary["workloads"]["diy-backoff"]
    assert diy["peak_attempts_per_100ms"] > 1.3 * diy["peak_attempts_per_s"]  # retry waves


def test_grouped_runtime_gives_the_same_windows(storm):
    sc, local = storm
    grouped = run_groups(sc, placement="default")
    assert grouped.trace_hash == local.trace_hash
    assert grouped.summary["windows"] == local.summary["windows"]
    for name, w in local.summary["workloads"].items():
        assert grouped.summary["workloads"][name]["peak_attempts_per_100ms"] == \
            w["peak_attempts_per_100ms"]


@pytest.mark.parametrize(("windows", "where", "what"), [
    ('[{name="a",start="10s",end="5s"}]', "$.windows[0].end", "after start"),
    ('[{name="a",start="1s",end="2s"},{name="a",start="3s",end="4s"}]', "$.windows[1].name",
     "twice"),
    ('[{name="a",start="99h",end="100h"}]', "$.windows[0].start", "before the run ends"),
    ('[{name="a b",start="1s",end="2s"}]', "$.windows[0].name", ""),
])
def test_bad_windows_are_refused_with_their_path(windows, where, what):
    with pytest.raises(ScenarioError) as e:
        load_scenario(path("openai-429-storm"), [f"windows={windows}"])
    assert any(where in line and what in line for line in e.value.lines())


def test_the_windows_table_fits_and_the_report_has_it(storm, tmp_path):
    from rich.console import Console

    from sim.html_report import render_report
    from sim.report import print_summary

    c = Console(width=100, record=True)
    print_summary(storm[1], c)
    text = c.export_text()
    table = text[text.index("Windows"):text.index("Cost of the run")].splitlines()
    assert len(table) >= 2 + 3 * 5 and max(len(line) for line in table) <= 100
    assert "<h2>Windows</h2>" in render_report(storm[1], storm[0])


def test_a_queue_model_run_is_the_same_on_every_runtime():
    """The queue model's self-timers, capacity windows and defences, the dam and the windows,
    on the grouped runtime's widest and narrowest placements (Ray ≡ groups: test_ray)."""
    sc = load_scenario(path("metastable-retries"), [
        *SHORT["metastable-retries"], 'upstreams.0.defences.lifo_above=50',
        'upstreams.1.service_time.kind="lognormal"', 'upstreams.1.service_time.median="40ms"',
        'upstreams.1.service_time.p99="200ms"',
        *(f"workloads.{i}.arrivals.rate=120" for i in range(3))])  # lighter: equality only
    local = run_local(sc)
    for placement in ("default", "per-actor"):
        g = run_groups(sc, placement=placement)
        assert g.trace_hash == local.trace_hash, placement
        assert g.summary["windows"] == local.summary["windows"]
