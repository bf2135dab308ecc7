//! The official `azure_security_keyvault_keys` crate against kv-emulator; every
//! cryptographic result is checked with OpenSSL.

use azure_security_keyvault_keys::models::{
    CreateKeyParameters, CurveName, EncryptionAlgorithm, GetRandomBytesParameters,
    ImportKeyParameters, JsonWebKey, KeyClientGetKeyOptions, KeyClientListKeyPropertiesOptions,
    KeyClientSignOptions, KeyOperationParameters, KeyType, RestoreKeyParameters, SignParameters,
    SignatureAlgorithm, VerifyParameters,
};
use futures::TryStreamExt;
use kv_contract::{Emulator, fixtures_dir, unique, version_of};
use openssl::bn::BigNum;
use openssl::ec::EcKey;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::{MessageDigest, hash};
use openssl::pkey::{PKey, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};

fn rsa_public(jwk: &JsonWebKey) -> PKey<Public> {
    let n = BigNum::from_slice(jwk.n.as_ref().expect("n")).unwrap();
    let e = BigNum::from_slice(jwk.e.as_ref().expect("e")).unwrap();
    PKey::from_rsa(Rsa::from_public_components(n, e).unwrap()).unwrap()
}

fn ec_public(jwk: &JsonWebKey, nid: openssl::nid::Nid) -> EcKey<Public> {
    let group = openssl::ec::EcGroup::from_curve_name(nid).unwrap();
    let x = BigNum::from_slice(jwk.x.as_ref().expect("x")).unwrap();
    let y = BigNum::from_slice(jwk.y.as_ref().expect("y")).unwrap();
    EcKey::from_public_key_affine_coordinates(&group, &x, &y).unwrap()
}

async fn create_rsa(client: &azure_security_keyvault_keys::KeyClient, name: &str) -> JsonWebKey {
    let params = CreateKeyParameters {
        kty: Some(KeyType::Rsa),
        key_size: Some(2048),
        ..Default::default()
    };
    let key = client
        .create_key(name, params.try_into().unwrap(), None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    key.key.expect("key")
}

#[tokio::test]
async fn rsa_sign_verify_encrypt_decrypt_wrap_with_openssl_checks() {
    let emu = Emulator::from_env();
    let client = emu.key_client(false);
    let name = unique("rs-rsa");
    let jwk = create_rsa(&client, &name).await;
    let kid = jwk.kid.clone().unwrap();
    assert_eq!(version_of(&kid).len(), 32);
    assert!(kid.starts_with(&format!("{}/keys/{name}/", emu.vault_url())));
    let public = rsa_public(&jwk);

    // The latest version by an empty segment, and by its version.
    let latest = client
        .get_key(&name, None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(latest.key.unwrap().kid.unwrap(), kid);
    let by_version = client
        .get_key(
            &name,
            Some(KeyClientGetKeyOptions {
                key_version: Some(version_of(&kid)),
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(by_version.key.unwrap().kid.unwrap(), kid);

    // RS256 and PS256 over a SHA-256 digest; OpenSSL verifies both.
    let digest = hash(MessageDigest::sha256(), b"contract").unwrap().to_vec();
    for (alg, pss) in [
        (SignatureAlgorithm::Rs256, false),
        (SignatureAlgorithm::Ps256, true),
    ] {
        let params = SignParameters {
            algorithm: Some(alg.clone()),
            value: Some(digest.clone()),
        };
        let sig = client
            .sign(&name, params.try_into().unwrap(), None)
            .await
            .unwrap()
            .into_model()
            .unwrap();
        assert_eq!(sig.kid.as_deref(), Some(kid.as_str()));
        let sig = sig.result.unwrap();
        let mut v = Verifier::new(MessageDigest::sha256(), &public).unwrap();
        if pss {
            v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
            v.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH).unwrap();
        }
        v.update(b"contract").unwrap();
        assert!(
            v.verify(&sig).unwrap(),
            "{alg:?} signature does not verify with OpenSSL"
        );
        let params = VerifyParameters {
            algorithm: Some(alg),
            digest: Some(digest.clone()),
            signature: Some(sig),
        };
        let ok = client
            .verify(&name, "", params.try_into().unwrap(), None)
            .await
            .unwrap()
            .into_model()
            .unwrap();
        assert_eq!(ok.value, Some(true));
    }

    // OpenSSL encrypts with RSA-OAEP-256, the emulator decrypts; and the reverse.
    let rsa = public.rsa().unwrap();
    let mut ctx = openssl::pkey_ctx::PkeyCtx::new(&public).unwrap();
    ctx.encrypt_init().unwrap();
    ctx.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
    ctx.set_rsa_oaep_md(openssl::md::Md::sha256()).unwrap();
    ctx.set_rsa_mgf1_md(openssl::md::Md::sha256()).unwrap();
    let mut ct = Vec::new();
    ctx.encrypt_to_vec(b"secret data", &mut ct).unwrap();
    assert_eq!(ct.len(), rsa.size() as usize);
    let params = KeyOperationParameters {
        algorithm: Some(EncryptionAlgorithm::RsaOaep256),
        value: Some(ct),
        ..Default::default()
    };
    let plain = client
        .decrypt(&name, "", params.try_into().unwrap(), None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(plain.result.unwrap(), b"secret data");

    for alg in [
        EncryptionAlgorithm::RsaOaep,
        EncryptionAlgorithm::Rsa1_5,
        EncryptionAlgorithm::RsaOaep256,
    ] {
        let params = KeyOperationParameters {
            algorithm: Some(alg.clone()),
            value: Some(b"0123456789abcdef".to_vec()),
            ..Default::default()
        };
        let wrapped = client
            .wrap_key(&name, params.try_into().unwrap(), None)
            .await
            .unwrap()
            .into_model()
            .unwrap();
        let params = KeyOperationParameters {
            algorithm: Some(alg.clone()),
            value: wrapped.result,
            ..Default::default()
        };
        let key_version = version_of(&kid);
        let unwrapped = client
            .unwrap_key(&name, &key_version, params.try_into().unwrap(), None)
            .await
            .unwrap()
            .into_model()
            .unwrap();
        assert_eq!(unwrapped.result.unwrap(), b"0123456789abcdef", "{alg:?}");
    }
}

#[tokio::test]
async fn imported_rsa_key_signs_byte_identically_to_openssl() {
    let emu = Emulator::from_env();
    for hsm in [false, true] {
        let client = emu.key_client(hsm);
        let name = unique("rs-import");
        let rsa = Rsa::generate(2048).unwrap();
        let jwk = JsonWebKey {
            kty: Some(KeyType::Rsa),
            n: Some(rsa.n().to_vec()),
            e: Some(rsa.e().to_vec()),
            d: Some(rsa.d().to_vec()),
            p: Some(rsa.p().unwrap().to_vec()),
            q: Some(rsa.q().unwrap().to_vec()),
            dp: Some(rsa.dmp1().unwrap().to_vec()),
            dq: Some(rsa.dmq1().unwrap().to_vec()),
            qi: Some(rsa.iqmp().unwrap().to_vec()),
            ..Default::default()
        };
        let params = ImportKeyParameters {
            key: Some(jwk),
            ..Default::default()
        };
        let key = client
            .import_key(&name, params.try_into().unwrap(), None)
            .await
            .unwrap()
            .into_model()
            .unwrap();
        let jwk = key.key.unwrap();
        assert_eq!(
            jwk.kty,
            Some(if hsm { KeyType::RsaHsm } else { KeyType::Rsa })
        );
        assert!(jwk.d.is_none(), "the private part must not come back");
        let pkey = PKey::from_rsa(rsa).unwrap();
        let mut signer = Signer::new(MessageDigest::sha384(), &pkey).unwrap();
        signer.update(b"deterministic").unwrap();
        let expected = signer.sign_to_vec().unwrap();
        let digest = hash(MessageDigest::sha384(), b"deterministic")
            .unwrap()
            .to_vec();
        let params = SignParameters {
            algorithm: Some(SignatureAlgorithm::Rs384),
            value: Some(digest),
        };
        let options = KeyClientSignOptions {
            key_version: Some(version_of(jwk.kid.as_ref().unwrap())),
            ..Default::default()
        };
        let sig = client
            .sign(&name, params.try_into().unwrap(), Some(options))
            .await
            .unwrap()
            .into_model()
            .unwrap();
        assert_eq!(
            sig.result.unwrap(),
            expected,
            "RS384 must match OpenSSL byte for byte (hsm={hsm})"
        );
    }
}

#[tokio::test]
async fn ec_signatures_are_raw_r_s_and_verify_with_openssl() {
    let emu = Emulator::from_env();
    let cases = [
        (
            CurveName::P256,
            SignatureAlgorithm::Es256,
            openssl::nid::Nid::X9_62_PRIME256V1,
            MessageDigest::sha256(),
            32,
        ),
        (
            CurveName::P384,
            SignatureAlgorithm::Es384,
            openssl::nid::Nid::SECP384R1,
            MessageDigest::sha384(),
            48,
        ),
        (
            CurveName::P521,
            SignatureAlgorithm::Es512,
            openssl::nid::Nid::SECP521R1,
            MessageDigest::sha512(),
            66,
        ),
        (
            CurveName::P256K,
            SignatureAlgorithm::Es256K,
            openssl::nid::Nid::SECP256K1,
            MessageDigest::sha256(),
            32,
        ),
    ];
    for hsm in [false, true] {
        let client = emu.key_client(hsm);
        for (curve, alg, nid, md, width) in cases.clone() {
            let name = unique("rs-ec");
            let params = CreateKeyParameters {
                kty: Some(KeyType::Ec),
                curve: Some(curve.clone()),
                ..Default::default()
            };
            let key = client
                .create_key(&name, params.try_into().unwrap(), None)
                .await
                .unwrap()
                .into_model()
                .unwrap();
            let jwk = key.key.unwrap();
            assert_eq!(
                jwk.kty,
                Some(if hsm { KeyType::EcHsm } else { KeyType::Ec })
            );
            let public = ec_public(&jwk, nid);
            let digest = hash(md, b"ec contract").unwrap().to_vec();
            let params = SignParameters {
                algorithm: Some(alg.clone()),
                value: Some(digest.clone()),
            };
            let sig = client
                .sign(&name, params.try_into().unwrap(), None)
                .await
                .unwrap()
                .into_model()
                .unwrap()
                .result
                .unwrap();
            assert_eq!(sig.len(), 2 * width, "{alg:?} signature is raw r||s");
            let der = EcdsaSig::from_private_components(
                BigNum::from_slice(&sig[..width]).unwrap(),
                BigNum::from_slice(&sig[width..]).unwrap(),
            )
            .unwrap();
            assert!(
                der.verify(&digest, &public).unwrap(),
                "{alg:?} (hsm={hsm}) does not verify with OpenSSL"
            );
        }
    }
}

#[tokio::test]
async fn list_follows_next_links() {
    let emu = Emulator::from_env();
    let client = emu.key_client(false);
    let prefix = unique("rs-list");
    for i in 0..3 {
        create_rsa(&client, &format!("{prefix}-{i}")).await;
    }
    let options = KeyClientListKeyPropertiesOptions {
        maxresults: Some(2),
        ..Default::default()
    };
    let all: Vec<_> = client
        .list_key_properties(Some(options))
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mine = all
        .iter()
        .filter(|k| k.kid.as_deref().is_some_and(|id| id.contains(&prefix)))
        .count();
    assert_eq!(mine, 3);
    let seeded = all
        .iter()
        .filter(|k| {
            k.kid
                .as_deref()
                .is_some_and(|id| id.ends_with("/keys/rsa2048"))
        })
        .count();
    assert_eq!(seeded, 1, "the seeded fixture key is listed");
    let versions: Vec<_> = client
        .list_key_properties_versions(&format!("{prefix}-0"), None)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(versions.len(), 1);
}

#[tokio::test]
async fn backup_delete_purge_restore() {
    let emu = Emulator::from_env();
    let client = emu.key_client(false);
    let name = unique("rs-backup");
    let jwk = create_rsa(&client, &name).await;
    let blob = client
        .backup_key(&name, None)
        .await
        .unwrap()
        .into_model()
        .unwrap()
        .value
        .unwrap();
    let deleted = client
        .delete_key(&name, None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert!(
        deleted
            .recovery_id
            .unwrap()
            .ends_with(&format!("/deletedkeys/{name}"))
    );
    assert!(
        client.get_key(&name, None).await.is_err(),
        "a deleted key is gone"
    );
    // Purge answers 409 ObjectIsBeingDeleted while the deletion runs; retry like a client must.
    let mut purged = false;
    for _ in 0..50 {
        match client.purge_deleted_key(&name, None).await {
            Ok(_) => {
                purged = true;
                break;
            }
            Err(e) => {
                assert_eq!(
                    e.http_status().map(u16::from),
                    Some(409),
                    "unexpected purge error: {e}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    assert!(purged);
    let params = RestoreKeyParameters {
        key_backup: Some(blob),
    };
    let restored = client
        .restore_key(params.try_into().unwrap(), None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(restored.key.unwrap().n, jwk.n);
}

#[tokio::test]
async fn hsm_random_bytes_and_seeded_fixture_keys() {
    let emu = Emulator::from_env();
    let hsm = emu.key_client(true);
    let params = GetRandomBytesParameters { count: Some(32) };
    let bytes = hsm
        .get_random_bytes(params.try_into().unwrap(), None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(bytes.value.unwrap().len(), 32);

    // The seed dir's rsa2048 is the same key in the vault and the HSM.
    let pem = std::fs::read(fixtures_dir().join("rsa2048.key.pem")).expect("fixture key");
    let fixture = PKey::private_key_from_pem(&pem).unwrap().rsa().unwrap();
    for (client, kty) in [
        (emu.key_client(false), KeyType::Rsa),
        (hsm, KeyType::RsaHsm),
    ] {
        let key = client
            .get_key("rsa2048", None)
            .await
            .unwrap()
            .into_model()
            .unwrap();
        let jwk = key.key.unwrap();
        assert_eq!(jwk.kty, Some(kty));
        assert_eq!(jwk.n.unwrap(), fixture.n().to_vec());
    }
}

#[tokio::test]
async fn wrong_digest_length_is_bad_parameter() {
    let emu = Emulator::from_env();
    let client = emu.key_client(false);
    let params = SignParameters {
        algorithm: Some(SignatureAlgorithm::Rs256),
        value: Some(vec![0u8; 20]),
    };
    let err = client
        .sign("rsa2048", params.try_into().unwrap(), None)
        .await
        .unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(400));
}
