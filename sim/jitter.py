"""Link jitter: an extra delay drawn per message on the internet links (dam regions and clients
to upstreams, dispatchers to receivers, and the answers back).

The link's fixed latency stays its floor (a draw is >= 0), so the Ray runtime's lookahead, which
is built from the floors, still holds, and every runtime gives the same trace. Off by default.
Without jitter, retries that back off by the same formula stay perfectly synchronised, which
is a property of the model, not of the world: real networks add variable delay (Brooker,
"Exponential Backoff And Jitter", AWS Architecture Blog, 2015).

Draws come from the actor's own child stream (spawned from its generator's seed sequence), so
turning jitter on does not shift any other random draw of the run.
"""

from __future__ import annotations

import numpy as np

from .draws import BLOCK, BlockDraws

__all__ = ["LinkJitter", "link_jitter"]


class LinkJitter(BlockDraws):
    """``exponential``: mean ``scale_us``; ``uniform``: between 0 and ``scale_us``."""

    __slots__ = ("kind", "rng", "scale_us")

    def __init__(self, kind: str, scale_us: int, rng: np.random.Generator) -> None:
        super().__init__(self._block)
        self.kind = kind
        self.scale_us = scale_us
        self.rng = rng

    def _block(self) -> np.ndarray:
        if self.kind == "exponential":
            return self.rng.exponential(self.scale_us, BLOCK)
        return self.rng.uniform(0.0, self.scale_us, BLOCK)


def link_jitter(spec: tuple[str, int], rng: np.random.Generator) -> LinkJitter | None:
    """The jitter of one actor's internet links (``spec``: the topology's ``(kind, scale
    µs)``), or None when the scenario has none."""
    kind, scale_us = spec
    if kind == "none" or scale_us <= 0:
        return None
    seed_seq = rng.bit_generator.seed_seq
    assert isinstance(seed_seq, np.random.SeedSequence)  # what spawn_rngs gives every actor
    child = np.random.default_rng(seed_seq.spawn(1)[0])
    return LinkJitter(kind, scale_us, child)
