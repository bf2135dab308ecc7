//! The exported general-purpose, slot, session and object functions (§5.4–§5.7, in the
//! specification's order; the cryptographic ones are in `crypto_functions.rs`). Each
//! decodes its arguments with [`args`] and calls one method of [`Module`].

use super::args::{self, bytes, read, template, to_ulong, to_usize, write};
use super::{INTERFACES, cryptoki_fn, interface_version, module, probe};
use crate::error::{Error, Result};
use crate::module::{Module, pad};
use cryptoki_sys::*;
use std::ffi::c_void;

// ---------------------------------------------------------------------------------------
// General-purpose functions (§5.4)
// ---------------------------------------------------------------------------------------

cryptoki_fn! {
    /// §5.4.1. `pReserved`, which the specification wants NULL, may carry the path of the
    /// configuration file as a NUL-terminated string (kmsp11 and libp11 pass strings there).
    /// Neither pointer is trusted: both are read through [`probe`], so a wild one gives
    /// `CKR_ARGUMENTS_BAD`, never a fault.
    fn C_Initialize(pInitArgs: *mut c_void) {
        let mut reserved_path = None;
        let mut may_create_threads = true;
        if !pInitArgs.is_null() {
            let a = init_args(pInitArgs as usize)?;
            // Copied out by value (`{ … }`): on Windows the structure is packed, and a
            // reference to one of its fields could be misaligned.
            let callbacks = [
                { a.CreateMutex }.is_some(),
                { a.DestroyMutex }.is_some(),
                { a.LockMutex }.is_some(),
                { a.UnlockMutex }.is_some(),
            ];
            let given = callbacks.iter().filter(|c| **c).count();
            if given != 0 && given != 4 {
                return Err(Error::ArgumentsBad("mutex callbacks must be all four or none"));
            }
            // Callbacks without CKF_OS_LOCKING_OK: we lock with OS primitives only.
            if given == 4 && a.flags & CKF_OS_LOCKING_OK == 0 {
                return Err(Error::CantLock);
            }
            // CKF_LIBRARY_CANT_CREATE_OS_THREADS: directory stores need no thread, and
            // network slots then run their I/O on the caller's thread (GnuTLS sets it).
            may_create_threads = a.flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS == 0;
            if !a.pReserved.is_null() {
                reserved_path = Some(reserved_config_path(a.pReserved as usize)?);
            }
        }
        if module().is_ok() {
            return Err(Error::AlreadyInitialized);
        }
        let config = crate::config::load(reserved_path.as_deref()).inspect_err(|e| {
            crate::logging::init(None);
            tracing::error!("C_Initialize: {e}");
        })?;
        crate::logging::init(Some(&config.log));
        tracing::info!(config = %config.source, slots = config.slots.len(), "initializing");
        super::install(Module::new(config, may_create_threads)?)?;
        Ok(CKR_OK)
    }
}

/// The `CK_C_INITIALIZE_ARGS` at `addr`, copied out through [`probe`] (unaligned, as
/// packed on Windows); unreadable memory is `CKR_ARGUMENTS_BAD`.
fn init_args(addr: usize) -> Result<CK_C_INITIALIZE_ARGS> {
    let size = std::mem::size_of::<CK_C_INITIALIZE_ARGS>();
    let bytes = probe::copy(addr, size).ok_or(Error::ArgumentsBad(
        "pInitArgs does not point to readable memory",
    ))?;
    // SAFETY: `bytes` holds exactly `size_of::<CK_C_INITIALIZE_ARGS>()` bytes; every bit
    // pattern is a valid value of the struct (integers, raw pointers and `Option`s of
    // function pointers, whose zero is `None`); the read tolerates any alignment.
    Ok(unsafe { (bytes.as_ptr() as *const CK_C_INITIALIZE_ARGS).read_unaligned() })
}

/// `pReserved` as the configuration path: a readable NUL-terminated UTF-8 string of at
/// most 4096 bytes (PATH_MAX) naming an existing file; anything else is
/// `CKR_ARGUMENTS_BAD` (README, "Configuration").
fn reserved_config_path(addr: usize) -> Result<String> {
    let bytes = probe::c_string(addr, 4096).map_err(|too_long| {
        Error::ArgumentsBad(if too_long {
            "pReserved: no NUL within 4096 bytes"
        } else {
            "pReserved is neither NULL nor readable memory"
        })
    })?;
    let path =
        String::from_utf8(bytes).map_err(|_| Error::ArgumentsBad("pReserved is not UTF-8"))?;
    if !std::path::Path::new(&path).is_file() {
        return Err(Error::ArgumentsBad("pReserved names no configuration file"));
    }
    Ok(path)
}

cryptoki_fn! {
    /// §5.4.2.
    fn C_Finalize(pReserved: *mut c_void) {
        if !pReserved.is_null() {
            return Err(Error::ArgumentsBad("pReserved must be NULL"));
        }
        super::uninstall()?;
        Ok(CKR_OK)
    }
}

fn info(version: CK_VERSION) -> CK_INFO {
    let mut i = CK_INFO {
        cryptokiVersion: version,
        manufacturerID: [b' '; 32],
        flags: 0,
        libraryDescription: [b' '; 32],
        libraryVersion: CK_VERSION {
            major: env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap_or(0),
            minor: env!("CARGO_PKG_VERSION_MINOR").parse().unwrap_or(0),
        },
    };
    pad(&mut i.manufacturerID, "identify-pkcs11");
    pad(&mut i.libraryDescription, "identify-pkcs11 module");
    i
}

cryptoki_fn! {
    /// §5.4.3, through the 2.40 table.
    fn C_GetInfo(pInfo: *mut CK_INFO) {
        module()?;
        // SAFETY: pInfo is NULL or points to a writable CK_INFO.
        unsafe { write(pInfo, info(CK_VERSION { major: 2, minor: 40 }), "pInfo") }?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    /// §5.4.3, through the 3.0 interface.
    fn C_GetInfo_v3(pInfo: *mut CK_INFO) {
        module()?;
        // SAFETY: pInfo is NULL or points to a writable CK_INFO.
        unsafe { write(pInfo, info(CK_VERSION { major: 3, minor: 0 }), "pInfo") }?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    /// §5.4.4: the static 2.40 table.
    fn C_GetFunctionList(ppFunctionList: *mut *mut CK_FUNCTION_LIST) {
        let table = &super::FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST;
        // SAFETY: ppFunctionList is NULL or points to a writable pointer.
        unsafe { write(ppFunctionList, table, "ppFunctionList") }?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    /// §5.4.5.
    fn C_GetInterfaceList(pInterfacesList: *mut CK_INTERFACE, pulCount: *mut CK_ULONG) {
        let n = INTERFACES.0.len();
        if pInterfacesList.is_null() {
            // SAFETY: pulCount is NULL or writable.
            unsafe { write(pulCount, to_ulong(n)?, "pulCount") }?;
            return Ok(CKR_OK);
        }
        // SAFETY: pulCount is NULL or readable.
        let have = to_usize(unsafe { read(pulCount, "pulCount") }?)?;
        // SAFETY: as above, writable.
        unsafe { write(pulCount, to_ulong(n)?, "pulCount") }?;
        if have < n {
            return Ok(CKR_BUFFER_TOO_SMALL);
        }
        for (i, iface) in INTERFACES.0.iter().enumerate() {
            // SAFETY: the caller's list holds `have` >= n entries.
            unsafe { write(pInterfacesList.add(i), *iface, "pInterfacesList") }?;
        }
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    /// §5.4.6. NULL name and version give the default (3.0); a name or version given must
    /// match; requested flags must be offered (we offer none: not fork-safe).
    fn C_GetInterface(pInterfaceName: *mut CK_UTF8CHAR, pVersion: *mut CK_VERSION, ppInterface: *mut *mut CK_INTERFACE, flags: CK_FLAGS) {
        if ppInterface.is_null() {
            return Err(Error::ArgumentsBad("ppInterface"));
        }
        let name = if pInterfaceName.is_null() {
            None
        } else {
            // SAFETY: a non-NULL name is a NUL-terminated string; bounded read.
            Some(unsafe { args::c_string(pInterfaceName, 256) }?)
        };
        let version = if pVersion.is_null() {
            None
        } else {
            // SAFETY: non-NULL, points to a CK_VERSION.
            Some(unsafe { read(pVersion, "pVersion") }?)
        };
        let found = INTERFACES.0.iter().find(|i| {
            let v = interface_version(i);
            name.as_deref().is_none_or(|n| n == "PKCS 11")
                && version.is_none_or(|w| w.major == v.major && w.minor == v.minor)
                && flags & !i.flags == 0
        });
        let Some(found) = found else {
            return Err(Error::ArgumentsBad("no interface with that name, version and flags"));
        };
        let p = found as *const CK_INTERFACE as *mut CK_INTERFACE;
        // SAFETY: checked non-NULL above; points to a writable pointer.
        unsafe { write(ppInterface, p, "ppInterface") }?;
        Ok(CKR_OK)
    }
}

// ---------------------------------------------------------------------------------------
// Slot and token management (§5.5)
// ---------------------------------------------------------------------------------------

cryptoki_fn! {
    fn C_GetSlotList(tokenPresent: CK_BBOOL, pSlotList: *mut CK_SLOT_ID, pulCount: *mut CK_ULONG) {
        let _ = tokenPresent; // every slot has its token
        let ids = module()?.slot_ids()?;
        if pSlotList.is_null() {
            // SAFETY: pulCount is NULL or writable.
            unsafe { write(pulCount, to_ulong(ids.len())?, "pulCount") }?;
            return Ok(CKR_OK);
        }
        // SAFETY: pulCount is NULL or readable.
        let have = to_usize(unsafe { read(pulCount, "pulCount") }?)?;
        // SAFETY: writable.
        unsafe { write(pulCount, to_ulong(ids.len())?, "pulCount") }?;
        if have < ids.len() {
            return Ok(CKR_BUFFER_TOO_SMALL);
        }
        for (i, id) in ids.iter().enumerate() {
            // SAFETY: the list holds `have` >= ids.len() entries.
            unsafe { write(pSlotList.add(i), *id, "pSlotList") }?;
        }
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_GetSlotInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_SLOT_INFO) {
        let i = module()?.slot_info(slotID)?;
        // SAFETY: pInfo is NULL or writable.
        unsafe { write(pInfo, i, "pInfo") }?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_GetTokenInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_TOKEN_INFO) {
        let i = module()?.token_info(slotID)?;
        // SAFETY: pInfo is NULL or writable.
        unsafe { write(pInfo, i, "pInfo") }?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_GetMechanismList(slotID: CK_SLOT_ID, pMechanismList: *mut CK_MECHANISM_TYPE, pulCount: *mut CK_ULONG) {
        let list = module()?.mechanism_list(slotID)?;
        if pMechanismList.is_null() {
            // SAFETY: pulCount is NULL or writable.
            unsafe { write(pulCount, to_ulong(list.len())?, "pulCount") }?;
            return Ok(CKR_OK);
        }
        // SAFETY: pulCount is NULL or readable.
        let have = to_usize(unsafe { read(pulCount, "pulCount") }?)?;
        // SAFETY: writable.
        unsafe { write(pulCount, to_ulong(list.len())?, "pulCount") }?;
        if have < list.len() {
            return Ok(CKR_BUFFER_TOO_SMALL);
        }
        for (i, m) in list.iter().enumerate() {
            // SAFETY: the list holds `have` >= list.len() entries.
            unsafe { write(pMechanismList.add(i), *m, "pMechanismList") }?;
        }
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_GetMechanismInfo(slotID: CK_SLOT_ID, type_: CK_MECHANISM_TYPE, pInfo: *mut CK_MECHANISM_INFO) {
        let i = module()?.mechanism_info(slotID, type_)?;
        // SAFETY: pInfo is NULL or writable.
        unsafe { write(pInfo, i, "pInfo") }?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    /// Tokens are defined by configuration, not initialized through PKCS#11.
    fn C_InitToken(slotID: CK_SLOT_ID, pPin: *mut CK_UTF8CHAR, ulPinLen: CK_ULONG, pLabel: *mut CK_UTF8CHAR) {
        let _ = (pPin, ulPinLen, pLabel);
        module()?.slot(slotID)?;
        Err(Error::FunctionNotSupported)
    }
}

cryptoki_fn! {
    /// The PIN is a hash in the configuration (`identify-pkcs11 pin-hash`).
    fn C_InitPIN(hSession: CK_SESSION_HANDLE, pPin: *mut CK_UTF8CHAR, ulPinLen: CK_ULONG) {
        let _ = (pPin, ulPinLen);
        module()?.check_session(hSession)?;
        Err(Error::FunctionNotSupported)
    }
}

cryptoki_fn! {
    fn C_SetPIN(hSession: CK_SESSION_HANDLE, pOldPin: *mut CK_UTF8CHAR, ulOldLen: CK_ULONG, pNewPin: *mut CK_UTF8CHAR, ulNewLen: CK_ULONG) {
        let _ = (pOldPin, ulOldLen, pNewPin, ulNewLen);
        module()?.check_session(hSession)?;
        Err(Error::FunctionNotSupported)
    }
}

cryptoki_fn! {
    fn C_WaitForSlotEvent(flags: CK_FLAGS, pSlot: *mut CK_SLOT_ID, pReserved: *mut c_void) {
        let _ = (flags, pSlot, pReserved);
        module()?;
        Err(Error::FunctionNotSupported)
    }
}

// ---------------------------------------------------------------------------------------
// Session management (§5.6)
// ---------------------------------------------------------------------------------------

cryptoki_fn! {
    fn C_OpenSession(slotID: CK_SLOT_ID, flags: CK_FLAGS, pApplication: *mut c_void, Notify: CK_NOTIFY, phSession: *mut CK_SESSION_HANDLE) {
        let _ = (pApplication, Notify); // no callbacks are ever made
        if phSession.is_null() {
            return Err(Error::ArgumentsBad("phSession"));
        }
        let h = module()?.open_session(slotID, flags)?;
        // SAFETY: checked non-NULL; writable per §5.6.1.
        unsafe { write(phSession, h, "phSession") }?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_CloseSession(hSession: CK_SESSION_HANDLE) {
        module()?.close_session(hSession)?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_CloseAllSessions(slotID: CK_SLOT_ID) {
        module()?.close_all_sessions(slotID)?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_GetSessionInfo(hSession: CK_SESSION_HANDLE, pInfo: *mut CK_SESSION_INFO) {
        let i = module()?.session_info(hSession)?;
        // SAFETY: pInfo is NULL or writable.
        unsafe { write(pInfo, i, "pInfo") }?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_SessionCancel(hSession: CK_SESSION_HANDLE, flags: CK_FLAGS) {
        module()?.session_cancel(hSession, flags)?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_GetOperationState(hSession: CK_SESSION_HANDLE, pOperationState: *mut CK_BYTE, pulOperationStateLen: *mut CK_ULONG) {
        let _ = (pOperationState, pulOperationStateLen);
        module()?.check_session(hSession)?;
        Err(Error::FunctionNotSupported)
    }
}

cryptoki_fn! {
    fn C_SetOperationState(hSession: CK_SESSION_HANDLE, pOperationState: *mut CK_BYTE, ulOperationStateLen: CK_ULONG, hEncryptionKey: CK_OBJECT_HANDLE, hAuthenticationKey: CK_OBJECT_HANDLE) {
        let _ = (pOperationState, ulOperationStateLen, hEncryptionKey, hAuthenticationKey);
        module()?.check_session(hSession)?;
        Err(Error::FunctionNotSupported)
    }
}

cryptoki_fn! {
    fn C_Login(hSession: CK_SESSION_HANDLE, userType: CK_USER_TYPE, pPin: *mut CK_UTF8CHAR, ulPinLen: CK_ULONG) {
        let m = module()?;
        // SAFETY: pPin is NULL or points to ulPinLen bytes.
        let pin = unsafe { bytes(pPin, ulPinLen) }?;
        m.login(hSession, userType, pin)?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    /// v3.0: the user name is not used (one user per token).
    fn C_LoginUser(hSession: CK_SESSION_HANDLE, userType: CK_USER_TYPE, pPin: *mut CK_UTF8CHAR, ulPinLen: CK_ULONG, pUsername: *mut CK_UTF8CHAR, ulUsernameLen: CK_ULONG) {
        let m = module()?;
        // SAFETY: pUsername is NULL or points to ulUsernameLen bytes (checked, unused).
        unsafe { bytes(pUsername, ulUsernameLen) }?;
        // SAFETY: pPin is NULL or points to ulPinLen bytes.
        let pin = unsafe { bytes(pPin, ulPinLen) }?;
        m.login(hSession, userType, pin)?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_Logout(hSession: CK_SESSION_HANDLE) {
        module()?.logout(hSession)?;
        Ok(CKR_OK)
    }
}

// ---------------------------------------------------------------------------------------
// Object management (§5.7)
// ---------------------------------------------------------------------------------------

cryptoki_fn! {
    fn C_CreateObject(hSession: CK_SESSION_HANDLE, pTemplate: *mut CK_ATTRIBUTE, ulCount: CK_ULONG, phObject: *mut CK_OBJECT_HANDLE) {
        let m = module()?;
        // SAFETY: the template pointer and count come from the caller (§5.7.1).
        let t = unsafe { template(pTemplate, ulCount) }?;
        if phObject.is_null() {
            return Err(Error::ArgumentsBad("phObject"));
        }
        let h = m.create_object(hSession, &t)?;
        // SAFETY: checked non-NULL; writable.
        unsafe { write(phObject, h, "phObject") }?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    /// Objects here are not copyable (CKA_COPYABLE false).
    fn C_CopyObject(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE, pTemplate: *mut CK_ATTRIBUTE, ulCount: CK_ULONG, phNewObject: *mut CK_OBJECT_HANDLE) {
        let m = module()?;
        // SAFETY: caller's template.
        unsafe { template(pTemplate, ulCount) }?;
        let _ = phNewObject;
        m.attributes_of(hSession, hObject)?;
        Err(Error::ActionProhibited("objects of this module are not copyable".into()))
    }
}

cryptoki_fn! {
    fn C_DestroyObject(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE) {
        module()?.destroy_object(hSession, hObject)?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_GetObjectSize(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE, pulSize: *mut CK_ULONG) {
        module()?.attributes_of(hSession, hObject)?;
        // SAFETY: pulSize is NULL or writable.
        unsafe { write(pulSize, CK_UNAVAILABLE_INFORMATION, "pulSize") }?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    /// §5.7.5: every attribute of the template is processed; the worst case decides the
    /// return code; a value that does not fit is reported as CK_UNAVAILABLE_INFORMATION.
    fn C_GetAttributeValue(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE, pTemplate: *mut CK_ATTRIBUTE, ulCount: CK_ULONG) {
        let m = module()?;
        let count = to_usize(ulCount)?;
        if pTemplate.is_null() && count > 0 {
            return Err(Error::ArgumentsBad("NULL template with a count"));
        }
        let obj = m.attributes_of(hSession, hObject)?;
        let (mut sensitive, mut invalid, mut small) = (false, false, false);
        for i in 0..count {
            // SAFETY: i < count, within the caller's template array.
            let entry = unsafe { pTemplate.add(i) };
            // SAFETY: readable CK_ATTRIBUTE.
            let mut a = unsafe { read(entry, "template") }?;
            match obj.attr(a.type_) {
                crate::object::AttrLookup::Sensitive => {
                    sensitive = true;
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                }
                crate::object::AttrLookup::Invalid => {
                    invalid = true;
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                }
                crate::object::AttrLookup::Value(v) => {
                    if a.pValue.is_null() {
                        a.ulValueLen = to_ulong(v.len())?;
                    } else if to_usize(a.ulValueLen)? >= v.len() {
                        // SAFETY: pValue holds ulValueLen >= v.len() writable bytes.
                        unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), a.pValue as *mut u8, v.len()) };
                        a.ulValueLen = to_ulong(v.len())?;
                    } else {
                        small = true;
                        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    }
                }
            }
            // SAFETY: writable CK_ATTRIBUTE (the caller's template).
            unsafe { write(entry, a, "template") }?;
        }
        Ok(if sensitive {
            CKR_ATTRIBUTE_SENSITIVE
        } else if invalid {
            CKR_ATTRIBUTE_TYPE_INVALID
        } else if small {
            CKR_BUFFER_TOO_SMALL
        } else {
            CKR_OK
        })
    }
}

cryptoki_fn! {
    fn C_SetAttributeValue(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE, pTemplate: *mut CK_ATTRIBUTE, ulCount: CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's template.
        let t = unsafe { template(pTemplate, ulCount) }?;
        m.set_attributes(hSession, hObject, &t)?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_FindObjectsInit(hSession: CK_SESSION_HANDLE, pTemplate: *mut CK_ATTRIBUTE, ulCount: CK_ULONG) {
        let m = module()?;
        // SAFETY: caller's template.
        let t = unsafe { template(pTemplate, ulCount) }?;
        m.find_init(hSession, &t)?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_FindObjects(hSession: CK_SESSION_HANDLE, phObject: *mut CK_OBJECT_HANDLE, ulMaxObjectCount: CK_ULONG, pulObjectCount: *mut CK_ULONG) {
        let m = module()?;
        let max = to_usize(ulMaxObjectCount)?;
        if pulObjectCount.is_null() || (phObject.is_null() && max > 0) {
            return Err(Error::ArgumentsBad("phObject / pulObjectCount"));
        }
        let found = m.find_next(hSession, max)?;
        for (i, h) in found.iter().enumerate() {
            // SAFETY: phObject holds max >= found.len() entries.
            unsafe { write(phObject.add(i), *h, "phObject") }?;
        }
        // SAFETY: checked non-NULL.
        unsafe { write(pulObjectCount, to_ulong(found.len())?, "pulObjectCount") }?;
        Ok(CKR_OK)
    }
}

cryptoki_fn! {
    fn C_FindObjectsFinal(hSession: CK_SESSION_HANDLE) {
        module()?.find_final(hSession)?;
        Ok(CKR_OK)
    }
}
