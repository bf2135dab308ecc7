"""Replays every recorded real exchange in tests/kv-contract/azure/recordings against the emulator:
same status codes, the same JSON shapes (member names and JSON types, recursively) and
the same service headers."""

import json
import os
import re
import time
import uuid

import pytest

from azure_shared import shared_azure

HEADERS_TO_MATCH = {
    "content-type", "x-ms-request-id", "x-ms-keyvault-region", "x-ms-keyvault-network-info",
    "x-ms-keyvault-service-version", "x-ms-keyvault-rbac-assignment-id", "x-ms-server-latency",
    "content-security-policy", "www-authenticate", "retry-after", "location", "strict-transport-security",
    "x-content-type-options", "cache-control", "x-ms-client-request-id",
}


def recordings():
    d = os.path.join(shared_azure(), "recordings")
    return sorted(f for f in os.listdir(d) if f.endswith(".json"))


def shape(v):
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if v is None:
        return "null"
    return "string"


def learn(rec, ours, subs):
    """Maps recorded string values (ids, signatures, ciphertexts) to the emulator's."""
    if isinstance(rec, dict) and isinstance(ours, dict):
        for k in rec:
            if k in ours:
                learn(rec[k], ours[k], subs)
    elif isinstance(rec, str) and isinstance(ours, str) and rec != ours:
        subs[rec] = ours
        if rec.startswith("https://") and ours.startswith("https://"):
            r_last, o_last = rec.rstrip("/").rsplit("/", 1)[-1], ours.rstrip("/").rsplit("/", 1)[-1]
            if re.fullmatch(r"[0-9a-f]{32}", r_last) and r_last != o_last:
                subs[r_last] = o_last


def substitute(v, subs):
    if isinstance(v, dict):
        return {k: substitute(x, subs) for k, x in v.items()}
    if isinstance(v, list):
        return [substitute(x, subs) for x in v]
    if isinstance(v, str):
        return subs.get(v, v)
    return v


def target(uri, ready, suffix, subs):
    m = re.match(r"https://[^/]+\.(vault|managedhsm)\.azure\.net(/[^?]*)\?(.*)$", uri)
    assert m, uri
    kind = "vault" if m.group(1) == "vault" else "hsm"
    segs = m.group(2).split("/")
    if len(segs) > 2 and segs[1] in ("keys", "certificates", "deletedkeys", "deletedcertificates", "secrets"):
        if segs[2] and segs[2] not in ("restore",):
            segs[2] = f"{segs[2]}-{suffix}"
    segs = [subs.get(s, s) for s in segs]
    base = ready["vault_url" if kind == "vault" else "hsm_url"]
    return kind, base + "/".join(segs) + "?" + m.group(3)


@pytest.mark.parametrize("recording", recordings())
def test_replay(recording, ready, raw):
    with open(os.path.join(shared_azure(), "recordings", recording), encoding="utf-8") as f:
        entries = json.load(f)["Entries"]
    suffix = uuid.uuid4().hex[:8]
    subs = {}
    for i, e in enumerate(entries):
        kind, url = target(e["RequestUri"], ready, suffix, subs)
        authorized = "Authorization" in e["RequestHeaders"]
        headers = {"x-ms-client-request-id": str(uuid.uuid4())}
        data = None
        if authorized:
            headers["Authorization"] = "Bearer " + raw.token(kind)
            if e["RequestBody"] is not None:
                headers["Content-Type"] = "application/json"
                data = json.dumps(substitute(e["RequestBody"], subs))
        expected = e["StatusCode"]
        deadline = time.time() + 5
        while True:
            r = raw.session.request(e["RequestMethod"], url, data=data, headers=headers, timeout=30)
            # A deletion that is still in progress answers 409 for a while, as on Azure.
            if r.status_code == 409 and expected != 409 and time.time() < deadline:
                time.sleep(0.1)
                continue
            break
        where = f"{recording} entry {i}: {e['RequestMethod']} {url}"
        assert r.status_code == expected, f"{where}: {r.status_code} {r.text[:300]}"
        rec_headers = {k.lower() for k in e["ResponseHeaders"]}
        ours = {k.lower() for k in r.headers}
        missing = (rec_headers & HEADERS_TO_MATCH) - ours
        assert not missing, f"{where}: headers missing {sorted(missing)}"
        if expected == 401:
            assert re.fullmatch(r'Bearer authorization="https://[^"]+/[^"/]+", resource="https://[^"]+"',
                                r.headers["WWW-Authenticate"]), r.headers["WWW-Authenticate"]
        body = e["ResponseBody"]
        if body is None:
            assert r.content == b"", f"{where}: expected no body, got {r.text[:200]}"
            continue
        assert r.headers["Content-Type"] == "application/json; charset=utf-8"
        got = r.json()
        assert shape(got) == shape(body), f"{where}:\n ours     {json.dumps(shape(got), sort_keys=True)}\n recorded {json.dumps(shape(body), sort_keys=True)}"
        learn(body, got, subs)
