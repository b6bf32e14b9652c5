"""DIY retry strategies vs the dam, on the shipped outage scenarios.

    python benchmarks/retry_storm.py

Each shipped storm scenario (stripe-5min-outage, payment-processor-15min, time-compressed so a
run takes seconds; and openai-429-storm, where the API's own rate limit answers 429 +
Retry-After) is run with its workloads replaced by one workload per strategy at the same rate:
DIY immediate N retries, exponential, full / equal / decorrelated jitter, a gRPC-style token
bucket, SRE adaptive throttling, the peers' policies (AWS SDK standard and adaptive modes,
Envoy's retry budget, a Resilience4j breaker, honouring Retry-After), PERFORMANCE and FRUGAL.
Every scenario runs twice: with the dam's failure feedback (breaker, slow start, adaptive pace:
the default) and without it (``dam.breaker.enabled=false``, ``dam.pacing.adaptive=false``);
the DIY rows come from the first run, the dam rows from both. Figures: peak upstream
attempts/s, amplification, success rate, time to drain after the outage, p99 latency, peak
client concurrency, egress, dollars. Writes results/retry_storm.json and one attempts/s plot
per scenario.
"""

from __future__ import annotations

import tomllib

import numpy as np
from common import RESULTS, ROOT, table, write_json

from sim.runtime.local import run_local
from sim.scenario import load_scenario, parse_duration

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
    # the peers, with their published defaults (docs/SCENARIOS.md names each source)
    "honour-retry-after": {"retries": 5, "backoff": {"kind": "full_jitter"},
                           "honor_retry_after": True},
    "aws-standard": {"retries": 2, "backoff": {"kind": "full_jitter", "base": "1s", "cap": "20s"},
                     "retry_quota": {}},
    "aws-adaptive": {"retries": 2, "backoff": {"kind": "full_jitter", "base": "1s", "cap": "20s"},
                     "retry_quota": {}, "rate_limiter": {}},
    "envoy-budget": {"retries": 5, "backoff": {"kind": "full_jitter", "base": "25ms",
                                               "cap": "250ms"},
                     "concurrent_retry_budget": {}},
    "resilience4j-breaker": {"retries": 2, "backoff": {"kind": "constant", "base": "500ms"},
                             "breaker": {}},
}
CASES = {
    # scenario: (outage start, outage end, duration, drain, upstream, req/s per strategy)
    "stripe-5min-outage": ("20s", "2m20s", "2m", "6m", "stripe", 60.0),
    "payment-processor-15min": ("20s", "3m20s", "3m", "6m", "psp", 60.0),
    # no outage window: 14 strategies x 6 req/s = 84 req/s against a 50 req/s limit for 2 min
    "openai-429-storm": (None, "2m", "2m", "10m", "openai", 6.0),
}
FEEDBACK_OFF = {"breaker": {"enabled": False}, "pacing": {"adaptive": False}}


def build(name: str, feedback: bool = True) -> dict:
    doc = tomllib.loads((ROOT / "scenarios" / f"{name}.toml").read_text())
    start, end, duration, drain, up, rate = CASES[name]
    doc.update(duration=duration, drain=drain)
    if not feedback:
        doc.setdefault("dam", {}).update(FEEDBACK_OFF)
    target = next(u for u in doc["upstreams"] if u["name"] == up)
    for o in target.get("outages", []):
        o.update(start=start, end=end)
    receiver = doc["receivers"][0]["url"].rstrip("/") + "/hooks"
    step = {"retry_policy": {"max_retries": 40, "max_reroutes": 2},
            "webhooks": [{"url": receiver}]}
    wl = [{"name": n, "upstream": up, "payload_bytes": 4096, "strategy": "diy",
           "arrivals": {"rate": rate}, "diy": {**DIY, **cfg}} for n, cfg in STRATEGIES.items()]
    wl.append({"name": "dam-performance", "upstream": up, "payload_bytes": 4096,
               "strategy": "performance", "arrivals": {"rate": rate}, "step": step})
    wl.append({"name": "dam-frugal", "upstream": up, "payload_bytes": 4096, "strategy": "frugal",
               "arrivals": {"rate": rate}, "frugal": {"local_timeout": "10s"}, "step": step})
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
        start, end, *_, rate = CASES[name]
        r = run_local(load_scenario(build(name)))
        off = run_local(load_scenario(build(name, feedback=False)))
        end_s = parse_duration(end) // 1_000_000
        rows = []
        out[name] = {}
        runs = [(r, "", lambda _n: True),
                (off, " (no feedback)", lambda n: n.startswith("dam-"))]
        for run, suffix, keep in runs:
            series = run.arrays["attempts_per_s"]
            for i, (wname, w) in enumerate(run.summary["workloads"].items()):
                if not keep(wname):
                    continue
                done = w["succeeded"] + w["failed"]
                entry = {"peak_attempts_per_s": w["peak_attempts_per_s"],
                         "amplification": w["amplification"],
                         "success_rate": w["succeeded"] / done if done else None,
                         "drain_s": drain_time(series[i], end_s, rate),
                         "p99_s": (w["latency_ms"]["p99"] or 0) / 1000,
                         "peak_concurrency": w["peak_concurrency"],
                         "egress_bytes": w["egress_bytes"], "cost_usd": w["cost_usd"],
                         "pending": w["pending"]}
                out[name][wname + suffix] = entry
                rows.append([wname + suffix, entry["peak_attempts_per_s"],
                             f"{w['amplification']:.2f}", f"{entry['success_rate']:.3f}",
                             f"{entry['drain_s']:.0f}", f"{entry['p99_s']:.1f}",
                             f"{w['pending']:,}", entry["peak_concurrency"],
                             f"{w['egress_bytes'] / 1e6:.1f}", f"{w['cost_usd']:.3f}"])
        window = f"outage {start}-{end}" if start else f"load for {end}"
        print(f"\n#### {name} ({window}, {rate:.0f} req/s per strategy)\n")
        print(table(["strategy", "peak attempts/s", "amplification", "success", "drain s",
                     "p99 s", "pending", "peak concurrency", "egress MB", "$"], rows))
        series = r.arrays["attempts_per_s"]
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(11, 5))
        horizon = int(r.summary["sim_seconds"]) + 1
        for i, wname in enumerate(r.summary["workloads"]):
            ax.plot(series[i][:horizon], label=wname, lw=1)
        if start:
            ax.axvspan(parse_duration(start) / 1e6, end_s, color="tab:red", alpha=0.08)
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
