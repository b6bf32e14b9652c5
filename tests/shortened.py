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
    "metastable-retries": ['duration="80s"', 'drain="5s"',
                           'upstreams.0.outages.0.start="20s"', 'upstreams.0.outages.0.end="30s"',
                           'upstreams.1.outages.0.start="20s"', 'upstreams.1.outages.0.end="30s"',
                           'upstreams.2.outages.0.start="20s"', 'upstreams.2.outages.0.end="30s"',
                           'windows.0.start="5s"', 'windows.0.end="20s"',
                           'windows.1.start="20s"', 'windows.1.end="30s"',
                           'windows.2.start="45s"', 'windows.2.end="80s"'],
    "occ-contention": ['drain="20s"'],
}


# The upstreams of the shipped scenarios before they moved to model = "latency" (capacity never
# bound in them): with these overrides a run reproduces, event for event, the legacy model.
LEGACY = {
    "stripe-5min-outage": ['upstreams.0.model="legacy"', "upstreams.0.servers=500",
                           'upstreams.0.service="40ms"', "upstreams.0.queue=5000",
                           'upstreams.1.model="legacy"', "upstreams.1.servers=50"],
    "payment-processor-15min": ['upstreams.0.model="legacy"', "upstreams.0.servers=200",
                                'upstreams.0.service="60ms"', "upstreams.0.queue=2000"],
    "openai-429-storm": ['upstreams.0.model="legacy"', "upstreams.0.servers=400",
                         'upstreams.0.service="800ms"', "upstreams.0.queue=1000",
                         'upstreams.1.model="legacy"', "upstreams.1.servers=100",
                         'upstreams.1.service="500ms"'],
    "region-down": ['upstreams.0.model="legacy"', "upstreams.0.servers=300"],
    "webhook-receiver-flapping": ['upstreams.0.model="legacy"'],
    "race-vs-fallback": ['upstreams.0.model="legacy"', "upstreams.0.servers=1000",
                         'upstreams.0.service="10ms"'],
}


def path(name: str) -> Path:
    return ROOT / f"{name}.toml"
