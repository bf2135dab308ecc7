//! The per-vault rate budget: a token bucket over Key Vault's published limits, shared by
//! every session of the slot, so that many threads wait their turn here instead of making
//! the vault answer 429 (FACTS.md §6.1).
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

pub struct RateBudget {
    capacity: f64,
    per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateBudget {
    /// A budget of `fraction` of the published limit.
    pub fn new(fraction: f64) -> RateBudget {
        let capacity = VAULT_UNITS_PER_10S * fraction;
        RateBudget {
            capacity,
            per_second: capacity / 10.0,
            state: Mutex::new((capacity, Instant::now())),
        }
    }

    /// Takes `units`, waiting (without holding the lock) until they are there; gives up
    /// when that would pass `deadline`.
    pub fn acquire(&self, units: f64, deadline: Instant) -> Result<()> {
        loop {
            let wait = {
                let mut s = self
                    .state
                    .lock()
                    .map_err(|_| Error::Internal("rate budget lock poisoned".into()))?;
                let now = Instant::now();
                let refill = now.duration_since(s.1).as_secs_f64() * self.per_second;
                s.0 = (s.0 + refill).min(self.capacity);
                s.1 = now;
                if s.0 >= units {
                    s.0 -= units;
                    return Ok(());
                }
                // More units than the bucket holds never come: refuse now. A wait too
                // long for a Duration is past any deadline.
                (units <= self.capacity)
                    .then(|| Duration::try_from_secs_f64((units - s.0) / self.per_second).ok())
                    .flatten()
            };
            let wait = wait.filter(|w| {
                Instant::now()
                    .checked_add(*w)
                    .is_some_and(|t| t <= deadline)
            });
            let Some(wait) = wait else {
                return Err(Error::Remote(
                    ServiceFailure::Throttled,
                    format!(
                        "the slot's rate budget ({:.0} units per 10 s) is spent and would not refill before the deadline",
                        self.capacity
                    ),
                ));
            };
            std::thread::sleep(wait);
        }
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
        let b = RateBudget::new(0.01); // 40 units, 4 per second
        for _ in 0..40 {
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
