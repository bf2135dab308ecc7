//! RSA-OAEP labels without a leak.
//!
//! Hand-written because the `openssl` crate (0.10.82) leaks every label it sets on
//! OpenSSL 3: its `set_rsa_oaep_label` hands an `OPENSSL_malloc`ed copy to openssl-sys's
//! `EVP_PKEY_CTX_set0_rsa_oaep_label`, which is a Rust function issuing
//! `EVP_PKEY_CTX_ctrl(…, EVP_PKEY_CTRL_RSA_OAEP_LABEL, …)`; OpenSSL 3 turns that control
//! into a parameter, copies the bytes and never takes the buffer. OpenSSL 3's own
//! `EVP_PKEY_CTX_set0_rsa_oaep_label` (a real function of libcrypto 3, the system library
//! on Linux, the vendored 3.x on Windows) frees the buffer once it is copied, as "set0"
//! promises, so this calls that one.

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::pkey_ctx::PkeyCtxRef;
use std::ffi::c_int;

mod sys {
    use std::ffi::{c_int, c_void};
    unsafe extern "C" {
        /// libcrypto 3 (crypto/rsa/rsa_lib.c): on success the label is the context's and
        /// is freed with OPENSSL_free; on failure it is still the caller's.
        pub fn EVP_PKEY_CTX_set0_rsa_oaep_label(
            ctx: *mut openssl_sys::EVP_PKEY_CTX,
            label: *mut c_void,
            llen: c_int,
        ) -> c_int;
    }
}

/// Sets the OAEP label of an RSA encryption or decryption context (after
/// `encrypt_init`/`decrypt_init` and the OAEP padding). An empty label sets nothing.
pub fn set_rsa_oaep_label<T>(ctx: &mut PkeyCtxRef<T>, label: &[u8]) -> Result<(), ErrorStack> {
    if label.is_empty() {
        return Ok(());
    }
    let len = c_int::try_from(label.len()).map_err(|_| ErrorStack::get())?;
    let raw = ctx.as_ptr();
    // SAFETY: OPENSSL_malloc returns a buffer of `label.len()` bytes or NULL (checked).
    let p = unsafe { openssl_sys::OPENSSL_malloc(label.len()) };
    if p.is_null() {
        return Err(ErrorStack::get());
    }
    // SAFETY: `p` holds label.len() bytes and does not overlap `label`.
    unsafe { std::ptr::copy_nonoverlapping(label.as_ptr(), p.cast::<u8>(), label.len()) };
    // SAFETY: `raw` is the live context `ctx` borrows mutably; `p` is an OPENSSL_malloc
    // buffer of `len` bytes whose ownership passes to OpenSSL on success.
    let r = unsafe { sys::EVP_PKEY_CTX_set0_rsa_oaep_label(raw, p, len) };
    if r <= 0 {
        // SAFETY: on failure OpenSSL did not take `p`; it is freed once, here.
        unsafe { openssl_sys::OPENSSL_free(p) };
        return Err(ErrorStack::get());
    }
    Ok(())
}
