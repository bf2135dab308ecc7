//! Login throttling: consecutive wrong PINs per slot, and a timed lockout after too many.
//!
//! A slot with a `pin_hash` is locked by `pin_tries` wrong PINs in a row, for
//! `pin_lockout_seconds`, during which C_Login answers CKR_PIN_LOCKED without checking
//! the PIN (no argon2 work for an attacker to spend). A correct PIN resets the count; so does the end of a
//! lockout. C_GetTokenInfo shows the state with CKF_USER_PIN_COUNT_LOW (a wrong PIN since
//! the last success), CKF_USER_PIN_FINAL_TRY (the next wrong PIN locks) and
//! CKF_USER_PIN_LOCKED.
//!
//! Verifications in flight count as tries: a login storm cannot start more
//! verifications than there are tries left, so the count is exact under concurrency.
//! The counts live in the process (each process that loads the module has its own),
//! like the login state they guard.
//!
//! The map's lock is a leaf: nothing else is taken while it is held, and no PIN is
//! verified under it.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A slot's rule: wrong PINs allowed in a row, and how long the lockout lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub tries: u32,
    pub lockout: Duration,
}

/// What C_GetTokenInfo reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinState {
    /// No wrong PIN since the last success.
    Clean,
    /// At least one wrong PIN since the last success.
    CountLow,
    /// One wrong PIN more locks the slot.
    FinalTry,
    Locked,
}

#[derive(Default, Debug)]
struct Tries {
    failures: u32,
    in_flight: u32,
    locked_until: Option<Instant>,
}

impl Tries {
    /// A lockout that has run out ends, and with it the count.
    fn expire(&mut self, now: Instant) {
        if self.locked_until.is_some_and(|t| t <= now) {
            *self = Tries {
                in_flight: self.in_flight,
                ..Tries::default()
            };
        }
    }
}

#[derive(Default, Debug)]
pub struct PinTries {
    slots: Mutex<HashMap<usize, Tries>>,
}

impl PinTries {
    fn with<R>(&self, slot: usize, now: Instant, f: impl FnOnce(&mut Tries) -> R) -> R {
        let mut m = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let t = m.entry(slot).or_default();
        t.expire(now);
        f(t)
    }

    /// Takes one try for a PIN verification, or CKR_PIN_LOCKED while the slot is locked
    /// (or while the verifications in flight could use up its remaining tries). Each
    /// `Ok` must be followed by exactly one `finish`.
    pub fn begin(&self, slot: usize, p: Policy, now: Instant) -> Result<()> {
        self.with(slot, now, |t| {
            if t.locked_until.is_some() || t.failures.saturating_add(t.in_flight) >= p.tries {
                return Err(Error::PinLocked);
            }
            t.in_flight += 1;
            Ok(())
        })
    }

    /// Records the outcome of a try taken with `begin`: `Some(true)` a correct PIN,
    /// `Some(false)` a wrong one, `None` no answer (the check failed), which counts as
    /// neither. Returns whether this try locked the slot.
    pub fn finish(&self, slot: usize, p: Policy, correct: Option<bool>, now: Instant) -> bool {
        self.with(slot, now, |t| {
            t.in_flight = t.in_flight.saturating_sub(1);
            match correct {
                Some(true) => {
                    t.failures = 0;
                    false
                }
                Some(false) => {
                    t.failures = t.failures.saturating_add(1);
                    let locks = t.failures >= p.tries && t.locked_until.is_none();
                    if locks {
                        t.locked_until = Some(now + p.lockout);
                    }
                    locks
                }
                None => false,
            }
        })
    }

    pub fn state(&self, slot: usize, p: Policy, now: Instant) -> PinState {
        self.with(slot, now, |t| {
            if t.locked_until.is_some() {
                PinState::Locked
            } else if t.failures == 0 {
                PinState::Clean
            } else if t.failures.saturating_add(1) >= p.tries {
                PinState::FinalTry
            } else {
                PinState::CountLow
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy {
        tries: 3,
        lockout: Duration::from_secs(60),
    };

    fn wrong(t: &PinTries, now: Instant) -> Result<bool> {
        t.begin(0, P, now)?;
        Ok(t.finish(0, P, Some(false), now))
    }

    #[test]
    fn wrong_pins_count_low_then_final_try_then_lock_until_the_lockout_ends() {
        let t = PinTries::default();
        let now = Instant::now();
        assert_eq!(t.state(0, P, now), PinState::Clean);
        assert_eq!(wrong(&t, now), Ok(false));
        assert_eq!(t.state(0, P, now), PinState::CountLow);
        assert_eq!(wrong(&t, now), Ok(false));
        assert_eq!(t.state(0, P, now), PinState::FinalTry);
        assert_eq!(wrong(&t, now), Ok(true));
        assert_eq!(t.state(0, P, now), PinState::Locked);
        // Locked: not even a correct PIN is checked.
        assert_eq!(t.begin(0, P, now), Err(Error::PinLocked));
        let later = now + Duration::from_secs(59);
        assert_eq!(t.begin(0, P, later), Err(Error::PinLocked));
        // The lockout ends with the count.
        let after = now + Duration::from_secs(60);
        assert_eq!(t.state(0, P, after), PinState::Clean);
        assert_eq!(wrong(&t, after), Ok(false));
        // Other slots are not affected.
        assert_eq!(t.state(1, P, now), PinState::Clean);
    }

    #[test]
    fn a_correct_pin_resets_the_count_and_an_unanswered_check_counts_as_nothing() {
        let t = PinTries::default();
        let now = Instant::now();
        wrong(&t, now).unwrap();
        wrong(&t, now).unwrap();
        t.begin(0, P, now).unwrap();
        t.finish(0, P, None, now);
        assert_eq!(t.state(0, P, now), PinState::FinalTry);
        t.begin(0, P, now).unwrap();
        t.finish(0, P, Some(true), now);
        assert_eq!(t.state(0, P, now), PinState::Clean);
    }

    #[test]
    fn verifications_in_flight_use_up_tries() {
        let t = PinTries::default();
        let now = Instant::now();
        wrong(&t, now).unwrap();
        // Two tries left: two verifications may run at once, a third may not.
        t.begin(0, P, now).unwrap();
        t.begin(0, P, now).unwrap();
        assert_eq!(t.begin(0, P, now), Err(Error::PinLocked));
        assert!(!t.finish(0, P, Some(false), now));
        assert!(t.finish(0, P, Some(false), now));
        assert_eq!(t.state(0, P, now), PinState::Locked);
    }
}
