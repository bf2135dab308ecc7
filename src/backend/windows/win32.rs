//! Owned handles over the certificate store API, CryptoAPI and CNG (NCrypt): each `unsafe`
//! call is in this module, next to the handle whose lifetime makes it sound. Nothing above
//! it touches a raw pointer.
//!
//! This file holds what the handles share: UTF-16 strings, lengths, and the error of a
//! failed call. The handles are in `store` (certificate stores, certificates and the
//! private key acquired through one), `cng` (NCrypt keys and providers) and `capi`
//! (CryptoAPI provider contexts).

#![allow(unsafe_code)]

mod capi;
mod cng;
mod store;

pub use capi::CapiProvider;
pub use cng::{CngPadding, NcryptKey, cng_key_names};
pub use store::{Acquired, AcquiredKey, Cert, ProvInfo, Store};

pub use super::Location;
use crate::error::{Error, Result};
use std::ptr::null;

/// A NUL-terminated UTF-16 copy of `s` for the W functions.
pub fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// The text of a NUL-terminated UTF-16 string inside a buffer the API filled; `None` for
/// a null pointer (the API's "default").
///
/// # Safety
/// `p` is null or points into the live, u16-aligned allocation that ends at `end`.
unsafe fn from_wide(p: *const u16, end: *const u16) -> Option<String> {
    if p.is_null() || p >= end {
        return None;
    }
    // SAFETY: `p` and `end` are in one allocation with `p < end` (caller and check above).
    let max = usize::try_from(unsafe { end.offset_from(p) }).ok()?;
    // SAFETY: the `max` u16s from `p` are inside the allocation.
    let all = unsafe { std::slice::from_raw_parts(p, max) };
    let len = all.iter().position(|u| *u == 0)?;
    Some(String::from_utf16_lossy(&all[..len]))
}

/// A NUL-terminated UTF-16 copy of a name, or none for the API's default (null).
fn wide_opt(s: &Option<String>) -> Option<Vec<u16>> {
    s.as_deref().map(wide)
}

fn ptr_opt(w: &Option<Vec<u16>>) -> *const u16 {
    w.as_ref().map_or(null(), Vec::as_ptr)
}

/// `u32` of a length for the API.
fn len32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::DataLenRange)
}

/// HRESULT / SECURITY_STATUS values the module tells apart.
pub const NTE_BAD_DATA: i32 = 0x8009_0005_u32.cast_signed();
pub const NTE_BAD_KEYSET: i32 = 0x8009_0016_u32.cast_signed();
pub const NTE_SILENT_CONTEXT: i32 = 0x8009_0022_u32.cast_signed();
pub const NTE_NOT_SUPPORTED: i32 = 0x8009_0029_u32.cast_signed();
pub const NTE_INVALID_PARAMETER: i32 = 0x8009_0027_u32.cast_signed();
pub const NTE_PERM: i32 = 0x8009_0010_u32.cast_signed();
pub const CRYPT_E_EXISTS: i32 = 0x8009_2005_u32.cast_signed();

/// A failed Windows call: what was done, and the code.
#[derive(Debug)]
pub struct WinError {
    pub what: String,
    pub code: i32,
}

impl WinError {
    fn last(what: &str) -> WinError {
        let code = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        WinError {
            what: what.to_owned(),
            // GetLastError gives the HRESULT for crypto failures (NTE_*), a Win32 code
            // otherwise; both are kept as the API gave them.
            code,
        }
    }

    fn status(what: &str, code: i32) -> WinError {
        WinError {
            what: what.to_owned(),
            code,
        }
    }
}

impl std::fmt::Display for WinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self.code {
            NTE_BAD_DATA => "bad data (NTE_BAD_DATA)".to_owned(),
            NTE_BAD_KEYSET => "the key container does not exist (NTE_BAD_KEYSET)".to_owned(),
            NTE_SILENT_CONTEXT => "the key needs a dialog (a PIN or consent prompt), and this module never shows one (NTE_SILENT_CONTEXT)".to_owned(),
            NTE_NOT_SUPPORTED => "not supported by the key's provider (NTE_NOT_SUPPORTED)".to_owned(),
            NTE_INVALID_PARAMETER => "a parameter the provider refused (NTE_INVALID_PARAMETER)".to_owned(),
            NTE_PERM => "access denied to the key (NTE_PERM)".to_owned(),
            code => std::io::Error::from_raw_os_error(code).to_string(),
        };
        write!(f, "{}: {text} [{:#010x}]", self.what, self.code)
    }
}

impl From<WinError> for Error {
    fn from(e: WinError) -> Error {
        match e.code {
            // The key container is gone (deleted outside the module): the object is stale.
            NTE_BAD_KEYSET => Error::ObjectGone(e.to_string()),
            _ => Error::Backend(e.to_string()),
        }
    }
}

pub type WinResult<T> = std::result::Result<T, WinError>;

fn check(ok: windows_sys::core::BOOL, what: &str) -> WinResult<()> {
    if ok != 0 {
        Ok(())
    } else {
        Err(WinError::last(what))
    }
}

fn check_status(status: i32, what: &str) -> WinResult<()> {
    if status == 0 {
        Ok(())
    } else {
        Err(WinError::status(what, status))
    }
}

/// A NUL-terminated UTF-16 string the API allocated on its own.
///
/// # Safety
/// `p` is null or a NUL-terminated UTF-16 string, aligned, valid for the call.
unsafe fn nul_terminated(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut len = 0usize;
    // SAFETY: the caller guarantees a NUL-terminated string; reading stops at its NUL.
    while unsafe { *p.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: `len` u16s were just read from `p`.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) })
}
