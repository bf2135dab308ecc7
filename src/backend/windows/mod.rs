//! `cert-store` slots on Windows: the certificates of a system store (`CurrentUser/My`,
//! `LocalMachine/My`, …) that have a private key, with the same object model as the
//! directory store (a key and its certificate per entry, labels and ids kept with the
//! certificate).
//!
//! The private key is reached through its certificate, always silently
//! (`CryptAcquireCertificatePrivateKey` with `CRYPT_ACQUIRE_SILENT_FLAG`, `NCRYPT_SILENT_FLAG`,
//! `CRYPT_SILENT`): a key that would need a dialog fails with a clear error instead. The key
//! spec the acquisition returns decides the path, and a CryptoAPI handle is never given to
//! NCrypt:
//! - `CERT_NCRYPT_KEY_SPEC`: CNG, `NCryptSignHash` (PKCS#1 v1.5, PSS, ECDSA) and
//!   `NCryptDecrypt` (OAEP, PKCS#1 v1.5);
//! - otherwise legacy CryptoAPI: signing re-opens the key's container with the RSA-AES
//!   provider (the container's own provider may lack SHA-2) for `CryptSignHash`;
//!   `CryptDecrypt` decrypts PKCS#1 v1.5 and OAEP with SHA-1 (all CryptoAPI offers). Its
//!   byte order is little-endian and is reversed both ways.
//!
//! Keys made through the module (`C_GenerateKeyPair`) are persisted CNG keys named
//! `identify-pkcs11-…` in the Microsoft Software Key Storage Provider; they are listed
//! before their certificate exists, and `C_CreateObject` of the certificate links it to
//! the key (`CERT_KEY_PROV_INFO_PROP_ID`).
//!
//! Private-key arithmetic is Windows' own; nothing here does it.

#[cfg(windows)]
mod backend;
#[cfg(windows)]
mod win32;

#[cfg(windows)]
pub use backend::WindowsStoreBackend;

#[cfg(windows)]
pub use crate::config::windows_store::{Location, WindowsStoreConfig};
use crate::crypto::Curve;
use crate::error::{Error, Result};

/// The SubjectPublicKeyInfo of a CNG public key blob.
// Used by the Windows backend; also unit-tested on other systems.
#[cfg_attr(not(windows), allow(dead_code))]
fn spki_of_blob(blob: &[u8], rsa: bool) -> Result<Vec<u8>> {
    let u32_at = |o: usize| -> Result<usize> {
        let b: [u8; 4] = blob
            .get(o..o + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| Error::Backend("short CNG public key blob".into()))?;
        usize::try_from(u32::from_le_bytes(b)).map_err(|_| Error::DataLenRange)
    };
    let part = |from: usize, len: usize| -> Result<&[u8]> {
        from.checked_add(len)
            .and_then(|to| blob.get(from..to))
            .ok_or_else(|| Error::Backend("short CNG public key blob".into()))
    };
    if rsa {
        // BCRYPT_RSAKEY_BLOB: Magic, BitLength, cbPublicExp, cbModulus, cbPrime1, cbPrime2,
        // then the exponent and the modulus, big-endian.
        let (e_len, n_len) = (u32_at(8)?, u32_at(12)?);
        let e = part(24, e_len)?;
        let n = part(
            24usize.checked_add(e_len).ok_or(Error::DataLenRange)?,
            n_len,
        )?;
        let rsa = openssl::rsa::Rsa::from_public_components(
            openssl::bn::BigNum::from_slice(n)?,
            openssl::bn::BigNum::from_slice(e)?,
        )?;
        Ok(openssl::pkey::PKey::from_rsa(rsa)?.public_key_to_der()?)
    } else {
        // BCRYPT_ECCKEY_BLOB: dwMagic, cbKey, then X and Y.
        let len = u32_at(4)?;
        let curve = match len {
            32 => Curve::P256,
            48 => Curve::P384,
            66 => Curve::P521,
            _ => {
                return Err(Error::Backend(format!(
                    "CNG EC key of {len}-byte coordinates"
                )));
            }
        };
        let group = openssl::ec::EcGroup::from_curve_name(curve.nid())?;
        let x = openssl::bn::BigNum::from_slice(part(8, len)?)?;
        let y = openssl::bn::BigNum::from_slice(part(
            8usize.checked_add(len).ok_or(Error::DataLenRange)?,
            len,
        )?)?;
        let key = openssl::ec::EcKey::from_public_key_affine_coordinates(&group, &x, &y)?;
        Ok(openssl::pkey::PKey::from_ec_key(key)?.public_key_to_der()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cng_public_blobs_become_spki() {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let (n, e) = (rsa.n().to_vec(), rsa.e().to_vec());
        let mut blob = Vec::new();
        let len = |b: &[u8]| u32::try_from(b.len()).unwrap();
        for v in [0x3141_5352u32, 2048, len(&e), len(&n), 0, 0] {
            blob.extend(v.to_le_bytes());
        }
        blob.extend(&e);
        blob.extend(&n);
        let want = openssl::pkey::PKey::from_rsa(rsa)
            .unwrap()
            .public_key_to_der()
            .unwrap();
        assert_eq!(spki_of_blob(&blob, true).unwrap(), want);
        let group = openssl::ec::EcGroup::from_curve_name(Curve::P256.nid()).unwrap();
        let ec = openssl::ec::EcKey::generate(&group).unwrap();
        let mut ctx = openssl::bn::BigNumContext::new().unwrap();
        let (mut x, mut y) = (
            openssl::bn::BigNum::new().unwrap(),
            openssl::bn::BigNum::new().unwrap(),
        );
        ec.public_key()
            .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
            .unwrap();
        let mut blob = Vec::new();
        blob.extend(0x3153_4345u32.to_le_bytes());
        blob.extend(32u32.to_le_bytes());
        blob.extend(x.to_vec_padded(32).unwrap());
        blob.extend(y.to_vec_padded(32).unwrap());
        let want = openssl::pkey::PKey::from_ec_key(ec)
            .unwrap()
            .public_key_to_der()
            .unwrap();
        assert_eq!(spki_of_blob(&blob, false).unwrap(), want);
        assert!(spki_of_blob(&blob[..20], false).is_err());
    }
}
