"""Outbound HTTP for the live dam: upstream attempts and webhook deliveries (aiohttp).

One :class:`aiohttp.ClientSession` with a per-host connection limit and the
:class:`~live.targets.SafeResolver`. Redirects are not followed (the job's answer is the
upstream's answer). Bodies are read up to ``MAX_BODY_BYTES`` (1 MiB, the job body's own limit);
a longer answer fails the attempt with ``error="response_too_large"`` rather than being cut.
Error names reported to the engine: ``timeout``, ``connect``, ``reset``, ``forbidden_target``,
``response_too_large``.
"""

from __future__ import annotations

import time

import aiohttp
import msgspec

from engine.spec import MAX_BODY_BYTES, MAX_HEADER_VALUE, MAX_HEADERS

from .targets import ForbiddenTarget, SafeResolver

__all__ = ["HttpAnswer", "Outbound"]


class HttpAnswer(msgspec.Struct, frozen=True, gc=False):
    status: int | None
    headers: dict[str, str] | None
    body: str
    body_size: int
    latency_us: int
    error: str | None


def _forbidden(e: BaseException) -> bool:
    seen = 0
    while e is not None and seen < 8:
        if isinstance(e, ForbiddenTarget):
            return True
        e = getattr(e, "os_error", None) or e.__cause__ or e.__context__
        seen += 1
    return False


class Outbound:
    def __init__(self, *, allow_private: bool, limit: int = 1000, limit_per_host: int = 100,
                 user_agent: str = "apidam") -> None:
        self._allow_private = allow_private
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._user_agent = user_agent
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit_per_host,
                                         resolver=SafeResolver(allow_private=self._allow_private))
        self.session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                             headers={"User-Agent": self._user_agent})

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def request(self, method: str, url: str, headers: dict[str, str],
                      body: bytes | str | None, timeout_s: float) -> HttpAnswer:
        t0 = time.perf_counter_ns()
        status: int | None = None
        out_headers: dict[str, str] | None = None
        text, size, error = "", 0, None
        try:
            async with self.session.request(
                    method, url, headers=headers, data=body, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                raw = await _read_capped(resp)
                if raw is None:
                    error = "response_too_large"
                else:
                    status = resp.status
                    size = len(raw)
                    text = raw.decode(resp.charset or "utf-8", errors="replace")
                    out_headers = _headers(resp)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            error = "timeout"
        except aiohttp.ClientConnectorError as e:
            error = "forbidden_target" if _forbidden(e) else "connect"
        except (aiohttp.ClientError, OSError) as e:
            error = "forbidden_target" if _forbidden(e) else "reset"
        except (LookupError, ValueError):  # unknown charset, bad URL the parser let through
            error = "reset"
        latency = (time.perf_counter_ns() - t0) // 1000
        return HttpAnswer(status, out_headers, text, size, latency, error)


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes | None:
    chunks, total = [], 0
    async for chunk in resp.content.iter_chunked(65536):
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _headers(resp: aiohttp.ClientResponse) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in resp.headers.items():
        k = k.lower()
        if k in out:
            out[k] = f"{out[k]}, {v}"[:MAX_HEADER_VALUE]
        elif len(out) < MAX_HEADERS:
            out[k] = v[:MAX_HEADER_VALUE]
    return out
