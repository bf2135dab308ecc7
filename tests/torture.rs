//! Torture: many threads, each a seeded random sequence drawn from every kind of C_* call
//! (sessions, login, search, attributes, sign / verify / encrypt / decrypt / unwrap in one
//! and several parts with size queries, key generation, object creation and destruction,
//! slot / token / session / mechanism information, random, digest), through the raw C
//! function list, against:
//! - this module over a directory slot,
//! - this module over a key-vault slot on the emulator with faults on (latency, 503s,
//!   connection resets, 429s from a vault throttled to a twentieth of its limits),
//! - SoftHSM2, the same harness, to show that it is fair.
//!
//! What must hold: every return code is one the specification allows for that call (and
//! never CKR_GENERAL_ERROR); every signature made with a fixture key verifies with
//! OpenSSL; every decryption gives the plaintext back; every digest is SHA-256's; a handle
//! never resolves to another object than the one it was found as. A watchdog fails the run
//! when any call outlives its deadline, printing every thread's stack (gdb) first.
//!
//! `TORTURE_SECONDS` (per target, default 20), `TORTURE_THREADS` (default 16) and
//! `TORTURE_SEED` (default: from the clock; printed, so a failure replays with it).

// Calling a C ABI with raw pointers is what this test is about.
#![cfg(unix)]
#![allow(unsafe_code)]
#![allow(
    clippy::undocumented_unsafe_blocks,
    clippy::cast_possible_truncation,
    clippy::too_many_lines
)]

mod harness;

use cryptoki_sys::*;
use identify_pkcs11::admin::rv_name;
use openssl::pkey::{PKey, Public};
use std::collections::{BTreeMap, HashMap};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static TURN: Mutex<()> = Mutex::new(());

const PIN: &str = "1234";
const LABELS: [&str; 3] = ["rsa2048", "rsa3072", "p256"];

// ---------------------------------------------------------------------------------------
// The function list

struct Api {
    f: &'static CK_FUNCTION_LIST,
}

// SAFETY (for both): the function list is immutable and lives as long as the library.
unsafe impl Send for Api {}
unsafe impl Sync for Api {}

impl Api {
    /// This module, linked in.
    fn ours() -> Api {
        let mut p: CK_FUNCTION_LIST_PTR = null_mut();
        assert_eq!(
            unsafe { identify_pkcs11::ffi::C_GetFunctionList(&mut p) },
            CKR_OK
        );
        Api { f: unsafe { &*p } }
    }

    /// A module loaded with dlopen (kept loaded for the process).
    fn load(path: &str) -> Api {
        let c = std::ffi::CString::new(path).unwrap();
        let lib = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!lib.is_null(), "dlopen {path} failed");
        let sym = unsafe { libc::dlsym(lib, c"C_GetFunctionList".as_ptr()) };
        assert!(!sym.is_null(), "{path}: no C_GetFunctionList");
        let get: unsafe extern "C" fn(*mut CK_FUNCTION_LIST_PTR) -> CK_RV =
            unsafe { std::mem::transmute(sym) };
        let mut p: CK_FUNCTION_LIST_PTR = null_mut();
        assert_eq!(unsafe { get(&mut p) }, CKR_OK);
        Api { f: unsafe { &*p } }
    }

    fn initialize(&self, config: Option<&std::path::Path>) {
        let path = config.map(|p| std::ffi::CString::new(p.to_str().unwrap()).unwrap());
        let mut args = CK_C_INITIALIZE_ARGS {
            CreateMutex: None,
            DestroyMutex: None,
            LockMutex: None,
            UnlockMutex: None,
            flags: CKF_OS_LOCKING_OK,
            pReserved: path.as_ref().map_or(null_mut(), |p| p.as_ptr() as *mut _),
        };
        let rv = unsafe { (self.f.C_Initialize.unwrap())(&mut args as *mut _ as *mut _) };
        assert_eq!(rv, CKR_OK, "C_Initialize: {}", rv_name(rv));
    }

    fn slot_labelled(&self, label: &str) -> CK_SLOT_ID {
        let mut n: CK_ULONG = 0;
        unsafe {
            assert_eq!(
                (self.f.C_GetSlotList.unwrap())(CK_TRUE, null_mut(), &mut n),
                CKR_OK
            );
            let mut slots = vec![0; n as usize];
            assert_eq!(
                (self.f.C_GetSlotList.unwrap())(CK_TRUE, slots.as_mut_ptr(), &mut n),
                CKR_OK
            );
            for s in slots {
                let mut info: CK_TOKEN_INFO = std::mem::zeroed();
                assert_eq!((self.f.C_GetTokenInfo.unwrap())(s, &mut info), CKR_OK);
                let l = info.label;
                if String::from_utf8_lossy(&l).trim_end() == label {
                    return s;
                }
            }
        }
        panic!("no token labelled {label}");
    }
}

// ---------------------------------------------------------------------------------------
// What the specification allows each call to return

/// Codes any call may return (PKCS#11 v2.40 §5.1), and those of a session that another
/// thread closed. Never CKR_GENERAL_ERROR: this module uses it only for a caught panic or
/// a broken invariant.
const ANY: &[CK_RV] = &[
    CKR_OK,
    CKR_HOST_MEMORY,
    CKR_DEVICE_ERROR,
    CKR_DEVICE_MEMORY,
    CKR_DEVICE_REMOVED,
    CKR_FUNCTION_FAILED,
    CKR_FUNCTION_CANCELED,
    CKR_SESSION_HANDLE_INVALID,
    CKR_SESSION_CLOSED,
];

const OBJECT: &[CK_RV] = &[
    CKR_OBJECT_HANDLE_INVALID,
    CKR_USER_NOT_LOGGED_IN,
    CKR_ARGUMENTS_BAD,
];

const INIT: &[CK_RV] = &[
    CKR_KEY_FUNCTION_NOT_PERMITTED,
    CKR_KEY_HANDLE_INVALID,
    CKR_KEY_SIZE_RANGE,
    CKR_KEY_TYPE_INCONSISTENT,
    CKR_MECHANISM_INVALID,
    CKR_MECHANISM_PARAM_INVALID,
    CKR_OPERATION_ACTIVE,
    CKR_USER_NOT_LOGGED_IN,
    CKR_ARGUMENTS_BAD,
];

/// The parts of an operation after its init: the key may have gone with a logout.
const PART: &[CK_RV] = &[
    CKR_BUFFER_TOO_SMALL,
    CKR_DATA_INVALID,
    CKR_DATA_LEN_RANGE,
    CKR_OPERATION_NOT_INITIALIZED,
    CKR_USER_NOT_LOGGED_IN,
    CKR_KEY_HANDLE_INVALID,
    CKR_KEY_FUNCTION_NOT_PERMITTED,
    CKR_FUNCTION_REJECTED,
    CKR_ARGUMENTS_BAD,
];

const CREATE: &[CK_RV] = &[
    CKR_ATTRIBUTE_READ_ONLY,
    CKR_ATTRIBUTE_TYPE_INVALID,
    CKR_ATTRIBUTE_VALUE_INVALID,
    CKR_CURVE_NOT_SUPPORTED,
    CKR_DOMAIN_PARAMS_INVALID,
    CKR_SESSION_READ_ONLY,
    CKR_TEMPLATE_INCOMPLETE,
    CKR_TEMPLATE_INCONSISTENT,
    CKR_TOKEN_WRITE_PROTECTED,
    CKR_USER_NOT_LOGGED_IN,
    CKR_ACTION_PROHIBITED,
    CKR_ARGUMENTS_BAD,
];

fn allowed(call: &str) -> Vec<CK_RV> {
    let extra: &[&[CK_RV]] = match call {
        "C_OpenSession" => &[&[
            CKR_SESSION_COUNT,
            CKR_SLOT_ID_INVALID,
            CKR_TOKEN_NOT_PRESENT,
            CKR_TOKEN_WRITE_PROTECTED,
        ]],
        "C_CloseSession" | "C_GetSessionInfo" => &[],
        "C_CloseAllSessions" | "C_GetTokenInfo" | "C_GetSlotInfo" | "C_GetMechanismList" => &[&[
            CKR_SLOT_ID_INVALID,
            CKR_TOKEN_NOT_PRESENT,
            CKR_BUFFER_TOO_SMALL,
        ]],
        "C_GetMechanismInfo" => &[&[CKR_MECHANISM_INVALID, CKR_SLOT_ID_INVALID]],
        "C_Login" => &[&[
            CKR_PIN_INCORRECT,
            CKR_PIN_LOCKED,
            CKR_USER_ALREADY_LOGGED_IN,
            CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
            CKR_ARGUMENTS_BAD,
        ]],
        "C_Logout" => &[&[CKR_USER_NOT_LOGGED_IN]],
        "C_FindObjectsInit" => &[&[
            CKR_ATTRIBUTE_TYPE_INVALID,
            CKR_ATTRIBUTE_VALUE_INVALID,
            CKR_OPERATION_ACTIVE,
            CKR_ARGUMENTS_BAD,
        ]],
        "C_FindObjects" | "C_FindObjectsFinal" => {
            &[&[CKR_OPERATION_NOT_INITIALIZED, CKR_ARGUMENTS_BAD]]
        }
        "C_GetAttributeValue" => &[
            OBJECT,
            &[
                CKR_ATTRIBUTE_SENSITIVE,
                CKR_ATTRIBUTE_TYPE_INVALID,
                CKR_BUFFER_TOO_SMALL,
            ],
        ],
        "C_SetAttributeValue" => &[
            OBJECT,
            CREATE,
            &[CKR_ACTION_PROHIBITED, CKR_ATTRIBUTE_READ_ONLY],
        ],
        "C_SignInit" | "C_VerifyInit" | "C_EncryptInit" | "C_DecryptInit" => &[INIT],
        "C_Sign" | "C_SignUpdate" | "C_SignFinal" | "C_Encrypt" | "C_EncryptUpdate"
        | "C_EncryptFinal" => &[PART],
        "C_Verify" => &[PART, &[CKR_SIGNATURE_INVALID, CKR_SIGNATURE_LEN_RANGE]],
        "C_Decrypt" => &[
            PART,
            &[CKR_ENCRYPTED_DATA_INVALID, CKR_ENCRYPTED_DATA_LEN_RANGE],
        ],
        "C_DigestInit" => &[&[CKR_MECHANISM_INVALID, CKR_OPERATION_ACTIVE]],
        "C_Digest" | "C_DigestUpdate" | "C_DigestFinal" => &[PART],
        "C_GenerateRandom" => &[&[CKR_RANDOM_NO_RNG, CKR_ARGUMENTS_BAD]],
        "C_UnwrapKey" => &[
            CREATE,
            INIT,
            &[
                CKR_UNWRAPPING_KEY_HANDLE_INVALID,
                CKR_UNWRAPPING_KEY_SIZE_RANGE,
                CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
                CKR_WRAPPED_KEY_INVALID,
                CKR_WRAPPED_KEY_LEN_RANGE,
            ],
        ],
        "C_GenerateKeyPair" => &[CREATE, INIT, &[CKR_FUNCTION_NOT_SUPPORTED]],
        "C_CreateObject" => &[CREATE],
        "C_DestroyObject" => &[
            OBJECT,
            &[
                CKR_ACTION_PROHIBITED,
                CKR_SESSION_READ_ONLY,
                CKR_TOKEN_WRITE_PROTECTED,
            ],
        ],
        other => panic!("no table for {other}"),
    };
    let mut all = ANY.to_vec();
    for e in extra {
        all.extend_from_slice(e);
    }
    all
}

// ---------------------------------------------------------------------------------------
// The watchdog

/// One thread's call in progress: milliseconds since `epoch` when it began (0: none).
struct Watch {
    epoch: Instant,
    started: Vec<AtomicU64>,
    calls: Vec<Mutex<&'static str>>,
    stop: AtomicBool,
}

impl Watch {
    fn new(threads: usize) -> Watch {
        Watch {
            epoch: Instant::now(),
            started: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            calls: (0..threads).map(|_| Mutex::new("")).collect(),
            stop: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Fails the run (after printing every thread's stack) when a call outlives `deadline`.
    fn run(&self, deadline: Duration) {
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.now_ms();
            for (i, s) in self.started.iter().enumerate() {
                let t = s.load(Ordering::Relaxed);
                if t != 0 && now.saturating_sub(t) > deadline.as_millis() as u64 {
                    let call = *self.calls[i]
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    eprintln!(
                        "torture: thread {i} has been in {call} for {} ms (deadline {deadline:?}); stacks:",
                        now - t
                    );
                    print_stacks();
                    std::process::abort();
                }
            }
        }
    }
}

/// Every thread's stack, from gdb attached to this process.
fn print_stacks() {
    // Let a non-root gdb attach under Yama's ptrace_scope = 1.
    unsafe { libc::prctl(libc::PR_SET_PTRACER, libc::PR_SET_PTRACER_ANY, 0, 0, 0) };
    let out = std::process::Command::new("gdb")
        .args(["-p", &std::process::id().to_string(), "-batch", "-nx"])
        .args(["-ex", "thread apply all bt"])
        .output();
    match out {
        Ok(o) => eprintln!("{}", String::from_utf8_lossy(&o.stdout)),
        Err(e) => eprintln!("gdb: {e} (install gdb for the stacks)"),
    }
}

// ---------------------------------------------------------------------------------------
// One thread

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// What a handle was found as.
#[derive(Clone, Debug, PartialEq)]
struct Known {
    class: CK_OBJECT_CLASS,
    label: Vec<u8>,
}

struct Worker<'a> {
    api: &'a Api,
    slot: CK_SLOT_ID,
    index: usize,
    watch: &'a Watch,
    keys: &'a HashMap<&'static str, PKey<Public>>,
    rng: Rng,
    sessions: Vec<CK_SESSION_HANDLE>,
    known: HashMap<CK_OBJECT_HANDLE, Known>,
    counts: BTreeMap<&'static str, u64>,
    codes: BTreeMap<String, u64>,
    generate: bool,
    /// Deviations from the specification tolerated for this target (SoftHSM2's own).
    tolerated: &'a [(&'static str, CK_RV)],
    /// Steps left out for this target (by name).
    avoid: &'a [&'static str],
    /// The session and the object the current step uses, and the codes it got: a session
    /// another thread closed, or a handle a logout retired, is forgotten after the step.
    used_session: Option<CK_SESSION_HANDLE>,
    used_object: Option<CK_OBJECT_HANDLE>,
    seen: Vec<CK_RV>,
}

macro_rules! call {
    ($w:expr, $name:ident ( $($arg:expr),* $(,)? )) => {{
        let name: &'static str = stringify!($name);
        $w.begin(name);
        let rv = unsafe { ($w.api.f.$name.unwrap())($($arg),*) };
        $w.end(name, rv)
    }};
}

impl Worker<'_> {
    fn begin(&mut self, name: &'static str) {
        *self.watch.calls[self.index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = name;
        self.watch.started[self.index].store(self.watch.now_ms(), Ordering::Relaxed);
    }

    fn end(&mut self, name: &'static str, rv: CK_RV) -> CK_RV {
        self.watch.started[self.index].store(0, Ordering::Relaxed);
        self.seen.push(rv);
        *self.counts.entry(name).or_default() += 1;
        if rv != CKR_OK {
            *self.codes.entry(rv_name(rv)).or_default() += 1;
        }
        if self.tolerated.contains(&(name, rv)) && !allowed(name).contains(&rv) {
            *self
                .codes
                .entry(format!("{name}: {} (tolerated)", rv_name(rv)))
                .or_default() += 1;
            return rv;
        }
        assert!(
            allowed(name).contains(&rv),
            "thread {}: {name} returned {}, which the specification does not allow",
            self.index,
            rv_name(rv)
        );
        rv
    }

    fn session(&mut self) -> CK_SESSION_HANDLE {
        if self.sessions.is_empty() || self.rng.chance(3) {
            self.open();
        }
        let s = match self.sessions.len() {
            0 => CK_INVALID_HANDLE,
            n => self.sessions[self.rng.below(n)],
        };
        self.used_session = Some(s);
        s
    }

    /// Forgets what the step found stale (§5.6: closed sessions, handles retired by a
    /// logout stay invalid).
    fn after_step(&mut self) {
        let seen = std::mem::take(&mut self.seen);
        if let Some(s) = self.used_session.take()
            && seen.contains(&CKR_SESSION_HANDLE_INVALID)
        {
            self.sessions.retain(|h| *h != s);
        }
        if let Some(o) = self.used_object.take()
            && seen.iter().any(|rv| {
                matches!(
                    *rv,
                    CKR_KEY_HANDLE_INVALID
                        | CKR_OBJECT_HANDLE_INVALID
                        | CKR_UNWRAPPING_KEY_HANDLE_INVALID
                )
            })
        {
            self.known.remove(&o);
        }
    }

    fn open(&mut self) {
        if self.sessions.len() >= 4 {
            return;
        }
        let flags = CKF_SERIAL_SESSION
            | if self.rng.chance(80) {
                CKF_RW_SESSION
            } else {
                0
            };
        let mut h = 0;
        if call!(
            self,
            C_OpenSession(self.slot, flags, null_mut(), None, &mut h)
        ) == CKR_OK
        {
            self.sessions.push(h);
        }
    }

    fn step(&mut self) {
        let pick = self.rng.below(100);
        let kind = match pick {
            0..=3 => "open",
            4..=6 => "close",
            7 => "close-all",
            8..=11 => "login",
            12 => "logout",
            25..=34 => "attributes",
            35..=49 => "sign",
            50..=55 => "verify",
            56..=63 => "decrypt",
            64..=67 => "unwrap",
            68..=70 => "create",
            71..=72 => "generate",
            73..=80 => "info",
            81..=85 => "random",
            86..=92 => "digest",
            _ => "find",
        };
        if self.avoid.contains(&kind) {
            return self.find();
        }
        match pick {
            0..=3 => self.open(),
            4..=6 => {
                if !self.sessions.is_empty() {
                    let h = self
                        .sessions
                        .swap_remove(self.rng.below(self.sessions.len()));
                    call!(self, C_CloseSession(h));
                }
            }
            7 => {
                if self.rng.chance(20) {
                    call!(self, C_CloseAllSessions(self.slot));
                }
            }
            8..=11 => self.login(),
            12 => {
                let s = self.session();
                call!(self, C_Logout(s));
            }
            13..=24 => self.find(),
            25..=34 => self.attributes(),
            35..=49 => self.sign(),
            50..=55 => self.verify(),
            56..=63 => self.decrypt(),
            64..=67 => self.unwrap(),
            68..=70 => self.create_and_destroy(),
            71..=72 => self.generate(),
            73..=80 => self.info(),
            81..=85 => self.random(),
            86..=92 => self.digest(),
            _ => self.find(),
        }
    }

    fn login(&mut self) {
        let s = self.session();
        let pin = if self.rng.chance(5) { "0000" } else { PIN };
        call!(
            self,
            C_Login(s, CKU_USER, pin.as_ptr() as *mut _, pin.len() as CK_ULONG)
        );
    }

    /// A search by class and label; the handles found are remembered as what they are.
    fn find(&mut self) {
        let s = self.session();
        let label = LABELS[self.rng.below(LABELS.len())];
        let mut class = [CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_CERTIFICATE][self.rng.below(3)];
        let mut t = [
            attr(CKA_CLASS, &mut class),
            CK_ATTRIBUTE {
                type_: CKA_LABEL,
                pValue: label.as_ptr() as *mut _,
                ulValueLen: label.len() as CK_ULONG,
            },
        ];
        if call!(self, C_FindObjectsInit(s, t.as_mut_ptr(), 2)) != CKR_OK {
            return;
        }
        let mut out = [0; 4];
        let mut n: CK_ULONG = 0;
        let max = 1 + self.rng.below(4) as CK_ULONG;
        if call!(self, C_FindObjects(s, out.as_mut_ptr(), max, &mut n)) == CKR_OK {
            for &h in &out[..n as usize] {
                let k = Known {
                    class,
                    label: label.as_bytes().to_vec(),
                };
                if let Some(prev) = self.known.insert(h, k.clone()) {
                    assert_eq!(
                        prev, k,
                        "thread {}: handle {h} found as {k:?} after {prev:?}",
                        self.index
                    );
                }
            }
        }
        call!(self, C_FindObjectsFinal(s));
    }

    fn some_known(
        &mut self,
        class: CK_OBJECT_CLASS,
        label_prefix: &str,
    ) -> Option<(CK_OBJECT_HANDLE, Known)> {
        let matching: Vec<_> = self
            .known
            .iter()
            .filter(|(_, k)| k.class == class && k.label.starts_with(label_prefix.as_bytes()))
            .map(|(h, k)| (*h, k.clone()))
            .collect();
        if matching.is_empty() {
            None
        } else {
            let pick = matching[self.rng.below(matching.len())].clone();
            self.used_object = Some(pick.0);
            Some(pick)
        }
    }

    /// Reads class and label of a known handle (size query first): it is what it was found as.
    fn attributes(&mut self) {
        let Some((h, known)) = self.any_known() else {
            return self.find();
        };
        let s = self.session();
        let mut t = [
            CK_ATTRIBUTE {
                type_: CKA_LABEL,
                pValue: null_mut(),
                ulValueLen: 0,
            },
            CK_ATTRIBUTE {
                type_: CKA_CLASS,
                pValue: null_mut(),
                ulValueLen: 0,
            },
        ];
        if call!(self, C_GetAttributeValue(s, h, t.as_mut_ptr(), 2)) != CKR_OK {
            return;
        }
        let mut label = vec![0u8; t[0].ulValueLen as usize];
        let mut class: CK_OBJECT_CLASS = 0;
        // Now and then one byte short: CKR_BUFFER_TOO_SMALL.
        let short = self.rng.chance(10) && !label.is_empty();
        t[0].pValue = label.as_mut_ptr() as *mut _;
        t[0].ulValueLen = (label.len() - usize::from(short)) as CK_ULONG;
        t[1].pValue = &mut class as *mut _ as *mut _;
        t[1].ulValueLen = std::mem::size_of::<CK_OBJECT_CLASS>() as CK_ULONG;
        let rv = call!(self, C_GetAttributeValue(s, h, t.as_mut_ptr(), 2));
        if short {
            assert!(rv != CKR_OK, "a short buffer was accepted");
            return;
        }
        if rv == CKR_OK {
            assert_eq!(
                (class, &label),
                (known.class, &known.label),
                "thread {}: handle {h} resolved to another object",
                self.index
            );
        }
    }

    fn any_known(&mut self) -> Option<(CK_OBJECT_HANDLE, Known)> {
        if self.known.is_empty() {
            return None;
        }
        let i = self.rng.below(self.known.len());
        let pick = self.known.iter().nth(i).map(|(h, k)| (*h, k.clone()));
        self.used_object = pick.as_ref().map(|p| p.0);
        pick
    }

    /// A signature with a fixture key, single- or multi-part, with size queries; it must
    /// verify with OpenSSL.
    fn sign(&mut self) {
        let Some((key, known)) = self.some_known(CKO_PRIVATE_KEY, "") else {
            return self.find();
        };
        let label = String::from_utf8_lossy(&known.label).to_string();
        let ec = label.starts_with('p');
        let s = self.session();
        let n = self.rng.below(300);
        let data = self.rng.bytes(n);
        let (mech_type, pss) = if ec {
            (CKM_ECDSA_SHA256, false)
        } else if self.rng.chance(30) {
            (CKM_SHA256_RSA_PKCS_PSS, true)
        } else {
            (CKM_SHA256_RSA_PKCS, false)
        };
        let mut params = CK_RSA_PKCS_PSS_PARAMS {
            hashAlg: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            sLen: 32,
        };
        let mut mech = with_params(mech_type, pss.then_some(&mut params));
        if call!(self, C_SignInit(s, &mut mech, key)) != CKR_OK {
            return;
        }
        let mut len: CK_ULONG = 0;
        let multi = self.rng.chance(40);
        let rv = if multi {
            for chunk in data.chunks(64) {
                let rv = call!(
                    self,
                    C_SignUpdate(s, chunk.as_ptr() as *mut _, chunk.len() as CK_ULONG)
                );
                if rv != CKR_OK {
                    return;
                }
            }
            call!(self, C_SignFinal(s, null_mut(), &mut len))
        } else {
            call!(
                self,
                C_Sign(
                    s,
                    data.as_ptr() as *mut _,
                    data.len() as CK_ULONG,
                    null_mut(),
                    &mut len
                )
            )
        };
        if rv != CKR_OK {
            return;
        }
        let mut sig = vec![0u8; len as usize];
        let rv = if multi {
            call!(self, C_SignFinal(s, sig.as_mut_ptr(), &mut len))
        } else {
            call!(
                self,
                C_Sign(
                    s,
                    data.as_ptr() as *mut _,
                    data.len() as CK_ULONG,
                    sig.as_mut_ptr(),
                    &mut len
                )
            )
        };
        if rv != CKR_OK {
            return;
        }
        sig.truncate(len as usize);
        let public = &self.keys[label.as_str()];
        assert!(
            verifies(public, ec, pss, &data, &sig),
            "thread {}: a {label} signature ({}) does not verify",
            self.index,
            if multi { "multi-part" } else { "single-part" }
        );
    }

    /// C_Verify with a public key found by label, of a random signature: never CKR_OK.
    fn verify(&mut self) {
        let Some((key, known)) = self.some_known(CKO_PUBLIC_KEY, "") else {
            return self.find();
        };
        let ec = known.label.starts_with(b"p");
        let s = self.session();
        let mut mech = mechanism(if ec {
            CKM_ECDSA_SHA256
        } else {
            CKM_SHA256_RSA_PKCS
        });
        if call!(self, C_VerifyInit(s, &mut mech, key)) != CKR_OK {
            return;
        }
        let data = self.rng.bytes(32);
        let sig = self.rng.bytes(if ec {
            64
        } else if known.label == b"rsa3072" {
            384
        } else {
            256
        });
        let rv = call!(
            self,
            C_Verify(
                s,
                data.as_ptr() as *mut _,
                32,
                sig.as_ptr() as *mut _,
                sig.len() as CK_ULONG
            )
        );
        assert_ne!(
            rv, CKR_OK,
            "thread {}: a random signature verified",
            self.index
        );
    }

    /// RSA-OAEP or PKCS#1 encryption with the public key (OpenSSL), decryption through the
    /// module with a size query: the plaintext comes back.
    fn decrypt(&mut self) {
        let Some((key, known)) = self.some_known(CKO_PRIVATE_KEY, "rsa") else {
            return self.find();
        };
        let label = String::from_utf8_lossy(&known.label).to_string();
        let n = 1 + self.rng.below(60);
        let plain = self.rng.bytes(n);
        let oaep = self.rng.chance(60);
        let ciphertext = encrypt(&self.keys[label.as_str()], oaep, &plain);
        let s = self.session();
        let mut params = oaep_sha256();
        let mut mech = with_params(
            if oaep {
                CKM_RSA_PKCS_OAEP
            } else {
                CKM_RSA_PKCS
            },
            oaep.then_some(&mut params),
        );
        if call!(self, C_DecryptInit(s, &mut mech, key)) != CKR_OK {
            return;
        }
        let mut len: CK_ULONG = 0;
        let c = ciphertext.as_ptr() as *mut _;
        let n = ciphertext.len() as CK_ULONG;
        if call!(self, C_Decrypt(s, c, n, null_mut(), &mut len)) != CKR_OK {
            return;
        }
        let mut out = vec![0u8; len as usize];
        if call!(self, C_Decrypt(s, c, n, out.as_mut_ptr(), &mut len)) != CKR_OK {
            return;
        }
        out.truncate(len as usize);
        assert_eq!(out, plain, "thread {}: {label} decrypted wrong", self.index);
    }

    /// An AES key wrapped with RSA-OAEP (OpenSSL), unwrapped as a session object (kept
    /// sensitive half the time), decrypting OpenSSL's AES-256-CBC content (with a size
    /// query), destroyed.
    fn unwrap(&mut self) {
        let Some((key, known)) = self.some_known(CKO_PRIVATE_KEY, "rsa") else {
            return self.find();
        };
        let label = String::from_utf8_lossy(&known.label).to_string();
        let aes = self.rng.bytes(32);
        let wrapped = encrypt(&self.keys[label.as_str()], true, &aes);
        let s = self.session();
        let mut params = oaep_sha256();
        let mut mech = with_params(CKM_RSA_PKCS_OAEP, Some(&mut params));
        let mut class = CKO_SECRET_KEY;
        let mut kt = CKK_AES;
        let mut f: CK_BBOOL = CK_FALSE as CK_BBOOL;
        let mut sensitive: CK_BBOOL = CK_BBOOL::from(self.rng.chance(50));
        let mut yes: CK_BBOOL = CK_TRUE as CK_BBOOL;
        let mut t = [
            attr(CKA_CLASS, &mut class),
            attr(CKA_KEY_TYPE, &mut kt),
            attr(CKA_TOKEN, &mut f),
            attr(CKA_SENSITIVE, &mut sensitive),
            attr(CKA_DECRYPT, &mut yes),
        ];
        let mut out = 0;
        let rv = call!(
            self,
            C_UnwrapKey(
                s,
                &mut mech,
                key,
                wrapped.as_ptr() as *mut _,
                wrapped.len() as CK_ULONG,
                t.as_mut_ptr(),
                t.len() as CK_ULONG,
                &mut out
            )
        );
        if rv != CKR_OK {
            return;
        }
        let n = self.rng.below(100);
        let plain = self.rng.bytes(n);
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.rng.bytes(16));
        let content = openssl::symm::encrypt(
            openssl::symm::Cipher::aes_256_cbc(),
            &aes,
            Some(&iv),
            &plain,
        )
        .unwrap();
        let mut mech = with_params(CKM_AES_CBC_PAD, Some(&mut iv));
        if call!(self, C_DecryptInit(s, &mut mech, out)) == CKR_OK {
            let c = content.as_ptr() as *mut _;
            let n = content.len() as CK_ULONG;
            let mut len: CK_ULONG = 0;
            if call!(self, C_Decrypt(s, c, n, null_mut(), &mut len)) == CKR_OK {
                let mut got = vec![0u8; len as usize];
                if call!(self, C_Decrypt(s, c, n, got.as_mut_ptr(), &mut len)) == CKR_OK {
                    got.truncate(len as usize);
                    assert_eq!(
                        got, plain,
                        "thread {}: AES-CBC-PAD decrypted wrong",
                        self.index
                    );
                }
            }
        }
        call!(self, C_DestroyObject(s, out));
    }

    /// A session certificate object: created, read back, relabelled, destroyed.
    fn create_and_destroy(&mut self) {
        let s = self.session();
        let cert = std::fs::read(harness::fixtures_dir().join("keys/p256.crt.pem")).unwrap();
        let der = openssl::x509::X509::from_pem(&cert)
            .unwrap()
            .to_der()
            .unwrap();
        let label = format!("torture-{}-{}", self.index, self.rng.next() % 1000);
        let mut class = CKO_CERTIFICATE;
        let mut ct = CKC_X_509;
        let mut f: CK_BBOOL = CK_FALSE as CK_BBOOL;
        let mut t = [
            attr(CKA_CLASS, &mut class),
            attr(CKA_CERTIFICATE_TYPE, &mut ct),
            attr(CKA_TOKEN, &mut f),
            CK_ATTRIBUTE {
                type_: CKA_LABEL,
                pValue: label.as_ptr() as *mut _,
                ulValueLen: label.len() as CK_ULONG,
            },
            CK_ATTRIBUTE {
                type_: CKA_VALUE,
                pValue: der.as_ptr() as *mut _,
                ulValueLen: der.len() as CK_ULONG,
            },
        ];
        let mut h = 0;
        if call!(self, C_CreateObject(s, t.as_mut_ptr(), 5, &mut h)) != CKR_OK {
            return;
        }
        self.known.insert(
            h,
            Known {
                class: CKO_CERTIFICATE,
                label: label.clone().into_bytes(),
            },
        );
        self.attributes_of(s, h, label.as_bytes());
        let new = format!("{label}-x");
        let mut t = [CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: new.as_ptr() as *mut _,
            ulValueLen: new.len() as CK_ULONG,
        }];
        if call!(self, C_SetAttributeValue(s, h, t.as_mut_ptr(), 1)) == CKR_OK {
            self.known.insert(
                h,
                Known {
                    class: CKO_CERTIFICATE,
                    label: new.clone().into_bytes(),
                },
            );
            self.attributes_of(s, h, new.as_bytes());
        }
        if self.rng.chance(70) && call!(self, C_DestroyObject(s, h)) == CKR_OK {
            self.known.remove(&h);
        }
        // Otherwise left to die with its session.
    }

    fn attributes_of(&mut self, s: CK_SESSION_HANDLE, h: CK_OBJECT_HANDLE, want: &[u8]) {
        let mut label = vec![0u8; 128];
        let mut t = [CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: label.as_mut_ptr() as *mut _,
            ulValueLen: 128,
        }];
        if call!(self, C_GetAttributeValue(s, h, t.as_mut_ptr(), 1)) == CKR_OK {
            label.truncate(t[0].ulValueLen as usize);
            assert_eq!(
                label, want,
                "thread {}: object {h} has another label",
                self.index
            );
        }
    }

    /// A P-256 session key pair where the store allows it: generated, used, destroyed.
    fn generate(&mut self) {
        if !self.generate {
            return self.info();
        }
        let s = self.session();
        let mut mech = mechanism(CKM_EC_KEY_PAIR_GEN);
        let mut params: Vec<u8> = vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        let label = format!("gen-{}-{}", self.index, self.rng.next() % 100_000);
        let mut t: CK_BBOOL = CK_TRUE as CK_BBOOL;
        let mut public = [
            CK_ATTRIBUTE {
                type_: CKA_EC_PARAMS,
                pValue: params.as_mut_ptr() as *mut _,
                ulValueLen: params.len() as CK_ULONG,
            },
            CK_ATTRIBUTE {
                type_: CKA_LABEL,
                pValue: label.as_ptr() as *mut _,
                ulValueLen: label.len() as CK_ULONG,
            },
            attr(CKA_TOKEN, &mut t),
        ];
        let mut t2: CK_BBOOL = CK_TRUE as CK_BBOOL;
        let mut private = [
            CK_ATTRIBUTE {
                type_: CKA_LABEL,
                pValue: label.as_ptr() as *mut _,
                ulValueLen: label.len() as CK_ULONG,
            },
            attr(CKA_TOKEN, &mut t2),
        ];
        let (mut pubh, mut privh) = (0, 0);
        let rv = call!(
            self,
            C_GenerateKeyPair(
                s,
                &mut mech,
                public.as_mut_ptr(),
                3,
                private.as_mut_ptr(),
                2,
                &mut pubh,
                &mut privh
            )
        );
        if rv != CKR_OK {
            return;
        }
        let mut m = mechanism(CKM_ECDSA);
        if call!(self, C_SignInit(s, &mut m, privh)) == CKR_OK {
            let data = [7u8; 32];
            let mut sig = [0u8; 64];
            let mut len = 64;
            call!(
                self,
                C_Sign(s, data.as_ptr() as *mut _, 32, sig.as_mut_ptr(), &mut len)
            );
        }
        call!(self, C_DestroyObject(s, privh));
    }

    fn info(&mut self) {
        match self.rng.below(5) {
            0 => {
                let mut i: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
                call!(self, C_GetTokenInfo(self.slot, &mut i));
            }
            1 => {
                let mut i: CK_SLOT_INFO = unsafe { std::mem::zeroed() };
                call!(self, C_GetSlotInfo(self.slot, &mut i));
            }
            2 => {
                let s = self.session();
                let mut i: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
                call!(self, C_GetSessionInfo(s, &mut i));
            }
            3 => {
                let mut n: CK_ULONG = 0;
                if call!(self, C_GetMechanismList(self.slot, null_mut(), &mut n)) == CKR_OK {
                    let mut list = vec![0; n as usize];
                    call!(
                        self,
                        C_GetMechanismList(self.slot, list.as_mut_ptr(), &mut n)
                    );
                }
            }
            _ => {
                let mut i: CK_MECHANISM_INFO = unsafe { std::mem::zeroed() };
                let m = [CKM_RSA_PKCS, CKM_ECDSA, CKM_SHA256, 0x8000_1234][self.rng.below(4)];
                call!(self, C_GetMechanismInfo(self.slot, m, &mut i));
            }
        }
    }

    fn random(&mut self) {
        let s = self.session();
        let mut buf = vec![0u8; self.rng.below(1024)];
        call!(
            self,
            C_GenerateRandom(s, buf.as_mut_ptr(), buf.len() as CK_ULONG)
        );
    }

    fn digest(&mut self) {
        let s = self.session();
        let mut mech = mechanism(CKM_SHA256);
        if call!(self, C_DigestInit(s, &mut mech)) != CKR_OK {
            return;
        }
        let n = self.rng.below(500);
        let data = self.rng.bytes(n);
        let mut out = [0u8; 32];
        let mut len: CK_ULONG = 32;
        let rv = if self.rng.chance(50) {
            for c in data.chunks(100) {
                if call!(
                    self,
                    C_DigestUpdate(s, c.as_ptr() as *mut _, c.len() as CK_ULONG)
                ) != CKR_OK
                {
                    return;
                }
            }
            call!(self, C_DigestFinal(s, out.as_mut_ptr(), &mut len))
        } else {
            call!(
                self,
                C_Digest(
                    s,
                    data.as_ptr() as *mut _,
                    data.len() as CK_ULONG,
                    out.as_mut_ptr(),
                    &mut len
                )
            )
        };
        if rv == CKR_OK {
            assert_eq!(
                out,
                openssl::sha::sha256(&data),
                "thread {}: wrong digest",
                self.index
            );
        }
    }
}

fn attr<T>(type_: CK_ATTRIBUTE_TYPE, v: &mut T) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_,
        pValue: v as *mut T as *mut _,
        ulValueLen: std::mem::size_of::<T>() as CK_ULONG,
    }
}

/// RSA-OAEP with SHA-256 and MGF1-SHA-256, no label.
fn oaep_sha256() -> CK_RSA_PKCS_OAEP_PARAMS {
    CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        source: CKZ_DATA_SPECIFIED,
        pSourceData: null_mut(),
        ulSourceDataLen: 0,
    }
}

/// A mechanism with its parameter structure, or none.
fn with_params<T>(m: CK_MECHANISM_TYPE, params: Option<&mut T>) -> CK_MECHANISM {
    match params {
        Some(p) => CK_MECHANISM {
            mechanism: m,
            pParameter: p as *mut T as *mut _,
            ulParameterLen: std::mem::size_of::<T>() as CK_ULONG,
        },
        None => mechanism(m),
    }
}

fn mechanism(m: CK_MECHANISM_TYPE) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism: m,
        pParameter: null_mut(),
        ulParameterLen: 0,
    }
}

fn verifies(key: &PKey<Public>, ec: bool, pss: bool, data: &[u8], sig: &[u8]) -> bool {
    use openssl::hash::MessageDigest;
    let der;
    let sig = if ec {
        let half = sig.len() / 2;
        let r = openssl::bn::BigNum::from_slice(&sig[..half]).unwrap();
        let s = openssl::bn::BigNum::from_slice(&sig[half..]).unwrap();
        der = openssl::ecdsa::EcdsaSig::from_private_components(r, s)
            .unwrap()
            .to_der()
            .unwrap();
        &der[..]
    } else {
        sig
    };
    let mut v = openssl::sign::Verifier::new(MessageDigest::sha256(), key).unwrap();
    if pss {
        v.set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS).unwrap();
        v.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::custom(32))
            .unwrap();
    }
    v.update(data).unwrap();
    v.verify(sig).unwrap_or(false)
}

fn encrypt(key: &PKey<Public>, oaep: bool, plain: &[u8]) -> Vec<u8> {
    let mut e = openssl::encrypt::Encrypter::new(key).unwrap();
    if oaep {
        e.set_rsa_padding(openssl::rsa::Padding::PKCS1_OAEP)
            .unwrap();
        e.set_rsa_oaep_md(openssl::hash::MessageDigest::sha256())
            .unwrap();
        e.set_rsa_mgf1_md(openssl::hash::MessageDigest::sha256())
            .unwrap();
    } else {
        e.set_rsa_padding(openssl::rsa::Padding::PKCS1).unwrap();
    }
    let mut out = vec![0u8; e.encrypt_len(plain).unwrap()];
    let n = e.encrypt(plain, &mut out).unwrap();
    out.truncate(n);
    out
}

fn fixture_keys() -> HashMap<&'static str, PKey<Public>> {
    LABELS
        .iter()
        .map(|l| {
            let pem =
                std::fs::read(harness::fixtures_dir().join(format!("keys/{l}.crt.pem"))).unwrap();
            let cert = openssl::x509::X509::from_pem(&pem).unwrap();
            (*l, cert.public_key().unwrap())
        })
        .collect()
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs the threads against an initialised module's slot; returns the call counts.
fn torture(
    name: &str,
    api: &Api,
    slot: CK_SLOT_ID,
    deadline: Duration,
    tolerated: &[(&'static str, CK_RV)],
    avoid: &[&'static str],
) {
    let seconds = env_u64("TORTURE_SECONDS", 20);
    let threads = env_u64("TORTURE_THREADS", 16) as usize;
    let seed = env_u64(
        "TORTURE_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    eprintln!("torture {name}: {threads} threads for {seconds} s, TORTURE_SEED={seed}");
    let keys = fixture_keys();
    let watch = Arc::new(Watch::new(threads));
    let watchdog = {
        let watch = watch.clone();
        std::thread::spawn(move || watch.run(deadline))
    };
    let end = Instant::now() + Duration::from_secs(seconds);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| {
                let (watch, keys) = (&*watch, &keys);
                scope.spawn(move || {
                    let mut w = Worker {
                        api,
                        slot,
                        index,
                        watch,
                        keys,
                        rng: Rng(seed ^ (index as u64).wrapping_mul(0x9e37_79b9)),
                        sessions: Vec::new(),
                        known: HashMap::new(),
                        counts: BTreeMap::new(),
                        codes: BTreeMap::new(),
                        generate: true,
                        tolerated,
                        avoid,
                        used_session: None,
                        used_object: None,
                        seen: Vec::new(),
                    };
                    while Instant::now() < end {
                        w.step();
                        w.after_step();
                    }
                    for s in std::mem::take(&mut w.sessions) {
                        call!(w, C_CloseSession(s));
                    }
                    (w.counts, w.codes)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(p) => {
                    let m = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| {
                            p.downcast_ref::<&str>()
                                .map(std::string::ToString::to_string)
                        })
                        .unwrap_or_default();
                    panic!("torture {name} (TORTURE_SEED={seed}): {m}");
                }
            })
            .collect()
    });
    watch.stop.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    for (c, k) in results {
        for (f, n) in c {
            *counts.entry(f).or_default() += n;
        }
        for (f, n) in k {
            *codes.entry(f).or_default() += n;
        }
    }
    let total: u64 = counts.values().sum();
    eprintln!("torture {name}: {total} calls: {counts:?}");
    eprintln!("torture {name}: codes other than CKR_OK: {codes:?}");
    // The harness reached the calls that matter (a remote slot under faults may spend a
    // short run waiting on a throttled vault: there only searches are sure to happen).
    let required: &[&str] = if name == "key-vault" {
        &["C_FindObjects"]
    } else {
        &["C_Sign", "C_FindObjects", "C_GetAttributeValue", "C_Digest"]
    };
    for f in required {
        assert!(
            counts.get(f).copied().unwrap_or(0) > 0,
            "torture {name}: no {f} was made"
        );
    }
}

/// C_Finalize when a target's run ends, also when it failed (the next target initializes
/// the same in-process module again).
struct Initialized<'a>(&'a Api);

impl Drop for Initialized<'_> {
    fn drop(&mut self) {
        let rv = unsafe { (self.0.f.C_Finalize.unwrap())(null_mut()) };
        if !std::thread::panicking() {
            assert_eq!(rv, CKR_OK, "C_Finalize: {}", rv_name(rv));
        }
    }
}

fn pin_config(extra: &str) -> String {
    let hash = identify_pkcs11::admin::hash_pin(PIN.as_bytes()).unwrap();
    format!("pin_hash = {hash:?}\npin_tries = 1000\n{extra}")
}

#[test]
fn torture_a_directory_slot() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let store = harness::FixtureStore::new("fixtures", &pin_config(""));
    let api = Api::ours();
    api.initialize(Some(&store.config));
    let _initialized = Initialized(&api);
    let slot = api.slot_labelled("fixtures");
    torture("directory", &api, slot, Duration::from_secs(60), &[], &[]);
}

#[test]
fn torture_a_key_vault_slot_with_faults() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = harness::Emulator::start();
    let config = emu.config_officer(
        "fixtures",
        &pin_config("deadline_seconds = 5\nmax_retries = 2\nallow_destroy = true"),
    );
    emu.admin(
        "PUT",
        "/faults",
        r#"{"latency_ms": 2, "jitter_ms": 8, "error_rate_503": 0.03, "reset_rate": 0.02,
            "throttle": {"scale": 0.25, "retry_after": true}}"#,
    );
    let api = Api::ours();
    api.initialize(Some(&config));
    let _initialized = Initialized(&api);
    let slot = api.slot_labelled("fixtures");
    // A call is bounded by the slot's deadline (5 s); twelve times that is a hang.
    torture("key-vault", &api, slot, Duration::from_secs(60), &[], &[]);
    let stats = emu.stats();
    eprintln!("torture key-vault: the emulator saw {}", stats["by_status"]);
}

#[test]
fn torture_softhsm2() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let module = std::env::var("SOFTHSM2_MODULE")
        .unwrap_or_else(|_| "/usr/lib/softhsm/libsofthsm2.so".into());
    assert!(
        std::path::Path::new(&module).exists(),
        "SoftHSM2 is not installed ({module}): apt-get install softhsm2 opensc"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("bash")
        .arg(harness::fixtures_dir().join("setup.sh"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // SAFETY: set before SoftHSM2 reads it; this test binary's other tests do not read it.
    unsafe { std::env::set_var("SOFTHSM2_CONF", dir.path().join("softhsm2.conf")) };
    let api = Api::load(&module);
    api.initialize(None);
    let _initialized = Initialized(&api);
    let slot = api.slot_labelled("fixtures");
    // SoftHSM2 2.6 answers these outside the specification's lists: a generation racing
    // others fails with CKR_GENERAL_ERROR, and an init with a destroyed key says
    // CKR_OBJECT_HANDLE_INVALID where the list has CKR_KEY_HANDLE_INVALID. Counted, shown
    // and tolerated for SoftHSM2 only; this module gets no such allowance.
    let tolerated = [
        ("C_GenerateKeyPair", CKR_GENERAL_ERROR),
        ("C_SignInit", CKR_OBJECT_HANDLE_INVALID),
        ("C_VerifyInit", CKR_OBJECT_HANDLE_INVALID),
        ("C_DecryptInit", CKR_OBJECT_HANDLE_INVALID),
        ("C_UnwrapKey", CKR_OBJECT_HANDLE_INVALID),
    ];
    // SoftHSM2 2.6 does not survive the whole mix: a C_Logout racing searches makes its
    // C_FindObjectsInit answer CKR_GENERAL_ERROR, and C_CloseAllSessions racing them
    // crashes it (SIGSEGV inside C_FindObjectsInit, seen with gdb). Those two steps are
    // left out for it (TORTURE_SOFTHSM_AVOID= runs everything); this module runs them all.
    static AVOID: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let avoid: Vec<&'static str> = AVOID
        .get_or_init(|| {
            std::env::var("TORTURE_SOFTHSM_AVOID")
                .unwrap_or_else(|_| "logout,close-all".into())
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .iter()
        .map(String::as_str)
        .collect();
    torture(
        "softhsm2",
        &api,
        slot,
        Duration::from_secs(60),
        &tolerated,
        &avoid,
    );
}
