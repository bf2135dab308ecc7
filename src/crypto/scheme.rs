//! What a private key is asked to do: the signature and decryption schemes, with their
//! parameters, as the mechanisms produce them and the backends carry them out.

use super::{Curve, HashAlg};
use crate::error::Result;
use openssl::pkey_ctx::PkeyCtxRef;
use openssl::rsa::Padding;

/// A private-key signature request. The input is already hashed where a hash applies;
/// the core computes DigestInfo recognition and multi-part hashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignRequest {
    /// RSASSA-PKCS1-v1_5. `hash: Some(h)`: `data` is the digest and the backend wraps it in
    /// the DigestInfo for `h` (a remote store may sign it as RS256 etc.). `None`: `data` is
    /// signed as is with block type 1 padding (TLS 1.0 MD5+SHA-1, unknown DigestInfos).
    RsaPkcs1 { hash: Option<HashAlg> },
    /// RSASSA-PSS over a digest of `hash`, MGF1 with `mgf_hash`, salt of `salt_len` bytes.
    RsaPss {
        hash: HashAlg,
        mgf_hash: HashAlg,
        salt_len: usize,
    },
    /// ECDSA over the given digest with a key on `curve` (the key's, known when the
    /// object was cached); the result is r||s, each the curve's field length.
    Ecdsa { curve: Curve },
}

/// A private-key decryption request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecryptRequest {
    RsaPkcs1,
    RsaOaep {
        hash: HashAlg,
        mgf_hash: HashAlg,
        label: Vec<u8>,
    },
}

impl SignRequest {
    /// A short name for logs and the audit log, e.g. `RSA-PKCS1-SHA256`, `ECDSA`.
    pub fn describe(&self) -> String {
        match self {
            SignRequest::RsaPkcs1 { hash: Some(h) } => format!("RSA-PKCS1-{h:?}").to_uppercase(),
            SignRequest::RsaPkcs1 { hash: None } => "RSA-PKCS1-RAW".into(),
            SignRequest::RsaPss { hash, .. } => format!("RSA-PSS-{hash:?}").to_uppercase(),
            SignRequest::Ecdsa { .. } => "ECDSA".into(),
        }
    }
}

/// RSASSA-PSS parameters on a signing or verifying context (after `sign_init` or
/// `verify_init`).
pub fn configure_pss<T>(
    ctx: &mut PkeyCtxRef<T>,
    hash: HashAlg,
    mgf_hash: HashAlg,
    salt_len: usize,
) -> Result<()> {
    let salt = i32::try_from(salt_len)
        .map_err(|_| crate::error::Error::MechanismParamInvalid("salt length".into()))?;
    ctx.set_rsa_padding(Padding::PKCS1_PSS)?;
    ctx.set_signature_md(hash.md())?;
    ctx.set_rsa_mgf1_md(mgf_hash.md())?;
    ctx.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::custom(salt))?;
    Ok(())
}

impl DecryptRequest {
    /// A short name for logs and the audit log, e.g. `RSA-OAEP-SHA256`.
    pub fn describe(&self) -> String {
        match self {
            DecryptRequest::RsaPkcs1 => "RSA-PKCS1".into(),
            DecryptRequest::RsaOaep { hash, .. } => format!("RSA-OAEP-{hash:?}").to_uppercase(),
        }
    }

    /// The most plaintext bytes this padding carries for a modulus of `size_bytes`.
    pub fn max_plaintext(&self, size_bytes: usize) -> usize {
        match self {
            DecryptRequest::RsaPkcs1 => size_bytes.saturating_sub(11),
            DecryptRequest::RsaOaep { hash, .. } => {
                size_bytes.saturating_sub(2 * hash.output_len() + 2)
            }
        }
    }

    /// Sets this padding on an RSA context after `encrypt_init` or `decrypt_init` (the
    /// directory store's private-key decryption and the local public-key encryption).
    pub fn configure<T>(&self, ctx: &mut PkeyCtxRef<T>) -> Result<()> {
        match self {
            DecryptRequest::RsaPkcs1 => ctx.set_rsa_padding(Padding::PKCS1)?,
            DecryptRequest::RsaOaep {
                hash,
                mgf_hash,
                label,
            } => {
                ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
                ctx.set_rsa_oaep_md(hash.md())?;
                ctx.set_rsa_mgf1_md(mgf_hash.md())?;
                crate::ffi::oaep_label::set_rsa_oaep_label(ctx, label)?;
            }
        }
        Ok(())
    }
}
