//! Role-based access control from the configuration: built-in Key Vault and Managed HSM
//! roles as lists of data-action patterns, assignments per container or per key, and
//! the 403 ForbiddenByRbac answer that names the denied action (FACTS.md §3, §5).

use crate::reply::ApiError;
use crate::routing::Operation;
use crate::state::Kind;

const VAULT: &str = "Microsoft.KeyVault/vaults/";
const HSM: &str = "Microsoft.KeyVault/managedHsm/";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    KvAdministrator,
    KvCryptoOfficer,
    KvCryptoUser,
    KvCryptoServiceEncryptionUser,
    KvCertificatesOfficer,
    KvCertificateUser,
    KvSecretsOfficer,
    KvSecretsUser,
    KvReader,
    HsmCryptoUser,
    HsmCryptoOfficer,
    HsmCryptoAuditor,
    HsmCryptoServiceEncryptionUser,
    HsmBackup,
    HsmRestore,
}

impl Role {
    pub fn parse(name: &str) -> Option<Role> {
        let all = [
            ("Key Vault Administrator", Role::KvAdministrator),
            ("Key Vault Crypto Officer", Role::KvCryptoOfficer),
            ("Key Vault Crypto User", Role::KvCryptoUser),
            (
                "Key Vault Crypto Service Encryption User",
                Role::KvCryptoServiceEncryptionUser,
            ),
            (
                "Key Vault Certificates Officer",
                Role::KvCertificatesOfficer,
            ),
            ("Key Vault Certificate User", Role::KvCertificateUser),
            ("Key Vault Secrets Officer", Role::KvSecretsOfficer),
            ("Key Vault Secrets User", Role::KvSecretsUser),
            ("Key Vault Reader", Role::KvReader),
            ("Managed HSM Crypto User", Role::HsmCryptoUser),
            ("Managed HSM Crypto Officer", Role::HsmCryptoOfficer),
            ("Managed HSM Crypto Auditor", Role::HsmCryptoAuditor),
            (
                "Managed HSM Crypto Service Encryption User",
                Role::HsmCryptoServiceEncryptionUser,
            ),
            ("Managed HSM Backup", Role::HsmBackup),
            ("Managed HSM Restore", Role::HsmRestore),
        ];
        all.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, r)| *r)
    }

    pub fn kind(self) -> Kind {
        match self {
            Role::HsmCryptoUser
            | Role::HsmCryptoOfficer
            | Role::HsmCryptoAuditor
            | Role::HsmCryptoServiceEncryptionUser
            | Role::HsmBackup
            | Role::HsmRestore => Kind::Hsm,
            _ => Kind::Vault,
        }
    }

    /// Data actions granted, relative to the container prefix; `*` matches anything.
    fn patterns(self) -> &'static [&'static str] {
        match self {
            Role::KvAdministrator => &["*"],
            Role::KvCryptoOfficer => &["keys/*", "keyrotationpolicies/*", "rng/action"],
            Role::KvCryptoUser => &[
                "keys/read",
                "keys/update/action",
                "keys/backup/action",
                "keys/encrypt/action",
                "keys/decrypt/action",
                "keys/wrap/action",
                "keys/unwrap/action",
                "keys/sign/action",
                "keys/verify/action",
                "rng/action",
            ],
            Role::KvCryptoServiceEncryptionUser => {
                &["keys/read", "keys/wrap/action", "keys/unwrap/action"]
            }
            Role::KvCertificatesOfficer => &[
                "certificates/*",
                "certificatecas/*",
                "certificatecontacts/write",
            ],
            Role::KvCertificateUser => &[
                "certificates/read",
                "secrets/getSecret/action",
                "secrets/readMetadata/action",
            ],
            Role::KvSecretsOfficer => &["secrets/*"],
            Role::KvSecretsUser => &["secrets/getSecret/action", "secrets/readMetadata/action"],
            Role::KvReader => &["*/read", "secrets/readMetadata/action"],
            Role::HsmCryptoUser => &[
                "keys/read/action",
                "keys/write/action",
                "keys/create",
                "keys/import/action",
                "keys/delete",
                "keys/deletedKeys/read/action",
                "keys/backup/action",
                "keys/restore/action",
                "keys/release/action",
                "keys/rotate/action",
                "keys/encrypt/action",
                "keys/decrypt/action",
                "keys/wrap/action",
                "keys/unwrap/action",
                "keys/sign/action",
                "keys/verify/action",
                "rng/action",
            ],
            Role::HsmCryptoOfficer => &[
                "keys/read/action",
                "keys/deletedKeys/*",
                "keys/export/action",
                "roleAssignments/*",
                "roleDefinitions/*",
            ],
            Role::HsmCryptoAuditor => &["keys/read/action", "keys/deletedKeys/read/action"],
            Role::HsmCryptoServiceEncryptionUser => {
                &["keys/read/action", "keys/wrap/action", "keys/unwrap/action"]
            }
            Role::HsmBackup => &["keys/read/action", "keys/backup/action", "backup/*"],
            Role::HsmRestore => &["keys/read/action", "keys/restore/action", "restore/*"],
        }
    }

    pub fn grants(self, action: &str) -> bool {
        let rel = action
            .strip_prefix(VAULT)
            .or_else(|| action.strip_prefix(HSM))
            .unwrap_or(action);
        let prefix_ok = match self.kind() {
            Kind::Vault => action.starts_with(VAULT),
            Kind::Hsm => action.starts_with(HSM),
        };
        prefix_ok && self.patterns().iter().any(|p| glob(p, rel))
    }
}

/// `*` matches any run of characters, `/` included.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(text),
        Some((head, tail)) => {
            if text.len() < head.len() || !text[..head.len()].eq_ignore_ascii_case(head) {
                return false;
            }
            let rest = &text[head.len()..];
            (0..=rest.len()).any(|i| rest.is_char_boundary(i) && glob(tail, &rest[i..]))
        }
    }
}

/// The data action an operation needs.
pub fn action(kind: Kind, op: Operation) -> String {
    use Operation as O;
    let rel = match kind {
        Kind::Vault => match op {
            O::CreateKey => "keys/create/action",
            O::ImportKey => "keys/import/action",
            O::GetKey
            | O::ListKeys
            | O::ListKeyVersions
            | O::GetDeletedKey
            | O::ListDeletedKeys => "keys/read",
            O::UpdateKey => "keys/update/action",
            O::DeleteKey => "keys/delete",
            O::RecoverKey => "keys/recover/action",
            O::PurgeKey => "keys/purge/action",
            O::BackupKey => "keys/backup/action",
            O::RestoreKey => "keys/restore/action",
            O::RotateKey => "keys/rotate/action",
            O::GetRotationPolicy => "keyrotationpolicies/read",
            O::SetRotationPolicy => "keyrotationpolicies/write",
            O::Sign => "keys/sign/action",
            O::Verify => "keys/verify/action",
            O::Encrypt => "keys/encrypt/action",
            O::Decrypt => "keys/decrypt/action",
            O::WrapKey => "keys/wrap/action",
            O::UnwrapKey => "keys/unwrap/action",
            O::Release => "keys/release/action",
            O::Rng => "rng/action",
            O::CreateCertificate => "certificates/create/action",
            O::ImportCertificate => "certificates/import/action",
            O::DeleteCertificate => "certificates/delete",
            O::UpdateCertificate | O::UpdateCertificatePolicy => "certificates/update/action",
            O::PurgeCertificate => "certificates/purge/action",
            O::RecoverCertificate => "certificates/recover/action",
            O::BackupCertificate => "certificates/backup/action",
            O::RestoreCertificate => "certificates/restore/action",
            O::GetSecret => "secrets/getSecret/action",
            _ => "certificates/read",
        },
        Kind::Hsm => match op {
            O::CreateKey => "keys/create",
            O::ImportKey => "keys/import/action",
            O::UpdateKey | O::SetRotationPolicy => "keys/write/action",
            O::DeleteKey => "keys/delete",
            O::GetDeletedKey | O::ListDeletedKeys => "keys/deletedKeys/read/action",
            O::RecoverKey => "keys/deletedKeys/recover/action",
            O::PurgeKey => "keys/deletedKeys/delete",
            O::BackupKey => "keys/backup/action",
            O::RestoreKey => "keys/restore/action",
            O::RotateKey => "keys/rotate/action",
            O::Sign => "keys/sign/action",
            O::Verify => "keys/verify/action",
            O::Encrypt => "keys/encrypt/action",
            O::Decrypt => "keys/decrypt/action",
            O::WrapKey => "keys/wrap/action",
            O::UnwrapKey => "keys/unwrap/action",
            O::Release => "keys/release/action",
            O::Rng => "rng/action",
            _ => "keys/read/action",
        },
    };
    let prefix = match kind {
        Kind::Vault => VAULT,
        Kind::Hsm => HSM,
    };
    format!("{prefix}{rel}")
}

#[derive(Debug, Clone)]
pub struct Assignment {
    pub client_id: String,
    pub role: Role,
    pub kind: Kind,
    /// Lowercase container name.
    pub container: String,
    /// Lowercase key name, or None for the whole container.
    pub key: Option<String>,
}

impl Assignment {
    /// Parses "vault", "hsm", "vault:NAME", "hsm:NAME", optionally + "/keys[/KEY]".
    pub fn parse_scope(
        scope: &str,
        default_vault: &str,
        default_hsm: &str,
    ) -> Result<(Kind, String, Option<String>), String> {
        let (head, rest) = match scope.find('/') {
            Some(i) => (&scope[..i], &scope[i..]),
            None => (scope, ""),
        };
        let (kind, name) = match head.split_once(':') {
            Some(("vault", n)) if !n.is_empty() => (Kind::Vault, n.to_string()),
            Some(("hsm", n)) if !n.is_empty() => (Kind::Hsm, n.to_string()),
            None if head == "vault" => (Kind::Vault, default_vault.to_string()),
            None if head == "hsm" => (Kind::Hsm, default_hsm.to_string()),
            _ => {
                return Err(format!(
                    "scope '{scope}': expected vault[:NAME] or hsm[:NAME], optionally followed by /keys/KEY"
                ));
            }
        };
        let key = match rest.trim_end_matches('/') {
            "" => None,
            "/keys" if kind == Kind::Hsm => None,
            r => match r.strip_prefix("/keys/") {
                Some(k) if !k.is_empty() && !k.contains('/') => Some(k.to_ascii_lowercase()),
                _ => {
                    return Err(format!(
                        "scope '{scope}': the part after the container must be /keys/KEY"
                    ));
                }
            },
        };
        Ok((kind, name.to_ascii_lowercase(), key))
    }
}

#[derive(Debug, Default)]
pub struct Rbac {
    pub assignments: Vec<Assignment>,
}

impl Rbac {
    pub fn allowed(
        &self,
        client_id: &str,
        kind: Kind,
        container: &str,
        key: Option<&str>,
        action: &str,
    ) -> bool {
        self.assignments.iter().any(|a| {
            a.client_id.eq_ignore_ascii_case(client_id)
                && a.kind == kind
                && a.container.eq_ignore_ascii_case(container)
                && match (&a.key, key) {
                    (None, _) => true,
                    (Some(k), Some(want)) => k.eq_ignore_ascii_case(want),
                    (Some(_), None) => false,
                }
                && a.role.grants(action)
        })
    }
}

/// Azure's 403 for an action no role assignment grants.
pub fn denial(
    kind: Kind,
    container: &str,
    key: Option<&str>,
    action: &str,
    appid: &str,
    oid: &str,
    tenant: &str,
) -> ApiError {
    let resource = match kind {
        Kind::Vault => {
            let mut r = format!(
                "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/kv-emulator/providers/microsoft.keyvault/vaults/{}",
                container.to_ascii_lowercase()
            );
            if let Some(k) = key {
                r.push_str(&format!("/keys/{}", k.to_ascii_lowercase()));
            }
            r
        }
        Kind::Hsm => match key {
            Some(k) => format!("/keys/{}", k.to_ascii_lowercase()),
            None => "/".to_string(),
        },
    };
    let message = format!(
        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={appid};oid={oid};iss=https://sts.windows.net/{tenant}/\r\nAction: '{action}'\r\nResource: '{resource}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: {container};location=westus\r\n"
    );
    ApiError::forbidden(message).inner("ForbiddenByRbac")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_they_should() {
        let sign = action(Kind::Vault, Operation::Sign);
        assert_eq!(sign, "Microsoft.KeyVault/vaults/keys/sign/action");
        assert!(Role::KvCryptoUser.grants(&sign));
        assert!(Role::KvCryptoOfficer.grants(&sign));
        assert!(!Role::KvReader.grants(&sign));
        assert!(Role::KvReader.grants(&action(Kind::Vault, Operation::GetKey)));
        assert!(!Role::KvCryptoUser.grants(&action(Kind::Vault, Operation::CreateKey)));
        assert!(!Role::KvCertificatesOfficer.grants(&action(Kind::Vault, Operation::GetSecret)));
        let hsm_sign = action(Kind::Hsm, Operation::Sign);
        assert!(Role::HsmCryptoUser.grants(&hsm_sign));
        assert!(!Role::KvCryptoUser.grants(&hsm_sign));
        assert!(!Role::HsmCryptoUser.grants(&action(Kind::Hsm, Operation::PurgeKey)));
        assert!(Role::HsmCryptoOfficer.grants(&action(Kind::Hsm, Operation::PurgeKey)));
        assert!(!Role::HsmCryptoAuditor.grants(&hsm_sign));
    }

    #[test]
    fn key_scoped_assignment_applies_to_that_key_only() {
        let rbac = Rbac {
            assignments: vec![Assignment {
                client_id: "app".into(),
                role: Role::KvCryptoUser,
                kind: Kind::Vault,
                container: "v".into(),
                key: Some("k1".into()),
            }],
        };
        let sign = action(Kind::Vault, Operation::Sign);
        assert!(rbac.allowed("APP", Kind::Vault, "v", Some("K1"), &sign));
        assert!(!rbac.allowed("app", Kind::Vault, "v", Some("k2"), &sign));
        assert!(!rbac.allowed(
            "app",
            Kind::Vault,
            "v",
            None,
            &action(Kind::Vault, Operation::ListKeys)
        ));
    }

    #[test]
    fn scopes_parse() {
        assert_eq!(
            Assignment::parse_scope("vault", "dv", "dh").unwrap(),
            (Kind::Vault, "dv".into(), None)
        );
        assert_eq!(
            Assignment::parse_scope("hsm:H/keys/K", "dv", "dh").unwrap(),
            (Kind::Hsm, "h".into(), Some("k".into()))
        );
        assert!(Assignment::parse_scope("vaults/x", "dv", "dh").is_err());
    }
}
