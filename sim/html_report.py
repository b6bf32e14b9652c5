"""``apidam report``: one self-contained HTML page of a run, to attach to a postmortem.

The scenario's story (its description, the world, the outage windows), the tables, the cost
breakdown, the plots (PNG, embedded as data: URIs) and how the run was made. No script, no
style sheet, font or image is fetched from anywhere: the file is the whole report.
"""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path

from .costs import COST_KEYS
from .plots import plot
from .report import outage_cost_line
from .result import RunResult
from .scenario import Scenario, ScenarioError, load_scenario

__all__ = ["render_report", "write_report"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-variant-numeric:tabular-nums}
th,td{padding:.25em .6em;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{background:#f6f6f6}
.note{color:#555}.story{white-space:pre-wrap;background:#fafafa;padding:.8em;border-left:3px
solid #bbb}img{max-width:100%;margin:.6em 0}code{font-size:.92em}
"""


def _e(v: object) -> str:
    return html.escape(str(v), quote=True)


def _table(head: list[str], rows: list[list[object]]) -> str:
    out = ["<table><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _num(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _arrivals(w) -> str:
    a = w.arrivals
    if a.process in ("poisson", "constant"):
        return f"{a.process}, {a.rate:g}/s"
    return a.process


def _world(sc: Scenario | None, s: dict) -> str:
    parts = []
    if sc is not None:
        parts.append("<h3>Upstream APIs</h3>" + _table(
            ["name", "url", "servers", "service", "own rate limit (req/s)", "queue"],
            [[u.name, u.url, u.servers, u.service, f"{u.rate_limit:g}" if u.rate_limit else
              "none", u.queue] for u in sc.upstreams]))
        parts.append("<h3>Workloads</h3>" + _table(
            ["name", "strategy", "upstream", "arrivals", "payload bytes"],
            [[w.name, w.strategy, w.upstream, _arrivals(w), _num(w.payload_bytes)]
             for w in sc.workloads]))
    if s.get("outages"):
        parts.append("<h3>Outage windows</h3>" + _table(
            ["where", "mode", "from (s)", "to (s)"],
            [[o.get("upstream") or f"region {o.get('region')}", o["mode"], o["start_s"],
              o["end_s"]] for o in s["outages"]]))
    return "".join(parts)


def render_report(result: RunResult, sc: Scenario | None = None) -> str:
    """The page; ``sc``: the scenario as run (its story and world), when it can be loaded."""
    s = result.summary
    wl = s["workloads"]
    body = [f"<h1>{_e(s['scenario'])}</h1>",
            f"<p class='note'>seed {_e(s['seed'])} · {_e(s['backend'])} · "
            f"{_e(s['sim_seconds'])} s simulated · {s['events']:,} events · "
            f"trace {_e(s['trace_hash'])}</p>"]
    if sc is not None and sc.description:
        body.append(f"<div class='story'>{_e(sc.description.strip())}</div>")
    body.append("<h2>The world</h2>" + _world(sc, s))
    body.append("<h2>What happened</h2>" + _table(
        ["workload", "strategy", "jobs", "succeeded", "failed", "pending", "deduped",
         "upstream attempts", "amplification", "peak attempts/s", "duplicate executions",
         "p50 ms", "p99 ms", "webhooks delivered", "undelivered"],
        [[n, w["strategy"], _num(w["jobs"]), _num(w["succeeded"]), _num(w["failed"]),
          _num(w["pending"]), _num(w["deduped"]), _num(w["upstream_attempts"]),
          _num(w["amplification"]), _num(w["peak_attempts_per_s"]),
          _num(w["duplicate_executions"]), _num(w["latency_ms"]["p50"]),
          _num(w["latency_ms"]["p99"]), _num(w["webhooks"]["delivered"]),
          _num(w["webhooks"]["undelivered"])] for n, w in wl.items()]))
    if s.get("windows"):
        rows = [[wname, name, _num(w["jobs"]), _num(w["success_rate"]), _num(w["goodput_per_s"]),
                 _num(w["upstream_attempts"]), _num(w["amplification"]),
                 _num(w["latency_ms"]["p99"])]
                for wname, win in s["windows"].items()
                for name, w in win.items() if isinstance(w, dict)]
        body.append("<h2>Windows</h2>" + _table(
            ["window", "workload", "jobs", "success rate", "goodput/s", "upstream attempts",
             "amplification", "p99 ms"], rows))
    line = outage_cost_line(s)
    body.append("<h2>What it cost (USD)</h2>" + _table(
        ["workload", *COST_KEYS, "total"],
        [[n, *(_num(w.get("costs_usd", {}).get(k)) for k in COST_KEYS), _num(w["cost_usd"])]
         for n, w in wl.items()]) + (f"<p>{_e(line)}</p>" if line else ""))
    if s.get("domains"):
        body.append("<h2>The dam's traffic per domain</h2>" + _table(
            ["domain", "permits", "attempts", "max attempts/s", "max backlog", "breaker opens",
             "re-opens", "not closed (s)", "probes"],
            [[d, _num(v["permits"]), _num(v["attempts"]), _num(v["max_rate_1s"]),
              _num(v["backlog_max"]), _num(v.get("breaker_opens")),
              _num(v.get("breaker_reopens")), _num(v.get("open_seconds")),
              _num(v.get("probe_attempts"))] for d, v in s["domains"].items()]))
    if result.arrays:
        with tempfile.TemporaryDirectory() as tmp:
            imgs = []
            for f in plot(result, Path(tmp)):
                data = base64.b64encode(f.read_bytes()).decode()
                imgs.append(f"<img alt='{_e(f.stem)}' src='data:image/png;base64,{data}'>")
        body.append("<h2>Over time</h2>" + "".join(imgs))
    prov = s.get("provenance") or {}
    if prov:
        body.append("<h2>How this run was made</h2>" + _table(
            ["field", "value"],
            [[k, " ".join(v) if isinstance(v, list) else v] for k, v in prov.items()]))
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>apidam: {_e(s['scenario'])}</title><style>{_CSS}</style></head><body>"
            + "".join(body) + "</body></html>\n")


def _scenario_as_run(folder: Path, summary: dict) -> Scenario | None:
    """The run's scenario file with the overrides it ran with (None if it cannot be loaded,
    e.g. a run made before scenarios were copied, or by another version's schema)."""
    path = folder / "scenario.toml"
    if not path.is_file():
        return None
    prov = summary.get("provenance") or {}
    overrides = list(prov.get("overrides") or [])
    if prov.get("seed_source") == "--seed":
        overrides.append(f"seed={prov.get('seed')}")
    try:
        return load_scenario(path, overrides)
    except ScenarioError:
        return None


def write_report(folder: Path, out: Path | None = None) -> Path:
    result = RunResult.load(folder)
    out = out or folder / "report.html"
    out.write_text(render_report(result, _scenario_as_run(folder, result.summary)),
                   encoding="utf-8")
    return out
