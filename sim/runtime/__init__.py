"""Runtimes: ``local`` (one process, the default) and ``ray``."""

__all__: list[str] = []
