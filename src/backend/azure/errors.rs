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
//! | 400 BadParameter | `Remote(BadRequest)` | CKR_FUNCTION_FAILED |
//! | 429 after retries and the rate budget | `Remote(Throttled)` | CKR_DEVICE_ERROR |
//! | 5xx after retries, connection failure | `Remote(Unavailable)` | CKR_DEVICE_ERROR |
//! | no answer within the deadline | `Remote(Timeout)` | CKR_DEVICE_ERROR |
//! | TLS failure (untrusted certificate) | `Remote(Tls)` | CKR_FUNCTION_FAILED |

use crate::error::Error;

/// The classes of remote failure that map to distinct return codes and advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    Auth,
    Denied,
    BadRequest,
    Throttled,
    Unavailable,
    Timeout,
    Tls,
}

impl RemoteKind {
    /// What the operator can do about it, for the log line.
    pub fn advice(self) -> &'static str {
        match self {
            RemoteKind::Auth => {
                "check the slot's [slot.credential]: tenant, client id and secret or certificate"
            }
            RemoteKind::Denied => {
                "assign the missing role to the principal (see the action named above)"
            }
            RemoteKind::BadRequest => {
                "the service refused the request; check the key type and algorithm"
            }
            RemoteKind::Throttled => {
                "the vault is throttling: lower the load or raise the vault's limits"
            }
            RemoteKind::Unavailable => {
                "the service or the network is failing; it is retried within the deadline"
            }
            RemoteKind::Timeout => {
                "no answer within deadline_seconds; check the network path to the vault"
            }
            RemoteKind::Tls => {
                "the vault's TLS certificate is not trusted: check ca_file and the system roots"
            }
        }
    }
}

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
                401 => Error::Remote(RemoteKind::Auth, format!("{what}: 401 {code} {detail}")),
                403 if inner == "KeyOperationForbidden" || message.contains("not permitted") => {
                    tracing::warn!("{what}: 403 {inner}: {detail}");
                    Error::KeyFunctionNotPermitted
                }
                403 if message.contains("disabled") || inner.contains("Disabled") => {
                    Error::ObjectGone(format!(
                        "{what}: the key version is disabled in the vault ({detail})"
                    ))
                }
                403 => Error::Remote(RemoteKind::Denied, format!("{what}: 403 {inner}: {detail}")),
                404 => Error::ObjectGone(format!("{what}: not found in the vault ({detail})")),
                400 => Error::Remote(
                    RemoteKind::BadRequest,
                    format!("{what}: 400 {code}: {detail}"),
                ),
                429 => Error::Remote(
                    RemoteKind::Throttled,
                    format!("{what}: 429 {code}: {detail}"),
                ),
                s => Error::Remote(
                    RemoteKind::Unavailable,
                    format!("{what}: HTTP {s} {code}: {detail}"),
                ),
            }
        }
        _ => {
            let text = format!("{e}");
            let chain = source_chain(&e);
            if chain.contains("certificate")
                || chain.contains("UnknownIssuer")
                || chain.contains("tls")
            {
                Error::Remote(RemoteKind::Tls, format!("{what}: {text}: {chain}"))
            } else if chain.contains("timed out") || chain.contains("deadline") {
                Error::Remote(RemoteKind::Timeout, format!("{what}: {text}: {chain}"))
            } else if matches!(e.kind(), ErrorKind::Credential) {
                Error::Remote(RemoteKind::Auth, format!("{what}: {text}: {chain}"))
            } else {
                Error::Remote(RemoteKind::Unavailable, format!("{what}: {text}: {chain}"))
            }
        }
    };
    if let Error::Remote(kind, m) = &err {
        tracing::error!("{m} — {}", kind.advice());
    }
    err
}

fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbac_message_flattens_to_one_line() {
        let m = "Caller is not authorized to perform action on resource.\r\nCaller: appid=1;oid=2\r\nAction: 'Microsoft.KeyVault/vaults/keys/sign/action'\r\n";
        assert_eq!(
            one_line(m),
            "Caller is not authorized to perform action on resource.; Caller: appid=1;oid=2; Action: 'Microsoft.KeyVault/vaults/keys/sign/action'"
        );
    }
}
