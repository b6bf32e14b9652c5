"""Shortened versions of the shipped scenarios (fast enough for the test suite)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "scenarios"

SHORT = {
    "stripe-5min-outage": ['duration="40s"', 'drain="60s"',
                           'upstreams.stripe.outages.0.start="10s"',
                           'upstreams.stripe.outages.0.end="30s"',
                           "workloads.diy-immediate.arrivals.rate=100",
                           "workloads.diy-backoff.arrivals.rate=100",
                           "workloads.dam-performance.arrivals.rate=100",
                           "workloads.dam-frugal.arrivals.rate=100"],
    "payment-processor-15min": ['duration="60s"', 'drain="2m"',
                                'upstreams.psp.outages.0.start="10s"',
                                'upstreams.psp.outages.0.end="40s"',
                                'upstreams.psp.outages.1.start="10s"',
                                'upstreams.psp.outages.1.end="40s"'],
    "openai-429-storm": ['duration="30s"', 'drain="2m"'],
    "region-down": ['duration="40s"', 'drain="30s"', 'dam.outages.0.start="10s"',
                    'dam.outages.0.end="25s"'],
    "webhook-receiver-flapping": ['duration="30s"', 'drain="3m"',
                                  "workloads.orders.arrivals.rate=20"],
    "race-vs-fallback": ['duration="20s"', 'drain="20s"'],
    "metastable-retries": ['duration="2m"', 'drain="10s"',
                           'windows.2.end="2m"'],
    "occ-contention": ['drain="20s"'],
}


def path(name: str) -> Path:
    return ROOT / f"{name}.toml"
