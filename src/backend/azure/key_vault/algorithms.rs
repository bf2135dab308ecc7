//! What Key Vault is asked for: the signature and encryption algorithm of each request
//! (issue 4's table: what each PKCS#11 mechanism becomes).

use super::*;

impl KeyVaultBackend {
    /// The algorithm and the value Key Vault signs for a request (issue 4's table).
    pub(super) fn sign_params(
        request: &SignRequest,
        data: &[u8],
    ) -> Result<(SignatureAlgorithm, Vec<u8>)> {
        match request {
            SignRequest::RsaPkcs1 {
                hash: Some(HashAlg::Sha256),
            } => Ok((SignatureAlgorithm::Rs256, data.to_vec())),
            SignRequest::RsaPkcs1 {
                hash: Some(HashAlg::Sha384),
            } => Ok((SignatureAlgorithm::Rs384, data.to_vec())),
            SignRequest::RsaPkcs1 {
                hash: Some(HashAlg::Sha512),
            } => Ok((SignatureAlgorithm::Rs512, data.to_vec())),
            // SHA-1, SHA-224 DigestInfos and raw input (TLS MD5+SHA-1): RSNULL signs the
            // bytes as given, with PKCS#1 v1.5 padding.
            SignRequest::RsaPkcs1 { hash: Some(h) } => {
                Ok((SignatureAlgorithm::Rsnull, digest_info::encode(*h, data)))
            }
            SignRequest::RsaPkcs1 { hash: None } => Ok((SignatureAlgorithm::Rsnull, data.to_vec())),
            SignRequest::RsaPss { .. } => Ok((pss_algorithm(request)?, data.to_vec())),
            SignRequest::Ecdsa { curve } => {
                let (alg, n) = match curve {
                    Curve::P256 => (SignatureAlgorithm::Es256, 32),
                    Curve::P384 => (SignatureAlgorithm::Es384, 48),
                    Curve::P521 => (SignatureAlgorithm::Es512, 64),
                };
                // Key Vault wants a digest of the curve's hash length. ECDSA uses the
                // leftmost bits of a longer digest, and a shorter one is the same integer
                // with leading zeros, so both map exactly.
                let mut digest = data[..data.len().min(n)].to_vec();
                while digest.len() < n {
                    digest.insert(0, 0);
                }
                Ok((alg, digest))
            }
        }
    }

    pub(super) fn decrypt_algorithm(request: &DecryptRequest) -> Result<EncryptionAlgorithm> {
        match request {
            DecryptRequest::RsaPkcs1 => Ok(EncryptionAlgorithm::Rsa1_5),
            DecryptRequest::RsaOaep { label, .. } if !label.is_empty() => {
                Err(Error::MechanismParamInvalid(
                    "Key Vault has no OAEP label (pSourceData must be empty)".into(),
                ))
            }
            DecryptRequest::RsaOaep {
                hash: HashAlg::Sha1,
                mgf_hash: HashAlg::Sha1,
                ..
            } => Ok(EncryptionAlgorithm::RsaOaep),
            DecryptRequest::RsaOaep {
                hash: HashAlg::Sha256,
                mgf_hash: HashAlg::Sha256,
                ..
            } => Ok(EncryptionAlgorithm::RsaOaep256),
            DecryptRequest::RsaOaep { hash, mgf_hash, .. } => {
                Err(Error::MechanismParamInvalid(format!(
                    "Key Vault decrypts OAEP with SHA-1 or SHA-256 and the same MGF1 hash, not {} / MGF1-{}",
                    hash.name(),
                    mgf_hash.name()
                )))
            }
        }
    }
}

pub(super) fn pss_algorithm(request: &SignRequest) -> Result<SignatureAlgorithm> {
    let SignRequest::RsaPss {
        hash,
        mgf_hash,
        salt_len,
    } = request
    else {
        return Err(Error::Internal("not PSS".into()));
    };
    if mgf_hash != hash || *salt_len != hash.output_len() {
        return Err(Error::MechanismParamInvalid(format!(
            "Key Vault signs PSS with MGF1 of the same hash and a salt of the hash length ({} bytes)",
            hash.output_len()
        )));
    }
    match hash {
        HashAlg::Sha256 => Ok(SignatureAlgorithm::Ps256),
        HashAlg::Sha384 => Ok(SignatureAlgorithm::Ps384),
        HashAlg::Sha512 => Ok(SignatureAlgorithm::Ps512),
        other => Err(Error::MechanismParamInvalid(format!(
            "Key Vault has no PSS with {}",
            other.name()
        ))),
    }
}
