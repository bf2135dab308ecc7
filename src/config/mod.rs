//! The configuration file: where it is found, what it may say, and the error messages that
//! name the file, the line, the key and what is accepted.
//!
//! Order of lookup at C_Initialize: the `pReserved` string of `CK_C_INITIALIZE_ARGS` (a
//! path), then the file named by `IDENTIFY_PKCS11_CONFIG`, then the system file
//! (`/etc/identify-pkcs11/config.toml`, on Windows `%ProgramData%\identify-pkcs11\config.toml`),
//! then the embedded default: one writable `cert-store` slot over the per-user directory
//! `$XDG_DATA_HOME/identify-pkcs11/store` (created 0700 on first use).

mod azure;
mod pin;
mod slots;
pub mod windows_store;

pub use azure::kind_name;
use azure::{AzureView, azure_slot, read_secret_file};
use pin::check_pin_hash;
pub use pin::{hash_pin, verify_pin};
use slots::SlotTable;

use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "IDENTIFY_PKCS11_CONFIG";
/// The environment variable overriding the log level (`error` .. `trace`, or a filter).
pub const LOG_ENV: &str = "IDENTIFY_PKCS11_LOG";

/// Where the configuration came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Embedded,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Embedded => write!(f, "<embedded default configuration>"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub source: Source,
    pub log: LogConfig,
    pub slots: Vec<SlotConfig>,
    pub audit: Option<crate::telemetry::AuditConfig>,
    pub metrics: Option<crate::telemetry::MetricsConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`; default `warn`.
    #[serde(default)]
    pub level: Option<LogLevel>,
    /// A file to append to; default standard error.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SlotKind {
    CertStore,
    KeyVault,
    ManagedHsm,
}

impl SlotKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SlotKind::CertStore => "cert-store",
            SlotKind::KeyVault => "key-vault",
            SlotKind::ManagedHsm => "managed-hsm",
        }
    }
}

/// `[slot.credential]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCredential {
    #[serde(rename = "type")]
    kind: CredentialKind,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    object_id: Option<String>,
    #[serde(default)]
    resource_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    client_secret_file: Option<PathBuf>,
    #[serde(default)]
    certificate_file: Option<PathBuf>,
    #[serde(default)]
    certificate_password_file: Option<PathBuf>,
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default)]
    authority_host: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    ManagedIdentity,
    ClientSecret,
    ClientCertificate,
    WorkloadIdentity,
    AzureCli,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    log: LogConfig,
    /// Read again, each table as its kind's type (slots.rs).
    #[serde(default, rename = "slot")]
    _slot: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    audit: Option<toml::Spanned<RawAudit>>,
    #[serde(default)]
    metrics: Option<toml::Spanned<RawMetrics>>,
}

/// `[audit]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    file: PathBuf,
    #[serde(default)]
    max_bytes: Option<u64>,
    #[serde(default)]
    keep: Option<u32>,
}

/// `[metrics]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    file: PathBuf,
    #[serde(default)]
    interval_seconds: Option<u64>,
}

/// A file the module writes: relative to the configuration file, in an existing directory.
fn output_file(source: &Source, p: &Path) -> std::result::Result<PathBuf, String> {
    let path = match source {
        Source::File(f) if p.is_relative() => f.parent().unwrap_or(Path::new(".")).join(p),
        _ => p.to_owned(),
    };
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() && !d.is_dir() => Err(format!(
            "{}: the directory {} does not exist",
            path.display(),
            d.display()
        )),
        _ => Ok(path),
    }
}

/// A validated slot.
#[derive(Debug, Clone)]
pub struct SlotConfig {
    pub label: String,
    pub kind: SlotKind,
    pub store: StoreConfig,
    /// An argon2 PHC string of the user PIN; `None`: no login required.
    pub pin_hash: Option<String>,
    /// Wrong PINs in a row that lock the slot, and for how long (login throttling).
    pub pin_tries: u32,
    pub pin_lockout: Duration,
    /// How long listed objects are served before the store is read again.
    pub refresh_seconds: u64,
}

#[derive(Debug, Clone)]
pub enum StoreConfig {
    Directory {
        path: PathBuf,
        writable: bool,
        pkcs12_password: Option<String>,
        /// Created on first use (the embedded default) rather than required to exist.
        create: bool,
    },
    /// An Azure Key Vault (`key-vault`) or Managed HSM (`managed-hsm`).
    Azure(Box<AzureConfig>),
    /// A Windows certificate store (`cert-store` with `store = "CurrentUser/My"`).
    Windows(windows_store::WindowsStoreConfig),
}

/// Which Azure service holds a slot's keys. Both speak the Key Vault keys API (one backend
/// serves both); they differ in where certificates live, in throttling and in key types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Azure Key Vault (`kind = "key-vault"`): software and HSM-protected keys, the vault's
    /// own certificates, service limits per vault.
    KeyVault,
    /// Azure Managed HSM (`kind = "managed-hsm"`): HSM keys only, no certificate store
    /// (certificates live in the certificate database), no per-operation throttling.
    ManagedHsm,
}

impl Service {
    /// The slot kind in the configuration file.
    pub fn kind_name(self) -> &'static str {
        match self {
            Service::KeyVault => "key-vault",
            Service::ManagedHsm => "managed-hsm",
        }
    }

    /// Whether the service stores certificates beside its keys.
    pub fn has_certificates(self) -> bool {
        self == Service::KeyVault
    }

    /// Whether cryptographic operations count against per-vault limits (the module then
    /// spends a rate budget before each request).
    pub fn throttles_operations(self) -> bool {
        self == Service::KeyVault
    }
}

/// A key-vault or managed-hsm slot.
#[derive(Clone)]
pub struct AzureConfig {
    /// `https://NAME.vault.azure.net` or `https://NAME.managedhsm.azure.net`.
    pub url: String,
    pub service: Service,
    /// Extra trust anchors (PEM) beside the system's.
    pub ca_pem: Option<Vec<u8>>,
    pub credential: Credential,
    /// Only these key names, when given.
    pub key_names: Option<Vec<String>>,
    /// Only keys carrying all these tags.
    pub tags: BTreeMap<String, String>,
    /// New keys are HSM-protected (RSA-HSM, EC-HSM); always so on a Managed HSM.
    pub hsm_keys: bool,
    /// Only keys kept in a FIPS 140 Level 3 HSM are listed (key-vault slots; a Managed HSM
    /// keeps every key so); new keys are HSM keys.
    pub require_hsm: bool,
    /// C_DestroyObject deletes keys in the vault (off unless configured).
    pub allow_destroy: bool,
    /// Upper bound of one PKCS#11 call's time with the service, retries included.
    pub deadline_seconds: u64,
    pub max_retries: u32,
    /// Share of the published per-vault limits this module allows itself (a multiple when
    /// the vault's limits were raised).
    pub rate_budget: f64,
    /// How often a refresh lists the versions of every key (and certificate) again; the
    /// refreshes in between list them only for keys whose list entry changed.
    pub full_refresh_seconds: u64,
    /// The Azure region this slot's servers run in, when the operator says (`doctor`
    /// warns when the store reports another).
    pub region: Option<String>,
    /// The certificate database: the certificates of a Managed HSM's keys, and those
    /// written with C_CreateObject for vault keys that have none in the vault.
    pub certificates: crate::certdb::Location,
    /// C_GenerateRandom takes its bytes from the Managed HSM's /rng.
    pub hsm_random: bool,
}

impl std::fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureConfig")
            .field("url", &self.url)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

/// How the module authenticates to Entra ID. Secrets are held here and never printed.
#[derive(Clone)]
pub struct Credential {
    pub kind: CredentialKind,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub object_id: Option<String>,
    pub resource_id: Option<String>,
    pub client_secret: Option<String>,
    /// PKCS#12 bytes of the client certificate, and its password.
    pub certificate: Option<(Vec<u8>, Option<String>)>,
    pub token_file: Option<PathBuf>,
    pub authority_host: Option<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("kind", &self.kind)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// Token labels are 32 bytes, blank-padded (CK_TOKEN_INFO.label).
pub const MAX_LABEL: usize = 32;
const DEFAULT_REFRESH_SECONDS: u64 = 5;
/// Ten wrong PINs in a row lock a slot for five minutes: ten guesses per five minutes
/// keep a 6-digit PIN out of reach for years, and an operator who mistypes waits little.
const DEFAULT_PIN_TRIES: u32 = 10;
const DEFAULT_PIN_LOCKOUT_SECONDS: u64 = 300;
const DEFAULT_REMOTE_REFRESH_SECONDS: u64 = 300;

/// Finds and reads the configuration.
pub fn load(reserved_path: Option<&str>) -> Result<Config> {
    if let Some(p) = reserved_path {
        return load_file(Path::new(p));
    }
    if let Some(p) = std::env::var_os(CONFIG_ENV) {
        if p.is_empty() {
            return Err(Error::Config(format!(
                "{CONFIG_ENV} is set but empty; set it to the path of a TOML configuration file or unset it"
            )));
        }
        return load_file(Path::new(&p));
    }
    let system = system_path();
    if system.exists() {
        return load_file(&system);
    }
    embedded_default()
}

pub fn system_path() -> PathBuf {
    #[cfg(windows)]
    {
        let base = std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into());
        PathBuf::from(base)
            .join("identify-pkcs11")
            .join("config.toml")
    }
    #[cfg(not(windows))]
    {
        PathBuf::from("/etc/identify-pkcs11/config.toml")
    }
}

/// The per-user store directory of the embedded default.
pub fn default_store_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("identify-pkcs11").join("store"));
    }
    #[cfg(windows)]
    if let Some(d) = std::env::var_os("LOCALAPPDATA") {
        return Ok(PathBuf::from(d).join("identify-pkcs11").join("store"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            Error::Config(
                "the embedded default configuration needs XDG_DATA_HOME or HOME to place its store"
                    .into(),
            )
        })?;
    Ok(PathBuf::from(home).join(".local/share/identify-pkcs11/store"))
}

pub fn embedded_default() -> Result<Config> {
    Ok(Config {
        source: Source::Embedded,
        log: LogConfig::default(),
        audit: None,
        metrics: None,
        slots: vec![SlotConfig {
            label: "identify-pkcs11".into(),
            kind: SlotKind::CertStore,
            store: StoreConfig::Directory {
                path: default_store_dir()?,
                writable: true,
                pkcs12_password: None,
                create: true,
            },
            pin_hash: None,
            pin_tries: DEFAULT_PIN_TRIES,
            pin_lockout: Duration::from_secs(DEFAULT_PIN_LOCKOUT_SECONDS),
            refresh_seconds: DEFAULT_REFRESH_SECONDS,
        }],
    })
}

pub fn load_file(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Config(format!(
            "{}: cannot read the configuration file: {e}",
            path.display()
        ))
    })?;
    parse(&text, Source::File(path.to_owned()))
}

/// Parses and validates configuration text.
pub fn parse(text: &str, source: Source) -> Result<Config> {
    // The line number and the line itself, so that the message names the key; never the
    // value of a secret-bearing key, neither in the line nor in the parser's message
    // (which may quote it), nor a line inside a multi-line string.
    let located = |span: Option<std::ops::Range<usize>>, message: String, from_parser: bool| {
        let mut message = message;
        let line = span
            .map(|s| {
                let n = line_of(text, s.start);
                let content = text.lines().nth(n - 1).unwrap_or("").trim();
                let (shown, scrub) = shown_line(content);
                if scrub && from_parser {
                    message = scrub_quoted(&message);
                }
                match shown {
                    Some(shown) => format!("line {n} (`{shown}`): "),
                    None => format!("line {n}: "),
                }
            })
            .unwrap_or_default();
        Error::Config(format!("{source}: {line}{message}"))
    };
    let parse_error =
        |e: toml::de::Error| located(e.span(), e.message().trim_end().to_owned(), true);
    let doc = toml::de::DeTable::parse(text).map_err(parse_error)?;
    let tables = slots::slot_tables(&doc).map_err(|e| located(e.span, e.message, e.from_parser))?;
    let raw = RawConfig::deserialize(toml::de::Deserializer::from(doc)).map_err(parse_error)?;
    let at = |span: std::ops::Range<usize>, key: &str, msg: String| {
        Error::Config(format!(
            "{source}: line {}: `{key}`: {msg}",
            line_of(text, span.start)
        ))
    };
    let mut slots = Vec::new();
    for table in &tables {
        let c = table.common();
        let label = c.label.get_ref().trim().to_owned();
        if label.is_empty() || label.len() > MAX_LABEL {
            return Err(at(
                c.label.span(),
                "label",
                format!(
                    "must be 1 to {MAX_LABEL} bytes, got {:?}",
                    c.label.get_ref()
                ),
            ));
        }
        if slots.iter().any(|x: &SlotConfig| x.label == label) {
            return Err(at(
                c.label.span(),
                "label",
                format!("{label:?} names two slots; labels must be unique"),
            ));
        }
        let kind = *c.kind.get_ref();
        let store = match table {
            SlotTable::CertStore(s) => {
                if let Some(store) = &s.store {
                    if let Some(p) = &s.path {
                        return Err(at(
                            p.span(),
                            "path",
                            "a `cert-store` slot takes `path` (a directory) or `store` (a Windows certificate store), not both".into(),
                        ));
                    }
                    if let Some(p) = &s.pkcs12_password_file {
                        return Err(at(
                            p.span(),
                            "pkcs12_password_file",
                            "is for directory stores (`path`), not for `store`".into(),
                        ));
                    }
                    let parsed = windows_store(store.get_ref(), s.writable.unwrap_or(true))
                        .map_err(|m| at(store.span(), "store", m))?;
                    StoreConfig::Windows(parsed)
                } else {
                    let Some(path) = &s.path else {
                        return Err(at(
                            s.kind.span(),
                            "path",
                            if cfg!(windows) {
                                "a `cert-store` slot needs `store = \"CurrentUser/My\"` (a Windows certificate store) or `path = \"DIR\"` (a directory of PKCS#12 and PEM files)".into()
                            } else {
                                "a `cert-store` slot needs `path = \"DIR\"`, the directory of PKCS#12 and PEM files".into()
                            },
                        ));
                    };
                    // A relative path is relative to the configuration file, not to whatever
                    // directory the application happens to be in.
                    let dir = match &source {
                        Source::File(f) if path.get_ref().is_relative() => {
                            f.parent().unwrap_or(Path::new(".")).join(path.get_ref())
                        }
                        _ => path.get_ref().clone(),
                    };
                    if !dir.is_dir() {
                        return Err(at(
                            path.span(),
                            "path",
                            format!("{} is not an existing directory", dir.display()),
                        ));
                    }
                    let pkcs12_password = match &s.pkcs12_password_file {
                        None => None,
                        Some(f) => Some(
                            read_secret_file(f.get_ref())
                                .map_err(|m| at(f.span(), "pkcs12_password_file", m))?,
                        ),
                    };
                    StoreConfig::Directory {
                        path: dir,
                        writable: s.writable.unwrap_or(true),
                        pkcs12_password,
                        create: false,
                    }
                }
            }
            SlotTable::KeyVault(t) => StoreConfig::Azure(Box::new(azure_slot(
                &AzureView::key_vault(t),
                &source,
                &at,
                &label,
            )?)),
            SlotTable::ManagedHsm(t) => StoreConfig::Azure(Box::new(azure_slot(
                &AzureView::managed_hsm(t),
                &source,
                &at,
                &label,
            )?)),
        };
        if let Some(h) = c.pin_hash {
            check_pin_hash(h.get_ref()).map_err(|m| {
                at(
                    h.span(),
                    "pin_hash",
                    format!("{m}; make one with `identify-pkcs11 pin-hash`"),
                )
            })?;
        }
        let pin_tries = match c.pin_tries {
            Some(n) if c.pin_hash.is_none() => {
                return Err(at(
                    n.span(),
                    "pin_tries",
                    "applies only with pin_hash".into(),
                ));
            }
            Some(n) if !(1..=1000).contains(n.get_ref()) => {
                return Err(at(n.span(), "pin_tries", "must be 1 to 1000".into()));
            }
            Some(n) => *n.get_ref(),
            None => DEFAULT_PIN_TRIES,
        };
        let pin_lockout_seconds = match c.pin_lockout_seconds {
            Some(n) if c.pin_hash.is_none() => {
                return Err(at(
                    n.span(),
                    "pin_lockout_seconds",
                    "applies only with pin_hash".into(),
                ));
            }
            Some(n) if !(1..=86_400).contains(n.get_ref()) => {
                return Err(at(
                    n.span(),
                    "pin_lockout_seconds",
                    "must be 1 to 86400".into(),
                ));
            }
            Some(n) => *n.get_ref(),
            None => DEFAULT_PIN_LOCKOUT_SECONDS,
        };
        let refresh_seconds = match c.refresh_seconds {
            Some(r) if *r.get_ref() == 0 || *r.get_ref() > 86_400 => {
                return Err(at(r.span(), "refresh_seconds", "must be 1 to 86400".into()));
            }
            Some(r) => *r.get_ref(),
            // A vault listing costs requests and throttling budget: refresh it less often.
            None if kind == SlotKind::CertStore => DEFAULT_REFRESH_SECONDS,
            None => DEFAULT_REMOTE_REFRESH_SECONDS,
        };
        slots.push(SlotConfig {
            label,
            kind,
            store,
            pin_hash: c.pin_hash.as_ref().map(|h| h.get_ref().clone()),
            pin_tries,
            pin_lockout: Duration::from_secs(pin_lockout_seconds),
            refresh_seconds,
        });
    }
    if slots.is_empty() {
        return Err(Error::Config(format!(
            "{source}: no `[[slot]]` table; add at least one (kind = \"cert-store\")"
        )));
    }
    let audit = match &raw.audit {
        None => None,
        Some(a) => {
            let r = a.get_ref();
            let file = output_file(&source, &r.file).map_err(|m| at(a.span(), "audit.file", m))?;
            let max_bytes = r.max_bytes.unwrap_or(10 * 1024 * 1024);
            if max_bytes < 4096 {
                return Err(at(
                    a.span(),
                    "audit.max_bytes",
                    format!("{max_bytes}: at least 4096"),
                ));
            }
            let keep = r.keep.unwrap_or(5);
            if keep > 100 {
                return Err(at(
                    a.span(),
                    "audit.keep",
                    format!("{keep}: 0 to 100 old files"),
                ));
            }
            Some(crate::telemetry::AuditConfig {
                file,
                max_bytes,
                keep,
            })
        }
    };
    let metrics = match &raw.metrics {
        None => None,
        Some(m) => {
            let r = m.get_ref();
            let file =
                output_file(&source, &r.file).map_err(|e| at(m.span(), "metrics.file", e))?;
            let secs = r.interval_seconds.unwrap_or(15);
            if !(1..=3600).contains(&secs) {
                return Err(at(
                    m.span(),
                    "metrics.interval_seconds",
                    format!("{secs}: 1 to 3600"),
                ));
            }
            Some(crate::telemetry::MetricsConfig {
                file,
                interval: std::time::Duration::from_secs(secs),
            })
        }
    };
    Ok(Config {
        source,
        log: raw.log,
        audit,
        metrics,
        slots,
    })
}

/// `store = "CurrentUser/My"`: parsed everywhere, accepted only on Windows.
fn windows_store(
    value: &str,
    writable: bool,
) -> std::result::Result<windows_store::WindowsStoreConfig, String> {
    let parsed = windows_store::WindowsStoreConfig::parse(value, writable)?;
    if cfg!(windows) {
        Ok(parsed)
    } else {
        Err(format!(
            "{value:?} names a Windows certificate store, and this is not Windows; here a `cert-store` slot takes `path = \"DIR\"`"
        ))
    }
}

/// What a parse error may show of the line it points at, and whether the parser's message
/// must lose its quoted values: a line naming a secret-bearing key anywhere (also inside
/// an inline table) shows as `key = <redacted>`; a line that is neither `key = …` nor a
/// `[table]` (inside a multi-line string: a PEM body, say) shows nothing; any other line
/// shows as written.
fn shown_line(line: &str) -> (Option<String>, bool) {
    let lower = line.to_ascii_lowercase();
    let secret = ["secret", "password", "token", "pin", "private"]
        .iter()
        .any(|w| lower.contains(w));
    match line.split_once('=') {
        Some((key, _)) if secret => (Some(format!("{} = <redacted>", key.trim())), true),
        None if secret || !line.starts_with('[') => (None, true),
        _ => (Some(line.to_owned()), false),
    }
}

/// `message` with every `"…"` and `` `…` `` span replaced by `<redacted>`.
fn scrub_quoted(message: &str) -> String {
    let mut out = String::new();
    let mut open: Option<char> = None;
    for c in message.chars() {
        match open {
            None if c == '"' || c == '`' => {
                open = Some(c);
                out.push_str("<redacted>");
            }
            None => out.push(c),
            Some(q) if c == q => open = None,
            Some(_) => {}
        }
    }
    out
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

#[cfg(test)]
mod tests;
