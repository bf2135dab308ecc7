//! Shared setup of the contract tests: the running emulator (from the ready file named
//! by `KV_EMULATOR_READY`) and official Azure SDK clients configured for it. Nothing here
//! changes the SDKs: they get a custom cloud (the emulator's authority host) and an HTTP
//! transport that trusts the emulator's test CA — options every application has.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use serde_json::Value;

pub use serde_json;

/// The emulator as its ready file describes it.
pub struct Emulator {
    pub ready: Value,
    ca_pem: Vec<u8>,
}

fn field(ready: &Value, name: &str) -> String {
    ready
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("the ready file has no string field '{name}'"))
        .to_string()
}

impl Emulator {
    /// Reads `KV_EMULATOR_READY`; panics with instructions when no emulator is running,
    /// so that a contract test can never pass without one.
    pub fn from_env() -> Emulator {
        let path = std::env::var("KV_EMULATOR_READY").unwrap_or_else(|_| {
            panic!(
                "KV_EMULATOR_READY is not set. These contract tests need a running kv-emulator: \
                 run tests/kv-emulator/ci.sh, or start `kv-emulator --ready-file F` and export KV_EMULATOR_READY=F"
            )
        });
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("KV_EMULATOR_READY={path}: cannot read the ready file ({e}); is kv-emulator running?"));
        let ready: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON: {e}"));
        let admin = field(&ready, "admin_url");
        let addr = admin.trim_start_matches("http://");
        assert!(
            std::net::TcpStream::connect(addr).is_ok(),
            "kv-emulator is not running: nothing listens at {admin} (ready file {path})"
        );
        let ca_file = field(&ready, "ca_file");
        let ca_pem = std::fs::read(&ca_file).unwrap_or_else(|e| panic!("{ca_file}: {e}"));
        Emulator { ready, ca_pem }
    }

    pub fn get(&self, name: &str) -> String {
        field(&self.ready, name)
    }

    pub fn vault_url(&self) -> String {
        self.get("vault_url")
    }

    pub fn hsm_url(&self) -> String {
        self.get("hsm_url")
    }

    /// An HTTP client that trusts the emulator's CA.
    pub fn http(&self) -> reqwest::Client {
        let cert = reqwest::Certificate::from_pem(&self.ca_pem).expect("the test CA is PEM");
        reqwest::Client::builder()
            .add_root_certificate(cert)
            .build()
            .expect("reqwest client")
    }

    /// Client options for SDK clients and credentials: the emulator's cloud and CA.
    pub fn client_options(&self) -> ClientOptions {
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = self.get("authority_host");
        ClientOptions {
            transport: Some(Transport::new(Arc::new(self.http()))),
            cloud: Some(Arc::new(CloudConfiguration::from(cloud))),
            ..Default::default()
        }
    }

    pub fn credential(&self) -> Arc<dyn TokenCredential> {
        self.secret_credential(&self.get("client_id"), &self.get("client_secret"))
    }

    pub fn secret_credential(&self, client_id: &str, secret: &str) -> Arc<dyn TokenCredential> {
        ClientSecretCredential::new(
            &self.get("tenant_id"),
            client_id.to_string(),
            Secret::new(secret.to_string()),
            Some(ClientSecretCredentialOptions {
                client_options: self.client_options(),
            }),
        )
        .expect("ClientSecretCredential")
    }

    pub fn key_client(&self, hsm: bool) -> KeyClient {
        self.key_client_with(hsm, self.credential())
    }

    pub fn key_client_with(&self, hsm: bool, credential: Arc<dyn TokenCredential>) -> KeyClient {
        let url = if hsm {
            self.hsm_url()
        } else {
            self.vault_url()
        };
        let options = KeyClientOptions {
            client_options: self.client_options(),
            ..Default::default()
        };
        KeyClient::new(&url, credential, Some(options)).expect("KeyClient")
    }

    pub fn certificate_client(&self) -> CertificateClient {
        let options = CertificateClientOptions {
            client_options: self.client_options(),
            ..Default::default()
        };
        CertificateClient::new(&self.vault_url(), self.credential(), Some(options))
            .expect("CertificateClient")
    }

    /// `GET {admin_url}{path}` as JSON.
    pub async fn admin_get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.get("admin_url"));
        let text = reqwest::get(&url)
            .await
            .expect("admin API")
            .text()
            .await
            .expect("admin body");
        serde_json::from_str(&text).expect("admin JSON")
    }
}

impl Emulator {
    /// `{method} {admin_url}{path}` with a JSON body; returns the status.
    pub async fn admin_send(&self, method: reqwest::Method, path: &str, body: Value) -> u16 {
        let url = format!("{}{path}", self.get("admin_url"));
        reqwest::Client::new()
            .request(method, &url)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("admin API")
            .status()
            .as_u16()
    }
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{nanos:x}-{n}", std::process::id())
}

/// The version segment of a `kid`/`id` URL.
pub fn version_of(id: &str) -> String {
    id.rsplit('/').next().unwrap_or_default().to_string()
}

/// The repository's fixture directory.
pub fn fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../softhsm-fixtures/keys")
}
