//! The audit log and the metrics file.
//!
//! Audit log (`[audit] file`): one JSON line per use of a key (sign, decrypt, unwrap,
//! generate, delete): time, pid, process name, slot, key, version, operation, mechanism,
//! result (the CK_RV name), latency in milliseconds and the Azure request id when the store
//! is Azure. Never a secret, a PIN, a token or data. Rotated by size: `file` becomes
//! `file.1` (`file.1` becomes `file.2`, …, up to `keep`).
//!
//! Metrics (`[metrics] file`): counters and latency histograms in the Prometheus text
//! format, written every `interval_seconds` (temporary file + rename, as node_exporter's
//! textfile collector wants) by a thread of the module, and once more at C_Finalize.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// `[audit]` as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    pub file: PathBuf,
    pub max_bytes: u64,
    pub keep: u32,
}

/// `[metrics]` as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `{pid}` in the name is replaced by the process id (one file per process).
    pub file: PathBuf,
    pub interval: Duration,
}

/// One use of a key.
pub struct KeyUse<'a> {
    pub slot: &'a str,
    pub key: &'a str,
    pub version: Option<&'a str>,
    pub operation: &'static str,
    pub mechanism: &'a str,
    pub result: &'a Result<()>,
    pub latency: Duration,
}

thread_local! {
    /// The request id of the last Azure answer on this thread (set by the backend).
    static REQUEST_ID: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Notes the Azure request id of the answer the current call got.
pub fn note_request_id(id: Option<String>) {
    REQUEST_ID.with(|r| *r.borrow_mut() = id);
}

fn take_request_id() -> Option<String> {
    REQUEST_ID.with(|r| r.borrow_mut().take())
}

/// The object cache's counters of a slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounts {
    /// Searches answered by the query cache.
    pub hits: u64,
    /// Searches matched against the objects.
    pub misses: u64,
    /// Listings of the store applied.
    pub listings: u64,
    /// Listings of the store that failed.
    pub failed_listings: u64,
}

/// A cache metric: its name, its help text and how to read it from the counts.
type CacheSeries = (&'static str, &'static str, fn(&CacheCounts) -> u64);

/// What the object cache knows of a slot, for the metrics.
#[derive(Debug, Clone, Default)]
pub struct SlotFacts {
    pub label: String,
    pub counts: CacheCounts,
    /// Certificates: label, SHA-1 thumbprint (hex), notAfter (Unix seconds).
    pub certificates: Vec<(String, String, i64)>,
}

/// A counter of the HTTP pipeline: name, help, how to read it.
type Series = (&'static str, &'static str, fn(&HttpCounts) -> u64);

/// Histogram bucket bounds, seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Counters and histograms, by metric name and label set.
#[derive(Default)]
struct Registry {
    counters: BTreeMap<(&'static str, String), u64>,
    histograms: BTreeMap<(&'static str, String), Histogram>,
}

/// Counts that the HTTP pipeline reports (every try of every request).
#[derive(Default, Debug)]
pub struct HttpCounts {
    pub tries: AtomicU64,
    pub calls: AtomicU64,
    /// 401 answers (bearer challenges, answered by sending again with a token).
    pub challenges: AtomicU64,
    pub throttled: AtomicU64,
    pub server_errors: AtomicU64,
}

pub struct Telemetry {
    audit: Option<Mutex<Audit>>,
    metrics: Option<MetricsConfig>,
    registry: Mutex<Registry>,
    process: String,
    /// Per slot label: what the slot's HTTP pipeline saw.
    http: Mutex<BTreeMap<String, Arc<HttpCounts>>>,
    writer: Mutex<Option<Writer>>,
}

struct Audit {
    config: AuditConfig,
    file: Option<std::fs::File>,
    size: u64,
}

struct Writer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    done: std::sync::mpsc::Receiver<()>,
}

fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Telemetry {
    pub fn new(audit: Option<AuditConfig>, metrics: Option<MetricsConfig>) -> Arc<Telemetry> {
        let process = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        Arc::new(Telemetry {
            audit: audit.map(|config| {
                Mutex::new(Audit {
                    config,
                    file: None,
                    size: 0,
                })
            }),
            metrics,
            registry: Mutex::new(Registry::default()),
            process,
            http: Mutex::new(BTreeMap::new()),
            writer: Mutex::new(None),
        })
    }

    /// The HTTP pipeline counters of a slot (shared with its policy).
    pub fn http_counts(&self, slot: &str) -> Arc<HttpCounts> {
        let mut h = self
            .http
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        h.entry(slot.to_owned()).or_default().clone()
    }

    /// Records one use of a key: an audit line and the metrics.
    pub fn key_use(&self, u: &KeyUse<'_>) {
        let request_id = take_request_id();
        if self.audit.is_none() && self.metrics.is_none() {
            return;
        }
        let rv = match u.result {
            Ok(()) => "CKR_OK".to_string(),
            Err(e) => crate::error::rv_name(e.rv()),
        };
        if let Some(audit) = &self.audit {
            let line = serde_json::json!({
                "time": crate::crypto::time::now_rfc3339_millis(),
                "pid": std::process::id(),
                "process": self.process,
                "slot": u.slot,
                "key": u.key,
                "version": u.version,
                "operation": u.operation,
                "mechanism": u.mechanism,
                "result": rv,
                "latency_ms": (u.latency.as_secs_f64() * 1e6).round() / 1e3,
                "request_id": request_id,
            });
            let mut a = audit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(e) = a.append(&line.to_string()) {
                tracing::error!(file = %a.config.file.display(), error = %e, "audit log not written");
            }
        }
        let labels = format!(
            "slot=\"{}\",operation=\"{}\",result=\"{}\"",
            label_value(u.slot),
            u.operation,
            rv
        );
        let mut r = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *r.counters
            .entry(("identify_pkcs11_key_operations_total", labels))
            .or_default() += 1;
        let h = r
            .histograms
            .entry((
                "identify_pkcs11_key_operation_seconds",
                format!(
                    "slot=\"{}\",operation=\"{}\"",
                    label_value(u.slot),
                    u.operation
                ),
            ))
            .or_default();
        let secs = u.latency.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The Prometheus text of every metric; `cache` adds the object cache's counts and
    /// certificate expiry per slot.
    pub fn prometheus(&self, cache: &[SlotFacts]) -> String {
        let mut out = String::new();
        let r = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut last = "";
        for ((name, labels), v) in &r.counters {
            if *name != last {
                out += &format!(
                    "# HELP {name} Uses of keys by slot, operation and result (CK_RV).\n# TYPE {name} counter\n"
                );
                last = name;
            }
            out += &format!("{name}{{{labels}}} {v}\n");
        }
        let mut last = "";
        for ((name, labels), h) in &r.histograms {
            if *name != last {
                out += &format!(
                    "# HELP {name} Time of key uses, store round trip included.\n# TYPE {name} histogram\n"
                );
                last = name;
            }
            for (i, b) in BUCKETS.iter().enumerate() {
                out += &format!("{name}_bucket{{{labels},le=\"{b}\"}} {}\n", h.counts[i]);
            }
            out += &format!("{name}_bucket{{{labels},le=\"+Inf\"}} {}\n", h.count);
            out += &format!("{name}_sum{{{labels}}} {}\n", h.sum);
            out += &format!("{name}_count{{{labels}}} {}\n", h.count);
        }
        drop(r);
        let http = self
            .http
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let series: [Series; 3] = [
            (
                "identify_pkcs11_http_retries_total",
                "Requests to the store sent again (throttling, 5xx, connection failures).",
                |c| {
                    c.tries.load(Ordering::Relaxed).saturating_sub(
                        c.calls.load(Ordering::Relaxed) + c.challenges.load(Ordering::Relaxed),
                    )
                },
            ),
            (
                "identify_pkcs11_http_throttled_total",
                "Answers 429 (throttled) from the store.",
                |c| c.throttled.load(Ordering::Relaxed),
            ),
            (
                "identify_pkcs11_http_server_errors_total",
                "Answers 5xx from the store.",
                |c| c.server_errors.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, get) in series {
            if http.is_empty() {
                continue;
            }
            out += &format!("# HELP {name} {help}\n# TYPE {name} counter\n");
            for (slot, c) in http.iter() {
                out += &format!("{name}{{slot=\"{}\"}} {}\n", label_value(slot), get(c));
            }
        }
        let cache_series: [CacheSeries; 4] = [
            (
                "identify_pkcs11_cache_hits_total",
                "Searches answered by the query cache.",
                |c| c.hits,
            ),
            (
                "identify_pkcs11_cache_misses_total",
                "Searches matched against the objects.",
                |c| c.misses,
            ),
            (
                "identify_pkcs11_refreshes_total",
                "Listings of the store applied.",
                |c| c.listings,
            ),
            (
                "identify_pkcs11_refresh_failures_total",
                "Listings of the store that failed.",
                |c| c.failed_listings,
            ),
        ];
        for (name, help, value) in cache_series {
            if cache.is_empty() {
                continue;
            }
            out += &format!("# HELP {name} {help}\n# TYPE {name} counter\n");
            for f in cache {
                out += &format!(
                    "{name}{{slot=\"{}\"}} {}\n",
                    label_value(&f.label),
                    value(&f.counts)
                );
            }
        }
        if cache.iter().any(|f| !f.certificates.is_empty()) {
            let name = "identify_pkcs11_certificate_not_after_seconds";
            out += &format!(
                "# HELP {name} notAfter of each certificate, Unix time.\n# TYPE {name} gauge\n"
            );
            for f in cache {
                for (label, sha1, not_after) in &f.certificates {
                    out += &format!(
                        "{name}{{slot=\"{}\",label=\"{}\",sha1=\"{sha1}\"}} {not_after}\n",
                        label_value(&f.label),
                        label_value(label)
                    );
                }
            }
        }
        out
    }

    /// The metrics file with `{pid}` replaced.
    pub fn metrics_path(&self) -> Option<PathBuf> {
        self.metrics.as_ref().map(|m| {
            PathBuf::from(
                m.file
                    .to_string_lossy()
                    .replace("{pid}", &std::process::id().to_string()),
            )
        })
    }

    /// Writes the metrics file now (temporary file + rename).
    pub fn write_metrics(&self, cache: &[SlotFacts]) -> Result<()> {
        let Some(path) = self.metrics_path() else {
            return Ok(());
        };
        let tmp = path.with_extension(format!("prom.{}.tmp", std::process::id()));
        std::fs::write(&tmp, self.prometheus(cache))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::Backend(format!("metrics file {}: {e}", path.display())))
    }

    /// Starts the thread that writes the metrics every interval; `cache` reads the object
    /// cache's counts.
    pub fn start_writer(
        self: &Arc<Self>,
        cache: impl Fn() -> Vec<SlotFacts> + Send + 'static,
    ) -> Result<()> {
        let Some(m) = &self.metrics else {
            return Ok(());
        };
        let interval = m.interval;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let me = self.clone();
        let s = stop.clone();
        std::thread::Builder::new()
            .name("identify-pkcs11-metrics".into())
            .spawn(move || {
                loop {
                    if let Err(e) = me.write_metrics(&cache()) {
                        tracing::warn!(error = %e, "metrics not written");
                    }
                    let (lock, cv) = &*s;
                    let Ok(g) = lock.lock() else { break };
                    if *g {
                        break;
                    }
                    match cv.wait_timeout(g, interval) {
                        Ok((g, _)) if !*g => {}
                        _ => {
                            // One last write with the final counts.
                            let _ = me.write_metrics(&cache());
                            break;
                        }
                    }
                }
                drop(tx);
            })
            .map_err(|e| Error::backend("starting the metrics thread", e))?;
        *self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Writer { stop, done: rx });
        Ok(())
    }

    /// C_Finalize: stops the writer (after a last write) within `bound`.
    pub fn stop(&self, bound: Duration) {
        let w = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(w) = w {
            if let Ok(mut g) = w.stop.0.lock() {
                *g = true;
            }
            w.stop.1.notify_all();
            let _ = w.done.recv_timeout(bound);
        }
    }
}

impl Audit {
    fn append(&mut self, line: &str) -> std::io::Result<()> {
        let len = line.len() as u64 + 1;
        if self.file.is_none() {
            let f = open_append(&self.config.file, 0o640)?;
            self.size = f.metadata()?.len();
            self.file = Some(f);
        }
        if self.size > 0 && self.size + len > self.config.max_bytes {
            self.rotate()?;
        }
        let Some(f) = self.file.as_mut() else {
            return Err(std::io::Error::other("audit file not open"));
        };
        f.write_all(format!("{line}\n").as_bytes())?;
        self.size += len;
        Ok(())
    }

    /// `file` → `file.1` → … → `file.KEEP` (the oldest dropped), then a new `file`.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let name = |n: u32| {
            let mut p = self.config.file.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if self.config.keep == 0 {
            std::fs::remove_file(&self.config.file)?;
        } else {
            for n in (1..self.config.keep).rev() {
                if name(n).exists() {
                    std::fs::rename(name(n), name(n + 1))?;
                }
            }
            std::fs::rename(&self.config.file, name(1))?;
        }
        let f = open_append(&self.config.file, 0o640)?;
        self.size = f.metadata()?.len();
        self.file = Some(f);
        Ok(())
    }
}

/// Opens `path` for appending, creating it with `mode` (Unix permission bits; an existing
/// file keeps its own).
pub(crate) fn open_append(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    o.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn use_of(result: &Result<()>) -> KeyUse<'_> {
        KeyUse {
            slot: "s",
            key: "k",
            version: Some("v1"),
            operation: "sign",
            mechanism: "RSA-PKCS1-SHA256",
            result,
            latency: Duration::from_millis(12),
        }
    }

    #[test]
    fn audit_lines_rotate_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.jsonl");
        let t = Telemetry::new(
            Some(AuditConfig {
                file: file.clone(),
                max_bytes: 1000,
                keep: 2,
            }),
            None,
        );
        note_request_id(Some("req-1".into()));
        t.key_use(&use_of(&Ok(())));
        let line: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(&file)
                .unwrap()
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(line["result"], "CKR_OK");
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["key"], "k");
        assert_eq!(line["latency_ms"], 12.0);
        // The request id belongs to one call only.
        t.key_use(&use_of(&Err(Error::KeyHandleInvalid)));
        let second = std::fs::read_to_string(&file).unwrap();
        let second: serde_json::Value =
            serde_json::from_str(second.lines().nth(1).unwrap()).unwrap();
        assert_eq!(second["result"], "CKR_KEY_HANDLE_INVALID");
        assert!(second["request_id"].is_null());
        for _ in 0..40 {
            t.key_use(&use_of(&Ok(())));
        }
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let one = PathBuf::from(format!("{}.1", file.display()));
        let two = PathBuf::from(format!("{}.2", file.display()));
        let three = PathBuf::from(format!("{}.3", file.display()));
        assert!(size(&file) <= 1000 && size(&one) <= 1000 && size(&two) <= 1000);
        assert!(size(&one) > 0 && size(&two) > 0);
        assert!(!three.exists(), "keep = 2");
    }

    #[test]
    fn prometheus_text_has_counters_and_histograms() {
        let t = Telemetry::new(
            None,
            Some(MetricsConfig {
                file: "/nonexistent/m.prom".into(),
                interval: Duration::from_secs(15),
            }),
        );
        t.key_use(&use_of(&Ok(())));
        t.key_use(&use_of(&Err(Error::Backend("x".into()))));
        t.http_counts("s").tries.fetch_add(3, Ordering::Relaxed);
        t.http_counts("s").calls.fetch_add(2, Ordering::Relaxed);
        let text = t.prometheus(&[SlotFacts {
            label: "s".into(),
            counts: CacheCounts {
                hits: 5,
                misses: 1,
                listings: 2,
                failed_listings: 0,
            },
            certificates: vec![("c".into(), "ab".into(), 1_900_000_000)],
        }]);
        assert!(
            text.contains("identify_pkcs11_certificate_not_after_seconds{slot=\"s\",label=\"c\",sha1=\"ab\"} 1900000000"),
            "{text}"
        );
        assert!(text.contains("identify_pkcs11_key_operations_total{slot=\"s\",operation=\"sign\",result=\"CKR_OK\"} 1"), "{text}");
        assert!(text.contains("result=\"CKR_DEVICE_ERROR\"} 1"), "{text}");
        assert!(text.contains("identify_pkcs11_key_operation_seconds_bucket{slot=\"s\",operation=\"sign\",le=\"0.01\"} 0"), "{text}");
        assert!(text.contains("identify_pkcs11_key_operation_seconds_bucket{slot=\"s\",operation=\"sign\",le=\"0.025\"} 2"), "{text}");
        assert!(
            text.contains(
                "identify_pkcs11_key_operation_seconds_count{slot=\"s\",operation=\"sign\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("identify_pkcs11_http_retries_total{slot=\"s\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("identify_pkcs11_cache_hits_total{slot=\"s\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE identify_pkcs11_refreshes_total counter"),
            "{text}"
        );
    }
}
