//! The C ABI: exported `C_*` functions, the function lists (2.40 table and the 3.0
//! "PKCS 11" interface), the library state, and the one guard every call goes through.
//!
//! The guard turns a typed [`Error`] into its `CK_RV` and a panic into
//! `CKR_GENERAL_ERROR` (a panic must not unwind into C). The state is an atomically
//! swapped `Arc<Module>`: a call takes its own reference, so `C_Finalize` never frees what a
//! call in another thread still uses, and a call arriving after finalize gets
//! `CKR_CRYPTOKI_NOT_INITIALIZED`. The pid recorded at `C_Initialize` detects a forked child,
//! which gets `CKR_CRYPTOKI_NOT_INITIALIZED` until it initializes; the parent's state is then
//! leaked in the child, never dropped (its locks and threads are the parent's).
#![allow(unsafe_code)]

pub mod args;
mod crypto_functions;
mod functions;
pub(crate) mod oaep_label;
mod probe;

use crate::error::{Error, Result};
use crate::module::Module;
use arc_swap::ArcSwapOption;
use cryptoki_sys::*;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

pub use crypto_functions::*;
pub use functions::*;

static MODULE: ArcSwapOption<Module> = ArcSwapOption::const_empty();

/// The initialized module of this process.
pub(crate) fn module() -> Result<Arc<Module>> {
    let m = MODULE.load_full().ok_or(Error::NotInitialized)?;
    if m.pid != std::process::id() {
        // A forked child that has not called C_Initialize: the parent's module is not ours.
        std::mem::forget(m);
        return Err(Error::NotInitialized);
    }
    Ok(m)
}

/// Installs a freshly built module; fails if another is installed for this process.
pub(crate) fn install(new: Module) -> Result<()> {
    if let Some(old) = MODULE.load_full() {
        if old.pid == std::process::id() {
            return Err(Error::AlreadyInitialized);
        }
        // Forked child: drop nothing of the parent's (its locks may be held by threads that
        // do not exist here).
        std::mem::forget(old);
        std::mem::forget(MODULE.swap(None));
    }
    let new = Some(Arc::new(new));
    let previous = MODULE.compare_and_swap(&None::<Arc<Module>>, new);
    if previous.is_some() {
        return Err(Error::AlreadyInitialized);
    }
    Ok(())
}

/// Removes this process's module (C_Finalize).
pub(crate) fn uninstall() -> Result<()> {
    let current = module()?;
    let previous = MODULE.compare_and_swap(&Some(current.clone()), None);
    match &*previous {
        Some(p) if Arc::ptr_eq(p, &current) => {
            current.shutdown();
            Ok(())
        }
        _ => Err(Error::NotInitialized),
    }
}

/// Runs the body of a `C_*` function: errors become their code, panics become
/// `CKR_GENERAL_ERROR`.
pub(crate) fn guard(name: &'static str, body: impl FnOnce() -> Result<CK_RV>) -> CK_RV {
    let span = tracing::debug_span!("pkcs11", function = name);
    let _entered = span.enter();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(rv)) => rv,
        Ok(Err(e)) => {
            match &e {
                Error::Backend(_)
                | Error::Internal(_)
                | Error::Config(_)
                | Error::ObjectGone(_) => {
                    tracing::error!(function = name, error = %e, "failed");
                }
                _ => tracing::debug!(function = name, error = %e, "refused"),
            }
            e.rv()
        }
        Err(panic) => {
            let what = crate::error::panic_text(&*panic);
            tracing::error!(function = name, panic = %what, "panic caught at the C boundary");
            CKR_GENERAL_ERROR
        }
    }
}

/// Defines an exported `C_*` function whose body returns `Result<CK_RV>` and runs inside
/// [`guard`].
macro_rules! cryptoki_fn {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        #[unsafe(no_mangle)]
        #[allow(non_snake_case, clippy::missing_safety_doc)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> CK_RV {
            $crate::ffi::guard(stringify!($name), move || -> $crate::error::Result<CK_RV> { $body })
        }
    };
}
pub(crate) use cryptoki_fn;

/// A function table: the version, `C_GetInfo` (which reports that version), every 2.40
/// function, and the extra entries of later versions.
macro_rules! function_table {
    ($table:ident, $major:literal, $minor:literal, $get_info:ident $(, $extra:ident)* $(,)?) => {
        $table {
            version: CK_VERSION { major: $major, minor: $minor },
            C_GetInfo: Some($get_info),
            C_Initialize: Some(C_Initialize),
            C_Finalize: Some(C_Finalize),
            C_GetFunctionList: Some(C_GetFunctionList),
            C_GetSlotList: Some(C_GetSlotList),
            C_GetSlotInfo: Some(C_GetSlotInfo),
            C_GetTokenInfo: Some(C_GetTokenInfo),
            C_GetMechanismList: Some(C_GetMechanismList),
            C_GetMechanismInfo: Some(C_GetMechanismInfo),
            C_InitToken: Some(C_InitToken),
            C_InitPIN: Some(C_InitPIN),
            C_SetPIN: Some(C_SetPIN),
            C_OpenSession: Some(C_OpenSession),
            C_CloseSession: Some(C_CloseSession),
            C_CloseAllSessions: Some(C_CloseAllSessions),
            C_GetSessionInfo: Some(C_GetSessionInfo),
            C_GetOperationState: Some(C_GetOperationState),
            C_SetOperationState: Some(C_SetOperationState),
            C_Login: Some(C_Login),
            C_Logout: Some(C_Logout),
            C_CreateObject: Some(C_CreateObject),
            C_CopyObject: Some(C_CopyObject),
            C_DestroyObject: Some(C_DestroyObject),
            C_GetObjectSize: Some(C_GetObjectSize),
            C_GetAttributeValue: Some(C_GetAttributeValue),
            C_SetAttributeValue: Some(C_SetAttributeValue),
            C_FindObjectsInit: Some(C_FindObjectsInit),
            C_FindObjects: Some(C_FindObjects),
            C_FindObjectsFinal: Some(C_FindObjectsFinal),
            C_EncryptInit: Some(C_EncryptInit),
            C_Encrypt: Some(C_Encrypt),
            C_EncryptUpdate: Some(C_EncryptUpdate),
            C_EncryptFinal: Some(C_EncryptFinal),
            C_DecryptInit: Some(C_DecryptInit),
            C_Decrypt: Some(C_Decrypt),
            C_DecryptUpdate: Some(C_DecryptUpdate),
            C_DecryptFinal: Some(C_DecryptFinal),
            C_DigestInit: Some(C_DigestInit),
            C_Digest: Some(C_Digest),
            C_DigestUpdate: Some(C_DigestUpdate),
            C_DigestKey: Some(C_DigestKey),
            C_DigestFinal: Some(C_DigestFinal),
            C_SignInit: Some(C_SignInit),
            C_Sign: Some(C_Sign),
            C_SignUpdate: Some(C_SignUpdate),
            C_SignFinal: Some(C_SignFinal),
            C_SignRecoverInit: Some(C_SignRecoverInit),
            C_SignRecover: Some(C_SignRecover),
            C_VerifyInit: Some(C_VerifyInit),
            C_Verify: Some(C_Verify),
            C_VerifyUpdate: Some(C_VerifyUpdate),
            C_VerifyFinal: Some(C_VerifyFinal),
            C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
            C_VerifyRecover: Some(C_VerifyRecover),
            C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
            C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
            C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
            C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
            C_GenerateKey: Some(C_GenerateKey),
            C_GenerateKeyPair: Some(C_GenerateKeyPair),
            C_WrapKey: Some(C_WrapKey),
            C_UnwrapKey: Some(C_UnwrapKey),
            C_DeriveKey: Some(C_DeriveKey),
            C_SeedRandom: Some(C_SeedRandom),
            C_GenerateRandom: Some(C_GenerateRandom),
            C_GetFunctionStatus: Some(C_GetFunctionStatus),
            C_CancelFunction: Some(C_CancelFunction),
            C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
            $($extra: Some($extra),)*
        }
    };
}

/// The 2.40 function table (C_GetFunctionList; Java and older engines use it).
pub static FUNCTION_LIST: CK_FUNCTION_LIST = function_table!(CK_FUNCTION_LIST, 2, 40, C_GetInfo);

/// The 3.0 table, offered as interface "PKCS 11" version 3.0 (the default).
pub static FUNCTION_LIST_3_0: CK_FUNCTION_LIST_3_0 = function_table!(
    CK_FUNCTION_LIST_3_0,
    3,
    0,
    C_GetInfo_v3,
    C_GetInterfaceList,
    C_GetInterface,
    C_LoginUser,
    C_SessionCancel,
    C_MessageEncryptInit,
    C_EncryptMessage,
    C_EncryptMessageBegin,
    C_EncryptMessageNext,
    C_MessageEncryptFinal,
    C_MessageDecryptInit,
    C_DecryptMessage,
    C_DecryptMessageBegin,
    C_DecryptMessageNext,
    C_MessageDecryptFinal,
    C_MessageSignInit,
    C_SignMessage,
    C_SignMessageBegin,
    C_SignMessageNext,
    C_MessageSignFinal,
    C_MessageVerifyInit,
    C_VerifyMessage,
    C_VerifyMessageBegin,
    C_VerifyMessageNext,
    C_MessageVerifyFinal,
);

/// The interface name, NUL-terminated.
pub static INTERFACE_NAME: [u8; 8] = *b"PKCS 11\0";

/// The interface list: pointers to immutable statics only.
pub struct Interfaces(pub [CK_INTERFACE; 2]);

// SAFETY: every pointer in the list points to an immutable `static` (the name and the two
// function tables); nothing is ever written through them, so sharing across threads is sound.
unsafe impl Sync for Interfaces {}

pub static INTERFACES: Interfaces = Interfaces([
    CK_INTERFACE {
        pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &FUNCTION_LIST_3_0 as *const CK_FUNCTION_LIST_3_0 as *mut std::ffi::c_void,
        flags: 0,
    },
    CK_INTERFACE {
        pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut std::ffi::c_void,
        flags: 0,
    },
]);

/// The version field of an interface's function table (the first member of both tables).
fn interface_version(i: &CK_INTERFACE) -> CK_VERSION {
    if std::ptr::eq(
        i.pFunctionList as *const CK_FUNCTION_LIST_3_0,
        &FUNCTION_LIST_3_0,
    ) {
        FUNCTION_LIST_3_0.version
    } else {
        FUNCTION_LIST.version
    }
}
