//! Identifiers, clock and randomness: object versions (32 lowercase hex, as the service
//! makes them), request ids, and a cheap generator for fault probabilities.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds the emulator's clock runs ahead of the system's (`POST /clock`): tests move
/// time past a token's or a key's expiry without waiting, and without the client's
/// clock moving too (a client then holds a token it believes valid that the service
/// refuses, as after a clock step or a revocation).
static CLOCK_AHEAD_S: AtomicI64 = AtomicI64::new(0);

/// Seconds since the epoch (Key Vault's IntDate), on the emulator's clock.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
        .saturating_add(CLOCK_AHEAD_S.load(Ordering::Relaxed))
}

/// Moves the emulator's clock `seconds` ahead (never back: a service's clock does not
/// run backwards); returns how far ahead of the system clock it now runs.
pub fn advance_clock(seconds: i64) -> i64 {
    let step = seconds.max(0);
    CLOCK_AHEAD_S.fetch_add(step, Ordering::Relaxed) + step
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    if openssl::rand::rand_bytes(&mut buf).is_err() {
        // OpenSSL's RNG does not fail once seeded; fall back to the fast generator.
        for b in &mut buf {
            *b = (next_u64() >> 56) as u8;
        }
    }
    buf
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new object version: 32 lowercase hex characters.
pub fn new_version() -> String {
    hex(&random_bytes(16))
}

/// A GUID-shaped identifier (request ids, object ids).
pub fn guid() -> String {
    let h = hex(&random_bytes(16));
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(0) };
}

/// xorshift64* per thread, seeded from OpenSSL: for fault probabilities and jitter only.
pub fn next_u64() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        if x == 0 {
            let mut seed = [0u8; 8];
            let _ = openssl::rand::rand_bytes(&mut seed);
            x = u64::from_le_bytes(seed) | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// Uniform in [0, 1).
pub fn unit() -> f64 {
    (next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_32_lowercase_hex() {
        let v = new_version();
        assert_eq!(v.len(), 32);
        assert!(
            v.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(v, new_version());
        assert_eq!(guid().len(), 36);
        let u = unit();
        assert!((0.0..1.0).contains(&u));
    }
}
