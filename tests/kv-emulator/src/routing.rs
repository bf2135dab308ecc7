//! Request paths to operations. Matching is case-insensitive, and the latest version of
//! a key is addressed by a missing or empty version segment in every form clients use:
//! `/keys/n`, `/keys/n/`, `/keys/n//sign`, `/keys/n/sign` (FACTS.md §1.2, §8.4).

use hyper::Method;

// Variant names follow the service's operation names (GetCertificateOperation is one).
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    CreateKey,
    ImportKey,
    GetKey,
    ListKeys,
    ListKeyVersions,
    UpdateKey,
    DeleteKey,
    GetDeletedKey,
    ListDeletedKeys,
    RecoverKey,
    PurgeKey,
    BackupKey,
    RestoreKey,
    RotateKey,
    GetRotationPolicy,
    SetRotationPolicy,
    Sign,
    Verify,
    Encrypt,
    Decrypt,
    WrapKey,
    UnwrapKey,
    Release,
    Rng,
    CreateCertificate,
    GetCertificateOperation,
    ImportCertificate,
    GetCertificate,
    ListCertificates,
    ListCertificateVersions,
    UpdateCertificate,
    DeleteCertificate,
    GetCertificatePolicy,
    UpdateCertificatePolicy,
    GetDeletedCertificate,
    ListDeletedCertificates,
    RecoverCertificate,
    PurgeCertificate,
    BackupCertificate,
    RestoreCertificate,
    GetSecret,
    Token,
    /// A route the service has but the emulator does not implement.
    Unsupported,
}

impl Operation {
    /// The name used in stats and fault matching.
    pub fn name(self) -> &'static str {
        use Operation as O;
        match self {
            O::CreateKey => "create_key",
            O::ImportKey => "import_key",
            O::GetKey => "get_key",
            O::ListKeys => "list_keys",
            O::ListKeyVersions => "list_key_versions",
            O::UpdateKey => "update_key",
            O::DeleteKey => "delete_key",
            O::GetDeletedKey => "get_deleted_key",
            O::ListDeletedKeys => "list_deleted_keys",
            O::RecoverKey => "recover_key",
            O::PurgeKey => "purge_key",
            O::BackupKey => "backup_key",
            O::RestoreKey => "restore_key",
            O::RotateKey => "rotate_key",
            O::GetRotationPolicy => "get_rotation_policy",
            O::SetRotationPolicy => "set_rotation_policy",
            O::Sign => "sign",
            O::Verify => "verify",
            O::Encrypt => "encrypt",
            O::Decrypt => "decrypt",
            O::WrapKey => "wrap_key",
            O::UnwrapKey => "unwrap_key",
            O::Release => "release",
            O::Rng => "rng",
            O::CreateCertificate => "create_certificate",
            O::GetCertificateOperation => "get_certificate_operation",
            O::ImportCertificate => "import_certificate",
            O::GetCertificate => "get_certificate",
            O::ListCertificates => "list_certificates",
            O::ListCertificateVersions => "list_certificate_versions",
            O::UpdateCertificate => "update_certificate",
            O::DeleteCertificate => "delete_certificate",
            O::GetCertificatePolicy => "get_certificate_policy",
            O::UpdateCertificatePolicy => "update_certificate_policy",
            O::GetDeletedCertificate => "get_deleted_certificate",
            O::ListDeletedCertificates => "list_deleted_certificates",
            O::RecoverCertificate => "recover_certificate",
            O::PurgeCertificate => "purge_certificate",
            O::BackupCertificate => "backup_certificate",
            O::RestoreCertificate => "restore_certificate",
            O::GetSecret => "get_secret",
            O::Token => "token",
            O::Unsupported => "unsupported",
        }
    }

    pub fn is_certificate_route(self) -> bool {
        use Operation as O;
        matches!(
            self,
            O::CreateCertificate
                | O::GetCertificateOperation
                | O::ImportCertificate
                | O::GetCertificate
                | O::ListCertificates
                | O::ListCertificateVersions
                | O::UpdateCertificate
                | O::DeleteCertificate
                | O::GetCertificatePolicy
                | O::UpdateCertificatePolicy
                | O::GetDeletedCertificate
                | O::ListDeletedCertificates
                | O::RecoverCertificate
                | O::PurgeCertificate
                | O::BackupCertificate
                | O::RestoreCertificate
                | O::GetSecret
        )
    }

    /// Operations whose request carries a JSON body that the handler reads.
    pub fn wants_body(self) -> bool {
        use Operation as O;
        matches!(
            self,
            O::CreateKey
                | O::ImportKey
                | O::UpdateKey
                | O::RestoreKey
                | O::SetRotationPolicy
                | O::Sign
                | O::Verify
                | O::Encrypt
                | O::Decrypt
                | O::WrapKey
                | O::UnwrapKey
                | O::Rng
                | O::CreateCertificate
                | O::ImportCertificate
                | O::UpdateCertificate
                | O::UpdateCertificatePolicy
                | O::RestoreCertificate
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub op: Operation,
    pub name: Option<String>,
    /// `None` or `Some("")` both mean the latest version.
    pub version: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed,
    BadName(String),
}

/// Object names: 1–127 characters of `[0-9a-zA-Z-]`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 127
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn is(seg: &str, word: &str) -> bool {
    seg.eq_ignore_ascii_case(word)
}

fn crypto_op(seg: &str) -> Option<Operation> {
    [
        ("sign", Operation::Sign),
        ("verify", Operation::Verify),
        ("encrypt", Operation::Encrypt),
        ("decrypt", Operation::Decrypt),
        ("wrapkey", Operation::WrapKey),
        ("unwrapkey", Operation::UnwrapKey),
        ("release", Operation::Release),
    ]
    .into_iter()
    .find(|(w, _)| is(seg, w))
    .map(|(_, op)| op)
}

pub fn parse(method: &Method, path: &str) -> Result<Route, RouteError> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let mut segs: Vec<&str> = trimmed.split('/').collect();
    while segs.len() > 1 && segs.last() == Some(&"") {
        segs.pop();
    }
    let route =
        |op: Operation, name: Option<&str>, version: Option<&str>| -> Result<Route, RouteError> {
            if let Some(n) = name {
                if !valid_name(n) {
                    return Err(RouteError::BadName(n.to_string()));
                }
            }
            Ok(Route {
                op,
                name: name.map(str::to_string),
                version: version.map(str::to_string),
            })
        };
    let m = method;
    let get = m == Method::GET;
    let post = m == Method::POST;
    let put = m == Method::PUT;
    let patch = m == Method::PATCH;
    let delete = m == Method::DELETE;
    let wrong = Err(RouteError::MethodNotAllowed);
    use Operation as O;
    match segs.as_slice() {
        [k] if is(k, "keys") => {
            if get {
                route(O::ListKeys, None, None)
            } else {
                wrong
            }
        }
        [k, r] if is(k, "keys") && is(r, "restore") && post => route(O::RestoreKey, None, None),
        [k, n] if is(k, "keys") => {
            if put {
                route(O::ImportKey, Some(n), None)
            } else if get {
                route(O::GetKey, Some(n), None)
            } else if delete {
                route(O::DeleteKey, Some(n), None)
            } else if patch {
                route(O::UpdateKey, Some(n), None)
            } else {
                wrong
            }
        }
        [k, n, w] if is(k, "keys") => {
            let n = Some(*n);
            if is(w, "create") {
                if post {
                    route(O::CreateKey, n, None)
                } else {
                    wrong
                }
            } else if is(w, "versions") {
                if get {
                    route(O::ListKeyVersions, n, None)
                } else {
                    wrong
                }
            } else if is(w, "backup") {
                if post {
                    route(O::BackupKey, n, None)
                } else {
                    wrong
                }
            } else if is(w, "rotate") {
                if post {
                    route(O::RotateKey, n, None)
                } else {
                    wrong
                }
            } else if is(w, "rotationpolicy") {
                if get {
                    route(O::GetRotationPolicy, n, None)
                } else if put {
                    route(O::SetRotationPolicy, n, None)
                } else {
                    wrong
                }
            } else if let Some(op) = crypto_op(w) {
                if post { route(op, n, None) } else { wrong }
            } else if get {
                route(O::GetKey, n, Some(w))
            } else if patch {
                route(O::UpdateKey, n, Some(w))
            } else {
                wrong
            }
        }
        [k, n, v, w] if is(k, "keys") => {
            if let Some(op) = crypto_op(w) {
                if post {
                    route(op, Some(n), Some(v))
                } else {
                    wrong
                }
            } else if is(w, "attestation") {
                if get {
                    route(O::Unsupported, Some(n), Some(v))
                } else {
                    wrong
                }
            } else if is(w, "securewrapkey") || is(w, "secureunwrapkey") {
                if post {
                    route(O::Unsupported, Some(n), Some(v))
                } else {
                    wrong
                }
            } else {
                Err(RouteError::NotFound)
            }
        }
        [d] if is(d, "deletedkeys") => {
            if get {
                route(O::ListDeletedKeys, None, None)
            } else {
                wrong
            }
        }
        [d, n] if is(d, "deletedkeys") => {
            if get {
                route(O::GetDeletedKey, Some(n), None)
            } else if delete {
                route(O::PurgeKey, Some(n), None)
            } else {
                wrong
            }
        }
        [d, n, r] if is(d, "deletedkeys") && is(r, "recover") => {
            if post {
                route(O::RecoverKey, Some(n), None)
            } else {
                wrong
            }
        }
        [r] if is(r, "rng") => {
            if post {
                route(O::Rng, None, None)
            } else {
                wrong
            }
        }
        [c] if is(c, "certificates") => {
            if get {
                route(O::ListCertificates, None, None)
            } else {
                wrong
            }
        }
        [c, r] if is(c, "certificates") && is(r, "restore") && post => {
            route(O::RestoreCertificate, None, None)
        }
        [c, w]
            if is(c, "certificates")
                && (is(w, "contacts") || is(w, "issuers") || is(w, "restore")) =>
        {
            route(O::Unsupported, None, None)
        }
        [c, w, _] if is(c, "certificates") && is(w, "issuers") => route(O::Unsupported, None, None),
        [c, n] if is(c, "certificates") => {
            if get {
                route(O::GetCertificate, Some(n), None)
            } else if delete {
                route(O::DeleteCertificate, Some(n), None)
            } else if patch {
                route(O::UpdateCertificate, Some(n), None)
            } else {
                wrong
            }
        }
        [c, n, w] if is(c, "certificates") => {
            let n = Some(*n);
            if is(w, "create") {
                if post {
                    route(O::CreateCertificate, n, None)
                } else {
                    wrong
                }
            } else if is(w, "import") {
                if post {
                    route(O::ImportCertificate, n, None)
                } else {
                    wrong
                }
            } else if is(w, "pending") {
                if get {
                    route(O::GetCertificateOperation, n, None)
                } else if patch || delete {
                    route(O::Unsupported, n, None)
                } else {
                    wrong
                }
            } else if is(w, "versions") {
                if get {
                    route(O::ListCertificateVersions, n, None)
                } else {
                    wrong
                }
            } else if is(w, "policy") {
                if get {
                    route(O::GetCertificatePolicy, n, None)
                } else if patch {
                    route(O::UpdateCertificatePolicy, n, None)
                } else {
                    wrong
                }
            } else if is(w, "backup") {
                if post {
                    route(O::BackupCertificate, n, None)
                } else {
                    wrong
                }
            } else if get {
                route(O::GetCertificate, n, Some(w))
            } else if patch {
                route(O::UpdateCertificate, n, Some(w))
            } else {
                wrong
            }
        }
        [c, n, p, m2] if is(c, "certificates") && is(p, "pending") && is(m2, "merge") => {
            if post {
                route(O::Unsupported, Some(n), None)
            } else {
                wrong
            }
        }
        [d] if is(d, "deletedcertificates") => {
            if get {
                route(O::ListDeletedCertificates, None, None)
            } else {
                wrong
            }
        }
        [d, n] if is(d, "deletedcertificates") => {
            if get {
                route(O::GetDeletedCertificate, Some(n), None)
            } else if delete {
                route(O::PurgeCertificate, Some(n), None)
            } else {
                wrong
            }
        }
        [d, n, r] if is(d, "deletedcertificates") && is(r, "recover") => {
            if post {
                route(O::RecoverCertificate, Some(n), None)
            } else {
                wrong
            }
        }
        [s, n] if is(s, "secrets") => {
            if get {
                route(O::GetSecret, Some(n), None)
            } else {
                wrong
            }
        }
        [s, n, v] if is(s, "secrets") => {
            if get {
                route(O::GetSecret, Some(n), Some(v))
            } else {
                wrong
            }
        }
        _ => Err(RouteError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(m: Method, path: &str) -> Route {
        parse(&m, path).unwrap()
    }

    #[test]
    fn latest_version_forms() {
        for path in ["/keys/k", "/keys/k/", "/KEYS/k"] {
            let r = p(Method::GET, path);
            assert_eq!(
                (r.op, r.name.as_deref(), r.version.as_deref()),
                (Operation::GetKey, Some("k"), None)
            );
        }
        let r = p(Method::POST, "/keys/k//encrypt");
        assert_eq!((r.op, r.version.as_deref()), (Operation::Encrypt, Some("")));
        let r = p(Method::POST, "/keys/k/sign");
        assert_eq!((r.op, r.version), (Operation::Sign, None));
        let r = p(Method::POST, "/keys/k/0123/wrapKey");
        assert_eq!(
            (r.op, r.version.as_deref()),
            (Operation::WrapKey, Some("0123"))
        );
        assert_eq!(
            p(Method::POST, "/keys/k/0123/UNWRAPKEY").op,
            Operation::UnwrapKey
        );
    }

    #[test]
    fn other_routes() {
        assert_eq!(p(Method::GET, "/keys").op, Operation::ListKeys);
        assert_eq!(p(Method::GET, "/keys/").op, Operation::ListKeys);
        assert_eq!(p(Method::POST, "/keys/restore").op, Operation::RestoreKey);
        assert_eq!(
            p(Method::POST, "/certificates/restore").op,
            Operation::RestoreCertificate
        );
        let backup = p(Method::POST, "/certificates/idp/backup");
        assert_eq!(backup.op, Operation::BackupCertificate);
        assert_eq!(backup.name.as_deref(), Some("idp"));
        assert_eq!(
            p(Method::GET, "/keys/k/versions").op,
            Operation::ListKeyVersions
        );
        assert_eq!(p(Method::DELETE, "/deletedkeys/k").op, Operation::PurgeKey);
        assert_eq!(
            p(Method::POST, "/deletedkeys/k/recover").op,
            Operation::RecoverKey
        );
        assert_eq!(p(Method::POST, "/rng").op, Operation::Rng);
        assert_eq!(
            p(Method::GET, "/certificates/c/pending").op,
            Operation::GetCertificateOperation
        );
        assert_eq!(p(Method::GET, "/secrets/c/abc").op, Operation::GetSecret);
        assert_eq!(
            parse(&Method::DELETE, "/rng"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(parse(&Method::GET, "/nothing"), Err(RouteError::NotFound));
        assert_eq!(
            parse(&Method::GET, "/keys/bad_name"),
            Err(RouteError::BadName("bad_name".into()))
        );
    }
}
