"""Runs people can keep and read: provenance, a folder per run, tables that fit, dollars."""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path

import pytest
from rich.console import Console
from shortened import SHORT, path

from sim.cli import main
from sim.costs import COST_KEYS, workload_costs
from sim.report import print_summary
from sim.result import RunResult
from sim.runtime.local import run_local
from sim.scenario import load_scenario

QUICK = ["--set", 'duration="5s"', "--set", 'drain="5s"', "--quiet", "--no-plots"]


def test_each_run_gets_its_own_folder_and_latest_points_at_the_newest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "openai-429-storm", *QUICK]) == 0
    assert main(["run", "openai-429-storm", *QUICK, "--seed", "7"]) == 0
    base = tmp_path / "out" / "openai-429-storm"
    runs = sorted(p for p in base.iterdir() if p.is_dir() and not p.is_symlink())
    assert len(runs) == 2 and all((r / "summary.json").exists() for r in runs)
    latest = json.loads((base / "latest" / "summary.json").read_text())
    assert latest["seed"] == 7  # the newest
    first = json.loads((runs[0] / "summary.json").read_text())
    assert first["seed"] != 7 or runs[0] == (base / "latest").resolve()


def test_the_summary_records_how_the_run_was_made(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "openai-429-storm", *QUICK, "--seed", "11", "--out", str(out)]) == 0
    p = json.loads((out / "summary.json").read_text())["provenance"]
    scenario = path("openai-429-storm")
    assert p["scenario_sha256"] == hashlib.sha256(scenario.read_bytes()).hexdigest()
    assert p["seed"] == 11 and p["seed_source"] == "--seed"
    assert p["overrides"] == ['duration="5s"', 'drain="5s"']
    assert p["backend"] == "local" and p["apidam_version"] and p["started_at"].endswith("+00:00")
    assert p["command"][:3] == ["apidam", "run", "openai-429-storm"]
    assert (out / "scenario.toml").read_bytes() == scenario.read_bytes()
    assert main(["run", "openai-429-storm", *QUICK, "--set", "seed=3", "--out", str(out)]) == 0
    p = json.loads((out / "summary.json").read_text())["provenance"]
    assert p["seed_source"] == "--set" and "seed=3" in p["overrides"]


@pytest.fixture(scope="module")
def storm():
    sets = [*SHORT["stripe-5min-outage"], "costs.value_per_job_usd=50",
            "costs.refund_usd_per_duplicate=1.75"]
    return run_local(load_scenario(path("stripe-5min-outage"), sets))


def test_the_default_tables_fit_100_columns_and_cut_no_number(storm):
    s = json.loads(json.dumps(storm.summary))
    w = s["workloads"]["diy-immediate"]  # the widest figures a big run shows
    w.update(jobs=74_842, succeeded=7_381, failed=67_461, upstream_attempts=412_147)
    w["costs_usd"]["lost_revenue"] = 3_373_050.0
    w["cost_usd"] = 3_373_050.74
    console = Console(width=100, record=True)
    print_summary(RunResult(s, {}), console)
    text = console.export_text()
    table = text.split("Cost of the run")[0].splitlines()[1:]
    assert max(len(line) for line in table) <= 100
    assert "…" not in text
    for figure in ("74,842", "7,381", "67,461", "412k", "$3,373k"):
        assert figure in text
    wide = Console(width=250, record=True)
    print_summary(RunResult(s, {}), wide, wide=True)
    text = wide.export_text()
    assert "lost_revenue" in text and "3,373,050.00" in text


def test_lost_revenue_follows_failures(storm):
    for w in storm.summary["workloads"].values():
        c = w["costs_usd"]
        assert c["lost_revenue"] == pytest.approx(50 * (w["failed"] + w["pending"]))
        assert c["refunds"] == pytest.approx(1.75 * w["duplicate_executions"])
        assert c["total"] == pytest.approx(sum(c[k] for k in COST_KEYS), abs=1e-3)
        assert w["cost_usd"] == c["total"]
    assert storm.summary["workloads"]["diy-immediate"]["costs_usd"]["lost_revenue"] > 0


def test_cost_arithmetic_on_a_hand_computed_example():
    sc = load_scenario(path("stripe-5min-outage"), [
        "costs.value_per_job_usd=50", "costs.refund_usd_per_duplicate=1.75",
        "upstreams.stripe.usd_per_attempt=0.01", "workloads.diy-backoff.value_per_job_usd=20"])
    i = [w.name for w in sc.workloads].index("diy-backoff")
    c = workload_costs(sc, i, local_invocations=1_000, egress_bytes=2_000_000_000,
                       busy_seconds=100.0, queue_requests=500, dam_jobs_charged=0,
                       attempts=1_500, successful_attempts=900, lost_jobs=100, duplicates=3)
    # compute: 1,000/1e6 x $0.20 + 100 s x 0.5 GB x $0.0000166667 = $0.0002 + $0.00083333
    assert c["compute"] == pytest.approx(0.001, abs=1e-4)
    assert c["egress"] == pytest.approx(0.18)  # 2 GB x $0.09
    assert c["queue"] == pytest.approx(0.0002)  # 500 / 1e6 x $0.40
    assert c["upstream"] == pytest.approx(9.0)  # 900 successful x $0.01 (errors not billed)
    assert c["lost_revenue"] == pytest.approx(2_000.0)  # 100 x $20 (the workload's value)
    assert c["refunds"] == pytest.approx(5.25)  # 3 x $1.75
    assert c["total"] == pytest.approx(0.001 + 0.18 + 0.0002 + 9 + 2_000 + 5.25, abs=1e-3)
    billed = load_scenario(path("stripe-5min-outage"), [
        "upstreams.stripe.usd_per_attempt=0.01", "upstreams.stripe.bill_errors=true"])
    c = workload_costs(billed, i, local_invocations=0, egress_bytes=0, busy_seconds=0.0,
                       queue_requests=0, dam_jobs_charged=0, attempts=1_500,
                       successful_attempts=900, lost_jobs=0, duplicates=0)
    assert c["upstream"] == pytest.approx(15.0)  # every attempt billed


def test_cost_fields_are_validated():
    from sim.scenario import ScenarioError

    for bad in ("costs.value_per_job_usd=-1", "upstreams.stripe.usd_per_attempt=nan",
                "workloads.diy-backoff.value_per_job_usd=1e300"):
        with pytest.raises(ScenarioError):
            load_scenario(path("stripe-5min-outage"), [bad])


def _quick_run(out: Path, *extra: str) -> Path:
    assert main(["run", "openai-429-storm", *QUICK, "--out", str(out), *extra]) == 0
    return out


def test_compare_two_known_runs(tmp_path, capsys):
    a = _quick_run(tmp_path / "a")
    b = _quick_run(tmp_path / "b", "--seed", "5", "--set",
                   "workloads.0.arrivals.rate=40")
    capsys.readouterr()
    assert main(["compare", str(a), str(b / "summary.json"), "--json"]) == 0
    cmp = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in cmp["runs"]] == ["a", "b"]
    assert "seed" in cmp["differs_in"] and "overrides" in cmp["differs_in"]
    sa = json.loads((a / "summary.json").read_text())["workloads"]
    sb = json.loads((b / "summary.json").read_text())["workloads"]
    name = next(iter(sa))
    row = cmp["workloads"][name]["upstream_attempts"]
    va, vb = sa[name]["upstream_attempts"], sb[name]["upstream_attempts"]
    assert row["values"] == [va, vb] and row["delta"] == [vb - va]
    assert row["delta_pct"] == [round(100 * (vb - va) / va, 2)]
    assert main(["compare", str(a), str(b)]) == 0  # the table
    text = capsys.readouterr().out
    assert "Δ%" in text and "note: the runs differ in" in text


def test_compare_a_sweeps_grid_points(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "openai-429-storm", "--seeds", "1", "--quiet", "--out", str(out),
                 "--set", 'duration="3s"', "--set", 'drain="3s"',
                 "--grid", "dam.limiter.rate=5,50"]) == 0
    assert json.loads((out / "sweep.json").read_text())["provenance"]["grid"]
    capsys.readouterr()
    assert main(["compare", str(out), "--json"]) == 0
    cmp = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in cmp["runs"]] == ["dam.limiter.rate=5", "dam.limiter.rate=50"]
    assert cmp["differs_in"] == ["overrides"]


def test_compare_refuses_what_is_not_two_runs(tmp_path, capsys):
    a = _quick_run(tmp_path / "a")
    for argv in (["compare", str(a)], ["compare", str(a), str(tmp_path / "missing")],
                 ["compare", str(a), str(tmp_path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("apidam: ") and "Traceback" not in err


def test_report_is_one_self_contained_page_with_the_figures(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", "openai-429-storm", "--quiet", "--set", 'duration="5s"', "--set",
                 'drain="5s"', "--set", "costs.value_per_job_usd=3", "--out", str(run)]) == 0
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    s = json.loads((run / "summary.json").read_text())
    assert s["scenario"] in page and s["trace_hash"] in page
    for name, w in s["workloads"].items():
        assert name in page and f"{w['jobs']:,}" in page and f"{w['cost_usd']:,.2f}" in page
    assert page.count("src='data:image/png;base64,") >= 4
    assert s["provenance"]["scenario_sha256"] in page
    sc = load_scenario(path("openai-429-storm"))
    assert html.escape(sc.description.strip()[:60], quote=True) in page  # the story
    assert "Upstream APIs" in page and sc.upstreams[0].url in page
    assert ("Outage windows" in page) == bool(s["outages"])
    lowered = page.lower()
    for external in ("src='http", 'src="http', "href=", "url(", "<script", "@import"):
        assert external not in lowered
    assert main(["report", str(tmp_path / "nothing")]) == 2


@pytest.mark.parametrize(("extra", "message"), [
    (["--grid", "upstreams.0.queue=100,200"], "exactly two --grid fields"),
    (["--grid", "upstreams.0.queue=100,200", "--grid", "seed=1,2"], "seed"),
    (["--grid", "upstreams.0.queue=100,200", "--grid", "upstreams.0.servers=5,10",
      "--heatmap", "nonsense"], "expected one of"),
    (["--grid", "upstreams.0.queue=100,200", "--grid", "upstreams.0.servers=5,10",
      "--heatmap", "success_rate", "--heatmap-workload", "nobody"], "--heatmap-workload"),
])
def test_heatmap_usage_errors_come_before_any_run(extra, message, tmp_path, capsys):
    argv = ["sweep", "metastable-retries", "--seeds", "1", "--quiet", "--out",
            str(tmp_path / "s"), *extra]
    if "--heatmap" not in extra:
        argv += ["--heatmap", "success_rate"]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s" / "sweep.json").exists()


def test_a_two_key_sweep_draws_its_phase_map(tmp_path):
    out = tmp_path / "s"
    assert main(["sweep", "metastable-retries", "--seeds", "1", "--quiet", "--out", str(out),
                 "--set", 'duration="24s"', "--set", 'drain="2s"',
                 "--set", 'upstreams.0.outages.0.start="5s"',
                 "--set", 'upstreams.0.outages.0.end="10s"',
                 "--set", 'windows=[{name="after",start="15s",end="24s"}]',
                 "--set", "workloads.2.arrivals.rate=50",
                 "--grid", "upstreams.0.outages.0.servers=10,18",
                 "--grid", "upstreams.0.queue=1000,20000",
                 "--heatmap", "windows.after.retry-at-once.goodput_per_s"]) == 0
    assert (out / "heatmap.png").stat().st_size > 10_000
    rows = (out / "heatmap.csv").read_text().splitlines()
    assert rows[0] == "upstreams.0.outages.0.servers \\ upstreams.0.queue,1000,20000"
    assert len(rows) == 3
    doc = json.loads((out / "sweep.json").read_text())
    cells = {(e["upstreams.0.outages.0.servers"], e["upstreams.0.queue"]):
             e["after.goodput_per_s"] for e in doc["summary"] if e["workload"] == "retry-at-once"}
    assert len(cells) == 4 and all(v is not None for v in cells.values())
