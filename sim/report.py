"""Terminal tables (rich) of a RunResult and of a sweep (plots: ``sim.plots``)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from .costs import COST_KEYS
from .result import RunResult

__all__ = ["outage_cost_line", "print_compare", "print_summary", "print_sweep"]


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:.1f}s" if v >= 1000 else f"{v:.0f}ms"


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000:
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}PB"


def _n(v: int) -> str:
    """A count in at most 7 characters: 75,263 / 412k / 5.9M."""
    if v < 100_000:
        return f"{v:,}"
    if v < 10_000_000:
        return f"{v / 1000:,.0f}k"
    return f"{v / 1e6:,.1f}M"


def _usd(v: float) -> str:
    if v == 0:
        return "$0"
    if abs(v) < 10:
        return f"${v:.2f}"
    if abs(v) < 100_000:
        return f"${v:,.0f}"
    return f"${v / 1000:,.0f}k"


def _table(title: str, cols: list[str], rows: list[list[str]],
           left: tuple[str, ...] = ("workload",)) -> Table:
    """Right-aligned numbers that are never cut; only the first (name) column may shrink."""
    t = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, show_edge=False,
              collapse_padding=True, pad_edge=False, title_justify="left")
    for i, col in enumerate(cols):
        width = max([len(col), *(len(r[i]) for r in rows)])
        t.add_column(col, justify="left" if col in left else "right", no_wrap=True,
                     overflow="ellipsis", min_width=min(width, 12) if i == 0 else width)
    for r in rows:
        t.add_row(*r)
    return t


def print_summary(result: RunResult, console: Console | None = None, *,
                  wide: bool = False) -> None:
    """The run's tables: by default the key figures in 100 columns; ``wide``: every column,
    and the cost breakdown."""
    console = console or Console()
    s = result.summary
    console.print(f"[bold]{s['scenario']}[/bold]  seed {s['seed']}  {s['backend']}  "
                  f"simulated {s['sim_seconds']:.0f}s in {s['wall_seconds']:.1f}s "
                  f"({s['events']:,} events)  trace {s['trace_hash'][:12]}")
    wl = s["workloads"]
    if wide:
        _wide_tables(s, console)
    else:
        rows = []
        for name, w in wl.items():
            lat = w["latency_ms"]
            c = w.get("costs_usd", {})
            rows.append([name, _n(w["jobs"]), _n(w["succeeded"]), _n(w["failed"]),
                         _n(w["pending"]), _n(w["upstream_attempts"]),
                         f"{w['amplification']:.2f}" if w["amplification"] is not None else "-",
                         _ms(lat["p50"]), _ms(lat["p99"]), _usd(c.get("lost_revenue", 0.0)),
                         _usd(w["cost_usd"])])
        console.print(_table("Workloads", ["workload", "jobs", "ok", "failed", "pend.",
                                           "attempts", "ampl.", "p50", "p99", "lost $",
                                           "total $"], rows))
    rows = []
    for name, v in s["domains"].items():
        opens = v.get("breaker_opens", 0)
        reopens = v.get("breaker_reopens", 0)
        rows.append([name, _n(v["permits"]), _n(v["attempts"]), _n(v["max_rate_1s"]),
                     _n(v["backlog_max"]), f"{opens:,}" + (f"+{reopens:,}" if reopens else ""),
                     f"{v.get('open_seconds', 0.0):,.0f}s", _n(v.get("probe_attempts", 0))])
    console.print(_table("Domains (the dam's traffic)", ["domain", "permits", "attempts",
                                                         "max/s", "backlog", "opens", "open",
                                                         "probes"], rows, left=("domain",)))
    if s.get("windows"):
        rows = []
        for wname, win in s["windows"].items():
            for name, w in win.items():
                if not isinstance(w, dict):
                    continue
                rate = w["success_rate"]
                rows.append([wname, name, _n(w["jobs"]),
                             "-" if rate is None else f"{rate:.1%}",
                             "-" if w["goodput_per_s"] is None else f"{w['goodput_per_s']:,.1f}",
                             _n(w["upstream_attempts"]),
                             "-" if w["amplification"] is None else f"{w['amplification']:.2f}",
                             _ms(w["latency_ms"]["p99"])])
        console.print(_table("Windows", ["window", "workload", "jobs", "ok", "goodput/s",
                                         "attempts", "ampl.", "p99"], rows,
                             left=("window", "workload")))
    line = outage_cost_line(s)
    if line:
        console.print(line)
    if not wide:
        console.print("[dim]--wide: every column and the cost breakdown[/dim]")


def outage_cost_line(s: dict) -> str | None:
    """One line: what the run cost each workload, cheapest first."""
    wl = s["workloads"]
    if not wl:
        return None
    parts = []
    for name, w in sorted(wl.items(), key=lambda kv: kv[1]["cost_usd"]):
        lost = w.get("costs_usd", {}).get("lost_revenue", 0.0)
        parts.append(f"{name} {_usd(w['cost_usd'])}" + (f" ({_usd(lost)} lost revenue)"
                                                         if lost else ""))
    return "Cost of the run: " + ", ".join(parts)


def _wide_tables(s: dict, console: Console) -> None:
    rows = []
    for name, w in s["workloads"].items():
        lat = w["latency_ms"]
        hooks = w["webhooks"]
        dam = w["strategy"] != "diy"
        rows.append([name, w["strategy"], f"{w['jobs']:,}", f"{w['succeeded']:,}",
                  f"{w['failed']:,}", f"{w['pending']:,}", f"{w['deduped']:,}",
                  f"{w['upstream_attempts']:,}",
                  f"{w['amplification']:.2f}" if w["amplification"] is not None else "-",
                  f"{w['peak_attempts_per_s']:,}", f"{w['duplicate_executions']:,}",
                  _ms(lat["p50"]), _ms(lat["p99"]),
                  f"{hooks['delivered']:,}/{hooks['undelivered']:,}/{hooks.get('pending', 0):,}"
                  if dam else "-", f"{hooks['attempts']:,}" if dam else "-",
                  _bytes(w["egress_bytes"]), f"{w['cost_usd']:,.2f}"])
    console.print(_table("Workloads", ["workload", "strategy", "jobs", "ok", "failed",
                                       "pending", "deduped", "upstream attempts", "amplif.",
                                       "peak/s", "dup. exec.", "p50", "p99",
                                       "webhooks ok/undeliv./pend.", "hook attempts", "egress",
                                       "$"], rows, left=("workload", "strategy")))
    rows = []
    for name, w in s["workloads"].items():
        b = w.get("costs_usd", {})
        rows.append([name, *(f"{b.get(k, 0.0):,.2f}" for k in COST_KEYS),
                     f"{b.get('total', w['cost_usd']):,.2f}"])
    console.print(_table("Costs (USD)", ["workload", *COST_KEYS, "total"], rows))


def print_sweep(result: dict, entries: list[dict], console: Console) -> None:
    """A sweep's table: per grid point and workload, the mean ± 95 % interval over seeds."""
    keys = list(result["grid"])
    t = Table(title=f"{result['scenario']}: {result['runs']} runs "
                    f"({result['runs_per_minute']} runs/min), mean ± 95% interval over seeds",
              header_style="bold")
    for col in (*keys, "workload", "success", "amplification", "peak/s", "p99 ms"):
        t.add_column(col, justify="left" if col in (*keys, "workload") else "right")

    def fmt(e, m, digits):
        v, h = e[m], e[f"{m}_ci95"]
        if v is None:
            return "-"
        return f"{v:.{digits}f}" + (f" ± {h:.{digits}f}" if h is not None else "")

    for e in entries:
        t.add_row(*(str(e[k]) for k in keys), e["workload"], fmt(e, "success_rate", 3),
                  fmt(e, "amplification", 2), fmt(e, "peak_attempts_per_s", 0),
                  fmt(e, "p99_ms", 0))
    console.print(t)


def _fmt(v: float | None, metric: str) -> str:
    if v is None:
        return "-"
    if metric.endswith("_usd"):
        return _usd(v)
    if metric.endswith("_ms"):
        return _ms(v)
    if metric in ("success_rate", "amplification", "open_seconds") or not float(v).is_integer():
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
    return _n(int(v))


def _pct(p: float | None) -> str:
    return "-" if p is None else f"{p:+.1f}%"


def print_compare(cmp: dict, console: Console) -> None:
    """Per workload and domain: each run's figure, and its difference to the first run."""
    runs = cmp["runs"]
    for i, r in enumerate(runs):
        made = ", ".join(f"{k} {r[k]}" for k in ("scenario", "seed", "backend") if r.get(k))
        over = " ".join(r.get("overrides") or []) or "no overrides"
        console.print(f"[bold]{chr(65 + i) if i < 26 else i}[/bold] {r['label']}: {made}; "
                      f"{over}")
    if cmp["differs_in"]:
        console.print(f"[yellow]note:[/yellow] the runs differ in "
                      f"{', '.join(cmp['differs_in'])}")
    letters = [chr(65 + i) if i < 26 else str(i) for i in range(len(runs))]
    two = len(runs) == 2
    for kind, title in (("workloads", "workload"), ("domains", "domain")):
        for name, rows in cmp[kind].items():
            cols = ["metric", letters[0]]
            for x in letters[1:]:
                cols += [x, "Δ", "Δ%"] if two else [x, f"Δ% {x}"]
            body = []
            for metric, r in rows.items():
                row = [metric, _fmt(r["values"][0], metric)]
                for v, d, p in zip(r["values"][1:], r["delta"], r["delta_pct"], strict=True):
                    row += ([_fmt(v, metric), "-" if d is None else
                             ("+" if d > 0 else "") + _fmt(d, metric), _pct(p)] if two
                            else [_fmt(v, metric), _pct(p)])
                body.append(row)
            console.print(_table(f"{title} {name}", cols, body, left=("metric",)))
