//! Vault access policies (a vault whose `enableRbacAuthorization` is false): per principal,
//! lists of key, certificate and secret permissions; role assignments do not apply to such
//! a vault. A denied request gets the service's 403 Forbidden / AccessDenied, whose message
//! names the object kind and the permission (as quoted in public reports, e.g. "The user,
//! group or application 'appid=…;oid=…;iss=…' does not have secrets get permission on key
//! vault 'name;location=eastus'. For help resolving this issue, please see
//! https://go.microsoft.com/fwlink/?linkid=2125287").

use std::collections::HashSet;

use crate::reply::ApiError;
use crate::routing::Operation;

/// The permissions the service accepts in a policy, by object kind (lower case).
const KEY_PERMISSIONS: &[&str] = &[
    "all",
    "backup",
    "create",
    "decrypt",
    "delete",
    "encrypt",
    "get",
    "getrotationpolicy",
    "import",
    "list",
    "purge",
    "recover",
    "release",
    "restore",
    "rotate",
    "setrotationpolicy",
    "sign",
    "unwrapkey",
    "update",
    "verify",
    "wrapkey",
];
const CERTIFICATE_PERMISSIONS: &[&str] = &[
    "all",
    "backup",
    "create",
    "delete",
    "deleteissuers",
    "get",
    "getissuers",
    "import",
    "list",
    "listissuers",
    "managecontacts",
    "manageissuers",
    "purge",
    "recover",
    "restore",
    "setissuers",
    "update",
];
const SECRET_PERMISSIONS: &[&str] = &[
    "all", "backup", "delete", "get", "list", "purge", "recover", "restore", "set",
];

/// The object kinds of a policy, as the service's message names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    Keys,
    Certificates,
    Secrets,
}

impl Object {
    fn as_str(self) -> &'static str {
        match self {
            Object::Keys => "keys",
            Object::Certificates => "certificates",
            Object::Secrets => "secrets",
        }
    }

    fn accepted(self) -> &'static [&'static str] {
        match self {
            Object::Keys => KEY_PERMISSIONS,
            Object::Certificates => CERTIFICATE_PERMISSIONS,
            Object::Secrets => SECRET_PERMISSIONS,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AccessPolicy {
    pub client_id: String,
    /// Lower-case vault name.
    pub vault: String,
    pub keys: Vec<String>,
    pub certificates: Vec<String>,
    pub secrets: Vec<String>,
}

impl AccessPolicy {
    /// Checks every permission name against the service's lists; the error names the
    /// permission and what is accepted.
    pub fn validate(&self) -> Result<(), String> {
        for (object, list) in [
            (Object::Keys, &self.keys),
            (Object::Certificates, &self.certificates),
            (Object::Secrets, &self.secrets),
        ] {
            if let Some(p) = list
                .iter()
                .find(|p| !object.accepted().contains(&p.to_ascii_lowercase().as_str()))
            {
                return Err(format!(
                    "{} permission '{p}': accepted are {}",
                    object.as_str(),
                    object.accepted().join(", ")
                ));
            }
        }
        Ok(())
    }

    fn grants(&self, object: Object, permission: &str) -> bool {
        let list = match object {
            Object::Keys => &self.keys,
            Object::Certificates => &self.certificates,
            Object::Secrets => &self.secrets,
        };
        list.iter()
            .any(|p| p.eq_ignore_ascii_case(permission) || p.eq_ignore_ascii_case("all"))
    }
}

#[derive(Debug, Default)]
pub struct Policies {
    /// Lower-case names of the vaults that use access policies.
    pub vaults: HashSet<String>,
    pub policies: Vec<AccessPolicy>,
}

impl Policies {
    /// Whether vault `name` uses access policies rather than Azure RBAC.
    pub fn governs(&self, name: &str) -> bool {
        self.vaults.contains(&name.to_ascii_lowercase())
    }

    pub fn allowed(&self, client_id: &str, vault: &str, object: Object, permission: &str) -> bool {
        self.policies.iter().any(|p| {
            p.client_id.eq_ignore_ascii_case(client_id)
                && p.vault.eq_ignore_ascii_case(vault)
                && p.grants(object, permission)
        })
    }
}

/// The permission a vault operation needs under access policies (None: no check).
pub fn permission(op: Operation) -> Option<(Object, &'static str)> {
    use Object::{Certificates as C, Keys as K, Secrets as S};
    use Operation as O;
    Some(match op {
        O::CreateKey => (K, "create"),
        O::ImportKey => (K, "import"),
        O::GetKey | O::GetDeletedKey | O::Rng => (K, "get"),
        O::ListKeys | O::ListKeyVersions | O::ListDeletedKeys => (K, "list"),
        O::UpdateKey => (K, "update"),
        O::DeleteKey => (K, "delete"),
        O::RecoverKey => (K, "recover"),
        O::PurgeKey => (K, "purge"),
        O::BackupKey => (K, "backup"),
        O::RestoreKey => (K, "restore"),
        O::RotateKey => (K, "rotate"),
        O::GetRotationPolicy => (K, "getrotationpolicy"),
        O::SetRotationPolicy => (K, "setrotationpolicy"),
        O::Sign => (K, "sign"),
        O::Verify => (K, "verify"),
        O::Encrypt => (K, "encrypt"),
        O::Decrypt => (K, "decrypt"),
        O::WrapKey => (K, "wrapKey"),
        O::UnwrapKey => (K, "unwrapKey"),
        O::Release => (K, "release"),
        O::CreateCertificate => (C, "create"),
        O::ImportCertificate => (C, "import"),
        O::GetCertificate
        | O::GetCertificateOperation
        | O::GetCertificatePolicy
        | O::GetDeletedCertificate => (C, "get"),
        O::ListCertificates | O::ListCertificateVersions | O::ListDeletedCertificates => {
            (C, "list")
        }
        O::UpdateCertificate | O::UpdateCertificatePolicy => (C, "update"),
        O::DeleteCertificate => (C, "delete"),
        O::RecoverCertificate => (C, "recover"),
        O::PurgeCertificate => (C, "purge"),
        O::BackupCertificate => (C, "backup"),
        O::RestoreCertificate => (C, "restore"),
        O::GetSecret => (S, "get"),
        O::Token | O::Unsupported => return None,
    })
}

/// The service's 403 for a permission no access policy grants.
pub fn denial(
    object: Object,
    permission: &str,
    vault: &str,
    region: &str,
    appid: &str,
    oid: &str,
    tenant: &str,
) -> ApiError {
    ApiError::forbidden(format!(
        "The user, group or application 'appid={appid};oid={oid};iss=https://sts.windows.net/{tenant}/' does not have {} {permission} permission on key vault '{vault};location={region}'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
        object.as_str()
    ))
    .inner("AccessDenied")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_grant_what_they_list_and_name_what_they_miss() {
        let p = AccessPolicy {
            client_id: "app".into(),
            vault: "v".into(),
            keys: vec!["Get".into(), "List".into()],
            certificates: vec!["all".into()],
            secrets: vec![],
        };
        p.validate().unwrap();
        let policies = Policies {
            vaults: ["v".to_string()].into(),
            policies: vec![p],
        };
        assert!(policies.governs("V"));
        assert!(policies.allowed("app", "v", Object::Keys, "get"));
        assert!(!policies.allowed("app", "v", Object::Keys, "sign"));
        assert!(!policies.allowed("other", "v", Object::Keys, "get"));
        assert!(policies.allowed("app", "v", Object::Certificates, "backup"));
        assert!(!policies.allowed("app", "v", Object::Secrets, "get"));
        assert_eq!(
            permission(Operation::UnwrapKey),
            Some((Object::Keys, "unwrapKey"))
        );
        let bad = AccessPolicy {
            keys: vec!["signn".into()],
            ..policies.policies[0].clone()
        };
        assert!(bad.validate().unwrap_err().contains("'signn'"));
    }
}
