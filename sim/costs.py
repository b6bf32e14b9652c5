"""What a run cost each workload, in dollars, broken down.

==================  ====================================================================
``compute``         DIY / FRUGAL local execution: invocations + GB-seconds of busy time
``egress``          bytes sent by the client (payloads of every attempt it made)
``queue``           DIY retries parked in a queue (one request each)
``dam``             the dam's price: tier base price / included requests, per accepted job
``upstream``        what the API bills: ``usd_per_attempt`` per successful attempt (per
                    attempt with ``bill_errors``), FRUGAL local attempts included
``lost_revenue``    ``value_per_job_usd`` per job that failed or was still pending at the end
``refunds``         ``refund_usd_per_duplicate`` per duplicate execution
``total``           the sum
==================  ====================================================================

The first four are infrastructure; the last three are what an outage costs the business, and
usually dominate (a failed charge is lost revenue; a double charge is refunded, fees kept).
"""

from __future__ import annotations

from engine.billing import TIERS, DiyCostModel

from .scenario import Scenario

__all__ = ["COST_KEYS", "cost_model", "workload_costs"]

COST_KEYS = ("compute", "egress", "queue", "dam", "upstream", "lost_revenue", "refunds")


def cost_model(sc: Scenario) -> DiyCostModel:
    c = sc.costs
    return DiyCostModel(egress_usd_per_gb=c.egress_usd_per_gb,
                        invocation_usd_per_million=c.invocation_usd_per_million,
                        gb_second_usd=c.gb_second_usd, memory_gb=c.memory_gb,
                        queue_usd_per_million=c.queue_usd_per_million)


def workload_costs(sc: Scenario, i: int, *, local_invocations: int, egress_bytes: int,
                   busy_seconds: float, queue_requests: int, dam_jobs_charged: int,
                   attempts: int, successful_attempts: int, lost_jobs: int,
                   duplicates: int) -> dict[str, float]:
    """Workload ``i``'s dollars by :data:`COST_KEYS`, plus ``total`` (rounded to 1/10,000 $)."""
    w = sc.workloads[i]
    up = sc.upstream(w.upstream)
    tier = TIERS[sc.dam.tier]
    per_request = tier.base_usd / tier.included if tier.included else 0.0
    value = w.value_per_job_usd if w.value_per_job_usd is not None else sc.costs.value_per_job_usd
    out = cost_model(sc).breakdown(attempts=local_invocations, egress_bytes=egress_bytes,
                                   busy_seconds=busy_seconds, queue_requests=queue_requests)
    out["dam"] = dam_jobs_charged * per_request
    out["upstream"] = up.usd_per_attempt * (attempts if up.bill_errors else successful_attempts)
    out["lost_revenue"] = value * lost_jobs
    out["refunds"] = sc.costs.refund_usd_per_duplicate * duplicates
    out = {k: round(out[k], 4) for k in COST_KEYS}
    out["total"] = round(sum(out.values()), 4)
    return out
