"""apidam live: the reference engine behind the API the official EZThrottle SDK speaks.

``apidam serve`` (:mod:`live.cli`) runs :class:`~live.dam.LiveDam` — the engine's job machines
and domain limiters in wall-clock time with real HTTP — behind an aiohttp server
(:mod:`live.server`), journaling every engine input in SQLite (:mod:`live.journal`) so a restart
resumes every unfinished job (:mod:`live.recovery`). Needs the ``serve`` extra (aiohttp).
"""

__all__: list[str] = []
