"""Race vs region fallback vs hedge vs a single region, on a heavy-tailed world.

    python benchmarks/policies.py

World: one API reached from three dam regions, per-region lognormal latency plus a rare slow
mode (2 % of answers 20x slower). Four conditions: all regions up / the dam's iad region down,
each with an upstream that ignores or honours Idempotency-Key. Policies (one workload each, same
arrivals): single region; sequential region *fallback* (a hedge whose next region starts only
when the previous branch has failed for good); hedge at 50 / 150 / 400 ms; race over three
regions. Figures: p50 / p99 / p99.9 latency, extra upstream attempts, duplicate executions,
dollars. Writes results/policies.json and results/policies_cdf.png.
"""

from __future__ import annotations

import numpy as np
from common import table, write_json

from sim.runtime.local import run_local
from sim.scenario import load_scenario

POLICIES = {
    "single-region": {"regions": ["iad"]},
    "fallback": {"regions": ["iad", "ord", "lax"], "execution_mode": "hedge",
                 "hedge_delay_ms": 3_600_000},
    "hedge-50ms": {"regions": ["iad", "ord", "lax"], "execution_mode": "hedge",
                   "hedge_delay_ms": 50},
    "hedge-150ms": {"regions": ["iad", "ord", "lax"], "execution_mode": "hedge",
                    "hedge_delay_ms": 150},
    "hedge-400ms": {"regions": ["iad", "ord", "lax"], "execution_mode": "hedge",
                    "hedge_delay_ms": 400},
    "race-3": {"regions": ["iad", "ord", "lax"], "execution_mode": "race"},
}


def world(idempotency: bool, iad_down: bool) -> dict:
    slow = {"slow_fraction": 0.02, "slow_factor": 20.0}
    dam = {"regions": ["iad", "ord", "lax"], "tier": "growth"}
    if iad_down:
        dam["outages"] = [{"region": "iad", "start": "0s", "end": "1h"}]
    return {
        "name": "policies", "seed": 21, "duration": "2m", "drain": "2m",
        "network": {"regions": {"iad-ord": "10ms", "ord-lax": "22ms", "iad-lax": "30ms"}},
        "dam": dam,
        "upstreams": [{"name": "api", "url": "https://api.example", "servers": 2000,
                       "service": "10ms", "idempotency": idempotency,
                       "advertise": {"rps": 5000.0, "max_concurrent": 2000},
                       "latency": {"median": "80ms", "p99": "500ms", **slow},
                       "region_latency": {
                           "ord": {"median": "95ms", "p99": "600ms", **slow},
                           "lax": {"median": "120ms", "p99": "800ms", **slow}}}],
        "receivers": [{"name": "app", "url": "https://app.example"}],
        "workloads": [{"name": name, "upstream": "api", "strategy": "performance",
                       "arrivals": {"rate": 40.0}, "step": {**step,
                                                            "webhooks": [
                                                                {"url": "https://app.example/h"}]}}
                      for name, step in POLICIES.items()],
    }


def main() -> None:
    results = {}
    rows = []
    curves = {}
    for iad_down in (False, True):
        for idem in (False, True):
            cond = f"{'iad down' if iad_down else 'all up'}, " \
                   f"{'Idempotency-Key honoured' if idem else 'no Idempotency-Key'}"
            r = run_local(load_scenario(world(idem, iad_down)))
            results[cond] = {}
            for name, w in r.summary["workloads"].items():
                lat = r.arrays[f"latency_ms/{name}"]
                p = np.percentile(lat, [50, 99, 99.9]) if lat.size else [float("nan")] * 3
                extra = (w["amplification"] - 1) * 100 if w["amplification"] else 0.0
                results[cond][name] = {"p50_ms": p[0], "p99_ms": p[1], "p999_ms": p[2],
                                       "extra_attempts_pct": extra,
                                       "duplicate_executions": w["duplicate_executions"],
                                       "failed": w["failed"], "cost_usd": w["cost_usd"]}
                rows.append([cond, name, f"{p[0]:.0f}", f"{p[1]:.0f}", f"{p[2]:.0f}",
                             f"{extra:.0f}%", w["duplicate_executions"], w["failed"],
                             f"{w['cost_usd']:.3f}"])
                if not iad_down and not idem:
                    curves[name] = np.sort(lat)
    print(table(["condition", "policy", "p50 ms", "p99 ms", "p99.9 ms", "extra attempts",
                 "dup. executions", "failed", "$"], rows))
    write_json("policies", results)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for name, x in curves.items():
        ax.plot(x, np.arange(1, x.size + 1) / x.size, label=name)
    ax.set_xscale("log")
    ax.set(title="Latency CDF by routing policy (all regions up)", xlabel="latency (ms)",
           ylabel="fraction of jobs")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(write_json("policies", results).parent / "policies_cdf.png", dpi=110)


if __name__ == "__main__":
    main()
