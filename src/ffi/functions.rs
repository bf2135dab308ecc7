//! The exported functions, in the order of the specification's chapter 5. Each decodes its
//! arguments with [`args`] and calls one method of [`Module`].

use super::args::{self, bytes, capacity, output, read, template, to_ulong, to_usize, write};
use super::{INTERFACES, cryptoki_fn, interface_version, module, probe};
use crate::error::{Error, Result};
use crate::module::{CryptSide, Module, SignSide, pad};
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
