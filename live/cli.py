"""``apidam serve``: arguments, checks, and the server's life (start, signals, clean stop).

Exit codes: 0 after SIGTERM (a clean stop: what was in flight is journaled and resumes on the
next start), 130 after SIGINT (Ctrl-C, the same clean stop), 1 if the server could not run
(the port is taken), 2 for bad arguments, keys or data directory.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import signal
import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path

from engine.billing import TIERS
from engine.limiter import MAX_CONCURRENT, MAX_RPS, LimiterConfig
from engine.spec import REGION_NAME
from sim.gctune import tune_for_long_run

from .settings import DEFAULT_REGIONS, ApiKey, LiveSettings

__all__ = ["ApiKeyError", "add_serve_parser", "cmd_serve", "parse_api_keys"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
KEY_ENV = "APIDAM_API_KEYS"
_KEY = re.compile(r"^[A-Za-z0-9._~+/-]{8,256}=*$")  # RFC 6750 token68, at least 8 characters
_CUSTOMER = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class ApiKeyError(ValueError):
    """A malformed API key entry (the message names where it came from)."""


def _err(msg: str) -> None:
    print(f"apidam serve: {msg}", file=sys.stderr, flush=True)


def parse_api_keys(entries: Iterable[tuple[str, str]]) -> dict[str, ApiKey]:
    """``(where, "KEY=CUSTOMER[:TIER]")`` pairs → key → ApiKey; ApiKeyError naming ``where``."""
    keys: dict[str, ApiKey] = {}
    tiers: dict[str, str] = {}
    for where, entry in entries:
        key, sep, rest = entry.strip().rpartition("=")
        if not sep or not key:
            raise ApiKeyError(f"{where}: expected KEY=CUSTOMER[:TIER], got {_redact(entry)!r}")
        if not _KEY.match(key):
            raise ApiKeyError(f"{where}: the key must be 8-256 characters of A-Z a-z 0-9 . _ ~ + "
                            f"/ - (a bearer token)")
        customer, _, tier = rest.partition(":")
        tier = tier or "free"
        if not _CUSTOMER.match(customer):
            raise ApiKeyError(f"{where}: customer {customer!r} must be 1-128 characters of "
                            f"A-Z a-z 0-9 _ . -")
        if tier not in TIERS:
            raise ApiKeyError(f"{where}: tier {tier!r} is not one of {', '.join(TIERS)}")
        if key in keys and keys[key].customer_id != customer:
            raise ApiKeyError(f"{where}: this key is already given to customer "
                            f"{keys[key].customer_id!r}")
        if tiers.setdefault(customer, tier) != tier:
            raise ApiKeyError(f"{where}: customer {customer!r} already has tier "
                            f"{tiers[customer]!r}")
        keys[key] = ApiKey(customer, tier)
    return keys


def _redact(entry: str) -> str:
    return entry if len(entry) < 6 else entry[:3] + "…"


def _key_entries(args: argparse.Namespace) -> list[tuple[str, str]]:
    out = [(f"--api-key #{i + 1}", e) for i, e in enumerate(args.api_key or [])]
    if args.api_keys_file:
        p = Path(args.api_keys_file)
        try:
            if p.stat().st_size > 1 << 20:
                raise ApiKeyError(f"--api-keys-file {p}: larger than 1 MiB")
            lines = p.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ApiKeyError(f"--api-keys-file {p}: cannot read it ({e})") from None
        out += [(f"{p}:{n}", line) for n, line in enumerate(lines, 1)
                if line.strip() and not line.lstrip().startswith("#")]
    env = os.environ.get(KEY_ENV, "")
    out += [(f"${KEY_ENV} #{i + 1}", e) for i, e in enumerate(env.replace(",", " ").split())]
    return out


# -- argument types (argparse turns ArgumentTypeError into a usage error, exit 2) ---------------
def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer 0-65535, got {text!r}") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"expected an integer 0-65535, got {v}")
    return v


def _ranged(kind, lo, hi, *, lo_open: bool = False):
    """A number in [lo, hi] (or (lo, hi] with ``lo_open``), finite."""
    span = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'} in {span}, "
                f"got {text!r}") from None
        if not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
            raise argparse.ArgumentTypeError(f"expected a value in {span}, got {text}")
        return v
    return parse


def _regions(text: str) -> tuple[str, ...]:
    names = tuple(r.strip() for r in text.split(",") if r.strip())
    if not names or len(names) > 32:
        raise argparse.ArgumentTypeError("expected 1 to 32 comma-separated region names")
    bad = [r for r in names if not REGION_NAME.match(r)]
    if bad:
        raise argparse.ArgumentTypeError(f"region {bad[0]!r}: expected a lower-case name "
                                         f"(a-z, 0-9, -; at most 32 characters)")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError("region names must be unique")
    return names


def add_serve_parser(sub) -> None:
    p = sub.add_parser(
        "serve", help="run the dam live: the EZThrottle API over the engine",
        description="Serve the EZThrottle API (POST /api/v1/proxy as the official SDK calls it, "
                    "the /api/v1 endpoints directly, /health, /metrics) on the reference "
                    "engine, journaling to SQLite so a restart resumes every job.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8080,
                   help="port (default 8080; 0 picks a free one, printed at start)")
    p.add_argument("--data", default="apidam-data", metavar="DIR",
                   help="journal directory (default ./apidam-data)")
    p.add_argument("--api-key", action="append", metavar="KEY=CUSTOMER[:TIER]",
                   help="an API key and the customer it names (tier free, indie, growth or "
                        "pro; default free); repeatable")
    p.add_argument("--api-keys-file", metavar="FILE",
                   help="a file of KEY=CUSTOMER[:TIER] lines (# comments)")
    p.add_argument("--allow-private-targets", action="store_true",
                   help="let jobs and webhooks target loopback and private addresses "
                        "(link-local and metadata addresses stay refused)")
    p.add_argument("--regions", type=_regions, default=DEFAULT_REGIONS,
                   help=f"region labels (default {','.join(DEFAULT_REGIONS)})")
    default = LimiterConfig()
    p.add_argument("--rate", type=_ranged(float, 0, MAX_RPS, lo_open=True), default=default.rate,
                   help=f"each domain's pace until it advertises one, requests/s "
                        f"(default {default.rate:g})")
    p.add_argument("--max-concurrent", type=_ranged(int, 1, MAX_CONCURRENT),
                   default=default.max_concurrent,
                   help=f"each domain's concurrent attempts (default {default.max_concurrent})")
    p.add_argument("--connections-per-host", type=_ranged(int, 1, 10_000), default=100,
                   help="outbound connection limit per host (default 100)")
    p.add_argument("--max-active-jobs", type=_ranged(int, 1, 10_000_000),
                   default=LiveSettings().max_active_jobs,
                   help="unfinished jobs held at most; beyond it submits get 503 + Retry-After "
                        f"(default {LiveSettings().max_active_jobs:,})")
    p.add_argument("--sync", choices=("full", "normal"), default="full",
                   help="SQLite synchronous mode: full fsyncs every group commit (survives "
                        "power loss), normal survives a crash of the process only")
    p.add_argument("--seed", type=_ranged(int, 0, 2**63 - 1), default=0,
                   help="seed of the per-job random sources (backoff jitter); fixed when the "
                        "journal is created")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        _err("needs aiohttp: pip install 'apidam[serve]'")
        return EXIT_USAGE
    try:
        keys = parse_api_keys(_key_entries(args))
    except ApiKeyError as e:
        _err(str(e))
        return EXIT_USAGE
    if not keys:
        _err(f"no API keys: give --api-key KEY=CUSTOMER, --api-keys-file or ${KEY_ENV} "
             f"(every request would be refused)")
        return EXIT_USAGE
    data = Path(args.data)
    try:
        data.mkdir(parents=True, exist_ok=True)
        probe = data / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        _err(f"--data {data}: not a writable directory ({e.strerror or e})")
        return EXIT_USAGE
    settings = LiveSettings(
        regions=args.regions, allow_private_targets=args.allow_private_targets,
        limiter=LimiterConfig(rate=args.rate, max_concurrent=args.max_concurrent),
        connections_per_host=args.connections_per_host, seed=args.seed,
        max_active_jobs=args.max_active_jobs)
    return asyncio.run(_serve(settings, keys, args.host, args.port, data, args.sync))


async def _serve(settings: LiveSettings, keys: dict[str, ApiKey], host: str, port: int,
                 data: Path, sync: str) -> int:
    from aiohttp import web

    from .dam import LiveDam
    from .journal import Journal, JournalError
    from .server import build_app

    journal = Journal(data, sync=sync, retention_us=settings.retention_us, seed=settings.seed)
    dam = LiveDam(settings, journal, tiers={k.customer_id: k.tier for k in keys.values()},
                  log=_err)
    try:
        await dam.start()
    except (JournalError, sqlite3.DatabaseError) as e:
        _err(f"--data {data}: the journal cannot be read ({e})")
        await dam.outbound.close()
        return EXIT_USAGE
    tune_for_long_run()  # thousands of waiting jobs: default GC took the submit p99 to 77 ms
    runner = web.AppRunner(build_app(dam, keys), access_log=None, handle_signals=False,
                           shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    try:
        await site.start()
    except OSError as e:
        _err(f"cannot listen on {host}:{port} ({e.strerror or e})")
        await runner.cleanup()
        await dam.stop()
        return EXIT_FAILED
    if journal.seed != settings.seed:
        _err(f"--seed {settings.seed} ignored: this journal was started with seed {journal.seed} "
             f"(its jobs must replay with it)")
    bound = runner.addresses[0][1] if runner.addresses else port
    print(f"apidam serve: listening on http://{host}:{bound} (data {data}, "
          f"{len(dam.jobs)} unfinished jobs resumed, {len(keys)} API keys)", flush=True)
    stop = asyncio.Event()
    code = [EXIT_OK]
    loop = asyncio.get_running_loop()

    def on_signal(exit_code: int) -> None:
        code[0] = exit_code
        stop.set()

    loop.add_signal_handler(signal.SIGTERM, on_signal, EXIT_OK)
    loop.add_signal_handler(signal.SIGINT, on_signal, EXIT_INTERRUPTED)
    await stop.wait()
    print("apidam serve: stopping (in-flight work is journaled and resumes on restart)",
          flush=True)
    await runner.cleanup()
    await dam.stop()
    return code[0]
