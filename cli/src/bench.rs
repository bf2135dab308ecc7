//! `identify-pkcs11 bench`: N threads of C_Sign through the C ABI against a key-vault slot
//! on the emulator with injected latency; signs/s and p50/p99 per thread count.
//!
//! It starts the emulator itself (tests/kv-emulator, seeded with softhsm-fixtures/keys) so
//! that one command gives comparable figures on any machine.
//!
//! The bound of each run is min(threads / latency, the emulator's own capacity measured
//! alone on this machine for the same load): before the module runs, `kv-load` (the
//! emulator's async load generator, tests/kv-contract) drives the emulator with as many
//! concurrent clients, the same operation, key, latency and duration. Both share the
//! machine's cores with the emulator, as the module does.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, String>;

pub struct Options {
    pub module: PathBuf,
    pub emulator: PathBuf,
    pub fixtures: PathBuf,
    pub key: String,
    pub threads: Vec<usize>,
    pub seconds: u64,
    pub latency_ms: u64,
    /// The emulator's load generator, for the reference runs (skipped when missing).
    pub kv_load: PathBuf,
}

/// The emulator, started by the shared launcher (tests/kv-launch), seeded and with the
/// bench's configuration file.
pub(crate) struct Emulator(pub(crate) kv_launch::Emulator);

impl Emulator {
    pub(crate) fn start(bin: &Path, seed: &Path) -> Result<Emulator> {
        let emulator = kv_launch::Emulator::start(&kv_launch::Launch {
            bin,
            seed_dir: seed,
            config: None,
            exit_with_this_process: false,
            log: false,
        })?;
        if let Some(host) = emulator.unresolved_hosts()?.first() {
            return Err(format!(
                "{host} does not resolve: add '127.0.0.1 {host}' to /etc/hosts"
            ));
        }
        Ok(Emulator(emulator))
    }

    fn config(&self, rate_budget: f64) -> Result<PathBuf> {
        self.config_with(rate_budget, "")
    }

    /// The bench's configuration file, with `extra` lines in the slot table.
    pub(crate) fn config_with(&self, rate_budget: f64, extra: &str) -> Result<PathBuf> {
        let secret = self.0.dir.path().join("secret");
        std::fs::write(&secret, self.0.field("client_secret")?).map_err(|e| e.to_string())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
        }
        let path = self.0.dir.path().join("config.toml");
        let text = format!(
            "[[slot]]\nlabel = \"bench\"\nkind = \"key-vault\"\nvault = {:?}\nca_file = {:?}\ncertificates = \"sqlite:{}\"\nrate_budget = {rate_budget}\n{extra}[slot.credential]\ntype = \"client-secret\"\ntenant_id = {:?}\nclient_id = {:?}\nclient_secret_file = {secret:?}\nauthority_host = {:?}\n",
            self.0.field("vault_url")?,
            self.0.field("ca_file")?,
            self.0.dir.path().join("certificates.db").display(),
            self.0.field("tenant_id")?,
            self.0.field("client_id")?,
            self.0.field("authority_host")?,
        );
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        Ok(path)
    }
}

pub fn run(o: Options) -> Result<()> {
    let emu = Emulator::start(&o.emulator, &o.fixtures)?;
    // The bench measures this module, not throttling: the emulator's limits and our budget
    // are raised far above the load.
    emu.0.admin(
        "PUT",
        "/faults",
        &format!(
            r#"{{"latency_ms": {}, "throttle": {{"scale": 1000.0}}}}"#,
            o.latency_ms
        ),
    )?;
    let reference = reference_runs(&o, &emu)?;
    let config = emu.config(100.0)?;
    // The module reads its configuration from the environment of the process that loads
    // it: the measurement runs in a child whose environment says so.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let status = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(INNER, "1")
        .env(REFERENCE, reference)
        .env("IDENTIFY_PKCS11_CONFIG", &config)
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("bench failed: {status}"))
    }
}

/// Set in the child process that measures.
pub const INNER: &str = "IDENTIFY_PKCS11_BENCH_INNER";
/// The emulator-alone rates, `threads:rate,…`, handed to the child.
const REFERENCE: &str = "IDENTIFY_PKCS11_BENCH_REFERENCE";

/// The emulator alone under each thread count's load (kv-load, N concurrent clients):
/// `threads:signs_per_second,…`; empty when kv-load is not there.
fn reference_runs(o: &Options, emu: &Emulator) -> Result<String> {
    if !o.kv_load.exists() {
        eprintln!(
            "{} not found: the emulator-alone reference is not measured (cargo build --release -p kv-contract --bin kv-load)",
            o.kv_load.display()
        );
        return Ok(String::new());
    }
    let ready = emu.0.dir.path().join("ready.json");
    let mut out = Vec::new();
    for &n in &o.threads {
        let run = Command::new(&o.kv_load)
            .arg(&ready)
            .arg(n.to_string())
            .arg(o.seconds.to_string())
            .args(["sign", &o.key, "vault"])
            .output()
            .map_err(|e| format!("{}: {e}", o.kv_load.display()))?;
        if !run.status.success() {
            return Err(format!(
                "kv-load: {}",
                String::from_utf8_lossy(&run.stderr).trim()
            ));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&run.stdout).map_err(|e| format!("kv-load output: {e}"))?;
        let rps = v["rps"].as_f64().ok_or("kv-load printed no rps")?;
        out.push(format!("{n}:{rps}"));
    }
    Ok(out.join(","))
}

/// The measurement, in the child process (the configuration is in the environment).
pub fn measure(o: &Options) -> Result<()> {
    let (pkcs11, slot) = initialized(&o.module)?;
    let pkcs11 = Arc::new(pkcs11);
    // Warm up: the first listing and the token happen here, outside the measurement.
    {
        let s = pkcs11.open_ro_session(slot).map_err(|e| e.to_string())?;
        s.login(UserType::User, Some(&AuthPin::new("bench".into())))
            .map_err(|e| e.to_string())?;
        let key = find_key(&s, &o.key)?;
        s.sign(&Mechanism::Sha256RsaPkcs, key, b"warm-up")
            .map_err(|e| format!("C_Sign: {e}"))?;
    }
    println!(
        "C_Sign (CKM_SHA256_RSA_PKCS, key {}) against the emulator with {} ms injected latency, {} s per run",
        o.key, o.latency_ms, o.seconds
    );
    let reference: std::collections::HashMap<usize, f64> = std::env::var(REFERENCE)
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| {
            let (n, r) = p.split_once(':')?;
            Some((n.parse().ok()?, r.parse().ok()?))
        })
        .collect();
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>10} {:>14} {:>8} {:>11}",
        "threads", "signs", "signs/s", "p50 ms", "p99 ms", "emulator alone", "bound", "% of bound"
    );
    for &n in &o.threads {
        let stop = Instant::now() + Duration::from_secs(o.seconds);
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let pkcs11 = pkcs11.clone();
                let key_label = o.key.clone();
                std::thread::spawn(move || -> Result<Vec<Duration>> {
                    let s = pkcs11.open_ro_session(slot).map_err(|e| e.to_string())?;
                    let key = find_key(&s, &key_label)?;
                    let mut lat = Vec::new();
                    while Instant::now() < stop {
                        let t = Instant::now();
                        s.sign(&Mechanism::Sha256RsaPkcs, key, b"benchmark payload")
                            .map_err(|e| format!("C_Sign: {e}"))?;
                        lat.push(t.elapsed());
                    }
                    Ok(lat)
                })
            })
            .collect();
        let started = Instant::now();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().map_err(|_| "a bench thread panicked")??);
        }
        let elapsed = started.elapsed().as_secs_f64();
        all.sort();
        let pct = |p: usize| {
            // Nearest-rank percentile, in integers: index = ceil(p% * n) - 1.
            let n = all.len();
            let i = (n * p).div_ceil(100).saturating_sub(1);
            all.get(i).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
        };
        let rate = all.len() as f64 / elapsed;
        // min(threads / latency, the emulator alone under the same load).
        let latency_bound = (o.latency_ms > 0).then(|| n as f64 * 1000.0 / o.latency_ms as f64);
        let alone = reference.get(&n).copied();
        let bound = match (latency_bound, alone) {
            (Some(l), Some(a)) => Some(l.min(a)),
            (l, a) => l.or(a),
        };
        let show = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
        println!(
            "{:>8} {:>10} {:>10.0} {:>10.1} {:>10.1} {:>14} {:>8} {:>11}",
            n,
            all.len(),
            rate,
            pct(50),
            pct(99),
            show(alone, &|a| format!("{a:.0}")),
            show(bound, &|b| format!("{b:.0}")),
            show(bound, &|b| format!("{:.0} %", 100.0 * rate / b)),
        );
    }
    if o.latency_ms > 0 {
        let max = o.threads.iter().max().copied().unwrap_or(1) as f64;
        println!(
            "latency bound for {} threads at {} ms: {:.0} signs/s",
            max,
            o.latency_ms,
            max * 1000.0 / o.latency_ms as f64
        );
    }
    Ok(())
}

/// The module at `module`, initialized (its configuration from the environment), and its
/// first slot with a token.
pub(crate) fn initialized(module: &Path) -> Result<(Pkcs11, cryptoki::slot::Slot)> {
    let pkcs11 = Pkcs11::new(module).map_err(|e| format!("loading {}: {e}", module.display()))?;
    pkcs11
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(|e| format!("C_Initialize: {e}"))?;
    let slot = *pkcs11
        .get_slots_with_token()
        .map_err(|e| e.to_string())?
        .first()
        .ok_or("no slot")?;
    Ok((pkcs11, slot))
}

pub(crate) fn find_key(
    s: &cryptoki::session::Session,
    label: &str,
) -> Result<cryptoki::object::ObjectHandle> {
    s.find_objects(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Label(label.as_bytes().to_vec()),
    ])
    .map_err(|e| e.to_string())?
    .first()
    .copied()
    .ok_or_else(|| format!("no private key labelled {label}"))
}
