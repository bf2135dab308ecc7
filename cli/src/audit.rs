//! `identify-pkcs11 audit`: a summary of the audit log the module writes.

use crate::ops::load;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

type Result<T> = std::result::Result<T, String>;

/// `identify-pkcs11 audit [--since 1h] [--json]`: a summary of the audit log (and its
/// rotated files) since a time: uses by slot, key, operation and result, with latency
/// percentiles.
pub fn audit(path: Option<&PathBuf>, since: &str, as_json: bool) -> Result<()> {
    let config = load(path)?;
    let Some(a) = &config.audit else {
        return Err(format!(
            "{}: no [audit] section: add [audit] file = \"/var/log/identify-pkcs11/audit.jsonl\"",
            config.source
        ));
    };
    let window = parse_since(since)?;
    let cutoff = std::time::SystemTime::now()
        .checked_sub(window)
        .unwrap_or(std::time::UNIX_EPOCH);
    let cutoff = identify_pkcs11::admin::rfc3339_of(cutoff);
    let mut files = vec![a.file.clone()];
    for n in 1..=a.keep {
        let mut p = a.file.clone().into_os_string();
        p.push(format!(".{n}"));
        files.push(PathBuf::from(p));
    }
    // (slot, key, operation, result) → latencies in ms.
    let mut groups: std::collections::BTreeMap<(String, String, String, String), Vec<f64>> =
        Default::default();
    let mut unreadable = 0usize;
    for f in files.iter().filter(|f| f.exists()) {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                unreadable += 1;
                continue;
            };
            // RFC 3339 UTC strings of one format compare as times.
            if v["time"].as_str().is_none_or(|t| t < cutoff.as_str()) {
                continue;
            }
            let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
            groups
                .entry((s("slot"), s("key"), s("operation"), s("result")))
                .or_default()
                .push(v["latency_ms"].as_f64().unwrap_or(0.0));
        }
    }
    let pct = |v: &mut Vec<f64>, p: usize| {
        v.sort_by(f64::total_cmp);
        let i = (v.len() * p).div_ceil(100).saturating_sub(1);
        v.get(i).copied().unwrap_or(0.0)
    };
    let mut rows = Vec::new();
    for ((slot, key, op, result), mut lat) in groups {
        rows.push(json!({
            "slot": slot, "key": key, "operation": op, "result": result,
            "count": lat.len(), "p50_ms": pct(&mut lat, 50), "p99_ms": pct(&mut lat, 99),
        }));
    }
    let total: u64 = rows.iter().filter_map(|r| r["count"].as_u64()).sum();
    let failed: u64 = rows
        .iter()
        .filter(|r| r["result"] != "CKR_OK")
        .filter_map(|r| r["count"].as_u64())
        .sum();
    if as_json {
        println!(
            "{}",
            json!({"since": cutoff, "uses": total, "failed": failed, "unreadable_lines": unreadable, "groups": rows})
        );
        return Ok(());
    }
    println!("key uses since {cutoff}: {total} ({failed} failed)");
    println!(
        "{:<12} {:<20} {:<9} {:<28} {:>7} {:>9} {:>9}",
        "slot", "key", "operation", "result", "count", "p50 ms", "p99 ms"
    );
    for r in &rows {
        println!(
            "{:<12} {:<20} {:<9} {:<28} {:>7} {:>9.1} {:>9.1}",
            r["slot"].as_str().unwrap_or(""),
            r["key"].as_str().unwrap_or(""),
            r["operation"].as_str().unwrap_or(""),
            r["result"].as_str().unwrap_or(""),
            r["count"],
            r["p50_ms"].as_f64().unwrap_or(0.0),
            r["p99_ms"].as_f64().unwrap_or(0.0)
        );
    }
    if unreadable > 0 {
        println!("({unreadable} lines were not JSON and were skipped)");
    }
    Ok(())
}

/// `90s`, `15m`, `1h`, `7d`.
fn parse_since(s: &str) -> Result<Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("--since {s:?}: a number and a unit (s, m, h, d), e.g. 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" | "" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("--since {s:?}: the unit is s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}
