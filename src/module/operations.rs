//! Sign, verify, encrypt, decrypt and digest (§5.10–§5.14): each C_* hands its session's
//! operation to its state machine in `src/session/` under the session's lock, and calls the
//! slot's store with no lock held.

use super::{Module, key_handle, locked};
use crate::crypto::{KeyKind, SignRequest};
use crate::error::{Error, Result};
use crate::mechanism::aes::AesScheme;
use crate::mechanism::{self, CryptScheme, Mechanism, SignScheme};
use crate::object::{Object, ObjectKind};
use crate::session::{
    self, Cipher, CryptOp, CryptSide, Delivered, DigestOp, Init, Output, Session, SignOp, SignSide,
    Taken,
};
use cryptoki_sys::*;
use std::sync::Arc;

impl Module {
    // ----- sign and verify (§5.13, §5.14) -----

    pub fn sign_init(
        &self,
        side: SignSide,
        h: CK_SESSION_HANDLE,
        m: Option<&Mechanism>,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        self.start_operation(
            h,
            m,
            |s| side.operation(s),
            |slot, m| {
                let scheme = SignScheme::from_mechanism(m)?;
                // Verification with the private key's handle is accepted: it carries the
                // public key too.
                let (private_flag, public_flag) = match side {
                    SignSide::Sign => (CKA_SIGN, None),
                    SignSide::Verify => (CKA_SIGN, Some(CKA_VERIFY)),
                };
                let key =
                    self.operation_key(slot, key, private_flag, public_flag, scheme.key_kind())?;
                scheme.check_key(&key.key()?.public)?;
                self.check_backend_sign(&key, &scheme)?;
                SignOp::new(key, scheme)
            },
        )
    }

    /// Lets the store refuse at C_SignInit what it cannot sign.
    fn check_backend_sign(&self, key: &Object, scheme: &SignScheme) -> Result<()> {
        let Some(record) = &key.key()?.record else {
            return Ok(());
        };
        if key.kind != ObjectKind::PrivateKey {
            return Ok(());
        }
        let request = scheme.backend_request(&key.key()?.public)?;
        self.backend(key.slot)?.check_sign(record, &request)
    }

    /// The common part of every *Init: a NULL mechanism cancels; an active operation of
    /// the kind is `CKR_OPERATION_ACTIVE`; the new operation is built with no session lock
    /// held and installed if the slot is still free.
    fn start_operation<T>(
        &self,
        h: CK_SESSION_HANDLE,
        m: Option<&Mechanism>,
        select: impl Fn(&mut Session) -> &mut Option<T>,
        build: impl FnOnce(usize, &Mechanism) -> Result<T>,
    ) -> Result<()> {
        let s = self.session(h)?;
        let slot = {
            let mut g = session::lock(&s)?;
            let slot = g.slot;
            match session::begin(select(&mut g), m.is_some())? {
                Init::Cancelled => return Ok(()),
                Init::Build => slot,
            }
        };
        let m = m.ok_or(Error::ArgumentsBad("mechanism"))?;
        let new = build(slot, m)?;
        locked(&s, |g| session::install(select(g), new))
    }

    /// The key object for an operation: a private key permitted `private_flag`, or (when
    /// `public_flag` is given) a public key permitted that, of the algorithm the mechanism
    /// needs.
    pub(super) fn operation_key(
        &self,
        slot: usize,
        key: CK_OBJECT_HANDLE,
        private_flag: CK_ATTRIBUTE_TYPE,
        public_flag: Option<CK_ATTRIBUTE_TYPE>,
        kind: KeyKind,
    ) -> Result<Arc<Object>> {
        let obj = self.session_object(slot, key).map_err(key_handle)?;
        let material = obj.key().map_err(key_handle)?;
        let permitted = match (obj.kind, public_flag) {
            (ObjectKind::PrivateKey, _) => obj.flag(private_flag),
            (ObjectKind::PublicKey, Some(f)) => obj.flag(f),
            _ => false,
        };
        if !permitted {
            return Err(Error::KeyFunctionNotPermitted);
        }
        if material.public.kind != kind {
            return Err(Error::KeyTypeInconsistent);
        }
        Ok(obj)
    }

    /// A session secret key of type `key_type` whose `flag` (CKA_DECRYPT, …) is true.
    fn secret_key(
        &self,
        slot: usize,
        key: CK_OBJECT_HANDLE,
        key_type: CK_KEY_TYPE,
        flag: CK_ATTRIBUTE_TYPE,
    ) -> Result<Arc<Object>> {
        let obj = self.session_object(slot, key).map_err(key_handle)?;
        if obj.kind != ObjectKind::SecretKey {
            return Err(Error::KeyTypeInconsistent);
        }
        if obj.attrs.get(&CKA_KEY_TYPE) != Some(&crate::object::attributes::ulong(key_type)) {
            return Err(Error::KeyTypeInconsistent);
        }
        if !obj.flag(flag) {
            return Err(Error::KeyFunctionNotPermitted);
        }
        if obj.secret_value().is_none() {
            return Err(Error::KeyHandleInvalid);
        }
        Ok(obj)
    }

    pub fn sign(
        &self,
        h: CK_SESSION_HANDLE,
        data: &[u8],
        capacity: Option<usize>,
    ) -> Result<Output> {
        let mut op = match self.with_session(h, |s| SignOp::take_for_sign(&mut s.sign, capacity))? {
            Taken::Op(op) => op,
            Taken::Answer(out) => return Ok(out),
        };
        let input = op.single_part_input(data)?;
        self.sign_prepared(&op.key, &op.scheme, &input)
    }

    fn sign_prepared(&self, key: &Object, scheme: &SignScheme, input: &[u8]) -> Result<Output> {
        let material = key.key()?;
        let record = material.record.as_ref().ok_or(Error::KeyHandleInvalid)?;
        let (request, data) = scheme.request(input, &material.public)?;
        let backend = self.backend(key.slot)?;
        let signature = self.key_use(key.slot, record, "sign", &request.describe(), || {
            let signature = match &material.session_key {
                Some(k) => crate::backend::directory::sign_with(k, &request, &data)?,
                None => backend.sign(record, &request, &data)?,
            };
            // A store's answer is checked before it reaches the caller: a wrong signature
            // is worse than an error. Not an RSA signature OpenSSL made here: its RSA
            // verifies its CRT result itself (the Bellcore fault), and a second check
            // would cost a tenth of every local signature.
            let openssl_rsa = matches!(request, SignRequest::RsaPkcs1 { .. } | SignRequest::RsaPss { .. })
                && (material.session_key.is_some() || backend.rsa_signs_with_openssl());
            if !openssl_rsa {
                mechanism::check_signature(&material.public, &request, &data, &signature).map_err(|e| {
                    tracing::error!(key = %record.stable_id, error = %e, "the store returned a signature that does not verify");
                    Error::Backend(format!("signature from {} did not verify", backend.kind()))
                })?;
            }
            Ok(signature)
        })?;
        Ok(Output::Data(signature))
    }

    pub fn sign_update(&self, side: SignSide, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        self.with_session(h, |s| SignOp::update(side.operation(s), data))
    }

    pub fn sign_final(&self, h: CK_SESSION_HANDLE, capacity: Option<usize>) -> Result<Output> {
        let taken = self.with_session(h, |s| SignOp::take_for_sign_final(&mut s.sign, capacity))?;
        let mut op = match taken {
            Taken::Op(op) => op,
            Taken::Answer(out) => return Ok(out),
        };
        let digest = op.final_input(Error::OperationNotInitialized)?;
        self.sign_prepared(&op.key, &op.scheme, &digest)
    }

    pub fn verify(&self, h: CK_SESSION_HANDLE, data: &[u8], signature: &[u8]) -> Result<()> {
        let mut op = self.with_session(h, |s| SignOp::take_for_verify(&mut s.verify))?;
        let input = op.single_part_input(data)?;
        op.verify(&input, signature)
    }

    pub fn verify_final(&self, h: CK_SESSION_HANDLE, signature: &[u8]) -> Result<()> {
        let mut op = self.with_session(h, |s| SignOp::take_for_verify_final(&mut s.verify))?;
        let digest = op.final_input(Error::FunctionNotSupported)?;
        op.verify(&digest, signature)
    }

    // ----- encrypt and decrypt (§5.10, §5.11) -----

    pub fn crypt_init(
        &self,
        side: CryptSide,
        h: CK_SESSION_HANDLE,
        m: Option<&Mechanism>,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        self.start_operation(
            h,
            m,
            |s| side.operation(s),
            |slot, m| {
                if AesScheme::is_aes(m.mechanism) {
                    if side == CryptSide::Encrypt {
                        return Err(Error::MechanismInvalid);
                    }
                    let scheme = AesScheme::from_mechanism(m)?;
                    let key = self.secret_key(slot, key, CKK_AES, CKA_DECRYPT)?;
                    return Ok(CryptOp::new(key, Cipher::Aes(scheme)));
                }
                let scheme = CryptScheme::from_mechanism(m)?;
                let public_flag = match side {
                    CryptSide::Encrypt => Some(CKA_ENCRYPT),
                    CryptSide::Decrypt => None,
                };
                let key = self.operation_key(slot, key, CKA_DECRYPT, public_flag, KeyKind::Rsa)?;
                if side == CryptSide::Decrypt
                    && let Some(record) = &key.key()?.record
                {
                    self.backend(slot)?.check_decrypt(record, &scheme.0)?;
                }
                Ok(CryptOp::new(key, Cipher::Rsa(scheme)))
            },
        )
    }

    pub fn crypt_update(
        &self,
        side: CryptSide,
        h: CK_SESSION_HANDLE,
        data: &[u8],
        size_query: bool,
    ) -> Result<Output> {
        self.with_session(h, |s| {
            CryptOp::update(side, side.operation(s), data, size_query)
        })
    }

    /// C_Encrypt / C_Decrypt (`input: Some`) and C_EncryptFinal / C_DecryptFinal (`None`).
    pub fn crypt(
        &self,
        side: CryptSide,
        h: CK_SESSION_HANDLE,
        input: Option<&[u8]>,
        capacity: Option<usize>,
    ) -> Result<Output> {
        let s = self.session(h)?;
        let op = match locked(&s, |g| {
            CryptOp::take(side, side.operation(g), input, capacity)
        })? {
            Taken::Op(op) => op,
            Taken::Answer(out) => return Ok(out),
        };
        let result = match op.local_result(side, input)? {
            Some(result) => result,
            None => {
                let scheme = op.rsa_scheme()?;
                let material = op.key.key()?;
                let record = material.record.as_ref().ok_or(Error::KeyHandleInvalid)?;
                let backend = self.backend(op.key.slot)?;
                self.key_use(op.key.slot, record, "decrypt", &scheme.0.describe(), || {
                    match &material.session_key {
                        Some(k) => {
                            crate::backend::directory::decrypt_with(k, &scheme.0, op.input(input))
                        }
                        None => backend.decrypt(record, &scheme.0, op.input(input)),
                    }
                })?
            }
        };
        match op.deliver(result, capacity) {
            Delivered::Data(result) => Ok(Output::Data(result)),
            // Keep the result so that the retry with a larger buffer does not decrypt again.
            Delivered::TooSmall(op) => locked(&s, |g| Ok(op.keep_pending(&mut g.decrypt))),
        }
    }

    // ----- digest (§5.12) -----

    pub fn digest_init(&self, h: CK_SESSION_HANDLE, m: Option<&Mechanism>) -> Result<()> {
        self.start_operation(
            h,
            m,
            |s| &mut s.digest,
            |_, m| DigestOp::new(mechanism::digest_hash(m)?),
        )
    }

    /// C_Digest (`data: Some`) and C_DigestFinal (`None`).
    pub fn digest(
        &self,
        h: CK_SESSION_HANDLE,
        data: Option<&[u8]>,
        capacity: Option<usize>,
    ) -> Result<Output> {
        self.with_session(h, |s| DigestOp::digest(&mut s.digest, data, capacity))
    }

    pub fn digest_update(&self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        self.with_session(h, |s| DigestOp::update(&mut s.digest, data))
    }
}
