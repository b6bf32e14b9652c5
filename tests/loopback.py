"""Loopback fixtures for the live dam's tests: a scripted upstream + webhook receiver in a
background thread, and ``apidam serve`` as a subprocess. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent


class Loopback:
    """An aiohttp app on 127.0.0.1:<free port> in its own thread.

    Upstream routes (``/up/<name>``; every call is recorded with its time and headers):

    * ``ok``            200 ``{"ok": true}``
    * ``slow?ms=N``     200 after N ms
    * ``flaky?n=K``     503 for the first K calls of that exact URL, then 200
    * ``throttle?n=K``  429 + ``Retry-After: 1`` for the first K calls, then 200
    * ``rps?rate=R``    200 with ``X-EZTHROTTLE-RPS: R``
    * ``fail``          400 (a final failure)

    Receiver routes (``/hook/<name>``): 200, except ``/hook/gone`` (410) and ``/hook/down``
    (503); every delivery is recorded with its raw body and headers.
    """

    def __init__(self) -> None:
        self.calls: dict[str, list[dict]] = defaultdict(list)
        self.hooks: dict[str, list[dict]] = defaultdict(list)
        self._counts: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self._started.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_route("*", "/up/{name}", self._upstream)
        app.router.add_post("/hook/{name}", self._hook)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0, backlog=2048)
        self.loop.run_until_complete(site.start())
        self.port = self.runner.addresses[0][1]
        self._started.set()
        self.loop.run_forever()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _upstream(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        url = str(request.rel_url)
        with self.lock:
            self._counts[url] += 1
            n = self._counts[url]
            self.calls[name].append({"t": time.monotonic(), "url": url,
                                     "headers": dict(request.headers)})
        q = request.query
        if name == "slow":
            await asyncio.sleep(int(q.get("ms", "100")) / 1000)
        if name == "flaky" and n <= int(q.get("n", "1")):
            return web.json_response({"error": "unavailable"}, status=503)
        if name == "throttle" and n <= int(q.get("n", "1")):
            return web.json_response({"error": "slow down"}, status=429,
                                     headers={"Retry-After": "1"})
        if name == "fail":
            return web.json_response({"error": "bad request"}, status=400)
        headers = {"X-EZTHROTTLE-RPS": q["rate"]} if name == "rps" else {}
        if "rate" in q and name != "rps":
            headers["X-EZTHROTTLE-RPS"] = q["rate"]
        if "conc" in q:
            headers["X-EZTHROTTLE-MAX-CONCURRENT"] = q["conc"]
        return web.json_response({"ok": True, "n": n}, headers=headers)

    async def _hook(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        raw = await request.read()
        with self.lock:
            self.hooks[name].append({"t": time.monotonic(), "body": raw,
                                     "headers": dict(request.headers)})
        if name == "gone":
            return web.Response(status=410)
        if name == "down":
            return web.Response(status=503)
        return web.Response(text="ok")

    def delivered(self, name: str) -> dict[str, list[dict]]:
        """Deliveries to ``/hook/<name>`` by job id."""
        out: dict[str, list[dict]] = defaultdict(list)
        with self.lock:
            for h in self.hooks[name]:
                out[json.loads(h["body"])["job_id"]].append(h)
        return out

    def close(self) -> None:
        async def stop():
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Server:
    """``apidam serve`` in a subprocess on a free port."""

    def __init__(self, data: Path, *extra: str, keys=("test-key-0001=cust_a",)) -> None:
        self.data = data
        self.args = [sys.executable, "-m", "sim.cli", "serve", "--port", "0", "--data",
                     str(data), "--allow-private-targets", *extra]
        for k in keys:
            self.args += ["--api-key", k]
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self, timeout: float = 30.0) -> Server:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("APIDAM_API_KEYS", None)
        self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"apidam serve exited: {self.proc.stderr.read()}")
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                self.first_line = line
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()
                return self
        raise RuntimeError("apidam serve did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
