//! Key Vault mapping tests: signature and decryption algorithms, key names.

use super::*;

#[test]
fn sign_mapping_follows_the_table() {
    let d = [7u8; 32];
    let alg = |r: SignRequest| KeyVaultBackend::sign_params(&r, &d).map(|(a, _)| a);
    assert_eq!(
        alg(SignRequest::RsaPkcs1 {
            hash: Some(HashAlg::Sha256)
        })
        .unwrap(),
        SignatureAlgorithm::Rs256
    );
    let (a, v) = KeyVaultBackend::sign_params(
        &SignRequest::RsaPkcs1 {
            hash: Some(HashAlg::Sha1),
        },
        &[1u8; 20],
    )
    .unwrap();
    assert_eq!(a, SignatureAlgorithm::Rsnull);
    assert_eq!(v, digest_info::encode(HashAlg::Sha1, &[1u8; 20]));
    assert_eq!(
        alg(SignRequest::RsaPkcs1 { hash: None }).unwrap(),
        SignatureAlgorithm::Rsnull
    );
    let pss = |h: HashAlg, m: HashAlg, s: usize| {
        pss_algorithm(&SignRequest::RsaPss {
            hash: h,
            mgf_hash: m,
            salt_len: s,
        })
    };
    assert_eq!(
        pss(HashAlg::Sha256, HashAlg::Sha256, 32).unwrap(),
        SignatureAlgorithm::Ps256
    );
    assert!(matches!(
        pss(HashAlg::Sha256, HashAlg::Sha256, 20),
        Err(Error::MechanismParamInvalid(_))
    ));
    assert!(matches!(
        pss(HashAlg::Sha1, HashAlg::Sha1, 20),
        Err(Error::MechanismParamInvalid(_))
    ));
}

#[test]
fn ecdsa_digests_are_fitted_to_the_curve() {
    let (a, v) =
        KeyVaultBackend::sign_params(&SignRequest::Ecdsa { curve: Curve::P256 }, &[9u8; 20])
            .unwrap();
    assert_eq!(a, SignatureAlgorithm::Es256);
    assert_eq!(v.len(), 32);
    assert_eq!(&v[12..], &[9u8; 20]);
    let (_, v) =
        KeyVaultBackend::sign_params(&SignRequest::Ecdsa { curve: Curve::P256 }, &[5u8; 64])
            .unwrap();
    assert_eq!(v, vec![5u8; 32]);
}

#[test]
fn decrypt_mapping_refuses_labels_and_other_hashes() {
    let oaep = |h, m, l: &[u8]| {
        KeyVaultBackend::decrypt_algorithm(&DecryptRequest::RsaOaep {
            hash: h,
            mgf_hash: m,
            label: l.to_vec(),
        })
    };
    assert_eq!(
        oaep(HashAlg::Sha1, HashAlg::Sha1, b"").unwrap(),
        EncryptionAlgorithm::RsaOaep
    );
    assert_eq!(
        oaep(HashAlg::Sha256, HashAlg::Sha256, b"").unwrap(),
        EncryptionAlgorithm::RsaOaep256
    );
    assert!(matches!(
        oaep(HashAlg::Sha256, HashAlg::Sha256, b"l"),
        Err(Error::MechanismParamInvalid(_))
    ));
    assert!(matches!(
        oaep(HashAlg::Sha384, HashAlg::Sha384, b""),
        Err(Error::MechanismParamInvalid(_))
    ));
    assert_eq!(
        KeyVaultBackend::decrypt_algorithm(&DecryptRequest::RsaPkcs1).unwrap(),
        EncryptionAlgorithm::Rsa1_5
    );
}

#[test]
fn key_names_from_labels() {
    assert_eq!(KeyVaultBackend::key_name("my key/1"), "my-key-1");
    assert_eq!(KeyVaultBackend::key_name("///"), "key");
}
