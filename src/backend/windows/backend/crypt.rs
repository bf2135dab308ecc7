//! Signing and decryption with a store key: which requests CNG and CryptoAPI keys take,
//! the key acquired silently through its certificate (or opened by name), and the
//! `NCryptSignHash` / `NCryptDecrypt` or `CryptSignHash` / `CryptDecrypt` call.

use super::{Locator, WindowsStoreBackend};
use crate::backend::KeyRecord;
use crate::backend::windows::win32::{
    self, Acquired, AcquiredKey, CapiProvider, CngPadding, NcryptKey, ProvInfo,
};
use crate::crypto::{DecryptRequest, HashAlg, SignRequest};
use crate::error::{Error, Result};
use windows_sys::Win32::Security::Cryptography as c;

fn cng_hash(h: HashAlg) -> windows_sys::core::PCWSTR {
    match h {
        HashAlg::Sha1 => c::BCRYPT_SHA1_ALGORITHM,
        // CNG has no SHA-224: PKCS#1 signs its DigestInfo raw, PSS and OAEP refuse it.
        HashAlg::Sha224 => windows_sys::core::w!("SHA224"),
        HashAlg::Sha256 => c::BCRYPT_SHA256_ALGORITHM,
        HashAlg::Sha384 => c::BCRYPT_SHA384_ALGORITHM,
        HashAlg::Sha512 => c::BCRYPT_SHA512_ALGORITHM,
    }
}

/// PSS and OAEP on Windows: MGF1 with the message hash only, and no SHA-224 (CNG has none).
fn cng_hashes(hash: HashAlg, mgf_hash: HashAlg, scheme: &str) -> Result<()> {
    if hash != mgf_hash {
        return Err(Error::MechanismParamInvalid(format!(
            "Windows does {scheme} with MGF1 of the same hash only"
        )));
    }
    if hash == HashAlg::Sha224 {
        return Err(Error::MechanismParamInvalid(format!(
            "Windows (CNG) has no SHA-224 for {scheme}"
        )));
    }
    Ok(())
}

/// The CryptoAPI algorithm of a digest CryptSignHash signs (PKCS#1 v1.5 only).
pub(super) fn capi_alg(request: &SignRequest, len: usize) -> Result<u32> {
    match request {
        SignRequest::RsaPkcs1 { hash: Some(h) } if len != h.output_len() => {
            Err(Error::DataLenRange)
        }
        SignRequest::RsaPkcs1 { hash: Some(h) } => match h {
            HashAlg::Sha1 => Ok(c::CALG_SHA1),
            HashAlg::Sha256 => Ok(c::CALG_SHA_256),
            HashAlg::Sha384 => Ok(c::CALG_SHA_384),
            HashAlg::Sha512 => Ok(c::CALG_SHA_512),
            HashAlg::Sha224 => Err(Error::MechanismParamInvalid(
                "CryptoAPI keys do not sign SHA-224".into(),
            )),
        },
        // TLS 1.0/1.1's MD5+SHA-1 concatenation is CryptoAPI's CALG_SSL3_SHAMD5.
        SignRequest::RsaPkcs1 { hash: None } if len == 36 => Ok(c::CALG_SSL3_SHAMD5),
        // CryptoAPI signs raw PKCS#1 input only as a 36-byte MD5+SHA-1.
        SignRequest::RsaPkcs1 { hash: None } => Err(Error::DataLenRange),
        _ => Err(Error::MechanismInvalid),
    }
}

impl WindowsStoreBackend {
    /// The key of a listed record, acquired silently.
    fn acquire(&self, loc: &Locator) -> Result<Acquired> {
        match &loc.cert_sha1 {
            Some(sha1) => {
                let store = self.store(false)?;
                let cert = store.find_sha1(sha1).ok_or_else(|| {
                    Error::ObjectGone(format!(
                        "certificate {} is no longer in {}",
                        crate::crypto::hex::encode(sha1),
                        self.config.display()
                    ))
                })?;
                Ok(cert.private_key()?)
            }
            // A generated CNG key without its certificate yet.
            None => Ok(Acquired::cng(NcryptKey::open(
                loc.prov.provider.as_deref(),
                loc.prov.container.as_deref().unwrap_or_default(),
                loc.prov.machine(),
            )?)),
        }
    }

    /// The CryptoAPI key spec of a container (PFX imports give AT_KEYEXCHANGE).
    fn capi_spec(prov: &ProvInfo) -> u32 {
        match prov.key_spec {
            c::AT_SIGNATURE => c::AT_SIGNATURE,
            _ => c::AT_KEYEXCHANGE,
        }
    }

    /// `Backend::check_sign`: what the key's API (CNG or CryptoAPI) can sign.
    pub(super) fn check_sign_request(&self, key: &KeyRecord, request: &SignRequest) -> Result<()> {
        let loc = self.locator(key)?;
        if loc.prov.prov_type != 0 {
            // CryptoAPI: PKCS#1 v1.5 only.
            if !matches!(request, SignRequest::RsaPkcs1 { .. }) {
                return Err(Error::MechanismInvalid);
            }
            if matches!(
                request,
                SignRequest::RsaPkcs1 {
                    hash: Some(HashAlg::Sha224)
                }
            ) {
                return Err(Error::MechanismParamInvalid(
                    "CryptoAPI keys do not sign SHA-224".into(),
                ));
            }
        }
        if let SignRequest::RsaPss { hash, mgf_hash, .. } = request {
            cng_hashes(*hash, *mgf_hash, "PSS")?;
        }
        Ok(())
    }

    /// `Backend::check_decrypt`: what the key's API (CNG or CryptoAPI) can decrypt.
    pub(super) fn check_decrypt_request(
        &self,
        key: &KeyRecord,
        request: &DecryptRequest,
    ) -> Result<()> {
        let loc = self.locator(key)?;
        match request {
            DecryptRequest::RsaPkcs1 => Ok(()),
            DecryptRequest::RsaOaep {
                hash,
                mgf_hash,
                label,
            } => {
                cng_hashes(*hash, *mgf_hash, "OAEP")?;
                if loc.prov.prov_type != 0 && (*hash != HashAlg::Sha1 || !label.is_empty()) {
                    return Err(Error::MechanismParamInvalid(
                        "CryptoAPI keys decrypt OAEP with SHA-1 and no label only".into(),
                    ));
                }
                Ok(())
            }
        }
    }

    /// `Backend::sign`: through CNG, or CryptoAPI's own PKCS#1 v1.5.
    pub(super) fn sign_with_store_key(
        &self,
        key: &KeyRecord,
        request: &SignRequest,
        data: &[u8],
    ) -> Result<Vec<u8>> {
        let loc = self.locator(key)?;
        let acquired = self.acquire(&loc)?;
        match &acquired.key {
            AcquiredKey::Cng(k) => {
                // CNG has no SHA-224: its DigestInfo is built here and signed raw.
                if let SignRequest::RsaPkcs1 {
                    hash: Some(HashAlg::Sha224),
                } = request
                {
                    let info = crate::crypto::digest_info::encode(HashAlg::Sha224, data);
                    return Ok(k.sign(&CngPadding::Pkcs1(None), &info)?);
                }
                let padding = match request {
                    SignRequest::RsaPkcs1 { hash } => CngPadding::Pkcs1(hash.map(cng_hash)),
                    SignRequest::RsaPss { hash, salt_len, .. } => CngPadding::Pss {
                        hash: cng_hash(*hash),
                        salt: u32::try_from(*salt_len).map_err(|_| Error::DataLenRange)?,
                    },
                    SignRequest::Ecdsa { .. } => CngPadding::None,
                };
                Ok(k.sign(&padding, data)?)
            }
            AcquiredKey::Capi(acquired) => {
                let alg = capi_alg(request, data.len())?;
                let spec = Self::capi_spec(&loc.prov);
                if loc.prov.microsoft_software_rsa() {
                    // Microsoft's software providers share their key storage, and the
                    // container's own one may lack SHA-2: re-opened with the RSA-AES
                    // provider, which reaches the same key.
                    let p = CapiProvider::open_aes(&loc.prov.container, loc.prov.machine())?;
                    Ok(p.sign(spec, alg, data)?)
                } else {
                    // Another vendor's provider (a smart card): its own context.
                    Ok(acquired.sign(spec, alg, data)?)
                }
            }
        }
    }

    /// `Backend::decrypt`: through CNG, or CryptoAPI (PKCS#1 v1.5, OAEP with SHA-1).
    pub(super) fn decrypt_with_store_key(
        &self,
        key: &KeyRecord,
        request: &DecryptRequest,
        data: &[u8],
    ) -> Result<Vec<u8>> {
        let loc = self.locator(key)?;
        // A padding check that fails: NTE_BAD_DATA from CryptoAPI, NTE_INVALID_PARAMETER
        // from CNG's software provider (the parameters were checked at C_DecryptInit).
        let bad_data = |e: win32::WinError| {
            if e.code == win32::NTE_BAD_DATA || e.code == win32::NTE_INVALID_PARAMETER {
                tracing::debug!("{e}");
                Error::EncryptedDataInvalid
            } else {
                Error::from(e)
            }
        };
        let acquired = self.acquire(&loc)?;
        match &acquired.key {
            AcquiredKey::Cng(k) => {
                let padding = match request {
                    DecryptRequest::RsaPkcs1 => CngPadding::Pkcs1(None),
                    DecryptRequest::RsaOaep { hash, label, .. } => CngPadding::Oaep {
                        hash: cng_hash(*hash),
                        label,
                    },
                };
                k.decrypt(&padding, data).map_err(bad_data)
            }
            AcquiredKey::Capi(p) => {
                let oaep = match request {
                    DecryptRequest::RsaPkcs1 => false,
                    DecryptRequest::RsaOaep {
                        hash: HashAlg::Sha1,
                        mgf_hash: HashAlg::Sha1,
                        label,
                    } if label.is_empty() => true,
                    DecryptRequest::RsaOaep { .. } => {
                        return Err(Error::MechanismParamInvalid(
                            "CryptoAPI keys decrypt OAEP with SHA-1 and no label only".into(),
                        ));
                    }
                };
                p.decrypt(Self::capi_spec(&loc.prov), oaep, data)
                    .map_err(bad_data)
            }
        }
    }
}
