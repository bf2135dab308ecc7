//! The module's one lock hierarchy, and its checker.
//!
//! Every lock of the PKCS#11 layers is one of these levels. A thread may take a lock only
//! when its level is strictly greater than the level of every lock it already holds:
//!
//! | level | lock | held while taking |
//! |---|---|---|
//! | 1 `Session` | one session's state (`session::Session`): at most one at a time | 2, 3, 4 |
//! | 2 `SlotObjects` | a slot's listed objects and query cache (`object::SlotState`) | 3, 4 |
//! | 3 `ObjectHandles` | the object-handle map (`object::Handles`) | 4 |
//! | 4 `SessionTable` | the session table and login state (`session::Table`) | nothing |
//!
//! So the session table never waits for a session (it keeps each session's slot and
//! read-write flag beside it), and no two sessions' locks are ever held together.
//!
//! No lock of these levels is held across a call into a backend (store listings, signing,
//! decryption, key generation: network, CNG or disk): [`assert_none_held`] marks those
//! calls. The backends' own locks (rate budget, caches, the directory's write lock) are
//! leaves taken only inside a backend, with none of the above held; so is the PIN-check
//! semaphore (`config::verify_pin`, at most 4 argon2 verifications at once), which C_Login
//! takes before the session table, and the wrong-PIN counts (`session::tries`), a leaf
//! taken and released around the verification, never across it. So is each slot's listing
//! gate (`object::ListingGate`: one listing at a time), taken with none of these held and
//! released before the listing; a search that waits for another's listing waits on its
//! condition variable, bounded.
//!
//! Debug builds (every `cargo test`) check this on every acquisition and panic — before
//! waiting — on a violation, so a test that takes locks out of order fails instead of
//! deadlocking now and then; release builds compile the checks out.

use std::sync::{LockResult, PoisonError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Session = 1,
    SlotObjects = 2,
    ObjectHandles = 3,
    SessionTable = 4,
}

#[cfg(debug_assertions)]
mod check {
    use super::Level;
    use std::cell::RefCell;

    thread_local! {
        static HELD: RefCell<Vec<Level>> = const { RefCell::new(Vec::new()) };
    }

    /// Records `level` as held by this thread; panics if that breaks the order.
    pub fn acquire(level: Level) {
        let _ = HELD.try_with(|held| {
            let mut held = held.borrow_mut();
            if let Some(top) = held.iter().max()
                && *top >= level
            {
                let held = held.clone();
                panic!("lock order violated: taking {level:?} while holding {held:?} (src/lock_order.rs)");
            }
            held.push(level);
        });
    }

    pub fn release(level: Level) {
        let _ = HELD.try_with(|held| {
            let mut held = held.borrow_mut();
            if let Some(i) = held.iter().rposition(|l| *l == level) {
                held.remove(i);
            }
        });
    }

    pub fn none_held(what: &str) {
        let _ = HELD.try_with(|held| {
            let held = held.borrow();
            assert!(
                held.is_empty(),
                "lock order violated: {what} while holding {held:?} (src/lock_order.rs)"
            );
        });
    }
}

/// Marks a call that may block on the outside world (a backend call): no lock of the
/// hierarchy may be held. Checked in debug builds.
pub fn assert_none_held(what: &str) {
    #[cfg(debug_assertions)]
    check::none_held(what);
    #[cfg(not(debug_assertions))]
    let _ = what;
}

/// Proof that this thread holds a lock of `level`; releases it from the record on drop.
struct Held(#[cfg(debug_assertions)] Level);

impl Held {
    fn new(level: Level) -> Held {
        #[cfg(debug_assertions)]
        {
            check::acquire(level);
            Held(level)
        }
        #[cfg(not(debug_assertions))]
        {
            let _ = level;
            Held()
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        check::release(self.0);
    }
}

/// Maps a poisoned lock's guard to the wrapper's guard (poisoning is reported as is).
fn map<G, H>(r: LockResult<G>, wrap: impl FnOnce(G) -> H) -> LockResult<H> {
    match r {
        Ok(g) => Ok(wrap(g)),
        Err(e) => Err(PoisonError::new(wrap(e.into_inner()))),
    }
}

/// A `std::sync::Mutex` of a level of the hierarchy.
pub struct Mutex<T> {
    level: Level,
    inner: std::sync::Mutex<T>,
}

pub struct MutexGuard<'a, T> {
    guard: std::sync::MutexGuard<'a, T>,
    _held: Held,
}

impl<T> Mutex<T> {
    pub fn new(level: Level, value: T) -> Mutex<T> {
        Mutex {
            level,
            inner: std::sync::Mutex::new(value),
        }
    }

    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        let held = Held::new(self.level);
        map(self.inner.lock(), |guard| MutexGuard { guard, _held: held })
    }
}

impl<T> std::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

/// A `std::sync::RwLock` of a level of the hierarchy (readers count as holders too).
pub struct RwLock<T> {
    level: Level,
    inner: std::sync::RwLock<T>,
}

pub struct ReadGuard<'a, T> {
    guard: std::sync::RwLockReadGuard<'a, T>,
    _held: Held,
}

pub struct WriteGuard<'a, T> {
    guard: std::sync::RwLockWriteGuard<'a, T>,
    _held: Held,
}

impl<T> RwLock<T> {
    pub fn new(level: Level, value: T) -> RwLock<T> {
        RwLock {
            level,
            inner: std::sync::RwLock::new(value),
        }
    }

    pub fn read(&self) -> LockResult<ReadGuard<'_, T>> {
        let held = Held::new(self.level);
        map(self.inner.read(), |guard| ReadGuard { guard, _held: held })
    }

    pub fn write(&self) -> LockResult<WriteGuard<'_, T>> {
        let held = Held::new(self.level);
        map(self.inner.write(), |guard| WriteGuard {
            guard,
            _held: held,
        })
    }
}

impl<T> std::ops::Deref for ReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> std::ops::Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> std::ops::DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;
    use std::panic::catch_unwind;

    #[test]
    fn inner_levels_may_be_taken_under_outer_ones() {
        let session = Mutex::new(Level::Session, ());
        let objects = RwLock::new(Level::SlotObjects, ());
        let table = Mutex::new(Level::SessionTable, ());
        let _s = session.lock().unwrap();
        let _o = objects.read().unwrap();
        let _t = table.lock().unwrap();
    }

    #[test]
    fn an_outer_level_under_an_inner_one_panics_before_waiting() {
        let session = Mutex::new(Level::Session, ());
        let table = Mutex::new(Level::SessionTable, ());
        let err = catch_unwind(|| {
            let _t = table.lock().unwrap();
            let _s = session.lock().unwrap();
        })
        .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("taking Session while holding [SessionTable]"),
            "{msg}"
        );
        // The record is clean again after the unwind: the right order still works (the
        // table's mutex was poisoned by the unwind; that is std's business, not the order's).
        let _s = session.lock().unwrap();
        let _t = table.lock().unwrap_or_else(PoisonError::into_inner);
    }

    #[test]
    fn two_locks_of_one_level_panic() {
        let a = Mutex::new(Level::Session, ());
        let b = Mutex::new(Level::Session, ());
        let _a = a.lock().unwrap();
        assert!(catch_unwind(|| b.lock().map(|_| ())).is_err());
    }

    #[test]
    fn backend_calls_with_a_lock_held_panic() {
        assert_none_held("a backend call");
        let objects = RwLock::new(Level::SlotObjects, ());
        let _o = objects.write().unwrap();
        assert!(catch_unwind(|| assert_none_held("a backend call")).is_err());
    }

    #[test]
    fn released_locks_are_forgotten() {
        let table = Mutex::new(Level::SessionTable, ());
        let session = Mutex::new(Level::Session, ());
        drop(table.lock().unwrap());
        let _s = session.lock().unwrap();
    }
}
