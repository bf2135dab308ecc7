//! The exported cryptographic functions (§5.10–§5.17, in the specification's order) and
//! those this module does not offer. Each decodes its arguments with [`args`] and calls
//! one method of [`Module`].

use super::args::{self, bytes, capacity, output, template, to_usize, write};
use super::{cryptoki_fn, module};
use crate::error::Error;
use crate::module::{CryptSide, Module, SignSide};
use cryptoki_sys::*;
use std::ffi::c_void;

/// A bad argument to a C_Sign/C_Decrypt/... call ends the active operation like any other
/// error but CKR_BUFFER_TOO_SMALL (§5.2): decode, and cancel on failure.
fn ending<T>(
    m: &Module,
    h: CK_SESSION_HANDLE,
    op: CK_FLAGS,
    decoded: crate::error::Result<T>,
) -> crate::error::Result<T> {
    if decoded.is_err() {
        let _ = m.session_cancel(h, op);
    }
    decoded
}

// ---------------------------------------------------------------------------------------
// Encryption and decryption (§5.10, §5.11)
// ---------------------------------------------------------------------------------------

cryptoki_fn! {
    fn C_EncryptInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE) {
        let m = module()?;
        // SAFETY: caller's mechanism.
        let mech = unsafe { args::mechanism(pMechanism) }?;
        m.crypt_init(CryptSide::Encrypt, hSession, mech.as_ref(), hKey)?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_Encrypt(hSession: CK_SESSION_HANDLE, pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pEncryptedData: *mut CK_BYTE, pulEncryptedDataLen: *mut CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's input buffer.
        let data = ending(&m, hSession, CKF_ENCRYPT, unsafe { bytes(pData, ulDataLen) })?;
        // SAFETY: caller's output length.
        let cap = ending(&m, hSession, CKF_ENCRYPT, unsafe { capacity(pEncryptedData, pulEncryptedDataLen) })?;
        let out = m.crypt(CryptSide::Encrypt, hSession, Some(data), cap)?;
        // SAFETY: output buffer of `cap` bytes.
        unsafe { output(pEncryptedData, pulEncryptedDataLen, out) }
    }
}

cryptoki_fn! {
    fn C_EncryptUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG, pEncryptedPart: *mut CK_BYTE, pulEncryptedPartLen: *mut CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's input buffer.
        let data = ending(&m, hSession, CKF_ENCRYPT, unsafe { bytes(pPart, ulPartLen) })?;
        // SAFETY: caller's output length.
        let cap = ending(&m, hSession, CKF_ENCRYPT, unsafe { capacity(pEncryptedPart, pulEncryptedPartLen) })?;
        // A NULL output buffer asks for the length only: the part is not taken.
        let out = m.crypt_update(CryptSide::Encrypt, hSession, data, cap.is_none())?;
        // SAFETY: output buffer (RSA updates produce nothing).
        unsafe { output(pEncryptedPart, pulEncryptedPartLen, out) }
    }
}

cryptoki_fn! {
    fn C_EncryptFinal(hSession: CK_SESSION_HANDLE, pLastEncryptedPart: *mut CK_BYTE, pulLastEncryptedPartLen: *mut CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's output length.
        let cap = ending(&m, hSession, CKF_ENCRYPT, unsafe { capacity(pLastEncryptedPart, pulLastEncryptedPartLen) })?;
        let out = m.crypt(CryptSide::Encrypt, hSession, None, cap)?;
        // SAFETY: output buffer of `cap` bytes.
        unsafe { output(pLastEncryptedPart, pulLastEncryptedPartLen, out) }
    }
}

cryptoki_fn! {
    fn C_DecryptInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE) {
        let m = module()?;
        // SAFETY: caller's mechanism.
        let mech = unsafe { args::mechanism(pMechanism) }?;
        m.crypt_init(CryptSide::Decrypt, hSession, mech.as_ref(), hKey)?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_Decrypt(hSession: CK_SESSION_HANDLE, pEncryptedData: *mut CK_BYTE, ulEncryptedDataLen: CK_ULONG, pData: *mut CK_BYTE, pulDataLen: *mut CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's input buffer.
        let data = ending(&m, hSession, CKF_DECRYPT, unsafe { bytes(pEncryptedData, ulEncryptedDataLen) })?;
        // SAFETY: caller's output length.
        let cap = ending(&m, hSession, CKF_DECRYPT, unsafe { capacity(pData, pulDataLen) })?;
        let out = m.crypt(CryptSide::Decrypt, hSession, Some(data), cap)?;
        // SAFETY: output buffer of `cap` bytes.
        unsafe { output(pData, pulDataLen, out) }
    }
}

cryptoki_fn! {
    fn C_DecryptUpdate(hSession: CK_SESSION_HANDLE, pEncryptedPart: *mut CK_BYTE, ulEncryptedPartLen: CK_ULONG, pPart: *mut CK_BYTE, pulPartLen: *mut CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's input buffer.
        let data = ending(&m, hSession, CKF_DECRYPT, unsafe { bytes(pEncryptedPart, ulEncryptedPartLen) })?;
        // SAFETY: caller's output length.
        let cap = ending(&m, hSession, CKF_DECRYPT, unsafe { capacity(pPart, pulPartLen) })?;
        // A NULL output buffer asks for the length only: the part is not taken.
        let out = m.crypt_update(CryptSide::Decrypt, hSession, data, cap.is_none())?;
        // SAFETY: output buffer (RSA updates produce nothing).
        unsafe { output(pPart, pulPartLen, out) }
    }
}

cryptoki_fn! {
    fn C_DecryptFinal(hSession: CK_SESSION_HANDLE, pLastPart: *mut CK_BYTE, pulLastPartLen: *mut CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's output length.
        let cap = ending(&m, hSession, CKF_DECRYPT, unsafe { capacity(pLastPart, pulLastPartLen) })?;
        let out = m.crypt(CryptSide::Decrypt, hSession, None, cap)?;
        // SAFETY: output buffer of `cap` bytes.
        unsafe { output(pLastPart, pulLastPartLen, out) }
    }
}

// ---------------------------------------------------------------------------------------
// Message digesting (§5.12)
// ---------------------------------------------------------------------------------------

cryptoki_fn! {
    fn C_DigestInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM) {
        let m = module()?;
        // SAFETY: caller's mechanism.
        let mech = unsafe { args::mechanism(pMechanism) }?;
        // A NULL mechanism cancels the active digest (v3.0), as for the other *Init.
        m.digest_init(hSession, mech.as_ref())?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_Digest(hSession: CK_SESSION_HANDLE, pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pDigest: *mut CK_BYTE, pulDigestLen: *mut CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's input buffer.
        let data = ending(&m, hSession, CKF_DIGEST, unsafe { bytes(pData, ulDataLen) })?;
        // SAFETY: caller's output length.
        let cap = ending(&m, hSession, CKF_DIGEST, unsafe { capacity(pDigest, pulDigestLen) })?;
        let out = m.digest(hSession, Some(data), cap)?;
        // SAFETY: output buffer of `cap` bytes.
        unsafe { output(pDigest, pulDigestLen, out) }
    }
}

cryptoki_fn! {
    fn C_DigestUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's input buffer.
        let data = ending(&m, hSession, CKF_DIGEST, unsafe { bytes(pPart, ulPartLen) })?;
        m.digest_update(hSession, data)?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    /// Keys here are never extractable, so no key value can be digested.
    fn C_DigestKey(hSession: CK_SESSION_HANDLE, hKey: CK_OBJECT_HANDLE) {
        let _ = hKey;
        module()?.check_session(hSession)?;
        Err(Error::FunctionNotSupported)
    }
}

cryptoki_fn! {
    fn C_DigestFinal(hSession: CK_SESSION_HANDLE, pDigest: *mut CK_BYTE, pulDigestLen: *mut CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's output length.
        let cap = ending(&m, hSession, CKF_DIGEST, unsafe { capacity(pDigest, pulDigestLen) })?;
        let out = m.digest(hSession, None, cap)?;
        // SAFETY: output buffer of `cap` bytes.
        unsafe { output(pDigest, pulDigestLen, out) }
    }
}

// ---------------------------------------------------------------------------------------
// Signing and verifying (§5.13, §5.14)
// ---------------------------------------------------------------------------------------

cryptoki_fn! {
    /// A NULL mechanism cancels an active signing operation (v3.0).
    fn C_SignInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE) {
        let m = module()?;
        // SAFETY: caller's mechanism.
        let mech = unsafe { args::mechanism(pMechanism) }?;
        m.sign_init(SignSide::Sign, hSession, mech.as_ref(), hKey)?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_Sign(hSession: CK_SESSION_HANDLE, pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pSignature: *mut CK_BYTE, pulSignatureLen: *mut CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's input buffer.
        let data = ending(&m, hSession, CKF_SIGN, unsafe { bytes(pData, ulDataLen) })?;
        // SAFETY: caller's output length.
        let cap = ending(&m, hSession, CKF_SIGN, unsafe { capacity(pSignature, pulSignatureLen) })?;
        let out = m.sign(hSession, data, cap)?;
        // SAFETY: output buffer of `cap` bytes.
        unsafe { output(pSignature, pulSignatureLen, out) }
    }
}

cryptoki_fn! {
    fn C_SignUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's input buffer.
        let data = ending(&m, hSession, CKF_SIGN, unsafe { bytes(pPart, ulPartLen) })?;
        m.sign_update(SignSide::Sign, hSession, data)?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_SignFinal(hSession: CK_SESSION_HANDLE, pSignature: *mut CK_BYTE, pulSignatureLen: *mut CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's output length.
        let cap = ending(&m, hSession, CKF_SIGN, unsafe { capacity(pSignature, pulSignatureLen) })?;
        let out = m.sign_final(hSession, cap)?;
        // SAFETY: output buffer of `cap` bytes.
        unsafe { output(pSignature, pulSignatureLen, out) }
    }
}

cryptoki_fn! {
    fn C_VerifyInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE) {
        let m = module()?;
        // SAFETY: caller's mechanism.
        let mech = unsafe { args::mechanism(pMechanism) }?;
        m.sign_init(SignSide::Verify, hSession, mech.as_ref(), hKey)?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_Verify(hSession: CK_SESSION_HANDLE, pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pSignature: *mut CK_BYTE, ulSignatureLen: CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's buffers.
        let data = ending(&m, hSession, CKF_VERIFY, unsafe { bytes(pData, ulDataLen) })?;
        // SAFETY: caller's buffers.
        let sig = ending(&m, hSession, CKF_VERIFY, unsafe { bytes(pSignature, ulSignatureLen) })?;
        m.verify(hSession, data, sig)?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_VerifyUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's input buffer.
        let data = ending(&m, hSession, CKF_VERIFY, unsafe { bytes(pPart, ulPartLen) })?;
        m.sign_update(SignSide::Verify, hSession, data)?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_VerifyFinal(hSession: CK_SESSION_HANDLE, pSignature: *mut CK_BYTE, ulSignatureLen: CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's buffer.
        let sig = ending(&m, hSession, CKF_VERIFY, unsafe { bytes(pSignature, ulSignatureLen) })?;
        m.verify_final(hSession, sig)?;
        Ok(CKR_OK)
    }
}

// ---------------------------------------------------------------------------------------
// Key management and random numbers (§5.15–§5.17)
// ---------------------------------------------------------------------------------------

cryptoki_fn! {
    fn C_GenerateKeyPair(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, pPublicKeyTemplate: *mut CK_ATTRIBUTE, ulPublicKeyAttributeCount: CK_ULONG, pPrivateKeyTemplate: *mut CK_ATTRIBUTE, ulPrivateKeyAttributeCount: CK_ULONG, phPublicKey: *mut CK_OBJECT_HANDLE, phPrivateKey: *mut CK_OBJECT_HANDLE) {
        let m = module()?;
        // SAFETY: caller's mechanism.
        let mech = unsafe { args::mechanism(pMechanism) }?.ok_or(Error::ArgumentsBad("pMechanism"))?;
        // SAFETY: caller's templates.
        let public = unsafe { template(pPublicKeyTemplate, ulPublicKeyAttributeCount) }?;
        // SAFETY: caller's templates.
        let private = unsafe { template(pPrivateKeyTemplate, ulPrivateKeyAttributeCount) }?;
        if phPublicKey.is_null() || phPrivateKey.is_null() {
            return Err(Error::ArgumentsBad("phPublicKey / phPrivateKey"));
        }
        let (pubh, privh) = m.generate_key_pair(hSession, &mech, &public, &private)?;
        // SAFETY: checked non-NULL; writable.
        unsafe { write(phPublicKey, pubh, "phPublicKey") }?;
        // SAFETY: checked non-NULL; writable.
        unsafe { write(phPrivateKey, privh, "phPrivateKey") }?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_UnwrapKey(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hUnwrappingKey: CK_OBJECT_HANDLE, pWrappedKey: *mut CK_BYTE, ulWrappedKeyLen: CK_ULONG, pTemplate: *mut CK_ATTRIBUTE, ulAttributeCount: CK_ULONG, phKey: *mut CK_OBJECT_HANDLE) {
        let m = module()?;
        // SAFETY: caller's mechanism.
        let mech = unsafe { args::mechanism(pMechanism) }?.ok_or(Error::ArgumentsBad("pMechanism"))?;
        // SAFETY: caller's input buffer.
        let wrapped = unsafe { bytes(pWrappedKey, ulWrappedKeyLen) }?;
        // SAFETY: caller's template.
        let t = unsafe { template(pTemplate, ulAttributeCount) }?;
        if phKey.is_null() {
            return Err(Error::ArgumentsBad("phKey"));
        }
        let h = m.unwrap_key(hSession, &mech, hUnwrappingKey, wrapped, &t)?;
        // SAFETY: checked non-NULL; writable.
        unsafe { write(phKey, h, "phKey") }?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_SeedRandom(hSession: CK_SESSION_HANDLE, pSeed: *mut CK_BYTE, ulSeedLen: CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's buffer (checked, not used: the OS generator takes no seed).
        unsafe { bytes(pSeed, ulSeedLen) }?;
        m.check_session(hSession)?;
        Err(Error::RandomSeedNotSupported)
    }
}

cryptoki_fn! {
    fn C_GenerateRandom(hSession: CK_SESSION_HANDLE, RandomData: *mut CK_BYTE, ulRandomLen: CK_ULONG) {
        let m = module()?;
        let len = to_usize(ulRandomLen)?;
        if len == 0 {
            m.check_session(hSession)?;
            return Ok(CKR_OK);
        }
        if RandomData.is_null() {
            return Err(Error::ArgumentsBad("RandomData"));
        }
        // The caller's buffer is written only after the session checks out.
        let mut buf = vec![0u8; len.min(64 << 20)];
        if buf.len() != len {
            return Err(Error::ArgumentsBad("more than 64 MiB of random bytes"));
        }
        m.generate_random(hSession, &mut buf)?;
        // SAFETY: RandomData holds ulRandomLen writable bytes.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), RandomData, len) };
        Ok(CKR_OK)
    }
}

// ---------------------------------------------------------------------------------------
// What this module does not offer: each is a real function returning a real code.
// ---------------------------------------------------------------------------------------

cryptoki_fn! {
    /// §5.17 (legacy parallel functions): every function runs to completion in its
    /// caller's thread, so there is never a function to ask about.
    fn C_GetFunctionStatus(hSession: CK_SESSION_HANDLE) {
        module()?.check_session(hSession)?;
        Ok(CKR_FUNCTION_NOT_PARALLEL)
    }
}

cryptoki_fn! {
    /// §5.17: likewise, nothing to cancel.
    fn C_CancelFunction(hSession: CK_SESSION_HANDLE) {
        module()?.check_session(hSession)?;
        Ok(CKR_FUNCTION_NOT_PARALLEL)
    }
}

/// Defines functions that check the library state and the session, then refuse.
macro_rules! not_supported {
    ($($name:ident($session:ident: CK_SESSION_HANDLE $(, $arg:ident: $ty:ty)*);)*) => {
        $(
            cryptoki_fn! {
                fn $name($session: CK_SESSION_HANDLE $(, $arg: $ty)*) {
                    $(let _ = $arg;)*
                    module()?.check_session($session)?;
                    Err(Error::FunctionNotSupported)
                }
            }
        )*
    };
}

not_supported! {
    C_SignRecoverInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE);
    C_SignRecover(hSession: CK_SESSION_HANDLE, pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pSignature: *mut CK_BYTE, pulSignatureLen: *mut CK_ULONG);
    C_VerifyRecoverInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE);
    C_VerifyRecover(hSession: CK_SESSION_HANDLE, pSignature: *mut CK_BYTE, ulSignatureLen: CK_ULONG, pData: *mut CK_BYTE, pulDataLen: *mut CK_ULONG);
    C_DigestEncryptUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG, pEncryptedPart: *mut CK_BYTE, pulEncryptedPartLen: *mut CK_ULONG);
    C_DecryptDigestUpdate(hSession: CK_SESSION_HANDLE, pEncryptedPart: *mut CK_BYTE, ulEncryptedPartLen: CK_ULONG, pPart: *mut CK_BYTE, pulPartLen: *mut CK_ULONG);
    C_SignEncryptUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG, pEncryptedPart: *mut CK_BYTE, pulEncryptedPartLen: *mut CK_ULONG);
    C_DecryptVerifyUpdate(hSession: CK_SESSION_HANDLE, pEncryptedPart: *mut CK_BYTE, ulEncryptedPartLen: CK_ULONG, pPart: *mut CK_BYTE, pulPartLen: *mut CK_ULONG);
    C_GenerateKey(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, pTemplate: *mut CK_ATTRIBUTE, ulCount: CK_ULONG, phKey: *mut CK_OBJECT_HANDLE);
    C_WrapKey(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hWrappingKey: CK_OBJECT_HANDLE, hKey: CK_OBJECT_HANDLE, pWrappedKey: *mut CK_BYTE, pulWrappedKeyLen: *mut CK_ULONG);
    C_DeriveKey(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hBaseKey: CK_OBJECT_HANDLE, pTemplate: *mut CK_ATTRIBUTE, ulAttributeCount: CK_ULONG, phKey: *mut CK_OBJECT_HANDLE);
    C_MessageEncryptInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE);
    C_EncryptMessage(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG, pAssociatedData: *mut CK_BYTE, ulAssociatedDataLen: CK_ULONG, pPlaintext: *mut CK_BYTE, ulPlaintextLen: CK_ULONG, pCiphertext: *mut CK_BYTE, pulCiphertextLen: *mut CK_ULONG);
    C_EncryptMessageBegin(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG, pAssociatedData: *mut CK_BYTE, ulAssociatedDataLen: CK_ULONG);
    C_EncryptMessageNext(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG, pPlaintextPart: *mut CK_BYTE, ulPlaintextPartLen: CK_ULONG, pCiphertextPart: *mut CK_BYTE, pulCiphertextPartLen: *mut CK_ULONG, flags: CK_FLAGS);
    C_MessageEncryptFinal(hSession: CK_SESSION_HANDLE);
    C_MessageDecryptInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE);
    C_DecryptMessage(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG, pAssociatedData: *mut CK_BYTE, ulAssociatedDataLen: CK_ULONG, pCiphertext: *mut CK_BYTE, ulCiphertextLen: CK_ULONG, pPlaintext: *mut CK_BYTE, pulPlaintextLen: *mut CK_ULONG);
    C_DecryptMessageBegin(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG, pAssociatedData: *mut CK_BYTE, ulAssociatedDataLen: CK_ULONG);
    C_DecryptMessageNext(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG, pCiphertextPart: *mut CK_BYTE, ulCiphertextPartLen: CK_ULONG, pPlaintextPart: *mut CK_BYTE, pulPlaintextPartLen: *mut CK_ULONG, flags: CK_FLAGS);
    C_MessageDecryptFinal(hSession: CK_SESSION_HANDLE);
    C_MessageSignInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE);
    C_SignMessage(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG, pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pSignature: *mut CK_BYTE, pulSignatureLen: *mut CK_ULONG);
    C_SignMessageBegin(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG);
    C_SignMessageNext(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG, pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pSignature: *mut CK_BYTE, pulSignatureLen: *mut CK_ULONG);
    C_MessageSignFinal(hSession: CK_SESSION_HANDLE);
    C_MessageVerifyInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE);
    C_VerifyMessage(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG, pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pSignature: *mut CK_BYTE, ulSignatureLen: CK_ULONG);
    C_VerifyMessageBegin(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG);
    C_VerifyMessageNext(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG, pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pSignature: *mut CK_BYTE, ulSignatureLen: CK_ULONG);
    C_MessageVerifyFinal(hSession: CK_SESSION_HANDLE);
}
