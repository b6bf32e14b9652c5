"""The apidam CLI: exit codes 0 / 2, one clear line per bad file."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cli import main


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    assert "check-job" in capsys.readouterr().out


def test_unknown_command_is_usage_error(capsys):
    assert main(["frobnicate"]) == 2


def test_check_job_ok_and_bad(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"url": "https://api.stripe.com/v1/x", "method": "POST"}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"url": "https://a.com", "retry_policy": {"max_retries": -1}}))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["check-job", str(good), "--canonical"]) == 0
    out = capsys.readouterr().out
    assert "ok (POST https://api.stripe.com" in out and '"method": "POST"' in out
    assert main(["check-job", str(good), str(bad), str(broken), str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"apidam: {bad}: $.retry_policy.max_retries: "
                      "must be between 0 and 100, got -1")
    assert err[1].startswith(f"apidam: {broken}: $: not JSON")
    assert err[2].startswith(f"apidam: {tmp_path / 'none'}: cannot read")


def test_an_unknown_placement_is_a_usage_error(capsys):
    from sim.runtime.planning import PLACEMENTS

    assert main(["run", "region-down", "--backend", "ray", "--placement", "rack"]) == 2
    err = capsys.readouterr().err
    assert "rack" in err and all(p in err for p in PLACEMENTS)


def test_sweep_grid_over_seed_or_with_duplicates_is_a_usage_error(capsys, tmp_path):
    for grid in ("seed=1,2", "workloads.w.arrivals.rate=1,2,1"):
        code = main(["sweep", "race-vs-fallback", "--grid", grid, "--seeds", "2",
                     "--out", str(tmp_path / "s"), "--quiet"])
        assert code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--grid" in err[0]
    assert not (tmp_path / "s").exists()  # refused before anything ran


def test_bad_outputs_are_refused_before_the_run(tmp_path, capsys):
    """An --out that is a file, a device or unwritable, a --trace that is a folder: exit 2 with
    one line, before any simulation (nothing written)."""
    afile = tmp_path / "file"
    afile.write_text("x")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    cases = [["--out", str(afile)], ["--out", "/dev/null"], ["--out", "/proc/apidam"],
             ["--out", str(tmp_path / "ok"), "--trace", str(tmp_path)],
             ["--out", str(tmp_path / "ok2"), "--trace", "/dev/null"]]
    import os

    if os.geteuid() != 0:  # root writes anywhere: the read-only case only means something else
        cases.append(["--out", str(ro / "sub")])
    for extra in cases:
        assert main(["run", "openai-429-storm", "--quiet", *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("apidam: --"), err
    assert not (tmp_path / "ok" / "summary.json").exists()


def test_a_scenario_name_cannot_leave_the_output_root(capsys):
    for name in ('"../../x"', '"/tmp/abs"', '"a\\u001b[31m"', '""'):
        assert main(["validate", "openai-429-storm", "--set", f"name={name}"]) == 2
        err = capsys.readouterr().err
        assert "$.name" in err and "\x1b" not in err


def test_no_plots_leaves_no_stale_plots(tmp_path):
    out = tmp_path / "run"
    sets = ["--set", 'duration="5s"', "--set", 'drain="5s"']
    assert main(["run", "openai-429-storm", "--quiet", "--out", str(out), *sets]) == 0
    assert (out / "attempts_per_s.png").exists()
    assert main(["run", "openai-429-storm", "--quiet", "--out", str(out), "--no-plots",
                 *sets]) == 0
    assert (out / "summary.json").exists() and not (out / "attempts_per_s.png").exists()


def _interrupt_after(argv, seconds, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "sim.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    time.sleep(seconds)
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    return proc.returncode, err, time.perf_counter() - sent


def test_ctrl_c_keeps_what_was_computed(tmp_path):
    """SIGINT mid-run: stops within a second, one line, exit 130, partial summary written."""
    out = tmp_path / "run"
    code, err, took = _interrupt_after(["run", "stripe-5min-outage", "--quiet", "--no-plots",
                                        "--out", str(out)], 4.0, tmp_path)
    assert code == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted at virtual time" in lines[0], err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and 0 < summary["interrupted_at_s"] < 900
    assert summary["workloads"]["dam-performance"]["jobs"] > 0
    assert took < 3.0  # the stop is seen at the next simulated second


def test_an_interrupted_sweep_keeps_its_finished_runs(tmp_path):
    out = tmp_path / "sweep"
    # 400 runs: ~50 s with the compiled build, several minutes without; stopped after 5 s
    code, err, _ = _interrupt_after(["sweep", "webhook-receiver-flapping", "--seeds", "400",
                                     "--set", 'duration="20s"', "--quiet", "--out", str(out)],
                                    5.0, tmp_path)
    assert code == 130, err
    result = json.loads((out / "sweep.json").read_text())
    assert result["interrupted"] is True and 0 < result["runs"] < result["runs_planned"] == 400
    assert len({r["seed"] for r in result["rows"]}) == result["runs"]


def test_ray_addresses_malformed_exit_2_unreachable_exit_1(capsys, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for address in ("garbage", "host:99999", "ray://:80"):
        assert main(["run", "region-down", "--backend", "ray", "--ray-address", address,
                     "--quiet"]) == 2
        assert "--ray-address" in capsys.readouterr().err
    # loopback port 1: nothing listens there; refused at once, never minutes of retries
    assert main(["run", "region-down", "--backend", "ray", "--ray-address", "127.0.0.1:1",
                 "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach Ray at 127.0.0.1:1" in err[0]


TINY = """name = "tiny"
duration = "1s"
drain = "2s"
[[upstreams]]
name = "api"
url = "https://api.example"
[[workloads]]
name = "w"
upstream = "api"
arrivals = { rate = 3.0 }
"""

RED_TEAM_CLI = [
    ["validate", "stripe-5min-outage", "--set", 'duration="100000h"'],
    ["validate", "stripe-5min-outage", "--set", "workloads.diy-immediate.arrivals.rate=inf",
     "--set", "workloads.diy-immediate.arrivals.process=\"constant\""],
    ["validate", "stripe-5min-outage", "--set", "workloads.diy-immediate.arrivals.rate=1e12"],
    ["validate", "stripe-5min-outage", "--set", "dam.limiter.rate=inf"],
    ["validate", "stripe-5min-outage", "--set", "upstreams.stripe.servers=1000000000"],
    ["validate", "stripe-5min-outage", "--set", 'duration="99999999999999999999h"'],
    ["validate", "stripe-5min-outage", "--set", 'workloads.diy-immediate.path="no-slash"'],
    ["validate", "stripe-5min-outage", "--set", "upstreams.stripe.advertise.rps=inf"],
    ["validate", "stripe-5min-outage", "--set", "upstreams.stripe.latency.slow_factor=1e300"],
    ["validate", "stripe-5min-outage", "--set", 'dam.webhook_schedule=["1s", "0s"]'],
    ["validate", "stripe-5min-outage", "--set", 'dam.backoff.cap="1s"', "--set",
     'dam.backoff.base="5s"'],
    ["validate", "stripe-5min-outage", "--set", 'workloads.diy-immediate.start="6m"'],
    ["validate", "stripe-5min-outage", "--set", 'name="../../x"'],
    ["sweep", "race-vs-fallback", "--grid", "seed=1,2", "--seeds", "2"],
    ["sweep", "race-vs-fallback", "--seeds", "100000000"],  # once planned for hours, unkillable
    ["sweep", "race-vs-fallback", "--grid", "dam.limiter.rate=1,2,3,4,5,6,7,8,9,10", "--seeds",
     "20000"],
    ["sweep", "race-vs-fallback", "--set", "seed=9223372036854775807", "--seeds", "2"],
    ["sweep", "race-vs-fallback", "--grid", "dam.limiter.rate=2,-1", "--seeds", "3"],  # no run
    ["run", "region-down", "--backend", "ray", "--ray-address", "garbage"],
]


@pytest.mark.parametrize("argv", RED_TEAM_CLI, ids=[" ".join(a[-2:])[:40] for a in RED_TEAM_CLI])
def test_red_team_inputs_exit_2_fast_with_one_line(argv, capsys):
    import time

    t0 = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - t0 < 2.0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and all(line.startswith("apidam: ") for line in err)
    assert "Traceback" not in "\n".join(err)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([
    "run", "validate", "sweep", "check-job", "scenarios", "TINY", "--seed", "-1", "7", "x",
    "--set", "a=b", "duration=1", 'name="ok"', "--grid", "seed=1", "dam.limiter.rate=1,2",
    "--seeds", "0", "2", "--out", "/dev/null", "--trace", "--backend", "ray", "local",
    "--ray-address", "garbage", "--placement", "rack", "--quiet", "--no-plots", "--canonical",
    "--customer", "", "--wide", "-h"]), max_size=8))
def test_cli_never_raises(tmp_path_factory, argv):
    """Any mix of arguments: an exit code (0, 1 or 2; 130 never without a signal), no
    exception, no traceback."""
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "tiny.toml").write_text(TINY)
    argv = [str(tmp / "tiny.toml") if a == "TINY" else a for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp / "out")]
    if "ray" in argv:
        return  # the Ray backend's own tests cover it (starting Ray per example is too slow)
    code = main(argv)
    assert code in (0, 1, 2)


def test_ctrl_c_outside_a_runs_trap_exits_130_with_one_line(monkeypatch, capsys):
    # e.g. while a finished run writes its files: exit 130 and a line, never a signal death
    import sim.cli

    def interrupted(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(sim.cli, "_cmd_scenarios", interrupted)
    assert main(["scenarios"]) == 130
    assert capsys.readouterr().err.strip() == "apidam: interrupted"


def test_a_command_that_fails_before_writing_leaves_no_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # a bad grid value is found after the output folder was made, before any run
    assert main(["sweep", "race-vs-fallback", "--grid", "dam.limiter.rate=2,-1"]) == 2
    # Ray unreachable: the run fails (exit 1) with nothing computed
    assert main(["run", "region-down", "--backend", "ray", "--ray-address", "127.0.0.1:1",
                 "--quiet", "--out", "a/b/c"]) == 1
    assert list(tmp_path.iterdir()) == []
    # a folder that was there before stays, even empty
    (tmp_path / "kept").mkdir()
    assert main(["sweep", "race-vs-fallback", "--grid", "dam.limiter.rate=2,-1",
                 "--out", "kept"]) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]
    capsys.readouterr()
