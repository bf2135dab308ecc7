//! Unit tests of the Windows store backend's pure mappings: CNG usage flags of a
//! generation template and back, and the digests CryptoAPI signs.

use super::crypt::capi_alg;
use super::keys::{cng_usage, usage_of};
use crate::backend::KeyUsage;
use crate::crypto::{Curve, HashAlg, SignRequest};
use windows_sys::Win32::Security::Cryptography as c;

#[test]
fn generation_templates_become_cng_usage_and_back() {
    let u = |sign, decrypt, unwrap| KeyUsage {
        sign,
        decrypt,
        unwrap,
    };
    assert_eq!(
        cng_usage(KeyUsage::ALL, true).unwrap(),
        c::NCRYPT_ALLOW_SIGNING_FLAG | c::NCRYPT_ALLOW_DECRYPT_FLAG
    );
    assert_eq!(
        cng_usage(u(false, true, true), true).unwrap(),
        c::NCRYPT_ALLOW_DECRYPT_FLAG
    );
    assert_eq!(
        cng_usage(u(true, false, false), true).unwrap(),
        c::NCRYPT_ALLOW_SIGNING_FLAG
    );
    // EC keys sign only, whatever the template says of decryption.
    assert_eq!(
        cng_usage(KeyUsage::ALL, false).unwrap(),
        c::NCRYPT_ALLOW_SIGNING_FLAG
    );
    assert!(cng_usage(u(true, false, true), true).is_err());
    assert!(cng_usage(u(false, false, false), true).is_err());
    assert!(cng_usage(u(false, true, true), false).is_err());
    for usage in [KeyUsage::ALL, u(false, true, true), u(true, false, false)] {
        assert_eq!(usage_of(cng_usage(usage, true).unwrap()), usage);
    }
    assert_eq!(usage_of(c::NCRYPT_ALLOW_ALL_USAGES), KeyUsage::ALL);
}

#[test]
fn capi_signs_pkcs1_with_known_digests_only() {
    assert_eq!(
        capi_alg(
            &SignRequest::RsaPkcs1 {
                hash: Some(HashAlg::Sha256)
            },
            32
        )
        .unwrap(),
        c::CALG_SHA_256
    );
    assert_eq!(
        capi_alg(&SignRequest::RsaPkcs1 { hash: None }, 36).unwrap(),
        c::CALG_SSL3_SHAMD5
    );
    assert!(capi_alg(&SignRequest::RsaPkcs1 { hash: None }, 35).is_err());
    assert!(capi_alg(&SignRequest::Ecdsa { curve: Curve::P256 }, 32).is_err());
    assert!(
        capi_alg(
            &SignRequest::RsaPkcs1 {
                hash: Some(HashAlg::Sha224)
            },
            28
        )
        .is_err()
    );
}
