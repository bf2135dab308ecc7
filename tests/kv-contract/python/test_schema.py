"""Response bodies validate against the definitions of keys.2026-04-01.json and
certificates.2026-04-01.json (success and error responses alike)."""

import hashlib
import time
from urllib.parse import urlparse

import pytest

from azure_shared import spec_for
from conftest import b64url, unique


class Recorder:
    def __init__(self, raw):
        self.raw = raw
        self.seen = []

    def __call__(self, method, path, body=None, kind="vault", api="2026-04-01", token=None):
        r = self.raw.call(method, path, body, kind=kind, api=api, token=token)
        payload = r.json() if r.content else None
        self.seen.append((method, path, r.status_code, payload))
        return r


def scenario(raw):
    """Exercises every implemented operation on a vault and an HSM."""
    rec = Recorder(raw)
    for kind in ("vault", "hsm"):
        rsa_name, ec_name = unique("sch-rsa"), unique("sch-ec")
        k = rec("POST", f"/keys/{rsa_name}/create", {"kty": "RSA", "key_size": 2048, "tags": {"t": "v"}}, kind).json()
        version = k["key"]["kid"].rsplit("/", 1)[1]
        rec("POST", f"/keys/{ec_name}/create", {"kty": "EC", "crv": "P-384"}, kind)
        rec("GET", f"/keys/{rsa_name}", kind=kind)
        rec("GET", f"/keys/{rsa_name}/{version}", kind=kind)
        rec("GET", "/keys?maxresults=2", kind=kind)
        rec("GET", f"/keys/{rsa_name}/versions", kind=kind)
        rec("PATCH", f"/keys/{rsa_name}/{version}", {"attributes": {"exp": 4102444800}, "tags": {"a": "b"}}, kind)
        digest = b64url(hashlib.sha256(b"x").digest())
        sig = rec("POST", f"/keys/{rsa_name}/{version}/sign", {"alg": "PS256", "value": digest}, kind).json()["value"]
        rec("POST", f"/keys/{rsa_name}/{version}/verify", {"alg": "PS256", "digest": digest, "value": sig}, kind)
        ct = rec("POST", f"/keys/{rsa_name}/{version}/encrypt", {"alg": "RSA-OAEP-256", "value": "AQID"}, kind).json()["value"]
        rec("POST", f"/keys/{rsa_name}/{version}/decrypt", {"alg": "RSA-OAEP-256", "value": ct}, kind)
        w = rec("POST", f"/keys/{rsa_name}/{version}/wrapkey", {"alg": "RSA-OAEP", "value": "AQID"}, kind).json()["value"]
        rec("POST", f"/keys/{rsa_name}/{version}/unwrapkey", {"alg": "RSA-OAEP", "value": w}, kind)
        blob = rec("POST", f"/keys/{ec_name}/backup", kind=kind).json()["value"]
        rec("POST", f"/keys/{rsa_name}/rotate", kind=kind)
        rec("GET", f"/keys/{rsa_name}/rotationpolicy", kind=kind)
        rec("PUT", f"/keys/{rsa_name}/rotationpolicy",
            {"lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}],
             "attributes": {"expiryTime": "P90D"}}, kind)
        rec("DELETE", f"/keys/{ec_name}", kind=kind)
        time.sleep(0.9)  # past delete_window_ms (emulator.toml)
        rec("GET", f"/deletedkeys/{ec_name}", kind=kind)
        rec("GET", "/deletedkeys", kind=kind)
        rec("POST", f"/deletedkeys/{ec_name}/recover", kind=kind)
        rec("DELETE", f"/keys/{ec_name}", kind=kind)
        time.sleep(0.9)  # past delete_window_ms (emulator.toml)
        rec("DELETE", f"/deletedkeys/{ec_name}", kind=kind)
        rec("POST", "/keys/restore", {"value": blob}, kind)
        # error bodies
        rec("GET", f"/keys/{unique('missing')}", kind=kind)
        rec("POST", f"/keys/{rsa_name}/sign", {"alg": "RS256", "value": "AAAA"}, kind)
        reader = raw.token(kind, "reader-app", "reader-secret")
        rec("POST", f"/keys/{rsa_name}/sign", {"alg": "RS256", "value": digest}, kind, token=reader)
    rec("POST", "/rng", {"count": 16}, "hsm")
    name = unique("sch-cert")
    rec("POST", f"/certificates/{name}/create",
        {"policy": {"issuer": {"name": "Self"}, "x509_props": {"subject": "CN=schema"}}})
    rec("GET", f"/certificates/{name}/pending")
    rec("GET", f"/certificates/{name}")
    cver = rec("GET", f"/certificates/{name}").json()["id"].rsplit("/", 1)[1]
    rec("GET", f"/certificates/{name}/{cver}")
    rec("GET", "/certificates?maxresults=3")
    rec("GET", f"/certificates/{name}/versions")
    rec("GET", f"/certificates/{name}/policy")
    rec("PATCH", f"/certificates/{name}/{cver}", {"tags": {"x": "y"}})
    rec("DELETE", f"/certificates/{name}")
    time.sleep(0.9)  # past delete_window_ms (emulator.toml)
    rec("GET", f"/deletedcertificates/{name}")
    rec("GET", "/deletedcertificates")
    rec("POST", f"/deletedcertificates/{name}/recover")
    rec("GET", f"/certificates/{unique('missing')}")
    return rec.seen


@pytest.fixture(scope="module")
def exchanges(raw):
    return scenario(raw)


def test_every_response_validates(exchanges):
    assert len(exchanges) > 60
    failures = []
    for method, path, status, body in exchanges:
        p = urlparse(path).path
        errors = spec_for(p).errors(method, p, status, body)
        if errors:
            failures.append(f"{method} {path} -> {status}: {errors[:3]}")
    assert not failures, "\n".join(failures)


def test_scenario_hit_success_and_error_statuses(exchanges):
    statuses = {s for _, _, s, _ in exchanges}
    assert {200, 202, 204, 400, 403, 404}.issubset(statuses), statuses


def test_validator_rejects_a_wrong_body():
    spec = spec_for("/keys/x")
    assert spec.errors("GET", "/keys/x/", 200, {"key": {"kty": "NOPE"}, "attributes": {"created": "yesterday"}})
    assert spec.errors("GET", "/keys/x/", 404, {"error": {"code": 1}})
    assert not spec.errors("GET", "/keys/x/", 404, {"error": {"code": "KeyNotFound", "message": "m"}})
