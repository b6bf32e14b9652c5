"""Idempotency keys and the dedupe table (docs/SEMANTICS.md §3)."""

import hashlib
import json

import numpy as np
import pytest

from engine import DedupeTable, IdempotentStrategy, derive_key, hash_key, parse_job, unique_key

H = 3600 * 1_000_000


def test_hash_key_is_sha256_of_compact_json_array():
    expected = hashlib.sha256(
        b'["cust_1","POST","https://api.stripe.com/v1/charges","{\\"amount\\":1000}"]').hexdigest()
    assert hash_key("cust_1", "post", "https://api.stripe.com/v1/charges",
                    '{"amount":1000}') == expected
    assert hash_key("c", "GET", "https://a.com", None) == hashlib.sha256(
        json.dumps(["c", "GET", "https://a.com", ""], separators=(",", ":")).encode()).hexdigest()


def test_hash_key_is_scoped_by_customer_and_body():
    k = hash_key("a", "GET", "https://x.com", "b")
    assert k != hash_key("b", "GET", "https://x.com", "b")
    assert k != hash_key("a", "GET", "https://x.com", "c")
    assert k != hash_key("a", "POST", "https://x.com", "b")


def test_derive_key_custom_wins_then_strategy():
    custom = parse_job({"url": "https://a.com", "idempotent_key": "order-1"}, "c")
    assert derive_key(custom, IdempotentStrategy.UNIQUE) == "order-1"
    plain = parse_job({"url": "https://a.com", "body": "x"}, "c")
    assert derive_key(plain) == hash_key("c", "GET", "https://a.com", "x")
    a = derive_key(plain, IdempotentStrategy.UNIQUE, np.random.default_rng(1))
    b = derive_key(plain, IdempotentStrategy.UNIQUE, np.random.default_rng(1))
    assert a == b and a != derive_key(plain, IdempotentStrategy.UNIQUE, np.random.default_rng(2))
    with pytest.raises(ValueError):
        derive_key(plain, IdempotentStrategy.UNIQUE)


def test_unique_keys_do_not_repeat():
    rng = np.random.default_rng(0)
    keys = {unique_key(rng) for _ in range(10_000)}
    assert len(keys) == 10_000


def test_duplicate_returns_original_job_with_current_status():
    t = DedupeTable()
    first = t.submit("c", "k", "job_1_1", now=0)
    assert (first.job_id, first.duplicate, first.status) == ("job_1_1", False, "queued")
    t.set_status("job_1_1", "racing", now=5)
    dup = t.submit("c", "k", "job_1_2", now=10)
    assert (dup.job_id, dup.duplicate, dup.status) == ("job_1_1", True, "racing")
    assert len(t) == 1


def test_scoped_per_customer():
    t = DedupeTable()
    assert not t.submit("a", "k", "j1", 0).duplicate
    assert not t.submit("b", "k", "j2", 0).duplicate


def test_active_jobs_never_expire_and_retention_runs_from_terminal_state():
    t = DedupeTable(retention_us=24 * H)
    t.submit("c", "k", "j1", 0)
    assert t.submit("c", "k", "j2", 1000 * H).duplicate  # still active after 1000 h
    t.set_status("j1", "succeeded", 1000 * H, terminal=True)
    assert t.submit("c", "k", "j3", 1000 * H + 24 * H - 1).job_id == "j1"
    fresh = t.submit("c", "k", "j4", 1000 * H + 24 * H)
    assert (fresh.job_id, fresh.duplicate) == ("j4", False)


def test_second_terminal_status_does_not_extend_retention():
    t = DedupeTable(retention_us=10)
    t.submit("c", "k", "j1", 0)
    t.set_status("j1", "succeeded", 100, terminal=True)
    t.set_status("j1", "delivered", 105, terminal=True)
    assert t.lookup("c", "k", 109).status == "delivered"
    assert t.lookup("c", "k", 110) is None


def test_forget_frees_the_key():
    t = DedupeTable()
    t.submit("c", "k", "j1", 0)
    t.forget("j1")
    assert not t.submit("c", "k", "j2", 0).duplicate


def test_expire_costs_o_expired_not_o_table():
    t = DedupeTable(retention_us=10)
    for i in range(20_000):
        t.submit("c", f"k{i}", f"j{i}", 0)
    for i in range(5):
        t.set_status(f"j{i}", "failed", 0, terminal=True)
    # Only the five terminal entries are in the deadline heap; active ones are never scanned.
    assert len(t._deadlines) == 5
    assert t.expire(10) == 5
    assert len(t) == 19_995


def test_reusing_a_job_id_is_refused():
    t = DedupeTable()
    t.submit("c", "k1", "j1", 0)
    with pytest.raises(ValueError):
        t.submit("c", "k2", "j1", 0)
