//! Harness of the differential PKCS#11 suite (ARCHITECTURE.md §7.2): loads SoftHSM2 and
//! identify-pkcs11 through `cryptoki`, once per process, opens logged-in sessions, finds
//! the fixture objects and collects the failures of many independent cases so that one run
//! names every case and target that went wrong.
//!
//! Both modules read process-global environment variables (`SOFTHSM2_CONF`,
//! `IDENTIFY_PKCS11_CONFIG`) when they initialise, and a module can be initialised only once
//! per process, so each target is built once, inside a `OnceLock`, and shared by the test
//! threads; each test opens its own sessions.
//!
//! Environment:
//! - `SOFTHSM2_MODULE`: SoftHSM2's library (default `/usr/lib/softhsm/libsofthsm2.so`);
//! - `IDENTIFY_PKCS11_MODULE`: our library (default: the one cargo built next to this test);
//! - `IDENTIFY_PKCS11_SUITE_PEER=softhsm`: compare SoftHSM2 with itself instead of with our
//!   module (exercises the suite itself while our module cannot run);
//! - `IDENTIFY_PKCS11_SUITE_PEER=key-vault`: compare SoftHSM2 with our module over a
//!   key-vault slot on the emulator (tests/kv-emulator, seeded with the same fixture keys;
//!   `KV_EMULATOR` or the kv-emulator cargo built beside this test);
//! - `IDENTIFY_PKCS11_SUITE_PEER=managed-hsm`: the same over a managed-hsm slot, whose
//!   certificates (the fixture certificates, written with C_CreateObject at start) live in
//!   the certificate database: SQLite, or `IDENTIFY_PKCS11_SUITE_DB` (e.g. a postgres://
//!   URL).

#![allow(dead_code)] // each test crate uses a different part of the harness

#[path = "../harness/mod.rs"]
mod harness;

use std::fmt::{Debug, Display};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use openssl::pkey::{PKey, Private, Public};
use openssl::x509::X509;
use tempfile::TempDir;

/// Token label of the fixture slot on every target.
pub const TOKEN_LABEL: &str = "fixtures";
/// The fixture keys: each is a private key, a public key and a certificate labelled so.
pub const RSA_KEYS: [&str; 2] = ["rsa2048", "rsa3072"];
pub const EC_KEYS: [&str; 1] = ["p256"];
pub const ALL_KEYS: [&str; 3] = ["rsa2048", "rsa3072", "p256"];

const SOFTHSM_DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const FIXTURE_PIN: &str = "1234";

/// Which implementation a target is: expectations that differ (documented SoftHSM2
/// deviations) are keyed on this, never on the target's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    SoftHsm,
    Ours,
    /// Our module over a key-vault slot: what Key Vault cannot do is refused.
    KeyVault,
}

/// One loaded, initialised PKCS#11 module with its `fixtures` token logged in.
pub struct Target {
    pub name: &'static str,
    pub kind: Kind,
    pub pkcs11: Pkcs11,
    pub slot: Slot,
    pub pin: String,
    /// Login state belongs to the application, not the session, and ends with the last
    /// session: this one stays open so that every session a test opens is logged in.
    _login: Mutex<Session>,
    _dir: Option<TempDir>,
    /// The emulator behind a key-vault target (ends with this process).
    _emulator: Option<harness::Emulator>,
}

impl Target {
    /// SoftHSM2 with a fresh token made by `softhsm-fixtures/setup.sh`.
    pub fn softhsm() -> Result<Target, String> {
        let _loading = LOADING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let module = std::env::var("SOFTHSM2_MODULE").unwrap_or(SOFTHSM_DEFAULT_MODULE.into());
        // setup.sh needs softhsm2-util (package softhsm2) and pkcs11-tool (package opensc).
        let missing: Vec<String> = [
            (module.as_str(), "softhsm2"),
            ("softhsm2-util", "softhsm2"),
            ("pkcs11-tool", "opensc"),
        ]
        .iter()
        .filter(|(file, _)| !exists_or_on_path(file))
        .map(|(file, package)| format!("{file} (package {package})"))
        .collect();
        if !missing.is_empty() {
            return Err(format!(
                "[softhsm] SoftHSM2 is required by this suite and is not installed: {} not found. \
                 Install it: `apt-get install softhsm2 opensc` (or set SOFTHSM2_MODULE to its library)",
                missing.join(", ")
            ));
        }
        let dir = tempfile::tempdir().map_err(|e| format!("[softhsm] temp dir: {e}"))?;
        let script = fixtures_dir().join("setup.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(dir.path())
            .output()
            .map_err(|e| format!("[softhsm] running {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "[softhsm] {} {} failed ({}): {}",
                script.display(),
                dir.path().display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        set_env("SOFTHSM2_CONF", &dir.path().join("softhsm2.conf"));
        Target::load("softhsm", Kind::SoftHsm, Path::new(&module), Some(dir))
    }

    /// identify-pkcs11 with one `cert-store` slot over a copy of the fixture PEM files.
    pub fn ours() -> Result<Target, String> {
        let _loading = LOADING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = tempfile::tempdir().map_err(|e| format!("[ours] temp dir: {e}"))?;
        let config = dir.path().join("config.toml");
        let text = fixture_store_slot(dir.path(), TOKEN_LABEL)?;
        std::fs::write(&config, text).map_err(|e| format!("[ours] {}: {e}", config.display()))?;
        set_env("IDENTIFY_PKCS11_CONFIG", &config);
        let module = match std::env::var_os("IDENTIFY_PKCS11_MODULE") {
            Some(path) => PathBuf::from(path),
            None => built_module()?,
        };
        Target::load("ours", Kind::Ours, &module, Some(dir))
    }

    /// identify-pkcs11 with one `key-vault` slot on the emulator seeded with the fixtures.
    pub fn key_vault() -> Result<Target, String> {
        let _loading = LOADING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let emulator = harness::Emulator::start();
        // The suite generates and destroys keys: the officer principal. The module also
        // serves a directory and a managed-hsm slot beside it (one module, every kind).
        let config = emulator.config_officer(TOKEN_LABEL, "allow_destroy = true");
        let others = [
            fixture_store_slot(emulator.dir.path(), "dir")?,
            read_config(&emulator.config_hsm("hsm", ""))?,
        ];
        append_slots(&config, &others)?;
        set_env("IDENTIFY_PKCS11_CONFIG", &config);
        let module = match std::env::var_os("IDENTIFY_PKCS11_MODULE") {
            Some(path) => PathBuf::from(path),
            None => built_module()?,
        };
        let mut target = Target::load("key-vault", Kind::KeyVault, &module, None)?;
        target.expect_tokens(&["dir", "hsm", TOKEN_LABEL])?;
        target._emulator = Some(emulator);
        Ok(target)
    }

    /// identify-pkcs11 with one `managed-hsm` slot on the emulator (keys seeded from the
    /// fixtures), the fixture certificates stored in its certificate database through
    /// C_CreateObject.
    pub fn managed_hsm() -> Result<Target, String> {
        let _loading = LOADING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let emulator = harness::Emulator::start();
        let extra = match std::env::var("IDENTIFY_PKCS11_SUITE_DB") {
            Ok(url) => format!("allow_destroy = true\ncertificates = {url:?}"),
            Err(_) => "allow_destroy = true".into(),
        };
        let config = emulator.config_hsm(TOKEN_LABEL, &extra);
        let others = [
            fixture_store_slot(emulator.dir.path(), "dir")?,
            read_config(&emulator.config("vault", ""))?,
        ];
        append_slots(&config, &others)?;
        set_env("IDENTIFY_PKCS11_CONFIG", &config);
        let module = match std::env::var_os("IDENTIFY_PKCS11_MODULE") {
            Some(path) => PathBuf::from(path),
            None => built_module()?,
        };
        let mut target = Target::load("managed-hsm", Kind::KeyVault, &module, None)?;
        target.expect_tokens(&["dir", TOKEN_LABEL, "vault"])?;
        target._emulator = Some(emulator);
        {
            let session = target
                .pkcs11
                .open_rw_session(target.slot)
                .map_err(|e| format!("[managed-hsm] C_OpenSession: {}", describe(&e)))?;
            for label in ALL_KEYS {
                let der = fixture_cert(label)
                    .to_der()
                    .map_err(|e| format!("fixture certificate {label}: {e}"))?;
                session
                    .create_object(&[
                        Attribute::Class(ObjectClass::CERTIFICATE),
                        Attribute::CertificateType(cryptoki::object::CertificateType::X_509),
                        Attribute::Token(true),
                        Attribute::Label(label.as_bytes().to_vec()),
                        Attribute::Value(der),
                    ])
                    .map_err(|e| {
                        format!(
                            "[managed-hsm] C_CreateObject(certificate {label}): {}",
                            describe(&e)
                        )
                    })?;
            }
        }
        Ok(target)
    }

    fn load(
        name: &'static str,
        kind: Kind,
        module: &Path,
        dir: Option<TempDir>,
    ) -> Result<Target, String> {
        if !module.exists() {
            return Err(format!(
                "[{name}] module {} does not exist",
                module.display()
            ));
        }
        let pkcs11 = Pkcs11::new(module)
            .map_err(|e| format!("[{name}] loading {}: {e}", module.display()))?;
        pkcs11
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(|e| format!("[{name}] C_Initialize: {}", describe(&e)))?;
        Target::on_token(name, kind, pkcs11, dir)
    }

    /// Checks that the module serves exactly these tokens (in any order).
    fn expect_tokens(&self, labels: &[&str]) -> Result<(), String> {
        let mut found = Vec::new();
        for slot in self
            .pkcs11
            .get_slots_with_token()
            .map_err(|e| format!("[{}] C_GetSlotList: {}", self.name, describe(&e)))?
        {
            let info = self
                .pkcs11
                .get_token_info(slot)
                .map_err(|e| format!("[{}] C_GetTokenInfo: {}", self.name, describe(&e)))?;
            found.push(info.label().trim_end().to_string());
        }
        found.sort();
        let mut labels = labels.to_vec();
        labels.sort_unstable();
        if found != labels {
            return Err(format!(
                "[{}] tokens {found:?}, expected {labels:?}",
                self.name
            ));
        }
        Ok(())
    }

    /// A second view of an already initialised module (SoftHSM2 compared with itself).
    fn alias(of: &Target, name: &'static str) -> Result<Target, String> {
        Target::on_token(name, of.kind, of.pkcs11.clone(), None)
    }

    fn on_token(
        name: &'static str,
        kind: Kind,
        pkcs11: Pkcs11,
        dir: Option<TempDir>,
    ) -> Result<Target, String> {
        let slots = pkcs11
            .get_slots_with_token()
            .map_err(|e| format!("[{name}] C_GetSlotList: {}", describe(&e)))?;
        let mut labels = Vec::new();
        let mut found = None;
        for slot in slots {
            let info = pkcs11
                .get_token_info(slot)
                .map_err(|e| format!("[{name}] C_GetTokenInfo: {}", describe(&e)))?;
            let label = info.label().trim_end().to_string();
            if label == TOKEN_LABEL {
                found = Some(slot);
            }
            labels.push(label);
        }
        let slot = found.ok_or_else(|| {
            format!("[{name}] no token labelled {TOKEN_LABEL:?}; tokens: {labels:?}")
        })?;
        let session = pkcs11
            .open_rw_session(slot)
            .map_err(|e| format!("[{name}] C_OpenSession: {}", describe(&e)))?;
        match session.login(UserType::User, Some(&AuthPin::from(FIXTURE_PIN))) {
            Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(format!("[{name}] C_Login(CKU_USER): {}", describe(&e))),
        }
        Ok(Target {
            name,
            kind,
            pkcs11,
            slot,
            pin: FIXTURE_PIN.into(),
            _login: Mutex::new(session),
            _dir: dir,
            _emulator: None,
        })
    }

    /// A new read/write session, logged in through the target's login session.
    pub fn session(&'static self) -> Result<Side, String> {
        let session = self
            .pkcs11
            .open_rw_session(self.slot)
            .on(self, "C_OpenSession")?;
        Ok(Side {
            target: self,
            session,
        })
    }
}

/// One target with a session of the calling test.
pub struct Side {
    pub target: &'static Target,
    pub session: Session,
}

impl Side {
    pub fn name(&self) -> &'static str {
        self.target.name
    }

    pub fn kind(&self) -> Kind {
        self.target.kind
    }

    /// The one object of `class` labelled `label`.
    pub fn find_one(&self, class: ObjectClass, label: &str) -> Result<ObjectHandle, String> {
        let found = self
            .session
            .find_objects(&[
                Attribute::Class(class),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .on(self.target, &format!("C_FindObjects({class}, {label})"))?;
        match found[..] {
            [one] => Ok(one),
            _ => Err(format!(
                "[{}] {} objects of class {class} labelled {label:?}, expected 1",
                self.name(),
                found.len()
            )),
        }
    }

    /// The private key, public key and certificate labelled `label`.
    pub fn key(&self, label: &str) -> Result<KeyObjects, String> {
        Ok(KeyObjects {
            label: label.to_string(),
            private: self.find_one(ObjectClass::PRIVATE_KEY, label)?,
            public: self.find_one(ObjectClass::PUBLIC_KEY, label)?,
            cert: self.find_one(ObjectClass::CERTIFICATE, label)?,
        })
    }

    /// The value of one byte-string attribute (CKA_ID, CKA_MODULUS, CKA_VALUE, ...); an
    /// error names the attribute, the object and the target.
    pub fn bytes(
        &self,
        object: ObjectHandle,
        what: &str,
        attribute: AttributeType,
    ) -> Result<Vec<u8>, String> {
        let attribute = self.attribute(object, what, attribute)?;
        attribute_bytes(&attribute).ok_or_else(|| {
            format!(
                "[{}] {what}: {attribute:?} is not a byte string",
                self.name()
            )
        })
    }

    /// The value of one boolean attribute (CKA_SENSITIVE, ...).
    pub fn flag(
        &self,
        object: ObjectHandle,
        what: &str,
        attribute: AttributeType,
    ) -> Result<bool, String> {
        match self.attribute(object, what, attribute)? {
            Attribute::AlwaysSensitive(b)
            | Attribute::Decrypt(b)
            | Attribute::Encrypt(b)
            | Attribute::Extractable(b)
            | Attribute::Local(b)
            | Attribute::NeverExtractable(b)
            | Attribute::Private(b)
            | Attribute::Sensitive(b)
            | Attribute::Sign(b)
            | Attribute::Token(b)
            | Attribute::Unwrap(b)
            | Attribute::Verify(b) => Ok(b),
            other => Err(format!(
                "[{}] {what}: {other:?} is not a boolean this harness knows",
                self.name()
            )),
        }
    }

    fn attribute(
        &self,
        object: ObjectHandle,
        what: &str,
        attribute: AttributeType,
    ) -> Result<Attribute, String> {
        let context = format!("C_GetAttributeValue({what}, {attribute})");
        // get_attributes drops unavailable attributes silently; ask for the length first so
        // that a missing or sensitive attribute is reported as what it is.
        match self
            .session
            .get_attribute_info(object, &[attribute])
            .on(self.target, &context)?[..]
        {
            [AttributeInfo::Available(_)] => {}
            [ref other] => return Err(format!("[{}] {context}: {other:?}", self.name())),
            _ => {
                return Err(format!(
                    "[{}] {context}: not one answer for one attribute",
                    self.name()
                ));
            }
        }
        let mut values = self
            .session
            .get_attributes(object, &[attribute])
            .on(self.target, &context)?;
        match values.pop() {
            Some(value) if values.is_empty() => Ok(value),
            _ => Err(format!(
                "[{}] {context}: no value after a length was given",
                self.name()
            )),
        }
    }

    /// What C_GetAttributeValue says about an attribute without reading it (the length
    /// query), e.g. `AttributeInfo::Sensitive` for CKR_ATTRIBUTE_SENSITIVE.
    pub fn attribute_info(
        &self,
        object: ObjectHandle,
        what: &str,
        attribute: AttributeType,
    ) -> Result<AttributeInfo, String> {
        let context = format!("C_GetAttributeValue({what}, {attribute}, NULL)");
        let mut info = self
            .session
            .get_attribute_info(object, &[attribute])
            .on(self.target, &context)?;
        info.pop()
            .ok_or_else(|| format!("[{}] {context}: no answer", self.name()))
    }

    /// The public key of the certificate object `cert`, parsed by OpenSSL from its CKA_VALUE.
    pub fn cert_public_key(&self, cert: ObjectHandle, what: &str) -> Result<PKey<Public>, String> {
        let der = self.bytes(cert, what, AttributeType::Value)?;
        let x509 = X509::from_der(&der)
            .map_err(|e| format!("[{}] {what}: CKA_VALUE is no X.509 DER: {e}", self.name()))?;
        x509.public_key()
            .map_err(|e| format!("[{}] {what}: certificate public key: {e}", self.name()))
    }
}

/// The three objects of one fixture key on one target.
#[derive(Clone, Debug)]
pub struct KeyObjects {
    pub label: String,
    pub private: ObjectHandle,
    pub public: ObjectHandle,
    pub cert: ObjectHandle,
}

fn attribute_bytes(attribute: &Attribute) -> Option<Vec<u8>> {
    match attribute {
        Attribute::EcParams(v)
        | Attribute::EcPoint(v)
        | Attribute::Id(v)
        | Attribute::Issuer(v)
        | Attribute::Label(v)
        | Attribute::Modulus(v)
        | Attribute::PublicExponent(v)
        | Attribute::PublicKeyInfo(v)
        | Attribute::SerialNumber(v)
        | Attribute::Subject(v)
        | Attribute::Value(v) => Some(v.clone()),
        _ => None,
    }
}

/// Held while a module is configured and initialised: the environment variables one
/// module reads must not change under it while another is being set up.
static LOADING: Mutex<()> = Mutex::new(());

static SOFTHSM: OnceLock<Result<Target, String>> = OnceLock::new();
static OURS: OnceLock<Result<Target, String>> = OnceLock::new();
static SOFTHSM_PEER: OnceLock<Result<Target, String>> = OnceLock::new();

fn shared(
    cell: &'static OnceLock<Result<Target, String>>,
    make: impl FnOnce() -> Result<Target, String>,
) -> &'static Target {
    // A failed construction is kept, so that every test reports the same cause instead of
    // retrying a half-initialised module.
    match cell.get_or_init(make) {
        Ok(target) => target,
        Err(message) => panic!("{message}"),
    }
}

/// SoftHSM2, the reference.
pub fn softhsm() -> &'static Target {
    shared(&SOFTHSM, Target::softhsm)
}

/// The target compared with SoftHSM2: our module, or SoftHSM2 itself when
/// `IDENTIFY_PKCS11_SUITE_PEER=softhsm`.
pub fn peer() -> &'static Target {
    match std::env::var("IDENTIFY_PKCS11_SUITE_PEER").as_deref() {
        Ok("softhsm") => shared(&SOFTHSM_PEER, || Target::alias(softhsm(), "softhsm-peer")),
        Ok("ours") | Err(std::env::VarError::NotPresent) => shared(&OURS, Target::ours),
        Ok("key-vault") => shared(&OURS, Target::key_vault),
        Ok("managed-hsm") => shared(&OURS, Target::managed_hsm),
        Ok(other) => panic!(
            "IDENTIFY_PKCS11_SUITE_PEER={other:?}: expected \"ours\" (default), \"key-vault\", \"managed-hsm\" or \"softhsm\""
        ),
        Err(e) => panic!("IDENTIFY_PKCS11_SUITE_PEER: {e}"),
    }
}

/// Tests that create or destroy token objects hold this exclusively; all others share it.
/// SoftHSM2 deviation: with SoftHSM 2.6.1's file store, C_GenerateKeyPair of token objects
/// failed with CKR_GENERAL_ERROR in about one run in three while other test threads used
/// the token (never with the key generation test alone or one test thread).
static TOKEN_WRITES: RwLock<()> = RwLock::new(());

/// A session on each target, `[softhsm, peer]`, for one test.
pub struct Sides {
    sides: [Side; 2],
    _shared: Option<RwLockReadGuard<'static, ()>>,
    _exclusive: Option<RwLockWriteGuard<'static, ()>>,
}

impl std::ops::Deref for Sides {
    type Target = [Side; 2];

    fn deref(&self) -> &[Side; 2] {
        &self.sides
    }
}

fn open_sides() -> [Side; 2] {
    let open = |target: &'static Target| target.session().unwrap_or_else(|e| panic!("{e}"));
    [open(softhsm()), open(peer())]
}

/// Sessions for a test that only uses the fixture objects.
pub fn sides() -> Sides {
    let shared = TOKEN_WRITES
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Sides {
        sides: open_sides(),
        _shared: Some(shared),
        _exclusive: None,
    }
}

/// Sessions for a test that creates and destroys token objects: no other test runs meanwhile.
pub fn sides_exclusive() -> Sides {
    let exclusive = TOKEN_WRITES
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Sides {
        sides: open_sides(),
        _shared: None,
        _exclusive: Some(exclusive),
    }
}

#[allow(unsafe_code)] // the only way to configure a module that reads its environment
fn set_env(name: &str, value: &Path) {
    // SAFETY: called only while LOADING is held, before the module that reads the variable
    // is initialised, and never while another module initialises; the harness reads the
    // environment only through std, whose environment lock orders it with set_var.
    unsafe { std::env::set_var(name, value) };
}

fn exists_or_on_path(file: &str) -> bool {
    let path = Path::new(file);
    if path.components().count() > 1 {
        return path.exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(file).is_file()))
}

/// `softhsm-fixtures/` of the package.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("softhsm-fixtures")
}

/// The committed certificate of a fixture key.
pub fn fixture_cert(label: &str) -> X509 {
    let path = fixtures_dir().join("keys").join(format!("{label}.crt.pem"));
    let pem = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    X509::from_pem(&pem).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The committed private key of a fixture key: OpenSSL's reference results come from it.
pub fn fixture_key(label: &str) -> PKey<Private> {
    let path = fixtures_dir().join("keys").join(format!("{label}.key.pem"));
    let pem = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    PKey::private_key_from_pem(&pem).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Our library as cargo built it for this test run. The test binary is
/// `target/<profile>/deps/<test>-<hash>`; `cargo test` leaves the cdylib next to it in
/// `deps/` (only `cargo build` copies it up to `target/<profile>/`), so `deps/` is the
/// fresher one and is tried first.
fn built_module() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("[ours] current_exe: {e}"))?;
    let deps = exe
        .parent()
        .ok_or_else(|| format!("[ours] {} has no parent directory", exe.display()))?;
    let file = format!(
        "{}identify_pkcs11{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let candidates: Vec<PathBuf> = [Some(deps), deps.parent()]
        .into_iter()
        .flatten()
        .map(|dir| dir.join(&file))
        .collect();
    candidates.iter().find(|path| path.exists()).cloned().ok_or_else(|| {
        let tried: Vec<String> = candidates.iter().map(|path| path.display().to_string()).collect();
        format!(
            "[ours] our module is not built: none of {} exists; build the cdylib (crate-type \"cdylib\") \
             or set IDENTIFY_PKCS11_MODULE",
            tried.join(", ")
        )
    })
}

/// `CKR_ARGUMENTS_BAD` for `RvError::ArgumentsBad`: the spec's name, not cryptoki's prose.
pub fn ckr(rv: RvError) -> String {
    let mut name = String::from("CKR");
    for c in format!("{rv:?}").chars() {
        if c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// A cryptoki error as `C_Sign returned CKR_KEY_HANDLE_INVALID`.
pub fn describe(error: &Error) -> String {
    match error {
        Error::Pkcs11(rv, function) => format!("C_{function:?} returned {}", ckr(*rv)),
        other => other.to_string(),
    }
}

/// Error context naming the target and the call: `[softhsm] C_Sign(SHA256_RSA_PKCS, rsa2048): ...`.
pub trait On<T> {
    fn on(self, target: &Target, what: &str) -> Result<T, String>;
}

impl<T> On<T> for cryptoki::error::Result<T> {
    fn on(self, target: &Target, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("[{}] {what}: {}", target.name, describe(&e)))
    }
}

/// The PKCS#11 return value of a cryptoki error, if it has one.
pub fn rv(error: &Error) -> Option<RvError> {
    match error {
        Error::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// `result` must have failed with exactly `expected` (from whichever of the Init or the
/// operation call returned it).
pub fn expect_rv<T: Debug>(
    result: cryptoki::error::Result<T>,
    expected: RvError,
    target: &Target,
    what: &str,
) -> Result<(), String> {
    match result {
        Err(e) if rv(&e) == Some(expected) => Ok(()),
        Err(e) => Err(format!(
            "[{}] {what}: expected {}, got {}",
            target.name,
            ckr(expected),
            describe(&e)
        )),
        Ok(value) => {
            let mut value = format!("{value:?}");
            value.truncate(80);
            Err(format!(
                "[{}] {what}: expected {}, got success ({value})",
                target.name,
                ckr(expected)
            ))
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `a == b`, else an error showing both values.
pub fn same_bytes(a: &[u8], b: &[u8], what: impl Display) -> Result<(), String> {
    if a == b {
        Ok(())
    } else {
        Err(format!("{what}: differ\n    {}\n    {}", hex(a), hex(b)))
    }
}

pub fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(message()) }
}

/// Runs independent cases of one test area, keeps going after a failure, and fails the
/// test at the end with every failed case, each named with its targets and mechanism.
pub struct Cases {
    area: &'static str,
    ran: usize,
    failures: Vec<String>,
}

impl Cases {
    pub fn new(area: &'static str) -> Cases {
        Cases {
            area,
            ran: 0,
            failures: Vec::new(),
        }
    }

    pub fn case(&mut self, name: impl Display, body: impl FnOnce() -> Result<(), String>) {
        self.ran += 1;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
            .unwrap_or_else(|panic| Err(format!("panicked: {}", panic_message(&panic))));
        if let Err(message) = outcome {
            self.failures
                .push(format!("{} / {name}: {message}", self.area));
        }
    }

    pub fn finish(self) {
        assert!(self.ran > 0, "{}: no case ran", self.area);
        eprintln!(
            "{}: {} cases run, {} failed",
            self.area,
            self.ran,
            self.failures.len()
        );
        assert!(
            self.failures.is_empty(),
            "{} of {} cases failed in {} ({} vs {}):\n{}",
            self.failures.len(),
            self.ran,
            self.area,
            softhsm().name,
            peer().name,
            self.failures.join("\n")
        );
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic)".into()
    }
}

/// A `cert-store` slot table labelled `label` over a copy of the fixture PEM files in
/// `dir/store-LABEL`.
fn fixture_store_slot(dir: &Path, label: &str) -> Result<String, String> {
    let store = dir.join(format!("store-{label}"));
    std::fs::create_dir(&store).map_err(|e| format!("{}: {e}", store.display()))?;
    let keys = fixtures_dir().join("keys");
    let entries = std::fs::read_dir(&keys).map_err(|e| format!("{}: {e}", keys.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("{}: {e}", keys.display()))?
            .path();
        if path.extension().is_some_and(|x| x == "pem") {
            let to = store.join(path.file_name().expect("a read_dir entry has a file name"));
            std::fs::copy(&path, &to)
                .map_err(|e| format!("copy {} to {}: {e}", path.display(), to.display()))?;
        }
    }
    let store_path = store
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    Ok(format!(
        "[[slot]]\nlabel = \"{label}\"\nkind = \"cert-store\"\npath = \"{store_path}\"\n"
    ))
}

fn read_config(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Appends slot tables (each a `[[slot]]` with its own subtables) to a configuration file.
fn append_slots(config: &Path, slots: &[String]) -> Result<(), String> {
    let mut text = read_config(config)?;
    for s in slots {
        text.push('\n');
        text.push_str(s);
    }
    std::fs::write(config, text).map_err(|e| format!("{}: {e}", config.display()))
}
