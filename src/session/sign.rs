//! Sign and verify operations (§5.13, §5.14): what C_Sign*/C_Verify* do with the session's
//! operation. Signing itself is the store's (the module calls it with no lock held);
//! verification is local.

use super::{Session, Taken, deliver, take};
use crate::crypto::Hashing;
use crate::error::{Error, Result};
use crate::mechanism::SignScheme;
use crate::object::Object;
use std::sync::Arc;

/// Which operation an *Init/Update/Final call addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignSide {
    Sign,
    Verify,
}

impl SignSide {
    pub fn operation(self, s: &mut Session) -> &mut Option<SignOp> {
        match self {
            SignSide::Sign => &mut s.sign,
            SignSide::Verify => &mut s.verify,
        }
    }
}

/// A sign or verify operation.
pub struct SignOp {
    pub key: Arc<Object>,
    pub scheme: SignScheme,
    /// Running hash for the `CKM_SHAxxx_*` mechanisms.
    pub hashing: Option<Hashing>,
    /// C_SignUpdate was called: only C_SignFinal may follow (§5.13).
    pub multi_part: bool,
}

impl std::fmt::Debug for SignOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignOp")
            .field("key", &self.key.handle)
            .field("multi_part", &self.multi_part)
            .finish_non_exhaustive()
    }
}

impl SignOp {
    /// A new operation: the running hash when the scheme hashes here.
    pub fn new(key: Arc<Object>, scheme: SignScheme) -> Result<SignOp> {
        let hashing = scheme.prehash.map(Hashing::new).transpose()?;
        Ok(SignOp {
            key,
            scheme,
            hashing,
            multi_part: false,
        })
    }

    fn signature_len(&self) -> Result<usize> {
        Ok(self.key.key()?.public.signature_len())
    }

    /// C_Sign: not after C_SignUpdate; a size query or short buffer keeps the operation.
    pub fn take_for_sign(
        slot: &mut Option<SignOp>,
        capacity: Option<usize>,
    ) -> Result<Taken<SignOp>> {
        take(slot, |op| {
            if op.multi_part {
                return Err(Error::OperationActive);
            }
            Ok(deliver(op.signature_len()?, capacity))
        })
    }

    /// C_SignFinal: only for mechanisms that hash here.
    pub fn take_for_sign_final(
        slot: &mut Option<SignOp>,
        capacity: Option<usize>,
    ) -> Result<Taken<SignOp>> {
        take(slot, |op| {
            if op.hashing.is_none() {
                return Err(Error::FunctionNotSupported);
            }
            Ok(deliver(op.signature_len()?, capacity))
        })
    }

    /// C_Verify: not after C_VerifyUpdate.
    pub fn take_for_verify(slot: &mut Option<SignOp>) -> Result<SignOp> {
        let taken = take(slot, |op| {
            if op.multi_part {
                return Err(Error::OperationActive);
            }
            Ok(None)
        })?;
        verify_op(taken)
    }

    /// C_VerifyFinal.
    pub fn take_for_verify_final(slot: &mut Option<SignOp>) -> Result<SignOp> {
        verify_op(take(slot, |_| Ok(None))?)
    }

    /// C_SignUpdate / C_VerifyUpdate: only mechanisms that hash here are multi-part; an
    /// error ends the operation.
    pub fn update(slot: &mut Option<SignOp>, data: &[u8]) -> Result<()> {
        let op = slot.as_mut().ok_or(Error::OperationNotInitialized)?;
        let result = match op.hashing.as_mut() {
            // Single-part mechanisms (CKM_RSA_PKCS, CKM_ECDSA, CKM_RSA_PKCS_PSS).
            None => Err(Error::FunctionNotSupported),
            Some(hashing) => hashing.update(data),
        };
        match result {
            Ok(()) => {
                op.multi_part = true;
                Ok(())
            }
            Err(e) => {
                *slot = None;
                Err(e)
            }
        }
    }

    /// What a single-part C_Sign / C_Verify signs: the data, hashed first when the
    /// mechanism hashes here.
    pub fn single_part_input(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        match self.hashing.take() {
            Some(mut hashing) => {
                hashing.update(data)?;
                hashing.finish()
            }
            None => Ok(data.to_vec()),
        }
    }

    /// What C_SignFinal / C_VerifyFinal sign: the running hash; `missing` without one.
    pub fn final_input(&mut self, missing: Error) -> Result<Vec<u8>> {
        let mut hashing = self.hashing.take().ok_or(missing)?;
        hashing.finish()
    }

    /// Checks `signature` over `input` (as `single_part_input` / `final_input` made it).
    pub fn verify(&self, input: &[u8], signature: &[u8]) -> Result<()> {
        self.scheme
            .verify(&self.key.key()?.public, input, signature)
    }
}

fn verify_op(taken: Taken<SignOp>) -> Result<SignOp> {
    match taken {
        Taken::Op(op) => Ok(op),
        Taken::Answer(_) => Err(Error::Internal("verify produced output".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::{Mechanism, MechanismParam};
    use crate::session::Output;
    use crate::session::tests::rsa_key;
    use cryptoki_sys::*;

    fn op(mechanism: CK_MECHANISM_TYPE) -> SignOp {
        let m = Mechanism {
            mechanism,
            param: MechanismParam::None,
        };
        SignOp::new(rsa_key(2048), SignScheme::from_mechanism(&m).unwrap()).unwrap()
    }

    #[test]
    fn size_queries_and_short_buffers_keep_the_operation() {
        let mut slot = Some(op(CKM_SHA256_RSA_PKCS));
        assert!(matches!(
            SignOp::take_for_sign(&mut slot, None).unwrap(),
            Taken::Answer(Output::Length(256))
        ));
        assert!(matches!(
            SignOp::take_for_sign(&mut slot, Some(255)).unwrap(),
            Taken::Answer(Output::TooSmall(256))
        ));
        assert!(slot.is_some());
        assert!(matches!(
            SignOp::take_for_sign(&mut slot, Some(256)).unwrap(),
            Taken::Op(_)
        ));
        assert!(slot.is_none());
        assert_eq!(
            SignOp::take_for_sign(&mut slot, Some(256)).unwrap_err(),
            Error::OperationNotInitialized
        );
    }

    #[test]
    fn single_part_after_update_is_operation_active_and_ends_it() {
        let mut slot = Some(op(CKM_SHA256_RSA_PKCS));
        SignOp::update(&mut slot, b"part").unwrap();
        assert!(slot.as_ref().unwrap().multi_part);
        assert_eq!(
            SignOp::take_for_sign(&mut slot, None).unwrap_err(),
            Error::OperationActive
        );
        assert!(slot.is_none());
        let mut slot = Some(op(CKM_SHA256_RSA_PKCS));
        SignOp::update(&mut slot, b"part").unwrap();
        assert_eq!(
            SignOp::take_for_verify(&mut slot).unwrap_err(),
            Error::OperationActive
        );
        assert!(slot.is_none());
    }

    #[test]
    fn single_part_mechanisms_refuse_update_and_final() {
        let mut slot = Some(op(CKM_RSA_PKCS));
        assert_eq!(
            SignOp::update(&mut slot, b"x").unwrap_err(),
            Error::FunctionNotSupported
        );
        assert!(slot.is_none());
        let mut slot = Some(op(CKM_RSA_PKCS));
        assert_eq!(
            SignOp::take_for_sign_final(&mut slot, None).unwrap_err(),
            Error::FunctionNotSupported
        );
        assert!(slot.is_none());
        // C_VerifyFinal takes the operation first, then finds no running hash.
        let mut slot = Some(op(CKM_RSA_PKCS));
        let mut taken = SignOp::take_for_verify_final(&mut slot).unwrap();
        assert!(slot.is_none());
        assert_eq!(
            taken.final_input(Error::FunctionNotSupported).unwrap_err(),
            Error::FunctionNotSupported
        );
    }

    #[test]
    fn multi_part_input_is_the_hash_of_the_parts() {
        let mut slot = Some(op(CKM_SHA256_RSA_PKCS));
        SignOp::update(&mut slot, b"ab").unwrap();
        SignOp::update(&mut slot, b"c").unwrap();
        let Taken::Op(mut taken) = SignOp::take_for_sign_final(&mut slot, Some(256)).unwrap()
        else {
            panic!("no operation")
        };
        let digest = taken.final_input(Error::OperationNotInitialized).unwrap();
        assert_eq!(digest, openssl::sha::sha256(b"abc").to_vec());
        let mut single = op(CKM_SHA256_RSA_PKCS);
        assert_eq!(single.single_part_input(b"abc").unwrap(), digest);
        let mut raw = op(CKM_RSA_PKCS);
        assert_eq!(raw.single_part_input(b"abc").unwrap(), b"abc".to_vec());
    }
}
