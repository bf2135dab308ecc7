//! The shared state of one emulator process: settings resolved from the command line and
//! the config file, the containers it serves, identities, faults and counters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Principals, TokenIssuer};
use crate::faults::Faults;
use crate::rbac::Rbac;
use crate::state::{Container, Kind};
use crate::stats::Stats;

#[derive(Debug, Clone)]
pub struct Settings {
    pub token_lifetime_s: u64,
    pub recoverable_days: u32,
    pub delete_window: Duration,
    pub cert_pending_polls: u32,
    pub cert_retry_after_s: u64,
    pub max_body: usize,
    pub http2: bool,
    pub throttle_enabled: bool,
    pub throttle_scale: f64,
    pub throttle_retry_after: bool,
    pub throttle_window: Duration,
    pub throttle_hsm: bool,
    pub verbose: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            token_lifetime_s: 3600,
            recoverable_days: 7,
            delete_window: Duration::from_millis(500),
            cert_pending_polls: 0,
            cert_retry_after_s: 10,
            max_body: 256 * 1024,
            http2: false,
            throttle_enabled: true,
            throttle_scale: 1.0,
            throttle_retry_after: true,
            throttle_window: Duration::from_secs(10),
            throttle_hsm: false,
            verbose: false,
        }
    }
}

pub struct App {
    pub settings: Settings,
    /// Every vault and HSM by lowercase host name.
    pub containers: HashMap<String, Arc<Container>>,
    pub login_host: String,
    pub vault_resource: String,
    pub hsm_resource: String,
    pub issuer: TokenIssuer,
    pub principals: Principals,
    pub rbac: Rbac,
    pub policies: crate::policies::Policies,
    pub faults: Faults,
    pub stats: Stats,
    pub identity_header: String,
    pub mi_client_id: String,
    /// Encrypts key backups; derived from the tenant so that backups outlive a restart.
    pub backup_key: [u8; 32],
}

impl App {
    pub fn resource(&self, kind: Kind) -> &str {
        match kind {
            Kind::Vault => &self.vault_resource,
            Kind::Hsm => &self.hsm_resource,
        }
    }

    pub fn resources(&self) -> Vec<String> {
        vec![self.vault_resource.clone(), self.hsm_resource.clone()]
    }

    pub fn authority(&self) -> String {
        self.issuer.authority_host.clone()
    }

    /// Forgets what every throttling window has counted.
    pub fn reset_throttles(&self) {
        for c in self.containers.values() {
            *c.throttle() = crate::throttle::Throttle::new(self.settings.throttle_window);
        }
    }

    /// `recoveryLevel` for the configured retention.
    pub fn recovery_level(&self) -> &'static str {
        if self.settings.recoverable_days >= 90 {
            "Recoverable+Purgeable"
        } else {
            "CustomizedRecoverable+Purgeable"
        }
    }
}

/// The resource (token audience) of a kind of container: the parent domain of its hosts,
/// with the port when it is not 443 so that the SDKs' challenge-resource check (host and
/// port must end with the resource's) passes.
pub fn resource_url(parent: &str, port: u16) -> String {
    if port == 443 {
        format!("https://{parent}")
    } else {
        format!("https://{parent}:{port}")
    }
}
