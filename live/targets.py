"""Where the live dam may send requests: job and webhook targets are checked twice.

* At intake (:func:`check_target`): a URL whose host is an IP literal or a well-known metadata
  name is refused at once with the path of the field (``$.url``, ``$.webhooks[0].url``, ...).
* At connect time (:class:`SafeResolver`): every resolved address is checked before aiohttp
  connects to it, so a name that resolves (or re-resolves, DNS rebinding) to a forbidden address
  is refused too; the attempt fails with ``error="forbidden_target"``.

Address classes (:func:`address_class`):

``forbidden``  always refused: link-local (169.254/16 — the cloud metadata service at
               169.254.169.254 — and fe80::/10), the AWS IPv6 metadata address fd00:ec2::254,
               unspecified, multicast and reserved addresses.
``private``    refused unless ``--allow-private-targets``: loopback, RFC 1918 / RFC 4193
               private networks, carrier-grade NAT (100.64/10).
``public``     everything else.

IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Literal
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from engine.errors import SpecError
from engine.spec import JobSpec

__all__ = ["ForbiddenTarget", "SafeResolver", "address_class", "check_job_targets",
           "check_target"]

AddressClass = Literal["forbidden", "private", "public"]
_METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254")})
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog",
                             "instance-data", "instance-data.ec2.internal"})


class ForbiddenTarget(OSError):
    """A target resolved to an address the dam refuses to connect to."""


def address_class(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> AddressClass:
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA_ADDRESSES or ip.is_link_local or ip.is_multicast or ip.is_unspecified:
        return "forbidden"
    if ip.is_loopback:  # before is_reserved: ::1 lies in the reserved ::/8
        return "private"
    if ip.is_reserved:
        return "forbidden"
    if ip.is_private or (ip.version == 4 and ip in _CGNAT):
        return "private"
    return "public"


def _refusal(ip, allow_private: bool) -> str | None:
    cls = address_class(ip)
    if cls == "forbidden":
        return f"{ip} is a link-local, metadata or reserved address (always refused)"
    if cls == "private" and not allow_private:
        return (f"{ip} is a loopback or private address (refused unless the server runs with "
                f"--allow-private-targets)")
    return None


def check_target(url: str, path: str, *, allow_private: bool) -> None:
    """Refuse a URL whose host is a forbidden IP literal or a metadata name (SpecError)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host in _METADATA_NAMES:
        raise SpecError(path, f"{host} is a cloud metadata host name (always refused)")
    if host == "localhost" or host.endswith(".localhost"):
        if not allow_private:
            raise SpecError(path, "localhost is a loopback target (refused unless the server "
                                  "runs with --allow-private-targets)")
        return
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return  # a name: checked again when it is resolved
    reason = _refusal(ip, allow_private)
    if reason:
        raise SpecError(path, reason)


def check_job_targets(spec: JobSpec, *, allow_private: bool, at: str = "$") -> None:
    """Every URL of a job: its own, its webhooks', and those of its fallback chain (children
    spawned by on_success/on_failure are checked when they are spawned)."""
    for i, s in enumerate((spec, *spec.fallback_chain())):
        p = at if i == 0 else f"{at}{'.fallback_job' * i}"
        check_target(s.url, f"{p}.url", allow_private=allow_private)
    for j, w in enumerate(spec.webhooks):
        check_target(w.url, f"{at}.webhooks[{j}].url", allow_private=allow_private)


class SafeResolver(AbstractResolver):
    """Resolves with aiohttp's threaded resolver, then drops every address the policy refuses;
    raises :class:`ForbiddenTarget` when none is left."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        infos = await self._inner.resolve(host, port, family)
        kept, reasons = [], []
        for info in infos:
            reason = _refusal(ipaddress.ip_address(info["host"]), self._allow_private)
            if reason is None:
                kept.append(info)
            else:
                reasons.append(reason)
        if not kept:
            raise ForbiddenTarget(f"{host}: " + "; ".join(reasons or ["no address"]))
        return kept

    async def close(self) -> None:
        await self._inner.close()
