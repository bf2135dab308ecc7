//! Request counters served by `GET /stats` on the admin port.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};

#[derive(Default)]
struct Counters {
    total: u64,
    by_operation: BTreeMap<String, u64>,
    by_key: BTreeMap<String, u64>,
    by_principal: BTreeMap<String, u64>,
    by_status: BTreeMap<String, u64>,
}

#[derive(Default)]
pub struct Stats {
    inner: Mutex<Counters>,
}

/// What one request contributes, recorded once its answer is known.
#[derive(Default, Debug)]
pub struct Sample {
    pub operation: Option<&'static str>,
    pub key: Option<String>,
    pub principal: Option<String>,
    /// None when the connection was reset or dropped without an answer.
    pub status: Option<u16>,
}

impl Stats {
    pub fn record(&self, s: &Sample) {
        let mut c = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        c.total += 1;
        if let Some(op) = s.operation {
            *c.by_operation.entry(op.to_string()).or_default() += 1;
        }
        if let Some(k) = &s.key {
            *c.by_key.entry(k.to_ascii_lowercase()).or_default() += 1;
        }
        if let Some(p) = &s.principal {
            *c.by_principal.entry(p.clone()).or_default() += 1;
        }
        let status = s
            .status
            .map_or_else(|| "reset".to_string(), |st| st.to_string());
        *c.by_status.entry(status).or_default() += 1;
    }

    pub fn snapshot(&self) -> Value {
        let c = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        json!({
            "total_requests": c.total,
            "by_operation": c.by_operation,
            "by_key": c.by_key,
            "by_principal": c.by_principal,
            "by_status": c.by_status,
        })
    }

    pub fn reset(&self) {
        *self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Counters::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets() {
        let s = Stats::default();
        s.record(&Sample {
            operation: Some("sign"),
            key: Some("K".into()),
            principal: Some("app".into()),
            status: Some(200),
        });
        s.record(&Sample {
            operation: Some("sign"),
            key: None,
            principal: None,
            status: Some(401),
        });
        let v = s.snapshot();
        assert_eq!(v["total_requests"], 2);
        assert_eq!(v["by_operation"]["sign"], 2);
        assert_eq!(v["by_key"]["k"], 1);
        assert_eq!(v["by_status"]["401"], 1);
        s.reset();
        assert_eq!(s.snapshot()["total_requests"], 0);
    }
}
