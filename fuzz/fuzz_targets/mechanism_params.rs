//! DigestInfo recognition (src/mechanism/digest_info.rs) and mechanism parameters: a
//! CK_MECHANISM laid out in harness memory from the input, decoded by `ffi::args::mechanism`
//! as every C_*Init does, then the PSS / OAEP checks of src/mechanism/mod.rs against the
//! fixture keys, and the local verify / encrypt they lead to; AES-CBC-PAD / AES-GCM
//! parameters (CK_GCM_PARAMS) and the local AES decryption.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use cryptoki_sys::*;
use identify_pkcs11::ffi::args;
use identify_pkcs11::fuzzing::{AesScheme, CryptScheme, SignScheme};
use identify_pkcs11::fuzzing::{HashAlg, PublicInfo, digest_info};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const MECHANISMS: &[CK_MECHANISM_TYPE] = &[
    CKM_AES_CBC_PAD,
    CKM_AES_GCM,
    CKM_RSA_PKCS,
    CKM_RSA_PKCS_OAEP,
    CKM_RSA_PKCS_PSS,
    CKM_SHA1_RSA_PKCS,
    CKM_SHA224_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
    CKM_SHA1_RSA_PKCS_PSS,
    CKM_SHA224_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_SHA384_RSA_PKCS_PSS,
    CKM_SHA512_RSA_PKCS_PSS,
    CKM_ECDSA,
    CKM_ECDSA_SHA1,
    CKM_ECDSA_SHA224,
    CKM_ECDSA_SHA256,
    CKM_ECDSA_SHA384,
    CKM_ECDSA_SHA512,
    CKM_SHA_1,
    CKM_SHA256,
];
const HASHES: &[CK_MECHANISM_TYPE] = &[CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512];
const MGFS: &[CK_RSA_PKCS_MGF_TYPE] = &[
    CKG_MGF1_SHA1,
    CKG_MGF1_SHA224,
    CKG_MGF1_SHA256,
    CKG_MGF1_SHA384,
    CKG_MGF1_SHA512,
];

fn keys() -> &'static [PublicInfo] {
    static KEYS: OnceLock<Vec<PublicInfo>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../softhsm-fixtures/keys");
        ["rsa2048", "rsa3072", "p256"]
            .iter()
            .map(|n| {
                let pem = std::fs::read(format!("{dir}/{n}.crt.pem")).expect("fixture");
                let cert = openssl::x509::X509::from_pem(&pem).expect("fixture");
                let spki = cert.public_key().unwrap().public_key_to_der().unwrap();
                PublicInfo::from_spki(&spki).expect("fixture key")
            })
            .collect()
    })
}

fn pick<T: Copy>(
    u: &mut Unstructured,
    list: &[T],
    other: impl FnOnce(&mut Unstructured) -> T,
) -> T {
    if u.ratio(1, 8).unwrap_or(false) {
        other(u)
    } else {
        *u.choose(list).unwrap_or(&list[0])
    }
}

fn ulong(u: &mut Unstructured) -> CK_ULONG {
    CK_ULONG::arbitrary(u).unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    // DigestInfo: a recognised one re-encodes to the same bytes.
    if let Some((h, d)) = digest_info::parse(data) {
        assert_eq!(digest_info::encode(h, d), data);
        assert_eq!(d.len(), h.output_len());
    }
    let _ = PublicInfo::from_spki(data);

    let mut u = Unstructured::new(data);
    let mechanism = pick(&mut u, MECHANISMS, ulong);
    // The parameter: NULL, a PSS or OAEP structure, or raw bytes; always harness memory of
    // exactly the stated length.
    let label: Vec<u8> = Vec::arbitrary(&mut u).unwrap_or_default();
    let mut pss = CK_RSA_PKCS_PSS_PARAMS {
        hashAlg: pick(&mut u, HASHES, ulong),
        mgf: pick(&mut u, MGFS, ulong),
        sLen: if u.ratio(1, 4).unwrap_or(false) {
            ulong(&mut u)
        } else {
            u.int_in_range(0..=600).unwrap_or(32)
        },
    };
    let mut oaep = CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: pick(&mut u, HASHES, ulong),
        mgf: pick(&mut u, MGFS, ulong),
        source: pick(&mut u, &[CKZ_DATA_SPECIFIED, 0], ulong),
        pSourceData: if label.is_empty() && u.ratio(1, 2).unwrap_or(false) {
            std::ptr::null_mut()
        } else {
            label.as_ptr() as *mut _
        },
        ulSourceDataLen: label.len() as CK_ULONG,
    };
    let mut iv: Vec<u8> = Vec::arbitrary(&mut u).unwrap_or_default();
    let aad: Vec<u8> = Vec::arbitrary(&mut u).unwrap_or_default();
    let mut gcm = CK_GCM_PARAMS {
        pIv: if iv.is_empty() && u.ratio(1, 2).unwrap_or(false) {
            std::ptr::null_mut()
        } else {
            iv.as_mut_ptr()
        },
        ulIvLen: iv.len() as CK_ULONG,
        ulIvBits: pick(&mut u, &[0, iv.len() as CK_ULONG * 8], ulong),
        pAAD: aad.as_ptr() as *mut _,
        ulAADLen: aad.len() as CK_ULONG,
        ulTagBits: pick(&mut u, &[128, 96, 64, 32], ulong),
    };
    let mut raw: Vec<u8> = Vec::arbitrary(&mut u).unwrap_or_default();
    let (p, len): (*mut std::ffi::c_void, usize) = match u.int_in_range(0..=4u8).unwrap_or(0) {
        0 => (std::ptr::null_mut(), 0),
        1 => (
            &mut pss as *mut _ as *mut _,
            size_of::<CK_RSA_PKCS_PSS_PARAMS>(),
        ),
        2 => (
            &mut oaep as *mut _ as *mut _,
            size_of::<CK_RSA_PKCS_OAEP_PARAMS>(),
        ),
        3 => (&mut gcm as *mut _ as *mut _, size_of::<CK_GCM_PARAMS>()),
        _ => (raw.as_mut_ptr() as *mut _, raw.len()),
    };
    let m = CK_MECHANISM {
        mechanism,
        pParameter: p,
        ulParameterLen: len as CK_ULONG,
    };
    // SAFETY: `m` and everything it points to (the parameter structure or bytes of exactly
    // `ulParameterLen`, the OAEP label of exactly `ulSourceDataLen`) live on this frame.
    let Ok(Some(decoded)) = (unsafe { args::mechanism(&m) }) else {
        return;
    };
    let keys = keys();
    let key = &keys[u.choose_index(keys.len()).unwrap_or(0)];
    let input: Vec<u8> = Vec::arbitrary(&mut u).unwrap_or_default();
    let signature: Vec<u8> = Vec::arbitrary(&mut u).unwrap_or_default();
    if let Ok(s) = SignScheme::from_mechanism(&decoded) {
        let _ = s.key_kind();
        if s.check_key(key).is_ok() {
            let data = match s.prehash {
                Some(h) => identify_pkcs11::fuzzing::hash(h, &input).unwrap(),
                None => input.clone(),
            };
            if s.request(&data, key).is_ok() {
                let _ = s.verify(key, &data, &signature);
            }
        }
    }
    if let Ok(c) = CryptScheme::from_mechanism(&decoded) {
        let max = c.max_plaintext(key);
        if input.len() <= max && key.kind == identify_pkcs11::fuzzing::KeyKind::Rsa {
            let out = c
                .encrypt(key, &input)
                .expect("plaintext within max_plaintext encrypts");
            assert_eq!(out.len(), key.size_bytes);
        }
    }
    if let Ok(a) = AesScheme::from_mechanism(&decoded) {
        let aes_key = &signature[..signature.len().min(32)];
        let bound = a.plaintext_bound(input.len());
        match a.decrypt(aes_key, &input) {
            Ok(plain) => assert!(plain.len() <= bound.expect("a decryption within its bound")),
            Err(_) => {}
        }
    }
    let _ = identify_pkcs11::fuzzing::digest_hash(&decoded).map(HashAlg::output_len);
});
