"""Signatures: openssl-computed vectors, round trips, rotation and the secret store."""

import json
import pathlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import (
    SecretError,
    SecretStore,
    WebhookVerificationError,
    mask_secret,
    sign_webhook,
    try_verify_with_secrets,
    verify_webhook_signature,
    verify_webhook_signature_strict,
)

VECTORS = json.loads((pathlib.Path(__file__).parent / "vectors" / "signatures.json").read_text())
S1 = "whsec_primary_secret_0001"
S2 = "whsec_secondary_secret_02"


def test_vector_file_has_at_least_twelve_cases():
    assert len(VECTORS["cases"]) >= 12


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_openssl_vectors(case):
    got = verify_webhook_signature(case["body"].encode(), case["header"], case["secret"],
                                   VECTORS["tolerance"], case["now"])
    assert got == (case["ok"], case["reason"])


def test_sign_matches_the_valid_vector():
    case = next(c for c in VECTORS["cases"] if c["name"] == "valid")
    t = int(case["header"].split(",")[0][2:])
    assert sign_webhook(case["body"].encode(), case["secret"], t) == case["header"]
    assert sign_webhook(case["body"], case["secret"], t) == case["header"]  # str == utf-8 bytes


@given(st.binary(max_size=200), st.integers(0, 2**40))
def test_sign_then_verify_round_trips(body, t):
    assert verify_webhook_signature(body, sign_webhook(body, S1, t), S1, now=t) == (True, "valid")


@given(st.binary(min_size=1, max_size=100), st.integers(0, 2**40), st.integers(0, 99))
def test_any_change_to_body_timestamp_or_secret_fails(body, t, i):
    header = sign_webhook(body, S1, t)
    i %= len(body)
    changed = body[:i] + bytes([body[i] ^ 1]) + body[i + 1:]
    assert verify_webhook_signature(changed, header, S1, now=t)[0] is False
    bumped = header.replace(f"t={t},", f"t={t + 1},")
    assert verify_webhook_signature(body, bumped, S1, now=t)[0] is False
    assert verify_webhook_signature(body, header, S1 + "x", now=t)[0] is False


@given(st.text(max_size=60), st.binary(max_size=30))
def test_arbitrary_headers_never_raise(header, body):
    ok, reason = verify_webhook_signature(body, header, S1, now=0)
    assert isinstance(ok, bool) and isinstance(reason, str)


def test_none_header_and_empty_secret():
    assert verify_webhook_signature(b"x", None, S1) == (False, "no_signature_header")
    assert verify_webhook_signature(b"x", "t=1,v1=ab", "")[0] is False


def test_strict_raises_with_reason():
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook_signature_strict(b"x", "t=1,v1=00", S1, now=1)
    assert info.value.reason == "signature_mismatch"
    verify_webhook_signature_strict(b"x", sign_webhook(b"x", S1, 1), S1, now=1)


def test_try_verify_with_secrets():
    h1, h2 = sign_webhook(b"b", S1, 10), sign_webhook(b"b", S2, 10)
    assert try_verify_with_secrets(b"b", h1, S1, S2, now=10) == (True, "valid_primary")
    assert try_verify_with_secrets(b"b", h2, S1, S2, now=10) == (True, "valid_secondary")
    assert try_verify_with_secrets(b"b", h2, S1, now=10) == (False, "signature_mismatch")
    ok, reason = try_verify_with_secrets(b"c", h1, S1, S2, now=10)
    assert not ok and reason.startswith("both_secrets_failed (primary: signature_mismatch")


def test_mask_is_first4_stars_last3():
    assert mask_secret("your_secret_min_16_chars") == "your****ars"
    assert mask_secret("optional_backup_min_16_chars") == "opti****ars"


def test_secret_store_lifecycle():
    store = SecretStore()
    with pytest.raises(SecretError, match="no webhook secret"):
        store.get("c")
    with pytest.raises(SecretError, match="at least 16"):
        store.create("c", "short")
    with pytest.raises(SecretError, match="secondary_secret"):
        store.create("c", S1, "short")
    store.create("c", S1)
    assert store.get("c") == {"customer_id": "c", "primary_secret": "whse****001",
                              "secondary_secret": None, "has_secondary": False}
    store.rotate("c", S2, now=0, secondary_ttl_us=1_000_000)
    got = store.get("c", now=0)
    assert got["primary_secret"] == mask_secret(S2) and got["has_secondary"] is True
    old_header = sign_webhook(b"p", S1, 0)
    assert store.verify("c", b"p", old_header, now_us=999_999) == (True, "valid_secondary")
    assert store.verify("c", b"p", old_header, now_us=1_000_000)[0] is False  # expired
    assert store.get("c", now=1_000_000)["has_secondary"] is False
    with pytest.raises(SecretError, match="equals"):
        store.rotate("c", S2)
    assert store.delete("c") == {"status": "ok", "message": "Webhook secrets deleted"}
    with pytest.raises(SecretError):
        store.delete("c")


def test_rotation_without_expiry_keeps_secondary():
    store = SecretStore()
    store.create("c", S1)
    store.rotate("c", S2, now=5)
    assert store.secrets("c", now=10**15).secondary == S1


@pytest.mark.parametrize("now,tolerance", [
    (float("nan"), 300), (float("inf"), 300), (-float("inf"), 300), (True, 300),
    (1_700_000_000, float("nan")), (1_700_000_000, float("inf")), (1_700_000_000, -1),
    ("1700000000", 300),
])
def test_non_finite_clock_or_tolerance_is_never_valid(now, tolerance):
    header = sign_webhook(b"x", S1, 1_000)  # ancient: only a broken check would pass it
    ok, reason = verify_webhook_signature(b"x", header, S1, tolerance=tolerance, now=now)
    assert not ok and reason.startswith("verification_error")


def test_payload_of_another_type_is_an_error_not_an_allocation():
    header = sign_webhook(b"x", S1, 1_000)
    ok, reason = verify_webhook_signature(10**12, header, S1, now=1_000)  # bytes(10**12): 1 TB
    assert not ok and "bytes or str" in reason
    with pytest.raises(TypeError, match="bytes or str"):
        sign_webhook(10**12, S1, 1_000)


@pytest.mark.parametrize("secret,error", [("", SecretError), ("abc", SecretError),
                                          ("x" * 15, SecretError), (None, TypeError),
                                          (b"whsec_bytes_secret_0001", TypeError)])
def test_sign_refuses_secrets_the_secret_store_would_refuse(secret, error):
    with pytest.raises(error):
        sign_webhook(b"x", secret, 1_000)
