"""Runtimes: ``local`` (one process, the default), ``groups`` (the Ray runtime's conservative
protocol in one process: for tests and for measuring the protocol) and ``ray``."""

__all__: list[str] = []
