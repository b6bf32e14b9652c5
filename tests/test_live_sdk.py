"""``apidam serve`` with the official ezthrottle 1.3.0 SDK, unchanged, pointed at it.

One server (a subprocess) and one scripted loopback upstream + webhook receiver for the
module; each test uses its own URLs so they do not interfere. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import itertools
import json
import time

import pytest

pytest.importorskip("aiohttp")
requests = pytest.importorskip("requests")
from ezthrottle import EZThrottle, EZThrottleError, Step, StepType  # noqa: E402
from ezthrottle.webhook_utils import (  # noqa: E402
    try_verify_with_secrets,
    verify_webhook_signature,
)
from loopback import Loopback, Server  # noqa: E402

KEY, OTHER_KEY = "test-key-0001", "test-key-0002"
PRIMARY, SECONDARY = "primary-secret-0123456789", "secondary-secret-0123456789"


@pytest.fixture(scope="module")
def up():
    lb = Loopback()
    yield lb
    lb.close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("live") / "data", "--rate", "50", "--max-concurrent", "10",
               keys=(f"{KEY}=cust_a:indie", f"{OTHER_KEY}=cust_b")).start()
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def sdk(srv):
    c = EZThrottle(KEY, tracktags_url=srv.url, ezthrottle_url=srv.url)
    c.create_webhook_secret(PRIMARY, SECONDARY)
    return c


def wait(pred, timeout=15.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def job(srv, job_id, key=KEY):
    r = requests.get(f"{srv.url}/api/v1/jobs/{job_id}",
                     headers={"Authorization": f"Bearer {key}"}, timeout=10)
    return r.status_code, r.json()


def hook_for(up, name, job_id, timeout=15.0):
    return wait(lambda: up.delivered(name).get(job_id), timeout, f"a webhook for {job_id}")[0]


# -- the SDK's calls ------------------------------------------------------------------------------
def test_submit_job_delivers_a_webhook_the_sdk_verifies(srv, sdk, up):
    r = sdk.submit_job(url=f"{up.base}/up/ok?t=1", method="POST", body='{"amount": 1000}',
                       metadata={"order": "o-1"}, webhooks=[{"url": f"{up.base}/hook/basic"}])
    assert r["status"] == "queued" and r["job_id"].startswith("job_")
    h = hook_for(up, "basic", r["job_id"])
    sig = h["headers"]["X-EZThrottle-Signature"]
    assert verify_webhook_signature(h["body"], sig, PRIMARY) == (True, "valid")
    assert try_verify_with_secrets(h["body"], sig, PRIMARY, SECONDARY)[0]
    assert not verify_webhook_signature(h["body"], sig, "wrong-secret-0123456789")[0]
    doc = json.loads(h["body"])
    assert doc["job_id"] == r["job_id"] and doc["status"] == "success"
    assert doc["response"]["status_code"] == 200 and json.loads(doc["response"]["body"])["ok"]
    assert doc["metadata"] == {"order": "o-1"}
    assert len(doc["idempotent_key"]) >= 16  # HASH: computed by the dam
    assert h["headers"]["X-EZThrottle-Event-Id"] == f"evt_{r['job_id']}_0"
    code, view = job(srv, r["job_id"])
    assert code == 200 and view["status"] == "delivered" and view["outcome"]["succeeded"]


def test_webhook_secrets_round_trip(srv, up):
    c = EZThrottle(OTHER_KEY, tracktags_url=srv.url, ezthrottle_url=srv.url)
    with pytest.raises(EZThrottleError, match="No webhook secrets"):
        c.get_webhook_secret()
    c.create_webhook_secret("other-secret-0123456789")
    got = c.get_webhook_secret()
    assert got == {"customer_id": "cust_b", "primary_secret": "othe****789",
                   "secondary_secret": None, "has_secondary": False}
    assert c.delete_webhook_secret()["status"] == "ok"
    with pytest.raises(EZThrottleError):
        c.get_webhook_secret()
    short = requests.post(f"{srv.url}/api/v1/webhook-secrets", json={"primary_secret": "short"},
                          headers={"Authorization": f"Bearer {OTHER_KEY}"}, timeout=10)
    assert short.status_code == 400 and "16 characters" in short.json()["error"]


def test_step_performance_and_frugal(srv, sdk, up):
    r = (Step(sdk).url(f"{up.base}/up/ok?t=perf").type(StepType.PERFORMANCE)
         .webhooks([{"url": f"{up.base}/hook/step"}]).execute())
    assert r["status"] == "queued"
    assert json.loads(hook_for(up, "step", r["job_id"])["body"])["status"] == "success"
    # FRUGAL: the SDK runs it locally first; a 503 there forwards it to the dam
    r = (Step(sdk).url(f"{up.base}/up/flaky?n=1&t=frugal").type(StepType.FRUGAL)
         .fallback_on_error([503]).webhooks([{"url": f"{up.base}/hook/step"}]).execute())
    assert r["status"] == "queued"
    assert json.loads(hook_for(up, "step", r["job_id"])["body"])["status"] == "success"
    local = Step(sdk).url(f"{up.base}/up/ok?t=frugal-ok").type(StepType.FRUGAL).execute()
    assert local["executed_locally"] and local["status_code"] == 200


def test_duplicate_submit_returns_the_same_job(srv, sdk, up):
    kw = dict(url=f"{up.base}/up/ok?t=dup", webhooks=[{"url": f"{up.base}/hook/dup"}])
    a, b = sdk.submit_job(**kw), sdk.submit_job(**kw)
    assert a["job_id"] == b["job_id"] and b["duplicate"] is True
    c = sdk.submit_job(idempotent_key="order-42", **kw)
    d = sdk.submit_job(idempotent_key="order-42", url=f"{up.base}/up/ok?t=other")
    assert c["job_id"] == d["job_id"] != a["job_id"]
    hook_for(up, "dup", a["job_id"])
    wait(lambda: any(c["headers"].get("Idempotency-Key") == "order-42" for c in up.calls["ok"]))
    time.sleep(0.3)
    assert len(up.delivered("dup")[a["job_id"]]) == 1
    # two jobs, each executed once: the HASH-keyed one and the "order-42" one
    assert len([c for c in up.calls["ok"] if c["url"].endswith("t=dup")]) == 2


# -- the dam's rules, live ------------------------------------------------------------------------
def test_retries_send_the_same_idempotency_key(srv, sdk, up):
    r = sdk.submit_job(url=f"{up.base}/up/flaky?n=2&t=retry", retry_policy={"max_retries": 3},
                       webhooks=[{"url": f"{up.base}/hook/retry"}])
    assert json.loads(hook_for(up, "retry", r["job_id"], 30)["body"])["status"] == "success"
    calls = [c for c in up.calls["flaky"] if "t=retry" in c["url"]]
    assert len(calls) == 3
    assert len({c["headers"]["Idempotency-Key"] for c in calls}) == 1
    assert job(srv, r["job_id"])[1]["attempts"] == 3


def test_429_retry_after_is_honoured(srv, sdk, up):
    r = sdk.submit_job(url=f"{up.base}/up/throttle?n=1&t=ra",
                       webhooks=[{"url": f"{up.base}/hook/ra"}])
    hook_for(up, "ra", r["job_id"], 30)
    t = [c["t"] for c in up.calls["throttle"] if "t=ra" in c["url"]]
    assert len(t) == 2 and t[1] - t[0] >= 0.95  # Retry-After: 1


def test_pacing_holds_in_wall_time(srv, sdk, up):
    """The upstream advertises 4 req/s (X-EZTHROTTLE-RPS); 12 jobs on one domain (``localhost``
    is a domain of its own) start at most 4 per second: gaps >= 250 ms after the first answer."""
    base = up.base.replace("127.0.0.1", "localhost")
    ids = [sdk.submit_job(url=f"{base}/up/rps?rate=4&i={i}",
                          webhooks=[{"url": f"{up.base}/hook/pace"}])["job_id"]
           for i in range(12)]
    wait(lambda: set(up.delivered("pace")) >= set(ids), 20, "the paced jobs")
    t = sorted(c["t"] for c in up.calls["rps"])
    assert len(t) == 12
    gaps = [b - a for a, b in itertools.pairwise(t[2:])]  # after the rate was advertised
    assert min(gaps) >= 0.25 - 0.03, gaps
    for i in range(len(t)):  # any 1 s window: at most floor(1 s x 4/s) + 1 starts
        assert sum(1 for x in t[i:] if x - t[i] < 1.0) <= 5


def test_quorum_outcomes(srv, sdk, up):
    ok = sdk.submit_job(url=f"{up.base}/up/ok?t=q1", webhook_quorum=2, webhooks=[
        {"url": f"{up.base}/hook/qa"}, {"url": f"{up.base}/hook/down"},
        {"url": f"{up.base}/hook/qb"}])
    bad = sdk.submit_job(url=f"{up.base}/up/ok?t=q2", webhook_quorum=2, webhooks=[
        {"url": f"{up.base}/hook/gone"}, {"url": f"{up.base}/hook/down"}])
    assert wait(lambda: job(srv, ok["job_id"])[1]["status"] == "delivered", 15, "quorum met")
    assert wait(lambda: job(srv, bad["job_id"])[1]["status"] == "undelivered", 15,
                "quorum lost")
    assert len(up.delivered("gone")[bad["job_id"]]) == 1  # 410: the endpoint is gone, stop


def test_race_across_regions_has_one_winner(srv, sdk, up):
    """Three branches through one domain limiter (50/s: starts 20 ms apart); the upstream takes
    300 ms, so all three run, the first answer wins and the other two are duplicates."""
    r = sdk.submit_job(url=f"{up.base}/up/slow?ms=300&t=race", regions=["iad", "lax", "ord"],
                       webhooks=[{"url": f"{up.base}/hook/race"}])
    hook_for(up, "race", r["job_id"])
    view = wait(lambda: (lambda v: v if v["outcome"] else None)(job(srv, r["job_id"])[1]), 15,
                "the race to finish")
    calls = [c for c in up.calls["slow"] if "t=race" in c["url"]]
    assert len(calls) == 3 and len({c["headers"]["Idempotency-Key"] for c in calls}) == 1
    o = view["outcome"]
    assert o["winner_region"] in ("iad", "lax", "ord") and o["duplicate_executions"] == 2
    assert len(up.delivered("race")[r["job_id"]]) == 1


def test_workflows_fallback_and_children(srv, sdk, up):
    hook = [{"url": f"{up.base}/hook/flow"}]
    child = Step().url(f"{up.base}/up/ok?t=child").webhooks(hook)
    fb = Step().url(f"{up.base}/up/ok?t=fallback")
    r = (Step(sdk).url(f"{up.base}/up/fail?t=primary").type(StepType.PERFORMANCE)
         .fallback(fb, trigger_on_error=[400]).on_success(child).webhooks(hook).execute())
    doc = json.loads(hook_for(up, "flow", r["job_id"])["body"])
    assert doc["status"] == "success"  # the fallback's answer
    assert any("t=fallback" in c["url"] for c in up.calls["ok"])
    wait(lambda: any("t=child" in c["url"] for c in up.calls["ok"]), 15, "the on_success child")
    wait(lambda: len(up.delivered("flow")) >= 2, 15, "the child's webhook")
    f = (Step(sdk).url(f"{up.base}/up/fail?t=doomed").type(StepType.PERFORMANCE)
         .on_failure(Step().url(f"{up.base}/up/ok?t=onfail")).webhooks(hook).execute())
    assert json.loads(hook_for(up, "flow", f["job_id"])["body"])["status"] == "failed"
    wait(lambda: any("t=onfail" in c["url"] for c in up.calls["ok"]), 15, "on_failure child")


# -- the gate -------------------------------------------------------------------------------------
def proxy(srv, envelope, key=KEY, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(f"{srv.url}/api/v1/proxy", json=envelope, headers=headers, timeout=10,
                         **kw)


def env(srv, body, path="/api/v1/jobs", method="POST"):
    return {"scope": "customer", "metric_name": "", "target_url": f"{srv.url}{path}",
            "method": method, "headers": {}, "body": json.dumps(body)}


def test_auth_is_required_everywhere_but_health_and_metrics(srv, up):
    body = env(srv, {"url": f"{up.base}/up/ok"})
    assert proxy(srv, body, key=None).status_code == 401
    assert proxy(srv, body, key="not-a-key-at-all").status_code == 401
    r = requests.post(f"{srv.url}/api/v1/jobs", json={"url": f"{up.base}/up/ok"}, timeout=10)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert requests.get(f"{srv.url}/health", timeout=10).json()["status"] == "ok"
    assert requests.get(f"{srv.url}/metrics", timeout=10).status_code == 200


def test_bad_input_names_the_field(srv, sdk, up):
    r = proxy(srv, env(srv, {"url": f"{up.base}/up/ok", "retry_policy": {"max_retries": -1}}))
    fwd = r.json()["forwarded_response"]
    assert r.status_code == 200 and fwd["status_code"] == 400
    assert json.loads(fwd["body"])["path"] == "$.retry_policy.max_retries"
    with pytest.raises(EZThrottleError, match="job creation failed"):
        sdk.submit_job(url="ftp://example.com/x")
    assert proxy(srv, {"target_url": 5}).status_code == 400
    fwd = proxy(srv, env(srv, {}, path="/api/v1/nothing")).json()["forwarded_response"]
    assert fwd["status_code"] == 404
    big = requests.post(f"{srv.url}/api/v1/jobs", data=b"x" * (5 << 20), timeout=30,
                        headers={"Authorization": f"Bearer {KEY}"})
    assert big.status_code == 413


@pytest.mark.parametrize(("payload", "path"), [
    ({"url": "http://169.254.169.254/latest/meta-data/"}, "$.url"),
    ({"url": "http://metadata.google.internal/x"}, "$.url"),
    ({"url": "http://[fe80::1]/x"}, "$.url"),
    ({"url": "https://api.example.com/x", "webhooks": [{"url": "http://169.254.169.254/"}]},
     "$.webhooks[0].url"),
])
def test_metadata_targets_are_refused(srv, payload, path):
    r = requests.post(f"{srv.url}/api/v1/jobs", json=payload, timeout=10,
                      headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 400 and r.json()["path"] == path


def test_jobs_are_private_to_their_customer(srv, sdk, up):
    r = sdk.submit_job(url=f"{up.base}/up/ok?t=private")
    assert job(srv, r["job_id"])[0] == 200
    assert job(srv, r["job_id"], key=OTHER_KEY)[0] == 404


def test_metrics_expose_jobs_attempts_limiters_and_webhooks(srv, sdk, up):
    r = sdk.submit_job(url=f"{up.base}/up/ok?t=metrics", webhooks=[{"url": f"{up.base}/hook/m"}])
    hook_for(up, "m", r["job_id"])
    text = requests.get(f"{srv.url}/metrics", timeout=10).text
    for family in ("apidam_jobs{status=", "apidam_attempts_total{domain=", "outcome=\"200\"",
                   "apidam_limiter_backlog{", "apidam_breaker_state{",
                   "apidam_webhook_attempts_total{outcome=\"200\"}",
                   "apidam_journal_commits_total"):
        assert family in text


def test_fanout_runs_every_region_and_hedge_starts_late(srv, sdk, up):
    fan = sdk.submit_job(url=f"{up.base}/up/ok?t=fanout", regions=["iad", "lax"],
                         execution_mode="fanout", webhooks=[{"url": f"{up.base}/hook/fan"}])
    hook_for(up, "fan", fan["job_id"])
    view = wait(lambda: (lambda v: v if v["outcome"] else None)(job(srv, fan["job_id"])[1]))
    assert view["outcome"]["duplicate_executions"] == 0  # fanout branches are meant to run
    assert len([c for c in up.calls["ok"] if "t=fanout" in c["url"]]) == 2
    # hedge: the second region starts only if the first has not answered after 150 ms
    r = requests.post(f"{srv.url}/api/v1/jobs", timeout=10,
                      headers={"Authorization": f"Bearer {KEY}"},
                      json={"url": f"{up.base}/up/slow?ms=600&t=hedge", "regions": ["iad", "lax"],
                            "execution_mode": "hedge", "hedge_delay_ms": 150,
                            "webhooks": [{"url": f"{up.base}/hook/hedge"}]}).json()
    hook_for(up, "hedge", r["job_id"])
    t = [c["t"] for c in up.calls["slow"] if "t=hedge" in c["url"]]
    assert len(t) == 2 and 0.1 <= t[1] - t[0] < 0.5  # ~150 ms; arrival times carry connect jitter
