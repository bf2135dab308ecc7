//! The session table: handles that are never reused, one lock per session, and the active
//! operations of each session.

use crate::error::{Error, Result};
use crate::lock_order::{Level, Mutex, MutexGuard};
use crate::mechanism::{CryptScheme, Hashing, SignScheme};
use crate::object::Object;
use cryptoki_sys::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A sign or verify operation.
pub struct SignOp {
    pub key: Arc<Object>,
    pub scheme: SignScheme,
    /// Running hash for the `CKM_SHAxxx_*` mechanisms.
    pub hashing: Option<Hashing>,
    /// C_SignUpdate was called: only C_SignFinal may follow (§5.13).
    pub multi_part: bool,
}

/// An encrypt or decrypt operation.
pub struct CryptOp {
    pub key: Arc<Object>,
    pub scheme: CryptScheme,
    /// Input collected by C_*Update.
    pub buffer: Vec<u8>,
    pub multi_part: bool,
    /// A result computed for a call whose buffer was too small; the next call returns it
    /// without asking the store again.
    pub pending: Option<Vec<u8>>,
}

pub struct DigestOp {
    pub hashing: Hashing,
    pub multi_part: bool,
}

#[derive(Default)]
pub struct FindOp {
    pub handles: Vec<CK_OBJECT_HANDLE>,
    pub position: usize,
}

pub struct Session {
    pub handle: CK_SESSION_HANDLE,
    pub slot: usize,
    pub read_write: bool,
    pub find: Option<FindOp>,
    pub sign: Option<SignOp>,
    pub verify: Option<SignOp>,
    pub encrypt: Option<CryptOp>,
    pub decrypt: Option<CryptOp>,
    pub digest: Option<DigestOp>,
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
            handle,
            slot,
            read_write,
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
mod tests {
    use super::*;

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
