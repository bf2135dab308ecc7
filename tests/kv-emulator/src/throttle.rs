//! Per-vault throttling by the published service limits (FACTS.md §6.1): transactions
//! per 10 seconds, weighted by key type and size and enforced on their sum. A request
//! costs 1/limit of its class; the window is full at 1.0. Key creation has its own
//! class. Requests answered 429 do not count in a vault; in a Managed HSM they do
//! (FACTS.md §6.2, "429s do count toward the limits there"). The window is sliding,
//! estimated from the current and previous fixed windows.

use std::time::{Duration, Instant};

use crate::crypto::Family;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Create,
    Transaction,
}

/// Requests per window for one request of this class on a key of this kind; `None` key
/// means a request that touches no key (lists, certificates, secrets).
pub fn limit(class: Class, key: Option<(bool, Family)>) -> f64 {
    let hsm = key.is_some_and(|(hsm, _)| hsm);
    match class {
        Class::Create => {
            if hsm {
                10.0
            } else {
                20.0
            }
        }
        Class::Transaction => {
            let Some((_, family)) = key else {
                return 4000.0;
            };
            let software = match family {
                Family::Rsa { bits } if bits >= 4096 => 500.0,
                Family::Rsa { bits } if bits >= 3072 => 1000.0,
                Family::Rsa { .. } | Family::Ec(_) => 4000.0,
            };
            if hsm { software / 2.0 } else { software }
        }
    }
}

#[derive(Debug)]
struct Window {
    start: Instant,
    prev: f64,
    curr: f64,
}

impl Window {
    fn new(now: Instant) -> Self {
        Window {
            start: now,
            prev: 0.0,
            curr: 0.0,
        }
    }

    fn roll(&mut self, now: Instant, len: Duration) {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed >= len * 2 {
            *self = Window::new(now);
        } else if elapsed >= len {
            self.prev = self.curr;
            self.curr = 0.0;
            self.start += len;
        }
    }

    fn estimate(&self, now: Instant, len: Duration) -> f64 {
        let into = now.saturating_duration_since(self.start).as_secs_f64() / len.as_secs_f64();
        self.prev * (1.0 - into).max(0.0) + self.curr
    }
}

#[derive(Debug)]
pub struct Throttle {
    window: Duration,
    create: Window,
    other: Window,
}

impl Throttle {
    pub fn new(window: Duration) -> Self {
        let now = Instant::now();
        Throttle {
            window: window.max(Duration::from_millis(10)),
            create: Window::new(now),
            other: Window::new(now),
        }
    }

    /// Admits a request that costs `cost` of its class's window, or tells how long to
    /// wait before retrying. With `refusals_count` a refused request is counted too (a
    /// Managed HSM's rule), so a client that retries without backing off stays refused.
    pub fn admit(
        &mut self,
        class: Class,
        cost: f64,
        now: Instant,
        refusals_count: bool,
    ) -> Result<(), Duration> {
        let len = self.window;
        let w = match class {
            Class::Create => &mut self.create,
            Class::Transaction => &mut self.other,
        };
        w.roll(now, len);
        if w.estimate(now, len) + cost > 1.0 + 1e-9 {
            if refusals_count {
                w.curr += cost;
            }
            let left = len.saturating_sub(now.saturating_duration_since(w.start));
            return Err(left.max(Duration::from_millis(1)));
        }
        w.curr += cost;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_limit_matches_published_example() {
        // 248 RSA-4096 HSM GETs plus 16 RSA-2048 HSM GETs fill a 10 s window.
        let mut t = Throttle::new(Duration::from_secs(10));
        let now = Instant::now();
        let big = 1.0 / limit(Class::Transaction, Some((true, Family::Rsa { bits: 4096 })));
        let small = 1.0 / limit(Class::Transaction, Some((true, Family::Rsa { bits: 2048 })));
        for _ in 0..248 {
            t.admit(Class::Transaction, big, now, false).unwrap();
        }
        for _ in 0..16 {
            t.admit(Class::Transaction, small, now, false).unwrap();
        }
        assert!(t.admit(Class::Transaction, small, now, false).is_err());
        // Creates are counted apart.
        assert!(t.admit(Class::Create, 1.0 / 10.0, now, false).is_ok());
    }

    #[test]
    fn window_slides() {
        let mut t = Throttle::new(Duration::from_millis(100));
        let start = Instant::now();
        for _ in 0..10 {
            t.admit(Class::Transaction, 0.1, start, false).unwrap();
        }
        let wait = t.admit(Class::Transaction, 0.1, start, false).unwrap_err();
        assert!(wait <= Duration::from_millis(100));
        // Two windows later everything is forgotten.
        assert!(
            t.admit(
                Class::Transaction,
                0.5,
                start + Duration::from_millis(250),
                false
            )
            .is_ok()
        );
    }

    #[test]
    fn refusals_count_where_the_service_says_so() {
        // A full window, then ten refused attempts at once; half a window later the
        // previous window still weighs half. A vault forgot the refusals (1.0 × 0.5 + 0.1
        // fits); a Managed HSM counted them (2.0 × 0.5 does not).
        let len = Duration::from_millis(1000);
        for (refusals_count, admitted) in [(false, true), (true, false)] {
            let mut t = Throttle::new(len);
            let start = Instant::now();
            for _ in 0..10 {
                t.admit(Class::Transaction, 0.1, start, refusals_count)
                    .unwrap();
            }
            for _ in 0..10 {
                assert!(
                    t.admit(Class::Transaction, 0.1, start, refusals_count)
                        .is_err()
                );
            }
            let later = start + len + len / 2;
            assert_eq!(
                t.admit(Class::Transaction, 0.1, later, refusals_count)
                    .is_ok(),
                admitted,
                "refusals_count = {refusals_count}"
            );
        }
    }
}
