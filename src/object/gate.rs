//! One listing of a slot at a time (`ObjectCache::refresh_as`).

use crate::error::Error;
use crate::lock_order;
use std::time::{Duration, Instant};

/// A waiter gives up on another thread's listing after this long and lists itself. It is
/// above the longest listing a configuration allows (six times `deadline_seconds`, at most
/// 300: 30 minutes), so it only ends a wait for a listing that hung past its own bound.
const LISTING_WAIT: Duration = Duration::from_secs(31 * 60);

/// One listing of a slot at a time: a search that needs a listing while another thread
/// lists waits for that one and is served by it (or gets its error), instead of sending
/// the same requests again (200 threads' first searches make one listing, not 200). A
/// leaf lock (see `lock_order`): taken with none of the levels held, never held across
/// the listing; the wait is on its condition variable, bounded by [`LISTING_WAIT`].
#[derive(Default)]
pub(super) struct ListingGate {
    state: std::sync::Mutex<GateState>,
    done: std::sync::Condvar,
}

#[derive(Default)]
struct GateState {
    busy: bool,
    /// Listings finished so far, and how the last one ended.
    finished: u64,
    last_error: Option<Error>,
}

/// What a waiter learns of the listing it waited for.
pub(super) enum Waited {
    /// It did not wait.
    No,
    /// Another listing ended meanwhile: its error, if it failed.
    For(Option<Error>),
}

/// The gate, taken: opened again on drop (a panicking listing included, recorded as
/// ended without an error to report).
pub(super) struct GateHeld<'a> {
    gate: &'a ListingGate,
    error: Option<Error>,
}

impl GateHeld<'_> {
    /// Records that this listing failed with `e`, for the searches waiting for it.
    pub(super) fn failed(&mut self, e: &Error) {
        self.error = Some(e.clone());
    }
}

impl Drop for GateHeld<'_> {
    fn drop(&mut self) {
        let mut state = self
            .gate
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.busy = false;
        state.finished += 1;
        state.last_error = self.error.take();
        self.gate.done.notify_all();
    }
}

impl ListingGate {
    /// Takes the gate, waiting for a listing in flight when `wait` (else `None` if one
    /// is).
    pub(super) fn enter(&self, wait: bool) -> Option<(GateHeld<'_>, Waited)> {
        lock_order::assert_none_held("waiting for a listing");
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = state.finished;
        let until = Instant::now() + LISTING_WAIT;
        while state.busy {
            if !wait {
                return None;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!("a listing took longer than {LISTING_WAIT:?}; listing again");
                break;
            }
            state = self
                .done
                .wait_timeout(state, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        let waited = if state.finished == before {
            Waited::No
        } else {
            Waited::For(state.last_error.clone())
        };
        state.busy = true;
        Some((
            GateHeld {
                gate: self,
                error: None,
            },
            waited,
        ))
    }
}
