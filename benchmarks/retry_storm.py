"""DIY retry strategies vs the dam, on the shipped outage scenarios.

    python benchmarks/retry_storm.py

Each shipped outage scenario (stripe-5min-outage, payment-processor-15min; time-compressed so a
run takes seconds) is run with its workloads replaced by one workload per strategy at the same
rate: DIY immediate N retries, exponential, full / equal / decorrelated jitter, a token-bucket
retry budget, SRE adaptive throttling, PERFORMANCE and FRUGAL. Figures: peak upstream
attempts/s, amplification, success rate, time to drain after the outage, peak client
concurrency, egress, dollars. Writes results/retry_storm.json and one attempts/s plot per
scenario.
"""

from __future__ import annotations

import tomllib

import numpy as np
from common import RESULTS, ROOT, table, write_json

from sim.runtime.local import run_local
from sim.scenario import load_scenario, parse_duration

RATE = 60.0
DIY = {"timeout": "10s", "concurrency": 1000}
STRATEGIES = {
    "diy-immediate-5": {"retries": 5, "backoff": {"kind": "none"}},
    "diy-exponential": {"retries": 5, "backoff": {"kind": "exponential"}},
    "diy-full-jitter": {"retries": 5, "backoff": {"kind": "full_jitter"}},
    "diy-equal-jitter": {"retries": 5, "backoff": {"kind": "equal_jitter"}},
    "diy-decorrelated": {"retries": 5, "backoff": {"kind": "decorrelated_jitter"}},
    "diy-budget": {"retries": 5, "backoff": {"kind": "full_jitter"},
                   "budget": {"max_tokens": 10.0, "token_ratio": 0.1}},
    "diy-adaptive": {"retries": 5, "backoff": {"kind": "full_jitter"},
                     "adaptive": {"k": 2.0, "window": "1m"}},
}
CASES = {
    # scenario: (outage start, outage end, duration, drain, upstream)
    "stripe-5min-outage": ("20s", "2m20s", "2m", "6m", "stripe"),
    "payment-processor-15min": ("20s", "3m20s", "3m", "6m", "psp"),
}


def build(name: str) -> dict:
    doc = tomllib.loads((ROOT / "scenarios" / f"{name}.toml").read_text())
    start, end, duration, drain, up = CASES[name]
    doc.update(duration=duration, drain=drain)
    target = next(u for u in doc["upstreams"] if u["name"] == up)
    for o in target.get("outages", []):
        o.update(start=start, end=end)
    receiver = doc["receivers"][0]["url"].rstrip("/") + "/hooks"
    step = {"retry_policy": {"max_retries": 40, "max_reroutes": 2},
            "webhooks": [{"url": receiver}]}
    wl = [{"name": n, "upstream": up, "payload_bytes": 4096, "strategy": "diy",
           "arrivals": {"rate": RATE}, "diy": {**DIY, **cfg}} for n, cfg in STRATEGIES.items()]
    wl.append({"name": "dam-performance", "upstream": up, "payload_bytes": 4096,
               "strategy": "performance", "arrivals": {"rate": RATE}, "step": step})
    wl.append({"name": "dam-frugal", "upstream": up, "payload_bytes": 4096, "strategy": "frugal",
               "arrivals": {"rate": RATE}, "frugal": {"local_timeout": "10s"}, "step": step})
    doc["workloads"] = wl
    return doc


def drain_time(series: np.ndarray, outage_end_s: int, offered: float) -> float:
    """Seconds after the outage until attempts/s stays within 1.2x the offered load."""
    tail = series[outage_end_s:]
    above = np.nonzero(tail > 1.2 * offered)[0]
    return float(above[-1] + 1) if above.size else 0.0


def main() -> None:
    out = {}
    for name in CASES:
        r = run_local(load_scenario(build(name)))
        end_s = parse_duration(CASES[name][1]) // 1_000_000
        series = r.arrays["attempts_per_s"]
        rows = []
        out[name] = {}
        for i, (wname, w) in enumerate(r.summary["workloads"].items()):
            done = w["succeeded"] + w["failed"]
            entry = {"peak_attempts_per_s": w["peak_attempts_per_s"],
                     "amplification": w["amplification"],
                     "success_rate": w["succeeded"] / done if done else None,
                     "drain_s": drain_time(series[i], end_s, RATE),
                     "peak_concurrency": w["peak_concurrency"],
                     "egress_bytes": w["egress_bytes"], "cost_usd": w["cost_usd"],
                     "pending": w["pending"]}
            out[name][wname] = entry
            rows.append([wname, entry["peak_attempts_per_s"], f"{w['amplification']:.2f}",
                         f"{entry['success_rate']:.3f}", f"{entry['drain_s']:.0f}",
                         entry["peak_concurrency"], f"{w['egress_bytes'] / 1e6:.1f}",
                         f"{w['cost_usd']:.3f}"])
        print(f"\n#### {name} (outage {CASES[name][0]}-{CASES[name][1]}, {RATE:.0f} req/s per "
              f"strategy)\n")
        print(table(["strategy", "peak attempts/s", "amplification", "success", "drain s",
                     "peak concurrency", "egress MB", "$"], rows))
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(11, 5))
        horizon = int(r.summary["sim_seconds"]) + 1
        for i, wname in enumerate(r.summary["workloads"]):
            ax.plot(series[i][:horizon], label=wname, lw=1)
        ax.axvspan(parse_duration(CASES[name][0]) / 1e6, end_s, color="tab:red", alpha=0.08)
        ax.set(title=f"{name}: upstream attempts/s by strategy", xlabel="time (s)",
               ylabel="attempts/s")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        RESULTS.mkdir(exist_ok=True)
        fig.savefig(RESULTS / f"retry_storm_{name}.png", dpi=110)
        plt.close(fig)
    write_json("retry_storm", out)


if __name__ == "__main__":
    main()
