"""Shared fixtures: the running kv-emulator (ready file from KV_EMULATOR_READY), official
Azure SDK clients pointed at it, and a raw HTTPS helper for exchanges the SDKs hide."""

import base64
import json
import os
import time
import uuid

import pytest
import requests

READY_PATH = os.environ.get("KV_EMULATOR_READY", "")


def _load_ready():
    if not READY_PATH:
        raise RuntimeError(
            "KV_EMULATOR_READY is not set: start kv-emulator (tests/kv-emulator/ci.sh does) and export it"
        )
    with open(READY_PATH, encoding="utf-8") as f:
        ready = json.load(f)
    try:
        requests.get(ready["admin_url"] + "/health", timeout=5).raise_for_status()
    except requests.RequestException as e:
        raise RuntimeError(f"kv-emulator is not running at {ready['admin_url']}: {e}") from e
    return ready


READY = _load_ready() if READY_PATH else None
if READY:
    # Both azure-core (requests) and MSAL honour these.
    os.environ["REQUESTS_CA_BUNDLE"] = READY["ca_file"]
    os.environ["SSL_CERT_FILE"] = READY["ca_file"]
    os.environ["NO_PROXY"] = "localhost,.localhost,127.0.0.1"


@pytest.fixture(scope="session")
def ready():
    if READY is None:
        pytest.fail("KV_EMULATOR_READY is not set: no kv-emulator to test against")
    return READY


def unique(prefix="py"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="session")
def credential(ready):
    from azure.identity import ClientSecretCredential

    return ClientSecretCredential(
        ready["tenant_id"],
        ready["client_id"],
        ready["client_secret"],
        authority=ready["authority_host"],
        disable_instance_discovery=True,
    )


def make_credential(ready, client_id, secret):
    from azure.identity import ClientSecretCredential

    return ClientSecretCredential(
        ready["tenant_id"], client_id, secret, authority=ready["authority_host"], disable_instance_discovery=True
    )


@pytest.fixture(scope="session")
def key_client(ready, credential):
    from azure.keyvault.keys import KeyClient

    return KeyClient(ready["vault_url"], credential)


@pytest.fixture(scope="session")
def hsm_client(ready, credential):
    from azure.keyvault.keys import KeyClient

    return KeyClient(ready["hsm_url"], credential)


@pytest.fixture(scope="session")
def cert_client(ready, credential):
    from azure.keyvault.certificates import CertificateClient

    return CertificateClient(ready["vault_url"], credential)


class Raw:
    """Direct HTTPS to the emulator, with tokens from its token endpoint."""

    def __init__(self, ready):
        self.ready = ready
        self.session = requests.Session()
        self.session.verify = ready["ca_file"]
        self._tokens = {}

    def token(self, kind="vault", client_id=None, secret=None):
        client_id = client_id or self.ready["client_id"]
        secret = secret or self.ready["client_secret"]
        key = (kind, client_id)
        if key not in self._tokens:
            resource = self.ready["vault_resource" if kind == "vault" else "hsm_resource"]
            r = self.session.post(
                f"{self.ready['authority_host']}/{self.ready['tenant_id']}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": secret,
                    "scope": resource + "/.default",
                },
                timeout=30,
            )
            assert r.status_code == 200, r.text
            self._tokens[key] = r.json()["access_token"]
        return self._tokens[key]

    def url(self, kind, path):
        base = self.ready["vault_url" if kind == "vault" else "hsm_url"]
        return base + path

    def call(self, method, path, body=None, kind="vault", api="7.5", auth=True, token=None, headers=None,
             raw_body=None, timeout=30, retry_throttled=True):
        """One request; a 429 is retried after its Retry-After (at most 5 times, as the
        SDKs do) unless retry_throttled is False: the suite runs at the published limits,
        and only the throttling tests are about the 429s (they use call_once)."""
        for _ in range(5):
            r = self._call(method, path, body, kind, api, auth, token, headers, raw_body, timeout)
            if r.status_code != 429 or not retry_throttled:
                return r
            time.sleep(min(float(r.headers.get("Retry-After", "1")), 10.0))
        return r

    def call_once(self, *args, **kwargs):
        """One request, its answer as it came (a 429 included)."""
        return self.call(*args, retry_throttled=False, **kwargs)

    def _call(self, method, path, body, kind, api, auth, token, headers, raw_body, timeout):
        h = dict(headers or {})
        if auth:
            h["Authorization"] = "Bearer " + (token or self.token(kind))
        url = self.url(kind, path)
        if api is not None:
            url += ("&" if "?" in url else "?") + "api-version=" + api
        data = raw_body
        if body is not None:
            data = json.dumps(body)
            h["Content-Type"] = "application/json"
        return self.session.request(method, url, data=data, headers=h, timeout=timeout)

    def admin(self, method, path, body=None):
        r = requests.request(method, self.ready["admin_url"] + path, json=body, timeout=30)
        return r


@pytest.fixture(scope="session")
def raw(ready):
    return Raw(ready)


@pytest.fixture()
def clean_faults(raw):
    raw.admin("DELETE", "/faults")
    yield
    raw.admin("DELETE", "/faults")


def wait_until(predicate, timeout=5.0, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def assert_bad_parameter(r):
    assert r.status_code == 400, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == "BadParameter", body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
