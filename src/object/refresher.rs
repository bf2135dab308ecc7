//! The background refresh of remote slots (key-vault, managed-hsm): one thread per module
//! lists each slot again when its TTL has passed, so that C_FindObjects is served from
//! the cache without waiting for the network (ARCHITECTURE.md §4: "refresh is periodic
//! and bounded"). The first listing of a slot stays lazy: it happens at the first search
//! that needs it, on the caller's thread, so C_Initialize needs no network; a slot whose
//! first searches were answered from lookups (`ObjectCache::find_before_listing`) is listed
//! by this thread at once. A slot never searched is never listed.
//!
//! C_Finalize stops the thread and waits for it within a bound; a listing in flight is
//! cut short by the network runtime's cancellation (`AzureRuntime::cancel`).

use super::ObjectCache;
use crate::error::{Error, Result};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How often the thread looks again while none of its slots has been listed yet.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// The thread never wakes more often than this.
const MIN_WAIT: Duration = Duration::from_millis(100);

pub struct Refresher {
    shared: Arc<Shared>,
    /// Closed by the thread as it ends.
    done: Mutex<Option<mpsc::Receiver<()>>>,
    pid: u32,
}

#[derive(Default)]
struct Shared {
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Refresher {
    /// Starts the thread for `slots` of `cache`.
    pub fn start(cache: Arc<ObjectCache>, slots: Vec<usize>) -> Result<Refresher> {
        for &slot in &slots {
            cache.set_background(slot)?;
        }
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel::<()>();
        let s = shared.clone();
        std::thread::Builder::new()
            .name("identify-pkcs11-refresh".into())
            .spawn(move || {
                run(&cache, &slots, &s);
                drop(tx);
            })
            .map_err(|e| Error::backend("starting the refresh thread", e))?;
        Ok(Refresher {
            shared,
            done: Mutex::new(Some(rx)),
            pid: std::process::id(),
        })
    }

    /// Asks the thread to stop and waits for it at most `bound`. False if it did not
    /// end in time (it is then left to end on its own).
    pub fn stop(&self, bound: Duration) -> bool {
        self.signal();
        let rx = self.done.lock().ok().and_then(|mut d| d.take());
        match rx {
            Some(rx) => matches!(
                rx.recv_timeout(bound),
                Err(mpsc::RecvTimeoutError::Disconnected)
            ),
            None => true,
        }
    }

    fn signal(&self) {
        if let Ok(mut stop) = self.shared.stop.lock() {
            *stop = true;
        }
        self.shared.wake.notify_all();
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        // In a forked child the thread does not exist and its lock may be held forever.
        if self.pid == std::process::id() {
            self.signal();
        }
    }
}

/// After a listing panicked (a bug, or a store answering what no code expected), the
/// slot is tried again this long after, not in a loop.
const AFTER_PANIC: Duration = Duration::from_secs(30);

fn run(cache: &ObjectCache, slots: &[usize], shared: &Shared) {
    // Slots whose last listing panicked, and when to try them again.
    let mut held_back: std::collections::HashMap<usize, Instant> = Default::default();
    loop {
        let now = Instant::now();
        for &slot in slots {
            if held_back.get(&slot).is_some_and(|t| now < *t) {
                continue;
            }
            if matches!(cache.refresh_due(slot), Ok(Some(due)) if due <= now) {
                // On failure the cache keeps the old listing and sets when to retry. A
                // panic must not end the thread (the slot would never refresh again):
                // it is caught, logged, and the slot tried again later.
                let refreshed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    cache.refresh_stale(slot)
                }));
                match refreshed {
                    Ok(Ok(())) => {
                        held_back.remove(&slot);
                    }
                    Ok(Err(e)) => tracing::warn!(slot, error = %e, "background refresh failed"),
                    Err(panic) => {
                        let what = crate::error::panic_text(&*panic);
                        let wait = AFTER_PANIC.min(cache.ttl(slot).unwrap_or(AFTER_PANIC));
                        tracing::error!(slot, panic = %what, retry_in = ?wait, "background refresh panicked; serving the objects listed before");
                        held_back.insert(slot, Instant::now() + wait);
                    }
                }
            }
        }
        // Sleep until the next slot is due (a slot not listed yet: look again soon).
        let now = Instant::now();
        let next = slots
            .iter()
            .map(|&slot| {
                let due = match cache.refresh_due(slot) {
                    Ok(Some(due)) => due,
                    Ok(None) | Err(_) => now + IDLE_POLL,
                };
                held_back.get(&slot).map_or(due, |t| due.max(*t))
            })
            .min()
            .unwrap_or(now + IDLE_POLL);
        let wait = next.saturating_duration_since(now).max(MIN_WAIT);
        let Ok(stop) = shared.stop.lock() else { return };
        if *stop {
            return;
        }
        match shared.wake.wait_timeout(stop, wait) {
            Ok((stop, _)) if !*stop => {}
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{
        Backend, CertRecord, KeyRecord, KeySpec, KeyUsage, Listing, ObjectUpdate,
    };
    use crate::crypto::{DecryptRequest, SignRequest};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A store whose listings panic from the second to the fourth call.
    #[derive(Default)]
    struct PanickingStore {
        lists: AtomicU32,
    }

    impl Backend for PanickingStore {
        fn kind(&self) -> &'static str {
            "panicking"
        }
        fn writable(&self) -> bool {
            false
        }
        fn list(&self) -> Result<Listing> {
            let n = self.lists.fetch_add(1, Ordering::SeqCst);
            assert!(
                !(1..4).contains(&n),
                "unexpected answer from the store (test)"
            );
            Ok(Listing::default())
        }
        fn sign(&self, _: &KeyRecord, _: &SignRequest, _: &[u8]) -> Result<Vec<u8>> {
            Err(Error::FunctionNotSupported)
        }
        fn decrypt(&self, _: &KeyRecord, _: &DecryptRequest, _: &[u8]) -> Result<Vec<u8>> {
            Err(Error::FunctionNotSupported)
        }
        fn generate_key(
            &self,
            _: &str,
            _: &KeySpec,
            _: &ObjectUpdate,
            _: KeyUsage,
        ) -> Result<KeyRecord> {
            Err(Error::FunctionNotSupported)
        }
        fn store_certificate(
            &self,
            _: &[u8],
            _: Option<&KeyRecord>,
            _: &ObjectUpdate,
        ) -> Result<CertRecord> {
            Err(Error::FunctionNotSupported)
        }
        fn delete_key(&self, _: &str) -> Result<()> {
            Err(Error::FunctionNotSupported)
        }
        fn delete_certificate(&self, _: &str) -> Result<()> {
            Err(Error::FunctionNotSupported)
        }
        fn update(&self, _: &str, _: &ObjectUpdate) -> Result<()> {
            Err(Error::FunctionNotSupported)
        }
    }

    #[test]
    fn a_panicking_listing_does_not_end_the_refresher() {
        let store = Arc::new(PanickingStore::default());
        let cache = Arc::new(ObjectCache::new(vec![crate::object::SlotStore {
            backend: store.clone() as Arc<dyn Backend>,
            ttl: Duration::from_secs(1),
            login_required: false,
        }]));
        cache.refresh(0, true).unwrap();
        let refresher = Refresher::start(cache.clone(), vec![0]).unwrap();
        // Three listings panic (each retried after the TTL, 1 s); the fifth call lists
        // again: the thread survived them all.
        let t = Instant::now();
        while store.lists.load(Ordering::SeqCst) < 5 {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the refresher stopped after {} listings",
                store.lists.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            refresher.stop(Duration::from_secs(5)),
            "the thread ended on request"
        );
    }
}
