"""The apidam CLI: exit codes 0 / 2, one clear line per bad file."""

import json

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
    assert err[1].startswith(f"apidam: {broken}: not JSON")
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
