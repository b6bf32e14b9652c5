"""PNG plots of a RunResult (matplotlib, Agg): readable at a glance.

Series over time are drawn twice: the raw 1 s values faint, a 5 s rolling mean on top (retry
waves stay visible, per-second noise does not hide them). Legends sit outside the data. When
workloads of both families (DIY clients, the dam) share a scenario and there are more than
three, each family gets its own panel on a shared time axis. Outage windows are shaded.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .result import RunResult

__all__ = ["PLOTS", "heatmap", "plot", "rolling_mean"]

PLOTS = ("attempts_per_s.png", "goodput.png", "latency_cdf.png", "backlog.png", "pace.png")
SMOOTH_S = 5


def rolling_mean(row: np.ndarray, k: int = SMOOTH_S) -> np.ndarray:
    """The trailing mean over ``k`` seconds (fewer at the start)."""
    c = np.cumsum(np.asarray(row, dtype=np.float64))
    out = c.copy()
    out[k:] = c[k:] - c[:-k]
    return out / np.minimum(np.arange(1, row.size + 1), k)


def _shade(ax, outages: list[dict]) -> None:
    for i, o in enumerate(outages):
        ax.axvspan(o["start_s"], o["end_s"], color="tab:red", alpha=0.08,
                   label="outage" if i == 0 else None)


def _families(s: dict) -> list[tuple[str, list[int]]]:
    names = list(s["workloads"])
    diy = [i for i, n in enumerate(names) if s["workloads"][n]["strategy"] == "diy"]
    dam = [i for i, n in enumerate(names) if s["workloads"][n]["strategy"] != "diy"]
    if len(names) > 3 and diy and dam:
        return [("DIY clients", diy), ("through the dam", dam)]
    return [("", list(range(len(names))))]


def plot(result: RunResult, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result.summary
    names = list(s["workloads"])
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    horizon = int(np.ceil(s["sim_seconds"])) + 1
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def save(fig, name: str) -> None:
        files.append(out / name)
        fig.savefig(files[-1], dpi=110, bbox_inches="tight")
        plt.close(fig)

    def legend(ax) -> None:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)

    def over_time(rows: np.ndarray, title: str, ylabel: str, name: str) -> None:
        fams = _families(s)
        fig, axes = plt.subplots(len(fams), 1, figsize=(11, 3.2 * len(fams) + 0.8),
                                 sharex=True, squeeze=False)
        for ax, (family, idx) in zip(axes[:, 0], fams, strict=True):
            for i in idx:
                row = rows[i, :horizon]
                x = np.arange(row.size)
                c = colors[i % len(colors)]
                ax.plot(x, row, color=c, lw=0.6, alpha=0.25)
                ax.plot(x, rolling_mean(row), color=c, lw=1.6, label=names[i])
            _shade(ax, s["outages"])
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if family:
                ax.set_title(family, fontsize=9, loc="left")
            legend(ax)
        fig.suptitle(f"{s['scenario']}: {title} (faint: per second; line: {SMOOTH_S} s mean)",
                     fontsize=11)
        axes[-1, 0].set_xlabel("time (s)")
        save(fig, name)

    over_time(result.arrays["attempts_per_s"], "upstream attempts per second",
              "attempts / s", "attempts_per_s.png")
    goodput = result.arrays.get("goodput_per_s")
    if goodput is not None:
        over_time(goodput, "goodput: jobs succeeded per second", "jobs / s", "goodput.png")

    fig, ax = plt.subplots(figsize=(10, 5))
    for i, name in enumerate(names):
        lat = result.arrays.get(f"latency_ms/{name}")
        if lat is None or lat.size == 0:
            continue
        w = s["workloads"][name]
        ok = w["succeeded"] / max(1, w["succeeded"] + w["failed"])
        x = np.sort(lat)
        ax.plot(np.maximum(x, 1e-3), np.arange(1, x.size + 1) / x.size,
                color=colors[i % len(colors)], label=f"{name} ({ok:.0%} succeeded)")
    ax.set_xscale("log")
    ax.set(title=f"{s['scenario']}: latency from arrival to result, success or failure (CDF)",
           xlabel="latency (ms, log scale)", ylabel="fraction of finished jobs")
    ax.grid(alpha=0.3, which="both")
    legend(ax)
    save(fig, "latency_cdf.png")

    domains = list(s["domains"])
    for key, title, ylabel, name, step in (
            ("backlog_max_by_domain", "jobs waiting for a permit, per domain (max per second)",
             "jobs waiting", "backlog.png", False),
            ("pace_by_domain", "the dam's pace per domain (0 while its breaker is open)",
             "requests / s (symlog)", "pace.png", True)):
        rows = result.arrays.get(key)
        if rows is None or not domains:
            continue
        fig, ax = plt.subplots(figsize=(11, 4.2))
        for d, label in enumerate(domains):
            row = rows[d, :horizon]
            if step:
                ax.step(np.arange(row.size), row, where="post", label=label, lw=1.2)
            else:
                ax.plot(np.arange(row.size), row, label=label, lw=1.2)
        _shade(ax, s["outages"])
        if step:
            ax.set_yscale("symlog", linthresh=1.0)
        ax.set(title=f"{s['scenario']}: {title}", xlabel="time (s)", ylabel=ylabel)
        ax.grid(alpha=0.3)
        legend(ax)
        save(fig, name)
    return files


def heatmap(result: dict, entries: list[dict], metric: str, workload: str,
            out: Path) -> list[Path]:
    """A phase map of a two-key sweep: ``metric`` of ``workload`` (mean over seeds) per grid
    point, the first key down, the second across; each cell labelled with its value. Writes
    ``heatmap.png`` and the same grid as ``heatmap.csv``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (ky, ys), (kx, xs) = list(result["grid"].items())
    cells = {(e[ky], e[kx]): e.get(metric) for e in entries if e["workload"] == workload}
    z = np.array([[np.nan if cells.get((y, x)) is None else cells[(y, x)] for x in xs]
                  for y in ys], dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 * len(xs) + 3.5, 0.8 * len(ys) + 2.2))
    im = ax.imshow(z, cmap="viridis", aspect="auto", origin="lower")
    ax.set_xticks(range(len(xs)), xs)
    ax.set_yticks(range(len(ys)), ys)
    ax.set(xlabel=kx, ylabel=ky,
           title=f"{result['scenario']}: {workload} {metric}\n(mean of {result['seeds']} "
                 f"seed{'s' if result['seeds'] > 1 else ''} per cell)")
    for (i, j), v in np.ndenumerate(z):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=8,
                    color="white" if v < np.nanmean(z) else "black")
    fig.colorbar(im, ax=ax, label=metric)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "heatmap.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    csv_path = out / "heatmap.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f"{ky} \\ {kx}", *xs])
        for y, row in zip(ys, z, strict=True):
            w.writerow([y, *("" if np.isnan(v) else f"{v:.6g}" for v in row)])
    return [path, csv_path]
