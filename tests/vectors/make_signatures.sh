#!/usr/bin/env bash
# Regenerates signatures.json with openssl, independently of engine/signing.py.
# Usage: bash tests/vectors/make_signatures.sh > tests/vectors/signatures.json
set -euo pipefail
SECRET='whsec_apidam_test_secret_0001'
OTHER='whsec_apidam_other_secret_002'
T=1700000000
BODY='{"job_id":"job_1700000000000_1","status":"success","response":{"status_code":200}}'
UBODY='{"job_id":"job_2","metadata":{"name":"Zoë – 東京"}}'
mac() { printf '%s' "$2.$3" | openssl dgst -sha256 -hmac "$1" -r | cut -d' ' -f1; }
good=$(mac "$SECRET" "$T" "$BODY")
other=$(mac "$OTHER" "$T" "$BODY")
ugood=$(mac "$SECRET" "$T" "$UBODY")
empty=$(mac "$SECRET" "$T" "")
upper=$(printf '%s' "$good" | tr 'a-f' 'A-F')
case_() { # name body header now ok reason
  printf '  {"name": "%s", "secret": "%s", "body": %s, "header": %s, "now": %s, "ok": %s, "reason": "%s"}' \
    "$1" "${7:-$SECRET}" "$(printf '%s' "$2" | python3 -c 'import json,sys;print(json.dumps(sys.stdin.read()))')" \
    "$(printf '%s' "$3" | python3 -c 'import json,sys;print(json.dumps(sys.stdin.read()))')" "$4" "$5" "$6"
}
echo '{"tolerance": 300, "cases": ['
{
case_ valid "$BODY" "t=$T,v1=$good" $((T+10)) true valid; echo ,
case_ valid_at_tolerance_edge "$BODY" "t=$T,v1=$good" $((T+300)) true valid; echo ,
case_ tampered_body "${BODY/200/201}" "t=$T,v1=$good" $((T+10)) false signature_mismatch; echo ,
case_ wrong_secret "$BODY" "t=$T,v1=$other" $((T+10)) false signature_mismatch; echo ,
case_ expired "$BODY" "t=$T,v1=$good" $((T+301)) false "timestamp_expired (diff=301s, tolerance=300s)"; echo ,
case_ from_the_future "$BODY" "t=$T,v1=$good" $((T-301)) false "timestamp_in_future (diff=301s, tolerance=300s)"; echo ,
case_ tampered_timestamp "$BODY" "t=$((T+1)),v1=$good" $((T+10)) false signature_mismatch; echo ,
case_ missing_t "$BODY" "v1=$good" $((T+10)) false missing_timestamp; echo ,
case_ non_numeric_t "$BODY" "t=abc,v1=$good" $((T+10)) false invalid_timestamp; echo ,
case_ non_finite_t "$BODY" "t=inf,v1=$good" $((T+10)) false invalid_timestamp; echo ,
case_ fractional_t "$BODY" "t=$T.5,v1=$good" $((T+10)) false invalid_timestamp; echo ,
case_ missing_v1 "$BODY" "t=$T" $((T+10)) false missing_v1_signature; echo ,
case_ two_v1_second_valid "$BODY" "t=$T,v1=$other,v1=$good" $((T+10)) true valid; echo ,
case_ two_v1_none_valid "$BODY" "t=$T,v1=$other,v1=deadbeef" $((T+10)) false signature_mismatch; echo ,
case_ unknown_scheme_only "$BODY" "t=$T,v0=$good" $((T+10)) false missing_v1_signature; echo ,
case_ unknown_scheme_ignored "$BODY" "t=$T,v0=zzz,v1=$good" $((T+10)) true valid; echo ,
case_ whitespace_after_comma "$BODY" "t=$T, v1=$good" $((T+10)) true valid; echo ,
case_ whitespace_around_equals "$BODY" " t = $T ,  v1 = $good " $((T+10)) true valid; echo ,
case_ reordered_parts "$BODY" "v1=$good,t=$T" $((T+10)) true valid; echo ,
case_ empty_header "$BODY" "" $((T+10)) false no_signature_header; echo ,
case_ uppercase_hex_rejected "$BODY" "t=$T,v1=$upper" $((T+10)) false signature_mismatch; echo ,
case_ unicode_body "$UBODY" "t=$T,v1=$ugood" $((T+10)) true valid; echo ,
case_ empty_body "" "t=$T,v1=$empty" $((T+10)) true valid; echo ,
case_ signed_with_other_secret_verifies_with_it "$BODY" "t=$T,v1=$other" $((T+10)) true valid "$OTHER"; echo
} | sed 's/^/  /'
echo ']}'
