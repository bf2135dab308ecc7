"""azure-keyvault-keys (official Python SDK) against kv-emulator; results checked with
OpenSSL through the `cryptography` package."""

import hashlib
import time

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.keys import KeyCurveName, KeyOperation, KeyType
from azure.keyvault.keys.crypto import (
    EncryptionAlgorithm,
    KeyWrapAlgorithm,
    SignatureAlgorithm,
)
from azure.keyvault.keys.crypto._providers import NoLocalCryptography
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from conftest import unique, wait_until


def remote_crypto(client, key):
    """A CryptographyClient that does every operation on the service (the SDK would do
    public-key operations locally once it has fetched the key)."""
    c = client.get_cryptography_client(key.name, key_version=key.properties.version)
    c._initialized = True  # noqa: SLF001
    c._local_provider = NoLocalCryptography()  # noqa: SLF001
    return c


def rsa_public(key):
    return key.key.n and rsa.RSAPublicNumbers(int.from_bytes(key.key.e, "big"), int.from_bytes(key.key.n, "big")).public_key()


@pytest.mark.parametrize("hsm", [False, True])
def test_rsa_create_get_and_versions(key_client, hsm_client, hsm):
    client = hsm_client if hsm else key_client
    name = unique("py-rsa")
    key = client.create_rsa_key(name, size=2048)
    assert key.key_type == (KeyType.rsa_hsm if hsm else KeyType.rsa)
    assert len(key.properties.version) == 32
    assert set(key.key_operations) == {"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}
    assert client.get_key(name).id == key.id
    assert client.get_key(name, key.properties.version).id == key.id
    second = client.create_rsa_key(name, size=3072)
    assert client.get_key(name).id == second.id, "latest version is the newest"
    versions = list(client.list_properties_of_key_versions(name))
    assert {v.version for v in versions} == {key.properties.version, second.properties.version}


def test_ec_create_defaults_and_hsm_kty(key_client, hsm_client):
    key = key_client.create_ec_key(unique("py-ec"), curve=KeyCurveName.p_256)
    assert key.key_type == KeyType.ec and key.key.crv == "P-256"
    assert sorted(key.key_operations) == ["sign", "verify"]
    assert len(key.key.x) == 32 and len(key.key.y) == 32
    hkey = hsm_client.create_key(unique("py-ec"), "EC", curve="P-256K")
    assert hkey.key_type == KeyType.ec_hsm


@pytest.mark.parametrize(
    "alg,hash_cls,pss",
    [
        (SignatureAlgorithm.rs256, hashes.SHA256, False),
        (SignatureAlgorithm.rs384, hashes.SHA384, False),
        (SignatureAlgorithm.rs512, hashes.SHA512, False),
        (SignatureAlgorithm.ps256, hashes.SHA256, True),
        (SignatureAlgorithm.ps384, hashes.SHA384, True),
        (SignatureAlgorithm.ps512, hashes.SHA512, True),
    ],
)
def test_rsa_signatures_verify_with_openssl(key_client, alg, hash_cls, pss):
    name = unique("py-sign")
    key = key_client.create_rsa_key(name, size=2048)
    crypto = remote_crypto(key_client, key)
    h = hashes.Hash(hash_cls())
    h.update(b"message")
    digest = h.finalize()
    result = crypto.sign(alg, digest)
    assert result.key_id == key.id
    pad = padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=hash_cls().digest_size) if pss else padding.PKCS1v15()
    rsa_public(key).verify(result.signature, b"message", pad, hash_cls())
    assert crypto.verify(alg, digest, result.signature).is_valid
    assert not crypto.verify(alg, digest, bytes(len(result.signature))).is_valid


@pytest.mark.parametrize(
    "curve,alg,hash_cls,size",
    [
        ("P-256", SignatureAlgorithm.es256, hashes.SHA256, 32),
        ("P-384", SignatureAlgorithm.es384, hashes.SHA384, 48),
        ("P-521", SignatureAlgorithm.es512, hashes.SHA512, 66),
        ("P-256K", SignatureAlgorithm.es256_k, hashes.SHA256, 32),
    ],
)
def test_ec_signatures_verify_with_openssl(hsm_client, curve, alg, hash_cls, size):
    key = hsm_client.create_ec_key(unique("py-ecs"), curve=curve)
    crypto = remote_crypto(hsm_client, key)
    h = hashes.Hash(hash_cls())
    h.update(b"ec message")
    digest = h.finalize()
    sig = crypto.sign(alg, digest).signature
    assert len(sig) == 2 * size, "raw r||s"
    r, s = int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big")
    curve_obj = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1(), "P-256K": ec.SECP256K1()}[curve]
    pub = ec.EllipticCurvePublicNumbers(int.from_bytes(key.key.x, "big"), int.from_bytes(key.key.y, "big"), curve_obj).public_key()
    pub.verify(utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(hash_cls())))


def test_rsnull_signs_client_digestinfo(raw):
    from conftest import b64url, b64url_decode

    digest = hashlib.sha256(b"tls").digest()
    info = bytes.fromhex("3031300d060960864801650304020105000420") + digest
    r1 = raw.call("POST", "/keys/rsa2048//sign", {"alg": "RSNULL", "value": b64url(info)})
    r2 = raw.call("POST", "/keys/rsa2048/sign", {"alg": "RS256", "value": b64url(digest)})
    assert r1.status_code == 200 and r2.status_code == 200
    assert b64url_decode(r1.json()["value"]) == b64url_decode(r2.json()["value"]), "RSNULL(DigestInfo) == RS256(digest)"
    with open(_fixture("rsa2048.key.pem"), "rb") as f:
        priv = serialization.load_pem_private_key(f.read(), None)
    priv.public_key().verify(b64url_decode(r1.json()["value"]), b"tls", padding.PKCS1v15(), hashes.SHA256())


def _fixture(name):
    import os

    return os.path.join(os.path.dirname(__file__), "..", "..", "..", "softhsm-fixtures", "keys", name)


@pytest.mark.parametrize("alg", [EncryptionAlgorithm.rsa_oaep, EncryptionAlgorithm.rsa_oaep_256, EncryptionAlgorithm.rsa1_5])
def test_encrypt_decrypt_against_openssl(key_client, alg):
    key = key_client.create_rsa_key(unique("py-enc"), size=2048)
    crypto = remote_crypto(key_client, key)
    pub = rsa_public(key)
    pad = {
        EncryptionAlgorithm.rsa_oaep: padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None),
        EncryptionAlgorithm.rsa_oaep_256: padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None),
        EncryptionAlgorithm.rsa1_5: padding.PKCS1v15(),
    }[alg]
    ct = pub.encrypt(b"from openssl", pad)
    assert crypto.decrypt(alg, ct).plaintext == b"from openssl"
    enc = crypto.encrypt(alg, b"from emulator")
    assert len(enc.ciphertext) == 256
    assert crypto.decrypt(alg, enc.ciphertext).plaintext == b"from emulator"


@pytest.mark.parametrize("alg", [KeyWrapAlgorithm.rsa_oaep, KeyWrapAlgorithm.rsa_oaep_256, KeyWrapAlgorithm.rsa1_5])
def test_wrap_unwrap(hsm_client, alg):
    key = hsm_client.create_rsa_key(unique("py-wrap"), size=2048, hardware_protected=True)
    crypto = remote_crypto(hsm_client, key)
    cek = bytes(range(32))
    wrapped = crypto.wrap_key(alg, cek)
    assert crypto.unwrap_key(alg, wrapped.encrypted_key).key == cek


def test_import_key_signs_like_openssl(key_client):
    from azure.keyvault.keys import JsonWebKey

    priv = rsa.generate_private_key(65537, 2048)
    n = priv.private_numbers()
    to = lambda i: i.to_bytes((i.bit_length() + 7) // 8, "big")  # noqa: E731
    jwk = JsonWebKey(
        kty="RSA", n=to(n.public_numbers.n), e=to(n.public_numbers.e), d=to(n.d), p=to(n.p), q=to(n.q),
        dp=to(n.dmp1), dq=to(n.dmq1), qi=to(n.iqmp), key_ops=["sign", "verify"],
    )
    name = unique("py-imp")
    key = key_client.import_key(name, jwk)
    assert key.key.d is None
    assert sorted(key.key_operations) == ["sign", "verify"]
    digest = hashlib.sha256(b"x").digest()
    sig = remote_crypto(key_client, key).sign(SignatureAlgorithm.rs256, digest).signature
    assert sig == priv.sign(b"x", padding.PKCS1v15(), hashes.SHA256())


def test_list_paging_with_small_pages(key_client):
    prefix = unique("py-page")
    for i in range(4):
        key_client.create_ec_key(f"{prefix}-{i}")
    pages = key_client.list_properties_of_keys(max_page_size=3).by_page()
    names, count = [], 0
    for page in pages:
        items = list(page)
        assert len(items) <= 3
        names += [k.name for k in items]
        count += 1
    assert count >= 2
    assert sum(1 for n in names if n.startswith(prefix)) == 4
    assert len(names) == len(set(names))


def test_update_disable_and_key_ops_enforced(key_client, raw):
    name = unique("py-upd")
    key = key_client.create_rsa_key(name, size=2048)
    updated = key_client.update_key_properties(name, key_operations=[KeyOperation.verify], tags={"a": "b"})
    assert updated.key_operations == ["verify"] and updated.properties.tags == {"a": "b"}
    r = raw.call("POST", f"/keys/{name}/sign", {"alg": "RS256", "value": "A" * 43})
    assert r.status_code == 403
    assert r.json()["error"]["innererror"]["code"] == "KeyOperationForbidden"
    key_client.update_key_properties(name, enabled=False)
    with pytest.raises(HttpResponseError) as e:
        key_client.get_key(name)
    assert e.value.status_code == 403
    r = raw.call("GET", f"/keys/{name}")
    assert r.json()["error"]["innererror"]["code"] == "KeyDisabled"
    names = [k.name for k in key_client.list_properties_of_keys()]
    assert name in names, "disabled keys are still listed"


def test_nbf_exp_window(key_client, raw):
    from conftest import b64url

    now = int(time.time())
    name = unique("py-exp")
    key_client.create_rsa_key(name, size=2048, expires_on=_dt(now - 10))
    digest = b64url(hashlib.sha256(b"late").digest())
    assert raw.call("POST", f"/keys/{name}/sign", {"alg": "RS256", "value": digest}).status_code == 403
    assert raw.call("POST", f"/keys/{name}/encrypt", {"alg": "RSA-OAEP", "value": "AAAA"}).status_code == 403
    # decrypt, unwrap and verify are exempt from the validity window
    r = raw.call("POST", f"/keys/{name}/verify", {"alg": "RS256", "digest": digest, "value": b64url(bytes(256))})
    assert r.status_code == 200 and r.json() == {"value": False}
    name2 = unique("py-nbf")
    key_client.create_rsa_key(name2, size=2048, not_before=_dt(now + 3600))
    assert raw.call("POST", f"/keys/{name2}/sign", {"alg": "RS256", "value": digest}).status_code == 403


def _dt(ts):
    import datetime

    return datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)


def test_delete_recover_purge_and_name_reuse(key_client, raw):
    name = unique("py-del")
    key = key_client.create_rsa_key(name, size=2048)
    poller = key_client.begin_delete_key(name)
    deleted = poller.result()  # the deleted key, at once
    poller.wait()  # polls get_deleted_key until the deletion is done
    assert deleted.recovery_id.endswith(f"/deletedkeys/{name}")
    assert deleted.scheduled_purge_date > deleted.deleted_date
    with pytest.raises(ResourceNotFoundError):
        key_client.get_key(name)
    with pytest.raises(ResourceExistsError) as e:
        key_client.create_rsa_key(name)
    assert "ObjectIsDeletedButRecoverable" in str(e.value.response.text())
    assert name in [k.name for k in key_client.list_deleted_keys()]
    recovered = key_client.begin_recover_deleted_key(name).result()
    assert recovered.id == key.id
    key_client.begin_delete_key(name).wait()
    key_client.purge_deleted_key(name)
    with pytest.raises(ResourceNotFoundError):
        key_client.get_deleted_key(name)


def test_purge_conflicts_while_deleting(raw):
    name = unique("py-409")
    assert raw.call("POST", f"/keys/{name}/create", {"kty": "EC"}).status_code == 200
    assert raw.call("DELETE", f"/keys/{name}").status_code == 200
    r = raw.call("DELETE", f"/deletedkeys/{name}")
    assert r.status_code == 409
    assert r.json() == {"error": {"code": "Conflict", "message": "Key is currently being deleted.",
                                  "innererror": {"code": "ObjectIsBeingDeleted"}}}
    assert wait_until(lambda: raw.call("DELETE", f"/deletedkeys/{name}").status_code == 204)


def test_backup_restore_across_names_and_kinds(key_client, hsm_client, raw):
    name = unique("py-bak")
    key = key_client.create_ec_key(name)
    blob = key_client.backup_key(name)
    with pytest.raises(ResourceExistsError):
        key_client.restore_key_backup(blob)
    key_client.begin_delete_key(name).wait()
    key_client.purge_deleted_key(name)
    restored = key_client.restore_key_backup(blob)
    assert restored.id == key.id and restored.key.x == key.key.x
    with pytest.raises(HttpResponseError) as e:
        hsm_client.restore_key_backup(blob)
    assert e.value.status_code == 400


def test_rotate_creates_new_version(key_client):
    name = unique("py-rot")
    key = key_client.create_rsa_key(name, size=2048)
    rotated = key_client.rotate_key(name)
    assert rotated.properties.version != key.properties.version
    assert rotated.key.n != key.key.n and len(rotated.key.n) == len(key.key.n)
    policy = key_client.get_key_rotation_policy(name)
    assert policy.id.endswith(f"/keys/{name}/rotationpolicy")


def test_random_bytes_from_hsm(hsm_client, raw):
    assert len(hsm_client.get_random_bytes(64)) == 64
    for bad in (0, 129, "8"):
        r = raw.call("POST", "/rng", {"count": bad}, kind="hsm")
        assert r.status_code == 400 and r.json()["error"]["code"] == "BadParameter"


def test_seeded_fixtures(key_client, hsm_client):
    for name in ("rsa2048", "rsa3072", "p256"):
        with open(_fixture(f"{name}.key.pem"), "rb") as f:
            priv = serialization.load_pem_private_key(f.read(), None)
        vk = key_client.get_key(name)
        hk = hsm_client.get_key(name)
        assert vk.properties.managed is True, "a seeded certificate manages the vault key"
        assert hk.key_type in (KeyType.rsa_hsm, KeyType.ec_hsm)
        if name.startswith("rsa"):
            assert int.from_bytes(vk.key.n, "big") == priv.public_key().public_numbers().n
            assert vk.key.n == hk.key.n
        else:
            assert int.from_bytes(vk.key.x, "big") == priv.public_key().public_numbers().x
