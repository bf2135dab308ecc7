//! Fault injection set through the admin API: latency with jitter, 500/503 rates,
//! connection resets, stalls, a token-endpoint outage, a throttling override, and a FIFO
//! of one-shot faults matched by operation name.

use std::collections::VecDeque;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids;

/// Longest delay a fault may add, ms (10 minutes).
const MAX_DELAY_MS: u64 = 600_000;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThrottleOverride {
    pub scale: Option<f64>,
    pub retry_after: Option<bool>,
}

/// `PUT /faults` replaces these as a whole; every field is optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSettings {
    pub latency_ms: u64,
    pub jitter_ms: u64,
    pub error_rate_500: f64,
    pub error_rate_503: f64,
    pub reset_rate: f64,
    /// Requests are held this long and then the connection is dropped unanswered.
    pub stall_ms: u64,
    /// Share of requests that stall when `stall_ms` > 0 (default 1.0).
    pub stall_rate: Option<f64>,
    pub token_outage: bool,
    pub throttle: Option<ThrottleOverride>,
}

impl FaultSettings {
    pub fn validate(&self) -> Result<(), String> {
        for (name, ms) in [
            ("latency_ms", self.latency_ms),
            ("jitter_ms", self.jitter_ms),
            ("stall_ms", self.stall_ms),
        ] {
            if ms > MAX_DELAY_MS {
                return Err(format!("{name} = {ms}: at most {MAX_DELAY_MS}"));
            }
        }
        for (name, rate) in [
            ("error_rate_500", self.error_rate_500),
            ("error_rate_503", self.error_rate_503),
            ("reset_rate", self.reset_rate),
            ("stall_rate", self.stall_rate.unwrap_or(1.0)),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} = {rate}: must be between 0.0 and 1.0"));
            }
        }
        if self.error_rate_500 + self.error_rate_503 > 1.0 {
            return Err("error_rate_500 + error_rate_503 must not exceed 1.0".into());
        }
        if let Some(t) = &self.throttle {
            if let Some(s) = t.scale {
                if !(s > 0.0 && s.is_finite()) {
                    return Err(format!("throttle.scale = {s}: must be a positive number"));
                }
            }
        }
        Ok(())
    }

    /// The delay to add to this request.
    pub fn latency(&self) -> Duration {
        let jitter = if self.jitter_ms > 0 {
            jitter_of(ids::unit(), self.jitter_ms)
        } else {
            0
        };
        Duration::from_millis(self.latency_ms.saturating_add(jitter))
    }
}

/// `POST /faults/once`: fires on the next `times` requests of `operation` ("*" = any).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OneShot {
    pub operation: String,
    /// The HTTP status to answer with (Azure's error body for that status).
    pub status: Option<u16>,
    pub retry_after_s: Option<u64>,
    #[serde(default = "one")]
    pub times: u32,
    /// Reset the connection instead of answering.
    #[serde(default)]
    pub reset: bool,
    /// Hold the request this long, then drop the connection unanswered.
    pub stall_ms: Option<u64>,
    /// Hold the request this long, then handle and answer it as usual (a slow service:
    /// what another client does meanwhile lands first).
    pub delay_ms: Option<u64>,
    /// Answer as usual, then damage the answer (a service bug seen from the client).
    pub mangle: Option<Mangle>,
}

/// What a `mangle` one-shot does to a successful answer's JSON body.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Mangle {
    /// Removes `key.kid` (a key bundle without its identifier).
    DropKid,
    /// Changes the first character of `value` (a signature or plaintext that is wrong
    /// but still well-formed base64url of the same length).
    CorruptValue,
}

impl Mangle {
    pub fn apply(self, body: &mut serde_json::Value) {
        match self {
            Mangle::DropKid => {
                if let Some(key) = body.get_mut("key").and_then(|k| k.as_object_mut()) {
                    key.remove("kid");
                }
            }
            Mangle::CorruptValue => {
                if let Some(serde_json::Value::String(v)) = body.get_mut("value") {
                    let first = if v.starts_with('A') { "B" } else { "A" };
                    v.replace_range(..1.min(v.len()), first);
                }
            }
        }
    }
}

fn one() -> u32 {
    1
}

impl OneShot {
    pub fn validate(&self) -> Result<(), String> {
        if self.times == 0 {
            return Err("times must be at least 1".into());
        }
        match (
            self.status,
            self.reset,
            self.stall_ms,
            self.delay_ms,
            self.mangle,
        ) {
            (Some(s), false, None, None, None) if (400..=599).contains(&s) => Ok(()),
            (Some(s), false, None, None, None) => Err(format!("status {s}: must be 400..599")),
            (None, false, Some(ms), None, None) if ms > MAX_DELAY_MS => {
                Err(format!("stall_ms {ms}: at most {MAX_DELAY_MS}"))
            }
            (None, false, None, Some(ms), None) if ms > MAX_DELAY_MS => {
                Err(format!("delay_ms {ms}: at most {MAX_DELAY_MS}"))
            }
            (None, true, None, None, None)
            | (None, false, Some(_), None, None)
            | (None, false, None, Some(_), None)
            | (None, false, None, None, Some(_)) => Ok(()),
            _ => Err("give exactly one of status, reset, stall_ms, delay_ms or mangle".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Respond(u16, Option<u64>),
    Reset,
    Stall(Duration),
    Delay(Duration),
    Mangle(Mangle),
}

#[derive(Default)]
pub struct Faults {
    settings: RwLock<FaultSettings>,
    queue: Mutex<VecDeque<OneShot>>,
}

impl Faults {
    pub fn settings(&self) -> FaultSettings {
        self.settings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn set(&self, s: FaultSettings) {
        *self
            .settings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = s;
    }

    pub fn push(&self, o: OneShot) {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back(o);
    }

    pub fn queued(&self) -> Vec<OneShot> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    pub fn clear(&self) {
        self.set(FaultSettings::default());
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Takes the first queued one-shot fault that matches `operation`.
    pub fn take_one_shot(&self, operation: &str) -> Option<Action> {
        let mut q = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let i = q
            .iter()
            .position(|o| o.operation == operation || o.operation == "*")?;
        let entry = q.get_mut(i)?;
        entry.times = entry.times.saturating_sub(1);
        let action = if let Some(m) = entry.mangle {
            Action::Mangle(m)
        } else if entry.reset {
            Action::Reset
        } else if let Some(ms) = entry.stall_ms {
            Action::Stall(Duration::from_millis(ms))
        } else if let Some(ms) = entry.delay_ms {
            Action::Delay(Duration::from_millis(ms))
        } else {
            Action::Respond(entry.status.unwrap_or(500), entry.retry_after_s)
        };
        if entry.times == 0 {
            q.remove(i);
        }
        Some(action)
    }

    /// Draws the rate-based faults for one data-plane request.
    pub fn draw(&self) -> Option<Action> {
        let s = self
            .settings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.reset_rate > 0.0 && ids::unit() < s.reset_rate {
            return Some(Action::Reset);
        }
        if s.stall_ms > 0 && ids::unit() < s.stall_rate.unwrap_or(1.0) {
            return Some(Action::Stall(Duration::from_millis(s.stall_ms)));
        }
        if s.error_rate_500 + s.error_rate_503 > 0.0 {
            let u = ids::unit();
            if u < s.error_rate_500 {
                return Some(Action::Respond(500, None));
            }
            if u < s.error_rate_500 + s.error_rate_503 {
                return Some(Action::Respond(503, None));
            }
        }
        None
    }
}

/// `unit` (in [0, 1)) of `max_ms` milliseconds, whole.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "unit is in [0, 1), so the product is in [0, max_ms]; `as` saturates anyway"
)]
fn jitter_of(unit: f64, max_ms: u64) -> u64 {
    (unit * max_ms as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shots_are_fifo_by_operation() {
        let f = Faults::default();
        let shot = |op: &str, status: u16, times: u32| OneShot {
            operation: op.into(),
            status: Some(status),
            retry_after_s: None,
            times,
            reset: false,
            stall_ms: None,
            delay_ms: None,
            mangle: None,
        };
        f.push(shot("sign", 429, 2));
        f.push(shot("sign", 503, 1));
        f.push(shot("decrypt", 500, 1));
        assert_eq!(f.take_one_shot("get_key"), None);
        assert_eq!(f.take_one_shot("sign"), Some(Action::Respond(429, None)));
        assert_eq!(f.take_one_shot("decrypt"), Some(Action::Respond(500, None)));
        assert_eq!(f.take_one_shot("sign"), Some(Action::Respond(429, None)));
        assert_eq!(f.take_one_shot("sign"), Some(Action::Respond(503, None)));
        assert_eq!(f.take_one_shot("sign"), None);
    }

    #[test]
    fn a_delay_holds_then_answers() {
        let f = Faults::default();
        let shot: OneShot =
            serde_json::from_str(r#"{"operation": "create_key", "delay_ms": 3000}"#).unwrap();
        assert!(shot.validate().is_ok());
        f.push(shot);
        assert_eq!(
            f.take_one_shot("create_key"),
            Some(Action::Delay(Duration::from_millis(3000)))
        );
        let both: OneShot =
            serde_json::from_str(r#"{"operation": "sign", "delay_ms": 1, "stall_ms": 1}"#).unwrap();
        assert!(both.validate().is_err());
        let long: OneShot =
            serde_json::from_str(r#"{"operation": "sign", "delay_ms": 600001}"#).unwrap();
        assert!(long.validate().is_err());
    }

    #[test]
    fn mangles_damage_answers_as_named() {
        let mut key = serde_json::json!({"key": {"kid": "https://v/keys/k/1", "kty": "EC"}});
        Mangle::DropKid.apply(&mut key);
        assert_eq!(key, serde_json::json!({"key": {"kty": "EC"}}));
        let mut sig = serde_json::json!({"kid": "x", "value": "AbCd"});
        Mangle::CorruptValue.apply(&mut sig);
        assert_eq!(sig["value"], "BbCd");
        Mangle::CorruptValue.apply(&mut sig);
        assert_eq!(sig["value"], "AbCd");
        let shot: OneShot =
            serde_json::from_str(r#"{"operation": "sign", "mangle": "corrupt-value"}"#).unwrap();
        assert!(shot.validate().is_ok());
        let both: OneShot =
            serde_json::from_str(r#"{"operation": "sign", "mangle": "drop-kid", "reset": true}"#)
                .unwrap();
        assert!(both.validate().is_err());
    }

    #[test]
    fn settings_are_validated() {
        let s: FaultSettings = serde_json::from_str(r#"{"error_rate_500": 1.5}"#).unwrap();
        assert!(s.validate().is_err());
        assert!(serde_json::from_str::<FaultSettings>(r#"{"bogus": 1}"#).is_err());
        let s: FaultSettings =
            serde_json::from_str(r#"{"latency_ms": 20, "throttle": {"scale": 0.5}}"#).unwrap();
        assert!(s.validate().is_ok());
        assert_eq!(s.latency(), Duration::from_millis(20));
    }
}
