"""Nothing crashes the emulator: a bounded, seeded storm of malformed requests gets 4xx
answers in Azure's error shape, then normal requests still work."""

import json
import random
import socket
import ssl

from conftest import b64url

TOKENS = ["keys", "deletedkeys", "certificates", "deletedcertificates", "secrets", "rng", "rsa2048", "p256", "sign",
          "verify", "encrypt", "decrypt", "wrapkey", "unwrapKey", "create", "versions", "backup", "restore", "recover",
          "pending", "policy", "rotate", "rotationpolicy", "", "..", "%00", "%2F", "a" * 300, "\u00e9", "x y", "00" * 16]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def random_body(rng):
    choice = rng.randrange(9)
    if choice == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    if choice == 1:
        return b"[" * 5000 + b"]" * 5000
    if choice == 2:
        return json.dumps({"alg": rng.choice(["RS256", "ES256", "RSA-OAEP", None, 7]),
                           "value": rng.choice([b64url(bytes(rng.randrange(600))), "", "***", None, [], {}])}).encode()
    if choice == 3:
        return json.dumps({"kty": rng.choice(["RSA", "EC", "oct", 1, None]), "key_size": rng.choice([0, -1, 2**70, "x"]),
                           "crv": rng.choice(["P-256", "", None]), "key_ops": rng.choice([[], ["x"], "sign", None])}).encode()
    if choice == 4:
        return json.dumps({"count": rng.choice([0, 1, 128, 129, -5, 1e300, "9", None])}).encode()
    if choice == 5:
        return json.dumps({"key": {"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "AQAB", "p": "Aw", "q": "Aw",
                                   "dp": "AQ", "dq": "AQ", "qi": "AQ"}}).encode()
    if choice == 6:
        return json.dumps({"policy": {"issuer": {"name": rng.choice(["Self", "Unknown", 5])},
                                      "x509_props": {"subject": rng.choice(["", "CN=", "garbage", "CN=x"]),
                                                     "validity_months": rng.choice([0, -1, 10**9, 12])},
                                      "key_props": {"kty": rng.choice(["RSA", "EC", "oct"]),
                                                    "key_size": rng.choice([1, 2048, None])}}}).encode()
    if choice == 7:
        return json.dumps({"value": rng.choice(["", "AAAA", b64url(bytes(3000))]), "pwd": 3}).encode()
    return b""


def test_malformed_request_storm(raw):
    rng = random.Random(20261128)
    answered = 0
    for _ in range(400):
        depth = rng.randrange(1, 6)
        path = "/" + "/".join(rng.choice(TOKENS) for _ in range(depth))
        api = rng.choice(["7.5", "2026-04-01", "7.6-preview.2", "bogus", None])
        query = f"?api-version={api}" if api else ""
        if rng.random() < 0.3:
            query += rng.choice(["&maxresults=0", "&maxresults=999999999999", "&$skiptoken=%%%", "&maxresults=2"])
        kind = rng.choice(["vault", "hsm"])
        url = raw.url(kind, path) + query
        headers = {"Authorization": "Bearer " + raw.token(kind)} if rng.random() < 0.9 else {}
        if rng.random() < 0.1:
            headers["Authorization"] = rng.choice(["Bearer", "Bearer x.y.z", "Basic abc", "Bearer " + "a" * 5000])
        body = random_body(rng)
        r = raw.session.request(rng.choice(METHODS), url, data=body, headers=headers, timeout=30)
        answered += 1
        assert r.status_code < 500, (path, query, body[:100], r.status_code, r.text[:200])
        if r.content and r.status_code >= 400:
            err = r.json()["error"]
            assert isinstance(err["code"], str) and isinstance(err["message"], str)
    assert answered == 400


def test_garbage_on_the_wire(ready, raw):
    host, port = "127.0.0.1", ready["port"]
    # Plain text on the TLS port, then a TLS connection that sends an invalid HTTP request.
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)))
        s.settimeout(5)
        try:
            s.recv(100)
        except OSError:
            pass
    ctx = ssl.create_default_context(cafile=ready["ca_file"])
    with socket.create_connection((host, port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname=ready["hosts"][0]) as t:
            t.sendall(b"\x00\x01\x02 NOT HTTP \r\n\r\n")
            t.settimeout(5)
            try:
                t.recv(100)
            except OSError:
                pass
    # Still serving.
    r = raw.call("POST", "/keys/rsa2048/sign", {"alg": "RS256", "value": b64url(bytes(32))})
    assert r.status_code == 200
    assert raw.admin("GET", "/health").json() == {"ok": True}
