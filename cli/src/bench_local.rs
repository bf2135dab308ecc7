//! `identify-pkcs11 bench --local`: C_Sign with a directory store's RSA-2048 key
//! (CKM_SHA256_RSA_PKCS) on one thread, beside `openssl speed rsa2048` (its sign/s, also
//! one thread) measured in the same run, so that the module's share of the physical limit
//! is read off one machine at one time.

use cryptoki::mechanism::Mechanism;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, String>;

/// Set in the child that measures.
pub const INNER: &str = "IDENTIFY_PKCS11_BENCH_LOCAL";

pub fn run(fixtures: &Path, seconds: u64) -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = dir.path().join("config.toml");
    let store =
        std::fs::canonicalize(fixtures).map_err(|e| format!("{}: {e}", fixtures.display()))?;
    std::fs::write(
        &config,
        format!("[[slot]]\nlabel = \"local\"\nkind = \"cert-store\"\npath = {store:?}\nwritable = false\n"),
    )
    .map_err(|e| e.to_string())?;
    println!("RSA-2048 signatures on one thread for {seconds} s each, alternating");
    for round in 1..=2 {
        let openssl = openssl_speed(seconds)?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let out = Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(INNER, "1")
            .env("IDENTIFY_PKCS11_CONFIG", &config)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "bench --local failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let module: f64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|e| format!("the measuring child printed no rate: {e}"))?;
        println!(
            "round {round}: openssl speed {openssl:.0} sign/s, C_Sign {module:.0} sign/s: {:.1} %",
            100.0 * module / openssl
        );
    }
    Ok(())
}

/// `openssl speed -seconds N rsa2048`: its sign/s.
fn openssl_speed(seconds: u64) -> Result<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", &seconds.to_string(), "rsa2048"])
        .output()
        .map_err(|e| format!("openssl speed: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "rsa 2048 bits 0.000251s 0.000007s   3984.1 143000.5" (OpenSSL 3; 1.1 says "rsa 2048 bits" too).
    text.lines()
        .find(|l| l.trim_start().starts_with("rsa 2048 bits") || l.contains("rsa  2048 bits"))
        .and_then(|l| l.split_whitespace().nth(5))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("openssl speed printed no rsa 2048 line: {text}"))
}

/// The measurement, in the child: prints signatures per second.
pub fn measure(module: &Path, seconds: u64) -> Result<()> {
    let (pkcs11, slot) = crate::bench::initialized(module)?;
    let s = pkcs11.open_ro_session(slot).map_err(|e| e.to_string())?;
    let key = crate::bench::find_key(&s, "rsa2048")?;
    let sign = || s.sign(&Mechanism::Sha256RsaPkcs, key, b"benchmark payload");
    sign().map_err(|e| format!("C_Sign: {e}"))?;
    let (start, until) = (Instant::now(), Duration::from_secs(seconds));
    let mut n = 0u64;
    while start.elapsed() < until {
        sign().map_err(|e| format!("C_Sign: {e}"))?;
        n += 1;
    }
    println!("{}", n as f64 / start.elapsed().as_secs_f64());
    Ok(())
}
