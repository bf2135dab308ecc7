//! Edge cases of the C ABI, called exactly as a C caller would (raw pointers, lengths,
//! handles), in process. The module is process-global, so the tests take turns.

// Calling a C ABI with raw pointers is what this test is about.
#![allow(unsafe_code)]
// Each call passes pointers this file owns or deliberate NULLs, as the comments beside the
// calls say; rustfmt moves those comments away from the blocks clippy checks.
#![allow(clippy::undocumented_unsafe_blocks, clippy::cast_possible_truncation)]

mod harness;

use cryptoki_sys::*;
use harness::FixtureStore;
use identify_pkcs11::ffi::*;
use std::ptr::{null, null_mut};
use std::sync::{Mutex, MutexGuard};

static TURN: Mutex<()> = Mutex::new(());

/// An initialized module over a fixture store, finalized on drop.
struct Loaded {
    _turn: MutexGuard<'static, ()>,
    _store: FixtureStore,
    slot: CK_SLOT_ID,
}

fn config_args(path: &std::ffi::CStr) -> CK_C_INITIALIZE_ARGS {
    CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: CKF_OS_LOCKING_OK,
        pReserved: path.as_ptr() as *mut _,
    }
}

fn load(extra: &str) -> Loaded {
    let turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let store = FixtureStore::new("fixtures", extra);
    let path = std::ffi::CString::new(store.config.to_str().unwrap()).unwrap();
    let mut args = config_args(&path);
    // SAFETY: valid arguments; the config path outlives the call.
    assert_eq!(
        unsafe { C_Initialize(&mut args as *mut _ as *mut _) },
        CKR_OK
    );
    Loaded {
        _turn: turn,
        _store: store,
        slot: 0,
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        // SAFETY: NULL is the required argument.
        unsafe { C_Finalize(null_mut()) };
    }
}

fn open(slot: CK_SLOT_ID, rw: bool) -> CK_SESSION_HANDLE {
    let mut h = 0;
    let flags = CKF_SERIAL_SESSION | if rw { CKF_RW_SESSION } else { 0 };
    // SAFETY: valid out-pointer.
    assert_eq!(
        unsafe { C_OpenSession(slot, flags, null_mut(), None, &mut h) },
        CKR_OK
    );
    assert_ne!(h, CK_INVALID_HANDLE);
    h
}

fn login(s: CK_SESSION_HANDLE, pin: &str) -> CK_RV {
    // SAFETY: the PIN buffer and its length.
    unsafe { C_Login(s, CKU_USER, pin.as_ptr() as *mut _, pin.len() as CK_ULONG) }
}

fn find(s: CK_SESSION_HANDLE, class: CK_OBJECT_CLASS, label: &str) -> Vec<CK_OBJECT_HANDLE> {
    let mut class = class;
    let mut t = [
        CK_ATTRIBUTE {
            type_: CKA_CLASS,
            pValue: &mut class as *mut _ as *mut _,
            ulValueLen: std::mem::size_of::<CK_OBJECT_CLASS>() as CK_ULONG,
        },
        CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: label.as_ptr() as *mut _,
            ulValueLen: label.len() as CK_ULONG,
        },
    ];
    let mut out = [0 as CK_OBJECT_HANDLE; 16];
    let mut n = 0;
    // SAFETY: template, output array and count are valid.
    unsafe {
        assert_eq!(C_FindObjectsInit(s, t.as_mut_ptr(), 2), CKR_OK);
        assert_eq!(C_FindObjects(s, out.as_mut_ptr(), 16, &mut n), CKR_OK);
        assert_eq!(C_FindObjectsFinal(s), CKR_OK);
    }
    out[..n as usize].to_vec()
}

fn mech(m: CK_MECHANISM_TYPE) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism: m,
        pParameter: null_mut(),
        ulParameterLen: 0,
    }
}

fn sign_init(s: CK_SESSION_HANDLE, m: CK_MECHANISM_TYPE, key: CK_OBJECT_HANDLE) -> CK_RV {
    let mut m = mech(m);
    // SAFETY: valid mechanism.
    unsafe { C_SignInit(s, &mut m, key) }
}

fn sign(s: CK_SESSION_HANDLE, data: &[u8], out: Option<&mut Vec<u8>>, len: &mut CK_ULONG) -> CK_RV {
    let p = match out {
        Some(v) => v.as_mut_ptr(),
        None => null_mut(),
    };
    // SAFETY: data buffer and (when given) an output buffer of at least *len bytes.
    unsafe { C_Sign(s, data.as_ptr() as *mut _, data.len() as CK_ULONG, p, len) }
}

#[test]
fn initialize_and_finalize_rules() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let store = FixtureStore::new("fixtures", "");
    let path = std::ffi::CString::new(store.config.to_str().unwrap()).unwrap();
    let mut n = 0;
    // SAFETY (whole test): every pointer passed is valid or deliberately NULL.
    unsafe {
        // Before initialization: only the function-list entry points work.
        assert_eq!(
            C_GetSlotList(CK_TRUE, null_mut(), &mut n),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
        assert_eq!(C_Finalize(null_mut()), CKR_CRYPTOKI_NOT_INITIALIZED);
        let mut list: *mut CK_FUNCTION_LIST = null_mut();
        assert_eq!(C_GetFunctionList(&mut list), CKR_OK);
        assert!(std::ptr::eq(list, &FUNCTION_LIST));
        assert_eq!(C_GetFunctionList(null_mut()), CKR_ARGUMENTS_BAD);

        // Mutex callbacks: all four or none; without CKF_OS_LOCKING_OK we cannot use them.
        unsafe extern "C" fn create(_: *mut *mut std::ffi::c_void) -> CK_RV {
            CKR_OK
        }
        unsafe extern "C" fn other(_: *mut std::ffi::c_void) -> CK_RV {
            CKR_OK
        }
        let mut args = config_args(&path);
        args.CreateMutex = Some(create);
        assert_eq!(
            C_Initialize(&mut args as *mut _ as *mut _),
            CKR_ARGUMENTS_BAD
        );
        args.DestroyMutex = Some(other);
        args.LockMutex = Some(other);
        args.UnlockMutex = Some(other);
        args.flags = 0;
        assert_eq!(C_Initialize(&mut args as *mut _ as *mut _), CKR_CANT_LOCK);
        // With the flag, OS locking is used; the library needs no threads of its own.
        args.flags = CKF_OS_LOCKING_OK | CKF_LIBRARY_CANT_CREATE_OS_THREADS;
        assert_eq!(C_Initialize(&mut args as *mut _ as *mut _), CKR_OK);
        assert_eq!(
            C_Initialize(&mut args as *mut _ as *mut _),
            CKR_CRYPTOKI_ALREADY_INITIALIZED
        );
        assert_eq!(C_Finalize(std::ptr::dangling_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(C_Finalize(null_mut()), CKR_OK);
        assert_eq!(C_Finalize(null_mut()), CKR_CRYPTOKI_NOT_INITIALIZED);

        // pReserved is read without trusting it (issue 12): a wild pointer, a string
        // without a NUL within 4096 bytes or one naming no file is CKR_ARGUMENTS_BAD; so
        // is a wild pInitArgs. None of them faults, and the library stays uninitialized.
        let mut args = config_args(&path);
        args.pReserved = std::ptr::without_provenance_mut(1); // (void *)1
        assert_eq!(
            C_Initialize(&mut args as *mut _ as *mut _),
            CKR_ARGUMENTS_BAD
        );
        args.pReserved = std::ptr::without_provenance_mut(usize::MAX);
        assert_eq!(
            C_Initialize(&mut args as *mut _ as *mut _),
            CKR_ARGUMENTS_BAD
        );
        let no_nul = vec![b'a'; 5000];
        args.pReserved = no_nul.as_ptr() as *mut _;
        assert_eq!(
            C_Initialize(&mut args as *mut _ as *mut _),
            CKR_ARGUMENTS_BAD
        );
        let missing = std::ffi::CString::new("/nonexistent/identify-pkcs11.toml").unwrap();
        let mut args = config_args(&missing);
        assert_eq!(
            C_Initialize(&mut args as *mut _ as *mut _),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_Initialize(std::ptr::without_provenance_mut(1)),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_GetSlotList(CK_TRUE, null_mut(), &mut n),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );

        // A configuration mistake fails C_Initialize and leaves the library uninitialized.
        let bad = store.dir.path().join("bad.toml");
        std::fs::write(
            &bad,
            "[[slot]]\nlabel = \"x\"\nkind = \"cert-store\"\npath = \"/nonexistent\"\n",
        )
        .unwrap();
        let bad_path = std::ffi::CString::new(bad.to_str().unwrap()).unwrap();
        let mut args = config_args(&bad_path);
        assert_eq!(
            C_Initialize(&mut args as *mut _ as *mut _),
            CKR_FUNCTION_FAILED
        );
        assert_eq!(
            C_GetSlotList(CK_TRUE, null_mut(), &mut n),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );

        // NULL pInitArgs: the configuration comes from the environment variable.
        let mut args = config_args(&path);
        assert_eq!(C_Initialize(&mut args as *mut _ as *mut _), CKR_OK);
        assert_eq!(C_GetSlotList(CK_TRUE, null_mut(), &mut n), CKR_OK);
        assert_eq!(n, 1);
        assert_eq!(
            C_GetSlotList(CK_TRUE, null_mut(), null_mut()),
            CKR_ARGUMENTS_BAD
        );
        let mut slots = [0 as CK_SLOT_ID; 1];
        let mut zero = 0;
        assert_eq!(
            C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut zero),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(zero, 1);
        assert_eq!(C_Finalize(null_mut()), CKR_OK);
    }
}

#[test]
fn handles_are_not_reused_across_reinitialization() {
    let (first_session, first_object) = {
        let m = load("");
        let s = open(m.slot, false);
        (s, find(s, CKO_PRIVATE_KEY, "rsa2048")[0])
    };
    // Another application in the process kept those handles over a C_Finalize and
    // C_Initialize: they must not name new sessions or objects.
    let m = load("");
    let s = open(m.slot, false);
    assert_ne!(s, first_session);
    let key = find(s, CKO_PRIVATE_KEY, "rsa2048")[0];
    assert_ne!(key, first_object);
    let mut info: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    assert_eq!(
        unsafe { C_GetSessionInfo(first_session, &mut info) },
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        sign_init(s, CKM_SHA256_RSA_PKCS, first_object),
        CKR_KEY_HANDLE_INVALID
    );
}

#[test]
fn digest_two_calls_and_cancel() {
    let m = load("");
    let s = open(m.slot, false);
    let mut mech = mech(CKM_SHA256);
    // SAFETY (whole block): valid buffers and lengths.
    unsafe {
        assert_eq!(C_DigestInit(s, &mut mech), CKR_OK);
        assert_eq!(C_DigestInit(s, &mut mech), CKR_OPERATION_ACTIVE);
        // NULL mechanism cancels.
        assert_eq!(C_DigestInit(s, null_mut()), CKR_OK);
        let mut len: CK_ULONG = 0;
        assert_eq!(
            C_DigestFinal(s, null_mut(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(C_DigestInit(s, &mut mech), CKR_OK);
        assert_eq!(C_DigestUpdate(s, b"ab".as_ptr() as *mut _, 2), CKR_OK);
        assert_eq!(C_DigestUpdate(s, b"c".as_ptr() as *mut _, 1), CKR_OK);
        let mut out = [0u8; 4];
        let mut len: CK_ULONG = 4;
        assert_eq!(
            C_DigestFinal(s, out.as_mut_ptr(), &mut len),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 32);
        let mut out = [0u8; 32];
        assert_eq!(C_DigestFinal(s, out.as_mut_ptr(), &mut len), CKR_OK);
        assert_eq!(out.as_slice(), openssl::sha::sha256(b"abc").as_slice());
    }
}

#[test]
fn interfaces_and_function_tables() {
    // SAFETY (whole test): valid pointers or deliberate NULLs.
    unsafe {
        let mut n = 0;
        assert_eq!(C_GetInterfaceList(null_mut(), &mut n), CKR_OK);
        assert_eq!(n, 2);
        let mut list = [CK_INTERFACE {
            pInterfaceName: null_mut(),
            pFunctionList: null_mut(),
            flags: 0,
        }; 2];
        let mut one = 1;
        assert_eq!(
            C_GetInterfaceList(list.as_mut_ptr(), &mut one),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(one, 2);
        assert_eq!(C_GetInterfaceList(list.as_mut_ptr(), &mut n), CKR_OK);
        assert_eq!(
            C_GetInterfaceList(list.as_mut_ptr(), null_mut()),
            CKR_ARGUMENTS_BAD
        );

        let mut iface: *mut CK_INTERFACE = null_mut();
        assert_eq!(
            C_GetInterface(null_mut(), null_mut(), &mut iface, 0),
            CKR_OK
        );
        let default = &*iface;
        let v3 = &*(default.pFunctionList as *const CK_FUNCTION_LIST_3_0);
        assert_eq!((v3.version.major, v3.version.minor), (3, 0));

        let mut v240 = CK_VERSION {
            major: 2,
            minor: 40,
        };
        let name = c"PKCS 11";
        assert_eq!(
            C_GetInterface(name.as_ptr() as *mut _, &mut v240, &mut iface, 0),
            CKR_OK
        );
        let v2 = &*((*iface).pFunctionList as *const CK_FUNCTION_LIST);
        assert_eq!((v2.version.major, v2.version.minor), (2, 40));

        let wrong = c"Vendor";
        assert_eq!(
            C_GetInterface(wrong.as_ptr() as *mut _, null_mut(), &mut iface, 0),
            CKR_ARGUMENTS_BAD
        );
        let mut v9 = CK_VERSION { major: 9, minor: 0 };
        assert_eq!(
            C_GetInterface(null_mut(), &mut v9, &mut iface, 0),
            CKR_ARGUMENTS_BAD
        );
        // We do not claim fork safety.
        assert_eq!(
            C_GetInterface(null_mut(), null_mut(), &mut iface, CKF_INTERFACE_FORK_SAFE),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_GetInterface(null_mut(), null_mut(), null_mut(), 0),
            CKR_ARGUMENTS_BAD
        );

        // Every entry of both tables is a real function: a table is a version followed by
        // function pointers, none of them NULL.
        fn all_set<T>(table: &T) -> bool {
            let words = (std::mem::size_of::<T>() - 8) / std::mem::size_of::<usize>();
            // SAFETY: T is a repr(C) function table: a CK_VERSION padded to 8 bytes, then
            // `words` function pointers, each pointer-sized.
            #[allow(
                clippy::cast_ptr_alignment,
                reason = "8 bytes into a repr(C) table of pointers is pointer-aligned"
            )]
            let fns = unsafe {
                std::slice::from_raw_parts(
                    (table as *const T as *const u8).add(8) as *const usize,
                    words,
                )
            };
            fns.iter().all(|p| *p != 0)
        }
        assert!(all_set(&FUNCTION_LIST));
        assert!(all_set(&FUNCTION_LIST_3_0));
    }
}

#[test]
fn get_attribute_value_processes_every_attribute() {
    let m = load("");
    let s = open(m.slot, false);
    let key = find(s, CKO_PRIVATE_KEY, "rsa2048")[0];
    let mut small = [0u8; 1];
    let mut t = [
        CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: null_mut(),
            ulValueLen: 0,
        },
        CK_ATTRIBUTE {
            type_: CKA_PRIVATE_EXPONENT,
            pValue: null_mut(),
            ulValueLen: 0,
        },
        CK_ATTRIBUTE {
            type_: 0x0dea_dbee,
            pValue: null_mut(),
            ulValueLen: 0,
        },
        CK_ATTRIBUTE {
            type_: CKA_MODULUS,
            pValue: small.as_mut_ptr() as *mut _,
            ulValueLen: 1,
        },
        CK_ATTRIBUTE {
            type_: CKA_KEY_TYPE,
            pValue: null_mut(),
            ulValueLen: 0,
        },
    ];
    // SAFETY: valid template.
    let rv = unsafe { C_GetAttributeValue(s, key, t.as_mut_ptr(), t.len() as CK_ULONG) };
    assert!(
        [
            CKR_ATTRIBUTE_SENSITIVE,
            CKR_ATTRIBUTE_TYPE_INVALID,
            CKR_BUFFER_TOO_SMALL
        ]
        .contains(&rv),
        "{rv:#x}"
    );
    assert_eq!({ t[0].ulValueLen }, 7, "label length, still processed");
    assert_eq!({ t[1].ulValueLen }, CK_UNAVAILABLE_INFORMATION, "sensitive");
    assert_eq!(
        { t[2].ulValueLen },
        CK_UNAVAILABLE_INFORMATION,
        "unknown type"
    );
    assert_eq!(
        { t[3].ulValueLen },
        CK_UNAVAILABLE_INFORMATION,
        "too small: not the needed length"
    );
    assert_eq!(small[0], 0, "nothing written into a short buffer");
    assert_eq!(t[4].ulValueLen as usize, std::mem::size_of::<CK_ULONG>());

    // Only a short buffer: CKR_BUFFER_TOO_SMALL.
    let mut t = [CK_ATTRIBUTE {
        type_: CKA_MODULUS,
        pValue: small.as_mut_ptr() as *mut _,
        ulValueLen: 1,
    }];
    // SAFETY: valid template.
    assert_eq!(
        unsafe { C_GetAttributeValue(s, key, t.as_mut_ptr(), 1) },
        CKR_BUFFER_TOO_SMALL
    );
    // Bad arguments and handles.
    // SAFETY: deliberate NULL template with a count.
    assert_eq!(
        unsafe { C_GetAttributeValue(s, key, null_mut(), 1) },
        CKR_ARGUMENTS_BAD
    );
    // SAFETY: empty template.
    assert_eq!(
        unsafe { C_GetAttributeValue(s, key, null_mut(), 0) },
        CKR_OK
    );
    // SAFETY: invalid handles are values, not pointers.
    unsafe {
        assert_eq!(
            C_GetAttributeValue(s, 0, t.as_mut_ptr(), 1),
            CKR_OBJECT_HANDLE_INVALID
        );
        assert_eq!(
            C_GetAttributeValue(s, 0xffff_ff00, t.as_mut_ptr(), 1),
            CKR_OBJECT_HANDLE_INVALID
        );
        assert_eq!(
            C_GetAttributeValue(0, key, t.as_mut_ptr(), 1),
            CKR_SESSION_HANDLE_INVALID
        );
    }
}

#[test]
fn two_call_buffers_and_operation_state() {
    let m = load("");
    let s = open(m.slot, false);
    let key = find(s, CKO_PRIVATE_KEY, "rsa2048")[0];
    let cert = find(s, CKO_CERTIFICATE, "rsa2048")[0];
    let data = b"two calls";

    // SAFETY: a sign call without an operation.
    let mut len: CK_ULONG = 0;
    assert_eq!(sign(s, data, None, &mut len), CKR_OPERATION_NOT_INITIALIZED);
    assert_eq!(sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
    assert_eq!(sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OPERATION_ACTIVE);
    // Size query: the length, operation stays active.
    assert_eq!(sign(s, data, None, &mut len), CKR_OK);
    assert_eq!(len, 256);
    // Short buffer: exact length, operation stays active.
    let mut buf = vec![0u8; 10];
    let mut short: CK_ULONG = 10;
    assert_eq!(
        sign(s, data, Some(&mut buf), &mut short),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(short, 256);
    let mut buf = vec![0u8; 300];
    let mut len: CK_ULONG = 300;
    assert_eq!(sign(s, data, Some(&mut buf), &mut len), CKR_OK);
    assert_eq!(len, 256);
    // Finished: no operation any more.
    assert_eq!(
        sign(s, data, Some(&mut buf), &mut len),
        CKR_OPERATION_NOT_INITIALIZED
    );

    // Any other error ends the operation: CKM_RSA_PKCS input longer than k - 11.
    assert_eq!(sign_init(s, CKM_RSA_PKCS, key), CKR_OK);
    let mut len: CK_ULONG = 300;
    assert_eq!(
        sign(s, &[1u8; 250], Some(&mut buf), &mut len),
        CKR_DATA_LEN_RANGE
    );
    assert_eq!(
        sign(s, &[1u8; 32], Some(&mut buf), &mut len),
        CKR_OPERATION_NOT_INITIALIZED
    );

    // A NULL mechanism cancels.
    assert_eq!(sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
    // SAFETY: NULL mechanism is the cancel request.
    assert_eq!(unsafe { C_SignInit(s, null_mut(), key) }, CKR_OK);
    assert_eq!(sign(s, data, None, &mut len), CKR_OPERATION_NOT_INITIALIZED);

    // Wrong handles and kinds.
    assert_eq!(
        sign_init(s, CKM_SHA256_RSA_PKCS, cert),
        CKR_KEY_HANDLE_INVALID
    );
    assert_eq!(sign_init(s, CKM_SHA256_RSA_PKCS, 0), CKR_KEY_HANDLE_INVALID);
    assert_eq!(sign_init(s, CKM_ECDSA, key), CKR_KEY_TYPE_INCONSISTENT);
    assert_eq!(sign_init(s, CKM_MD5, key), CKR_MECHANISM_INVALID);
    assert_eq!(
        sign_init(s, CKM_RSA_PKCS_PSS, key),
        CKR_MECHANISM_PARAM_INVALID
    );

    // NULL buffers with lengths, NULL length pointers.
    assert_eq!(sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
    // SAFETY: deliberate NULL input with a length.
    assert_eq!(
        unsafe { C_Sign(s, null_mut(), 10, null_mut(), &mut len) },
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
    // SAFETY: deliberate NULL length pointer.
    assert_eq!(
        unsafe { C_Sign(s, data.as_ptr() as *mut _, 9, null_mut(), null_mut()) },
        CKR_ARGUMENTS_BAD
    );

    // Multi-part, then C_Sign is refused; single-part mechanisms refuse C_SignUpdate.
    assert_eq!(sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
    // SAFETY: valid buffers.
    unsafe {
        assert_eq!(C_SignUpdate(s, data.as_ptr() as *mut _, 9), CKR_OK);
        let mut len: CK_ULONG = 0;
        assert_eq!(C_SignFinal(s, null_mut(), &mut len), CKR_OK);
        assert_eq!(len, 256);
        let mut buf = vec![0u8; 256];
        assert_eq!(C_SignFinal(s, buf.as_mut_ptr(), &mut len), CKR_OK);
    }
    assert_eq!(sign_init(s, CKM_RSA_PKCS, key), CKR_OK);
    // SAFETY: valid buffer.
    assert_eq!(
        unsafe { C_SignUpdate(s, data.as_ptr() as *mut _, 9) },
        CKR_FUNCTION_NOT_SUPPORTED
    );
}

#[test]
fn decrypt_short_buffer_keeps_the_result() {
    let m = load("");
    let s = open(m.slot, false);
    let key = find(s, CKO_PRIVATE_KEY, "rsa2048")[0];
    let cert = harness::fixture_cert("rsa2048");
    let rsa = cert.public_key().unwrap().rsa().unwrap();
    let mut ct = vec![0u8; 256];
    rsa.public_encrypt(b"hello", &mut ct, openssl::rsa::Padding::PKCS1)
        .unwrap();
    let mut m = mech(CKM_RSA_PKCS);
    // SAFETY (whole block): valid buffers and lengths.
    unsafe {
        assert_eq!(C_DecryptInit(s, &mut m, key), CKR_OK);
        let mut len: CK_ULONG = 0;
        assert_eq!(
            C_Decrypt(s, ct.as_mut_ptr(), 256, null_mut(), &mut len),
            CKR_OK
        );
        assert_eq!(
            len, 245,
            "an upper bound from the key size, without decrypting"
        );
        let mut out = [0u8; 2];
        let mut len: CK_ULONG = 2;
        assert_eq!(
            C_Decrypt(s, ct.as_mut_ptr(), 256, out.as_mut_ptr(), &mut len),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 5, "the exact length once decrypted");
        let mut out = [0u8; 5];
        assert_eq!(
            C_Decrypt(s, ct.as_mut_ptr(), 256, out.as_mut_ptr(), &mut len),
            CKR_OK
        );
        assert_eq!(&out, b"hello");
        // Wrong ciphertext length ends the operation.
        assert_eq!(C_DecryptInit(s, &mut m, key), CKR_OK);
        let mut len: CK_ULONG = 256;
        let mut out = [0u8; 256];
        assert_eq!(
            C_Decrypt(s, ct.as_mut_ptr(), 255, out.as_mut_ptr(), &mut len),
            CKR_ENCRYPTED_DATA_LEN_RANGE
        );
        assert_eq!(
            C_Decrypt(s, ct.as_mut_ptr(), 256, out.as_mut_ptr(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );
        // Garbage ciphertext: a padding error, never the plaintext of something else.
        assert_eq!(C_DecryptInit(s, &mut m, key), CKR_OK);
        let mut junk = vec![0x55u8; 256];
        assert_eq!(
            C_Decrypt(s, junk.as_mut_ptr(), 256, out.as_mut_ptr(), &mut len),
            CKR_ENCRYPTED_DATA_INVALID
        );
    }
}

#[test]
fn null_pointers_and_huge_lengths() {
    let m = load("");
    let s = open(m.slot, true);
    let key = find(s, CKO_PRIVATE_KEY, "rsa2048")[0];
    // SAFETY (whole block): deliberate NULLs and lengths the module must refuse.
    unsafe {
        assert_eq!(
            C_OpenSession(m.slot, CKF_SERIAL_SESSION, null_mut(), None, null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_OpenSession(m.slot, 0, null_mut(), None, &mut 0),
            CKR_SESSION_PARALLEL_NOT_SUPPORTED
        );
        assert_eq!(
            C_OpenSession(77, CKF_SERIAL_SESSION, null_mut(), None, &mut 0),
            CKR_SLOT_ID_INVALID
        );
        assert_eq!(C_FindObjectsInit(s, null_mut(), 3), CKR_ARGUMENTS_BAD);
        assert_eq!(
            C_FindObjectsInit(s, std::ptr::dangling_mut(), CK_ULONG::MAX),
            CKR_ARGUMENTS_BAD
        );
        let mut a = CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: null_mut(),
            ulValueLen: 5,
        };
        assert_eq!(C_FindObjectsInit(s, &mut a, 1), CKR_ARGUMENTS_BAD);
        assert_eq!(C_FindObjects(s, null_mut(), 1, &mut 0), CKR_ARGUMENTS_BAD);
        assert_eq!(
            C_FindObjects(s, [0; 1].as_mut_ptr(), 1, &mut 0),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(C_GenerateRandom(s, null_mut(), 16), CKR_ARGUMENTS_BAD);
        assert_eq!(C_GenerateRandom(s, null_mut(), 0), CKR_OK);
        let mut r = [0u8; 32];
        assert_eq!(C_GenerateRandom(s, r.as_mut_ptr(), 32), CKR_OK);
        assert_ne!(r, [0u8; 32]);
        assert_eq!(
            C_GenerateRandom(s, r.as_mut_ptr(), CK_ULONG::MAX),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_SeedRandom(s, r.as_mut_ptr(), 4),
            CKR_RANDOM_SEED_NOT_SUPPORTED
        );
        let mut m2 = mech(CKM_SHA256_RSA_PKCS);
        assert_eq!(C_SignInit(s, &mut m2, key), CKR_OK);
        let mut len: CK_ULONG = 0;
        assert_eq!(
            C_Sign(
                s,
                std::ptr::dangling_mut(),
                CK_ULONG::MAX,
                null_mut(),
                &mut len
            ),
            CKR_ARGUMENTS_BAD
        );
        // OAEP with a wrong parameter size is a parameter error.
        let mut params = [0u8; 3];
        let mut m3 = CK_MECHANISM {
            mechanism: CKM_RSA_PKCS_OAEP,
            pParameter: params.as_mut_ptr() as *mut _,
            ulParameterLen: 3,
        };
        assert_eq!(C_DecryptInit(s, &mut m3, key), CKR_MECHANISM_PARAM_INVALID);
        assert_eq!(C_GetTokenInfo(m.slot, null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(
            C_GetMechanismInfo(m.slot, CKM_MD5, &mut std::mem::zeroed()),
            CKR_MECHANISM_INVALID
        );
        // Unsupported functions say so, after checking the session.
        assert_eq!(C_DigestKey(s, key), CKR_FUNCTION_NOT_SUPPORTED);
        assert_eq!(C_DigestKey(0, key), CKR_SESSION_HANDLE_INVALID);
        assert_eq!(
            C_MessageSignInit(s, null_mut(), key),
            CKR_FUNCTION_NOT_SUPPORTED
        );
        assert_eq!(
            C_WrapKey(s, null_mut(), key, key, null_mut(), null_mut()),
            CKR_FUNCTION_NOT_SUPPORTED
        );
        let _ = null::<u8>();
    }
}

#[test]
fn session_handles_and_login_are_per_application() {
    let hash = identify_pkcs11::admin::hash_pin(b"4321").unwrap();
    let m = load(&format!("pin_hash = {hash:?}"));
    let a = open(m.slot, false);
    let b = open(m.slot, true);
    // Private objects are hidden until login.
    assert!(find(a, CKO_PRIVATE_KEY, "rsa2048").is_empty());
    assert_eq!(login(a, "0000"), CKR_PIN_INCORRECT);
    assert_eq!(login(a, "4321"), CKR_OK);
    assert_eq!(login(b, "4321"), CKR_USER_ALREADY_LOGGED_IN);
    let mut info: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { C_GetSessionInfo(b, &mut info) }, CKR_OK);
    assert_eq!(
        { info.state },
        CKS_RW_USER_FUNCTIONS,
        "login on one session covers the others"
    );
    let before = find(b, CKO_PRIVATE_KEY, "rsa2048");
    assert_eq!(before.len(), 1);
    // SAFETY: handles are values.
    unsafe {
        assert_eq!(C_Logout(b), CKR_OK);
        assert_eq!(C_Logout(a), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(C_GetSessionInfo(a, &mut info), CKR_OK);
    }
    assert_eq!({ info.state }, CKS_RO_PUBLIC_SESSION);
    // SAFETY: the PIN pointer/length pair.
    assert_eq!(
        unsafe { C_Login(a, CKU_SO, b"4321".as_ptr() as *mut _, 4) },
        CKR_USER_TYPE_INVALID
    );
    // After C_Logout the private key's old handle stays invalid, also after a new login.
    assert_eq!(login(a, "4321"), CKR_OK);
    let new = find(a, CKO_PRIVATE_KEY, "rsa2048");
    assert_eq!(new.len(), 1);
    assert_ne!(new, before, "a private handle survived C_Logout");
    assert_eq!(class_of(a, before[0]), CKR_OBJECT_HANDLE_INVALID);
    // Closing every session logs out; handles are never reused.
    // SAFETY: handles are values.
    unsafe {
        assert_eq!(C_CloseAllSessions(m.slot), CKR_OK);
        assert_eq!(C_CloseSession(a), CKR_SESSION_HANDLE_INVALID);
    }
    let c = open(m.slot, false);
    assert!(c != a && c != b);
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { C_GetSessionInfo(c, &mut info) }, CKR_OK);
    assert_eq!({ info.state }, CKS_RO_PUBLIC_SESSION);
    // That implicit logout also retired the private key's handle.
    assert_eq!(login(c, "4321"), CKR_OK);
    let after = find(c, CKO_PRIVATE_KEY, "rsa2048");
    assert_eq!(after.len(), 1);
    assert_ne!(
        after, new,
        "a private handle survived the logout of closing all sessions"
    );
    assert_eq!(class_of(c, new[0]), CKR_OBJECT_HANDLE_INVALID);
}

/// Login throttling: wrong PINs in a row show CKF_USER_PIN_COUNT_LOW, then
/// CKF_USER_PIN_FINAL_TRY, then lock the slot (CKF_USER_PIN_LOCKED, CKR_PIN_LOCKED even for
/// the right PIN) until the lockout ends; a correct PIN resets the count.
#[test]
fn wrong_pins_lock_the_slot_for_its_lockout() {
    let hash = identify_pkcs11::admin::hash_pin(b"4321").unwrap();
    let m = load(&format!(
        "pin_hash = {hash:?}\npin_tries = 3\npin_lockout_seconds = 2"
    ));
    let a = open(m.slot, false);
    let pin_flags = || {
        let mut info: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
        // SAFETY: valid out-pointer.
        assert_eq!(unsafe { C_GetTokenInfo(m.slot, &mut info) }, CKR_OK);
        let flags = info.flags;
        flags & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED)
    };
    assert_eq!(pin_flags(), 0);
    // A correct PIN resets the count.
    assert_eq!(login(a, "0000"), CKR_PIN_INCORRECT);
    assert_eq!(pin_flags(), CKF_USER_PIN_COUNT_LOW);
    assert_eq!(login(a, "4321"), CKR_OK);
    assert_eq!(pin_flags(), 0);
    // SAFETY: a session handle.
    assert_eq!(unsafe { C_Logout(a) }, CKR_OK);

    assert_eq!(login(a, "0000"), CKR_PIN_INCORRECT);
    assert_eq!(login(a, "1111"), CKR_PIN_INCORRECT);
    assert_eq!(pin_flags(), CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY);
    assert_eq!(login(a, "2222"), CKR_PIN_INCORRECT);
    assert_eq!(pin_flags(), CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_LOCKED);
    assert_eq!(
        login(a, "4321"),
        CKR_PIN_LOCKED,
        "the right PIN while locked"
    );
    // The lockout (2 s) ends: wait for the flag, bounded far above it.
    let t = std::time::Instant::now();
    while pin_flags() & CKF_USER_PIN_LOCKED != 0 {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(60),
            "never unlocked"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        t.elapsed() >= std::time::Duration::from_secs(1),
        "unlocked early"
    );
    assert_eq!(pin_flags(), 0);
    assert_eq!(login(a, "4321"), CKR_OK);
}

/// C_GetAttributeValue(CKA_CLASS) of an object: its return code.
fn class_of(s: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> CK_RV {
    let mut class: CK_OBJECT_CLASS = 0;
    let mut t = [CK_ATTRIBUTE {
        type_: CKA_CLASS,
        pValue: &mut class as *mut _ as *mut _,
        ulValueLen: std::mem::size_of::<CK_OBJECT_CLASS>() as CK_ULONG,
    }];
    // SAFETY: a template of one attribute with its buffer.
    unsafe { C_GetAttributeValue(s, object, t.as_mut_ptr(), 1) }
}

#[test]
fn sixteen_threads_share_and_close_sessions() {
    let m = load("");
    let slot = m.slot;
    let shared = open(slot, false);
    let key = find(shared, CKO_PRIVATE_KEY, "p256")[0];
    let threads: Vec<_> = (0..16)
        .map(|t| {
            std::thread::spawn(move || {
                let mut codes = std::collections::BTreeSet::new();
                for i in 0..40 {
                    // Half the threads use their own session, the others the shared one,
                    // which thread 0 closes halfway.
                    let s = if t % 2 == 0 {
                        open(slot, false)
                    } else {
                        shared
                    };
                    let rv = sign_init(s, CKM_ECDSA_SHA256, key);
                    codes.insert(rv);
                    if rv == CKR_OK {
                        let mut buf = vec![0u8; 64];
                        let mut len: CK_ULONG = 64;
                        codes.insert(sign(s, b"threads", Some(&mut buf), &mut len));
                    }
                    if t == 0 && i == 20 {
                        // SAFETY: handle value.
                        codes.insert(unsafe { C_CloseSession(shared) });
                    }
                    if t % 2 == 0 {
                        // SAFETY: handle value.
                        assert_eq!(unsafe { C_CloseSession(s) }, CKR_OK);
                    }
                }
                codes
            })
        })
        .collect();
    // Each thread is judged on its own codes: a thread with its own sessions gets CKR_OK
    // for every call; concurrent use of the shared session is the callers' race, and each
    // of those calls still gets a defined answer and nothing crashes.
    let allowed = [
        CKR_OK,
        CKR_OPERATION_ACTIVE,
        CKR_OPERATION_NOT_INITIALIZED,
        CKR_SESSION_HANDLE_INVALID,
    ];
    for (t, thread) in threads.into_iter().enumerate() {
        let codes = thread.join().expect("no thread panics");
        if t.is_multiple_of(2) {
            assert_eq!(
                codes,
                [CKR_OK].into(),
                "thread {t} (own sessions) got {codes:x?}"
            );
        } else {
            assert!(
                codes.iter().all(|c| allowed.contains(c)),
                "thread {t} (shared session) got unexpected codes {codes:x?}"
            );
        }
    }
    // The module is still sound afterwards.
    let s = open(slot, false);
    assert_eq!(sign_init(s, CKM_ECDSA_SHA256, key), CKR_OK);
}

#[test]
fn destroying_what_the_store_no_longer_has_is_an_invalid_object_handle() {
    // Another client (or thread) removed the certificate since it was listed: C_DestroyObject
    // may say CKR_OBJECT_HANDLE_INVALID, never CKR_KEY_HANDLE_INVALID (not one of its codes).
    let m = load("");
    let rw = open(m.slot, true);
    let cert = find(rw, CKO_CERTIFICATE, "rsa2048")[0];
    let dir = &m._store.store;
    std::fs::copy(dir.join("p256.crt.pem"), dir.join("rsa2048.crt.pem")).unwrap();
    // SAFETY: handle values.
    assert_eq!(
        unsafe { C_DestroyObject(rw, cert) },
        CKR_OBJECT_HANDLE_INVALID
    );
    // And the cache forgot it at once (the store was listed again).
    assert!(!find(rw, CKO_CERTIFICATE, "rsa2048").contains(&cert));
}

#[test]
fn token_objects_persist_through_the_c_abi() {
    let m = load("");
    let ro = open(m.slot, false);
    let rw = open(m.slot, true);
    let key = find(rw, CKO_PRIVATE_KEY, "rsa3072")[0];
    let new_label = "renamed-3072";
    let mut t = [CK_ATTRIBUTE {
        type_: CKA_LABEL,
        pValue: new_label.as_ptr() as *mut _,
        ulValueLen: new_label.len() as CK_ULONG,
    }];
    // SAFETY (whole block): valid templates.
    unsafe {
        assert_eq!(
            C_SetAttributeValue(ro, key, t.as_mut_ptr(), 1),
            CKR_SESSION_READ_ONLY
        );
        assert_eq!(C_SetAttributeValue(rw, key, t.as_mut_ptr(), 1), CKR_OK);
        let mut yes: CK_BBOOL = CK_TRUE;
        let mut t2 = [CK_ATTRIBUTE {
            type_: CKA_EXTRACTABLE,
            pValue: &mut yes as *mut _ as *mut _,
            ulValueLen: 1,
        }];
        assert_eq!(
            C_SetAttributeValue(rw, key, t2.as_mut_ptr(), 1),
            CKR_ATTRIBUTE_READ_ONLY
        );
    }
    assert_eq!(
        find(ro, CKO_PRIVATE_KEY, new_label),
        vec![key],
        "same handle after the change"
    );
    assert!(find(ro, CKO_PRIVATE_KEY, "rsa3072").is_empty());
    // The certificate keeps its label; destroying the public key alone is refused.
    let public = find(ro, CKO_PUBLIC_KEY, new_label)[0];
    // SAFETY: handle values.
    unsafe {
        assert_eq!(C_DestroyObject(ro, key), CKR_SESSION_READ_ONLY);
        assert_eq!(C_DestroyObject(rw, public), CKR_ACTION_PROHIBITED);
        assert_eq!(C_DestroyObject(rw, key), CKR_OK);
        assert_eq!(C_DestroyObject(rw, key), CKR_OBJECT_HANDLE_INVALID);
    }
    assert!(find(ro, CKO_PUBLIC_KEY, new_label).is_empty());
    assert!(!m._store.store.join("rsa3072.key.pem").exists());
}

/// Runs `work` on its own thread and fails the whole test binary if it has not finished
/// within `limit`: a deadlock must fail the run, not hang it.
fn within<T: Send + 'static>(
    limit: std::time::Duration,
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let out = work();
        let _ = tx.send(());
        out
    });
    if rx.recv_timeout(limit).is_err() && !worker.is_finished() {
        eprintln!("WATCHDOG: {what} did not finish within {limit:?}: deadlock; aborting");
        std::process::abort();
    }
    worker.join().expect("no panic")
}

/// Issue 12's deadlock: C_GetSessionInfo held a session's lock and then wanted the session
/// table, while C_GetTokenInfo / C_OpenSession / C_CloseSession held the table and wanted
/// every session's lock. Both loops must finish.
#[test]
fn session_info_and_session_churn_do_not_deadlock() {
    let m = load("");
    let slot = m.slot;
    let own = open(slot, false);
    let a = std::thread::spawn(move || {
        for _ in 0..20_000 {
            let mut info: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
            // SAFETY: a valid out-pointer.
            assert_eq!(unsafe { C_GetSessionInfo(own, &mut info) }, CKR_OK);
            assert_eq!({ info.state }, CKS_RO_PUBLIC_SESSION);
        }
    });
    let b = std::thread::spawn(move || {
        for _ in 0..5_000 {
            let mut info: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
            // SAFETY: a valid out-pointer.
            assert_eq!(unsafe { C_GetTokenInfo(slot, &mut info) }, CKR_OK);
            assert!({ info.ulSessionCount } >= 1);
            let s = open(slot, true);
            // SAFETY: handle value.
            assert_eq!(unsafe { C_CloseSession(s) }, CKR_OK);
        }
    });
    within(
        std::time::Duration::from_secs(120),
        "C_GetSessionInfo against C_GetTokenInfo/C_OpenSession/C_CloseSession",
        move || {
            a.join().expect("thread A panicked");
            b.join().expect("thread B panicked");
        },
    );
}

/// A Rust host that links the module and calls it from inside a Tokio runtime of its own
/// (in process, as this file does, the host and the module share one Tokio): the first
/// search, which lists the vault on the caller's thread, and a signature work on a
/// multi-thread and on a current-thread runtime. (Through dlopen the module has a Tokio
/// of its own, and a host's runtime is invisible to it.)
#[test]
fn key_vault_calls_from_inside_a_host_tokio_runtime_work() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = harness::Emulator::start();
    for (runtime, what) in [
        (
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap(),
            "multi-thread",
        ),
        (
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            "current-thread",
        ),
    ] {
        let config = emu.config("vault", "");
        let path = std::ffi::CString::new(config.to_str().unwrap()).unwrap();
        let mut args = config_args(&path);
        // SAFETY: valid arguments; the config path outlives the call.
        assert_eq!(
            unsafe { C_Initialize(&mut args as *mut _ as *mut _) },
            CKR_OK
        );
        // Under a watchdog: a call that waits forever must fail the run, not hang it.
        within(std::time::Duration::from_secs(120), what, move || {
            runtime.block_on(async {
                let s = open(0, false);
                let key = find(s, CKO_PRIVATE_KEY, "p256");
                assert_eq!(key.len(), 1, "{what}: the first search");
                // Many calls in one host task without yielding: Tokio's per-task budget (128)
                // must not make a call wait for a scheduler tick that never comes.
                for i in 0..300 {
                    assert_eq!(sign_init(s, CKM_ECDSA_SHA256, key[0]), CKR_OK, "{what} {i}");
                    let mut buf = vec![0u8; 64];
                    let mut len: CK_ULONG = 64;
                    assert_eq!(
                        sign(s, b"host runtime", Some(&mut buf), &mut len),
                        CKR_OK,
                        "{what} {i}"
                    );
                    assert_eq!(len, 64);
                }
            });
        });
        // SAFETY: NULL is the required argument.
        assert_eq!(unsafe { C_Finalize(null_mut()) }, CKR_OK);
    }
}

/// C_Finalize while a C_Sign waits on the vault (a request the emulator holds for 600 s)
/// in another thread: C_Finalize returns after its bounded waits, the C_Sign ends at once
/// with CKR_CRYPTOKI_NOT_INITIALIZED (long before its 60 s deadline), and the module
/// initializes and signs again.
#[test]
fn finalize_while_a_sign_is_in_flight() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = harness::Emulator::start();
    let config = emu.config("vault", "deadline_seconds = 60");
    let path = std::ffi::CString::new(config.to_str().unwrap()).unwrap();
    let init = || {
        let mut args = config_args(&path);
        // SAFETY: valid arguments; the config path outlives the call.
        assert_eq!(
            unsafe { C_Initialize(&mut args as *mut _ as *mut _) },
            CKR_OK
        );
    };
    init();
    let s = open(0, false);
    let key = find(s, CKO_PRIVATE_KEY, "p256")[0];
    assert_eq!(sign_init(s, CKM_ECDSA_SHA256, key), CKR_OK);
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "sign", "stall_ms": 600000}"#,
    );
    let signer = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64];
        let mut len: CK_ULONG = 64;
        let t = std::time::Instant::now();
        let rv = sign(s, b"in flight", Some(&mut buf), &mut len);
        (rv, t.elapsed())
    });
    // The sign request has reached the vault (the emulator took the fault).
    let t = std::time::Instant::now();
    while emu.admin("GET", "/faults", "")["once"]
        .as_array()
        .is_some_and(|q| !q.is_empty())
    {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(60),
            "C_Sign never reached the vault"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let t = std::time::Instant::now();
    // SAFETY: NULL is the required argument.
    assert_eq!(unsafe { C_Finalize(null_mut()) }, CKR_OK);
    let finalize = t.elapsed();
    let (rv, took) = within(
        std::time::Duration::from_secs(120),
        "the C_Sign in flight",
        move || signer.join().expect("no panic"),
    );
    assert_eq!(rv, CKR_CRYPTOKI_NOT_INITIALIZED);
    // C_Finalize's waits are bounded (2 s each for the refresher, the telemetry writer and
    // the runtime's threads); the C_Sign did not wait for its 60 s deadline.
    assert!(
        finalize < std::time::Duration::from_secs(10),
        "C_Finalize took {finalize:?}"
    );
    assert!(
        took < std::time::Duration::from_secs(30),
        "C_Sign took {took:?}"
    );
    emu.admin("DELETE", "/faults", "");
    init();
    let s = open(0, false);
    let key = find(s, CKO_PRIVATE_KEY, "p256")[0];
    assert_eq!(sign_init(s, CKM_ECDSA_SHA256, key), CKR_OK);
    let mut buf = vec![0u8; 64];
    let mut len: CK_ULONG = 64;
    assert_eq!(sign(s, b"again", Some(&mut buf), &mut len), CKR_OK);
    // SAFETY: NULL is the required argument.
    assert_eq!(unsafe { C_Finalize(null_mut()) }, CKR_OK);
}

/// Threads of this module in this process (their names start with "identify-pkcs11";
/// Linux truncates a thread's name to 15 bytes).
fn module_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("identify-pkcs1"))
        .count()
}

/// Two threads call C_Initialize at once, 20 times over, on a configuration whose slots
/// start threads (a key-vault slot: the network runtime, the background refresher): one
/// wins, the other gets CKR_CRYPTOKI_ALREADY_INITIALIZED, and after each C_Finalize no
/// thread of the module is left (the loser never started any).
#[test]
fn concurrent_initialize_leaves_no_thread_behind() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = harness::Emulator::start();
    let config = emu.config("vault", "");
    let path = std::sync::Arc::new(std::ffi::CString::new(config.to_str().unwrap()).unwrap());
    // An earlier test's threads end within C_Finalize's bounds (a thread may still be on
    // its way out when its join returned): wait for the count, not a time.
    let t = std::time::Instant::now();
    while module_threads() > 0 {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(30),
            "threads left by an earlier test"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for round in 0..20 {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (barrier, path) = (barrier.clone(), path.clone());
                std::thread::spawn(move || {
                    let mut args = config_args(&path);
                    barrier.wait();
                    // SAFETY: valid arguments; the config path outlives the call.
                    unsafe { C_Initialize(&mut args as *mut _ as *mut _) }
                })
            })
            .collect();
        let mut codes: Vec<CK_RV> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        codes.sort();
        assert_eq!(
            codes,
            [CKR_OK, CKR_CRYPTOKI_ALREADY_INITIALIZED],
            "round {round}"
        );
        // SAFETY: NULL is the required argument.
        assert_eq!(unsafe { C_Finalize(null_mut()) }, CKR_OK);
        // C_Finalize joins its threads within bounds; wait for the count, not a time.
        let t = std::time::Instant::now();
        while module_threads() > 0 {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(30),
                "round {round}: {} module threads left after C_Finalize",
                module_threads()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// The legacy parallel functions (§5.17) answer CKR_FUNCTION_NOT_PARALLEL for a valid
/// session, as SoftHSM2 does; an invalid session is still CKR_SESSION_HANDLE_INVALID.
#[test]
fn legacy_parallel_functions_are_not_parallel() {
    let m = load("");
    let s = open(m.slot, false);
    // SAFETY (both blocks): handle values only.
    unsafe {
        assert_eq!(C_GetFunctionStatus(s), CKR_FUNCTION_NOT_PARALLEL);
        assert_eq!(C_CancelFunction(s), CKR_FUNCTION_NOT_PARALLEL);
        assert_eq!(C_GetFunctionStatus(0xdead), CKR_SESSION_HANDLE_INVALID);
        assert_eq!(C_CancelFunction(0xdead), CKR_SESSION_HANDLE_INVALID);
    }
}
