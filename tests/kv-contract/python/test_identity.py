"""azure-identity credentials against the emulator's token endpoints."""

import os

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.keyvault.keys import KeyClient


def check(ready, credential):
    key = KeyClient(ready["vault_url"], credential).get_key("rsa2048")
    assert "/keys/rsa2048/" in key.id


def test_client_secret(ready, credential):
    check(ready, credential)
    token = credential.get_token(ready["vault_resource"] + "/.default")
    assert token.expires_on > 0


def test_wrong_secret_and_unknown_client(ready):
    from azure.identity import ClientSecretCredential

    for client_id, secret, code in [(ready["client_id"], "wrong", "AADSTS7000215"), ("no-such-app", "x", "AADSTS700016")]:
        cred = ClientSecretCredential(ready["tenant_id"], client_id, secret, authority=ready["authority_host"],
                                      disable_instance_discovery=True)
        with pytest.raises(ClientAuthenticationError) as e:
            cred.get_token(ready["vault_resource"] + "/.default")
        assert code in str(e.value)


def test_certificate_credential(ready):
    from azure.identity import CertificateCredential

    cred = CertificateCredential(ready["tenant_id"], ready["client_id"], ready["client_certificate_pem"],
                                 authority=ready["authority_host"], disable_instance_discovery=True)
    check(ready, cred)


def test_workload_identity_credential(ready):
    from azure.identity import WorkloadIdentityCredential

    cred = WorkloadIdentityCredential(tenant_id=ready["tenant_id"], client_id=ready["client_id"],
                                      token_file_path=ready["federated_token_file"], authority=ready["authority_host"],
                                      disable_instance_discovery=True)
    check(ready, cred)


def test_managed_identity_app_service(ready, monkeypatch):
    from azure.identity import ManagedIdentityCredential

    monkeypatch.setenv("IDENTITY_ENDPOINT", ready["identity_endpoint"])
    monkeypatch.setenv("IDENTITY_HEADER", ready["identity_header"])
    check(ready, ManagedIdentityCredential())


def test_token_outage(ready, raw, clean_faults):
    from azure.identity import ClientSecretCredential

    raw.admin("PUT", "/faults", {"token_outage": True})
    cred = ClientSecretCredential(ready["tenant_id"], ready["client_id"], ready["client_secret"],
                                  authority=ready["authority_host"], disable_instance_discovery=True,
                                  retry_total=0)
    with pytest.raises(ClientAuthenticationError):
        cred.get_token(ready["vault_resource"] + "/.default")
    r = raw.session.post(f"{ready['authority_host']}/{ready['tenant_id']}/oauth2/v2.0/token",
                         data={"grant_type": "client_credentials"})
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"


def test_expired_token_is_refused(ready, raw):
    """A token past its exp is answered 401 with a fresh challenge."""
    import base64
    import json
    import time

    token = raw.token("vault")
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    assert claims["aud"] == ready["vault_resource"] and claims["tid"] == ready["tenant_id"]
    assert claims["appid"] == ready["client_id"] and claims["oid"] and claims["exp"] > time.time()
    # Tamper: move exp into the past; the signature no longer matches either way.
    claims["exp"] = int(time.time()) - 10
    forged = header + "." + base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode() + "." + sig
    r = raw.call("GET", "/keys/rsa2048", token=forged)
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers
    hsm_token = raw.token("hsm")
    r = raw.call("GET", "/keys/rsa2048", token=hsm_token)
    assert r.status_code == 401, "an HSM token is not valid for the vault"
    assert "AKV10022" in r.json()["error"]["message"]


def test_one_shot_faults_on_the_token_endpoint(ready, raw, clean_faults):
    import requests

    url = f"{ready['authority_host']}/{ready['tenant_id']}/oauth2/v2.0/token"
    form = {"grant_type": "client_credentials", "client_id": ready["client_id"],
            "client_secret": ready["client_secret"], "scope": ready["vault_resource"] + "/.default"}
    raw.admin("POST", "/faults/once", [{"operation": "token", "status": 500, "retry_after_s": 3},
                                       {"operation": "token", "reset": True}])
    r = raw.session.post(url, data=form, timeout=10)
    assert r.status_code == 500 and r.headers["Retry-After"] == "3"
    assert r.json()["error_codes"] and r.json()["error"] == "temporarily_unavailable"
    with pytest.raises(requests.exceptions.ConnectionError):
        raw.session.post(url, data=form, timeout=10)
    assert raw.session.post(url, data=form, timeout=10).status_code == 200
