//! The table from what Key Vault / Managed HSM answer to the module's errors, each with
//! one log line that says what to do. Secrets never appear: Azure's messages name
//! principals, actions and keys, not credentials.
//!
//! | service answer | Error | CK_RV |
//! |---|---|---|
//! | 401 (token refused, credential wrong) | `Remote(Auth)` | CKR_FUNCTION_FAILED |
//! | 403 ForbiddenByRbac / AccessDenied | `Remote(Denied)` | CKR_FUNCTION_FAILED |
//! | 403 KeyOperationForbidden, nbf/exp window | `KeyFunctionNotPermitted` | CKR_KEY_FUNCTION_NOT_PERMITTED |
//! | 403 disabled key, 404 | `ObjectGone` | CKR_KEY_HANDLE_INVALID |
//! | 403 on a key that backs a certificate ("associated with a certificate") | `ActionProhibited` | CKR_ACTION_PROHIBITED |
//! | 400 BadParameter (a Standard vault refusing an HSM key: named so) | `Remote(BadRequest)` | CKR_FUNCTION_FAILED |
//! | 429 after retries and the rate budget | `Remote(Throttled)` | CKR_DEVICE_ERROR |
//! | 5xx after retries, connection failure | `Remote(Unavailable)` | CKR_DEVICE_ERROR |
//! | no answer within the deadline | `Remote(Timeout)` | CKR_DEVICE_ERROR |
//! | TLS failure (untrusted certificate) | `Remote(Tls)` | CKR_FUNCTION_FAILED |

use crate::error::{Error, ServiceFailure};

/// The `error` object of a Key Vault error body.
#[derive(serde::Deserialize, Default)]
struct Body {
    error: Option<ErrorObject>,
}

#[derive(serde::Deserialize, Default)]
struct ErrorObject {
    code: Option<String>,
    message: Option<String>,
    innererror: Option<Box<ErrorObject>>,
}

/// Maps an SDK error for `what` (e.g. "sign with rsa2048/abc...") to the module's error and
/// logs one line saying what to do.
pub fn map(e: azure_core::Error, what: &str) -> Error {
    use azure_core::error::ErrorKind;
    let err = match e.kind() {
        ErrorKind::HttpResponse {
            status,
            raw_response,
            ..
        } => {
            let body: Body = raw_response
                .as_ref()
                .and_then(|r| serde_json::from_slice(r.body()).ok())
                .unwrap_or_default();
            let (code, message, inner) = match &body.error {
                Some(o) => (
                    o.code.clone().unwrap_or_default(),
                    o.message.clone().unwrap_or_default(),
                    o.innererror
                        .as_ref()
                        .and_then(|i| i.code.clone())
                        .unwrap_or_default(),
                ),
                None => Default::default(),
            };
            let detail = one_line(&message);
            match u16::from(*status) {
                400..=499 if message.contains("standard vault") => Error::Remote(
                    ServiceFailure::BadRequest,
                    format!(
                        "{what}: the vault is of the Standard tier, which keeps no HSM keys: use a Premium vault, or set hsm_keys = false (and no require_hsm) on this slot ({detail})"
                    ),
                ),
                401 => Error::Remote(ServiceFailure::Auth, format!("{what}: 401 {code} {detail}")),
                // The operation is not one the key allows (key_ops), or the key is outside
                // its validity window (nbf/exp: sign, encrypt and wrap are refused there).
                403 if inner == "KeyOperationForbidden"
                    || message.contains("not permitted")
                    || message.contains("expired key")
                    || message.contains("not yet valid") =>
                {
                    tracing::warn!("{what}: 403 {inner}: {detail}");
                    Error::KeyFunctionNotPermitted
                }
                // A key that backs a vault certificate: backed up, restored and deleted only
                // through the certificate (not a missing permission).
                403 if message.contains("associated with a certificate") => {
                    Error::ActionProhibited(format!(
                        "{what}: the key backs a vault certificate; the vault allows this only through the certificate ({detail})"
                    ))
                }
                403 if message.contains("disabled") || inner.contains("Disabled") => {
                    Error::ObjectGone(format!(
                        "{what}: the key version is disabled in the vault ({detail})"
                    ))
                }
                403 => Error::Remote(ServiceFailure::Denied, denied(what, &inner, &message)),
                404 => Error::ObjectGone(format!("{what}: not found in the vault ({detail})")),
                400 => Error::Remote(
                    ServiceFailure::BadRequest,
                    format!("{what}: 400 {code}: {detail}"),
                ),
                429 => Error::Remote(
                    ServiceFailure::Throttled,
                    format!("{what}: 429 {code}: {detail}"),
                ),
                s => Error::Remote(
                    ServiceFailure::Unavailable,
                    format!("{what}: HTTP {s} {code}: {detail}"),
                ),
            }
        }
        _ => {
            let text = format!("{e}");
            let chain = crate::error::source_chain(&e);
            if chain.contains("certificate")
                || chain.contains("UnknownIssuer")
                || chain.contains("tls")
            {
                Error::Remote(ServiceFailure::Tls, format!("{what}: {text}: {chain}"))
            } else if chain.contains("timed out") || chain.contains("deadline") {
                Error::Remote(ServiceFailure::Timeout, format!("{what}: {text}: {chain}"))
            } else if matches!(e.kind(), ErrorKind::Credential) && transient_credential(&e) {
                // The token endpoint failing (5xx, 429, Entra's "transient error"
                // AADSTS90033, `temporarily_unavailable`) is an outage, not bad credentials.
                Error::Remote(
                    ServiceFailure::Unavailable,
                    format!("{what}: token endpoint unavailable: {text}: {chain}"),
                )
            } else if matches!(e.kind(), ErrorKind::Credential) {
                Error::Remote(ServiceFailure::Auth, format!("{what}: {text}: {chain}"))
            } else {
                Error::Remote(
                    ServiceFailure::Unavailable,
                    format!("{what}: {text}: {chain}"),
                )
            }
        }
    };
    if let Error::Remote(kind, m) = &err {
        tracing::error!("{m} — {}", kind.advice());
    }
    err
}

/// The text of a 403 that denies the caller: what is missing and the exact command that
/// grants it. Azure RBAC (ForbiddenByRbac) names the data action and the resource, so the
/// least built-in role that grants it is named with its `az role assignment create`; a
/// vault with access policies (AccessDenied) names the object kind and the permission, so
/// `az keyvault set-policy` is given with that permission among those a slot needs.
fn denied(what: &str, inner: &str, message: &str) -> String {
    if let Some(d) = policy_denial(message) {
        return format!(
            "{what}: 403 {inner}: the principal ({}) has no {} permission \"{}\" in the access policies of vault {}; grant it: {}",
            d.caller,
            d.object,
            d.permission,
            d.vault,
            d.set_policy()
        );
    }
    let line = |key: &str| {
        message.split(['\r', '\n']).find_map(|l| {
            let l = l.trim().strip_prefix(key)?.trim();
            Some(l.trim_matches('\'').to_owned())
        })
    };
    match line("Action:") {
        Some(action) => {
            let caller = line("Caller:");
            let role = role_for(&action).map_or_else(String::new, |r| {
                // A Managed HSM keeps its own role assignments (local RBAC).
                let hsm = action.contains("/managedHsm/").then(|| {
                    let name = line("Vault:");
                    let name = name.as_deref().and_then(|v| v.split(';').next());
                    format!(
                        "az keyvault role assignment create --hsm-name {}",
                        name.unwrap_or("<hsm name>")
                    )
                });
                let grant = match (caller.as_deref().and_then(object_id), line("Resource:")) {
                    (Some(oid), Some(scope)) => format!(
                        ": {} --role \"{r}\" --assignee-object-id {oid} --scope {scope}",
                        hsm.unwrap_or_else(|| "az role assignment create".into())
                    ),
                    _ => String::new(),
                };
                format!("; the built-in role \"{r}\" grants it{grant}")
            });
            let caller = caller.map(|c| format!(" ({c})")).unwrap_or_default();
            format!("{what}: 403 {inner}: the principal{caller} may not perform {action}{role}")
        }
        None => format!("{what}: 403 {inner}: {}", one_line(message)),
    }
}

/// The `oid=` of a caller description (`appid=…;oid=…;iss=…`): the principal's object
/// id, which names a user signed in with the Azure CLI as well as an application (whose
/// `appid` would be the Azure CLI's own for such a user).
fn object_id(caller: &str) -> Option<&str> {
    caller
        .split(';')
        .find_map(|p| p.trim().strip_prefix("oid="))
        .filter(|a| !a.is_empty())
}

/// What an access-policy vault's 403 says is missing.
struct PolicyDenial<'a> {
    caller: &'a str,
    object: &'a str,
    permission: &'a str,
    vault: &'a str,
}

/// The permissions a slot uses, by object kind, as `az keyvault set-policy` names them:
/// the signing server's (listing, sign, decrypt, unwrap) and the operator tool's
/// (certificates, rotation, import, backup and restore, `restore --force`'s delete and
/// purge, and C_DestroyObject's delete where `allow_destroy` is set).
const POLICY_NEEDS: [(&str, &str, &[&str]); 3] = [
    (
        "keys",
        "--key-permissions",
        &[
            "get",
            "list",
            "sign",
            "decrypt",
            "unwrapKey",
            "create",
            "import",
            "update",
            "backup",
            "restore",
            "delete",
            "purge",
        ],
    ),
    (
        "certificates",
        "--certificate-permissions",
        &[
            "get", "list", "create", "import", "update", "backup", "restore", "delete", "purge",
        ],
    ),
    ("secrets", "--secret-permissions", &["get"]),
];

impl PolicyDenial<'_> {
    /// `az keyvault set-policy` with the missing permission and the others a slot uses of
    /// that kind: the command replaces the principal's list for the kind, so it must name
    /// them all.
    fn set_policy(&self) -> String {
        let oid = object_id(self.caller).unwrap_or("<object id>");
        let (flag, needs) = POLICY_NEEDS
            .iter()
            .find(|(o, _, _)| *o == self.object)
            .map_or(("--key-permissions", &[][..]), |(_, f, n)| (*f, *n));
        let mut list: Vec<&str> = needs.to_vec();
        if !list.iter().any(|p| p.eq_ignore_ascii_case(self.permission)) {
            list.push(self.permission);
        }
        format!(
            "az keyvault set-policy --name {} --object-id {oid} {flag} {} (it replaces the principal's {} permissions: these are all a slot and the operator's commands use)",
            self.vault,
            list.join(" "),
            self.object
        )
    }
}

/// Parses "The user, group or application '<caller>' does not have <object> <permission>
/// permission on key vault '<vault>;location=<region>'. …".
fn policy_denial(message: &str) -> Option<PolicyDenial<'_>> {
    let (head, rest) = message.split_once(" does not have ")?;
    let caller = head.rsplit_once('\'').map(|(h, _)| h)?;
    let caller = caller.rsplit_once('\'').map(|(_, c)| c)?;
    let (wanted, rest) = rest.split_once(" permission on key vault '")?;
    let (object, permission) = wanted.split_once(' ')?;
    let vault = rest.split([';', '\'']).next()?;
    Some(PolicyDenial {
        caller,
        object,
        permission,
        vault,
    })
}

/// The least built-in role that grants a Key Vault / Managed HSM data action.
fn role_for(action: &str) -> Option<&'static str> {
    let rest = action.strip_prefix("Microsoft.KeyVault/")?;
    let (hsm, rest) = match rest.split_once('/')? {
        ("vaults", r) => (false, r),
        ("managedHsm", r) => (true, r),
        _ => return None,
    };
    let (object, op) = rest.split_once('/')?;
    let op = op.trim_end_matches("/action");
    let crypto = matches!(
        op,
        "sign" | "verify" | "encrypt" | "decrypt" | "wrap" | "unwrap" | "update" | "backup"
    );
    Some(match (hsm, object) {
        (true, "rng") => "Managed HSM Crypto User",
        (true, "keys") if op == "read" => "Managed HSM Crypto Auditor",
        (true, "keys") if matches!(op, "wrap" | "unwrap") => {
            "Managed HSM Crypto Service Encryption User"
        }
        (true, "keys") if op.starts_with("deletedKeys/") || op == "export" => {
            "Managed HSM Crypto Officer"
        }
        (true, "keys") => "Managed HSM Crypto User",
        (true, _) => return None,
        (false, "rng") => "Key Vault Crypto User",
        (false, "keys") if op == "read" => "Key Vault Reader",
        (false, "keys") if crypto => "Key Vault Crypto User",
        (false, "keys") => "Key Vault Crypto Officer",
        (false, "certificates") if op == "read" => "Key Vault Certificate User",
        (false, "certificates") => "Key Vault Certificates Officer",
        (false, "secrets") if op.starts_with("getSecret") || op == "read" => {
            "Key Vault Secrets User"
        }
        (false, "secrets") => "Key Vault Secrets Officer",
        (false, _) => return None,
    })
}

/// Whether a credential error is the token service failing rather than the credential.
fn transient_credential(e: &azure_core::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(az) = err.downcast_ref::<azure_core::Error>()
            && let azure_core::error::ErrorKind::HttpResponse { status, .. } = az.kind()
        {
            let s = u16::from(*status);
            if s == 429 || s >= 500 {
                return true;
            }
        }
        let text = err.to_string();
        if ["AADSTS90033", "temporarily_unavailable"]
            .iter()
            .any(|m| text.contains(m))
        {
            return true;
        }
        cur = err.source();
    }
    false
}

fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbac_denial_names_the_action_the_caller_and_the_role() {
        let m = "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=app;oid=obj;iss=https://sts/t/\r\nAction: 'Microsoft.KeyVault/vaults/keys/sign/action'\r\nResource: 'x'\r\nAssignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\n";
        assert_eq!(
            denied("sign with k/1", "ForbiddenByRbac", m),
            "sign with k/1: 403 ForbiddenByRbac: the principal (appid=app;oid=obj;iss=https://sts/t/) may not perform Microsoft.KeyVault/vaults/keys/sign/action; the built-in role \"Key Vault Crypto User\" grants it: az role assignment create --role \"Key Vault Crypto User\" --assignee-object-id obj --scope x"
        );
        let hsm = m
            .replace("vaults/keys", "managedHsm/keys")
            .replace("Resource: 'x'", "Resource: '/keys/k'")
            + "Vault: myhsm;location=westus\r\n";
        assert!(
            denied("sign", "ForbiddenByRbac", &hsm).ends_with(
                "grants it: az keyvault role assignment create --hsm-name myhsm --role \"Managed HSM Crypto User\" --assignee-object-id obj --scope /keys/k"
            ),
            "{}",
            denied("sign", "ForbiddenByRbac", &hsm)
        );
        for (action, role) in [
            (
                "Microsoft.KeyVault/vaults/keys/read",
                Some("Key Vault Reader"),
            ),
            (
                "Microsoft.KeyVault/vaults/keys/decrypt/action",
                Some("Key Vault Crypto User"),
            ),
            (
                "Microsoft.KeyVault/vaults/keys/create/action",
                Some("Key Vault Crypto Officer"),
            ),
            (
                "Microsoft.KeyVault/vaults/certificates/read",
                Some("Key Vault Certificate User"),
            ),
            (
                "Microsoft.KeyVault/managedHsm/keys/sign/action",
                Some("Managed HSM Crypto User"),
            ),
            (
                "Microsoft.KeyVault/managedHsm/keys/read/action",
                Some("Managed HSM Crypto Auditor"),
            ),
            (
                "Microsoft.KeyVault/managedHsm/rng/action",
                Some("Managed HSM Crypto User"),
            ),
            ("Microsoft.Storage/x", None),
        ] {
            assert_eq!(role_for(action), role, "{action}");
        }
        // With the resource named, the command that assigns the role.
        let with_resource = m.replace(
            "Resource: 'x'",
            "Resource: '/subscriptions/s/resourcegroups/g/providers/microsoft.keyvault/vaults/v'",
        );
        assert!(
            denied("sign", "ForbiddenByRbac", &with_resource).ends_with(
                "grants it: az role assignment create --role \"Key Vault Crypto User\" --assignee-object-id obj --scope /subscriptions/s/resourcegroups/g/providers/microsoft.keyvault/vaults/v"
            ),
            "{}",
            denied("sign", "ForbiddenByRbac", &with_resource)
        );
        // No Action line: the message as one line.
        assert_eq!(
            denied("w", "Forbidden", "no\r\nthing"),
            "w: 403 Forbidden: no; thing"
        );
    }

    #[test]
    fn access_policy_denial_names_the_permission_and_the_set_policy_command() {
        let m = "The user, group or application 'appid=app-1;oid=obj;iss=https://sts.windows.net/t/' does not have keys sign permission on key vault 'policyvault;location=westus'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287";
        assert_eq!(
            denied("sign with k/1", "AccessDenied", m),
            "sign with k/1: 403 AccessDenied: the principal (appid=app-1;oid=obj;iss=https://sts.windows.net/t/) has no keys permission \"sign\" in the access policies of vault policyvault; grant it: az keyvault set-policy --name policyvault --object-id obj --key-permissions get list sign decrypt unwrapKey create import update backup restore delete purge (it replaces the principal's keys permissions: these are all a slot and the operator's commands use)"
        );
        // A permission a slot does not otherwise use is added to the list.
        let purge = m.replace("keys sign", "certificates purge");
        assert!(
            denied("w", "AccessDenied", &purge).contains(
                "--certificate-permissions get list create import update backup restore delete purge ("
            ),
            "{}",
            denied("w", "AccessDenied", &purge)
        );
    }

    #[test]
    fn rbac_message_flattens_to_one_line() {
        let m = "Caller is not authorized to perform action on resource.\r\nCaller: appid=1;oid=2\r\nAction: 'Microsoft.KeyVault/vaults/keys/sign/action'\r\n";
        assert_eq!(
            one_line(m),
            "Caller is not authorized to perform action on resource.; Caller: appid=1;oid=2; Action: 'Microsoft.KeyVault/vaults/keys/sign/action'"
        );
    }
}
