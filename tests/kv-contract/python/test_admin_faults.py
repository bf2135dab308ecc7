"""The admin API, fault injection, throttling by the published weighted limits, RBAC
answers and the bearer challenge."""

import hashlib
import time

import pytest
import requests

from conftest import b64url, make_credential, unique

DIGEST = b64url(hashlib.sha256(b"x").digest())


def sign(raw, key="rsa2048", **kw):
    return raw.call_once("POST", f"/keys/{key}/sign", {"alg": "RS256", "value": DIGEST}, **kw)


def test_stats_count_operations_keys_principals_statuses(ready, raw, clean_faults):
    raw.token("vault")  # token requests count too ("token"); get it before the reset
    assert raw.admin("POST", "/stats/reset").status_code == 200
    assert raw.admin("GET", "/stats").json()["total_requests"] == 0
    for _ in range(3):
        assert sign(raw).status_code == 200
    raw.call_once("GET", "/keys/p256")
    raw.call_once("GET", "/keys?maxresults=1")
    s = raw.admin("GET", "/stats").json()
    assert s["total_requests"] == 5
    assert s["by_operation"] == {"sign": 3, "get_key": 1, "list_keys": 1}
    assert s["by_key"] == {"rsa2048": 3, "p256": 1}
    assert s["by_principal"] == {ready["client_id"]: 5}
    assert s["by_status"] == {"200": 5}


def test_one_shot_faults_fifo(raw, clean_faults):
    r = raw.admin("POST", "/faults/once", {"operation": "sign", "status": 429, "retry_after_s": 2, "times": 2})
    assert r.status_code == 200
    raw.admin("POST", "/faults/once", {"operation": "sign", "status": 503})
    raw.admin("POST", "/faults/once", {"operation": "decrypt", "status": 500})
    r1, r2 = sign(raw), sign(raw)
    for r in (r1, r2):
        assert r.status_code == 429 and r.headers["Retry-After"] == "2"
        assert r.json()["error"]["code"] == "Throttled"
    r3 = sign(raw)
    assert r3.status_code == 503 and r3.json()["error"]["code"] == "ServiceUnavailable"
    assert sign(raw).status_code == 200
    assert raw.admin("GET", "/faults").json()["once"][0]["operation"] == "decrypt"
    assert raw.admin("POST", "/faults/once", {"operation": "sign", "status": 200}).status_code == 400


def test_sdk_retries_through_one_shot_503(key_client, raw, clean_faults):
    from test_sdk_keys import remote_crypto
    from azure.keyvault.keys.crypto import SignatureAlgorithm

    crypto = remote_crypto(key_client, key_client.get_key("rsa2048"))
    raw.admin("POST", "/stats/reset")
    raw.admin("POST", "/faults/once", {"operation": "sign", "status": 503, "retry_after_s": 1})
    t0 = time.time()
    assert crypto.sign(SignatureAlgorithm.rs256, hashlib.sha256(b"x").digest()).signature
    assert time.time() - t0 >= 0.9, "the SDK waited for Retry-After"
    s = raw.admin("GET", "/stats").json()
    assert s["by_operation"]["sign"] == 2 and s["by_status"]["503"] == 1


def test_latency_and_jitter(raw, clean_faults):
    raw.call_once("GET", "/keys/p256")  # warm connection
    raw.admin("PUT", "/faults", {"latency_ms": 150, "jitter_ms": 50})
    t0 = time.time()
    raw.call_once("GET", "/keys/p256")
    elapsed = time.time() - t0
    assert 0.15 <= elapsed < 1.0, elapsed


def test_error_rates(raw, clean_faults):
    raw.admin("PUT", "/faults", {"error_rate_500": 1.0})
    r = raw.call_once("GET", "/keys/p256")
    assert r.status_code == 500 and r.json()["error"]["code"] == "InternalServerError"
    raw.admin("PUT", "/faults", {"error_rate_503": 1.0})
    assert raw.call_once("GET", "/keys/p256").status_code == 503
    raw.admin("PUT", "/faults", {"error_rate_500": 0.5, "error_rate_503": 0.5})
    codes = {raw.call_once("GET", "/keys/p256").status_code for _ in range(40)}
    assert codes == {500, 503}
    assert raw.admin("PUT", "/faults", {"error_rate_500": 2}).status_code == 400
    assert raw.admin("PUT", "/faults", {"nonsense": 1}).status_code == 400


def test_connection_reset_and_stall(raw, clean_faults):
    raw.admin("PUT", "/faults", {"reset_rate": 1.0})
    with pytest.raises(requests.exceptions.ConnectionError):
        raw.call_once("GET", "/keys/p256")
    raw.admin("DELETE", "/faults")
    raw.admin("POST", "/faults/once", {"operation": "get_key", "reset": True})
    with pytest.raises(requests.exceptions.ConnectionError):
        raw.call_once("GET", "/keys/p256")
    assert raw.call_once("GET", "/keys/p256").status_code == 200
    raw.admin("PUT", "/faults", {"stall_ms": 3000})
    with pytest.raises(requests.exceptions.Timeout):
        raw.call_once("GET", "/keys/p256", timeout=0.5)
    raw.admin("PUT", "/faults", {"stall_ms": 200})
    t0 = time.time()
    with pytest.raises(requests.exceptions.ConnectionError):
        raw.call_once("GET", "/keys/p256")
    assert time.time() - t0 >= 0.2
    raw.admin("DELETE", "/faults")
    assert raw.call_once("GET", "/keys/p256").status_code == 200


def test_throttling_is_weighted_by_key_size(raw, clean_faults):
    # scale 0.01: RSA-3072 software keys allow 10 transactions per window, RSA-2048 40.
    raw.admin("PUT", "/faults", {"throttle": {"scale": 0.01, "retry_after": True}})
    codes = [raw.call_once("GET", "/keys/rsa3072").status_code for _ in range(11)]
    assert codes[:10] == [200] * 10 and codes[10] == 429
    r = raw.call_once("GET", "/keys/rsa3072")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.json() == {"error": {"code": "Throttled", "message": "Request was not processed because too many "
                                  "requests were received. Reason: VaultRequestTypeLimitReached"}}
    raw.admin("PUT", "/faults", {"throttle": {"scale": 0.01, "retry_after": False}})
    codes = [raw.call_once("GET", "/keys/rsa2048").status_code for _ in range(41)]
    assert codes[:40] == [200] * 40 and codes[40] == 429
    assert "Retry-After" not in raw.call_once("GET", "/keys/rsa2048").headers
    # Managed HSM does not throttle cryptographic operations.
    assert all(raw.call_once("GET", "/keys/rsa2048", kind="hsm").status_code == 200 for _ in range(50))


def test_key_creation_limit(raw, clean_faults):
    raw.admin("PUT", "/faults", {"throttle": {"scale": 0.1}})  # 2 software key creations per window
    codes = [raw.call_once("POST", f"/keys/{unique('thr')}/create", {"kty": "EC"}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_published_creation_limits(raw, clean_faults):
    # The published limits themselves (scale 1): 20 software key creations per 10 s, and 10
    # HSM ones, counted in one weighted window; an HSM-backed certificate creation weighs
    # as an HSM key creation (its key type is in the certificate policy).
    raw.admin("PUT", "/faults", {"throttle": {"scale": 1.0}})
    codes = [raw.call_once("POST", f"/keys/{unique('pub')}/create", {"kty": "EC"}).status_code for _ in range(21)]
    assert codes == [200] * 20 + [429]

    def hsm_certificate():
        policy = {"key_props": {"kty": "EC-HSM", "crv": "P-256", "exportable": False}, "x509_props": {"subject": "CN=limit", "key_usage": ["digitalSignature"]},
                  "issuer": {"name": "Self"}}
        r = raw.call_once("POST", f"/certificates/{unique('hsmcert')}/create", {"policy": policy})
        assert r.status_code in (202, 429), r.text
        return r.status_code

    raw.admin("PUT", "/faults", {"throttle": {"scale": 1.0}})  # a fresh window
    codes = [hsm_certificate() for _ in range(11)]
    assert codes == [202] * 10 + [429]


def test_rbac_denials_name_the_action(ready, raw):
    t = raw.token("vault", "key-scoped-app", "key-scoped-secret")
    assert sign(raw, token=t).status_code == 200
    r = sign(raw, key="rsa3072", token=t)
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["code"] == "Forbidden" and err["innererror"] == {"code": "ForbiddenByRbac"}
    msg = err["message"]
    assert msg.startswith("Caller is not authorized to perform action on resource.\r\n")
    assert "Caller: appid=key-scoped-app;oid=" in msg
    assert "Action: 'Microsoft.KeyVault/vaults/keys/sign/action'" in msg
    assert "/vaults/testvault/keys/rsa3072'" in msg or f"/vaults/{ready['vault_name']}/keys/rsa3072'" in msg
    assert "DecisionReason: 'DeniedWithNoValidRBAC'" in msg
    assert raw.call_once("GET", "/keys", token=t).status_code == 403
    cu = raw.token("vault", "crypto-user-app", "crypto-user-secret")
    assert sign(raw, token=cu).status_code == 200
    r = raw.call_once("POST", f"/keys/{unique('cu')}/create", {"kty": "EC"}, token=cu)
    assert r.status_code == 403 and "keys/create/action" in r.json()["error"]["message"]
    nobody = raw.token("vault", "nobody-app", "nobody-secret")
    assert raw.call_once("GET", "/keys/rsa2048", token=nobody).status_code == 403
    auditor = raw.token("hsm", "reader-app", "reader-secret")
    assert raw.call_once("GET", "/keys/rsa2048", kind="hsm", token=auditor).status_code == 200
    r = sign(raw, kind="hsm", token=auditor)
    assert r.status_code == 403 and "Microsoft.KeyVault/managedHsm/keys/sign/action" in r.json()["error"]["message"]
    # The default principal is a Crypto User + Officer on the HSM: it may purge.
    assert raw.call_once("POST", "/keys/x/create", {"kty": "EC"}, kind="hsm", token=auditor).status_code == 403


def test_bearer_challenge_shapes(ready, raw):
    for kind, resource in (("vault", ready["vault_resource"]), ("hsm", ready["hsm_resource"])):
        r = raw.call_once("POST", "/keys/rsa2048/sign", kind=kind, auth=False, headers={"Content-Length": "0"})
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == (
            f'Bearer authorization="{ready["authority_host"]}/{ready["tenant_id"]}", resource="{resource}"')
        if kind == "vault":
            assert r.json() == {"error": {"code": "Unauthorized",
                                          "message": "AKV10000: Request is missing a Bearer, PoP, or MTLS_POP token."}}
        else:
            assert r.content == b""


def test_latest_version_path_forms_and_case(raw):
    kid = raw.call_once("GET", "/keys/rsa2048").json()["key"]["kid"]
    for path in ("/keys/rsa2048/", "/KEYS/RSA2048", f"/keys/rsa2048/{kid.rsplit('/', 1)[1].upper()}"):
        assert raw.call_once("GET", path).json()["key"]["kid"] == kid, path
    for path in ("/keys/rsa2048//sign", "/keys/rsa2048/sign", "/Keys/rsa2048/SIGN"):
        r = raw.call_once("POST", path, {"alg": "RS256", "value": DIGEST})
        assert r.status_code == 200 and r.json()["kid"] == kid, path
    for op in ("wrapKey", "wrapkey", "WRAPKEY"):
        assert raw.call_once("POST", f"/keys/rsa2048//{op}", {"alg": "RSA-OAEP", "value": "AQID"}).status_code == 200


def test_client_request_id_is_echoed_and_headers(raw):
    r = raw.call_once("GET", "/keys/p256", headers={"x-ms-client-request-id": "abc-123"})
    assert r.headers["x-ms-client-request-id"] == "abc-123"
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert len(r.headers["x-ms-request-id"]) == 36
    h = raw.call_once("GET", "/keys/p256", kind="hsm").headers
    assert "x-ms-server-latency" in h and "Content-Security-Policy" in h


def test_managed_identity_endpoint_checks_header(ready):
    url = ready["identity_endpoint"] + "?api-version=2019-08-01&resource=" + ready["vault_resource"]
    assert requests.get(url, timeout=10).status_code == 401
    r = requests.get(url, headers={"X-IDENTITY-HEADER": ready["identity_header"]}, timeout=10)
    assert r.status_code == 200 and isinstance(r.json()["expires_on"], str)
    assert r.json()["resource"] == ready["vault_resource"]


def test_sdk_with_reader_gets_forbidden(ready):
    from azure.core.exceptions import HttpResponseError
    from azure.keyvault.keys import KeyClient

    client = KeyClient(ready["vault_url"], make_credential(ready, "nobody-app", "nobody-secret"))
    with pytest.raises(HttpResponseError) as e:
        client.get_key("rsa2048")
    assert e.value.status_code == 403 and e.value.error.code == "Forbidden"
