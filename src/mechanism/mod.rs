//! Mechanisms: the table advertised by C_GetMechanismList/Info, parameter checks (PSS,
//! OAEP), the mapping of a mechanism to what a backend signs or decrypts, and the local
//! public-key operations (verify, encrypt) and digests.

pub mod aes;

use crate::crypto::{DecryptRequest, HashAlg, KeyKind, PublicInfo, SignRequest, digest_info};
use crate::error::{Error, Result};
use cryptoki_sys::*;
use openssl::rsa::Padding;

/// A mechanism as the caller gave it, decoded by `ffi/` (no pointers left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mechanism {
    pub mechanism: CK_MECHANISM_TYPE,
    pub param: MechanismParam,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MechanismParam {
    None,
    Pss {
        hash_alg: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        salt_len: CK_ULONG,
    },
    Oaep {
        hash_alg: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        source: CK_RSA_PKCS_OAEP_SOURCE_TYPE,
        source_data: Vec<u8>,
    },
    /// `CK_GCM_PARAMS` (CKM_AES_GCM).
    Gcm {
        iv: Vec<u8>,
        iv_bits: CK_ULONG,
        aad: Vec<u8>,
        tag_bits: CK_ULONG,
    },
    /// Parameter bytes of any other mechanism (CKM_AES_CBC_PAD: the IV).
    Other(Vec<u8>),
}

/// What C_GetMechanismInfo reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MechanismInfo {
    pub min_key_size: CK_ULONG,
    pub max_key_size: CK_ULONG,
    pub flags: CK_FLAGS,
}

const RSA_MIN: CK_ULONG = 1024;
const RSA_MAX: CK_ULONG = 16384;
const EC_MIN: CK_ULONG = 256;
const EC_MAX: CK_ULONG = 521;

/// `CKF_HW`: pkcs11-tool runs its signature tests only for hardware mechanisms, and the
/// keys live outside the caller's process, which is what the flag tells.
const SIGN: CK_FLAGS = CKF_HW | CKF_SIGN | CKF_VERIFY;

/// The advertised mechanisms, in C_GetMechanismList order.
pub const TABLE: &[(CK_MECHANISM_TYPE, MechanismInfo)] = &[
    // Key generation makes 2048, 3072 and 4096 bits; existing keys from 1024 bits are used.
    (
        CKM_RSA_PKCS_KEY_PAIR_GEN,
        MechanismInfo {
            min_key_size: 2048,
            max_key_size: 4096,
            flags: CKF_HW | CKF_GENERATE_KEY_PAIR,
        },
    ),
    (
        CKM_RSA_PKCS,
        rsa(SIGN | CKF_ENCRYPT | CKF_DECRYPT | CKF_UNWRAP),
    ),
    (CKM_SHA1_RSA_PKCS, rsa(SIGN)),
    (CKM_SHA224_RSA_PKCS, rsa(SIGN)),
    (CKM_SHA256_RSA_PKCS, rsa(SIGN)),
    (CKM_SHA384_RSA_PKCS, rsa(SIGN)),
    (CKM_SHA512_RSA_PKCS, rsa(SIGN)),
    (CKM_RSA_PKCS_PSS, rsa(SIGN)),
    (CKM_SHA1_RSA_PKCS_PSS, rsa(SIGN)),
    (CKM_SHA224_RSA_PKCS_PSS, rsa(SIGN)),
    (CKM_SHA256_RSA_PKCS_PSS, rsa(SIGN)),
    (CKM_SHA384_RSA_PKCS_PSS, rsa(SIGN)),
    (CKM_SHA512_RSA_PKCS_PSS, rsa(SIGN)),
    (
        CKM_RSA_PKCS_OAEP,
        rsa(CKF_HW | CKF_ENCRYPT | CKF_DECRYPT | CKF_UNWRAP),
    ),
    (CKM_EC_KEY_PAIR_GEN, ec(CKF_HW | CKF_GENERATE_KEY_PAIR)),
    (CKM_ECDSA, ec(SIGN)),
    (CKM_ECDSA_SHA1, ec(SIGN)),
    (CKM_ECDSA_SHA224, ec(SIGN)),
    (CKM_ECDSA_SHA256, ec(SIGN)),
    (CKM_ECDSA_SHA384, ec(SIGN)),
    (CKM_ECDSA_SHA512, ec(SIGN)),
    // Decryption with session AES keys made by C_UnwrapKey (mechanism/aes.rs); key
    // sizes in bytes, as PKCS#11 gives them for AES.
    (CKM_AES_CBC_PAD, aes(CKF_DECRYPT)),
    (CKM_AES_GCM, aes(CKF_DECRYPT)),
    (CKM_SHA_1, digest()),
    (CKM_SHA224, digest()),
    (CKM_SHA256, digest()),
    (CKM_SHA384, digest()),
    (CKM_SHA512, digest()),
];

const fn rsa(flags: CK_FLAGS) -> MechanismInfo {
    MechanismInfo {
        min_key_size: RSA_MIN,
        max_key_size: RSA_MAX,
        flags,
    }
}

const fn ec(flags: CK_FLAGS) -> MechanismInfo {
    MechanismInfo {
        min_key_size: EC_MIN,
        max_key_size: EC_MAX,
        flags: flags | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS,
    }
}

const fn aes(flags: CK_FLAGS) -> MechanismInfo {
    MechanismInfo {
        min_key_size: 16,
        max_key_size: 32,
        flags,
    }
}

const fn digest() -> MechanismInfo {
    MechanismInfo {
        min_key_size: 0,
        max_key_size: 0,
        flags: CKF_DIGEST,
    }
}

pub fn info(mechanism: CK_MECHANISM_TYPE) -> Result<MechanismInfo> {
    TABLE
        .iter()
        .find(|(m, _)| *m == mechanism)
        .map(|(_, i)| *i)
        .ok_or(Error::MechanismInvalid)
}

fn hash_of_mechanism(m: CK_MECHANISM_TYPE) -> Option<HashAlg> {
    Some(match m {
        CKM_SHA_1 => HashAlg::Sha1,
        CKM_SHA224 => HashAlg::Sha224,
        CKM_SHA256 => HashAlg::Sha256,
        CKM_SHA384 => HashAlg::Sha384,
        CKM_SHA512 => HashAlg::Sha512,
        _ => return None,
    })
}

fn hash_of_mgf(mgf: CK_RSA_PKCS_MGF_TYPE) -> Option<HashAlg> {
    Some(match mgf {
        CKG_MGF1_SHA1 => HashAlg::Sha1,
        CKG_MGF1_SHA224 => HashAlg::Sha224,
        CKG_MGF1_SHA256 => HashAlg::Sha256,
        CKG_MGF1_SHA384 => HashAlg::Sha384,
        CKG_MGF1_SHA512 => HashAlg::Sha512,
        _ => return None,
    })
}

/// A digest mechanism (C_DigestInit).
pub fn digest_hash(m: &Mechanism) -> Result<HashAlg> {
    hash_of_mechanism(m.mechanism).ok_or(Error::MechanismInvalid)
}

/// How a sign/verify mechanism treats its input and what the key signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignScheme {
    /// Hash the data here first (the `CKM_SHAxxx_*` mechanisms); `None`: the input is
    /// already what gets signed (a DigestInfo, a digest).
    pub prehash: Option<HashAlg>,
    pub kind: SignKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignKind {
    RsaPkcs1,
    RsaPss {
        hash: HashAlg,
        mgf_hash: HashAlg,
        salt_len: usize,
    },
    Ecdsa,
}

impl SignScheme {
    pub fn from_mechanism(m: &Mechanism) -> Result<SignScheme> {
        let (prehash, kind) = match m.mechanism {
            CKM_RSA_PKCS => (None, SignKind::RsaPkcs1),
            CKM_SHA1_RSA_PKCS => (Some(HashAlg::Sha1), SignKind::RsaPkcs1),
            CKM_SHA224_RSA_PKCS => (Some(HashAlg::Sha224), SignKind::RsaPkcs1),
            CKM_SHA256_RSA_PKCS => (Some(HashAlg::Sha256), SignKind::RsaPkcs1),
            CKM_SHA384_RSA_PKCS => (Some(HashAlg::Sha384), SignKind::RsaPkcs1),
            CKM_SHA512_RSA_PKCS => (Some(HashAlg::Sha512), SignKind::RsaPkcs1),
            CKM_RSA_PKCS_PSS => (None, pss(m, None)?),
            CKM_SHA1_RSA_PKCS_PSS => (Some(HashAlg::Sha1), pss(m, Some(HashAlg::Sha1))?),
            CKM_SHA224_RSA_PKCS_PSS => (Some(HashAlg::Sha224), pss(m, Some(HashAlg::Sha224))?),
            CKM_SHA256_RSA_PKCS_PSS => (Some(HashAlg::Sha256), pss(m, Some(HashAlg::Sha256))?),
            CKM_SHA384_RSA_PKCS_PSS => (Some(HashAlg::Sha384), pss(m, Some(HashAlg::Sha384))?),
            CKM_SHA512_RSA_PKCS_PSS => (Some(HashAlg::Sha512), pss(m, Some(HashAlg::Sha512))?),
            CKM_ECDSA => (None, SignKind::Ecdsa),
            CKM_ECDSA_SHA1 => (Some(HashAlg::Sha1), SignKind::Ecdsa),
            CKM_ECDSA_SHA224 => (Some(HashAlg::Sha224), SignKind::Ecdsa),
            CKM_ECDSA_SHA256 => (Some(HashAlg::Sha256), SignKind::Ecdsa),
            CKM_ECDSA_SHA384 => (Some(HashAlg::Sha384), SignKind::Ecdsa),
            CKM_ECDSA_SHA512 => (Some(HashAlg::Sha512), SignKind::Ecdsa),
            _ => return Err(Error::MechanismInvalid),
        };
        Ok(SignScheme { prehash, kind })
    }

    pub fn key_kind(&self) -> KeyKind {
        match self.kind {
            SignKind::Ecdsa => KeyKind::Ec,
            _ => KeyKind::Rsa,
        }
    }

    /// Checks the parameters against the key (at *Init, so that C_Sign does not fail
    /// with a parameter error): the PSS salt must fit, emLen >= hLen + sLen + 2
    /// (RFC 8017 §9.1.1 step 3).
    pub fn check_key(&self, key: &PublicInfo) -> Result<()> {
        if let SignKind::RsaPss { hash, salt_len, .. } = &self.kind {
            let em_len = key.bits.saturating_sub(1).div_ceil(8);
            let needed = hash
                .output_len()
                .checked_add(*salt_len)
                .and_then(|n| n.checked_add(2));
            if needed.is_none_or(|n| n > em_len) {
                return Err(Error::MechanismParamInvalid(format!(
                    "PSS salt of {salt_len} bytes is too long for a {}-bit key",
                    key.bits
                )));
            }
        }
        Ok(())
    }

    /// What the store is asked to sign with `key` (whose curve an ECDSA request names); a
    /// raw CKM_RSA_PKCS input's DigestInfo is recognised by `request`.
    pub fn backend_request(&self, key: &PublicInfo) -> Result<SignRequest> {
        Ok(match &self.kind {
            SignKind::RsaPkcs1 => SignRequest::RsaPkcs1 { hash: self.prehash },
            SignKind::RsaPss {
                hash,
                mgf_hash,
                salt_len,
            } => SignRequest::RsaPss {
                hash: *hash,
                mgf_hash: *mgf_hash,
                salt_len: *salt_len,
            },
            SignKind::Ecdsa => SignRequest::Ecdsa {
                curve: key.curve.ok_or(Error::KeyTypeInconsistent)?,
            },
        })
    }

    /// Turns the (hashed) input into the backend request and the bytes it signs, checking
    /// lengths against the key.
    pub fn request(&self, input: &[u8], key: &PublicInfo) -> Result<(SignRequest, Vec<u8>)> {
        match &self.kind {
            SignKind::RsaPkcs1 => {
                if self.prehash.is_some() {
                    return Ok((SignRequest::RsaPkcs1 { hash: self.prehash }, input.to_vec()));
                }
                if input.is_empty() || input.len() + 11 > key.size_bytes {
                    return Err(Error::DataLenRange);
                }
                Ok(match digest_info::parse(input) {
                    Some((h, d)) => (SignRequest::RsaPkcs1 { hash: Some(h) }, d.to_vec()),
                    None => (SignRequest::RsaPkcs1 { hash: None }, input.to_vec()),
                })
            }
            SignKind::RsaPss { hash, .. } => {
                if input.len() != hash.output_len() {
                    return Err(Error::DataLenRange);
                }
                self.check_key(key)?;
                Ok((self.backend_request(key)?, input.to_vec()))
            }
            SignKind::Ecdsa => {
                if input.is_empty() || input.len() > 64 {
                    return Err(Error::DataLenRange);
                }
                Ok((self.backend_request(key)?, input.to_vec()))
            }
        }
    }

    /// Verifies locally with the public key.
    pub fn verify(&self, key: &PublicInfo, input: &[u8], signature: &[u8]) -> Result<()> {
        if signature.len() != key.signature_len() {
            return Err(Error::SignatureLenRange);
        }
        let (request, data) = self.request(input, key)?;
        check_signature(key, &request, &data, signature)
    }
}

/// Checks a signature over what the backend was asked to sign. Used for C_Verify and to
/// check every signature a store returns before it reaches the caller.
pub fn check_signature(
    key: &PublicInfo,
    request: &SignRequest,
    data: &[u8],
    signature: &[u8],
) -> Result<()> {
    if signature.len() != key.signature_len() {
        return Err(Error::SignatureLenRange);
    }
    {
        let ok = match *request {
            SignRequest::RsaPkcs1 { hash } => {
                let rsa = key.pkey.rsa().map_err(|_| Error::KeyTypeInconsistent)?;
                let expected = match hash {
                    Some(h) => digest_info::encode(h, data),
                    None => data.to_vec(),
                };
                let mut out = vec![0u8; key.size_bytes];
                match rsa.public_decrypt(signature, &mut out, Padding::PKCS1) {
                    Ok(n) => out.get(..n) == Some(expected.as_slice()),
                    Err(_) => false,
                }
            }
            SignRequest::RsaPss {
                hash,
                mgf_hash,
                salt_len,
            } => {
                let mut ctx = openssl::pkey_ctx::PkeyCtx::new(&key.pkey)?;
                ctx.verify_init()?;
                crate::crypto::scheme::configure_pss(&mut ctx, hash, mgf_hash, salt_len)?;
                ctx.verify(data, signature).unwrap_or(false)
            }
            SignRequest::Ecdsa { .. } => {
                let ec = key.pkey.ec_key().map_err(|_| Error::KeyTypeInconsistent)?;
                let half = signature.len() / 2;
                let r = openssl::bn::BigNum::from_slice(&signature[..half])?;
                let s = openssl::bn::BigNum::from_slice(&signature[half..])?;
                let sig = openssl::ecdsa::EcdsaSig::from_private_components(r, s)?;
                sig.verify(data, &ec).unwrap_or(false)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::SignatureInvalid)
        }
    }
}

fn pss(m: &Mechanism, fixed_hash: Option<HashAlg>) -> Result<SignKind> {
    let MechanismParam::Pss {
        hash_alg,
        mgf,
        salt_len,
    } = &m.param
    else {
        return Err(Error::MechanismParamInvalid(
            "RSA-PSS needs CK_RSA_PKCS_PSS_PARAMS".into(),
        ));
    };
    let hash = hash_of_mechanism(*hash_alg)
        .ok_or_else(|| Error::MechanismParamInvalid(format!("PSS hashAlg {hash_alg:#x}")))?;
    if let Some(fixed) = fixed_hash
        && fixed != hash
    {
        return Err(Error::MechanismParamInvalid(format!(
            "PSS hashAlg {} does not match the mechanism's {}",
            hash.name(),
            fixed.name()
        )));
    }
    let mgf_hash = hash_of_mgf(*mgf)
        .ok_or_else(|| Error::MechanismParamInvalid(format!("PSS mgf {mgf:#x}")))?;
    // PKCS#11 would allow another MGF1 hash, but neither Key Vault nor CNG can sign that
    // way: one rule for every slot kind.
    if mgf_hash != hash {
        return Err(Error::MechanismParamInvalid(format!(
            "PSS MGF1 hash {} differs from hashAlg {}",
            mgf_hash.name(),
            hash.name()
        )));
    }
    let salt_len = usize::try_from(*salt_len)
        .map_err(|_| Error::MechanismParamInvalid("PSS salt length".into()))?;
    Ok(SignKind::RsaPss {
        hash,
        mgf_hash,
        salt_len,
    })
}

/// How an encrypt/decrypt mechanism pads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptScheme(pub DecryptRequest);

impl CryptScheme {
    pub fn from_mechanism(m: &Mechanism) -> Result<CryptScheme> {
        match (m.mechanism, &m.param) {
            (CKM_RSA_PKCS, _) => Ok(CryptScheme(DecryptRequest::RsaPkcs1)),
            (
                CKM_RSA_PKCS_OAEP,
                MechanismParam::Oaep {
                    hash_alg,
                    mgf,
                    source,
                    source_data,
                },
            ) => {
                let hash = hash_of_mechanism(*hash_alg).ok_or_else(|| {
                    Error::MechanismParamInvalid(format!("OAEP hashAlg {hash_alg:#x}"))
                })?;
                let mgf_hash = hash_of_mgf(*mgf)
                    .ok_or_else(|| Error::MechanismParamInvalid(format!("OAEP mgf {mgf:#x}")))?;
                if *source != CKZ_DATA_SPECIFIED && !(*source == 0 && source_data.is_empty()) {
                    return Err(Error::MechanismParamInvalid(format!(
                        "OAEP source {source:#x} (only CKZ_DATA_SPECIFIED)"
                    )));
                }
                Ok(CryptScheme(DecryptRequest::RsaOaep {
                    hash,
                    mgf_hash,
                    label: source_data.clone(),
                }))
            }
            (CKM_RSA_PKCS_OAEP, _) => Err(Error::MechanismParamInvalid(
                "RSA-OAEP needs CK_RSA_PKCS_OAEP_PARAMS".into(),
            )),
            _ => Err(Error::MechanismInvalid),
        }
    }

    /// The most plaintext bytes this padding carries for the key.
    pub fn max_plaintext(&self, key: &PublicInfo) -> usize {
        self.0.max_plaintext(key.size_bytes)
    }

    /// Encrypts locally with the public key.
    pub fn encrypt(&self, key: &PublicInfo, data: &[u8]) -> Result<Vec<u8>> {
        if data.len() > self.max_plaintext(key) {
            return Err(Error::DataLenRange);
        }
        let mut ctx = openssl::pkey_ctx::PkeyCtx::new(&key.pkey)?;
        ctx.encrypt_init()?;
        self.0.configure(&mut ctx)?;
        let mut out = Vec::new();
        ctx.encrypt_to_vec(data, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::pkey::PKey;

    fn mech(m: CK_MECHANISM_TYPE, param: MechanismParam) -> Mechanism {
        Mechanism {
            mechanism: m,
            param,
        }
    }

    #[test]
    fn every_advertised_sign_mechanism_decodes() {
        for (m, info) in TABLE {
            if info.flags & CKF_SIGN == 0 {
                continue;
            }
            let param = MechanismParam::Pss {
                hash_alg: CKM_SHA256,
                mgf: CKG_MGF1_SHA256,
                salt_len: 32,
            };
            let r = SignScheme::from_mechanism(&mech(*m, param.clone()));
            let is_pss = matches!(*m, CKM_RSA_PKCS_PSS | CKM_SHA256_RSA_PKCS_PSS);
            let other_pss = matches!(
                *m,
                CKM_SHA1_RSA_PKCS_PSS
                    | CKM_SHA224_RSA_PKCS_PSS
                    | CKM_SHA384_RSA_PKCS_PSS
                    | CKM_SHA512_RSA_PKCS_PSS
            );
            if other_pss {
                assert!(matches!(r, Err(Error::MechanismParamInvalid(_))), "{m:#x}");
            } else {
                assert!(r.is_ok(), "{m:#x}: {r:?} (pss {is_pss})");
            }
        }
    }

    #[test]
    fn pss_without_params_or_bad_mgf_is_param_invalid() {
        let r = SignScheme::from_mechanism(&mech(CKM_RSA_PKCS_PSS, MechanismParam::None));
        assert!(matches!(r, Err(Error::MechanismParamInvalid(_))));
        let r = SignScheme::from_mechanism(&mech(
            CKM_RSA_PKCS_PSS,
            MechanismParam::Pss {
                hash_alg: CKM_SHA256,
                mgf: 0x77,
                salt_len: 32,
            },
        ));
        assert!(matches!(r, Err(Error::MechanismParamInvalid(_))));
    }

    #[test]
    fn oaep_round_trip_with_label_and_length_limits() {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let private = PKey::from_rsa(rsa.clone()).unwrap();
        let public = PublicInfo::from_spki(&private.public_key_to_der().unwrap()).unwrap();
        assert_eq!(public.size_bytes, 256);
        let scheme = CryptScheme::from_mechanism(&mech(
            CKM_RSA_PKCS_OAEP,
            MechanismParam::Oaep {
                hash_alg: CKM_SHA256,
                mgf: CKG_MGF1_SHA256,
                source: CKZ_DATA_SPECIFIED,
                source_data: b"label".to_vec(),
            },
        ))
        .unwrap();
        assert_eq!(scheme.max_plaintext(&public), 256 - 66);
        assert_eq!(
            scheme.encrypt(&public, &[0u8; 191]).unwrap_err(),
            Error::DataLenRange
        );
        let ct = scheme.encrypt(&public, b"secret").unwrap();
        let mut ctx = openssl::pkey_ctx::PkeyCtx::new(&private).unwrap();
        ctx.decrypt_init().unwrap();
        ctx.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
        ctx.set_rsa_oaep_md(openssl::md::Md::sha256()).unwrap();
        ctx.set_rsa_mgf1_md(openssl::md::Md::sha256()).unwrap();
        crate::ffi::oaep_label::set_rsa_oaep_label(&mut ctx, b"label").unwrap();
        let mut pt = Vec::new();
        ctx.decrypt_to_vec(&ct, &mut pt).unwrap();
        assert_eq!(pt, b"secret");
    }

    #[test]
    fn rsa_pkcs_raw_input_limits() {
        let rsa = openssl::rsa::Rsa::generate(1024).unwrap();
        let private = PKey::from_rsa(rsa).unwrap();
        let public = PublicInfo::from_spki(&private.public_key_to_der().unwrap()).unwrap();
        let s = SignScheme::from_mechanism(&mech(CKM_RSA_PKCS, MechanismParam::None)).unwrap();
        assert_eq!(
            s.request(&[1u8; 118], &public).unwrap_err(),
            Error::DataLenRange
        );
        assert!(s.request(&[1u8; 117], &public).is_ok());
        assert_eq!(s.request(&[], &public).unwrap_err(), Error::DataLenRange);
        let di = digest_info::encode(HashAlg::Sha256, &[9u8; 32]);
        assert_eq!(
            s.request(&di, &public).unwrap(),
            (
                SignRequest::RsaPkcs1 {
                    hash: Some(HashAlg::Sha256)
                },
                vec![9u8; 32]
            )
        );
    }

    #[test]
    fn mechanism_info_for_unknown_is_invalid() {
        assert_eq!(info(CKM_MD5).unwrap_err(), Error::MechanismInvalid);
        assert!(info(CKM_SHA256_RSA_PKCS).unwrap().flags & CKF_HW != 0);
    }
}
