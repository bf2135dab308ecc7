//! PIN hashes (argon2id) and their verification under a bound on concurrent checks.

use crate::error::{Error, Result};

/// Hashes a PIN for `pin_hash` (argon2id, random salt).
pub fn hash_pin(pin: &[u8]) -> Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(pin, &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("argon2: {e}")))
}

/// Accepts only argon2 PHC strings whose parameters argon2 can use, so that a hash that
/// could never match fails C_Initialize instead of every C_Login.
pub(super) fn check_pin_hash(phc: &str) -> std::result::Result<(), String> {
    let parsed =
        argon2::PasswordHash::new(phc).map_err(|e| format!("not a PHC hash string ({e})"))?;
    argon2::Algorithm::try_from(parsed.algorithm).map_err(|_| {
        format!(
            "algorithm `{}` is not argon2id, argon2i or argon2d",
            parsed.algorithm
        )
    })?;
    argon2::Params::try_from(&parsed).map_err(|e| format!("argon2 parameters: {e}"))?;
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("the hash or the salt is missing".into());
    }
    Ok(())
}

/// At most this many PIN verifications run at once: each takes the hash's memory (19 MiB
/// with the default parameters), so a storm of C_Login calls waits its turn instead of
/// exhausting the host's memory.
pub const MAX_CONCURRENT_PIN_CHECKS: usize = 4;
/// How long a C_Login waits for its turn before it gives up (CKR_DEVICE_ERROR).
const PIN_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The running PIN verifications (a counting semaphore; a leaf lock, src/lock_order.rs).
static PIN_CHECKS: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// A turn to verify a PIN; given back on drop.
struct PinCheckTurn;

impl PinCheckTurn {
    fn take() -> Result<PinCheckTurn> {
        let (count, freed) = &PIN_CHECKS;
        let running = count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (mut running, waited) = freed
            .wait_timeout_while(running, PIN_CHECK_WAIT, |n| *n >= MAX_CONCURRENT_PIN_CHECKS)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if waited.timed_out() && *running >= MAX_CONCURRENT_PIN_CHECKS {
            return Err(Error::Backend(format!(
                "{MAX_CONCURRENT_PIN_CHECKS} PIN checks running for {} s: C_Login refused",
                PIN_CHECK_WAIT.as_secs()
            )));
        }
        *running += 1;
        #[cfg(test)]
        super::tests::note_running(*running);
        Ok(PinCheckTurn)
    }
}

impl Drop for PinCheckTurn {
    fn drop(&mut self) {
        let (count, freed) = &PIN_CHECKS;
        let mut running = count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *running = running.saturating_sub(1);
        freed.notify_one();
    }
}

/// Checks a PIN against a PHC string: `Ok(false)` for a wrong PIN only; anything else
/// that goes wrong is an error, not a wrong PIN. At most [`MAX_CONCURRENT_PIN_CHECKS`]
/// run at once.
pub fn verify_pin(pin: &[u8], phc: &str) -> Result<bool> {
    use argon2::password_hash::{Error as PhcError, PasswordVerifier};
    let parsed =
        argon2::PasswordHash::new(phc).map_err(|e| Error::Config(format!("pin_hash: {e}")))?;
    let _turn = PinCheckTurn::take()?;
    match argon2::Argon2::default().verify_password(pin, &parsed) {
        Ok(()) => Ok(true),
        Err(PhcError::Password) => Ok(false),
        Err(e) => Err(Error::Internal(format!("checking the PIN: {e}"))),
    }
}
