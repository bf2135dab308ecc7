//! The session table: handles that are never reused, one lock per session, and the active
//! operations of each session.

use crate::error::{Error, Result};
use crate::mechanism::{CryptScheme, Hashing, SignScheme};
use crate::object::Object;
use cryptoki_sys::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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

pub struct SessionTable {
    next: AtomicU64,
    sessions: Mutex<HashMap<CK_SESSION_HANDLE, Arc<Mutex<Session>>>>,
}

impl Default for SessionTable {
    fn default() -> Self {
        SessionTable {
            next: AtomicU64::new(1),
            sessions: Mutex::new(HashMap::new()),
        }
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::Internal("session lock poisoned".into())
}

impl SessionTable {
    pub fn open(&self, slot: usize, read_write: bool) -> Result<CK_SESSION_HANDLE> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
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
        self.sessions
            .lock()
            .map_err(poisoned)?
            .insert(handle, Arc::new(Mutex::new(session)));
        Ok(handle)
    }

    pub fn get(&self, handle: CK_SESSION_HANDLE) -> Result<Arc<Mutex<Session>>> {
        self.sessions
            .lock()
            .map_err(poisoned)?
            .get(&handle)
            .cloned()
            .ok_or(Error::SessionHandleInvalid)
    }

    /// Removes a session; returns its slot.
    pub fn close(&self, handle: CK_SESSION_HANDLE) -> Result<usize> {
        let s = self
            .sessions
            .lock()
            .map_err(poisoned)?
            .remove(&handle)
            .ok_or(Error::SessionHandleInvalid)?;
        let slot = lock(&s)?.slot;
        Ok(slot)
    }

    /// Removes every session of a slot; returns their handles.
    pub fn close_all(&self, slot: usize) -> Result<Vec<CK_SESSION_HANDLE>> {
        let mut map = self.sessions.lock().map_err(poisoned)?;
        let mut closed = Vec::new();
        map.retain(|h, s| {
            let keep = s.lock().map(|s| s.slot != slot).unwrap_or(false);
            if !keep {
                closed.push(*h);
            }
            keep
        });
        Ok(closed)
    }

    /// Sessions open on a slot: (all, read-write).
    pub fn count(&self, slot: usize) -> Result<(usize, usize)> {
        let map = self.sessions.lock().map_err(poisoned)?;
        let mut all = 0;
        let mut rw = 0;
        for s in map.values() {
            let s = lock(s)?;
            if s.slot == slot {
                all += 1;
                rw += usize::from(s.read_write);
            }
        }
        Ok((all, rw))
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
