//! The C ABI: each input is decoded into a sequence of C_* calls against the exported
//! functions of the library, with arbitrary templates (real CKA_* types and arbitrary
//! ones, arbitrary lengths), mechanisms and their parameters, handles and buffer sizes
//! (NULL outputs for size queries). Every pointer passed points to memory this harness
//! owns, of exactly the stated length, or is NULL.
//!
//! Return codes are not checked, with one exception: CKR_GENERAL_ERROR (a panic caught by
//! the guard, a poisoned lock, an internal error) fails the input. A panic anywhere, even
//! one the guard would catch, also fails it: libfuzzer-sys installs a panic hook that
//! aborts the process before unwinding starts. The module logs errors only (to stderr).
//!
//! The module is initialized once per process over the fixture keys: slot 0 with a PIN
//! (1234, cheap argon2 parameters, 1000 tries, 1 s lockout), slot 1 without; both
//! read-only, so inputs do not change the store. Every input ends with C_CloseAllSessions
//! on both slots, so state does not grow from one input to the next.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use cryptoki_sys::*;
use identify_pkcs11::ffi::*;
use libfuzzer_sys::fuzz_target;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::Once;

const PIN: &[u8] = b"1234";
const SLOTS: [CK_SLOT_ID; 2] = [0, 1];

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../softhsm-fixtures");
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let store = dir.join("store");
        std::fs::create_dir(&store).unwrap();
        for entry in std::fs::read_dir(format!("{fixtures}/keys")).unwrap() {
            let p = entry.unwrap().path();
            std::fs::copy(&p, store.join(p.file_name().unwrap())).unwrap();
        }
        std::fs::copy(
            format!("{fixtures}/pkcs12/chain.p12"),
            store.join("chain.p12"),
        )
        .unwrap();
        let pw = dir.join("p12.password");
        std::fs::copy(format!("{fixtures}/pkcs12/chain.password"), &pw).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        // Argon2id with the smallest parameters: a fuzzer logs in thousands of times.
        use argon2::password_hash::{PasswordHasher, SaltString};
        let params = argon2::Params::new(8, 1, 1, None).unwrap();
        let hash = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(PIN, &SaltString::encode_b64(b"fuzzing-salt").unwrap())
            .unwrap()
            .to_string();
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[log]\nlevel = \"error\"\n\n\
                 [[slot]]\nlabel = \"pin\"\nkind = \"cert-store\"\npath = {store:?}\n\
                 pkcs12_password_file = {pw:?}\nwritable = false\npin_hash = {hash:?}\n\
                 pin_tries = 1000\npin_lockout_seconds = 1\n\n\
                 [[slot]]\nlabel = \"open\"\nkind = \"cert-store\"\npath = {store:?}\n\
                 pkcs12_password_file = {pw:?}\nwritable = false\n"
            ),
        )
        .unwrap();
        let path = std::ffi::CString::new(config.to_str().unwrap()).unwrap();
        let mut args = CK_C_INITIALIZE_ARGS {
            CreateMutex: None,
            DestroyMutex: None,
            LockMutex: None,
            UnlockMutex: None,
            flags: CKF_OS_LOCKING_OK,
            pReserved: path.as_ptr() as *mut c_void,
        };
        // SAFETY: `args` and the path it points to live across the call.
        let rv = unsafe { C_Initialize(&mut args as *mut _ as *mut c_void) };
        assert_eq!(rv, CKR_OK, "C_Initialize");
    });
}

const ATTRIBUTES: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CLASS,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_LABEL,
    CKA_APPLICATION,
    CKA_VALUE,
    CKA_OBJECT_ID,
    CKA_CERTIFICATE_TYPE,
    CKA_ISSUER,
    CKA_SERIAL_NUMBER,
    CKA_TRUSTED,
    CKA_CERTIFICATE_CATEGORY,
    CKA_CHECK_VALUE,
    CKA_KEY_TYPE,
    CKA_SUBJECT,
    CKA_ID,
    CKA_SENSITIVE,
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_SIGN,
    CKA_SIGN_RECOVER,
    CKA_VERIFY,
    CKA_VERIFY_RECOVER,
    CKA_DERIVE,
    CKA_START_DATE,
    CKA_END_DATE,
    CKA_MODULUS,
    CKA_MODULUS_BITS,
    CKA_PUBLIC_EXPONENT,
    CKA_VALUE_LEN,
    CKA_EXTRACTABLE,
    CKA_LOCAL,
    CKA_NEVER_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_KEY_GEN_MECHANISM,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_EC_PARAMS,
    CKA_EC_POINT,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_WRAP_WITH_TRUSTED,
    CKA_WRAP_TEMPLATE,
    CKA_UNWRAP_TEMPLATE,
    CKA_ALLOWED_MECHANISMS,
    CKA_PUBLIC_KEY_INFO,
    CKA_URL,
    CKA_HASH_OF_SUBJECT_PUBLIC_KEY,
    CKA_HASH_OF_ISSUER_PUBLIC_KEY,
    CKA_NAME_HASH_ALGORITHM,
    CKA_JAVA_MIDP_SECURITY_DOMAIN,
    CKA_VENDOR_DEFINED,
];
const ULONG_VALUES: &[CK_ULONG] = &[
    CKO_DATA,
    CKO_CERTIFICATE,
    CKO_PUBLIC_KEY,
    CKO_PRIVATE_KEY,
    CKO_SECRET_KEY,
    CKK_RSA,
    CKK_EC,
    CKK_AES,
    CKC_X_509,
    1024,
    2048,
    3072,
    0,
    CK_UNAVAILABLE_INFORMATION,
];
const LABELS: &[&[u8]] = &[
    b"rsa2048",
    b"rsa3072",
    b"p256",
    b"chain",
    b"chain/chain1",
    b"",
];
const MECHANISMS: &[CK_MECHANISM_TYPE] = &[
    CKM_RSA_PKCS,
    CKM_RSA_PKCS_OAEP,
    CKM_RSA_PKCS_PSS,
    CKM_SHA1_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
    CKM_SHA224_RSA_PKCS,
    CKM_SHA1_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_SHA384_RSA_PKCS_PSS,
    CKM_SHA512_RSA_PKCS_PSS,
    CKM_SHA224_RSA_PKCS_PSS,
    CKM_ECDSA,
    CKM_ECDSA_SHA1,
    CKM_ECDSA_SHA224,
    CKM_ECDSA_SHA256,
    CKM_ECDSA_SHA384,
    CKM_ECDSA_SHA512,
    CKM_SHA_1,
    CKM_SHA224,
    CKM_SHA256,
    CKM_SHA384,
    CKM_SHA512,
    CKM_MD5,
    CKM_RSA_PKCS_KEY_PAIR_GEN,
    CKM_EC_KEY_PAIR_GEN,
    CKM_AES_KEY_GEN,
    CKM_RSA_X_509,
    CKM_AES_CBC_PAD,
    CKM_AES_GCM,
];
const HASHES: &[CK_MECHANISM_TYPE] = &[CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512];
const MGFS: &[CK_RSA_PKCS_MGF_TYPE] = &[
    CKG_MGF1_SHA1,
    CKG_MGF1_SHA224,
    CKG_MGF1_SHA256,
    CKG_MGF1_SHA384,
    CKG_MGF1_SHA512,
];

/// A template and the value buffers its attributes point to.
struct Template {
    attrs: Vec<CK_ATTRIBUTE>,
    _values: Vec<Vec<u8>>,
}

impl Template {
    fn ptr(&mut self) -> *mut CK_ATTRIBUTE {
        if self.attrs.is_empty() {
            null_mut()
        } else {
            self.attrs.as_mut_ptr()
        }
    }
    fn count(&self) -> CK_ULONG {
        self.attrs.len() as CK_ULONG
    }
}

/// A mechanism and the parameter memory it points to (boxed: stable addresses).
struct Mech {
    m: CK_MECHANISM,
    _pss: Box<CK_RSA_PKCS_PSS_PARAMS>,
    _oaep: Box<CK_RSA_PKCS_OAEP_PARAMS>,
    _gcm: Box<CK_GCM_PARAMS>,
    _label: Vec<u8>,
    _iv: Vec<u8>,
    _aad: Vec<u8>,
    _raw: Vec<u8>,
}

/// An output buffer: NULL (a size query) or harness memory of exactly `len` bytes.
struct Out {
    buf: Option<Vec<u8>>,
    len: CK_ULONG,
}

impl Out {
    fn ptr(&mut self) -> *mut CK_BYTE {
        match &mut self.buf {
            Some(b) => b.as_mut_ptr(),
            None => null_mut(),
        }
    }
}

struct Ctx<'a> {
    u: Unstructured<'a>,
    sessions: Vec<CK_SESSION_HANDLE>,
    objects: Vec<CK_OBJECT_HANDLE>,
}

impl Ctx<'_> {
    fn ulong(&mut self) -> CK_ULONG {
        CK_ULONG::arbitrary(&mut self.u).unwrap_or(0)
    }
    fn ratio(&mut self, a: u8, b: u8) -> bool {
        self.u.ratio(a, b).unwrap_or(false)
    }
    fn small(&mut self, max: usize) -> usize {
        self.u.int_in_range(0..=max).unwrap_or(0)
    }
    fn pick<T: Copy>(&mut self, list: &[T]) -> Option<T> {
        self.u.choose(list).ok().copied()
    }
    fn pick_or_any(&mut self, list: &[CK_ULONG]) -> CK_ULONG {
        if self.ratio(1, 8) {
            self.ulong()
        } else {
            self.pick(list).unwrap_or(list[0])
        }
    }
    fn slot(&mut self) -> CK_SLOT_ID {
        if self.ratio(1, 16) {
            self.ulong()
        } else {
            self.pick(&SLOTS).unwrap_or(0)
        }
    }
    fn session(&mut self) -> CK_SESSION_HANDLE {
        if self.sessions.is_empty() || self.ratio(1, 16) {
            self.ulong()
        } else {
            let s = self.sessions.clone();
            self.pick(&s).unwrap_or(0)
        }
    }
    fn object(&mut self) -> CK_OBJECT_HANDLE {
        if self.objects.is_empty() || self.ratio(1, 16) {
            self.ulong()
        } else {
            let o = self.objects.clone();
            self.pick(&o).unwrap_or(0)
        }
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.small(max);
        let mut v = self.u.bytes(n).map(<[u8]>::to_vec).unwrap_or_default();
        v.resize(n, 0);
        v
    }
    /// Input bytes: NULL with length 0 (empty), or a buffer of exactly its length.
    fn input(&mut self, max: usize) -> (Option<Vec<u8>>, CK_ULONG) {
        if self.ratio(1, 16) {
            (None, 0)
        } else {
            let b = self.bytes(max);
            let n = b.len() as CK_ULONG;
            (Some(b), n)
        }
    }
    fn out(&mut self) -> Out {
        if self.ratio(1, 3) {
            // A size query: the length given is whatever the caller had there.
            let len = if self.ratio(1, 2) { self.ulong() } else { 0 };
            Out { buf: None, len }
        } else {
            let n = if self.ratio(1, 2) {
                self.pick(&[0usize, 1, 20, 32, 64, 72, 128, 255, 256, 384, 512])
                    .unwrap_or(0)
            } else {
                self.small(1024)
            };
            Out {
                buf: Some(vec![0xa5; n]),
                len: n as CK_ULONG,
            }
        }
    }
    /// A template. `output`: values are filled in by the call (C_GetAttributeValue), so a
    /// NULL value asks for the length, and any stated length is fine with NULL.
    fn template(&mut self, output: bool) -> Template {
        let n = if self.ratio(1, 32) {
            self.small(300)
        } else {
            self.small(8)
        };
        let mut attrs = Vec::with_capacity(n);
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            let type_ = if self.ratio(1, 10) {
                self.ulong()
            } else {
                self.pick(ATTRIBUTES).unwrap_or(0)
            };
            let mut value: Vec<u8> = match self.small(5) {
                0 => {
                    // NULL value: for an input template only with length 0 (or a stated
                    // length the module must refuse without reading); any for output.
                    let len = if output || self.ratio(1, 2) {
                        self.ulong()
                    } else {
                        0
                    };
                    let len = if output && self.ratio(3, 4) {
                        len % 600
                    } else {
                        len
                    };
                    if output || len == 0 || self.ratio(1, 4) {
                        attrs.push(CK_ATTRIBUTE {
                            type_,
                            pValue: null_mut(),
                            ulValueLen: len,
                        });
                        continue;
                    }
                    Vec::new()
                }
                1 => self.pick_or_any(ULONG_VALUES).to_ne_bytes().to_vec(),
                2 => vec![if self.ratio(1, 8) {
                    self.u.arbitrary().unwrap_or(2)
                } else {
                    self.ratio(1, 2) as u8
                }],
                3 => self.pick(LABELS).unwrap_or(b"").to_vec(),
                _ => self.bytes(if output { 4096 } else { 300 }),
            };
            let ptr = if value.is_empty() && self.ratio(1, 2) {
                null_mut()
            } else {
                value.as_mut_ptr() as *mut c_void
            };
            attrs.push(CK_ATTRIBUTE {
                type_,
                pValue: ptr,
                ulValueLen: value.len() as CK_ULONG,
            });
            values.push(value);
        }
        Template {
            attrs,
            _values: values,
        }
    }
    fn mechanism(&mut self) -> Mech {
        let mechanism = self.pick_or_any(MECHANISMS);
        let mut label = if self.ratio(1, 4) {
            self.bytes(64)
        } else {
            Vec::new()
        };
        let mut pss = Box::new(CK_RSA_PKCS_PSS_PARAMS {
            hashAlg: self.pick_or_any(HASHES),
            mgf: self.pick_or_any(MGFS),
            sLen: if self.ratio(1, 8) {
                self.ulong()
            } else {
                self.pick(&[0, 20, 28, 32, 48, 64, 200]).unwrap_or(32)
            },
        });
        let mut oaep = Box::new(CK_RSA_PKCS_OAEP_PARAMS {
            hashAlg: self.pick_or_any(HASHES),
            mgf: self.pick_or_any(MGFS),
            source: if self.ratio(1, 4) {
                self.ulong() % 3
            } else {
                CKZ_DATA_SPECIFIED
            },
            pSourceData: if label.is_empty() {
                null_mut()
            } else {
                label.as_mut_ptr() as *mut c_void
            },
            ulSourceDataLen: label.len() as CK_ULONG,
        });
        let mut iv = self.bytes(16);
        let mut aad = if self.ratio(1, 2) {
            self.bytes(32)
        } else {
            Vec::new()
        };
        let mut gcm = Box::new(CK_GCM_PARAMS {
            pIv: if iv.is_empty() {
                null_mut()
            } else {
                iv.as_mut_ptr()
            },
            ulIvLen: iv.len() as CK_ULONG,
            ulIvBits: if self.ratio(1, 8) {
                self.ulong()
            } else {
                iv.len() as CK_ULONG * 8
            },
            pAAD: if aad.is_empty() {
                null_mut()
            } else {
                aad.as_mut_ptr()
            },
            ulAADLen: aad.len() as CK_ULONG,
            ulTagBits: self.pick(&[0, 64, 96, 128, 129]).unwrap_or(128),
        });
        let mut raw = self.bytes(64);
        // Raw bytes never have the size of a structure that holds pointers (OAEP's label,
        // GCM's IV and AAD): the module would rightly read them as pointers, and the
        // contract is that every pointer it is given is the caller's readable memory.
        if raw.len() == size_of::<CK_RSA_PKCS_OAEP_PARAMS>()
            || raw.len() == size_of::<CK_GCM_PARAMS>()
        {
            raw.pop();
        }
        let (p, len): (*mut c_void, usize) = match self.small(5) {
            0 | 1 => (null_mut(), 0),
            2 => (
                &mut *pss as *mut _ as *mut c_void,
                size_of::<CK_RSA_PKCS_PSS_PARAMS>(),
            ),
            3 => (
                &mut *oaep as *mut _ as *mut c_void,
                size_of::<CK_RSA_PKCS_OAEP_PARAMS>(),
            ),
            4 => (
                &mut *gcm as *mut _ as *mut c_void,
                size_of::<CK_GCM_PARAMS>(),
            ),
            _ => (
                if raw.is_empty() {
                    null_mut()
                } else {
                    raw.as_mut_ptr() as *mut c_void
                },
                raw.len(),
            ),
        };
        Mech {
            m: CK_MECHANISM {
                mechanism,
                pParameter: p,
                ulParameterLen: len as CK_ULONG,
            },
            _pss: pss,
            _oaep: oaep,
            _gcm: gcm,
            _label: label,
            _iv: iv,
            _aad: aad,
            _raw: raw,
        }
    }
}

fn check(name: &str, rv: CK_RV) {
    assert_ne!(rv, CKR_GENERAL_ERROR, "{name} answered CKR_GENERAL_ERROR");
}

fn in_ptr(b: &mut Option<Vec<u8>>) -> *mut CK_BYTE {
    match b {
        Some(v) if !v.is_empty() => v.as_mut_ptr(),
        // An empty buffer: a dangling-but-valid pointer for 0 bytes would be fine too,
        // NULL is what C callers pass.
        _ => null_mut(),
    }
}

/// One C_* call chosen by the input. SAFETY (for every call below): each pointer passed is
/// NULL or points to a live local of this function / a buffer owned by `Template`, `Mech`,
/// `Out` or a Vec, of exactly the length passed beside it.
#[allow(clippy::too_many_lines)]
fn step(c: &mut Ctx) {
    let op = c.small(48);
    match op {
        0 => {
            let slot = c.slot();
            let flags = match c.small(3) {
                0 => CKF_SERIAL_SESSION,
                1 => CKF_SERIAL_SESSION | CKF_RW_SESSION,
                2 => CKF_RW_SESSION,
                _ => c.ulong(),
            };
            let mut h: CK_SESSION_HANDLE = 0;
            // SAFETY: see `step`.
            let rv = unsafe { C_OpenSession(slot, flags, null_mut(), None, &mut h) };
            check("C_OpenSession", rv);
            if rv == CKR_OK {
                c.sessions.push(h);
            }
        }
        1 => {
            let h = c.session();
            // SAFETY: no pointers.
            check("C_CloseSession", unsafe { C_CloseSession(h) });
        }
        2 => {
            let slot = c.slot();
            // SAFETY: no pointers.
            check("C_CloseAllSessions", unsafe { C_CloseAllSessions(slot) });
        }
        3 => {
            let h = c.session();
            let user = c.pick_or_any(&[CKU_USER, CKU_SO, CKU_CONTEXT_SPECIFIC]);
            let mut pin = if c.ratio(1, 2) {
                PIN.to_vec()
            } else {
                c.bytes(40)
            };
            let len = pin.len() as CK_ULONG;
            let p = if pin.is_empty() {
                null_mut()
            } else {
                pin.as_mut_ptr()
            };
            // SAFETY: see `step`.
            check("C_Login", unsafe { C_Login(h, user, p, len) });
        }
        4 => {
            let h = c.session();
            // SAFETY: no pointers.
            check("C_Logout", unsafe { C_Logout(h) });
        }
        5 => {
            let h = c.session();
            let mut t = c.template(false);
            // SAFETY: see `step`.
            check("C_FindObjectsInit", unsafe {
                C_FindObjectsInit(h, t.ptr(), t.count())
            });
        }
        6 => {
            let h = c.session();
            let max = c.small(20);
            let mut found = vec![0 as CK_OBJECT_HANDLE; max];
            let mut count: CK_ULONG = 0;
            let p = if max == 0 && c.ratio(1, 2) {
                null_mut()
            } else {
                found.as_mut_ptr()
            };
            // SAFETY: see `step`.
            let rv = unsafe { C_FindObjects(h, p, max as CK_ULONG, &mut count) };
            check("C_FindObjects", rv);
            if rv == CKR_OK {
                assert!(
                    count as usize <= max,
                    "C_FindObjects returned {count} > {max}"
                );
                c.objects.extend_from_slice(&found[..count as usize]);
            }
        }
        7 => {
            let h = c.session();
            // SAFETY: no pointers.
            check("C_FindObjectsFinal", unsafe { C_FindObjectsFinal(h) });
        }
        8 => {
            let (h, o) = (c.session(), c.object());
            let mut t = c.template(true);
            // SAFETY: see `step`.
            check("C_GetAttributeValue", unsafe {
                C_GetAttributeValue(h, o, t.ptr(), t.count())
            });
        }
        9 => {
            let (h, o) = (c.session(), c.object());
            let mut t = c.template(false);
            // SAFETY: see `step`.
            check("C_SetAttributeValue", unsafe {
                C_SetAttributeValue(h, o, t.ptr(), t.count())
            });
        }
        10 => {
            let h = c.session();
            let mut t = c.template(false);
            let mut o: CK_OBJECT_HANDLE = 0;
            // SAFETY: see `step`.
            let rv = unsafe { C_CreateObject(h, t.ptr(), t.count(), &mut o) };
            check("C_CreateObject", rv);
            if rv == CKR_OK {
                c.objects.push(o);
            }
        }
        11 => {
            let (h, o) = (c.session(), c.object());
            // SAFETY: no pointers.
            check("C_DestroyObject", unsafe { C_DestroyObject(h, o) });
        }
        12 => {
            let (h, o) = (c.session(), c.object());
            let mut size: CK_ULONG = 0;
            // SAFETY: see `step`.
            check("C_GetObjectSize", unsafe {
                C_GetObjectSize(h, o, &mut size)
            });
        }
        13..=16 => {
            let (h, o) = (c.session(), c.object());
            let mut m = c.mechanism();
            let pm = if c.ratio(1, 32) {
                null_mut()
            } else {
                &mut m.m as *mut CK_MECHANISM
            };
            // SAFETY: see `step`.
            let (name, rv) = unsafe {
                match op {
                    13 => ("C_SignInit", C_SignInit(h, pm, o)),
                    14 => ("C_VerifyInit", C_VerifyInit(h, pm, o)),
                    15 => ("C_EncryptInit", C_EncryptInit(h, pm, o)),
                    _ => ("C_DecryptInit", C_DecryptInit(h, pm, o)),
                }
            };
            check(name, rv);
        }
        17 => {
            let h = c.session();
            let mut m = c.mechanism();
            // SAFETY: see `step`.
            check("C_DigestInit", unsafe { C_DigestInit(h, &mut m.m) });
        }
        18..=23 => {
            // One-shot and final calls with an output.
            let h = c.session();
            let (mut data, len) = c.input(600);
            let mut out = c.out();
            let d = in_ptr(&mut data);
            let op_ptr = out.ptr();
            // SAFETY: see `step`.
            let (name, rv) = unsafe {
                match op {
                    18 => ("C_Sign", C_Sign(h, d, len, op_ptr, &mut out.len)),
                    19 => ("C_Encrypt", C_Encrypt(h, d, len, op_ptr, &mut out.len)),
                    20 => ("C_Decrypt", C_Decrypt(h, d, len, op_ptr, &mut out.len)),
                    21 => ("C_Digest", C_Digest(h, d, len, op_ptr, &mut out.len)),
                    22 => (
                        "C_EncryptUpdate",
                        C_EncryptUpdate(h, d, len, op_ptr, &mut out.len),
                    ),
                    _ => (
                        "C_DecryptUpdate",
                        C_DecryptUpdate(h, d, len, op_ptr, &mut out.len),
                    ),
                }
            };
            check(name, rv);
            if let (CKR_OK, Some(b)) = (rv, &out.buf) {
                assert!(
                    out.len as usize <= b.len(),
                    "{name} wrote {} into {}",
                    out.len,
                    b.len()
                );
            }
        }
        24..=27 => {
            let h = c.session();
            let mut out = c.out();
            let op_ptr = out.ptr();
            // SAFETY: see `step`.
            let (name, rv) = unsafe {
                match op {
                    24 => ("C_SignFinal", C_SignFinal(h, op_ptr, &mut out.len)),
                    25 => ("C_EncryptFinal", C_EncryptFinal(h, op_ptr, &mut out.len)),
                    26 => ("C_DecryptFinal", C_DecryptFinal(h, op_ptr, &mut out.len)),
                    _ => ("C_DigestFinal", C_DigestFinal(h, op_ptr, &mut out.len)),
                }
            };
            check(name, rv);
            if let (CKR_OK, Some(b)) = (rv, &out.buf) {
                assert!(
                    out.len as usize <= b.len(),
                    "{name} wrote {} into {}",
                    out.len,
                    b.len()
                );
            }
        }
        28..=30 => {
            let h = c.session();
            let (mut data, len) = c.input(600);
            let d = in_ptr(&mut data);
            // SAFETY: see `step`.
            let (name, rv) = unsafe {
                match op {
                    28 => ("C_SignUpdate", C_SignUpdate(h, d, len)),
                    29 => ("C_VerifyUpdate", C_VerifyUpdate(h, d, len)),
                    _ => ("C_DigestUpdate", C_DigestUpdate(h, d, len)),
                }
            };
            check(name, rv);
        }
        31 => {
            let h = c.session();
            let (mut data, len) = c.input(600);
            let (mut sig, slen) = c.input(600);
            // SAFETY: see `step`.
            check("C_Verify", unsafe {
                C_Verify(h, in_ptr(&mut data), len, in_ptr(&mut sig), slen)
            });
        }
        32 => {
            let h = c.session();
            let (mut sig, slen) = c.input(600);
            // SAFETY: see `step`.
            check("C_VerifyFinal", unsafe {
                C_VerifyFinal(h, in_ptr(&mut sig), slen)
            });
        }
        33 => {
            let (h, o) = (c.session(), c.object());
            // SAFETY: no pointers.
            check("C_DigestKey", unsafe { C_DigestKey(h, o) });
        }
        34 => {
            let h = c.session();
            let n = c.small(300);
            let mut buf = vec![0u8; n];
            let p = if n == 0 && c.ratio(1, 2) {
                null_mut()
            } else {
                buf.as_mut_ptr()
            };
            // SAFETY: see `step`.
            check("C_GenerateRandom", unsafe {
                C_GenerateRandom(h, p, n as CK_ULONG)
            });
        }
        35 => {
            let h = c.session();
            let (mut seed, len) = c.input(64);
            // SAFETY: see `step`.
            check("C_SeedRandom", unsafe {
                C_SeedRandom(h, in_ptr(&mut seed), len)
            });
        }
        36 => {
            let h = c.session();
            let mut info = std::mem::MaybeUninit::<CK_SESSION_INFO>::zeroed();
            // SAFETY: see `step`.
            check("C_GetSessionInfo", unsafe {
                C_GetSessionInfo(h, info.as_mut_ptr())
            });
        }
        37 => {
            let h = c.session();
            let flags = c.pick_or_any(&[
                CKF_SIGN,
                CKF_VERIFY,
                CKF_ENCRYPT,
                CKF_DECRYPT,
                CKF_DIGEST,
                CKF_FIND_OBJECTS,
            ]);
            // SAFETY: no pointers.
            check("C_SessionCancel", unsafe { C_SessionCancel(h, flags) });
        }
        38 => {
            let slot = c.slot();
            let mut info = std::mem::MaybeUninit::<CK_TOKEN_INFO>::zeroed();
            // SAFETY: see `step`.
            check("C_GetTokenInfo", unsafe {
                C_GetTokenInfo(slot, info.as_mut_ptr())
            });
            let mut sinfo = std::mem::MaybeUninit::<CK_SLOT_INFO>::zeroed();
            // SAFETY: see `step`.
            check("C_GetSlotInfo", unsafe {
                C_GetSlotInfo(slot, sinfo.as_mut_ptr())
            });
        }
        39 => {
            let slot = c.slot();
            let n = c.small(80);
            let mut list = vec![0 as CK_MECHANISM_TYPE; n];
            let mut count = n as CK_ULONG;
            let p = if c.ratio(1, 2) {
                null_mut()
            } else {
                list.as_mut_ptr()
            };
            // SAFETY: see `step`.
            check("C_GetMechanismList", unsafe {
                C_GetMechanismList(slot, p, &mut count)
            });
            let mech = c.pick_or_any(MECHANISMS);
            let mut info = std::mem::MaybeUninit::<CK_MECHANISM_INFO>::zeroed();
            // SAFETY: see `step`.
            check("C_GetMechanismInfo", unsafe {
                C_GetMechanismInfo(slot, mech, info.as_mut_ptr())
            });
        }
        40 => {
            let n = c.small(4);
            let mut list = vec![0 as CK_SLOT_ID; n];
            let mut count = n as CK_ULONG;
            let p = if c.ratio(1, 2) {
                null_mut()
            } else {
                list.as_mut_ptr()
            };
            let present = c.u.arbitrary::<u8>().unwrap_or(0);
            // SAFETY: see `step`.
            check("C_GetSlotList", unsafe {
                C_GetSlotList(present, p, &mut count)
            });
        }
        41 => {
            let h = c.session();
            let mut m = c.mechanism();
            let mut public = c.template(false);
            let mut private = c.template(false);
            let (mut hpub, mut hpriv) = (0, 0);
            // SAFETY: see `step`.
            check("C_GenerateKeyPair", unsafe {
                C_GenerateKeyPair(
                    h,
                    &mut m.m,
                    public.ptr(),
                    public.count(),
                    private.ptr(),
                    private.count(),
                    &mut hpub,
                    &mut hpriv,
                )
            });
        }
        42 => {
            let (h, o) = (c.session(), c.object());
            let mut m = c.mechanism();
            let (mut wrapped, wlen) = c.input(600);
            let mut t = c.template(false);
            let mut k = 0;
            // SAFETY: see `step`.
            check("C_UnwrapKey", unsafe {
                C_UnwrapKey(
                    h,
                    &mut m.m,
                    o,
                    in_ptr(&mut wrapped),
                    wlen,
                    t.ptr(),
                    t.count(),
                    &mut k,
                )
            });
        }
        43 => {
            let (h, o) = (c.session(), c.object());
            let mut t = c.template(false);
            let mut new = 0;
            // SAFETY: see `step`.
            check("C_CopyObject", unsafe {
                C_CopyObject(h, o, t.ptr(), t.count(), &mut new)
            });
        }
        44 => {
            let mut slot = 0;
            // SAFETY: see `step`; CKF_DONT_BLOCK: never wait.
            check("C_WaitForSlotEvent", unsafe {
                C_WaitForSlotEvent(CKF_DONT_BLOCK, &mut slot, null_mut())
            });
        }
        45 => {
            let mut info = std::mem::MaybeUninit::<CK_INFO>::zeroed();
            // SAFETY: see `step`.
            check("C_GetInfo", unsafe { C_GetInfo(info.as_mut_ptr()) });
            let mut n: CK_ULONG = 0;
            // SAFETY: see `step`.
            check("C_GetInterfaceList", unsafe {
                C_GetInterfaceList(null_mut(), &mut n)
            });
            let mut list = [CK_INTERFACE {
                pInterfaceName: null_mut(),
                pFunctionList: null_mut(),
                flags: 0,
            }; 4];
            let mut n = c.small(4) as CK_ULONG;
            // SAFETY: see `step`.
            check("C_GetInterfaceList", unsafe {
                C_GetInterfaceList(list.as_mut_ptr(), &mut n)
            });
        }
        46 => {
            let h = c.session();
            let mut old = if c.ratio(1, 2) {
                PIN.to_vec()
            } else {
                c.bytes(16)
            };
            let mut new = c.bytes(16);
            let (ol, nl) = (old.len() as CK_ULONG, new.len() as CK_ULONG);
            // SAFETY: see `step`.
            check("C_SetPIN", unsafe {
                C_SetPIN(h, in_ptr_vec(&mut old), ol, in_ptr_vec(&mut new), nl)
            });
        }
        47 => {
            let h = c.session();
            let mut state = c.out();
            let p = state.ptr();
            // SAFETY: see `step`.
            check("C_GetOperationState", unsafe {
                C_GetOperationState(h, p, &mut state.len)
            });
        }
        _ => {
            let h = c.session();
            let user = c.pick_or_any(&[CKU_USER, CKU_SO]);
            let mut pin = if c.ratio(1, 2) {
                PIN.to_vec()
            } else {
                c.bytes(16)
            };
            let mut name = c.bytes(16);
            let (pl, nl) = (pin.len() as CK_ULONG, name.len() as CK_ULONG);
            // SAFETY: see `step`.
            check("C_LoginUser", unsafe {
                C_LoginUser(h, user, in_ptr_vec(&mut pin), pl, in_ptr_vec(&mut name), nl)
            });
        }
    }
}

fn in_ptr_vec(v: &mut [u8]) -> *mut CK_BYTE {
    if v.is_empty() {
        null_mut()
    } else {
        v.as_mut_ptr()
    }
}

fuzz_target!(|data: &[u8]| {
    init();
    let mut c = Ctx {
        u: Unstructured::new(data),
        sessions: Vec::new(),
        objects: Vec::new(),
    };
    let mut steps = 0;
    while !c.u.is_empty() && steps < 64 {
        step(&mut c);
        steps += 1;
    }
    for slot in SLOTS {
        // SAFETY: no pointers.
        check("C_CloseAllSessions", unsafe { C_CloseAllSessions(slot) });
    }
});
