//! Shared by the integration tests that drive the module directly: a directory store seeded
//! with the SoftHSM2 fixture keys, and the path of the built library.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("softhsm-fixtures")
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
    [deps, deps.parent().unwrap_or(deps)]
        .iter()
        .map(|d| d.join("libidentify_pkcs11.so"))
        .find(|p| p.exists())
        .expect("libidentify_pkcs11.so is built by cargo test beside the test executable")
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

pub fn fixture_cert(name: &str) -> openssl::x509::X509 {
    let pem = std::fs::read(fixtures_dir().join(format!("keys/{name}.crt.pem"))).unwrap();
    openssl::x509::X509::from_pem(&pem).unwrap()
}
