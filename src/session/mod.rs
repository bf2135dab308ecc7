//! The session table: handles that are never reused, one lock per session, and the active
//! operations of each session.

//!
//! The operation types and their state machines (init checks, `CKR_OPERATION_ACTIVE` /
//! `CKR_OPERATION_NOT_INITIALIZED`, size queries and short buffers that keep an operation
//! active, multi-part rules) live in the submodules and never call a store: the module
//! takes an operation out of its session under the session's lock, and calls the store with
//! no lock held.

pub mod crypt;
pub mod digest;
pub mod find;
pub mod sign;
pub mod tries;

pub use crypt::{Cipher, CryptOp, CryptSide, Delivered};
pub use digest::DigestOp;
pub use find::FindOp;
pub use sign::{SignOp, SignSide};

use crate::error::{Error, Result};
use crate::lock_order::{Level, Mutex, MutexGuard};
use cryptoki_sys::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A session's operation state (its slot and read-write flag live in the table's entry,
/// readable without this lock).
pub struct Session {
    pub slot: usize,
    pub find: Option<FindOp>,
    pub sign: Option<SignOp>,
    pub verify: Option<SignOp>,
    pub encrypt: Option<CryptOp>,
    pub decrypt: Option<CryptOp>,
    pub digest: Option<DigestOp>,
}

/// What an output-producing call gives back (§5.2 two-call convention).
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// The caller asked for the length (NULL buffer); the operation stays active.
    Length(usize),
    /// The caller's buffer is too short for this many bytes; the operation stays active.
    TooSmall(usize),
    /// The result; the operation has ended.
    Data(Vec<u8>),
}

/// The answer to a size query or a short buffer for a result of `len` bytes; `None` when
/// the caller's buffer holds it.
pub fn deliver(len: usize, capacity: Option<usize>) -> Option<Output> {
    match capacity {
        None => Some(Output::Length(len)),
        Some(c) if c < len => Some(Output::TooSmall(len)),
        Some(_) => None,
    }
}

/// What a call that may end an operation found in the session.
#[derive(Debug)]
pub enum Taken<Op> {
    /// The operation, taken out of the session (ended there): the caller completes it.
    Op(Op),
    /// The answer needs no work (a size query, a short buffer); the operation stays active.
    Answer(Output),
}

/// Takes an operation out of its session slot unless `check` answers from it: an answer
/// keeps it active, an error ends it; no operation is `CKR_OPERATION_NOT_INITIALIZED`.
pub fn take<Op>(
    slot: &mut Option<Op>,
    check: impl FnOnce(&Op) -> Result<Option<Output>>,
) -> Result<Taken<Op>> {
    let op = slot.as_ref().ok_or(Error::OperationNotInitialized)?;
    match check(op) {
        Ok(Some(out)) => Ok(Taken::Answer(out)),
        Ok(None) => slot
            .take()
            .map(Taken::Op)
            .ok_or(Error::OperationNotInitialized),
        Err(e) => {
            *slot = None;
            Err(e)
        }
    }
}

/// What the first half of a C_*Init decided (under the session lock).
#[derive(Debug, PartialEq, Eq)]
pub enum Init {
    /// A NULL mechanism (v3.0) cancelled the active operation, if any.
    Cancelled,
    /// No operation of the kind is active: build one (with no lock held), then `install`.
    Build,
}

/// The first half of a C_*Init: a NULL mechanism cancels; an active operation of the kind
/// is `CKR_OPERATION_ACTIVE`.
pub fn begin<Op>(slot: &mut Option<Op>, mechanism_given: bool) -> Result<Init> {
    if !mechanism_given {
        *slot = None;
        return Ok(Init::Cancelled);
    }
    if slot.is_some() {
        return Err(Error::OperationActive);
    }
    Ok(Init::Build)
}

/// The second half of a C_*Init: installs the new operation if the slot is still free
/// (another call of the session may have started one meanwhile).
pub fn install<Op>(slot: &mut Option<Op>, new: Op) -> Result<()> {
    if slot.is_some() {
        return Err(Error::OperationActive);
    }
    *slot = Some(new);
    Ok(())
}

impl Session {
    /// C_SessionCancel (v3.0): ends the operations named by `flags`.
    pub fn cancel(&mut self, flags: CK_FLAGS) {
        if flags & CKF_SIGN != 0 {
            self.sign = None;
        }
        if flags & CKF_VERIFY != 0 {
            self.verify = None;
        }
        if flags & CKF_ENCRYPT != 0 {
            self.encrypt = None;
        }
        if flags & CKF_DECRYPT != 0 {
            self.decrypt = None;
        }
        if flags & CKF_DIGEST != 0 {
            self.digest = None;
        }
        if flags & CKF_FIND_OBJECTS != 0 {
            self.find = None;
        }
    }
}

/// Session handles come from one counter for the life of the process, so that a handle
/// kept by one application across another's C_Finalize/C_Initialize never names a new
/// session.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// A session in the table: what never changes about it beside its lock, so that the table
/// answers counts and closes without waiting for any session (src/lock_order.rs).
struct Entry {
    slot: usize,
    read_write: bool,
    state: Arc<Mutex<Session>>,
}

/// The sessions and the login state, under one lock: closing the last session of a slot
/// and logging out happen together, so a concurrent C_Login is never undone.
#[derive(Default)]
struct Table {
    sessions: HashMap<CK_SESSION_HANDLE, Entry>,
    logged_in: HashSet<usize>,
}

pub struct SessionTable {
    table: Mutex<Table>,
}

impl Default for SessionTable {
    fn default() -> SessionTable {
        SessionTable {
            table: Mutex::new(Level::SessionTable, Table::default()),
        }
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::Internal("session lock poisoned".into())
}

impl SessionTable {
    pub fn open(&self, slot: usize, read_write: bool) -> Result<CK_SESSION_HANDLE> {
        let n = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        let handle = CK_SESSION_HANDLE::try_from(n)
            .ok()
            .filter(|h| *h != CK_INVALID_HANDLE)
            .ok_or(Error::HostMemory)?;
        let session = Session {
            slot,
            find: None,
            sign: None,
            verify: None,
            encrypt: None,
            decrypt: None,
            digest: None,
        };
        let entry = Entry {
            slot,
            read_write,
            state: Arc::new(Mutex::new(Level::Session, session)),
        };
        self.table
            .lock()
            .map_err(poisoned)?
            .sessions
            .insert(handle, entry);
        Ok(handle)
    }

    pub fn get(&self, handle: CK_SESSION_HANDLE) -> Result<Arc<Mutex<Session>>> {
        self.table
            .lock()
            .map_err(poisoned)?
            .sessions
            .get(&handle)
            .map(|e| e.state.clone())
            .ok_or(Error::SessionHandleInvalid)
    }

    /// A session's slot and read-write flag, without locking the session.
    pub fn slot_of(&self, handle: CK_SESSION_HANDLE) -> Result<(usize, bool)> {
        self.table
            .lock()
            .map_err(poisoned)?
            .sessions
            .get(&handle)
            .map(|e| (e.slot, e.read_write))
            .ok_or(Error::SessionHandleInvalid)
    }

    /// Removes a session; returns its slot. The last session of a slot logs it out.
    pub fn close(&self, handle: CK_SESSION_HANDLE) -> Result<usize> {
        let mut t = self.table.lock().map_err(poisoned)?;
        let slot = t
            .sessions
            .remove(&handle)
            .ok_or(Error::SessionHandleInvalid)?
            .slot;
        t.logout_if_unused(slot);
        Ok(slot)
    }

    /// Removes every session of a slot and logs it out; returns their handles.
    pub fn close_all(&self, slot: usize) -> Result<Vec<CK_SESSION_HANDLE>> {
        let mut t = self.table.lock().map_err(poisoned)?;
        let mut closed = Vec::new();
        t.sessions.retain(|h, e| {
            let keep = e.slot != slot;
            if !keep {
                closed.push(*h);
            }
            keep
        });
        t.logout_if_unused(slot);
        Ok(closed)
    }

    /// Sessions open on a slot: (all, read-write).
    pub fn count(&self, slot: usize) -> Result<(usize, usize)> {
        Ok(self.table.lock().map_err(poisoned)?.count(slot))
    }

    pub fn is_logged_in(&self, slot: usize) -> bool {
        self.table
            .lock()
            .map(|t| t.logged_in.contains(&slot))
            .unwrap_or(false)
    }

    /// Marks the slot logged in; `CKR_USER_ALREADY_LOGGED_IN` if it was. `check` (the PIN
    /// verification) runs first, outside the lock.
    pub fn login(&self, slot: usize, check: impl FnOnce() -> Result<()>) -> Result<()> {
        if self.is_logged_in(slot) {
            return Err(Error::UserAlreadyLoggedIn);
        }
        check()?;
        let mut t = self.table.lock().map_err(poisoned)?;
        // A session of the slot must still exist (it may have been closed meanwhile).
        if t.count(slot).0 == 0 {
            return Err(Error::SessionHandleInvalid);
        }
        if !t.logged_in.insert(slot) {
            return Err(Error::UserAlreadyLoggedIn);
        }
        Ok(())
    }

    pub fn logout(&self, slot: usize) -> Result<()> {
        let mut t = self.table.lock().map_err(poisoned)?;
        if t.logged_in.remove(&slot) {
            Ok(())
        } else {
            Err(Error::UserNotLoggedIn)
        }
    }
}

impl Table {
    fn count(&self, slot: usize) -> (usize, usize) {
        let mut all = 0;
        let mut rw = 0;
        for e in self.sessions.values().filter(|e| e.slot == slot) {
            all += 1;
            rw += usize::from(e.read_write);
        }
        (all, rw)
    }

    fn logout_if_unused(&mut self, slot: usize) {
        if self.count(slot).0 == 0 {
            self.logged_in.remove(&slot);
        }
    }
}

/// Locks a session, mapping poisoning to an error.
pub fn lock(s: &Arc<Mutex<Session>>) -> Result<MutexGuard<'_, Session>> {
    s.lock().map_err(poisoned)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crypto::PublicInfo;
    use crate::object::{KeyObject, Object, ObjectKind};
    use std::sync::Arc;

    /// A public-key object of `bits` RSA bits, with no store behind it.
    pub(crate) fn rsa_key(bits: u32) -> Arc<Object> {
        let rsa = openssl::rsa::Rsa::generate(bits).unwrap();
        let spki = openssl::pkey::PKey::from_rsa(rsa)
            .unwrap()
            .public_key_to_der()
            .unwrap();
        Arc::new(Object {
            handle: 1,
            slot: 0,
            stable_id: "test".into(),
            kind: ObjectKind::PublicKey,
            attrs: Default::default(),
            sensitive: &[],
            key: Some(Arc::new(KeyObject {
                record: None,
                public: PublicInfo::from_spki(&spki).unwrap(),
                session_key: None,
            })),
            owner: None,
        })
    }

    #[test]
    fn take_answers_keep_and_errors_end_the_operation() {
        let mut slot: Option<u32> = None;
        assert_eq!(
            take(&mut slot, |_| Ok(None)).unwrap_err(),
            Error::OperationNotInitialized
        );
        slot = Some(7);
        assert!(matches!(
            take(&mut slot, |_| Ok(Some(Output::Length(3)))).unwrap(),
            Taken::Answer(Output::Length(3))
        ));
        assert_eq!(slot, Some(7));
        assert_eq!(
            take(&mut slot, |_| Err(Error::OperationActive)).unwrap_err(),
            Error::OperationActive
        );
        assert_eq!(slot, None);
        slot = Some(8);
        assert!(matches!(
            take(&mut slot, |_| Ok(None)).unwrap(),
            Taken::Op(8)
        ));
        assert_eq!(slot, None);
    }

    #[test]
    fn begin_cancels_on_null_and_refuses_an_active_operation() {
        let mut slot = Some(1);
        assert_eq!(begin(&mut slot, true).unwrap_err(), Error::OperationActive);
        assert_eq!(slot, Some(1));
        assert_eq!(begin(&mut slot, false).unwrap(), Init::Cancelled);
        assert_eq!(slot, None);
        assert_eq!(begin(&mut slot, false).unwrap(), Init::Cancelled);
        assert_eq!(begin(&mut slot, true).unwrap(), Init::Build);
        install(&mut slot, 2).unwrap();
        assert_eq!(install(&mut slot, 3).unwrap_err(), Error::OperationActive);
        assert_eq!(slot, Some(2));
    }

    #[test]
    fn deliver_answers_size_queries_and_short_buffers() {
        assert_eq!(deliver(4, None), Some(Output::Length(4)));
        assert_eq!(deliver(4, Some(3)), Some(Output::TooSmall(4)));
        assert_eq!(deliver(4, Some(4)), None);
    }

    #[test]
    fn cancel_ends_only_the_named_operations() {
        let t = SessionTable::default();
        let h = t.open(0, false).unwrap();
        let s = t.get(h).unwrap();
        let mut g = lock(&s).unwrap();
        g.find = Some(FindOp::default());
        g.digest = Some(DigestOp::new(crate::crypto::HashAlg::Sha256).unwrap());
        g.cancel(CKF_DIGEST);
        assert!(g.digest.is_none());
        assert!(g.find.is_some());
        g.cancel(CKF_FIND_OBJECTS);
        assert!(g.find.is_none());
    }

    #[test]
    fn handles_are_never_zero_or_reused() {
        let t = SessionTable::default();
        let a = t.open(0, false).unwrap();
        assert_ne!(a, CK_INVALID_HANDLE);
        t.close(a).unwrap();
        let b = t.open(0, true).unwrap();
        assert_ne!(a, b);
        assert_eq!(t.close(a).unwrap_err(), Error::SessionHandleInvalid);
        assert_eq!(t.count(0).unwrap(), (1, 1));
        t.open(1, false).unwrap();
        assert_eq!(t.close_all(0).unwrap(), vec![b]);
        assert_eq!(t.count(0).unwrap(), (0, 0));
        assert_eq!(t.count(1).unwrap(), (1, 0));
    }
}
