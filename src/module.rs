//! The module: configuration, slots, sessions and the object cache, built by C_Initialize
//! and dropped by C_Finalize. Every C_* lands in one method here after `ffi/` decoded its
//! arguments; nothing here sees a raw pointer. The methods dispatch: slot and token facts
//! are in `token.rs`, object writes in `write.rs`, sign/verify/encrypt/decrypt/digest in
//! `operations.rs` (their state machines in `src/session/`), configuration → backends in
//! `src/backend/open.rs`, template reading in `src/object/template.rs`.
//!
//! Locking: a session's lock is held only to read or change its operation state; objects
//! are `Arc`s taken out of the cache; store calls (sign, decrypt, list, write) run with no
//! lock held (ARCHITECTURE.md §2 rule 4).

mod operations;
mod token;
mod write;

pub use crate::object::template::Template;
pub use crate::session::{CryptSide, Output, SignSide};
pub use token::pad;

use crate::backend::azure::AzureRuntime;
use crate::backend::{Backend, KeyRecord, open};
use crate::config::{Config, SlotConfig};
use crate::error::{Error, Result};
use crate::lock_order::Mutex;
use crate::object::refresher::Refresher;
use crate::object::{Object, ObjectCache, SlotStore};
use crate::session::{self, FindOp, Session, SessionTable};
use crate::telemetry::{KeyUse, SlotFacts, Telemetry};
use cryptoki_sys::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A configured slot. Its backend has one owner, the object cache: `Module::backend`.
pub struct Slot {
    pub config: SlotConfig,
}

pub struct Module {
    pub pid: u32,
    /// The network runtime of key-vault / managed-hsm slots, if any.
    runtime: Option<Arc<AzureRuntime>>,
    pub slots: Vec<Slot>,
    pub objects: Arc<ObjectCache>,
    pub sessions: SessionTable,
    /// Consecutive wrong PINs per slot (login throttling).
    pin_tries: crate::session::tries::PinTries,
    /// Lists remote slots again in the background (none without threads of our own).
    refresher: Option<Refresher>,
    /// The audit log and the metrics.
    pub telemetry: Arc<Telemetry>,
}

/// How long C_Finalize waits for the refresh thread.
const REFRESHER_STOP_BOUND: Duration = Duration::from_secs(2);

const MAX_PIN_LEN: usize = 256;

impl Module {
    /// Builds the module. `may_create_threads` is false when the application set
    /// `CKF_LIBRARY_CANT_CREATE_OS_THREADS`: network slots then run on the caller's thread.
    pub fn new(config: Config, may_create_threads: bool) -> Result<Module> {
        let runtime = open::runtime(&config, may_create_threads)?;
        let telemetry = Telemetry::new(config.audit.clone(), config.metrics.clone());
        let mut slots = Vec::new();
        let mut stores = Vec::new();
        for sc in &config.slots {
            let backend = open::open(sc, runtime.as_ref(), &telemetry)?;
            stores.push(SlotStore {
                backend,
                ttl: Duration::from_secs(sc.refresh_seconds),
                login_required: sc.pin_hash.is_some(),
            });
            slots.push(Slot { config: sc.clone() });
        }
        let remote: Vec<usize> = stores
            .iter()
            .enumerate()
            .filter(|(_, s)| s.backend.remote())
            .map(|(i, _)| i)
            .collect();
        let objects = Arc::new(ObjectCache::new(stores));
        let refresher = if may_create_threads && !remote.is_empty() {
            Some(Refresher::start(objects.clone(), remote)?)
        } else {
            None
        };
        if may_create_threads {
            let (cache, labels) = (
                objects.clone(),
                slots
                    .iter()
                    .map(|s| s.config.label.clone())
                    .collect::<Vec<_>>(),
            );
            telemetry.start_writer(move || {
                labels
                    .iter()
                    .zip(cache.counts())
                    .enumerate()
                    .map(|(i, (label, counts))| SlotFacts {
                        label: label.clone(),
                        counts,
                        certificates: cache.certificate_expiry(i),
                    })
                    .collect::<Vec<_>>()
            })?;
        }
        Ok(Module {
            pid: std::process::id(),
            runtime,
            slots,
            objects,
            sessions: SessionTable::default(),
            pin_tries: Default::default(),
            refresher,
            telemetry,
        })
    }

    /// C_Finalize: stops background work (the network runtime's threads, joined within a
    /// bound); calls still running finish with an error.
    pub fn shutdown(&self) {
        if let Some(rt) = &self.runtime {
            rt.cancel();
        }
        if let Some(r) = &self.refresher
            && !r.stop(REFRESHER_STOP_BOUND)
        {
            tracing::warn!("the refresh thread did not stop within 2 s; left to end on its own");
        }
        if let Some(rt) = &self.runtime {
            rt.shutdown();
        }
        self.telemetry.stop(REFRESHER_STOP_BOUND);
    }

    /// Runs one use of a key of `slot` and records it (audit log, metrics).
    fn key_use<T>(
        &self,
        slot: usize,
        record: &KeyRecord,
        operation: &'static str,
        mechanism: &str,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let started = std::time::Instant::now();
        let r = f();
        let result = r.as_ref().map(|_| ()).map_err(Clone::clone);
        self.telemetry.key_use(&KeyUse {
            slot: self.slots.get(slot).map_or("", |s| s.config.label.as_str()),
            key: &record.name,
            version: record.version.as_deref(),
            operation,
            mechanism,
            result: &result,
            latency: started.elapsed(),
        });
        r
    }

    pub fn slot(&self, id: CK_SLOT_ID) -> Result<(usize, &Slot)> {
        let index = usize::try_from(id).map_err(|_| Error::SlotIdInvalid)?;
        self.slots
            .get(index)
            .map(|s| (index, s))
            .ok_or(Error::SlotIdInvalid)
    }

    // ----- sessions (§5.6) -----

    /// The store of slot `slot`, from its one owner, the object cache (which asserts, in
    /// debug builds, that no lock of the hierarchy is held across the backend call).
    pub fn backend(&self, slot: usize) -> Result<Arc<dyn Backend>> {
        self.objects.backend(slot)
    }

    fn session(&self, h: CK_SESSION_HANDLE) -> Result<Arc<Mutex<Session>>> {
        self.sessions.get(h)
    }

    /// Runs `f` on the state of session `h` under its lock.
    fn with_session<R>(
        &self,
        h: CK_SESSION_HANDLE,
        f: impl FnOnce(&mut Session) -> Result<R>,
    ) -> Result<R> {
        locked(&self.session(h)?, f)
    }

    fn logged_in(&self, slot: usize) -> bool {
        self.sessions.is_logged_in(slot)
    }

    pub fn open_session(&self, id: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE> {
        let (index, _) = self.slot(id)?;
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(Error::SessionParallelNotSupported);
        }
        self.sessions.open(index, flags & CKF_RW_SESSION != 0)
    }

    pub fn close_session(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        let before = self.sessions.slot_of(h)?.0;
        let was_logged_in = self.logged_in(before);
        let slot = self.sessions.close(h)?;
        self.objects.close_session(slot, h)?;
        self.after_implicit_logout(slot, was_logged_in)
    }

    pub fn close_all_sessions(&self, id: CK_SLOT_ID) -> Result<()> {
        let (index, _) = self.slot(id)?;
        let was_logged_in = self.logged_in(index);
        for h in self.sessions.close_all(index)? {
            self.objects.close_session(index, h)?;
        }
        self.after_implicit_logout(index, was_logged_in)
    }

    /// Closing the last session logs the slot out: as after C_Logout, the handles to
    /// private objects become invalid for good.
    fn after_implicit_logout(&self, slot: usize, was_logged_in: bool) -> Result<()> {
        if was_logged_in && !self.logged_in(slot) {
            self.objects.reissue_private(slot)?;
        }
        Ok(())
    }

    pub fn session_info(&self, h: CK_SESSION_HANDLE) -> Result<CK_SESSION_INFO> {
        let (slot, read_write) = self.sessions.slot_of(h)?;
        let user = self.logged_in(slot);
        let state = match (read_write, user) {
            (false, false) => CKS_RO_PUBLIC_SESSION,
            (false, true) => CKS_RO_USER_FUNCTIONS,
            (true, false) => CKS_RW_PUBLIC_SESSION,
            (true, true) => CKS_RW_USER_FUNCTIONS,
        };
        Ok(CK_SESSION_INFO {
            slotID: CK_SLOT_ID::try_from(slot).map_err(|e| Error::Internal(e.to_string()))?,
            state,
            flags: CKF_SERIAL_SESSION | if read_write { CKF_RW_SESSION } else { 0 },
            ulDeviceError: 0,
        })
    }

    /// Login is per application (§5.6): it covers every session of the slot.
    pub fn login(&self, h: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &[u8]) -> Result<()> {
        let slot = self.sessions.slot_of(h)?.0;
        match user {
            CKU_USER => {}
            // No key here needs a per-operation login (CKA_ALWAYS_AUTHENTICATE is false).
            CKU_CONTEXT_SPECIFIC => return Err(Error::OperationNotInitialized),
            // The module has no security officer: tokens are set up by configuration.
            _ => return Err(Error::UserTypeInvalid),
        }
        if pin.len() > MAX_PIN_LEN {
            return Err(Error::PinLenRange);
        }
        let s = self.slots.get(slot).ok_or(Error::SlotIdInvalid)?;
        self.sessions.login(slot, || {
            let Some(hash) = &s.config.pin_hash else {
                return Ok(());
            };
            let policy = pin_policy(&s.config);
            self.pin_tries
                .begin(slot, policy, Instant::now())
                .inspect_err(|_| {
                    tracing::warn!(slot = %s.config.label, "C_Login refused: the PIN is locked");
                })?;
            let verdict = crate::config::verify_pin(pin, hash);
            let locked =
                self.pin_tries
                    .finish(slot, policy, verdict.as_ref().ok().copied(), Instant::now());
            if verdict? {
                return Ok(());
            }
            if locked {
                tracing::warn!(
                    slot = %s.config.label,
                    "C_Login: wrong PIN; {} in a row lock the slot for {} s",
                    policy.tries,
                    policy.lockout.as_secs()
                );
            } else {
                tracing::warn!(slot = %s.config.label, "C_Login: wrong PIN");
            }
            Err(Error::PinIncorrect)
        })
    }

    /// The slot's login-throttling state (C_GetTokenInfo's PIN flags).
    pub fn pin_state(&self, slot: usize) -> Option<crate::session::tries::PinState> {
        let s = self.slots.get(slot)?;
        s.config.pin_hash.as_ref()?;
        Some(
            self.pin_tries
                .state(slot, pin_policy(&s.config), Instant::now()),
        )
    }

    pub fn logout(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        let slot = self.sessions.slot_of(h)?.0;
        self.sessions.logout(slot)?;
        // §5.6 C_Logout: the application's handles to private objects become invalid and
        // stay so after a new login; the objects get new handles.
        self.objects.reissue_private(slot)
    }

    // ----- objects (§5.7) -----

    fn object(&self, h: CK_OBJECT_HANDLE) -> Result<Arc<Object>> {
        self.objects.get(h, |slot| self.logged_in(slot))
    }

    /// The object, checked to belong to the session's slot.
    fn session_object(&self, slot: usize, h: CK_OBJECT_HANDLE) -> Result<Arc<Object>> {
        let o = self.object(h)?;
        if o.slot != slot {
            return Err(Error::ObjectHandleInvalid);
        }
        Ok(o)
    }

    pub fn attributes_of(
        &self,
        session: CK_SESSION_HANDLE,
        h: CK_OBJECT_HANDLE,
    ) -> Result<Arc<Object>> {
        let slot = self.sessions.slot_of(session)?.0;
        self.session_object(slot, h)
    }

    pub fn find_init(&self, h: CK_SESSION_HANDLE, template: &Template) -> Result<()> {
        let s = self.session(h)?;
        let slot = locked(&s, |g| {
            if g.find.is_some() {
                return Err(Error::OperationActive);
            }
            Ok(g.slot)
        })?;
        let handles = self.objects.find(slot, template, self.logged_in(slot))?;
        locked(&s, |g| session::install(&mut g.find, FindOp::new(handles)))
    }

    pub fn find_next(&self, h: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>> {
        self.with_session(h, |s| {
            let f = s.find.as_mut().ok_or(Error::OperationNotInitialized)?;
            Ok(f.next(max))
        })
    }

    pub fn find_final(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        self.with_session(h, |s| {
            s.find
                .take()
                .map(|_| ())
                .ok_or(Error::OperationNotInitialized)
        })
    }

    // ----- misc -----

    pub fn generate_random(&self, h: CK_SESSION_HANDLE, out: &mut [u8]) -> Result<()> {
        let slot = self.sessions.slot_of(h)?.0;
        if let Some(bytes) = self.backend(slot)?.random(out.len()) {
            let bytes = bytes?;
            if bytes.len() != out.len() {
                return Err(Error::Backend(format!(
                    "the store's random service gave {} bytes, not {}",
                    bytes.len(),
                    out.len()
                )));
            }
            out.copy_from_slice(&bytes);
            return Ok(());
        }
        getrandom::fill(out).map_err(|e| {
            tracing::error!(error = %e, "the operating system's random source failed");
            Error::RandomNoRng
        })
    }

    /// C_SessionCancel (v3.0): ends the operations named by `flags`.
    pub fn session_cancel(&self, h: CK_SESSION_HANDLE, flags: CK_FLAGS) -> Result<()> {
        self.with_session(h, |s| {
            s.cancel(flags);
            Ok(())
        })
    }

    pub fn check_session(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        self.session(h).map(|_| ())
    }
}

/// Runs `f` on a session's state under its lock (never a backend call inside).
fn locked<R>(s: &Arc<Mutex<Session>>, f: impl FnOnce(&mut Session) -> Result<R>) -> Result<R> {
    let mut g = session::lock(s)?;
    f(&mut g)
}

/// An object handle that is not a key, in a key position, is a key handle error.
fn key_handle(e: Error) -> Error {
    match e {
        Error::ObjectHandleInvalid => Error::KeyHandleInvalid,
        other => other,
    }
}

fn pin_policy(c: &crate::config::SlotConfig) -> crate::session::tries::Policy {
    crate::session::tries::Policy {
        tries: c.pin_tries,
        lockout: c.pin_lockout,
    }
}
