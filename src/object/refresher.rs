//! The background refresh of remote slots (key-vault, managed-hsm): one thread per module
//! lists each slot again when its TTL has passed, so that C_FindObjects is served from
//! the cache without waiting for the network (ARCHITECTURE.md §4: "refresh is periodic
//! and bounded"). The first listing of a slot stays lazy: it happens at the first search
//! that needs it, on the caller's thread, so C_Initialize needs no network. A slot never
//! searched is never listed.
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

fn run(cache: &ObjectCache, slots: &[usize], shared: &Shared) {
    loop {
        let now = Instant::now();
        for &slot in slots {
            if matches!(cache.refresh_due(slot), Ok(Some(due)) if due <= now) {
                // On failure the cache keeps the old listing and sets when to retry.
                if let Err(e) = cache.refresh_stale(slot) {
                    tracing::warn!(slot, error = %e, "background refresh failed");
                }
            }
        }
        // Sleep until the next slot is due (a slot not listed yet: look again soon).
        let now = Instant::now();
        let next = slots
            .iter()
            .map(|&slot| match cache.refresh_due(slot) {
                Ok(Some(due)) => due,
                Ok(None) | Err(_) => now + IDLE_POLL,
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
