"""Time units. Every time in the engine and the simulator is an ``int`` of microseconds."""

__all__ = ["US_PER_MS", "US_PER_S"]

US_PER_S = 1_000_000
US_PER_MS = 1_000
