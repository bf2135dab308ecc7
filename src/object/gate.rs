//! One listing of a slot at a time (`ObjectCache::refresh_as`).

use crate::lock_order;
use std::time::{Duration, Instant};

/// A waiter gives up on another thread's listing after this long and lists itself (a
/// listing is bounded by its store's deadlines well before).
const LISTING_WAIT: Duration = Duration::from_secs(600);

/// One listing of a slot at a time: a search that needs a listing while another thread
/// lists waits for that one and is served by it, instead of sending the same requests
/// again (200 threads' first searches make one listing, not 200). A leaf lock (see
/// `lock_order`): taken with none of the levels held, never held across the listing;
/// the wait is on its condition variable, bounded by [`LISTING_WAIT`].
#[derive(Default)]
pub(super) struct ListingGate {
    busy: std::sync::Mutex<bool>,
    done: std::sync::Condvar,
}

/// The gate, taken: opened again on drop (a panicking listing included).
pub(super) struct GateHeld<'a>(&'a ListingGate);

impl Drop for GateHeld<'_> {
    fn drop(&mut self) {
        let mut busy = self
            .0
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *busy = false;
        self.0.done.notify_all();
    }
}

impl ListingGate {
    /// Takes the gate, waiting for a listing in flight when `wait` (else `None` if one
    /// is). The flag says whether another listing ended while this one waited.
    pub(super) fn enter(&self, wait: bool) -> Option<(GateHeld<'_>, bool)> {
        lock_order::assert_none_held("waiting for a listing");
        let mut busy = self
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut waited = false;
        let until = Instant::now() + LISTING_WAIT;
        while *busy {
            if !wait {
                return None;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!("a listing took longer than {LISTING_WAIT:?}; listing again");
                break;
            }
            waited = true;
            busy = self
                .done
                .wait_timeout(busy, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        *busy = true;
        Some((GateHeld(self), waited))
    }
}
