//! Encrypt and decrypt operations (§5.10, §5.11): what C_Encrypt*/C_Decrypt* do with the
//! session's operation. C_*Update collects input (RSA is single-block; AES here decrypts
//! whole messages, as GCM must), C_*Final processes it. RSA encryption is local, RSA
//! decryption the store's (called with no lock held); AES decryption with a session secret
//! key is local. A decrypted result too large for the caller's buffer is kept for the retry.

use super::{Output, Session, Taken, deliver};
use crate::error::{Error, Result};
use crate::mechanism::CryptScheme;
use crate::mechanism::aes::{self, AesScheme};
use crate::object::Object;
use std::sync::Arc;

/// What an operation does with its key.
#[derive(Debug, Clone)]
pub enum Cipher {
    /// RSA with a key pair's key.
    Rsa(CryptScheme),
    /// AES decryption with a session secret key (`CKK_AES`).
    Aes(AesScheme),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptSide {
    Encrypt,
    Decrypt,
}

impl CryptSide {
    pub fn operation(self, s: &mut Session) -> &mut Option<CryptOp> {
        match self {
            CryptSide::Encrypt => &mut s.encrypt,
            CryptSide::Decrypt => &mut s.decrypt,
        }
    }
}

/// An encrypt or decrypt operation.
pub struct CryptOp {
    pub key: Arc<Object>,
    pub cipher: Cipher,
    /// Input collected by C_*Update.
    pub buffer: Vec<u8>,
    pub multi_part: bool,
    /// A result computed for a call whose buffer was too small; the next call returns it
    /// without asking the store again.
    pub pending: Option<Vec<u8>>,
}

/// A computed result, as the caller's buffer takes it.
pub enum Delivered {
    /// The result; the operation has ended.
    Data(Vec<u8>),
    /// The buffer was too small: the operation, holding the result as `pending`, goes back
    /// to the session (`keep_pending`).
    TooSmall(CryptOp),
}

impl std::fmt::Debug for CryptOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CryptOp")
            .field("key", &self.key.handle)
            .field("multi_part", &self.multi_part)
            .field("pending", &self.pending.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

impl CryptOp {
    pub fn new(key: Arc<Object>, cipher: Cipher) -> CryptOp {
        CryptOp {
            key,
            cipher,
            buffer: Vec::new(),
            multi_part: false,
            pending: None,
        }
    }

    /// The most input one operation takes: an RSA key's size, or AES's bound.
    fn input_limit(&self) -> Result<usize> {
        Ok(match &self.cipher {
            Cipher::Rsa(_) => self.key.key()?.public.size_bytes,
            Cipher::Aes(_) => aes::MAX_INPUT,
        })
    }

    /// C_EncryptUpdate / C_DecryptUpdate: collects input up to `input_limit`; more ends
    /// the operation. Parts produce no output; a size query (`size_query`: NULL output
    /// buffer) answers 0 and leaves the input unconsumed, since the caller sends the same
    /// part again with a buffer.
    pub fn update(
        side: CryptSide,
        slot: &mut Option<CryptOp>,
        data: &[u8],
        size_query: bool,
    ) -> Result<Output> {
        let op = slot.as_mut().ok_or(Error::OperationNotInitialized)?;
        let limit = op.input_limit()?;
        if op.buffer.len().saturating_add(data.len()) > limit {
            *slot = None;
            return Err(match side {
                CryptSide::Encrypt => Error::DataLenRange,
                CryptSide::Decrypt => Error::EncryptedDataLenRange,
            });
        }
        if size_query {
            return Ok(Output::Length(0));
        }
        op.buffer.extend_from_slice(data);
        op.multi_part = true;
        Ok(Output::Data(Vec::new()))
    }

    /// C_Encrypt / C_Decrypt (`input: Some`) and C_EncryptFinal / C_DecryptFinal (`None`):
    /// the operation to complete, or the answer to a size query or short buffer (which
    /// keeps it active); an error ends it.
    pub fn take(
        side: CryptSide,
        slot: &mut Option<CryptOp>,
        input: Option<&[u8]>,
        capacity: Option<usize>,
    ) -> Result<Taken<CryptOp>> {
        super::take(slot, |op| {
            if input.is_some() && op.multi_part {
                return Err(Error::OperationActive);
            }
            if let Some(p) = &op.pending {
                return Ok(deliver(p.len(), capacity));
            }
            let data = op.input(input);
            let bound = match (&op.cipher, side) {
                (Cipher::Rsa(_), CryptSide::Encrypt) => op.key.key()?.public.size_bytes,
                (Cipher::Rsa(scheme), CryptSide::Decrypt) => {
                    let public = &op.key.key()?.public;
                    if data.len() != public.size_bytes {
                        return Err(Error::EncryptedDataLenRange);
                    }
                    scheme.max_plaintext(public)
                }
                (Cipher::Aes(scheme), CryptSide::Decrypt) => scheme.plaintext_bound(data.len())?,
                (Cipher::Aes(_), CryptSide::Encrypt) => return Err(Error::MechanismInvalid),
            };
            Ok(match capacity {
                None => Some(Output::Length(bound)),
                // Encryption output length is exact; a short buffer needs no work.
                Some(c) if side == CryptSide::Encrypt && c < bound => Some(Output::TooSmall(bound)),
                _ => None,
            })
        })
    }

    /// The data to process: the call's, or what C_*Update collected.
    pub fn input<'a>(&'a self, input: Option<&'a [u8]>) -> &'a [u8] {
        input.unwrap_or(&self.buffer)
    }

    /// The result when no store is needed: the pending one, a local RSA encryption or a
    /// local AES decryption; `None` for an RSA decryption the store does.
    pub fn local_result(&self, side: CryptSide, input: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
        if let Some(p) = &self.pending {
            return Ok(Some(p.clone()));
        }
        Ok(match (&self.cipher, side) {
            (Cipher::Rsa(scheme), CryptSide::Encrypt) => {
                Some(scheme.encrypt(&self.key.key()?.public, self.input(input))?)
            }
            (Cipher::Rsa(_), CryptSide::Decrypt) => None,
            (Cipher::Aes(scheme), CryptSide::Decrypt) => {
                let key = self.key.secret_value().ok_or(Error::KeyHandleInvalid)?;
                Some(scheme.decrypt(key, self.input(input))?)
            }
            (Cipher::Aes(_), CryptSide::Encrypt) => return Err(Error::MechanismInvalid),
        })
    }

    /// The store's decryption request (RSA); AES has none (an internal error).
    pub fn rsa_scheme(&self) -> Result<&CryptScheme> {
        match &self.cipher {
            Cipher::Rsa(scheme) => Ok(scheme),
            Cipher::Aes(_) => Err(Error::Internal("AES has no store request".into())),
        }
    }

    /// The computed `result` for a buffer of `capacity` bytes.
    pub fn deliver(self, result: Vec<u8>, capacity: Option<usize>) -> Delivered {
        match capacity {
            Some(c) if c < result.len() => Delivered::TooSmall(CryptOp {
                pending: Some(result),
                ..self
            }),
            _ => Delivered::Data(result),
        }
    }

    /// Puts an operation holding a pending result back, unless the session started another
    /// meanwhile; the answer is the short-buffer one. `slot` is the session's decrypt slot
    /// (the only side whose result can outgrow a buffer that passed `take`).
    pub fn keep_pending(self, slot: &mut Option<CryptOp>) -> Output {
        let len = self.pending.as_ref().map_or(0, Vec::len);
        if slot.is_none() {
            *slot = Some(self);
        }
        Output::TooSmall(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::DecryptRequest;
    use crate::session::tests::rsa_key;

    fn op() -> CryptOp {
        CryptOp::new(
            rsa_key(2048),
            Cipher::Rsa(CryptScheme(DecryptRequest::RsaPkcs1)),
        )
    }

    #[test]
    fn updates_collect_up_to_the_key_size_then_end_the_operation() {
        let mut slot = Some(op());
        assert_eq!(
            CryptOp::update(CryptSide::Decrypt, &mut slot, &[0; 200], false).unwrap(),
            Output::Data(Vec::new())
        );
        assert_eq!(
            CryptOp::update(CryptSide::Decrypt, &mut slot, &[0; 57], false).unwrap_err(),
            Error::EncryptedDataLenRange
        );
        assert!(slot.is_none());
        let mut slot = Some(op());
        assert_eq!(
            CryptOp::update(CryptSide::Encrypt, &mut slot, &[0; 257], false).unwrap_err(),
            Error::DataLenRange
        );
        assert_eq!(
            CryptOp::update(CryptSide::Encrypt, &mut slot, &[0; 1], false).unwrap_err(),
            Error::OperationNotInitialized
        );
    }

    #[test]
    fn a_size_query_update_leaves_the_input_unconsumed() {
        let mut slot = Some(op());
        assert_eq!(
            CryptOp::update(CryptSide::Encrypt, &mut slot, b"abc", true).unwrap(),
            Output::Length(0)
        );
        CryptOp::update(CryptSide::Encrypt, &mut slot, b"abc", false).unwrap();
        let op = slot.as_ref().unwrap();
        assert_eq!(op.buffer, b"abc", "the part was taken once");
        assert!(op.multi_part);
    }

    #[test]
    fn single_part_after_update_is_operation_active() {
        let mut slot = Some(op());
        CryptOp::update(CryptSide::Encrypt, &mut slot, b"abc", false).unwrap();
        assert_eq!(
            CryptOp::take(CryptSide::Encrypt, &mut slot, Some(b"x"), None).unwrap_err(),
            Error::OperationActive
        );
        assert!(slot.is_none());
    }

    #[test]
    fn size_queries_keep_the_operation_and_decrypt_checks_the_length() {
        let mut slot = Some(op());
        let Taken::Answer(out) =
            CryptOp::take(CryptSide::Decrypt, &mut slot, Some(&[0; 256]), None).unwrap()
        else {
            panic!("taken")
        };
        assert_eq!(out, Output::Length(245));
        // A decryption's exact length is known only afterwards: a short buffer goes on.
        assert!(matches!(
            CryptOp::take(CryptSide::Decrypt, &mut slot, Some(&[0; 256]), Some(1)).unwrap(),
            Taken::Op(_)
        ));
        let mut slot = Some(op());
        let Taken::Answer(out) =
            CryptOp::take(CryptSide::Encrypt, &mut slot, Some(b"abc"), Some(255)).unwrap()
        else {
            panic!("taken")
        };
        assert_eq!(out, Output::TooSmall(256));
        assert!(slot.is_some());
        assert_eq!(
            CryptOp::take(CryptSide::Decrypt, &mut slot, Some(&[0; 255]), None).unwrap_err(),
            Error::EncryptedDataLenRange
        );
        assert!(slot.is_none());
    }

    #[test]
    fn aes_parts_are_collected_and_decrypted_at_the_end() {
        use crate::object::ObjectKind;
        use cryptoki_sys::CKA_VALUE;
        let key = [3u8; 16];
        let iv = [4u8; 16];
        let plain = b"content of several blocks, sent in parts".to_vec();
        let ct = openssl::symm::encrypt(
            openssl::symm::Cipher::aes_128_cbc(),
            &key,
            Some(&iv),
            &plain,
        )
        .unwrap();
        let mut attrs = crate::object::attributes::Attributes::new();
        attrs.insert(CKA_VALUE, key.to_vec());
        let secret = Arc::new(Object {
            handle: 2,
            slot: 0,
            stable_id: "session:2".into(),
            kind: ObjectKind::SecretKey,
            attrs,
            sensitive: &[CKA_VALUE],
            key: None,
            owner: Some(1),
        });
        let mut slot = Some(CryptOp::new(secret, Cipher::Aes(AesScheme::CbcPad { iv })));
        for part in ct.chunks(7) {
            assert_eq!(
                CryptOp::update(CryptSide::Decrypt, &mut slot, part, false).unwrap(),
                Output::Data(Vec::new())
            );
        }
        // C_DecryptFinal's size query: a bound (the padding is known only afterwards).
        let Taken::Answer(Output::Length(bound)) =
            CryptOp::take(CryptSide::Decrypt, &mut slot, None, None).unwrap()
        else {
            panic!("a size answer")
        };
        assert!(bound >= plain.len());
        let Taken::Op(op) =
            CryptOp::take(CryptSide::Decrypt, &mut slot, None, Some(bound)).unwrap()
        else {
            panic!("the operation")
        };
        assert_eq!(
            op.local_result(CryptSide::Decrypt, None).unwrap(),
            Some(plain)
        );
        assert!(slot.is_none());
    }

    #[test]
    fn a_pending_result_is_answered_without_the_store() {
        let taken = op();
        let Delivered::TooSmall(kept) = taken.deliver(vec![1, 2, 3], Some(2)) else {
            panic!("delivered")
        };
        let mut slot = None;
        assert_eq!(kept.keep_pending(&mut slot), Output::TooSmall(3));
        assert!(matches!(
            CryptOp::take(CryptSide::Decrypt, &mut slot, None, Some(2)).unwrap(),
            Taken::Answer(Output::TooSmall(3))
        ));
        let Taken::Op(again) = CryptOp::take(CryptSide::Decrypt, &mut slot, None, Some(3)).unwrap()
        else {
            panic!("answered")
        };
        let result = again.local_result(CryptSide::Decrypt, None).unwrap();
        assert_eq!(result, Some(vec![1, 2, 3]));
        assert!(matches!(
            again.deliver(vec![1, 2, 3], Some(3)),
            Delivered::Data(d) if d == [1, 2, 3]
        ));
        assert!(
            op().local_result(CryptSide::Decrypt, None)
                .unwrap()
                .is_none()
        );
    }
}
