"""The live dam's parts in-process: permit queue, journal, replay, targets, keys, CLI, caps."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

pytest.importorskip("aiohttp")
import aiohttp
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.billing import Tier
from engine.errors import SpecError
from engine.events import Submit
from engine.job import BranchState
from engine.limiter import BLOCKED, DomainLimiter, LimiterConfig
from engine.retry import Backoff
from live.cli import ApiKeyError, parse_api_keys
from live.dam import LiveDam
from live.journal import Journal, JournalError, SecretSet
from live.outbound import HttpAnswer
from live.permits import PermitQueue, Waiter
from live.server import build_app
from live.settings import ApiKey, LiveSettings
from live.targets import SafeResolver, address_class, check_target
from sim.cli import main

S = 1_000_000


# -- permit queue ---------------------------------------------------------------------------------
def test_permit_queue_is_fifo_paced_and_honours_not_before():
    q = PermitQueue(DomainLimiter("d", LimiterConfig(rate=2.0, max_concurrent=5)))
    for b in range(3):
        q.ask(Waiter("j", b, 0), 0)
    q.ask(Waiter("k", 0, 10 * S), 0)  # a retry's backoff
    granted, wake = q.pump(0)
    assert [w.branch for w in granted] == [0] and wake == S // 2
    granted, wake = q.pump(S // 2)
    assert [w.branch for w in granted] == [1] and wake == S
    q.cancel("j", 2)
    granted, wake = q.pump(S)
    assert granted == [] and wake == 10 * S  # the cancelled waiter is skipped
    granted, _ = q.pump(10 * S)
    assert [(w.job_id, w.branch) for w in granted] == [("k", 0)]
    assert len(q) == 0


def test_permit_queue_waits_for_a_release_at_the_concurrency_cap():
    lim = DomainLimiter("d", LimiterConfig(rate=1000.0, max_concurrent=1))
    q = PermitQueue(lim)
    q.ask(Waiter("a", 0, 0), 0)
    q.ask(Waiter("b", 0, 0), 0)
    assert len(q.pump(0)[0]) == 1
    assert q.pump(S)[0] == [] and lim.acquire(S) == BLOCKED
    q.release(S)
    assert [w.job_id for w in q.pump(S)[0]] == ["b"]


# -- journal --------------------------------------------------------------------------------------
def test_journal_group_commits_and_replays_in_order(tmp_path):
    async def go():
        j = Journal(tmp_path, sync="normal")
        assert j.open(0) == []
        for i in range(500):
            j.append(f"job_{i}", i, Submit())
        await j.durable()
        j.append(None, 500, SecretSet("c", "p" * 16))
        await j.durable()
        commits = j.commits
        await j.close()
        return commits

    commits = asyncio.run(go())
    assert commits < 50  # 501 rows in a handful of transactions
    rows = Journal(tmp_path).open(10)
    assert [r.job_id for r in rows[:3]] == ["job_0", "job_1", "job_2"] and len(rows) == 501
    assert rows[-1].record == SecretSet("c", "p" * 16) and "pppp" not in repr(rows[-1].record)


def test_journal_refuses_a_foreign_schema(tmp_path):
    import sqlite3

    Journal(tmp_path).open(0)
    db = sqlite3.connect(tmp_path / "journal.sqlite3")
    db.execute("UPDATE meta SET value='999' WHERE key='schema'")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="schema 999"):
        Journal(tmp_path).open(0)


# -- replay: a machine rebuilt from its journal is the machine that wrote it ----------------------
class ScriptedOutbound:
    """Answers each request from a script (status or error), at once."""

    def __init__(self, script):
        self.script = list(script)
        self.sent = []

    async def start(self):
        pass

    async def close(self):
        pass

    async def request(self, method, url, headers, body, timeout_s):
        await asyncio.sleep(0)
        self.sent.append((url, headers.get("Idempotency-Key")))
        s = self.script.pop(0) if self.script else 200
        if isinstance(s, str):
            return HttpAnswer(None, None, "", 0, 1, s)
        h = {"retry-after": "0"} if s == 429 else {}  # a 503 backs off by the jitter formula
        return HttpAnswer(s, h, '{"ok":true}', 11, 1, None)


def _settings():
    return LiveSettings(allow_private_targets=True, backoff=Backoff(base_us=1000, cap_us=5000),
                        limiter=LimiterConfig(rate=1000.0, max_concurrent=10),
                        webhook_schedule_us=(0, 1000, 2000))


JOB = (b'{"url":"https://api.example.com/charge","regions":["iad","lax"],'
       b'"retry_policy":{"max_retries":3,"max_reroutes":1,"retry_codes":[429,503]},'
       b'"webhooks":[{"url":"https://hooks.example.com/a"}]}')


def _snapshot(m):
    return (str(m.status), m.succeeded, m.duplicates,
            [(int(b.state), b.attempts, b.retries, b.reroutes, b.region, b.prev_delay)
             for b in m.branches])


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=st.lists(st.sampled_from([200, 503, 429, 400, 500, "timeout", "connect"]),
                       min_size=1, max_size=8),
       steps=st.integers(0, 60))
def test_a_crash_anywhere_replays_to_the_same_state_and_the_job_finishes(
        tmp_path_factory, monkeypatch, script, steps):
    """Run a job for ``steps`` loop turns, then crash (tasks cancelled; only committed rows
    survive). Replay must rebuild exactly the machine that wrote the journal (status, branch
    states, attempts, retries, regions), and after the restart the job must reach a terminal
    status."""
    import live.recovery as recovery

    data = tmp_path_factory.mktemp("replay")
    before = {}

    async def first():
        dam = LiveDam(_settings(), Journal(data, sync="normal"),
                      outbound=ScriptedOutbound(script))
        await dam.start()
        r = await dam.submit("cust", JOB)
        for _ in range(steps):
            await asyncio.sleep(0)
        dam.stopping = True  # no timer or permit pump feeds anything from here
        for t in list(dam._tasks):
            t.cancel()
        await asyncio.gather(*dam._tasks, return_exceptions=True)
        if r.job_id in dam.jobs:
            before["state"] = _snapshot(dam.jobs[r.job_id].machine)
        await dam.journal.close()
        return r.job_id

    job_id = asyncio.run(first())
    replayed = {}
    real_resume = recovery._resume

    def spy(dam, jid, job, p, now):
        replayed["state"] = _snapshot(job.machine)
        real_resume(dam, jid, job, p, now)

    monkeypatch.setattr(recovery, "_resume", spy)

    async def second():
        dam = LiveDam(_settings(), Journal(data, sync="normal"),
                      outbound=ScriptedOutbound([200] * 20))
        await dam.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while job_id in dam.jobs and loop.time() < deadline:
            await asyncio.sleep(0.001)
        view = dam.job_view("cust", job_id)
        await dam.stop()
        return view

    view = asyncio.run(second())
    if "state" in before:  # unfinished at the crash
        new_job = before["state"][0] == "new"
        assert new_job or replayed["state"] == before["state"]
    assert view["status"] in ("delivered", "undelivered")


def test_an_attempt_in_flight_at_a_crash_runs_again_without_costing_a_retry(tmp_path):
    async def crash_mid_attempt():
        gate = asyncio.Event()

        class Hanging(ScriptedOutbound):
            async def request(self, *a, **k):
                self.sent.append(a[1])
                await gate.wait()

        dam = LiveDam(_settings(), Journal(tmp_path, sync="normal"), outbound=Hanging([]))
        await dam.start()
        r = await dam.submit("cust", b'{"url":"https://api.example.com/x",'
                                     b'"retry_policy":{"max_retries":0,"max_reroutes":0}}')
        while not dam.outbound.sent:
            await asyncio.sleep(0)
        await dam.journal.durable()
        for t in list(dam._tasks):
            t.cancel()
        await dam.journal.close()
        return r.job_id

    job_id = asyncio.run(crash_mid_attempt())

    async def restart():
        out = ScriptedOutbound([200])
        dam = LiveDam(_settings(), Journal(tmp_path, sync="normal"), outbound=out)
        await dam.start()
        assert dam.recovered == 1
        b = dam.jobs[job_id].machine.branches[0]
        assert b.state == BranchState.FLIGHT and b.attempts == 1
        while job_id in dam.jobs:
            await asyncio.sleep(0.001)
        view = dam.job_view("cust", job_id)
        await dam.stop()
        return view, out.sent

    view, sent = asyncio.run(restart())
    assert view["status"] == "succeeded" and view["attempts"] == 1  # re-run, not retried
    assert len(sent) == 1 and sent[0][1]  # the same request, its Idempotency-Key on it


# -- targets --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("ip", "cls"), [
    ("169.254.169.254", "forbidden"), ("fd00:ec2::254", "forbidden"), ("fe80::1", "forbidden"),
    ("0.0.0.0", "forbidden"), ("224.0.0.1", "forbidden"), ("240.0.0.1", "forbidden"),
    ("127.0.0.1", "private"), ("::1", "private"), ("10.0.0.1", "private"),
    ("192.168.1.1", "private"), ("172.16.0.1", "private"), ("100.64.0.1", "private"),
    ("fc00::1", "private"), ("::ffff:127.0.0.1", "private"), ("::ffff:169.254.169.254",
                                                                "forbidden"),
    ("8.8.8.8", "public"), ("2606:4700::1111", "public"),
])
def test_address_classes(ip, cls):
    assert address_class(ipaddress.ip_address(ip)) == cls


def test_check_target_names_the_field_and_respects_allow_private():
    check_target("http://127.0.0.1:9/x", "$.url", allow_private=True)
    check_target("https://api.stripe.com/x", "$.url", allow_private=False)
    for url in ("http://127.0.0.1/x", "http://localhost/x", "http://10.1.1.1/x"):
        with pytest.raises(SpecError, match=r"^\$\.webhooks\[1\]\.url: .*allow-private"):
            check_target(url, "$.webhooks[1].url", allow_private=False)
    with pytest.raises(SpecError, match="always refused"):
        check_target("http://169.254.169.254/", "$.url", allow_private=True)


def test_safe_resolver_refuses_loopback_names_unless_allowed():
    async def go(allow):
        r = SafeResolver(allow_private=allow)
        try:
            return await r.resolve("localhost", 80, socket.AF_INET)
        finally:
            await r.close()

    assert asyncio.run(go(True))[0]["host"] == "127.0.0.1"
    with pytest.raises(OSError, match="loopback or private"):
        asyncio.run(go(False))


# -- keys and the command line --------------------------------------------------------------------
def test_api_keys_parse_and_errors_name_their_source():
    keys = parse_api_keys([("a", "ck_live_cust_1=cust_1:pro"), ("b", "tok/en+abc==" "=cust_2")])
    assert keys == {"ck_live_cust_1": ApiKey("cust_1", "pro"), "tok/en+abc==": ApiKey("cust_2")}
    for entry, msg in [("short=c", "8-256"), ("no-separator-here", "KEY=CUSTOMER"),
                       ("ck_live_xxxxx=bad customer", "customer"),
                       ("ck_live_xxxxx=c:platinum", "tier")]:
        with pytest.raises(ApiKeyError, match=msg) as e:
            parse_api_keys([("--api-key #3", entry)])
        assert str(e.value).startswith("--api-key #3:")
    with pytest.raises(ApiKeyError, match="already given"):
        parse_api_keys([("a", "ck_live_xxxxx=c1"), ("b", "ck_live_xxxxx=c2")])


@pytest.mark.parametrize("argv", [
    ["serve", "--api-key", "ck_live_xxxxx=c", "--port", "70000"],
    ["serve", "--api-key", "ck_live_xxxxx=c", "--rate", "nan"],
    ["serve", "--api-key", "ck_live_xxxxx=c", "--rate", "0"],
    ["serve", "--api-key", "ck_live_xxxxx=c", "--regions", "IAD"],
    ["serve", "--api-key", "ck_live_xxxxx=c", "--max-concurrent", "0"],
    ["serve", "--api-key", "short=c"],
    ["serve"],
])
def test_serve_usage_errors_exit_2(argv, monkeypatch, capsys):
    monkeypatch.delenv("APIDAM_API_KEYS", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()


def test_serve_refuses_a_data_path_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["serve", "--api-key", "ck_live_xxxxx=c", "--data", str(f / "sub")]) == 2
    assert "--data" in capsys.readouterr().err


def test_serve_reports_a_taken_port_as_a_failed_run(tmp_path, capsys):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        rc = main(["serve", "--api-key", "ck_live_xxxxx=c", "--data", str(tmp_path),
                   "--port", str(s.getsockname()[1])])
    finally:
        s.close()
    assert rc == 1 and "cannot listen" in capsys.readouterr().err


# -- plan limits ----------------------------------------------------------------------------------
def test_cap_reached_is_a_429_with_integer_retry_after(tmp_path):
    async def go():
        dam = LiveDam(_settings(), Journal(tmp_path, sync="normal"),
                      tiers={"cust": Tier("tiny", 1, 0.0, 0.0, 2)},
                      outbound=ScriptedOutbound([]))
        await dam.start()
        runner = aiohttp.web.AppRunner(build_app(dam, {"ck_test_key1": ApiKey("cust")}))
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/v1/proxy"
        out = []
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer ck_test_key1"}) as s:
            for i in range(3):
                body = {"target_url": "http://x/api/v1/jobs", "method": "POST",
                        "body": f'{{"url": "https://api.example.com/{i}"}}'}
                async with s.post(url, json=body) as r:
                    out.append((r.status, r.headers.get("Retry-After"), await r.json()))
        await runner.cleanup()
        await dam.stop()
        return out

    out = asyncio.run(go())
    assert [o[0] for o in out] == [200, 200, 429]
    _, retry_after, doc = out[2]
    assert int(retry_after) >= 1 and retry_after == str(int(retry_after))
    assert doc["status"] == "denied" and "cap" in doc["error"]


def test_a_full_backlog_refuses_submits_with_503_semantics(tmp_path):
    from live.dam import DamUnavailable

    async def go():
        gate = asyncio.Event()

        class Hanging(ScriptedOutbound):
            async def request(self, *a, **k):
                await gate.wait()

        s = msgspec.structs.replace(_settings(), max_active_jobs=2)
        dam = LiveDam(s, Journal(tmp_path, sync="normal"), outbound=Hanging([]))
        await dam.start()
        await dam.submit("cust", b'{"url":"https://api.example.com/1"}')
        await dam.submit("cust", b'{"url":"https://api.example.com/2"}')
        with pytest.raises(DamUnavailable, match="2 unfinished jobs"):
            await dam.submit("cust", b'{"url":"https://api.example.com/3"}')
        dup = await dam.submit("cust", b'{"url":"https://api.example.com/1"}')
        refused = dam.counters.get("apidam_jobs_refused_total", (("reason", "backlog_full"),))
        await dam.stop()
        return dup, refused

    dup, refused = asyncio.run(go())
    assert dup.duplicate and refused == 1  # a duplicate still gets its answer


def test_the_journal_keeps_its_seed_and_stops_writing_after_a_failure(tmp_path):
    j = Journal(tmp_path, seed=7)
    j.open(0)
    assert j.seed == 7
    again = Journal(tmp_path, seed=99)  # a restart with another --seed replays with the first
    again.open(0)
    assert again.seed == 7

    async def go():
        j = Journal(tmp_path / "x", sync="normal")
        j.open(0)
        j._db.close()  # the disk goes away
        j.append("job_1", 1, Submit())
        with pytest.raises(JournalError):
            await j.durable()
        j.append("job_1", 2, Submit())  # dropped: a hole would replay to a wrong state
        assert j._buf == [] and j.failure is not None

    asyncio.run(go())
