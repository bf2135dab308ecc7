//! AES decryption with session secret keys: `CKM_AES_CBC_PAD` and `CKM_AES_GCM`, what an
//! XML-Encryption recipient does with the content key it unwrapped (`C_UnwrapKey` into a
//! sensitive `CKK_AES` key), so that the key never leaves the module. Local, through
//! OpenSSL's EVP ciphers (the `openssl` crate's `symm`).

use super::{Mechanism, MechanismParam};
use crate::error::{Error, Result};
use cryptoki_sys::*;
use openssl::symm::Cipher;

/// The largest ciphertext one operation takes (C_DecryptUpdate collects up to this).
pub const MAX_INPUT: usize = 64 << 20;

const BLOCK: usize = 16;

/// An AES decryption as the mechanism asks for it.
#[derive(Clone, PartialEq, Eq)]
pub enum AesScheme {
    /// CBC with PKCS#7 padding (`CKM_AES_CBC_PAD`); the parameter is the 16-byte IV.
    CbcPad { iv: [u8; BLOCK] },
    /// GCM (`CKM_AES_GCM`, `CK_GCM_PARAMS`): the ciphertext ends with the tag.
    Gcm {
        iv: Vec<u8>,
        aad: Vec<u8>,
        tag_len: usize,
    },
}

// Hand-written: the IV and AAD are not secret, but the default would print them in full.
impl std::fmt::Debug for AesScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AesScheme::CbcPad { .. } => f.write_str("AES-CBC-PAD"),
            AesScheme::Gcm { tag_len, .. } => write!(f, "AES-GCM (tag {tag_len} bytes)"),
        }
    }
}

impl AesScheme {
    /// Whether `m` is one of the AES mechanisms (decided before the key is looked up).
    pub fn is_aes(m: CK_MECHANISM_TYPE) -> bool {
        matches!(m, CKM_AES_CBC_PAD | CKM_AES_GCM)
    }

    pub fn from_mechanism(m: &Mechanism) -> Result<AesScheme> {
        match (m.mechanism, &m.param) {
            (CKM_AES_CBC_PAD, MechanismParam::Other(iv)) => {
                let iv = <[u8; BLOCK]>::try_from(iv.as_slice()).map_err(|_| {
                    Error::MechanismParamInvalid(format!(
                        "CKM_AES_CBC_PAD: the parameter is the 16-byte IV, got {} bytes",
                        iv.len()
                    ))
                })?;
                Ok(AesScheme::CbcPad { iv })
            }
            (CKM_AES_CBC_PAD, _) => Err(Error::MechanismParamInvalid(
                "CKM_AES_CBC_PAD: the parameter is the 16-byte IV".into(),
            )),
            (
                CKM_AES_GCM,
                MechanismParam::Gcm {
                    iv,
                    iv_bits,
                    aad,
                    tag_bits,
                },
            ) => {
                if iv.is_empty() || iv.len() > 256 {
                    return Err(Error::MechanismParamInvalid(format!(
                        "CKM_AES_GCM: ulIvLen {} (1 to 256 bytes; 12 is usual)",
                        iv.len()
                    )));
                }
                let bits = CK_ULONG::try_from(iv.len()).map_or(0, |n| n.saturating_mul(8));
                if *iv_bits != 0 && *iv_bits != bits {
                    return Err(Error::MechanismParamInvalid(format!(
                        "CKM_AES_GCM: ulIvBits {iv_bits} does not match ulIvLen {}",
                        iv.len()
                    )));
                }
                // NIST SP 800-38D §5.2.1.2: 128, 120, 112, 104, 96, and 64 or 32 bits.
                if !matches!(tag_bits, 32 | 64 | 96 | 104 | 112 | 120 | 128) {
                    return Err(Error::MechanismParamInvalid(format!(
                        "CKM_AES_GCM: ulTagBits {tag_bits} (one of 32, 64, 96, 104, 112, 120, 128)"
                    )));
                }
                let tag_len = usize::try_from(*tag_bits / 8)
                    .map_err(|_| Error::MechanismParamInvalid("ulTagBits".into()))?;
                Ok(AesScheme::Gcm {
                    iv: iv.clone(),
                    aad: aad.clone(),
                    tag_len,
                })
            }
            (CKM_AES_GCM, _) => Err(Error::MechanismParamInvalid(
                "CKM_AES_GCM needs CK_GCM_PARAMS".into(),
            )),
            _ => Err(Error::MechanismInvalid),
        }
    }

    /// The most plaintext a ciphertext of `len` bytes gives (exact for GCM; for CBC the
    /// padding is known only after decryption), or the length error.
    pub fn plaintext_bound(&self, len: usize) -> Result<usize> {
        match self {
            AesScheme::CbcPad { .. } if len == 0 || !len.is_multiple_of(BLOCK) => {
                Err(Error::EncryptedDataLenRange)
            }
            AesScheme::CbcPad { .. } => Ok(len - 1),
            AesScheme::Gcm { tag_len, .. } => len
                .checked_sub(*tag_len)
                .ok_or(Error::EncryptedDataLenRange),
        }
    }

    /// Decrypts `data` with the AES key `key` (16, 24 or 32 bytes).
    pub fn decrypt(&self, key: &[u8], data: &[u8]) -> Result<Vec<u8>> {
        self.plaintext_bound(data.len())?;
        let invalid = |_| Error::EncryptedDataInvalid;
        match self {
            AesScheme::CbcPad { iv } => {
                let cipher = match key.len() {
                    16 => Cipher::aes_128_cbc(),
                    24 => Cipher::aes_192_cbc(),
                    32 => Cipher::aes_256_cbc(),
                    _ => return Err(Error::KeyTypeInconsistent),
                };
                openssl::symm::decrypt(cipher, key, Some(iv), data).map_err(invalid)
            }
            AesScheme::Gcm { iv, aad, tag_len } => {
                let cipher = match key.len() {
                    16 => Cipher::aes_128_gcm(),
                    24 => Cipher::aes_192_gcm(),
                    32 => Cipher::aes_256_gcm(),
                    _ => return Err(Error::KeyTypeInconsistent),
                };
                let (ciphertext, tag) = data.split_at(data.len() - tag_len);
                openssl::symm::decrypt_aead(cipher, key, Some(iv), aad, ciphertext, tag)
                    .map_err(invalid)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::symm::{encrypt, encrypt_aead};

    fn gcm(iv: &[u8], aad: &[u8], tag_bits: CK_ULONG) -> Mechanism {
        Mechanism {
            mechanism: CKM_AES_GCM,
            param: MechanismParam::Gcm {
                iv: iv.to_vec(),
                iv_bits: 0,
                aad: aad.to_vec(),
                tag_bits,
            },
        }
    }

    fn cbc(iv: &[u8]) -> Mechanism {
        Mechanism {
            mechanism: CKM_AES_CBC_PAD,
            param: MechanismParam::Other(iv.to_vec()),
        }
    }

    #[test]
    fn cbc_pad_decrypts_what_openssl_encrypted_and_refuses_bad_padding() {
        for key in [[1u8; 16].as_slice(), &[2u8; 24], &[3u8; 32]] {
            let iv = [9u8; 16];
            let cipher = match key.len() {
                16 => Cipher::aes_128_cbc(),
                24 => Cipher::aes_192_cbc(),
                _ => Cipher::aes_256_cbc(),
            };
            for plain in [b"".as_slice(), b"<EncryptedData/>", &[7u8; 100]] {
                let ct = encrypt(cipher, key, Some(&iv), plain).unwrap();
                let s = AesScheme::from_mechanism(&cbc(&iv)).unwrap();
                assert!(s.plaintext_bound(ct.len()).unwrap() >= plain.len());
                assert_eq!(s.decrypt(key, &ct).unwrap(), plain);
                // The wrong key: the padding does not check out (or, rarely, does and
                // gives other bytes); never the plaintext.
                assert_ne!(s.decrypt(&[0u8; 32], &ct).ok().as_deref(), Some(plain));
            }
        }
        let s = AesScheme::from_mechanism(&cbc(&[0; 16])).unwrap();
        assert_eq!(
            s.decrypt(&[1; 16], &[0; 15]).unwrap_err(),
            Error::EncryptedDataLenRange
        );
        assert_eq!(
            s.decrypt(&[1; 16], &[]).unwrap_err(),
            Error::EncryptedDataLenRange
        );
        assert!(matches!(
            AesScheme::from_mechanism(&cbc(&[0; 8])),
            Err(Error::MechanismParamInvalid(_))
        ));
    }

    #[test]
    fn gcm_decrypts_with_its_tag_and_refuses_a_wrong_one() {
        let key = [5u8; 32];
        let iv = [1u8; 12];
        let aad = b"header";
        let plain = b"the XML content";
        let mut tag = [0u8; 16];
        let ct =
            encrypt_aead(Cipher::aes_256_gcm(), &key, Some(&iv), aad, plain, &mut tag).unwrap();
        let data = [ct.as_slice(), &tag].concat();
        let s = AesScheme::from_mechanism(&gcm(&iv, aad, 128)).unwrap();
        assert_eq!(s.plaintext_bound(data.len()).unwrap(), plain.len());
        assert_eq!(s.decrypt(&key, &data).unwrap(), plain);
        let mut bad = data.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(
            s.decrypt(&key, &bad).unwrap_err(),
            Error::EncryptedDataInvalid
        );
        let other_aad = AesScheme::from_mechanism(&gcm(&iv, b"other", 128)).unwrap();
        assert_eq!(
            other_aad.decrypt(&key, &data).unwrap_err(),
            Error::EncryptedDataInvalid
        );
        assert_eq!(
            s.decrypt(&key, &[0; 15]).unwrap_err(),
            Error::EncryptedDataLenRange
        );
        // A 96-bit tag: the last 12 bytes.
        let mut tag = [0u8; 12];
        let ct =
            encrypt_aead(Cipher::aes_256_gcm(), &key, Some(&iv), b"", plain, &mut tag).unwrap();
        let s = AesScheme::from_mechanism(&gcm(&iv, b"", 96)).unwrap();
        assert_eq!(
            s.decrypt(&key, &[ct.as_slice(), &tag].concat()).unwrap(),
            plain
        );
        for bad in [
            gcm(&iv, b"", 100),
            gcm(&[], b"", 128),
            gcm(&[0; 257], b"", 128),
        ] {
            assert!(matches!(
                AesScheme::from_mechanism(&bad),
                Err(Error::MechanismParamInvalid(_))
            ));
        }
        let mut wrong_bits = gcm(&iv, b"", 128);
        if let MechanismParam::Gcm { iv_bits, .. } = &mut wrong_bits.param {
            *iv_bits = 64;
        }
        assert!(AesScheme::from_mechanism(&wrong_bits).is_err());
    }
}
