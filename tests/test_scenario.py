"""Scenario files: validation with exact paths, overrides, durations."""

import copy
import tomllib
from pathlib import Path

import pytest

from sim.cli import main
from sim.scenario import ScenarioError, apply_override, load_scenario

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "scenarios").glob("*.toml"))
BASE = {
    "name": "t", "duration": "10s",
    "upstreams": [{"name": "api", "url": "https://api.example"}],
    "receivers": [{"name": "app", "url": "https://app.example"}],
    "workloads": [{"name": "w", "upstream": "api", "strategy": "performance",
                   "step": {"webhooks": [{"url": "https://app.example/h"}]}}],
}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenarios_validate(path):
    sc = load_scenario(path)
    assert sc.name == path.stem


def test_at_least_the_six_required_scenarios_ship():
    names = {p.stem for p in SHIPPED}
    assert {"stripe-5min-outage", "payment-processor-15min", "openai-429-storm", "region-down",
            "webhook-receiver-flapping", "race-vs-fallback"} <= names


def bad(edit):
    doc = copy.deepcopy(BASE)
    edit(doc)
    return doc


BAD = [
    ("missing_duration", lambda d: d.pop("duration"), "$.duration", "required"),
    ("bad_duration", lambda d: d.update(duration="10 seconds"), "$.duration", "duration like"),
    ("unknown_top_field", lambda d: d.update(colour="blue"), "$.colour", "unknown field"),
    ("negative_rate", lambda d: d["workloads"][0].update(arrivals={"rate": -1.0}),
     "$.workloads[0].arrivals.rate", ">= 0"),
    ("rate_as_string", lambda d: d["workloads"][0].update(arrivals={"rate": "fast"}),
     "$.workloads[0].arrivals.rate", "expected `float`"),
    ("unknown_upstream_ref", lambda d: d["workloads"][0].update(upstream="nope"),
     "$.workloads[0].upstream", "no upstream named"),
    ("unknown_strategy", lambda d: d["workloads"][0].update(strategy="yolo"),
     "$.workloads[0].strategy", "expected one of"),
    ("bad_status_key", lambda d: d["upstreams"][0].update(
        outages=[{"start": "1s", "end": "2s", "statuses": {"abc": 1.0}}]),
     "$.upstreams[0].outages[0].statuses.abc", "HTTP statuses"),
    # a bad value in a table of free keys is named by its key (msgspec alone says "[...]")
    ("bad_status_weight", lambda d: d["upstreams"][0].update(
        outages=[{"start": "1s", "end": "2s", "statuses": {"503": 1.0, "502": -1.0}}]),
     "$.upstreams[0].outages[0].statuses.502", ">= 0"),
    ("bad_region_link", lambda d: d.update(network={"regions": {
        "iad-ord": "10ms", "ord-lax": "soon", "iad-lax": "30ms"}}),
     "$.network.regions.ord-lax", "duration like"),
    ("bad_region_latency", lambda d: d["upstreams"][0].update(region_latency={
        "iad": {"median": "10ms"}, "lax": {"median": "10ms", "p99": "fast"}}),
     "$.upstreams[0].region_latency.lax.p99", "duration like"),
    ("outage_end_before_start", lambda d: d["upstreams"][0].update(
        outages=[{"start": "5s", "end": "2s"}]), "$.upstreams[0].outages[0].end", "after start"),
    ("bad_outage_mode", lambda d: d["upstreams"][0].update(
        outages=[{"start": "1s", "end": "2s", "mode": "meltdown"}]),
     "$.upstreams[0].outages[0].mode", "expected one of"),
    ("bad_upstream_url", lambda d: d["upstreams"][0].update(url="ftp://x"),
     "$.upstreams[0].url", "http or https"),
    ("step_bad_field", lambda d: d["workloads"][0]["step"].update(webhook_quorum=5),
     "$.workloads[0].step.webhook_quorum", "exceeds"),
    ("step_unknown_region", lambda d: d["workloads"][0]["step"].update(regions=["mars"]),
     "$.workloads[0].step.regions", "not a dam region"),
    ("webhook_without_receiver", lambda d: d["workloads"][0]["step"].update(
        webhooks=[{"url": "https://nobody.example/h"}]),
     "$.workloads[0].step.webhooks[0].url", "no receiver"),
    ("zero_link", lambda d: d.update(network={"intra_region": "0ms"}),
     "$.network.intra_region", "> 0"),
    ("region_outage_unknown_region", lambda d: d.update(
        dam={"outages": [{"region": "lax", "start": "1s", "end": "2s"}]}),
     "$.dam.outages[0].region", "not one of"),
    ("bad_backoff_kind", lambda d: d["workloads"][0].update(
        diy={"backoff": {"kind": "fibonacci"}}), "$.workloads[0].diy.backoff.kind",
     "expected one of"),
    ("duplicate_workload", lambda d: d["workloads"].append(copy.deepcopy(d["workloads"][0])),
     "$.workloads", "unique"),
    ("bad_name", lambda d: d["workloads"][0].update(name="Has Spaces"),
     "$.workloads[0].name", "lowercase name"),
    ("timeout_below_links", lambda d: d.update(dam={"attempt_timeout": "10ms"}),
     "$.dam.attempt_timeout", "4x the largest link"),
    ("short_secret", lambda d: d.update(dam={"webhook_secret": "short"}),
     "$.dam.webhook_secret", "16 characters"),
    ("network_pair", lambda d: d.update(network={"regions": {"iad-mars": "5ms"}}),
     "$.network.regions.iad-mars", "expected 'a-b'"),
    # failure feedback: every value finite and in range, cross-field rules named
    ("breaker_rate_zero", lambda d: d.update(dam={"breaker": {"failure_rate": 0.0}}),
     "$.dam.breaker.failure_rate", "> 0"),
    ("breaker_rate_nan", lambda d: d.update(dam={"breaker": {"failure_rate": float("nan")}}),
     "$.dam.breaker.failure_rate", "> 0"),
    ("breaker_rate_above_1", lambda d: d.update(dam={"breaker": {"failure_rate": 1.5}}),
     "$.dam.breaker.failure_rate", "<= 1"),
    ("breaker_min_calls_over_window", lambda d: d.update(
        dam={"breaker": {"min_calls": 50, "window_calls": 20}}),
     "$.dam.breaker.min_calls", "<= window_calls"),
    ("breaker_huge_window", lambda d: d.update(dam={"breaker": {"window_calls": 10**9}}),
     "$.dam.breaker.window_calls", "<= 100000"),
    ("breaker_zero_open", lambda d: d.update(dam={"breaker": {"open": "0s"}}),
     "$.dam.breaker.open", "> 0"),
    ("breaker_cap_below_open", lambda d: d.update(
        dam={"breaker": {"open": "10s", "max_open": "5s"}}), "$.dam.breaker.max_open", ">= open"),
    ("breaker_no_probes", lambda d: d.update(dam={"breaker": {"probes": 0}}),
     "$.dam.breaker.probes", ">= 1"),
    ("breaker_unknown_field", lambda d: d.update(dam={"breaker": {"treshold": 0.5}}),
     "$.dam.breaker.treshold", "unknown field"),
    ("pacing_beta_one", lambda d: d.update(dam={"pacing": {"beta": 1.0}}),
     "$.dam.pacing.beta", "< 1"),
    ("pacing_floor_inf", lambda d: d.update(dam={"pacing": {"min_rate": float("inf")}}),
     "$.dam.pacing.min_rate", "<= 1000000"),
    ("pacing_slow_start_floor", lambda d: d.update(dam={"pacing": {"slow_start_floor": 0.0}}),
     "$.dam.pacing.slow_start_floor", "> 0"),
    ("pacing_bad_duration", lambda d: d.update(dam={"pacing": {"slow_start": "soon"}}),
     "$.dam.pacing.slow_start", "duration like"),
    ("diy_quota_negative", lambda d: d["workloads"][0].update(
        diy={"retry_quota": {"retry_cost": -1}}),
     "$.workloads[0].diy.retry_quota.retry_cost", ">= 0"),
    ("diy_budget_percent", lambda d: d["workloads"][0].update(
        diy={"concurrent_retry_budget": {"percent": 120.0}}),
     "$.workloads[0].diy.concurrent_retry_budget.percent", "<= 100"),
    ("diy_breaker_min_calls", lambda d: d["workloads"][0].update(
        diy={"breaker": {"min_calls": 200}}), "$.workloads[0].diy.breaker.min_calls",
     "<= window_calls"),
    ("diy_rate_limiter_beta", lambda d: d["workloads"][0].update(
        diy={"rate_limiter": {"beta": 0.0}}), "$.workloads[0].diy.rate_limiter.beta", "> 0"),
]


@pytest.mark.parametrize("name,edit,path,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_scenarios_name_the_path(name, edit, path, reason):
    with pytest.raises(ScenarioError) as info:
        load_scenario(bad(edit))
    assert info.value.path == path, str(info.value)
    assert reason in info.value.reason, str(info.value)


def test_overrides_by_name_and_index_and_typed_values():
    doc = copy.deepcopy(BASE)
    apply_override(doc, "workloads.w.arrivals.rate=500")
    apply_override(doc, "upstreams.0.servers=7")
    apply_override(doc, 'duration="1m"')
    apply_override(doc, "dam.limiter.rate=12.5")
    sc = load_scenario(doc)
    assert sc.workloads[0].arrivals.rate == 500.0 and sc.upstreams[0].servers == 7
    assert sc.duration == "1m" and sc.dam.limiter.rate == 12.5
    with pytest.raises(ScenarioError, match="no item named"):
        apply_override(copy.deepcopy(BASE), "workloads.zzz.arrivals.rate=1")
    with pytest.raises(ScenarioError, match="path=value"):
        apply_override(copy.deepcopy(BASE), "workloads")


def test_file_errors(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.toml")
    p = tmp_path / "broken.toml"
    p.write_text("name = [unclosed")
    with pytest.raises(ScenarioError, match="invalid TOML"):
        load_scenario(p)


def test_cli_validate_and_run_bad_input_exit_2_with_one_line(tmp_path, capsys):
    p = tmp_path / "s.toml"
    p.write_text('name = "x"\nduration = "forever"\n[[upstreams]]\nname="a"\nurl="https://a.b"\n'
                 '[[workloads]]\nname="w"\nupstream="a"\n')
    assert main(["validate", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "$.duration: expected a duration" in err[0]
    assert main(["run", str(p)]) == 2
    assert main(["run", str(ROOT / "scenarios" / "region-down.toml"), "--set",
                 "workloads.nope.arrivals.rate=1"]) == 2
    assert "no item named 'nope'" in capsys.readouterr().err
    assert main(["run", "--bogus-flag"]) == 2
    assert main(["run", "region-down", "--backend", "ray", "--trace", "t.msgpack"]) == 2


def test_shipped_files_are_plain_toml():
    for p in SHIPPED:
        tomllib.loads(p.read_text())


def test_nested_job_webhooks_are_checked_too():
    doc = bad(lambda d: d["workloads"][0]["step"].update(
        on_success={"url": "https://api.example/next",
                    "webhooks": [{"url": "https://nobody.example/h"}]}))
    with pytest.raises(ScenarioError) as info:
        load_scenario(doc)
    assert info.value.path == "$.workloads[0].step.on_success.webhooks[0].url"


def test_missing_trace_file_is_an_input_error(tmp_path, capsys):
    p = tmp_path / "s.toml"
    p.write_text('name = "x"\nduration = "2s"\n[[upstreams]]\nname="a"\nurl="https://a.b"\n'
                 '[[workloads]]\nname="w"\nupstream="a"\n'
                 'arrivals = { process = "trace", file = "missing.csv" }\n')
    assert main(["run", str(p), "--quiet", "--no-plots", "--out", str(tmp_path / "o")]) == 2
    assert "$.workloads[0].arrivals.file: cannot read arrival times" in capsys.readouterr().err
    assert main(["validate", str(p)]) == 2  # validate reads the file as run does
    assert (f"{p}: $.workloads[0].arrivals.file: cannot read arrival times"
            in capsys.readouterr().err)
    (tmp_path / "missing.csv").write_text("0.5\n1.0\n")
    assert main(["validate", str(p)]) == 0


RED_TEAM = [  # inputs that validated and then failed late (traceback, hang, full machine)
    ('duration="100000h"', "$.duration", "at most"),
    ('duration="99999999999999999999h"', "$.duration", "at most"),
    ("workloads.w.arrivals.rate=inf", "$.workloads[0].arrivals.rate", "<= 1000000"),
    ("workloads.w.arrivals.rate=nan", "$.workloads[0].arrivals.rate", ">= 0"),
    ("workloads.w.arrivals.rate=1e12", "$.workloads[0].arrivals.rate", "<= 1000000"),
    ("dam.limiter.rate=inf", "$.dam.limiter.rate", "<= 1000000"),
    ("upstreams.api.servers=1000000000", "$.upstreams[0].servers", "<= 100000"),
    ("upstreams.api.advertise.rps=1e308", "$.upstreams[0].advertise.rps", "<= 1000000"),
    ("upstreams.api.latency.slow_factor=1e300", "$.upstreams[0].latency.slow_factor", "<= 1000"),
    ('workloads.w.path="no-slash"', "$.workloads[0].path", "starting with '/'"),
    ('workloads.w.start="10m"', "$.workloads[0].start", "before the end"),
    ('dam.webhook_schedule=["0s", "5s", "1s"]', "$.dam.webhook_schedule[2]", "back in time"),
    ('dam.backoff.base="10s"', "$.dam.backoff.cap", ">= base"),
    ('name="../../x"', "$.name", "output folder"),
]


@pytest.mark.parametrize("override,path,reason", RED_TEAM, ids=[r[0][:30] for r in RED_TEAM])
def test_absurd_values_are_refused_by_validation(override, path, reason):
    doc = copy.deepcopy(BASE)
    doc["dam"] = {**doc.get("dam", {}), "backoff": {"cap": "5s"}} if "backoff" in override \
        else doc.get("dam", {})
    with pytest.raises(ScenarioError) as info:
        load_scenario(doc, [override])
    assert (info.value.path, reason in info.value.reason) == (path, True), str(info.value)


def test_every_problem_is_reported_at_once():
    doc = copy.deepcopy(BASE)
    with pytest.raises(ScenarioError) as info:
        load_scenario(doc, ['workloads.w.path="x"', 'dam.webhook_schedule=["5s", "1s"]',
                            'workloads.w.start="1h"'])
    paths = [p for p, _ in info.value.problems]
    assert paths == ["$.dam.webhook_schedule[1]", "$.workloads[0].path", "$.workloads[0].start"]
    assert len(info.value.lines()) == 3


@pytest.mark.parametrize("text,reason", [
    ('name = "t"\nduration = "1s"\n' + ".".join(["a"] * 50_000) + " = 1\n", "more than 32 parts"),
    ('name = "t"\nduration = "1s"\nx = ' + "[" * 1000 + "]" * 1000 + "\n", "nested deeper"),
    ('name = "t"\nduration = "1s"\nx = ' + "{a = " * 1000 + "1" + "}" * 1000 + "\n",
     "nested deeper"),
    ('name = "t"\n' + "#" * (2 << 20) + "\n", "larger than"),
])
def test_hostile_files_are_refused_fast_and_cleanly(tmp_path, text, reason):
    import time

    f = tmp_path / "s.toml"
    f.write_text(text)
    t0 = time.perf_counter()
    with pytest.raises(ScenarioError) as info:
        load_scenario(f)
    assert reason in info.value.reason and time.perf_counter() - t0 < 2.0


def test_a_long_line_of_floats_is_not_a_dotted_key(tmp_path):
    f = tmp_path / "s.toml"
    doc = (ROOT / "scenarios" / "race-vs-fallback.toml").read_text()
    f.write_text(doc + "\n[costs]\n" if "[costs]" not in doc else doc)
    load_scenario(f)  # the shipped scenario still loads
    f.write_text('name = "t"\nduration = "1s"\nvalues = [\n' + ", ".join(["1.5"] * 100)
                 + "\n]\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(f)
    assert info.value.path == "$.values"  # an unknown field, not a key-parts error


def test_a_run_that_would_not_fit_in_memory_is_refused():
    """Every rate and duration within its own bounds, together 300 million jobs: refused by
    validation, naming the largest workload, instead of running out of memory."""
    doc = copy.deepcopy(BASE)
    with pytest.raises(ScenarioError) as info:
        load_scenario(doc, ["workloads.w.arrivals.rate=1000000", 'duration="5m"'])
    assert info.value.path == "$.workloads"
    assert "300,000,000 expected jobs ('w'" in info.value.reason
    assert "at most 3,000,000" in info.value.reason
    load_scenario(doc, ["workloads.w.arrivals.rate=10000", 'duration="5m"'])  # 3,000,000: ok


def test_expected_jobs_follow_each_arrival_process():
    from sim.scenario.load import expected_jobs

    S = 1_000_000
    doc = copy.deepcopy(BASE)
    doc["duration"] = "10m"
    doc["workloads"][0]["arrivals"] = {"process": "piecewise", "segments": [
        {"until": "1m", "rate": 10.0}, {"until": "3m", "rate": 100.0}, {"until": "4m",
                                                                        "rate": 5.0}]}
    doc["workloads"][0]["start"] = "30s"
    doc["workloads"][0]["stop"] = "8m"
    w = load_scenario(doc).workloads[0]
    # 10/s for 30 s, 100/s for 2 min, then 5/s from 3 min until the stop at 8 min
    assert expected_jobs(w, 600 * S) == 10 * 30 + 100 * 120 + 5 * 300
    doc["workloads"][0]["arrivals"] = {"process": "constant", "rate": 4.0}
    assert expected_jobs(load_scenario(doc).workloads[0], 600 * S) == 4 * 450


@pytest.mark.parametrize("lines,reason", [
    ("1\n2\n3\n4\n", "4 arrivals; at most 3"),
    ("1\n2600000\n", "an arrival at 2,600,000 s; at most 30 days"),
])
def test_trace_files_are_bounded(tmp_path, monkeypatch, lines, reason):
    import sim.clients.arrivals as arrivals

    monkeypatch.setattr(arrivals, "MAX_JOBS", 3)
    (tmp_path / "t.csv").write_text(lines)
    with pytest.raises(ScenarioError) as info:
        arrivals.load_trace(0, "t.csv", tmp_path)
    assert info.value.path == "$.workloads[0].arrivals.file"
    assert reason in info.value.reason
    monkeypatch.setattr(arrivals, "MAX_TRACE_BYTES", 4)
    with pytest.raises(ScenarioError, match="larger than 4 bytes"):
        arrivals.load_trace(0, "t.csv", tmp_path)


def test_a_scenario_with_more_actors_than_the_kernel_numbers_is_refused():
    doc = copy.deepcopy(BASE)
    doc["workloads"] = [{"name": f"w{i}", "upstream": "api", "strategy": "diy",
                         "arrivals": {"rate": 0.1}} for i in range(4100)]
    with pytest.raises(ScenarioError) as info:
        load_scenario(doc)  # it validated, then failed in the kernel with a traceback
    assert info.value.path == "$.workloads"
    assert "4,106 actors" in info.value.reason and "at most 4,096" in info.value.reason


def test_time_series_that_would_not_fit_are_refused():
    doc = copy.deepcopy(BASE)
    doc["workloads"] = [{"name": f"w{i}", "upstream": "api", "strategy": "diy",
                         "arrivals": {"rate": 0.001}} for i in range(20)]
    load_scenario(doc, ['duration="720h"', 'drain="0s"'])  # 45 series x 30 days: ok
    with pytest.raises(ScenarioError) as info:
        load_scenario(doc, ['duration="720h"', 'drain="720h"'])
    assert info.value.path == "$.drain" and "one-second series slots" in info.value.reason


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_the_actor_count_validation_uses_is_the_one_built(path):
    from sim.build import build
    from sim.scenario.load import actor_count

    sc = load_scenario(path)
    assert actor_count(sc) == len(build(sc, path.parent)[1])
