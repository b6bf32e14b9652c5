"""apidam's simulator: the world around the engine's rules (kernel, actors, runtimes, CLI)."""

__all__: list[str] = []
