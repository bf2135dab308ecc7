//! The configuration file: where it is found, what it may say, and the error messages that
//! name the file, the line, the key and what is accepted.
//!
//! Order of lookup at C_Initialize: the `pReserved` string of `CK_C_INITIALIZE_ARGS` (a
//! path), then the file named by `IDENTIFY_PKCS11_CONFIG`, then the system file
//! (`/etc/identify-pkcs11/config.toml`, on Windows `%ProgramData%\identify-pkcs11\config.toml`),
//! then the embedded default: one writable `cert-store` slot over the per-user directory
//! `$XDG_DATA_HOME/identify-pkcs11/store` (created 0700 on first use).

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

/// One `[[slot]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlot {
    label: toml::Spanned<String>,
    kind: toml::Spanned<SlotKind>,
    #[serde(default)]
    path: Option<toml::Spanned<PathBuf>>,
    /// A Windows certificate store, `CurrentUser/My` (cert-store slots on Windows).
    #[serde(default)]
    store: Option<toml::Spanned<String>>,
    #[serde(default)]
    writable: Option<bool>,
    #[serde(default)]
    pin_hash: Option<toml::Spanned<String>>,
    #[serde(default)]
    pin_tries: Option<toml::Spanned<u32>>,
    #[serde(default)]
    pin_lockout_seconds: Option<toml::Spanned<u64>>,
    #[serde(default)]
    pkcs12_password_file: Option<toml::Spanned<PathBuf>>,
    #[serde(default)]
    refresh_seconds: Option<toml::Spanned<u64>>,
    // --- key-vault / managed-hsm ---
    #[serde(default)]
    vault: Option<toml::Spanned<String>>,
    #[serde(default)]
    hsm: Option<toml::Spanned<String>>,
    #[serde(default)]
    hsm_random: Option<bool>,
    #[serde(default)]
    ca_file: Option<toml::Spanned<PathBuf>>,
    #[serde(default)]
    credential: Option<toml::Spanned<RawCredential>>,
    #[serde(default)]
    key_names: Option<Vec<String>>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    hsm_keys: Option<bool>,
    #[serde(default)]
    allow_destroy: Option<bool>,
    #[serde(default)]
    deadline_seconds: Option<toml::Spanned<u64>>,
    #[serde(default)]
    max_retries: Option<toml::Spanned<u32>>,
    #[serde(default)]
    rate_budget: Option<toml::Spanned<f64>>,
    #[serde(default)]
    certificates: Option<toml::Spanned<String>>,
    /// Replaced by `certificates`; named in the error.
    #[serde(default)]
    certificates_dir: Option<toml::Spanned<PathBuf>>,
}

/// `[slot.credential]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
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
    #[serde(default)]
    slot: Vec<RawSlot>,
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
    Windows(crate::backend::windows::WindowsStoreConfig),
}

/// A key-vault or managed-hsm slot.
#[derive(Clone)]
pub struct AzureConfig {
    /// `https://NAME.vault.azure.net` or `https://NAME.managedhsm.azure.net`.
    pub url: String,
    pub managed_hsm: bool,
    /// Extra trust anchors (PEM) beside the system's.
    pub ca_pem: Option<Vec<u8>>,
    pub credential: Credential,
    /// Only these key names, when given.
    pub key_names: Option<Vec<String>>,
    /// Only keys carrying all these tags.
    pub tags: BTreeMap<String, String>,
    /// New keys are HSM-protected (RSA-HSM, EC-HSM); always so on a Managed HSM.
    pub hsm_keys: bool,
    /// C_DestroyObject deletes keys in the vault (off unless configured).
    pub allow_destroy: bool,
    /// Upper bound of one PKCS#11 call's time with the service, retries included.
    pub deadline_seconds: u64,
    pub max_retries: u32,
    /// Share of the published per-vault limits this module allows itself (a multiple when
    /// the vault's limits were raised).
    pub rate_budget: f64,
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
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        // The line number and the line itself, so that the message names the key; never
        // the value of a secret-bearing key, neither in the line nor in the parser's
        // message (which may quote it), nor a line inside a multi-line string.
        let mut message = e.message().trim_end().to_owned();
        let line = e
            .span()
            .map(|s| {
                let n = line_of(text, s.start);
                let content = text.lines().nth(n - 1).unwrap_or("").trim();
                let (shown, scrub) = shown_line(content);
                if scrub {
                    message = scrub_quoted(&message);
                }
                match shown {
                    Some(shown) => format!("line {n} (`{shown}`): "),
                    None => format!("line {n}: "),
                }
            })
            .unwrap_or_default();
        Error::Config(format!("{source}: {line}{message}"))
    })?;
    let at = |span: std::ops::Range<usize>, key: &str, msg: String| {
        Error::Config(format!(
            "{source}: line {}: `{key}`: {msg}",
            line_of(text, span.start)
        ))
    };
    let mut slots = Vec::new();
    for s in raw.slot {
        let label = s.label.get_ref().trim().to_owned();
        if label.is_empty() || label.len() > MAX_LABEL {
            return Err(at(
                s.label.span(),
                "label",
                format!(
                    "must be 1 to {MAX_LABEL} bytes, got {:?}",
                    s.label.get_ref()
                ),
            ));
        }
        if slots.iter().any(|x: &SlotConfig| x.label == label) {
            return Err(at(
                s.label.span(),
                "label",
                format!("{label:?} names two slots; labels must be unique"),
            ));
        }
        let kind = *s.kind.get_ref();
        let store = match kind {
            SlotKind::CertStore => {
                if let Some(key) = s.azure_keys_present() {
                    return Err(at(
                        s.kind.span(),
                        key,
                        "is for key-vault and managed-hsm slots, not for kind = \"cert-store\""
                            .into(),
                    ));
                }
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
            SlotKind::KeyVault | SlotKind::ManagedHsm => {
                StoreConfig::Azure(Box::new(azure_slot(&s, kind, &source, &at, &label)?))
            }
        };
        if let Some(h) = &s.pin_hash {
            check_pin_hash(h.get_ref()).map_err(|m| {
                at(
                    h.span(),
                    "pin_hash",
                    format!("{m}; make one with `identify-pkcs11 pin-hash`"),
                )
            })?;
        }
        let pin_tries = match &s.pin_tries {
            Some(n) if s.pin_hash.is_none() => {
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
        let pin_lockout_seconds = match &s.pin_lockout_seconds {
            Some(n) if s.pin_hash.is_none() => {
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
        let refresh_seconds = match &s.refresh_seconds {
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
            pin_hash: s.pin_hash.map(|h| h.into_inner()),
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
) -> std::result::Result<crate::backend::windows::WindowsStoreConfig, String> {
    let parsed = crate::backend::windows::WindowsStoreConfig::parse(value, writable)?;
    if cfg!(windows) {
        Ok(parsed)
    } else {
        Err(format!(
            "{value:?} names a Windows certificate store, and this is not Windows; here a `cert-store` slot takes `path = \"DIR\"`"
        ))
    }
}

impl RawSlot {
    /// The first key-vault / managed-hsm setting given, for refusing it on a cert-store.
    fn azure_keys_present(&self) -> Option<&'static str> {
        [
            ("vault", self.vault.is_some()),
            ("hsm", self.hsm.is_some()),
            ("hsm_random", self.hsm_random.is_some()),
            ("ca_file", self.ca_file.is_some()),
            ("credential", self.credential.is_some()),
            ("key_names", self.key_names.is_some()),
            ("tags", self.tags.is_some()),
            ("hsm_keys", self.hsm_keys.is_some()),
            ("allow_destroy", self.allow_destroy.is_some()),
            ("deadline_seconds", self.deadline_seconds.is_some()),
            ("max_retries", self.max_retries.is_some()),
            ("rate_budget", self.rate_budget.is_some()),
            ("certificates", self.certificates.is_some()),
            ("certificates_dir", self.certificates_dir.is_some()),
        ]
        .into_iter()
        .find(|(_, given)| *given)
        .map(|(k, _)| k)
    }
}

type At<'a> = dyn Fn(std::ops::Range<usize>, &str, String) -> Error + 'a;

/// Validates a key-vault or managed-hsm slot.
fn azure_slot(
    s: &RawSlot,
    kind: SlotKind,
    source: &Source,
    at: &At<'_>,
    label: &str,
) -> Result<AzureConfig> {
    let managed_hsm = kind == SlotKind::ManagedHsm;
    for (key, given) in [
        ("path", s.path.is_some()),
        ("writable", s.writable.is_some()),
        ("pkcs12_password_file", s.pkcs12_password_file.is_some()),
    ] {
        if given {
            return Err(at(
                s.kind.span(),
                key,
                format!(
                    "is for cert-store slots, not for kind = {:?}",
                    kind.as_str()
                ),
            ));
        }
    }
    // A vault is `vault = …`, a Managed HSM `hsm = …`.
    let (url_key, url, wrong) = if managed_hsm {
        ("hsm", &s.hsm, s.vault.as_ref().map(|v| (v, "vault")))
    } else {
        ("vault", &s.vault, s.hsm.as_ref().map(|v| (v, "hsm")))
    };
    if let Some((v, key)) = wrong {
        return Err(at(
            v.span(),
            key,
            format!(
                "a `{}` slot names its store with `{url_key} = \"https://…\"`",
                kind.as_str()
            ),
        ));
    }
    let example = if managed_hsm {
        "https://contoso.managedhsm.azure.net"
    } else {
        "https://contoso.vault.azure.net"
    };
    let Some(url) = url else {
        return Err(at(
            s.kind.span(),
            url_key,
            format!(
                "a `{}` slot needs `{url_key} = \"{example}\"`",
                kind.as_str()
            ),
        ));
    };
    if s.hsm_random.is_some() && !managed_hsm {
        return Err(at(
            s.kind.span(),
            "hsm_random",
            "is for managed-hsm slots (a vault has no random number service)".into(),
        ));
    }
    let parsed = url::Url::parse(url.get_ref()).map_err(|e| {
        at(
            url.span(),
            url_key,
            format!("not a URL ({e}); e.g. {example}"),
        )
    })?;
    if parsed.scheme() != "https"
        || parsed.host_str().is_none()
        || !parsed.path().trim_matches('/').is_empty()
    {
        return Err(at(
            url.span(),
            url_key,
            "must be https://HOST with no path".into(),
        ));
    }
    let relative = |p: &Path| match source {
        Source::File(f) if p.is_relative() => f.parent().unwrap_or(Path::new(".")).join(p),
        _ => p.to_owned(),
    };
    let ca_pem = match &s.ca_file {
        None => None,
        Some(f) => {
            let path = relative(f.get_ref());
            let pem = std::fs::read(&path)
                .map_err(|e| at(f.span(), "ca_file", format!("{}: {e}", path.display())))?;
            openssl::x509::X509::stack_from_pem(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    at(
                        f.span(),
                        "ca_file",
                        format!("{} holds no PEM certificate", path.display()),
                    )
                })?;
            Some(pem)
        }
    };
    let Some(cred) = &s.credential else {
        return Err(at(
            s.kind.span(),
            "credential",
            "add a [slot.credential] table with type = \"managed-identity\" | \"client-secret\" | \"client-certificate\" | \"workload-identity\" | \"azure-cli\"".into(),
        ));
    };
    let credential = credential(
        cred.get_ref(),
        source,
        &|key, msg| at(cred.span(), key, msg),
        &relative,
    )?;
    let seconds = |v: &Option<toml::Spanned<u64>>, key: &str, default: u64, max: u64| match v {
        Some(x) if *x.get_ref() == 0 || *x.get_ref() > max => {
            Err(at(x.span(), key, format!("must be 1 to {max}")))
        }
        Some(x) => Ok(*x.get_ref()),
        None => Ok(default),
    };
    let deadline_seconds = seconds(&s.deadline_seconds, "deadline_seconds", 10, 300)?;
    let max_retries = match &s.max_retries {
        Some(r) if *r.get_ref() > 10 => {
            return Err(at(r.span(), "max_retries", "must be 0 to 10".into()));
        }
        Some(r) => *r.get_ref(),
        None => 4,
    };
    let rate_budget = match &s.rate_budget {
        Some(r) if !(*r.get_ref() >= 0.004 && *r.get_ref() <= 100.0) => {
            return Err(at(
                r.span(),
                "rate_budget",
                "must be from 0.004 (16 units per 10 s, the weight of one RSA-4096 HSM operation) to 100: a fraction of the published limits, or a multiple when Microsoft raised the vault's limits".into(),
            ));
        }
        Some(r) => *r.get_ref(),
        None => 0.9,
    };
    if let Some(names) = &s.key_names
        && let Some(bad) = names
            .iter()
            .find(|n| n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        return Err(at(
            s.kind.span(),
            "key_names",
            format!("{bad:?} is not a key name (1-127 of 0-9 a-z A-Z -)"),
        ));
    }
    if let Some(d) = &s.certificates_dir {
        return Err(at(
            d.span(),
            "certificates_dir",
            "was replaced by the certificate database: certificates = \"sqlite:///path/certs.db\" or \"postgres://user@host/db\"".into(),
        ));
    }
    let base = match source {
        Source::File(f) => f.parent().unwrap_or(Path::new(".")).to_owned(),
        Source::Embedded => default_store_dir()?
            .parent()
            .unwrap_or(Path::new("."))
            .to_owned(),
    };
    let certificates = match &s.certificates {
        Some(c) => {
            let location = crate::certdb::Location::parse(c.get_ref(), &base)
                .map_err(|m| at(c.span(), "certificates", m))?;
            // A password in the URL only in a file nobody else can read (else PGPASSWORD).
            if location.has_password()
                && let Source::File(f) = source
            {
                read_secret_file(f).map_err(|m| {
                    at(
                        c.span(),
                        "certificates",
                        format!("a database password needs a private configuration file (or use PGPASSWORD): {m}"),
                    )
                })?;
            }
            location
        }
        // One SQLite file per slot beside the configuration.
        None => crate::certdb::Location::Sqlite(base.join(format!("{label}.certificates.db"))),
    };
    Ok(AzureConfig {
        url: url.get_ref().trim_end_matches('/').to_owned(),
        managed_hsm,
        ca_pem,
        credential,
        key_names: s.key_names.clone(),
        tags: s.tags.clone().unwrap_or_default(),
        hsm_keys: managed_hsm || s.hsm_keys.unwrap_or(false),
        allow_destroy: s.allow_destroy.unwrap_or(false),
        deadline_seconds,
        max_retries,
        rate_budget,
        certificates,
        hsm_random: s.hsm_random.unwrap_or(false),
    })
}

/// Validates `[slot.credential]`; the AZURE_* environment variables fill what the file
/// leaves out, as the Azure SDKs do.
fn credential(
    c: &RawCredential,
    source: &Source,
    at: &dyn Fn(&str, String) -> Error,
    relative: &dyn Fn(&Path) -> PathBuf,
) -> Result<Credential> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let tenant_id = c.tenant_id.clone().or_else(|| env("AZURE_TENANT_ID"));
    let client_id = c.client_id.clone().or_else(|| env("AZURE_CLIENT_ID"));
    let authority_host = c
        .authority_host
        .clone()
        .or_else(|| env("AZURE_AUTHORITY_HOST"));
    if let Some(a) = &authority_host
        && !a.starts_with("https://")
    {
        return Err(at(
            "credential.authority_host",
            format!("{a:?} must be an https:// URL"),
        ));
    }
    let need = |v: &Option<String>, key: &str, var: &str| {
        v.clone().ok_or_else(|| {
            at(
                &format!("credential.{key}"),
                format!(
                    "is required for type = {:?} (or set {var})",
                    kind_name(c.kind)
                ),
            )
        })
    };
    let mut out = Credential {
        kind: c.kind,
        tenant_id: None,
        client_id: None,
        object_id: c.object_id.clone(),
        resource_id: c.resource_id.clone(),
        client_secret: None,
        certificate: None,
        token_file: None,
        authority_host,
    };
    match c.kind {
        CredentialKind::ManagedIdentity => {
            let given = [&c.client_id, &c.object_id, &c.resource_id]
                .iter()
                .filter(|v| v.is_some())
                .count();
            if given > 1 {
                return Err(at("credential", "give at most one of client_id, object_id, resource_id (user-assigned identity)".into()));
            }
            out.client_id = c.client_id.clone();
        }
        CredentialKind::ClientSecret => {
            out.tenant_id = Some(need(&tenant_id, "tenant_id", "AZURE_TENANT_ID")?);
            out.client_id = Some(need(&client_id, "client_id", "AZURE_CLIENT_ID")?);
            out.client_secret = Some(match (&c.client_secret, &c.client_secret_file) {
                (Some(_), Some(_)) => {
                    return Err(at(
                        "credential.client_secret",
                        "give client_secret or client_secret_file, not both".into(),
                    ));
                }
                (Some(s), None) => {
                    // An inline secret is only acceptable in a file nobody else can read.
                    if let Source::File(f) = source {
                        read_secret_file(f).map_err(|m| {
                            at(
                                "credential.client_secret",
                                format!("an inline secret needs a private configuration file: {m}"),
                            )
                        })?;
                    }
                    s.clone()
                }
                (None, Some(f)) => read_secret_file(&relative(f))
                    .map_err(|m| at("credential.client_secret_file", m))?,
                (None, None) => env("AZURE_CLIENT_SECRET").ok_or_else(|| {
                    at(
                        "credential.client_secret_file",
                        "is required for type = \"client-secret\" (or set AZURE_CLIENT_SECRET)"
                            .into(),
                    )
                })?,
            });
        }
        CredentialKind::ClientCertificate => {
            out.tenant_id = Some(need(&tenant_id, "tenant_id", "AZURE_TENANT_ID")?);
            out.client_id = Some(need(&client_id, "client_id", "AZURE_CLIENT_ID")?);
            let file = c
                .certificate_file
                .clone()
                .or_else(|| env("AZURE_CLIENT_CERTIFICATE_PATH").map(PathBuf::from))
                .ok_or_else(|| {
                    at(
                        "credential.certificate_file",
                        "is required for type = \"client-certificate\" (a PKCS#12 file)".into(),
                    )
                })?;
            let file = relative(&file);
            let bytes = std::fs::read(&file).map_err(|e| {
                at(
                    "credential.certificate_file",
                    format!("{}: {e}", file.display()),
                )
            })?;
            let password = match &c.certificate_password_file {
                Some(p) => Some(
                    read_secret_file(&relative(p))
                        .map_err(|m| at("credential.certificate_password_file", m))?,
                ),
                None => env("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
            };
            out.certificate = Some((bytes, password));
        }
        CredentialKind::WorkloadIdentity => {
            out.tenant_id = Some(need(&tenant_id, "tenant_id", "AZURE_TENANT_ID")?);
            out.client_id = Some(need(&client_id, "client_id", "AZURE_CLIENT_ID")?);
            let file = c.token_file.clone().or_else(|| env("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from)).ok_or_else(|| at("credential.token_file", "is required for type = \"workload-identity\" (or set AZURE_FEDERATED_TOKEN_FILE)".into()))?;
            out.token_file = Some(relative(&file));
        }
        CredentialKind::AzureCli => {
            out.tenant_id = tenant_id;
        }
    }
    Ok(out)
}

/// The configuration's name of a credential type.
pub fn kind_name(k: CredentialKind) -> &'static str {
    match k {
        CredentialKind::ManagedIdentity => "managed-identity",
        CredentialKind::ClientSecret => "client-secret",
        CredentialKind::ClientCertificate => "client-certificate",
        CredentialKind::WorkloadIdentity => "workload-identity",
        CredentialKind::AzureCli => "azure-cli",
    }
}

/// Reads a secret from a file that group and others cannot read; one trailing newline is
/// dropped.
fn read_secret_file(path: &Path) -> std::result::Result<String, String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "{} is readable by group or others; chmod 600 it",
                path.display()
            ));
        }
    }
    let mut s = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    Ok(s)
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

/// Hashes a PIN for `pin_hash` (argon2id, random salt).
pub fn hash_pin(pin: &[u8]) -> Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(pin, &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("argon2: {e}")))
}

/// Accepts only argon2 PHC strings whose parameters argon2 can use, so that a hash that
/// could never match fails C_Initialize instead of every C_Login.
fn check_pin_hash(phc: &str) -> std::result::Result<(), String> {
    let parsed =
        argon2::PasswordHash::new(phc).map_err(|e| format!("not a PHC hash string ({e})"))?;
    argon2::Algorithm::try_from(parsed.algorithm).map_err(|_| {
        format!(
            "algorithm `{}` is not argon2id, argon2i or argon2d",
            parsed.algorithm
        )
    })?;
    argon2::Params::try_from(&parsed).map_err(|e| format!("argon2 parameters: {e}"))?;
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("the hash or the salt is missing".into());
    }
    Ok(())
}

/// At most this many PIN verifications run at once: each takes the hash's memory (19 MiB
/// with the default parameters), so a storm of C_Login calls waits its turn instead of
/// exhausting the host's memory.
pub const MAX_CONCURRENT_PIN_CHECKS: usize = 4;
/// How long a C_Login waits for its turn before it gives up (CKR_DEVICE_ERROR).
const PIN_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The running PIN verifications (a counting semaphore; a leaf lock, src/lock_order.rs).
static PIN_CHECKS: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// A turn to verify a PIN; given back on drop.
struct PinCheckTurn;

impl PinCheckTurn {
    fn take() -> Result<PinCheckTurn> {
        let (count, freed) = &PIN_CHECKS;
        let running = count.lock().unwrap_or_else(|e| e.into_inner());
        let (mut running, waited) = freed
            .wait_timeout_while(running, PIN_CHECK_WAIT, |n| *n >= MAX_CONCURRENT_PIN_CHECKS)
            .unwrap_or_else(|e| e.into_inner());
        if waited.timed_out() && *running >= MAX_CONCURRENT_PIN_CHECKS {
            return Err(Error::Backend(format!(
                "{MAX_CONCURRENT_PIN_CHECKS} PIN checks running for {} s: C_Login refused",
                PIN_CHECK_WAIT.as_secs()
            )));
        }
        *running += 1;
        #[cfg(test)]
        tests::note_running(*running);
        Ok(PinCheckTurn)
    }
}

impl Drop for PinCheckTurn {
    fn drop(&mut self) {
        let (count, freed) = &PIN_CHECKS;
        let mut running = count.lock().unwrap_or_else(|e| e.into_inner());
        *running = running.saturating_sub(1);
        freed.notify_one();
    }
}

/// Checks a PIN against a PHC string: `Ok(false)` for a wrong PIN only; anything else
/// that goes wrong is an error, not a wrong PIN. At most [`MAX_CONCURRENT_PIN_CHECKS`]
/// run at once.
pub fn verify_pin(pin: &[u8], phc: &str) -> Result<bool> {
    use argon2::password_hash::{Error as PhcError, PasswordVerifier};
    let parsed =
        argon2::PasswordHash::new(phc).map_err(|e| Error::Config(format!("pin_hash: {e}")))?;
    let _turn = PinCheckTurn::take()?;
    match argon2::Argon2::default().verify_password(pin, &parsed) {
        Ok(()) => Ok(true),
        Err(PhcError::Password) => Ok(false),
        Err(e) => Err(Error::Internal(format!("checking the PIN: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most PIN checks seen running at once.
    static MOST_RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    pub(super) fn note_running(n: usize) {
        MOST_RUNNING.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
    }

    #[test]
    fn a_login_storm_runs_at_most_four_pin_checks_at_once() {
        let hash = hash_pin(b"1234").unwrap();
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let hash = hash.clone();
                std::thread::spawn(move || {
                    let pin: &[u8] = if i % 2 == 0 { b"1234" } else { b"4321" };
                    verify_pin(pin, &hash).unwrap() == (i % 2 == 0)
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap(), "a PIN check gave the wrong answer");
        }
        let most = MOST_RUNNING.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..=4).contains(&most), "{most} PIN checks ran at once");
    }

    fn err(text: &str) -> String {
        match parse(text, Source::File("/etc/x.toml".into())) {
            Err(Error::Config(m)) => m,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn parse_errors_never_print_a_secret() {
        let head = "[[slot]]\nlabel = \"v\"\nkind = \"key-vault\"\nvault = \"https://v.vault.azure.net\"\n[slot.credential]\ntype = \"client-secret\"\ntenant_id = \"t\"\nclient_id = \"c\"\n";
        for (line, secret) in [
            ("client_secret = 987654321987", "987654321987"),
            (
                "client_secret = \"s3cr3t-unterminated",
                "s3cr3t-unterminated",
            ),
            (
                "\"client_secret\" = [\"s3cr3t-in-array\"]",
                "s3cr3t-in-array",
            ),
        ] {
            let m = err(&format!("{head}{line}\n"));
            assert!(m.contains("line 9"), "{m}");
            assert!(m.contains("client_secret"), "the key is named: {m}");
            assert!(!m.contains(secret), "the secret leaked: {m}");
        }
        // A secret inside an inline table on the line of the error.
        let inline = head.replace("[slot.credential]\n", "").replace(
            "type = \"client-secret\"\ntenant_id = \"t\"\nclient_id = \"c\"\n",
            "credential = { type = \"client-secret\", client_secret = \"s3cr3t-inline\" \n",
        );
        let m = err(&inline);
        assert!(!m.contains("s3cr3t-inline"), "the secret leaked: {m}");
        // An error inside a multi-line string (a bad escape on line 10): that line is not
        // shown at all.
        let m = err(&format!(
            "{head}client_secret = \"\"\"\ns3cr3t-multi \\q\n\"\"\"\n"
        ));
        assert!(m.contains("line 10"), "{m}");
        assert!(!m.contains("s3cr3t-multi"), "the secret leaked: {m}");
        // Other keys' lines are still shown as written.
        let m = err(&format!("{head}client_id = 42\n"));
        assert!(m.contains("client_id = 42"), "{m}");
    }

    #[test]
    fn unknown_key_names_file_line_and_accepted_keys() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\npath = {:?}\ncolour = 1\n",
            dir.path()
        );
        let m = err(&text);
        assert!(m.starts_with("/etc/x.toml: line 5 (`colour = 1`): "), "{m}");
        assert!(m.contains("colour") && m.contains("pin_hash"), "{m}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let m = err(&format!(
            "[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\npath = {:?}\nwritable = \"yes\"\n",
            dir.path()
        ));
        assert!(
            m.contains("line 5 (`writable = \"yes\"`)") && m.contains("boolean"),
            "{m}"
        );
    }

    #[test]
    fn wrong_kind_lists_accepted_values() {
        let m = err("[[slot]]\nlabel = \"a\"\nkind = \"vault\"\n");
        assert!(m.contains("line 3"), "{m}");
        assert!(m.contains("cert-store") && m.contains("key-vault"), "{m}");
    }

    #[test]
    fn missing_directory_and_missing_path() {
        let m =
            err("[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\npath = \"/nonexistent/dir\"\n");
        assert!(
            m.contains("line 4: `path`") && m.contains("not an existing directory"),
            "{m}"
        );
        let m = err("[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\n");
        assert!(m.contains("`path`"), "{m}");
    }

    #[test]
    fn labels_checked() {
        let dir = tempfile::tempdir().unwrap();
        let slot = |l: &str| {
            format!(
                "[[slot]]\nlabel = {l:?}\nkind = \"cert-store\"\npath = {:?}\n",
                dir.path()
            )
        };
        assert!(err(&slot(&"x".repeat(33))).contains("1 to 32 bytes"));
        assert!(err(&format!("{}{}", slot("a"), slot("a"))).contains("unique"));
        assert!(err("").contains("no `[[slot]]`"));
    }

    #[test]
    fn pin_hash_round_trip_and_bad_hash() {
        let h = hash_pin(b"1234").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_pin(b"1234", &h).unwrap());
        assert!(!verify_pin(b"12345", &h).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let m = err(&format!(
            "[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\npath = {:?}\npin_hash = \"1234\"\n",
            dir.path()
        ));
        assert!(m.contains("pin_hash") && m.contains("pin-hash"), "{m}");
        // A valid PHC string of another algorithm could never match: refused at load.
        let scrypt = "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E";
        let m = err(&format!(
            "[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\npath = {:?}\npin_hash = {scrypt:?}\n",
            dir.path()
        ));
        assert!(m.contains("line 5") && m.contains("not argon2"), "{m}");
    }

    #[test]
    fn pin_throttling_keys_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let h = hash_pin(b"1234").unwrap();
        let slot = |extra: &str| {
            format!(
                "[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\npath = {:?}\n{extra}\n",
                dir.path()
            )
        };
        let c = parse(
            &slot(&format!("pin_hash = {h:?}")),
            Source::File("/etc/x.toml".into()),
        )
        .unwrap();
        assert_eq!(c.slots[0].pin_tries, 10);
        assert_eq!(c.slots[0].pin_lockout, Duration::from_secs(300));
        let c = parse(
            &slot(&format!(
                "pin_hash = {h:?}\npin_tries = 3\npin_lockout_seconds = 60"
            )),
            Source::File("/etc/x.toml".into()),
        )
        .unwrap();
        assert_eq!(c.slots[0].pin_tries, 3);
        assert_eq!(c.slots[0].pin_lockout, Duration::from_secs(60));
        let m = err(&slot("pin_tries = 3"));
        assert!(
            m.contains("pin_tries") && m.contains("only with pin_hash"),
            "{m}"
        );
        let m = err(&slot(&format!("pin_hash = {h:?}\npin_tries = 0")));
        assert!(m.contains("line 6") && m.contains("1 to 1000"), "{m}");
        let m = err(&slot(&format!("pin_hash = {h:?}\npin_lockout_seconds = 0")));
        assert!(
            m.contains("pin_lockout_seconds") && m.contains("1 to 86400"),
            "{m}"
        );
    }

    #[test]
    fn windows_stores_are_named_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let m = err("[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\nstore = \"Elsewhere/My\"\n");
        assert!(m.contains("line 4") && m.contains("CurrentUser/My"), "{m}");
        let m = err(&format!(
            "[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\nstore = \"CurrentUser/My\"\npath = {:?}\n",
            dir.path()
        ));
        assert!(m.contains("not both"), "{m}");
        let text = "[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\nstore = \"CurrentUser/My\"\n";
        if cfg!(windows) {
            let c = parse(text, Source::File(dir.path().join("c.toml"))).unwrap();
            assert!(matches!(c.slots[0].store, StoreConfig::Windows(_)));
        } else {
            let m = err(text);
            assert!(m.contains("line 4") && m.contains("not Windows"), "{m}");
        }
    }

    #[test]
    fn relative_store_path_is_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("store")).unwrap();
        let c = parse(
            "[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\npath = \"store\"\n",
            Source::File(dir.path().join("config.toml")),
        )
        .unwrap();
        match &c.slots[0].store {
            StoreConfig::Directory { path, .. } => assert_eq!(path, &dir.path().join("store")),
            other => panic!("expected a directory store, got {other:?}"),
        }
    }

    #[test]
    fn secret_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "secret\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(read_secret_file(&f).unwrap_err().contains("chmod 600"));
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(read_secret_file(&f).unwrap(), "secret");
    }

    #[test]
    fn managed_hsm_slots_and_their_certificate_database() {
        let hsm = "[[slot]]\nlabel = \"hsm\"\nkind = \"managed-hsm\"\nhsm = \"https://contoso.managedhsm.azure.net\"\n";
        let cred = "[slot.credential]\ntype = \"managed-identity\"\n";
        let c = parse(
            &format!("{hsm}hsm_random = true\n{cred}"),
            Source::File("/etc/identify/c.toml".into()),
        )
        .unwrap();
        let StoreConfig::Azure(a) = &c.slots[0].store else {
            panic!("not an Azure slot")
        };
        assert!(a.managed_hsm && a.hsm_keys && a.hsm_random);
        assert_eq!(a.url, "https://contoso.managedhsm.azure.net");
        // Default: one SQLite file per slot beside the configuration.
        assert_eq!(
            a.certificates,
            crate::certdb::Location::Sqlite("/etc/identify/hsm.certificates.db".into())
        );
        let m = err(&format!(
            "[[slot]]\nlabel = \"hsm\"\nkind = \"managed-hsm\"\nvault = \"https://x.vault.azure.net\"\n{cred}"
        ));
        assert!(m.contains("`vault`") && m.contains("hsm = "), "{m}");
        let m = err(&format!(
            "[[slot]]\nlabel = \"v\"\nkind = \"key-vault\"\nvault = \"https://x.vault.azure.net\"\nhsm_random = true\n{cred}"
        ));
        assert!(m.contains("hsm_random") && m.contains("managed-hsm"), "{m}");
        let m = err(&format!("{hsm}certificates_dir = \"/x\"\n{cred}"));
        assert!(m.contains("line 5") && m.contains("certificates = "), "{m}");
        let m = err(&format!("{hsm}certificates = \"mysql://db/x\"\n{cred}"));
        assert!(
            m.contains("`certificates`") && m.contains("postgres://"),
            "{m}"
        );
        // A database password only in a private file, and never echoed.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let text = format!("{hsm}certificates = \"postgres://app:s3cret@db/certs\"\n{cred}");
        std::fs::write(&file, &text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let m = match parse(&text, Source::File(file.clone())) {
                Err(Error::Config(m)) => m,
                other => panic!("{other:?}"),
            };
            assert!(m.contains("PGPASSWORD") && m.contains("chmod 600"), "{m}");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        parse(&text, Source::File(file)).unwrap();
    }

    #[test]
    fn valid_config_parses() {
        let dir = tempfile::tempdir().unwrap();
        let c = parse(
            &format!(
                "[log]\nlevel = \"debug\"\n[[slot]]\nlabel = \"s\"\nkind = \"cert-store\"\npath = {:?}\nwritable = false\nrefresh_seconds = 30\n",
                dir.path()
            ),
            Source::Embedded,
        )
        .unwrap();
        assert_eq!(c.log.level, Some(LogLevel::Debug));
        assert_eq!(c.slots[0].refresh_seconds, 30);
        assert!(matches!(
            c.slots[0].store,
            StoreConfig::Directory {
                writable: false,
                ..
            }
        ));
    }
}
