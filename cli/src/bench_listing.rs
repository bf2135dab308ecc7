//! `identify-pkcs11 bench --listing 100,1000,5000`: a vault of N EC keys, every tenth with
//! two versions, on the emulator with injected latency and the vault's real (unscaled)
//! limits, listed by the module through the C ABI at the default rate budget: per N the
//! time of C_Initialize, the time and requests until the first search (by label) answers,
//! until the whole listing is in (times from the start of C_Initialize), and the requests
//! of a refresh of the unchanged vault.
//!
//! The keys are made as another application would (the official SDK, with the emulator's
//! limits raised for the filling only); the module runs in a child process, which reads
//! its configuration from the environment.

use crate::bench::Emulator;
use cryptoki::object::{Attribute, ObjectClass};
use futures::StreamExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, String>;

pub struct Options {
    pub emulator: PathBuf,
    pub fixtures: PathBuf,
    pub keys: Vec<usize>,
    pub latency_ms: u64,
    pub rate_budget: f64,
}

/// Set in the child that measures: the vault's key count.
pub const INNER: &str = "IDENTIFY_PKCS11_BENCH_LISTING";
/// The emulator's admin URL, for the child.
const ADMIN: &str = "IDENTIFY_PKCS11_BENCH_ADMIN";
/// The refresh interval of the measured slot.
const REFRESH_SECONDS: u64 = 3;

pub fn run(o: &Options) -> Result<()> {
    println!(
        "A vault of N EC keys (every tenth with two versions) at {} ms, the vault's real limits, rate_budget {}",
        o.latency_ms, o.rate_budget
    );
    println!(
        "{:>6} {:>9} {:>14} {:>11} {:>9} {:>13} {:>9} {:>9}",
        "keys",
        "versions",
        "C_Initialize",
        "first answer",
        "requests",
        "whole listing",
        "requests",
        "refresh"
    );
    for &n in &o.keys {
        let emu = Emulator::start(&o.emulator, &o.fixtures)?;
        emu.0
            .admin("PUT", "/faults", r#"{"throttle": {"scale": 1000.0}}"#)?;
        fill(&emu, n)?;
        emu.0.admin(
            "PUT",
            "/faults",
            &format!(r#"{{"latency_ms": {}}}"#, o.latency_ms),
        )?;
        let config = emu.config_with(
            o.rate_budget,
            &format!("refresh_seconds = {REFRESH_SECONDS}\n"),
        )?;
        emu.0.admin("POST", "/stats/reset", "")?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let status = Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(INNER, n.to_string())
            .env(ADMIN, emu.0.field("admin_url")?)
            .env("IDENTIFY_PKCS11_CONFIG", &config)
            .env("IDENTIFY_PKCS11_LOG", "warn")
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("bench --listing {n} failed: {status}"));
        }
    }
    Ok(())
}

/// N EC P-256 keys `k00000`…, every tenth with a second version.
fn fill(emu: &Emulator, n: usize) -> Result<()> {
    use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
    use azure_security_keyvault_keys::models::{CreateKeyParameters, CurveName, KeyType};
    use identify_pkcs11::admin::{client_options, http_client};
    let e = |e: azure_core::Error| e.to_string();
    let ca = std::fs::read(emu.0.field("ca_file")?).map_err(|e| e.to_string())?;
    let deadline = Duration::from_secs(30);
    let http = http_client(Some(&ca), deadline).map_err(|e| e.to_string())?;
    let options = client_options(&http, 4, deadline, Some(&emu.0.field("authority_host")?));
    let cred = ClientSecretCredential::new(
        &emu.0.field("tenant_id")?,
        emu.0.field("client_id")?,
        azure_core::credentials::Secret::new(emu.0.field("client_secret")?),
        Some(ClientSecretCredentialOptions {
            client_options: options.clone(),
        }),
    )
    .map_err(e)?;
    let o = azure_security_keyvault_keys::KeyClientOptions {
        client_options: options,
        ..Default::default()
    };
    let keys =
        azure_security_keyvault_keys::KeyClient::new(&emu.0.field("vault_url")?, cred, Some(o))
            .map_err(e)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let creates = (0..n).flat_map(|i| std::iter::repeat_n(i, if i % 10 == 0 { 2 } else { 1 }));
    let results: Vec<Result<()>> = rt.block_on(
        futures::stream::iter(creates.map(|i| {
            let keys = &keys;
            async move {
                let p = CreateKeyParameters {
                    kty: Some(KeyType::Ec),
                    curve: Some(CurveName::P256),
                    ..Default::default()
                };
                let body = p.try_into().map_err(e)?;
                keys.create_key(&format!("k{i:05}"), body, None)
                    .await
                    .map(|_| ())
                    .map_err(e)
            }
        }))
        .buffer_unordered(32)
        .collect(),
    );
    results.into_iter().collect()
}

/// The measurement, in the child process.
pub fn measure(module: &std::path::Path, n: usize) -> Result<()> {
    let admin_url = std::env::var(ADMIN).map_err(|_| format!("{ADMIN} is not set"))?;
    let admin = |method: &str, path: &str| kv_launch::admin(&admin_url, method, path, "");
    let total = |v: &serde_json::Value| v["total_requests"].as_u64().unwrap_or(0);
    let t0 = Instant::now();
    let (pkcs11, slot) = crate::bench::initialized(module)?;
    let init = t0.elapsed();
    let s = pkcs11.open_ro_session(slot).map_err(|e| e.to_string())?;
    let found = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(b"k00000".to_vec()),
        ])
        .map_err(|e| format!("C_FindObjects: {e}"))?;
    let first = t0.elapsed();
    if found.len() != 1 {
        return Err(format!("{} keys labelled k00000", found.len()));
    }
    let first_requests = total(&admin("GET", "/stats")?);
    // The whole listing (in the background since the first answer): a search without a
    // label waits for it.
    let all = s
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .map_err(|e| format!("C_FindObjects: {e}"))?;
    let listed = t0.elapsed();
    let listing_requests = total(&admin("GET", "/stats")?) - first_requests;
    let versions = n + n.div_ceil(10);
    if all.len() < versions {
        return Err(format!(
            "{} private keys listed, {versions} expected",
            all.len()
        ));
    }
    // A refresh of the unchanged vault: from the reset until the refresher's listing is
    // done (no request for a second).
    admin("POST", "/stats/reset")?;
    let until = Instant::now() + Duration::from_secs(REFRESH_SECONDS * 20 + 120);
    let refresh_requests = loop {
        std::thread::sleep(Duration::from_secs(1));
        let a = total(&admin("GET", "/stats")?);
        if a > 0 {
            std::thread::sleep(Duration::from_secs(1));
            let b = total(&admin("GET", "/stats")?);
            if a == b {
                break b;
            }
        }
        if Instant::now() > until {
            return Err("no refresh seen".into());
        }
    };
    println!(
        "{:>6} {:>9} {:>11.0} ms {:>9.2} s {:>9} {:>11.2} s {:>9} {:>9}",
        n,
        versions,
        init.as_secs_f64() * 1000.0,
        first.as_secs_f64(),
        first_requests,
        listed.as_secs_f64(),
        listing_requests,
        refresh_requests
    );
    Ok(())
}
