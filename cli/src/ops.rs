//! `list` and `doctor`: the operator's view of the configured slots, through the same
//! configuration and backends the module uses (in process, no PKCS#11 login: the operator
//! of the machine is trusted with what the stores hold, never with private keys).

use identify_pkcs11::admin::PublicInfo;
use identify_pkcs11::admin::Stores;
use identify_pkcs11::admin::hex;
use identify_pkcs11::admin::{self, Config, StoreConfig};
use identify_pkcs11::admin::{Backend, CertRecord, KeyRecord, Listing, Protection};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, String>;

/// The configuration as the module would read it (`--config`, else IDENTIFY_PKCS11_CONFIG,
/// else the system file, else the embedded default), with C_Initialize's messages.
pub fn load(path: Option<&PathBuf>) -> Result<Config> {
    match path {
        Some(p) => admin::load_file(p),
        None => admin::load(None),
    }
    .map_err(|e| e.to_string())
}

/// Builds the module's slots (no network yet) and keeps only `only` when given.
fn slots(config: Config, only: Option<&str>) -> Result<Stores> {
    if let Some(l) = only
        && !config.slots.iter().any(|s| s.label == l)
    {
        let labels: Vec<&str> = config.slots.iter().map(|s| s.label.as_str()).collect();
        return Err(format!("no slot labelled {l:?}; the slots are {labels:?}"));
    }
    Stores::open(config).map_err(|e| e.to_string())
}

/// One certificate as an operator wants to see it.
struct CertFacts {
    subject: String,
    not_after: String,
    /// Seconds from now to notAfter (negative: expired).
    remaining: i64,
    sha1: String,
    sha256: String,
    spki: Vec<u8>,
}

fn cert_facts(der: &[u8]) -> Option<CertFacts> {
    let x = openssl::x509::X509::from_der(der).ok()?;
    let subject = x
        .subject_name()
        .entries()
        .map(|e| {
            format!(
                "{}={}",
                e.object().nid().short_name().unwrap_or("?"),
                e.data().to_string().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let now = openssl::asn1::Asn1Time::days_from_now(0).ok()?;
    let diff = now.diff(x.not_after()).ok()?;
    Some(CertFacts {
        subject,
        not_after: x.not_after().to_string(),
        remaining: i64::from(diff.days) * 86_400 + i64::from(diff.secs),
        sha1: hex(&openssl::sha::sha1(der)),
        sha256: hex(&openssl::sha::sha256(der)),
        spki: x.public_key().ok()?.public_key_to_der().ok()?,
    })
}

fn key_kind(k: &KeyRecord) -> String {
    match PublicInfo::from_spki(&k.spki_der) {
        Ok(p) => match p.curve {
            Some(c) => format!("EC {c:?}"),
            None => format!("RSA {}", p.bits),
        },
        Err(_) => "unknown".into(),
    }
}

/// How a PKCS#11 application selects an object: its RFC 7512 URI (token, object label,
/// id, type) and its CKA_ID in hex, as the module presents them.
struct Selector {
    uri: String,
    cka_id: String,
}

impl Selector {
    fn new(token: &str, label: &str, id: &[u8], kind: &str) -> Selector {
        use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
        // RFC 7512 §2.3: unreserved characters stay; everything else is percent-encoded
        // (allowed everywhere, and the id is bytes, so all of it is).
        const VALUE: &AsciiSet = &NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let pct: String = id.iter().map(|b| format!("%{b:02x}")).collect();
        Selector {
            uri: format!(
                "pkcs11:token={};object={};id={pct};type={kind}",
                utf8_percent_encode(token, VALUE),
                utf8_percent_encode(label, VALUE)
            ),
            cka_id: hex(id),
        }
    }

    fn key(token: &str, k: &KeyRecord) -> Selector {
        let id = identify_pkcs11::admin::key_id(k).unwrap_or_default();
        Selector::new(token, &identify_pkcs11::admin::key_label(k), &id, "private")
    }

    fn certificate(token: &str, c: &CertRecord, listing: &Listing) -> Selector {
        let id = identify_pkcs11::admin::certificate_id(c, listing).unwrap_or_default();
        Selector::new(token, &c.label, &id, "cert")
    }
}

fn key_json(k: &KeyRecord, certs: &[(&CertRecord, Option<CertFacts>)], at: &Selector) -> Value {
    let paired: Vec<&str> = certs
        .iter()
        .filter(|(_, f)| f.as_ref().is_some_and(|f| f.spki == k.spki_der))
        .filter_map(|(_, f)| f.as_ref().map(|f| f.sha256.as_str()))
        .collect();
    json!({
        "name": k.name,
        // A label set through PKCS#11 or by the tool (null: derived from the name).
        "label": k.label,
        "version": k.version,
        "current": k.current,
        "type": key_kind(k),
        "sign": k.usage.sign,
        "decrypt": k.usage.decrypt,
        "id": k.backend_key_id,
        "protection": match k.protection {
            Protection::Software => "software",
            Protection::HsmLevel2 => "hsm-fips-140-2-level-2",
            Protection::HsmLevel3 => "hsm-fips-140-level-3",
        },
        "certificates_sha256": paired,
        "cka_id": at.cka_id,
        "uri": at.uri,
    })
}

fn cert_json(c: &CertRecord, f: &Option<CertFacts>, at: &Selector) -> Value {
    match f {
        Some(f) => json!({
            "label": c.label,
            "cka_id": at.cka_id,
            "uri": at.uri,
            "subject": f.subject,
            "not_after": f.not_after,
            "days_left": f.remaining.div_euclid(86_400),
            "sha1": f.sha1,
            "sha256": f.sha256,
            "authority": c.authority,
        }),
        None => json!({"label": c.label, "cka_id": at.cka_id, "uri": at.uri,
            "error": "not a parsable X.509 certificate"}),
    }
}

/// `identify-pkcs11 list`.
pub fn list(path: Option<&PathBuf>, only: Option<&str>, as_json: bool) -> Result<()> {
    let module = slots(load(path)?, only)?;
    let mut out = Vec::new();
    let mut text = String::new();
    for (slot, backend) in module.slots() {
        if only.is_some_and(|l| l != slot.label) {
            continue;
        }
        let listing = backend
            .and_then(|backend| backend.list())
            .map_err(|e| format!("slot {:?}: {e}", slot.label))?;
        let facts: Vec<(&CertRecord, Option<CertFacts>)> = listing
            .certificates
            .iter()
            .map(|c| (c, cert_facts(&c.der)))
            .collect();
        text += &format!(
            "slot {:?} ({}, {})\n",
            slot.label,
            slot.kind.as_str(),
            store_name(&slot.store)
        );
        let token = slot.label.as_str();
        let mut keys: Vec<&KeyRecord> = listing.keys.iter().collect();
        keys.sort_by(|a, b| (&a.name, !a.current).cmp(&(&b.name, !b.current)));
        for k in &keys {
            let at = Selector::key(token, k);
            text += &format!(
                "  key {}{} {}{}{}\n",
                k.name,
                k.version
                    .as_ref()
                    .map(|v| format!(" version {v}"))
                    .unwrap_or_default(),
                key_kind(k),
                k.label
                    .as_ref()
                    .filter(|l| **l != k.name)
                    .map(|l| format!(" label {l:?}"))
                    .unwrap_or_default(),
                // Versionless stores (a directory) have no "current" to tell.
                if k.current && k.version.is_some() {
                    " (current)"
                } else {
                    ""
                },
            );
            text += &format!("    CKA_ID {}\n    {}\n", at.cka_id, at.uri);
        }
        for (c, f) in &facts {
            let at = Selector::certificate(token, c, &listing);
            match f {
                Some(f) => {
                    text += &format!(
                        "  certificate {:?}: {}\n    not after {} ({} days)\n    SHA-1   {}\n    SHA-256 {}\n",
                        c.label,
                        f.subject,
                        f.not_after,
                        f.remaining.div_euclid(86_400),
                        f.sha1,
                        f.sha256
                    );
                }
                None => text += &format!("  certificate {:?}: not parsable\n", c.label),
            }
            text += &format!("    CKA_ID {}\n    {}\n", at.cka_id, at.uri);
        }
        out.push(json!({
            "label": slot.label,
            "kind": slot.kind.as_str(),
            "store": store_name(&slot.store),
            "keys": keys
                .iter()
                .map(|k| key_json(k, &facts, &Selector::key(token, k)))
                .collect::<Vec<_>>(),
            "certificates": facts
                .iter()
                .map(|(c, f)| cert_json(c, f, &Selector::certificate(token, c, &listing)))
                .collect::<Vec<_>>(),
        }));
    }
    drop(module);
    if as_json {
        println!("{}", json!({ "slots": out }));
    } else {
        print!("{text}");
    }
    Ok(())
}

fn store_name(s: &StoreConfig) -> String {
    match s {
        StoreConfig::Directory { path, .. } => path.display().to_string(),
        StoreConfig::Azure(a) => a.url.clone(),
        StoreConfig::Windows(w) => w.display(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

struct Check {
    name: &'static str,
    status: Status,
    detail: String,
}

fn check(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
    }
}

/// Options of `doctor`.
pub struct DoctorOptions {
    pub config: Option<PathBuf>,
    pub slot: Option<String>,
    pub json: bool,
    pub sign: bool,
    /// Round trips timed for the latency median.
    pub samples: usize,
    /// Median round trip above which a region warning is given.
    pub latency_warn_ms: u64,
    /// Certificates expiring within this many days are a warning.
    pub expiry_days: i64,
    /// Where this host's Azure region is asked when a slot sets none (empty: not asked).
    pub imds_url: String,
}

/// `identify-pkcs11 doctor`'s exit codes, the monitoring-plugin convention (Nagios,
/// Icinga, Sensu, Zabbix agents read them): 0 OK, 1 WARNING (the worst check is a
/// warning), 2 CRITICAL (a check failed, the configuration included), 3 UNKNOWN (nothing
/// could be checked: `--slot` names no slot). Bad arguments exit 64 (`main`).
pub const DOCTOR_WARNING: u8 = 1;
pub const DOCTOR_CRITICAL: u8 = 2;
pub const DOCTOR_UNKNOWN: u8 = 3;

pub fn doctor(o: &DoctorOptions) -> ExitCode {
    let config = match load(o.config.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            report(
                o.json,
                &[(None, vec![check("configuration", Status::Fail, e)])],
            );
            return ExitCode::from(DOCTOR_CRITICAL);
        }
    };
    let unknown = o
        .slot
        .as_deref()
        .is_some_and(|l| !config.slots.iter().any(|s| s.label == l));
    let module = match slots(config, o.slot.as_deref()) {
        Ok(m) => m,
        Err(e) => {
            report(
                o.json,
                &[(None, vec![check("configuration", Status::Fail, e)])],
            );
            // Nothing to check is UNKNOWN; a slot that cannot be opened is CRITICAL.
            return ExitCode::from(if unknown {
                DOCTOR_UNKNOWN
            } else {
                DOCTOR_CRITICAL
            });
        }
    };
    let mut results = Vec::new();
    for (slot, backend) in module.slots() {
        if o.slot.as_deref().is_some_and(|l| l != slot.label) {
            continue;
        }
        let mut checks = vec![check("configuration", Status::Ok, "valid")];
        match backend {
            Ok(backend) => checks.extend(slot_checks(o, &slot.store, backend.as_ref())),
            // Not reached: the object cache holds one backend per configured slot.
            Err(e) => checks.push(check("store", Status::Fail, e.to_string())),
        }
        results.push((Some(slot.label.clone()), checks));
    }
    drop(module);
    let worst = results
        .iter()
        .flat_map(|(_, c)| c.iter().map(|c| c.status))
        .max()
        .unwrap_or(Status::Ok);
    report(o.json, &results);
    match worst {
        Status::Ok => ExitCode::SUCCESS,
        Status::Fail => ExitCode::from(DOCTOR_CRITICAL),
        Status::Warn => ExitCode::from(DOCTOR_WARNING),
    }
}

fn slot_checks(o: &DoctorOptions, store: &StoreConfig, backend: &dyn Backend) -> Vec<Check> {
    let mut checks = Vec::new();
    if let StoreConfig::Azure(a) = store {
        checks.push(token_check(a));
        if checks.iter().any(|c| c.status == Status::Fail) {
            return checks;
        }
    }
    let listing: Listing = match backend.list() {
        Ok(l) => {
            let keys = l.keys.iter().filter(|k| k.current).count();
            checks.push(check(
                "list keys",
                Status::Ok,
                format!(
                    "{keys} keys ({} versions), {} certificates",
                    l.keys.len(),
                    l.certificates.len()
                ),
            ));
            l
        }
        Err(e) => {
            checks.push(check("list keys", Status::Fail, e.to_string()));
            return checks;
        }
    };
    if let StoreConfig::Azure(a) = store
        && a.require_hsm
    {
        let hidden = backend.hidden_keys();
        checks.push(if hidden.is_empty() {
            check(
                "hsm only",
                Status::Ok,
                "every listed key is kept in a FIPS 140 Level 3 HSM",
            )
        } else {
            check(
                "hsm only",
                Status::Warn,
                format!(
                    "require_hsm hides {} key version(s) not kept in a FIPS 140 Level 3 HSM: {}",
                    hidden.len(),
                    hidden.join(", ")
                ),
            )
        });
    }
    if let StoreConfig::Azure(a) = store {
        checks.push(
            match identify_pkcs11::admin::CertDb::new(a.certificates.clone(), &a.url)
                .with_ca(a.ca_pem.clone())
                .list()
            {
                Ok(rows) => check(
                    "certificate database",
                    Status::Ok,
                    format!("{} ({} certificates)", a.certificates.display(), rows.len()),
                ),
                Err(e) => check("certificate database", Status::Fail, e.to_string()),
            },
        );
        if let Some(k) = listing.keys.iter().find(|k| k.current) {
            let (latency, region) = latency_check(o, backend, k);
            checks.push(latency);
            if let Some(region) = region {
                checks.push(region_check(o, a, &region));
            }
        }
    }
    if o.sign {
        for k in listing.keys.iter().filter(|k| k.current && k.usage.sign) {
            checks.push(sign_check(backend, k));
        }
        for k in listing.keys.iter().filter(|k| k.current && k.usage.decrypt) {
            if let Some(c) = decrypt_check(backend, k) {
                checks.push(c);
            }
        }
    }
    for c in &listing.certificates {
        checks.push(match cert_facts(&c.der) {
            None => check(
                "certificate",
                Status::Fail,
                format!("{:?}: not parsable", c.label),
            ),
            Some(f) if f.remaining < 0 => check(
                "certificate",
                Status::Fail,
                format!("{:?} ({}) expired on {}", c.label, f.subject, f.not_after),
            ),
            Some(f) if f.remaining < o.expiry_days * 86_400 => check(
                "certificate",
                Status::Warn,
                format!(
                    "{:?} ({}) expires on {}, in {} days: renew it (identify-pkcs11 cert rotate)",
                    c.label,
                    f.subject,
                    f.not_after,
                    f.remaining.div_euclid(86_400)
                ),
            ),
            Some(f) => check(
                "certificate",
                Status::Ok,
                format!("{:?} valid until {}", c.label, f.not_after),
            ),
        });
    }
    checks
}

/// The token audience of a vault or HSM host: the host without its first label (the
/// vault's name), as the service's challenge names it (`vault.azure.net`,
/// `managedhsm.azure.net`, `vault.azure.cn`, …).
fn scope_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?;
    let (_, rest) = host.split_once('.')?;
    Some(match u.port() {
        Some(p) => format!("https://{rest}:{p}/.default"),
        None => format!("https://{rest}/.default"),
    })
}

fn token_check(a: &identify_pkcs11::admin::AzureConfig) -> Check {
    use identify_pkcs11::admin::{client_options, credential, http_client};
    let Some(scope) = scope_of(&a.url) else {
        return check("token", Status::Fail, format!("{}: no host", a.url));
    };
    let deadline = Duration::from_secs(a.deadline_seconds);
    let attempt = || -> std::result::Result<String, String> {
        let http = http_client(a.ca_pem.as_deref(), deadline).map_err(|e| e.to_string())?;
        let options = client_options(
            &http,
            a.max_retries,
            deadline,
            a.credential.authority_host.as_deref(),
        );
        let cred = credential(&a.credential, options).map_err(|e| e.to_string())?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let token = rt
            .block_on(async {
                tokio::time::timeout(deadline, cred.get_token(&[scope.as_str()], None)).await
            })
            .map_err(|_| format!("no token within {} s", deadline.as_secs()))?
            .map_err(|e| format!("{e}"))?;
        let left = token.expires_on - azure_core::time::OffsetDateTime::now_utc();
        Ok(format!(
            "{} credential: a token for {scope}, valid {} more minutes",
            kind_name(a),
            left.whole_minutes()
        ))
    };
    match attempt() {
        Ok(detail) => check("token", Status::Ok, detail),
        Err(e) => check(
            "token",
            Status::Fail,
            format!("{e} — check [slot.credential]: tenant, client id and secret or certificate"),
        ),
    }
}

fn kind_name(a: &identify_pkcs11::admin::AzureConfig) -> &'static str {
    admin::kind_name(a.credential.kind)
}

/// The round trip's median, and the region the store reported with it.
fn latency_check(
    o: &DoctorOptions,
    backend: &dyn Backend,
    key: &KeyRecord,
) -> (Check, Option<String>) {
    let mut times = Vec::new();
    let mut region = None;
    for _ in 0..o.samples.max(1) {
        let t = Instant::now();
        match backend.ping(key) {
            Ok(r) => region = region.or(r),
            Err(e) => return (check("round trip", Status::Fail, e.to_string()), None),
        }
        times.push(t.elapsed());
    }
    (latency_verdict(o, &times), region)
}

fn latency_verdict(o: &DoctorOptions, times: &[Duration]) -> Check {
    let mut times = times.to_vec();
    times.sort();
    let median = times[times.len() / 2];
    let ms = median.as_secs_f64() * 1000.0;
    if median > Duration::from_millis(o.latency_warn_ms) {
        check(
            "round trip",
            Status::Warn,
            format!(
                "median {ms:.1} ms over {} requests (> {} ms): the store may be in another region than this server; every signature waits this long",
                times.len(),
                o.latency_warn_ms
            ),
        )
    } else {
        check(
            "round trip",
            Status::Ok,
            format!("median {ms:.1} ms over {} requests", times.len()),
        )
    }
}

/// The store's region (`x-ms-keyvault-region`) against this host's: the slot's `region`,
/// else the Azure Instance Metadata Service's answer.
fn region_check(o: &DoctorOptions, a: &identify_pkcs11::admin::AzureConfig, store: &str) -> Check {
    let host = match &a.region {
        Some(r) => Some((r.clone(), "the slot's region")),
        None => host_region_once(&o.imds_url).map(|r| (r, "Azure instance metadata")),
    };
    match host {
        None => check(
            "region",
            Status::Ok,
            format!(
                "{store} (this host's region is unknown: no Azure instance metadata; set region = \"…\" in the slot to compare)"
            ),
        ),
        Some((host, from)) if host.eq_ignore_ascii_case(store) => check(
            "region",
            Status::Ok,
            format!("{store}, as this host ({from})"),
        ),
        Some((host, from)) => check(
            "region",
            Status::Warn,
            format!(
                "the store is in {store}, this host in {host} ({from}): every signature crosses regions; provision the Key Vault or Managed HSM in the servers' region"
            ),
        ),
    }
}

/// `host_region`, asked once per run (every slot without a `region` compares with it).
fn host_region_once(url: &str) -> Option<String> {
    static ASKED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ASKED.get_or_init(|| host_region(url)).clone()
}

/// This host's Azure region from the Instance Metadata Service (`Metadata: true`, plain
/// HTTP on the link-local address), within a second; `None` off Azure, on any error, or
/// when `url` is empty.
fn host_region(url: &str) -> Option<String> {
    if url.is_empty() {
        return None;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()
        .ok()?;
    let text = rt.block_on(async {
        let r = client
            .get(url)
            .header("Metadata", "true")
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.text().await.ok()
    })?;
    let region = text.trim().to_ascii_lowercase();
    (!region.is_empty() && region.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(region)
}

fn sign_check(backend: &dyn Backend, key: &KeyRecord) -> Check {
    use identify_pkcs11::admin::check_signature;
    use identify_pkcs11::admin::{HashAlg, SignRequest};
    let Ok(public) = PublicInfo::from_spki(&key.spki_der) else {
        return check(
            "test signature",
            Status::Fail,
            format!("{}: public key", key.name),
        );
    };
    let digest = openssl::sha::sha256(b"identify-pkcs11 doctor");
    let request = match public.curve {
        Some(curve) => SignRequest::Ecdsa { curve },
        None => SignRequest::RsaPkcs1 {
            hash: Some(HashAlg::Sha256),
        },
    };
    let data = digest.to_vec();
    match backend
        .sign(key, &request, &data)
        .and_then(|sig| check_signature(&public, &request, &data, &sig))
    {
        Ok(()) => check(
            "test signature",
            Status::Ok,
            format!("{}: signed and verified", key.name),
        ),
        Err(e) => check("test signature", Status::Fail, format!("{}: {e}", key.name)),
    }
}

/// A test decryption through the store of data encrypted here to the key's public key
/// (RSA-OAEP SHA-256, XML Encryption's key transport); None for a key that is not RSA.
fn decrypt_check(backend: &dyn Backend, key: &KeyRecord) -> Option<Check> {
    use identify_pkcs11::admin::{DecryptRequest, HashAlg};
    let public = openssl::pkey::PKey::public_key_from_der(&key.spki_der).ok()?;
    if public.id() != openssl::pkey::Id::RSA {
        return None;
    }
    let secret = openssl::sha::sha256(b"identify-pkcs11 doctor decrypt");
    let encrypted = (|| -> std::result::Result<Vec<u8>, openssl::error::ErrorStack> {
        let mut enc = openssl::encrypt::Encrypter::new(&public)?;
        enc.set_rsa_padding(openssl::rsa::Padding::PKCS1_OAEP)?;
        enc.set_rsa_oaep_md(openssl::hash::MessageDigest::sha256())?;
        enc.set_rsa_mgf1_md(openssl::hash::MessageDigest::sha256())?;
        let mut out = vec![0; enc.encrypt_len(&secret)?];
        let n = enc.encrypt(&secret, &mut out)?;
        out.truncate(n);
        Ok(out)
    })();
    let request = DecryptRequest::RsaOaep {
        hash: HashAlg::Sha256,
        mgf_hash: HashAlg::Sha256,
        label: Vec::new(),
    };
    Some(
        match encrypted.map_err(|e| e.to_string()).and_then(|ct| {
            backend
                .decrypt(key, &request, &ct)
                .map_err(|e| e.to_string())
        }) {
            Ok(plain) if plain == secret => check(
                "test decryption",
                Status::Ok,
                format!("{}: decrypted what was encrypted to it", key.name),
            ),
            Ok(_) => check(
                "test decryption",
                Status::Fail,
                format!("{}: decrypted to other bytes", key.name),
            ),
            Err(e) => check(
                "test decryption",
                Status::Fail,
                format!("{}: {e}", key.name),
            ),
        },
    )
}

fn report(as_json: bool, results: &[(Option<String>, Vec<Check>)]) {
    if as_json {
        let slots: Vec<Value> = results
            .iter()
            .map(|(label, checks)| {
                json!({
                    "slot": label,
                    "checks": checks.iter().map(|c| json!({
                        "check": c.name, "status": c.status.as_str(), "detail": c.detail
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let problems = results
            .iter()
            .flat_map(|(_, c)| c)
            .filter(|c| c.status != Status::Ok)
            .count();
        println!("{}", json!({ "slots": slots, "problems": problems }));
        return;
    }
    for (label, checks) in results {
        if let Some(l) = label {
            println!("slot {l:?}");
        }
        for c in checks {
            println!("  [{:>4}] {}: {}", c.status.as_str(), c.name, c.detail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_follow_the_host() {
        assert_eq!(
            scope_of("https://contoso.vault.azure.net").as_deref(),
            Some("https://vault.azure.net/.default")
        );
        assert_eq!(
            scope_of("https://contoso.managedhsm.azure.net").as_deref(),
            Some("https://managedhsm.azure.net/.default")
        );
        assert_eq!(
            scope_of("https://t.vault.localhost:4443").as_deref(),
            Some("https://vault.localhost:4443/.default")
        );
    }
}
