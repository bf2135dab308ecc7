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
use std::path::{Path, PathBuf};

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
    #[serde(default)]
    writable: Option<bool>,
    #[serde(default)]
    pin_hash: Option<toml::Spanned<String>>,
    #[serde(default)]
    pkcs12_password_file: Option<toml::Spanned<PathBuf>>,
    #[serde(default)]
    refresh_seconds: Option<toml::Spanned<u64>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    slot: Vec<RawSlot>,
}

/// A validated slot.
#[derive(Debug, Clone)]
pub struct SlotConfig {
    pub label: String,
    pub kind: SlotKind,
    pub store: StoreConfig,
    /// An argon2 PHC string of the user PIN; `None`: no login required.
    pub pin_hash: Option<String>,
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
}

/// Token labels are 32 bytes, blank-padded (CK_TOKEN_INFO.label).
pub const MAX_LABEL: usize = 32;
const DEFAULT_REFRESH_SECONDS: u64 = 5;

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
        // The line number and the line itself, so that the message names the key.
        let line = e
            .span()
            .map(|s| {
                let n = line_of(text, s.start);
                let content = text.lines().nth(n - 1).unwrap_or("").trim();
                format!("line {n} (`{content}`): ")
            })
            .unwrap_or_default();
        Error::Config(format!("{source}: {line}{}", e.message().trim_end()))
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
                let Some(path) = &s.path else {
                    return Err(at(
                        s.kind.span(),
                        "path",
                        "a `cert-store` slot needs `path = \"DIR\"`, the directory of PKCS#12 and PEM files".into(),
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
            SlotKind::KeyVault | SlotKind::ManagedHsm => {
                return Err(at(
                    s.kind.span(),
                    "kind",
                    format!(
                        "`{}` slots are not available in this build yet; accepted here: \"cert-store\"",
                        kind.as_str()
                    ),
                ));
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
        let refresh_seconds = match &s.refresh_seconds {
            Some(r) if *r.get_ref() == 0 || *r.get_ref() > 86_400 => {
                return Err(at(r.span(), "refresh_seconds", "must be 1 to 86400".into()));
            }
            Some(r) => *r.get_ref(),
            None => DEFAULT_REFRESH_SECONDS,
        };
        slots.push(SlotConfig {
            label,
            kind,
            store,
            pin_hash: s.pin_hash.map(|h| h.into_inner()),
            refresh_seconds,
        });
    }
    if slots.is_empty() {
        return Err(Error::Config(format!(
            "{source}: no `[[slot]]` table; add at least one (kind = \"cert-store\")"
        )));
    }
    Ok(Config {
        source,
        log: raw.log,
        slots,
    })
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

/// Checks a PIN against a PHC string: `Ok(false)` for a wrong PIN only; anything else
/// that goes wrong is an error, not a wrong PIN.
pub fn verify_pin(pin: &[u8], phc: &str) -> Result<bool> {
    use argon2::password_hash::{Error as PhcError, PasswordVerifier};
    let parsed =
        argon2::PasswordHash::new(phc).map_err(|e| Error::Config(format!("pin_hash: {e}")))?;
    match argon2::Argon2::default().verify_password(pin, &parsed) {
        Ok(()) => Ok(true),
        Err(PhcError::Password) => Ok(false),
        Err(e) => Err(Error::Internal(format!("checking the PIN: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match parse(text, Source::File("/etc/x.toml".into())) {
            Err(Error::Config(m)) => m,
            other => panic!("expected a config error, got {other:?}"),
        }
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
