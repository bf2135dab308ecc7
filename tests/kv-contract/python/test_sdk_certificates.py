"""azure-keyvault-certificates (official Python SDK) against kv-emulator."""

import base64
import datetime
import hashlib
import time

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.certificates import (
    CertificateContentType,
    CertificatePolicy,
    KeyUsageType,
    WellKnownIssuerNames,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from conftest import b64url, make_credential, unique


def self_signed(key, cn="imported", days=30, key_usage=None):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=days))
    )
    if key_usage:
        b = b.add_extension(key_usage, critical=True)
    return b.sign(key, hashes.SHA256())


def test_create_self_signed_poll_and_get(cert_client, key_client):
    name = unique("py-cert")
    policy = CertificatePolicy(
        issuer_name=WellKnownIssuerNames.self, subject="CN=contract.example", san_dns_names=["contract.example"],
        validity_in_months=6,
    )
    poller = cert_client.begin_create_certificate(name, policy)
    cert = poller.result()
    assert cert.name == name and len(cert.properties.version) == 32
    assert cert.key_id.endswith(f"/keys/{name}/{cert.properties.version}")
    assert cert.secret_id.endswith(f"/secrets/{name}/{cert.properties.version}")
    parsed = x509.load_der_x509_certificate(cert.cer)
    assert parsed.subject.rfc4514_string() == "CN=contract.example"
    assert cert.properties.x509_thumbprint == hashlib.sha1(cert.cer).digest()
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["contract.example"]
    assert cert.policy.key_type == "RSA" and cert.policy.key_size == 2048 and cert.policy.exportable
    assert cert.policy.content_type == CertificateContentType.pkcs12
    key = key_client.get_key(name)
    assert key.properties.managed is True
    assert key.id == cert.key_id
    # Default key usage digitalSignature + keyEncipherment → sign/verify/wrapKey/unwrapKey
    assert sorted(key.key_operations) == ["sign", "unwrapKey", "verify", "wrapKey"]
    op = cert_client.get_certificate_operation(name)
    assert op.status.lower() == "completed" and op.target.endswith(f"/certificates/{name}")
    got = cert_client.get_certificate_version(name, cert.properties.version)
    assert got.cer == cert.cer
    assert name in [c.name for c in cert_client.list_properties_of_certificates()]
    assert len(list(cert_client.list_properties_of_certificate_versions(name))) == 1


def test_ec_certificate_and_bad_key_usage(cert_client):
    policy = CertificatePolicy(
        issuer_name="Self", subject="CN=ec", key_type="EC", key_curve_name="P-384",
        key_usage=[KeyUsageType.digital_signature],
    )
    cert = cert_client.begin_create_certificate(unique("py-ecc"), policy).result()
    pub = x509.load_der_x509_certificate(cert.cer).public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp384r1"
    bad = CertificatePolicy(issuer_name="Self", subject="CN=ec", key_type="EC", key_usage=[KeyUsageType.key_encipherment])
    with pytest.raises(HttpResponseError) as e:
        cert_client.begin_create_certificate(unique("py-ecc"), bad).result()
    assert e.value.status_code == 400
    assert 'Unsupported key operation(s): "wrapKey", "unwrapKey"' in e.value.message


def test_import_pfx_with_password_and_sign_with_its_key(cert_client, key_client):
    from test_sdk_keys import remote_crypto
    from azure.keyvault.keys.crypto import SignatureAlgorithm

    key = rsa.generate_private_key(65537, 2048)
    cert = self_signed(key)
    pfx = pkcs12.serialize_key_and_certificates(b"leaf", key, cert, None, serialization.BestAvailableEncryption(b"pw"))
    name = unique("py-pfx")
    imported = cert_client.import_certificate(name, pfx, password="pw")
    assert imported.cer == cert.public_bytes(serialization.Encoding.DER)
    assert imported.policy.issuer_name == "Unknown"
    vkey = key_client.get_key(name)
    assert vkey.properties.managed is True
    digest = hashlib.sha256(b"pfx").digest()
    sig = remote_crypto(key_client, vkey).sign(SignatureAlgorithm.rs256, digest).signature
    cert.public_key().verify(sig, b"pfx", padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(HttpResponseError) as e:
        cert_client.import_certificate(unique("py-pfx"), pfx, password="wrong")
    assert e.value.status_code == 400


def test_import_pem_and_linked_secret(cert_client, ready, raw):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key, cn="pem", key_usage=x509.KeyUsage(True, False, False, False, False, False, False, False, False))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pem += cert.public_bytes(serialization.Encoding.PEM)
    name = unique("py-pem")
    policy = CertificatePolicy.get_default()
    policy._content_type = CertificateContentType.pem  # noqa: SLF001 - the SDK's way to say PEM on import
    imported = cert_client.import_certificate(name, pem, policy=policy)
    assert imported.policy.content_type == CertificateContentType.pem
    version = imported.properties.version
    # The default principal (Crypto Officer + Certificates Officer) may not read secrets.
    r = raw.call("GET", f"/secrets/{name}/{version}")
    assert r.status_code == 403 and r.json()["error"]["innererror"]["code"] == "ForbiddenByRbac"
    assert "Microsoft.KeyVault/vaults/secrets/getSecret/action" in r.json()["error"]["message"]
    token = raw.token("vault", "secrets-app", "secrets-secret")
    r = raw.call("GET", f"/secrets/{name}/{version}", token=token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["contentType"] == "application/x-pem-file" and body["managed"] is True
    assert body["kid"].endswith(f"/keys/{name}/{version}")
    assert "BEGIN PRIVATE KEY" in body["value"] and "BEGIN CERTIFICATE" in body["value"]
    loaded = serialization.load_pem_private_key(body["value"].encode(), None)
    assert loaded.public_key().public_numbers() == key.public_key().public_numbers()


def test_pkcs12_secret_of_created_certificate(cert_client, raw):
    name = unique("py-sec")
    cert = cert_client.begin_create_certificate(name, CertificatePolicy.get_default()).result()
    token = raw.token("vault", "secrets-app", "secrets-secret")
    r = raw.call("GET", f"/secrets/{name}", token=token)
    assert r.status_code == 200
    assert r.json()["contentType"] == "application/x-pkcs12"
    key, leaf, _ = pkcs12.load_key_and_certificates(base64.b64decode(r.json()["value"]), None)
    assert leaf.public_bytes(serialization.Encoding.DER) == cert.cer
    assert key is not None


def test_delete_and_purge_certificate(cert_client, key_client):
    name = unique("py-delc")
    cert_client.begin_create_certificate(name, CertificatePolicy.get_default()).result()
    deleted = cert_client.begin_delete_certificate(name).result()
    assert deleted.recovery_id.endswith(f"/deletedcertificates/{name}")
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_certificate(name)
    with pytest.raises(ResourceNotFoundError):
        key_client.get_key(name)
    for _ in range(50):
        try:
            cert_client.purge_deleted_certificate(name)
            break
        except HttpResponseError as e:
            assert e.status_code in (404, 409)
            time.sleep(0.1)
    else:
        pytest.fail(f"certificate {name} was still not purged after 50 tries (5 s)")
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_deleted_certificate(name)


def test_managed_hsm_refuses_certificate_routes(raw):
    for method, path in [("GET", "/certificates"), ("GET", "/certificates/rsa2048"), ("GET", "/secrets/rsa2048")]:
        r = raw.call(method, path, kind="hsm")
        assert r.status_code == 400, (path, r.status_code)
        assert r.json()["error"]["code"] == "BadParameter"


def test_managed_key_cannot_be_deleted_directly(raw):
    r = raw.call("DELETE", "/keys/rsa3072")
    assert r.status_code == 403


def test_reader_sees_metadata_only(ready, raw):
    token = raw.token("vault", "reader-app", "reader-secret")
    assert raw.call("GET", "/certificates/rsa2048", token=token).status_code == 200
    assert raw.call("GET", "/keys/rsa2048", token=token).status_code == 200
    r = raw.call("POST", "/keys/rsa2048/sign", {"alg": "RS256", "value": b64url(bytes(32))}, token=token)
    assert r.status_code == 403
    assert "Action: 'Microsoft.KeyVault/vaults/keys/sign/action'" in r.json()["error"]["message"]
    cred = make_credential(ready, "reader-app", "reader-secret")
    from azure.keyvault.keys import KeyClient

    with pytest.raises(HttpResponseError) as e:
        KeyClient(ready["vault_url"], cred).create_rsa_key(unique("py-reader"))
    assert e.value.status_code == 403
