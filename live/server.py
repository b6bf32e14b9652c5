"""The HTTP face of the live dam (aiohttp): the API the official SDK speaks.

* ``POST /api/v1/proxy`` — the SDK's only call: a JSON envelope ``{scope, metric_name,
  target_url, method, headers, body}`` whose ``target_url`` path names the inner endpoint (its
  host is not contacted: this server *is* the dam). Answer: HTTP 200 ``{"status": "allowed",
  "forwarded_response": {"status_code", "headers", "body": "<inner JSON text>"}}``; a plan limit
  is HTTP 429 with a JSON ``error`` and an integer-seconds ``Retry-After``.
* The inner endpoints directly: ``POST /api/v1/jobs``, ``GET /api/v1/jobs/{id}``,
  ``GET|POST|DELETE /api/v1/webhook-secrets``.
* ``GET /health`` and ``GET /metrics`` (Prometheus text), without authentication.

Every ``/api/`` request needs ``Authorization: Bearer <key>`` with a configured key (401
otherwise, never anonymous); the key names the customer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import msgspec
from aiohttp import web

from engine.errors import CapReached, SecretError, SpecError, validation_path
from engine.spec import MAX_PAYLOAD_BYTES

from .dam import DamUnavailable, LiveDam
from .metrics import render
from .settings import ApiKey

__all__ = ["MAX_REQUEST_BYTES", "Answer", "ProxyEnvelope", "SecretsBody", "build_app",
           "metrics_text"]

#: A proxy envelope carries the job's JSON as a string: escaping can double it.
MAX_REQUEST_BYTES = 2 * MAX_PAYLOAD_BYTES + 64 * 1024
_json = msgspec.json.Encoder()
CUSTOMER = web.RequestKey("customer", str)
DAM = web.AppKey("dam", LiveDam)
KEYS = web.AppKey("keys", dict)


class Answer(msgspec.Struct, frozen=True, gc=False):
    """An inner endpoint's answer, before it is sent directly or wrapped by the proxy."""

    status: int
    body: dict
    headers: dict[str, str] = {}


class ProxyEnvelope(msgspec.Struct, frozen=True):
    target_url: str
    method: str = "POST"
    body: str = ""
    headers: dict[str, str] = {}
    scope: str = "customer"
    metric_name: str = ""


class SecretsBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    primary_secret: str
    secondary_secret: str | None = None


def _error(status: int, message: str, **extra: Any) -> Answer:
    return Answer(status, {"error": message, **extra})


# -- inner endpoints ------------------------------------------------------------------------------
async def _submit(dam: LiveDam, customer: str, body: bytes | str) -> Answer:
    try:
        r = await dam.submit(customer, body)
    except SpecError as e:
        return _error(400, f"invalid job: {e}", path=e.path)
    except CapReached as e:
        secs = dam.retry_after_s()
        return Answer(429, {"error": str(e), "retry_after_seconds": secs},
                      {"Retry-After": str(secs)})
    except DamUnavailable as e:
        return Answer(503, {"error": f"the dam cannot take jobs now: {e}"}, {"Retry-After": "1"})
    doc = {"job_id": r.job_id, "status": r.status}
    if r.duplicate:
        doc["duplicate"] = True
    return Answer(200, doc)


async def _secrets(dam: LiveDam, customer: str, method: str, body: bytes | str) -> Answer:
    try:
        if method == "GET":
            return Answer(200, dam.secrets.get(customer))
        if method == "DELETE":
            return Answer(200, await dam.delete_secrets(customer))
        if method == "POST":
            try:
                s = msgspec.json.decode(body or b"{}", type=SecretsBody)
            except (msgspec.ValidationError, msgspec.DecodeError) as e:
                path, reason = validation_path(e)
                return _error(400, f"{path}: {reason}", path=path)
            await dam.set_secrets(customer, s.primary_secret, s.secondary_secret)
            return Answer(200, {"status": "ok", "message": "Webhook secrets saved"})
    except SecretError as e:
        missing = "no webhook secret" in str(e)
        return _error(404 if missing else 400, str(e))
    except DamUnavailable as e:
        return Answer(503, {"error": f"the dam cannot store secrets now: {e}"},
                      {"Retry-After": "1"})
    return _error(405, f"method {method} not allowed on /api/v1/webhook-secrets")


async def _inner(dam: LiveDam, customer: str, method: str, path: str,
                 body: bytes | str) -> Answer:
    path = path.rstrip("/")
    if path == "/api/v1/jobs":
        if method != "POST":
            return _error(405, f"method {method} not allowed on /api/v1/jobs")
        return await _submit(dam, customer, body)
    if path.startswith("/api/v1/jobs/") and path.count("/") == 4:
        if method != "GET":
            return _error(405, f"method {method} not allowed on {path}")
        view = dam.job_view(customer, path.rsplit("/", 1)[1])
        return Answer(200, view) if view else _error(404, "no such job")
    if path == "/api/v1/webhook-secrets":
        return await _secrets(dam, customer, method, body)
    return _error(404, f"no endpoint {path}")


def _send(a: Answer) -> web.Response:
    return web.Response(body=_json.encode(a.body), status=a.status,
                        content_type="application/json", headers=a.headers)


# -- handlers -------------------------------------------------------------------------------------
async def _handle_proxy(request: web.Request) -> web.Response:
    raw = await request.read()
    try:
        env = msgspec.json.decode(raw, type=ProxyEnvelope)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        path, reason = validation_path(e)
        return web.json_response({"status": "error", "error": f"{path}: {reason}",
                                  "path": path}, status=400)
    method = env.method.upper()
    try:
        target_path = urlsplit(env.target_url).path
    except ValueError:
        return web.json_response({"status": "error", "error": "$.target_url: not a URL",
                                  "path": "$.target_url"}, status=400)
    a = await _inner(request.app[DAM], request[CUSTOMER], method, target_path, env.body)
    if a.status == 429:
        return web.json_response({"status": "denied", "error": a.body.get("error")}, status=429,
                                 headers=a.headers)
    if a.status == 503:
        return web.json_response({"status": "error", "error": a.body.get("error")}, status=503,
                                 headers=a.headers)
    return web.json_response({"status": "allowed", "forwarded_response": {
        "status_code": a.status, "headers": {"Content-Type": "application/json", **a.headers},
        "body": _json.encode(a.body).decode()}})


async def _handle_jobs_post(request: web.Request) -> web.Response:
    return _send(await _submit(request.app[DAM], request[CUSTOMER], await request.read()))


async def _handle_job_get(request: web.Request) -> web.Response:
    view = request.app[DAM].job_view(request[CUSTOMER], request.match_info["job_id"])
    return _send(Answer(200, view) if view else _error(404, "no such job"))


async def _handle_secrets(request: web.Request) -> web.Response:
    body = await request.read() if request.method == "POST" else b""
    return _send(await _secrets(request.app[DAM], request[CUSTOMER], request.method, body))


async def _handle_health(request: web.Request) -> web.Response:
    dam = request.app[DAM]
    failure = dam.journal.failure
    return web.json_response({
        "status": "ok" if failure is None and not dam.stopping else "unavailable",
        "jobs_active": len(dam.jobs), "jobs_finished": len(dam.finished),
        "recovered": dam.recovered, "journal": "ok" if failure is None else str(failure),
    }, status=200 if failure is None else 503)


async def _handle_metrics(request: web.Request) -> web.Response:
    return web.Response(text=metrics_text(request.app[DAM]),
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Format": "prometheus 0.0.4"})


def metrics_text(dam: LiveDam) -> str:
    c = dam.counters
    statuses = Counter(str(j.machine.status) for j in dam.jobs.values())
    statuses.update(str(f.outcome.status) for f in dam.finished.values())
    domains = [(c.domain_label(d), q) for d, q in dam.queues.items()]
    now = dam.clock.now()

    def counter(name: str):
        return sorted(c.values.get(name, {}).items()) or [((), 0.0)]

    def per_domain(value):
        return [((("domain", d),), value(q)) for d, q in domains]

    return render([
        ("apidam_jobs_accepted_total", counter("apidam_jobs_accepted_total")),
        ("apidam_jobs_deduplicated_total", counter("apidam_jobs_deduplicated_total")),
        ("apidam_jobs_refused_total", counter("apidam_jobs_refused_total")),
        ("apidam_jobs_finished_total", counter("apidam_jobs_finished_total")),
        ("apidam_jobs", [((("status", s),), n) for s, n in sorted(statuses.items())]),
        ("apidam_attempts_total", counter("apidam_attempts_total")),
        ("apidam_limiter_backlog", per_domain(len)),
        ("apidam_limiter_in_flight", per_domain(lambda q: q.limiter.in_flight)),
        ("apidam_limiter_pace", per_domain(lambda q: round(q.limiter.current_pace(now), 6))),
        ("apidam_breaker_state", per_domain(
            lambda q: 0 if q.limiter.breaker is None else int(q.limiter.breaker.state))),
        ("apidam_webhook_attempts_total", counter("apidam_webhook_attempts_total")),
        ("apidam_journal_commits_total", [((), dam.journal.commits)]),
        ("apidam_journal_rows_total", [((), dam.journal.rows)]),
    ])


@web.middleware
async def _authenticate(request: web.Request, handler):
    if request.path.startswith("/api/"):
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        key: ApiKey | None = None
        if scheme.lower() == "bearer" and token.strip():
            key = request.app[KEYS].get(token.strip())
        if key is None:
            return web.json_response({"error": "missing or unknown API key (Authorization: "
                                               "Bearer <key>)"}, status=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        request[CUSTOMER] = key.customer_id
    return await handler(request)


def build_app(dam: LiveDam, keys: Mapping[str, ApiKey]) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[_authenticate])
    app[DAM] = dam
    app[KEYS] = dict(keys)
    app.router.add_post("/api/v1/proxy", _handle_proxy)
    app.router.add_post("/api/v1/jobs", _handle_jobs_post)
    app.router.add_get("/api/v1/jobs/{job_id}", _handle_job_get)
    app.router.add_route("*", "/api/v1/webhook-secrets", _handle_secrets)
    app.router.add_get("/health", _handle_health)
    app.router.add_get("/metrics", _handle_metrics)
    return app
