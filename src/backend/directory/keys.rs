//! Private keys in this process (the directory store's, and session key pairs): generation, signing, decryption with OpenSSL (never the rsa crate: RUSTSEC-2023-0071).

use super::*;

/// A new private key of `spec`, made by OpenSSL.
pub(crate) fn generate_pkey(spec: &KeySpec) -> Result<PKey<Private>> {
    Ok(match spec {
        KeySpec::Rsa {
            bits,
            public_exponent,
        } => {
            let e = BigNum::from_slice(public_exponent)?;
            PKey::from_rsa(Rsa::generate_with_e(*bits, &e)?)?
        }
        KeySpec::Ec(curve) => {
            let group = EcGroup::from_curve_name(curve.nid())?;
            PKey::from_ec_key(EcKey::generate(&group)?)?
        }
    })
}

/// Signs with a private key in this process: the directory store's keys, and session key
/// pairs (`CKA_TOKEN` false), whose store is the session.
pub(crate) fn sign_with(
    pkey: &PKey<Private>,
    request: &SignRequest,
    data: &[u8],
) -> Result<Vec<u8>> {
    match request {
        SignRequest::RsaPkcs1 { hash } => {
            let rsa = pkey.rsa().map_err(|_| Error::KeyTypeInconsistent)?;
            let input = match hash {
                Some(h) => digest_info::encode(*h, data),
                None => data.to_vec(),
            };
            let mut out = vec![0u8; rsa.size() as usize];
            let n = rsa
                .private_encrypt(&input, &mut out, Padding::PKCS1)
                .map_err(|_| Error::DataLenRange)?;
            out.truncate(n);
            Ok(out)
        }
        SignRequest::RsaPss {
            hash,
            mgf_hash,
            salt_len,
        } => {
            if pkey.id() != Id::RSA {
                return Err(Error::KeyTypeInconsistent);
            }
            let mut ctx = PkeyCtx::new(pkey)?;
            ctx.sign_init()?;
            crate::crypto::scheme::configure_pss(&mut ctx, *hash, *mgf_hash, *salt_len)?;
            let mut out = Vec::new();
            ctx.sign_to_vec(data, &mut out)
                .map_err(|e| Error::backend("RSA-PSS signature", e))?;
            Ok(out)
        }
        SignRequest::Ecdsa { curve } => {
            let ec = pkey.ec_key().map_err(|_| Error::KeyTypeInconsistent)?;
            if Curve::of_key(pkey) != Some(*curve) {
                return Err(Error::KeyTypeInconsistent);
            }
            let sig = EcdsaSig::sign(data, &ec)?;
            let n = i32::try_from(curve.field_len()).map_err(|e| Error::Internal(e.to_string()))?;
            let mut out = sig.r().to_vec_padded(n)?;
            out.extend(sig.s().to_vec_padded(n)?);
            Ok(out)
        }
    }
}

/// Decrypts with a private key in this process (see `sign_with`).
pub(crate) fn decrypt_with(
    pkey: &PKey<Private>,
    request: &DecryptRequest,
    data: &[u8],
) -> Result<Vec<u8>> {
    if pkey.id() != Id::RSA {
        return Err(Error::KeyTypeInconsistent);
    }
    let mut ctx = PkeyCtx::new(pkey)?;
    ctx.decrypt_init()?;
    request.configure(&mut ctx)?;
    let mut out = Vec::new();
    // Any padding failure is the same answer, whatever OpenSSL's reason: no oracle.
    ctx.decrypt_to_vec(data, &mut out)
        .map_err(|_| Error::EncryptedDataInvalid)?;
    Ok(out)
}

pub(super) fn check_key_type(pkey: &PKey<Private>) -> Result<()> {
    match pkey.id() {
        Id::RSA => Ok(()),
        Id::EC => Curve::of_key(pkey).map(|_| ()).ok_or_else(|| {
            Error::Backend("unsupported elliptic curve (P-256, P-384, P-521 are)".into())
        }),
        other => Err(Error::Backend(format!(
            "unsupported key type {other:?} (RSA and EC are)"
        ))),
    }
}
