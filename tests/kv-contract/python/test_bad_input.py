"""Bad input gets Azure's 400 BadParameter shape (FACTS.md §5), never a crash."""

import hashlib

import pytest

from azure_shared import spec_for
from conftest import assert_bad_parameter, b64url, unique

DIGEST = b64url(hashlib.sha256(b"x").digest())


def test_unknown_and_missing_api_version(raw):
    for api in ("9.9", "2099-01-01", "latest", ""):
        r = raw.call("GET", "/keys/rsa2048", api=api)
        assert_bad_parameter(r)
        assert not spec_for("/keys/rsa2048").errors("GET", "/keys/rsa2048", 400, r.json())
    assert_bad_parameter(raw.call("GET", "/keys/rsa2048", api=None))


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b"\"text\"", b"{\"alg\": \"RS256\", \"value\": ", b"\xff\xfe", b"   "],
)
def test_malformed_json(raw, body):
    r = raw.call("POST", "/keys/rsa2048/sign", raw_body=body, headers={"Content-Type": "application/json"})
    assert_bad_parameter(r)


@pytest.mark.parametrize(
    "key,alg,length",
    [("rsa2048", "RS256", 20), ("rsa2048", "RS384", 32), ("rsa2048", "PS512", 48), ("p256", "ES256", 48),
     ("p256", "ES256", 0)],
)
def test_wrong_digest_length(raw, key, alg, length):
    r = raw.call("POST", f"/keys/{key}/sign", {"alg": alg, "value": b64url(bytes(length))})
    assert_bad_parameter(r)
    assert "digest" in r.json()["error"]["message"].lower() or length == 0


@pytest.mark.parametrize("alg", ["RS999", "rs256", "", "ES256", "HS256"])
def test_unknown_or_unsuitable_algorithm(raw, alg):
    r = raw.call("POST", "/keys/rsa2048/sign", {"alg": alg, "value": DIGEST})
    assert_bad_parameter(r)


def test_oversized_payload(raw):
    r = raw.call("POST", "/keys/rsa2048/encrypt", {"alg": "RSA-OAEP", "value": "A" * 400_000})
    assert_bad_parameter(r)
    r = raw.call("POST", "/keys/rsa2048/encrypt", {"alg": "RSA-OAEP", "value": b64url(bytes(215))})
    assert_bad_parameter(r)  # over k - 42 bytes for RSA-2048 OAEP
    r = raw.call("POST", "/keys/rsa2048/decrypt", {"alg": "RSA-OAEP", "value": b64url(bytes(100))})
    assert_bad_parameter(r)


@pytest.mark.parametrize(
    "body",
    [
        {"alg": "RS256"},
        {"value": DIGEST},
        {"alg": 5, "value": DIGEST},
        {"alg": "RS256", "value": "!!!not base64!!!"},
        {"alg": "RS256", "value": 12},
    ],
)
def test_missing_or_mistyped_fields(raw, body):
    assert_bad_parameter(raw.call("POST", "/keys/rsa2048/sign", body))


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"kty": "XYZ"},
        {"kty": "RSA", "key_size": 1024},
        {"kty": "RSA", "key_size": "2048"},
        {"kty": "EC", "crv": "P-999"},
        {"kty": "EC", "key_ops": ["sign", "fly"]},
        {"kty": "EC", "key_ops": ["encrypt"]},
        {"kty": "EC", "tags": {"a": 1}},
        {"kty": "EC", "tags": {f"t{i}": "v" for i in range(16)}},
        {"kty": "EC", "attributes": {"enabled": "yes"}},
        {"kty": "EC", "attributes": {"nbf": 2000000000, "exp": 1000000000}},
        {"kty": "RSA", "attributes": {"exportable": True}},
    ],
)
def test_bad_create_parameters(raw, body):
    r = raw.call("POST", f"/keys/{unique('bad')}/create", body)
    assert_bad_parameter(r)


def test_unsupported_key_ops_message(raw):
    r = raw.call("POST", f"/keys/{unique('bad')}/create", {"kty": "EC", "key_ops": ["sign", "wrapKey"]})
    assert r.json()["error"]["message"] == 'Unsupported key operation(s): "wrapKey". Supported values are "sign", "verify".'


def test_bad_import(raw):
    for key in ({"kty": "RSA", "n": "AQAB", "e": "AQAB"}, {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"},
                {"kty": "oct", "k": "AAAA"}, "not an object"):
        assert_bad_parameter(raw.call("PUT", f"/keys/{unique('imp')}", {"key": key}))


def test_bad_names_and_paging(raw):
    assert_bad_parameter(raw.call("GET", "/keys/bad_name"))
    assert_bad_parameter(raw.call("GET", "/keys/" + "a" * 128))
    for mr in ("0", "26", "x", "-1"):
        assert_bad_parameter(raw.call("GET", f"/keys?maxresults={mr}"))
    assert_bad_parameter(raw.call("GET", "/keys?$skiptoken=garbage!"))


def test_bad_backup_blob(raw):
    assert_bad_parameter(raw.call("POST", "/keys/restore", {"value": b64url(b"KVEMUBK1" + bytes(64))}))
    assert_bad_parameter(raw.call("POST", "/keys/restore", {"value": "AAAA"}))


def test_not_found_and_method_shapes(raw):
    r = raw.call("GET", f"/keys/{unique('nokey')}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "KeyNotFound"
    r = raw.call("GET", "/keys/rsa2048/00000000000000000000000000000000")
    assert r.status_code == 404
    r = raw.call("GET", "/nothing/here")
    assert r.status_code == 404 and set(r.json()["error"]) >= {"code", "message"}
    r = raw.call("DELETE", "/rng", kind="hsm")
    assert r.status_code == 405
