//! The per-vault rate budget: a token bucket over Key Vault's published limits (kept as a
//! GCRA reservation, which serves waiters in turn), shared by every session of the slot, so
//! that many threads wait their turn here instead of making the vault answer 429
//! (FACTS.md §6.1).
//!
//! Limits are per vault per 10 seconds and weighted: one unit is one software RSA-2048 or
//! EC operation out of 4,000; RSA-3072 costs 4, RSA-4096 8; HSM-protected keys cost twice
//! their software weight (2,000 / 500 / 250 per 10 s). Managed HSM does not throttle
//! cryptographic operations: its slots get no budget.

use crate::error::{Error, Result, ServiceFailure};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The units one operation on a key costs.
pub fn weight(rsa_bits: Option<usize>, hsm: bool) -> f64 {
    let software = match rsa_bits {
        Some(b) if b > 3072 => 8.0,
        Some(b) if b > 2048 => 4.0,
        _ => 1.0,
    };
    if hsm { 2.0 * software } else { software }
}

/// Units per 10 s of the published vault limit ("all other transactions", software RSA-2048).
const VAULT_UNITS_PER_10S: f64 = 4000.0;

/// The heaviest operation (RSA-4096, HSM-protected): the bucket always holds at least this
/// much, when the budget allows that much in 10 s, so that every key can be used.
const HEAVIEST: f64 = 16.0;

/// The burst the bucket allows, in seconds of its refill. The vault counts a sliding
/// 10-second window (estimated from the previous and current fixed windows, which can
/// count a burst twice): a bucket holding a whole 10 s of budget would let a process send
/// that burst and then the refill, nearly twice the budget, in one window, and draw 429s
/// under load. A quarter second keeps the worst window at the budget plus 5 %
/// (90 % + 2 × 2.25 % of the limit by default).
const BURST_SECONDS: f64 = 0.25;

pub struct RateBudget {
    capacity: f64,
    per_second: f64,
    /// The theoretical arrival time (GCRA, the generic cell rate algorithm): when the
    /// units reserved so far will have been paid for at `per_second`. A caller may start
    /// once that time, plus its own units, is within the burst of now.
    reserved_until: Mutex<Instant>,
}

impl RateBudget {
    /// A budget of `fraction` of the published limit: refilled at that rate, with a burst
    /// of [`BURST_SECONDS`] (at least the heaviest operation, at most the 10 s budget).
    pub fn new(fraction: f64) -> RateBudget {
        let per_10s = VAULT_UNITS_PER_10S * fraction;
        let per_second = per_10s / 10.0;
        let capacity = (per_second * BURST_SECONDS).max(HEAVIEST).min(per_10s);
        RateBudget {
            capacity,
            per_second,
            reserved_until: Mutex::new(Instant::now()),
        }
    }

    /// Reserves `units` and waits (without holding the lock) for the time they are paid
    /// for; refuses at once, reserving nothing, when that time is past `deadline`.
    /// Reservations are taken in turn, so callers are served first come, first served: a
    /// token bucket that each waiter polls lets some of 200 threads starve past their
    /// deadline while others are served again and again.
    pub fn acquire(&self, units: f64, deadline: Instant) -> Result<()> {
        let start = self.reserve(units, deadline)?;
        std::thread::sleep(start.saturating_duration_since(Instant::now()));
        Ok(())
    }

    /// Reserves `units` as [`RateBudget::acquire`] does, without waiting: the time the
    /// caller may start (an async caller sleeps until then without blocking its thread).
    pub fn reserve(&self, units: f64, deadline: Instant) -> Result<Instant> {
        let refused = || {
            Error::Remote(
                ServiceFailure::Throttled,
                format!(
                    "the slot's rate budget ({:.0} units per 10 s) is spent and would not refill before the deadline",
                    self.per_second * 10.0
                ),
            )
        };
        // More units than the bucket holds never come; a time too long for a Duration is
        // past any deadline.
        if units > self.capacity {
            return Err(refused());
        }
        let cost = Duration::try_from_secs_f64(units / self.per_second).map_err(|_| refused())?;
        let tolerance = Duration::try_from_secs_f64((self.capacity - units) / self.per_second)
            .map_err(|_| refused())?;
        let start = {
            let mut reserved = self
                .reserved_until
                .lock()
                .map_err(|_| Error::Internal("rate budget lock poisoned".into()))?;
            let now = Instant::now();
            let from = (*reserved).max(now);
            let start = from.checked_sub(tolerance).unwrap_or(now).max(now);
            let until = from.checked_add(cost).ok_or_else(refused)?;
            if start > deadline {
                return Err(refused());
            }
            *reserved = until;
            start
        };
        Ok(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_the_published_limits() {
        assert_eq!(weight(Some(2048), false), 1.0);
        assert_eq!(weight(Some(3072), false), 4.0);
        assert_eq!(weight(Some(4096), true), 16.0);
        assert_eq!(weight(None, true), 2.0);
    }

    #[test]
    fn a_spent_budget_waits_then_refuses_past_the_deadline() {
        let b = RateBudget::new(0.001); // 4 units per 10 s, 0.4 per second
        let far = Instant::now() + Duration::from_secs(60);
        for _ in 0..4 {
            b.acquire(1.0, far).unwrap();
        }
        let t = Instant::now();
        let e = b
            .acquire(1.0, Instant::now() + Duration::from_millis(100))
            .unwrap_err();
        assert!(matches!(
            e,
            Error::Remote(super::ServiceFailure::Throttled, _)
        ));
        assert!(
            t.elapsed() < Duration::from_millis(50),
            "refused at once, not after waiting"
        );
        let b = RateBudget::new(0.01); // 40 units per 10 s, 4 per second, a burst of 16
        for _ in 0..16 {
            b.acquire(1.0, far).unwrap();
        }
        let t = Instant::now();
        b.acquire(1.0, far).unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "waited for the refill"
        );
    }

    #[test]
    fn the_burst_is_a_quarter_second_of_the_budget() {
        // The default 90 %: 360 units per second, a burst of 90. A burst of the whole
        // 10 s budget (3,600) let 200 threads draw 429s from the vault
        // (tests/key_vault.rs, many_threads_sign_within_the_vaults_limits).
        let b = RateBudget::new(0.9);
        assert_eq!(b.capacity, 90.0);
        assert_eq!(b.per_second, 360.0);
        // The heaviest operation always fits when the budget allows it in 10 s...
        assert_eq!(RateBudget::new(0.004).capacity, 16.0);
        // ...and the bucket never holds more than 10 s of budget.
        assert_eq!(RateBudget::new(0.001).capacity, 4.0);
        assert_eq!(RateBudget::new(10.0).capacity, 1000.0);
    }

    #[test]
    fn tiny_budgets_and_heavy_operations_are_refused_not_overflowed() {
        let far = Instant::now() + Duration::from_secs(60);
        // 4e-297 units per 10 s: the wait for one unit does not fit in a Duration.
        let b = RateBudget::new(1e-300);
        let e = b.acquire(1.0, far).unwrap_err();
        assert!(matches!(
            e,
            Error::Remote(super::ServiceFailure::Throttled, _)
        ));
        // An operation heavier than the whole bucket can never be served: refused at once.
        let b = RateBudget::new(0.001); // 4 units
        let t = Instant::now();
        assert!(b.acquire(16.0, far).is_err());
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(b.acquire(4.0, far).is_ok(), "the refusal took nothing");
    }
}
