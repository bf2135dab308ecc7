//! kv-emulator: an Azure Key Vault and Managed HSM data-plane emulator for offline tests
//! of identify-pkcs11. See README.md beside Cargo.toml for the interface.
// Stricter than the workspace (which denies): no module of the emulator may allow it.
#![forbid(unsafe_code)]

mod admin;
mod app;
mod auth;
mod b64;
mod cert_backup;
mod cert_import;
mod cert_policy;
mod cert_secret;
mod certificates;
mod config;
mod crypto;
mod faults;
mod ids;
mod key_backup;
mod key_crypto;
mod key_deletion;
mod keys;
mod login;
mod paging;
mod params;
mod pipeline;
mod policies;
mod rbac;
mod reply;
mod routing;
mod seed;
mod server;
mod state;
mod stats;
mod throttle;
mod tls;
mod x509;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use openssl::hash::{MessageDigest, hash};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::app::{App, Settings, resource_url};
use crate::auth::{Principal, Principals, TokenIssuer};
use crate::config::Config;
use crate::faults::Faults;
use crate::policies::{AccessPolicy, Policies};
use crate::rbac::{Assignment, Rbac, Role};
use crate::state::{Container, Kind};
use crate::stats::Stats;
use crate::throttle::Throttle;

const TENANT_ID: &str = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const CLIENT_ID: &str = "0c1d2e3f-4a5b-4c6d-8e7f-a0b1c2d3e4f5";
/// The least-privileged built-in principal: what a signing server needs and no more.
const SIGNER_ID: &str = "5d6e7f80-9a1b-4c2d-8e3f-b4c5d6e7f809";
const FEDERATED_SUBJECT: &str = "system:serviceaccount:default:kv-emulator";

/// Azure Key Vault / Managed HSM emulator: HTTPS with a generated test CA, Entra ID
/// token endpoints, keys, certificates, RBAC, throttling and fault injection.
#[derive(Parser, Debug)]
#[command(name = "kv-emulator", version, about, long_about = None)]
struct Cli {
    /// Write the connection details here as JSON (temp file + rename) once listening;
    /// further files (test CA, client certificate) are written beside it.
    #[arg(long, value_name = "PATH")]
    ready_file: PathBuf,
    /// HTTPS port for the vault, Managed HSM and login hosts (0 = pick a free port).
    #[arg(long, value_name = "N", default_value_t = 0)]
    port: u16,
    /// Plain-HTTP admin port on 127.0.0.1: stats, faults, managed identity (0 = free port).
    #[arg(long, value_name = "N", default_value_t = 0)]
    admin_port: u16,
    /// TOML configuration: principals, role assignments, throttling (see README.md).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Import NAME.key.pem (PKCS#8) as key NAME into the vault and the HSM, and
    /// NAME.crt.pem beside it as vault certificate NAME linked to that key.
    #[arg(long, value_name = "DIR")]
    seed_dir: Option<PathBuf>,
    /// Vault name: served as https://NAME.vault.localhost:PORT.
    #[arg(long, value_name = "NAME", default_value = "testvault")]
    vault: String,
    /// Managed HSM name: served as https://NAME.managedhsm.localhost:PORT.
    #[arg(long, value_name = "NAME", default_value = "testhsm")]
    hsm: String,
    /// Log every request to stderr.
    #[arg(long)]
    verbose: bool,
    /// Exit when the process with this id has ended (a test harness that keeps the
    /// emulator for its whole run and cannot stop it on exit). Linux only (/proc).
    #[arg(long, value_name = "PID")]
    exit_with: Option<u32>,
}

fn main() {
    let cli = Cli::parse();
    if let Some(pid) = cli.exit_with {
        let ready = cli.ready_file.clone();
        std::thread::spawn(move || {
            let proc = PathBuf::from(format!("/proc/{pid}"));
            while proc.exists() {
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            let _ = std::fs::remove_file(&ready);
            std::process::exit(0);
        });
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => fail(&format!("cannot start the runtime: {e}")),
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        fail(&e);
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("kv-emulator: {msg}");
    std::process::exit(1);
}

fn sibling(ready: &Path, suffix: &str) -> PathBuf {
    let mut name = ready
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_default();
    name.push(suffix);
    ready.with_file_name(name)
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), String> {
    let tmp = sibling(path, ".tmp");
    std::fs::write(&tmp, data).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A client certificate for the default principal (certificate credential tests).
fn client_certificate() -> Result<
    (
        openssl::x509::X509,
        openssl::pkey::PKey<openssl::pkey::Private>,
    ),
    String,
> {
    let e = |x: openssl::error::ErrorStack| x.to_string();
    let key =
        openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).map_err(e)?).map_err(e)?;
    let mut name = openssl::x509::X509NameBuilder::new().map_err(e)?;
    name.append_entry_by_text("CN", "kv-emulator client")
        .map_err(e)?;
    let name = name.build();
    let mut b = openssl::x509::X509Builder::new().map_err(e)?;
    b.set_version(2).map_err(e)?;
    let serial = openssl::bn::BigNum::from_slice(&ids::random_bytes(8))
        .and_then(|bn| openssl::asn1::Asn1Integer::from_bn(&bn))
        .map_err(e)?;
    b.set_serial_number(&serial).map_err(e)?;
    b.set_subject_name(&name).map_err(e)?;
    b.set_issuer_name(&name).map_err(e)?;
    b.set_pubkey(&key).map_err(e)?;
    let not_before = openssl::asn1::Asn1Time::days_from_now(0).map_err(e)?;
    let not_after = openssl::asn1::Asn1Time::days_from_now(3650).map_err(e)?;
    b.set_not_before(&not_before).map_err(e)?;
    b.set_not_after(&not_after).map_err(e)?;
    b.sign(&key, MessageDigest::sha256()).map_err(e)?;
    Ok((b.build(), key))
}

fn settings_from(cfg: &Config, verbose: bool) -> Settings {
    let d = Settings::default();
    let t = &cfg.throttle;
    Settings {
        token_lifetime_s: cfg.token_lifetime_s.unwrap_or(d.token_lifetime_s),
        recoverable_days: cfg.recoverable_days.unwrap_or(d.recoverable_days),
        delete_window: cfg
            .delete_window_ms
            .map_or(d.delete_window, Duration::from_millis),
        cert_pending_polls: cfg.cert_pending_polls.unwrap_or(d.cert_pending_polls),
        cert_retry_after_s: cfg.cert_retry_after_s.unwrap_or(d.cert_retry_after_s),
        max_body: cfg.max_body_bytes.unwrap_or(d.max_body),
        http2: cfg.http2.unwrap_or(d.http2),
        throttle_enabled: t.enabled.unwrap_or(d.throttle_enabled),
        throttle_scale: t.scale.unwrap_or(d.throttle_scale),
        throttle_retry_after: t.retry_after.unwrap_or(d.throttle_retry_after),
        throttle_window: t.window_ms.map_or(d.throttle_window, Duration::from_millis),
        throttle_hsm: t.hsm.unwrap_or(d.throttle_hsm),
        verbose,
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    // RSA key generation dominates start-up: make both keys on their own threads while
    // the rest is set up.
    let token_key = std::thread::spawn(auth::new_signing_key);
    let client_cert = std::thread::spawn(client_certificate);
    let cfg = match &cli.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let settings = settings_from(&cfg, cli.verbose);
    for name in std::iter::once(&cli.vault)
        .chain(std::iter::once(&cli.hsm))
        .chain(&cfg.extra_vaults)
        .chain(&cfg.extra_hsms)
    {
        if !routing::valid_name(name) || name.len() > 24 {
            return Err(format!(
                "'{name}' is not a valid vault or HSM name (3-24 characters of 0-9, a-z, A-Z, -)"
            ));
        }
    }

    let listener = TcpListener::bind(("127.0.0.1", cli.port))
        .await
        .map_err(|e| format!("port {}: {e}", cli.port))?;
    let admin_listener = TcpListener::bind(("127.0.0.1", cli.admin_port))
        .await
        .map_err(|e| format!("admin port {}: {e}", cli.admin_port))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let admin_port = admin_listener
        .local_addr()
        .map_err(|e| e.to_string())?
        .port();

    let vaults: Vec<String> = std::iter::once(cli.vault.clone())
        .chain(cfg.extra_vaults.iter().cloned())
        .collect();
    let hsms: Vec<String> = std::iter::once(cli.hsm.clone())
        .chain(cfg.extra_hsms.iter().cloned())
        .collect();
    let host_of = |kind: Kind, name: &str| match kind {
        Kind::Vault => format!("{}.vault.localhost", name.to_ascii_lowercase()),
        Kind::Hsm => format!("{}.managedhsm.localhost", name.to_ascii_lowercase()),
    };
    let origin = |host: &str| {
        if port == 443 {
            format!("https://{host}")
        } else {
            format!("https://{host}:{port}")
        }
    };
    let login_host = "login.localhost".to_string();
    let mut hosts: Vec<String> = vaults.iter().map(|v| host_of(Kind::Vault, v)).collect();
    hosts.extend(hsms.iter().map(|h| host_of(Kind::Hsm, h)));
    hosts.push(login_host.clone());

    let pki = tls::build(&hosts, settings.http2)?;
    let ca_file = sibling(&cli.ready_file, ".ca.pem");
    write_atomic(&ca_file, pki.ca_pem.as_bytes())?;

    let authority_host = origin(&login_host);
    let token_key = token_key
        .join()
        .map_err(|_| "token key generation panicked".to_string())??;
    let issuer = TokenIssuer::with_key(token_key, TENANT_ID.to_string(), authority_host.clone())?;

    // Principals: the default one (secret, certificate, federated subject) and the config's.
    let client_secret = format!("kvemu~{}", b64::url(&ids::random_bytes(24)));
    let mut default = Principal::new(CLIENT_ID, Some(client_secret.clone()), None);
    let (client_cert, client_key) = client_cert
        .join()
        .map_err(|_| "client certificate generation panicked".to_string())??;
    default.add_certificate(&client_cert)?;
    default.federated_subject = Some(FEDERATED_SUBJECT.to_string());
    let cert_pem_file = sibling(&cli.ready_file, ".client.pem");
    let cert_pfx_file = sibling(&cli.ready_file, ".client.pfx");
    {
        let e = |x: openssl::error::ErrorStack| x.to_string();
        let mut pem = client_key.private_key_to_pem_pkcs8().map_err(e)?;
        pem.extend(client_cert.to_pem().map_err(e)?);
        write_atomic(&cert_pem_file, &pem)?;
        let pfx = openssl::pkcs12::Pkcs12::builder()
            .pkey(&client_key)
            .cert(&client_cert)
            .build2("")
            .map_err(e)?;
        write_atomic(&cert_pfx_file, &pfx.to_der().map_err(e)?)?;
    }
    let signer_secret = format!("kvemu~{}", b64::url(&ids::random_bytes(24)));
    let signer = Principal::new(SIGNER_ID, Some(signer_secret.clone()), None);
    let mut principals = Principals {
        list: vec![default, signer],
    };
    for p in &cfg.principals {
        if principals.find(&p.client_id).is_some() {
            return Err(format!("principal '{}' is defined twice", p.client_id));
        }
        let mut principal =
            Principal::new(&p.client_id, p.client_secret.clone(), p.object_id.clone());
        if let Some(file) = &p.certificate_file {
            let pem = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let cert = openssl::x509::X509::from_pem(&pem)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            principal.add_certificate(&cert)?;
        }
        principal.federated_subject = p.federated_subject.clone();
        principals.list.push(principal);
    }
    let mi_client_id = cfg
        .managed_identity_client_id
        .clone()
        .unwrap_or_else(|| CLIENT_ID.to_string());
    if principals.find(&mi_client_id).is_none() {
        return Err(format!(
            "managed_identity_client_id '{mi_client_id}' is not a configured principal"
        ));
    }

    // Role assignments.
    let mut rbac = Rbac::default();
    if cfg.default_principal_roles.unwrap_or(true) {
        let grants = [
            (CLIENT_ID, Role::KvCryptoOfficer, Kind::Vault),
            (CLIENT_ID, Role::KvCertificatesOfficer, Kind::Vault),
            (CLIENT_ID, Role::HsmCryptoUser, Kind::Hsm),
            (CLIENT_ID, Role::HsmCryptoOfficer, Kind::Hsm),
            (SIGNER_ID, Role::KvCryptoUser, Kind::Vault),
            (SIGNER_ID, Role::KvCertificateUser, Kind::Vault),
            (SIGNER_ID, Role::HsmCryptoUser, Kind::Hsm),
        ];
        for (client_id, role, kind) in grants {
            let containers = if kind == Kind::Vault { &vaults } else { &hsms };
            for c in containers {
                rbac.assignments.push(Assignment {
                    client_id: client_id.into(),
                    role,
                    kind,
                    container: c.to_ascii_lowercase(),
                    key: None,
                });
            }
        }
    }
    for (i, a) in cfg.role_assignments.iter().enumerate() {
        let ctx = format!("role_assignment[{i}]");
        let role =
            Role::parse(&a.role).ok_or_else(|| format!("{ctx}: unknown role '{}'", a.role))?;
        let (kind, container, key) = Assignment::parse_scope(&a.scope, &cli.vault, &cli.hsm)
            .map_err(|e| format!("{ctx}: {e}"))?;
        if role.kind() != kind {
            return Err(format!(
                "{ctx}: role '{}' cannot be assigned on a {} scope",
                a.role,
                kind.as_str()
            ));
        }
        let known = match kind {
            Kind::Vault => vaults.iter().any(|v| v.eq_ignore_ascii_case(&container)),
            Kind::Hsm => hsms.iter().any(|v| v.eq_ignore_ascii_case(&container)),
        };
        if !known {
            return Err(format!(
                "{ctx}: scope '{}' names no served {}",
                a.scope,
                kind.as_str()
            ));
        }
        rbac.assignments.push(Assignment {
            client_id: a.principal.clone(),
            role,
            kind,
            container,
            key,
        });
    }

    // Access policies.
    let mut policies = Policies::default();
    for name in &cfg.access_policy_vaults {
        if !vaults.contains(name) {
            return Err(format!(
                "access_policy_vaults: '{name}' names no served vault"
            ));
        }
        policies.vaults.insert(name.to_ascii_lowercase());
    }
    for (i, p) in cfg.access_policies.iter().enumerate() {
        let vault = p.vault.clone().unwrap_or_else(|| cli.vault.clone());
        if !policies.governs(&vault) {
            return Err(format!(
                "access_policy[{i}]: vault '{vault}' is not in access_policy_vaults"
            ));
        }
        let policy = AccessPolicy {
            client_id: p.principal.clone(),
            vault: vault.to_ascii_lowercase(),
            keys: p.keys.clone(),
            certificates: p.certificates.clone(),
            secrets: p.secrets.clone(),
        };
        policy
            .validate()
            .map_err(|e| format!("access_policy[{i}]: {e}"))?;
        policies.policies.push(policy);
    }

    // Containers.
    if let Some(name) = cfg
        .regions
        .keys()
        .find(|n| !vaults.contains(*n) && !hsms.contains(*n))
    {
        return Err(format!(
            "regions: '{name}' names no served vault or Managed HSM"
        ));
    }
    for (key, list) in [
        ("standard_vaults", &cfg.standard_vaults),
        ("hsm_platform_1_vaults", &cfg.hsm_platform_1_vaults),
    ] {
        if let Some(name) = list.iter().find(|n| !vaults.contains(*n)) {
            return Err(format!("{key}: '{name}' names no served vault"));
        }
    }
    let mut containers = HashMap::new();
    for (kind, list) in [(Kind::Vault, &vaults), (Kind::Hsm, &hsms)] {
        for name in list {
            let host = host_of(kind, name);
            let mut c = Container::new(
                kind,
                name,
                origin(&host),
                Throttle::new(settings.throttle_window),
            );
            if let Some(region) = cfg.regions.get(name.as_str()) {
                c.region = region.clone();
            }
            c.standard = kind == Kind::Vault && cfg.standard_vaults.contains(name);
            c.hsm_platform_1 = kind == Kind::Vault && cfg.hsm_platform_1_vaults.contains(name);
            containers.insert(host, Arc::new(c));
        }
    }
    let mut seeded = Vec::new();
    if let Some(dir) = &cli.seed_dir {
        let vault = containers
            .get(&host_of(Kind::Vault, &cli.vault))
            .cloned()
            .ok_or("no vault")?;
        let hsm = containers
            .get(&host_of(Kind::Hsm, &cli.hsm))
            .cloned()
            .ok_or("no hsm")?;
        seeded = seed::seed_dir(dir, &vault, &hsm)?;
    }

    let backup_key: [u8; 32] = hash(
        MessageDigest::sha256(),
        format!("kv-emulator backup {TENANT_ID}").as_bytes(),
    )
    .map_err(|e| e.to_string())?
    .as_ref()
    .try_into()
    .map_err(|_| "digest length".to_string())?;
    let identity_header = b64::url(&ids::random_bytes(18));
    let federated_file = sibling(&cli.ready_file, ".federated-token");
    write_atomic(
        &federated_file,
        issuer
            .issue_federated(FEDERATED_SUBJECT, 24 * 3600)?
            .as_bytes(),
    )?;

    let app = Arc::new(App {
        settings,
        containers,
        login_host: login_host.clone(),
        vault_resource: resource_url("vault.localhost", port),
        hsm_resource: resource_url("managedhsm.localhost", port),
        issuer,
        principals,
        rbac,
        policies,
        faults: Faults::default(),
        stats: Stats::default(),
        identity_header: identity_header.clone(),
        mi_client_id,
        backup_key,
    });

    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config.clone());
    tokio::spawn(server::serve_tls(listener, acceptor, app.clone()));
    tokio::spawn(server::serve_admin(admin_listener, app.clone()));

    let admin_url = format!("http://127.0.0.1:{admin_port}");
    let urls = |kind: Kind, list: &[String]| -> Value {
        Value::Object(
            list.iter()
                .map(|n| (n.clone(), Value::String(origin(&host_of(kind, n)))))
                .collect(),
        )
    };
    let abs = |p: &Path| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let ready = json!({
        "vault_url": origin(&host_of(Kind::Vault, &cli.vault)),
        "hsm_url": origin(&host_of(Kind::Hsm, &cli.hsm)),
        "vault_name": cli.vault,
        "hsm_name": cli.hsm,
        "vault_urls": urls(Kind::Vault, &vaults),
        "hsm_urls": urls(Kind::Hsm, &hsms),
        "vault_resource": app.vault_resource,
        "hsm_resource": app.hsm_resource,
        "ca_file": abs(&ca_file),
        "authority_host": authority_host,
        "tenant_id": TENANT_ID,
        "client_id": CLIENT_ID,
        "client_secret": client_secret,
        "signer_client_id": SIGNER_ID,
        "signer_client_secret": signer_secret,
        "client_certificate_pem": abs(&cert_pem_file),
        "client_certificate_pfx": abs(&cert_pfx_file),
        "federated_token_file": abs(&federated_file),
        "federated_subject": FEDERATED_SUBJECT,
        "admin_url": admin_url,
        "identity_endpoint": format!("{admin_url}/msi/token"),
        "identity_header": identity_header,
        "hosts": hosts,
        "port": port,
        "admin_port": admin_port,
        "seeded": seeded,
        "pid": std::process::id(),
    });
    let text = serde_json::to_string_pretty(&ready).map_err(|e| e.to_string())?;
    write_atomic(&cli.ready_file, text.as_bytes())?;
    eprintln!(
        "kv-emulator: listening on 127.0.0.1:{port} (admin {admin_port}); ready file {}",
        cli.ready_file.display()
    );

    wait_for_signal().await;
    let _ = std::fs::remove_file(&cli.ready_file);
    eprintln!("kv-emulator: stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
