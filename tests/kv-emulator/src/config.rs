//! The `--config` TOML file: principals, role assignments, throttling and timing knobs.
//! Every field is optional; unknown fields are errors that name the file and the key.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Lifetime of issued access tokens, seconds (default 3600).
    pub token_lifetime_s: Option<u64>,
    /// Soft-delete retention reported in `recoverableDays` (7..=90, default 7).
    pub recoverable_days: Option<u32>,
    /// How long a deletion stays "in progress" (409 ObjectIsBeingDeleted), ms (default 500).
    pub delete_window_ms: Option<u64>,
    /// Polls of a new certificate's pending operation answered `inProgress` before it
    /// completes (default 0: the first poll sees `completed`).
    pub cert_pending_polls: Option<u32>,
    /// `Retry-After` of a certificate create's 202 answer, seconds (default 10, as recorded).
    pub cert_retry_after_s: Option<u64>,
    /// Largest accepted request body, bytes (default 262144); larger → 400 BadParameter.
    pub max_body_bytes: Option<usize>,
    /// Offer HTTP/2 by ALPN as well as HTTP/1.1 (default false).
    pub http2: Option<bool>,
    /// Give the default principal its default roles (default true).
    pub default_principal_roles: Option<bool>,
    /// The client id that the managed-identity endpoint issues tokens for (default: the
    /// default principal).
    pub managed_identity_client_id: Option<String>,
    /// More vaults and Managed HSMs to serve besides `--vault` and `--hsm`.
    #[serde(default)]
    pub extra_vaults: Vec<String>,
    #[serde(default)]
    pub extra_hsms: Vec<String>,
    /// Vaults of the Standard tier, by name: they refuse HSM keys (default: every vault is
    /// Premium).
    #[serde(default)]
    pub standard_vaults: Vec<String>,
    /// Vaults whose HSM keys report `hsmPlatform` "1" (FIPS 140-2 Level 2; default "2").
    #[serde(default)]
    pub hsm_platform_1_vaults: Vec<String>,
    /// The Azure region each vault or Managed HSM reports in `x-ms-keyvault-region`, by
    /// name (default "westus", as recorded).
    #[serde(default)]
    pub regions: std::collections::HashMap<String, String>,
    #[serde(default)]
    pub throttle: ThrottleConfig,
    #[serde(default, rename = "principal")]
    pub principals: Vec<PrincipalConfig>,
    #[serde(default, rename = "role_assignment")]
    pub role_assignments: Vec<RoleAssignmentConfig>,
    /// Vaults that use access policies instead of Azure RBAC (`enableRbacAuthorization`
    /// false), by name: role assignments do not apply to them, `[[access_policy]]` does.
    #[serde(default)]
    pub access_policy_vaults: Vec<String>,
    #[serde(default, rename = "access_policy")]
    pub access_policies: Vec<AccessPolicyConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessPolicyConfig {
    /// A principal's client id.
    pub principal: String,
    /// The vault (one of `access_policy_vaults`; default: the `--vault` one).
    pub vault: Option<String>,
    /// Permissions, as `az keyvault set-policy` names them ("get", "list", "sign", "all", …).
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub certificates: Vec<String>,
    #[serde(default)]
    pub secrets: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Throttle vaults at all (default true).
    pub enabled: Option<bool>,
    /// Multiplies every published limit (default 1.0; 0.01 makes RSA-2048 software keys
    /// allow 40 transactions per window).
    pub scale: Option<f64>,
    /// Send `Retry-After` with 429 answers (default true).
    pub retry_after: Option<bool>,
    /// Length of the throttling window, ms (default 10000, as published).
    pub window_ms: Option<u64>,
    /// Apply the vault's HSM-key limits to Managed HSMs too (default false: Managed HSM
    /// does not throttle cryptographic operations).
    pub hsm: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalConfig {
    pub client_id: String,
    pub client_secret: Option<String>,
    /// PEM certificate whose key signs client assertions (certificate credential).
    pub certificate_file: Option<PathBuf>,
    /// `sub` accepted in federated (workload identity) assertions the emulator issued.
    pub federated_subject: Option<String>,
    /// Object id reported in tokens and 403 messages (default: derived from client id).
    pub object_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleAssignmentConfig {
    /// A principal's client id.
    pub principal: String,
    /// A built-in role name, e.g. "Key Vault Crypto User", "Managed HSM Crypto User".
    pub role: String,
    /// "vault", "hsm" (the default ones), "vault:NAME", "hsm:NAME", optionally followed
    /// by "/keys/KEY" (or "/keys" on an HSM) to narrow it.
    pub scope: String,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let cfg: Config = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(days) = cfg.recoverable_days {
            if !(7..=90).contains(&days) {
                return Err(format!(
                    "{}: recoverable_days = {days}: accepted values are 7 to 90",
                    path.display()
                ));
            }
        }
        if let Some(scale) = cfg.throttle.scale {
            if !(scale > 0.0 && scale.is_finite()) {
                return Err(format!(
                    "{}: throttle.scale = {scale}: must be a positive number",
                    path.display()
                ));
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_readme_example_and_rejects_unknown_keys() {
        let cfg: Config = toml::from_str(
            r#"
token_lifetime_s = 600
[throttle]
scale = 0.01
retry_after = false
[[principal]]
client_id = "reader"
client_secret = "reader-secret"
[[role_assignment]]
principal = "reader"
role = "Key Vault Reader"
scope = "vault"
"#,
        )
        .unwrap();
        assert_eq!(cfg.principals.len(), 1);
        assert_eq!(cfg.throttle.scale, Some(0.01));
        assert!(toml::from_str::<Config>("bogus = 1").is_err());
    }
}
