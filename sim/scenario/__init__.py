"""Scenarios: the TOML schema (``schema``), loading with overrides and checks (``load``), and
the resolved µs records the simulator runs on (``resolved``).

Every problem raises :class:`ScenarioError` with the exact path and what was expected.
"""

from .load import apply_override, load_scenario, max_link_us
from .resolved import ResolvedScenario, resolve
from .schema import (
    Latency,
    Outage,
    Receiver,
    Scenario,
    ScenarioError,
    Upstream,
    Workload,
    format_duration,
    parse_duration,
)

__all__ = ["Latency", "Outage", "Receiver", "ResolvedScenario", "Scenario", "ScenarioError",
           "Upstream", "Workload", "apply_override", "format_duration", "load_scenario",
           "max_link_us", "parse_duration", "resolve"]
