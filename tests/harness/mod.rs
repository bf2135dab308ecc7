//! The integration tests' harness: a directory store seeded with the SoftHSM2 fixture
//! keys, the path of the built library, and the Key Vault / Managed HSM emulator.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository's `softhsm-fixtures` (the harness serves the module's tests and the
/// CLI's, whose crate is `cli/`).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("softhsm-fixtures"))
        .find(|d| d.is_dir())
        .expect("softhsm-fixtures in the repository")
}

/// The built cdylib: `IDENTIFY_PKCS11_MODULE`, else the one in this test's target dir.
pub fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("IDENTIFY_PKCS11_MODULE") {
        return PathBuf::from(p);
    }
    // `cargo test` builds the cdylib into target/<profile>/deps (beside this test), and
    // only `cargo build` copies it up one level; the deps copy is the fresh one.
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let name = format!(
        "{}identify_pkcs11{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    [deps, deps.parent().unwrap_or(deps)]
        .iter()
        .map(|d| d.join(&name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} is built by cargo test beside the test executable"))
}

/// A temporary store with the fixture keys (PEM pairs and the PKCS#12 chain) and a
/// configuration file for it.
pub struct FixtureStore {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub store: PathBuf,
}

impl FixtureStore {
    /// `extra` is appended to the slot table (e.g. `pin_hash = "..."`).
    pub fn new(label: &str, extra: &str) -> FixtureStore {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("store");
        std::fs::create_dir(&store).unwrap();
        for entry in std::fs::read_dir(fixtures_dir().join("keys")).unwrap() {
            let p = entry.unwrap().path();
            std::fs::copy(&p, store.join(p.file_name().unwrap())).unwrap();
        }
        std::fs::copy(
            fixtures_dir().join("pkcs12/chain.p12"),
            store.join("chain.p12"),
        )
        .unwrap();
        let pw = dir.path().join("p12.password");
        std::fs::copy(fixtures_dir().join("pkcs12/chain.password"), &pw).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[[slot]]\nlabel = {label:?}\nkind = \"cert-store\"\npath = {store:?}\npkcs12_password_file = {pw:?}\n{extra}\n"
            ),
        )
        .unwrap();
        FixtureStore { dir, config, store }
    }
}

/// A local port nothing listens on (for unreachable-service tests).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn fixture_cert(name: &str) -> openssl::x509::X509 {
    let pem = std::fs::read(fixtures_dir().join(format!("keys/{name}.crt.pem"))).unwrap();
    openssl::x509::X509::from_pem(&pem).unwrap()
}

/// A running Key Vault / Managed HSM emulator (tests/kv-emulator, started by the shared
/// launcher tests/kv-launch), seeded with the fixture keys; stopped on drop. Its fields
/// (`dir`, `ready`) are the launcher's; failures here panic, as a test wants.
pub struct Emulator(kv_launch::Emulator);

impl std::ops::Deref for Emulator {
    type Target = kv_launch::Emulator;

    fn deref(&self) -> &kv_launch::Emulator {
        &self.0
    }
}

impl Emulator {
    /// Starts `kv-emulator` from `KV_EMULATOR` or beside this test's target directory
    /// (`cargo build -p kv-emulator` puts it there). Fails, never skips, when it is missing.
    pub fn start() -> Emulator {
        Emulator::start_with("")
    }

    /// Starts the emulator with `config` (kv-emulator's TOML; empty: its defaults).
    pub fn start_with(config: &str) -> Emulator {
        let exe = std::env::current_exe().expect("test executable path");
        let profile = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let seed_dir = fixtures_dir().join("keys");
        let emulator = kv_launch::Emulator::start(&kv_launch::Launch {
            bin: &kv_launch::default_bin(profile),
            seed_dir: &seed_dir,
            config: (!config.is_empty()).then_some(config),
            // Also ends with this process when the harness never drops it (a static).
            exit_with_this_process: true,
            log: true,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        for host in emulator
            .unresolved_hosts()
            .unwrap_or_else(|e| panic!("{e}"))
        {
            let mut hosts = std::fs::OpenOptions::new()
                .append(true)
                .open("/etc/hosts")
                .unwrap_or_else(|e| panic!("{host} does not resolve and /etc/hosts is not writable ({e}): add 127.0.0.1 {host}"));
            use std::io::Write;
            writeln!(hosts, "127.0.0.1 {host}").unwrap();
        }
        Emulator(emulator)
    }

    pub fn field(&self, name: &str) -> String {
        self.0.field(name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A configuration file with one key-vault slot labelled `label` over the vault;
    /// `extra` is appended to the slot table. It signs in as the emulator's signer
    /// principal, with the least a signing server needs (Key Vault Crypto User +
    /// Certificate User): a test that creates or deletes objects says so with
    /// `config_officer`.
    pub fn config(&self, label: &str, extra: &str) -> PathBuf {
        self.config_as(
            label,
            extra,
            &self.field("signer_client_id"),
            &self.field("signer_client_secret"),
        )
    }

    /// As `config`, signing in as the emulator's default principal (Key Vault Crypto
    /// Officer + Certificates Officer): for tests that create, import or delete.
    pub fn config_officer(&self, label: &str, extra: &str) -> PathBuf {
        self.config_as(
            label,
            extra,
            &self.field("client_id"),
            &self.field("client_secret"),
        )
    }

    /// As `config`, signing in as another principal (one of the emulator configuration's).
    pub fn config_as(&self, label: &str, extra: &str, client_id: &str, secret: &str) -> PathBuf {
        self.config_for("key-vault", label, extra, client_id, secret)
    }

    /// A configuration file with one managed-hsm slot over the emulator's HSM; `extra`
    /// is appended to the slot table (a `certificates = …` there replaces the default
    /// SQLite file in the emulator's directory).
    /// It signs in as the signer principal (Managed HSM Crypto User).
    pub fn config_hsm(&self, label: &str, extra: &str) -> PathBuf {
        self.config_for(
            "managed-hsm",
            label,
            extra,
            &self.field("signer_client_id"),
            &self.field("signer_client_secret"),
        )
    }

    /// As `config_hsm`, signing in as the default principal (Managed HSM Crypto User +
    /// Crypto Officer): for tests that purge, back up and restore.
    pub fn config_hsm_officer(&self, label: &str, extra: &str) -> PathBuf {
        self.config_for(
            "managed-hsm",
            label,
            extra,
            &self.field("client_id"),
            &self.field("client_secret"),
        )
    }

    /// As `config_hsm`, signing in as another principal.
    pub fn config_hsm_as(&self, label: &str, client_id: &str, secret: &str) -> PathBuf {
        self.config_for("managed-hsm", label, "", client_id, secret)
    }

    fn config_for(
        &self,
        kind: &str,
        label: &str,
        extra: &str,
        client_id: &str,
        secret: &str,
    ) -> PathBuf {
        let secret_file = self.dir.path().join(format!("{label}.secret"));
        std::fs::write(&secret_file, secret).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let path = self.dir.path().join(format!("{label}.toml"));
        std::fs::write(
            &path,
            format!(
                "[[slot]]\nlabel = {label:?}\nkind = {kind:?}\n{} = {:?}\nca_file = {:?}\n{}{extra}\n[slot.credential]\ntype = \"client-secret\"\ntenant_id = {:?}\nclient_id = {client_id:?}\nclient_secret_file = {secret_file:?}\nauthority_host = {:?}\n",
                if kind == "managed-hsm" { "hsm" } else { "vault" },
                self.field(if kind == "managed-hsm" { "hsm_url" } else { "vault_url" }),
                self.field("ca_file"),
                if extra.contains("certificates =") {
                    String::new()
                } else {
                    format!(
                        "certificates = \"sqlite:{}\"\n",
                        self.dir.path().join(format!("{label}.certificates.db")).display()
                    )
                },
                self.field("tenant_id"),
                self.field("authority_host"),
            ),
        )
        .unwrap();
        path
    }

    /// One admin request; the answer's JSON body (panics on a non-2xx status).
    pub fn admin(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        self.0
            .admin(method, path, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The default principal's credential and the SDK's client options (the emulator's CA
    /// and authority): another application reaching the emulator with the official SDK,
    /// outside the module.
    pub fn sdk_access(
        &self,
    ) -> (
        std::sync::Arc<azure_identity::ClientSecretCredential>,
        azure_core::http::ClientOptions,
    ) {
        use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
        use identify_pkcs11::admin::{client_options, http_client};
        let ca = std::fs::read(self.field("ca_file")).unwrap();
        let deadline = std::time::Duration::from_secs(10);
        let http = http_client(Some(&ca), deadline).unwrap();
        let options = client_options(&http, 0, deadline, Some(&self.field("authority_host")));
        let cred = ClientSecretCredential::new(
            &self.field("tenant_id"),
            self.field("client_id"),
            azure_core::credentials::Secret::new(self.field("client_secret")),
            Some(ClientSecretCredentialOptions {
                client_options: options.clone(),
            }),
        )
        .unwrap();
        (cred, options)
    }

    pub fn stats(&self) -> serde_json::Value {
        self.admin("GET", "/stats", "")
    }

    pub fn reset_stats(&self) {
        self.admin("POST", "/stats/reset", "");
    }
}

/// RSA-OAEP with SHA-256 and MGF1-SHA-256, no label (XML Encryption's key transport), by
/// OpenSSL to `key`.
pub fn oaep_sha256_encrypt(
    key: &openssl::pkey::PKeyRef<openssl::pkey::Public>,
    data: &[u8],
) -> Vec<u8> {
    let mut enc = openssl::encrypt::Encrypter::new(key).unwrap();
    enc.set_rsa_padding(openssl::rsa::Padding::PKCS1_OAEP)
        .unwrap();
    enc.set_rsa_oaep_md(openssl::hash::MessageDigest::sha256())
        .unwrap();
    enc.set_rsa_mgf1_md(openssl::hash::MessageDigest::sha256())
        .unwrap();
    let mut ct = vec![0; enc.encrypt_len(data).unwrap()];
    let n = enc.encrypt(data, &mut ct).unwrap();
    ct.truncate(n);
    ct
}
