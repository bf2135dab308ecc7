//! `key-vault` and `managed-hsm` slots: the vault, the credential, the limits.

use super::slots::{KeyVaultTable, ManagedHsmTable};
use super::*;

pub(super) type At<'a> = dyn Fn(std::ops::Range<usize>, &str, String) -> Error + 'a;

/// What a key-vault or managed-hsm table says, seen the same way for both kinds.
pub(super) struct AzureView<'a> {
    service: Service,
    kind_span: std::ops::Range<usize>,
    url: &'a Option<toml::Spanned<String>>,
    hsm_random: Option<bool>,
    require_hsm: Option<&'a toml::Spanned<bool>>,
    ca_file: &'a Option<toml::Spanned<PathBuf>>,
    credential: &'a Option<toml::Spanned<RawCredential>>,
    key_names: &'a Option<Vec<String>>,
    tags: &'a Option<BTreeMap<String, String>>,
    hsm_keys: Option<bool>,
    allow_destroy: Option<bool>,
    deadline_seconds: &'a Option<toml::Spanned<u64>>,
    max_retries: &'a Option<toml::Spanned<u32>>,
    rate_budget: &'a Option<toml::Spanned<f64>>,
    full_refresh_seconds: &'a Option<toml::Spanned<u64>>,
    region: &'a Option<toml::Spanned<String>>,
    certificates: &'a Option<toml::Spanned<String>>,
    certificates_dir: &'a Option<toml::Spanned<PathBuf>>,
}

/// The view of a kind's table (`$url`: the key naming the store).
macro_rules! azure_view {
    ($t:expr, $service:expr, $url:ident, $hsm_random:expr, $require_hsm:expr) => {
        AzureView {
            service: $service,
            kind_span: $t.kind.span(),
            url: &$t.$url,
            hsm_random: $hsm_random,
            require_hsm: $require_hsm,
            ca_file: &$t.ca_file,
            credential: &$t.credential,
            key_names: &$t.key_names,
            tags: &$t.tags,
            hsm_keys: $t.hsm_keys,
            allow_destroy: $t.allow_destroy,
            deadline_seconds: &$t.deadline_seconds,
            max_retries: &$t.max_retries,
            rate_budget: &$t.rate_budget,
            full_refresh_seconds: &$t.full_refresh_seconds,
            region: &$t.region,
            certificates: &$t.certificates,
            certificates_dir: &$t.certificates_dir,
        }
    };
}

impl<'a> AzureView<'a> {
    pub(super) fn key_vault(t: &'a KeyVaultTable) -> AzureView<'a> {
        azure_view!(t, Service::KeyVault, vault, None, t.require_hsm.as_ref())
    }

    pub(super) fn managed_hsm(t: &'a ManagedHsmTable) -> AzureView<'a> {
        azure_view!(t, Service::ManagedHsm, hsm, t.hsm_random, None)
    }
}

/// Validates a key-vault or managed-hsm slot. Which keys each kind takes is the types'
/// business (slots.rs); what is left is what the keys say.
pub(super) fn azure_slot(
    s: &AzureView<'_>,
    source: &Source,
    at: &At<'_>,
    label: &str,
) -> Result<AzureConfig> {
    let service = s.service;
    let managed_hsm = service == Service::ManagedHsm;
    let url_key = if managed_hsm { "hsm" } else { "vault" };
    let example = if managed_hsm {
        "https://contoso.managedhsm.azure.net"
    } else {
        "https://contoso.vault.azure.net"
    };
    let Some(url) = s.url else {
        return Err(at(
            s.kind_span.clone(),
            url_key,
            format!(
                "a `{}` slot needs `{url_key} = \"{example}\"`",
                service.kind_name()
            ),
        ));
    };
    let parsed = url::Url::parse(url.get_ref()).map_err(|e| {
        at(
            url.span(),
            url_key,
            format!("not a URL ({e}); e.g. {example}"),
        )
    })?;
    if parsed.scheme() != "https"
        || parsed.host_str().is_none()
        || !parsed.path().trim_matches('/').is_empty()
    {
        return Err(at(
            url.span(),
            url_key,
            "must be https://HOST with no path".into(),
        ));
    }
    let relative = |p: &Path| match source {
        Source::File(f) if p.is_relative() => f.parent().unwrap_or(Path::new(".")).join(p),
        _ => p.to_owned(),
    };
    let ca_pem = match s.ca_file {
        None => None,
        Some(f) => {
            let path = relative(f.get_ref());
            let pem = std::fs::read(&path)
                .map_err(|e| at(f.span(), "ca_file", format!("{}: {e}", path.display())))?;
            openssl::x509::X509::stack_from_pem(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    at(
                        f.span(),
                        "ca_file",
                        format!("{} holds no PEM certificate", path.display()),
                    )
                })?;
            Some(pem)
        }
    };
    let Some(cred) = s.credential else {
        return Err(at(
            s.kind_span.clone(),
            "credential",
            "add a [slot.credential] table with type = \"managed-identity\" | \"client-secret\" | \"client-certificate\" | \"workload-identity\" | \"azure-cli\"".into(),
        ));
    };
    let credential = credential(
        cred.get_ref(),
        source,
        &|key, msg| at(cred.span(), key, msg),
        &relative,
    )?;
    let seconds = |v: &Option<toml::Spanned<u64>>, key: &str, default: u64, max: u64| match v {
        Some(x) if *x.get_ref() == 0 || *x.get_ref() > max => {
            Err(at(x.span(), key, format!("must be 1 to {max}")))
        }
        Some(x) => Ok(*x.get_ref()),
        None => Ok(default),
    };
    let deadline_seconds = seconds(s.deadline_seconds, "deadline_seconds", 10, 300)?;
    let full_refresh_seconds = seconds(
        s.full_refresh_seconds,
        "full_refresh_seconds",
        3600,
        7 * 86_400,
    )?;
    let max_retries = match s.max_retries {
        Some(r) if *r.get_ref() > 10 => {
            return Err(at(r.span(), "max_retries", "must be 0 to 10".into()));
        }
        Some(r) => *r.get_ref(),
        None => 4,
    };
    let rate_budget = match s.rate_budget {
        Some(r) if !(*r.get_ref() >= 0.004 && *r.get_ref() <= 100.0) => {
            return Err(at(
                r.span(),
                "rate_budget",
                "must be from 0.004 (16 units per 10 s, the weight of one RSA-4096 HSM operation) to 100: a fraction of the published limits, or a multiple when Microsoft raised the vault's limits".into(),
            ));
        }
        Some(r) => *r.get_ref(),
        None => 0.9,
    };
    let require_hsm = s.require_hsm.is_some_and(|r| *r.get_ref());
    if require_hsm && s.hsm_keys == Some(false) {
        return Err(at(
            s.require_hsm.map_or(0..0, toml::Spanned::span),
            "require_hsm",
            "require_hsm = true makes every new key an HSM key: remove hsm_keys = false".into(),
        ));
    }
    // An Azure region's programmatic name: `westeurope`, `eastus2`, `usgovvirginia`.
    let region = match s.region {
        Some(r)
            if r.get_ref().is_empty()
                || !r
                    .get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) =>
        {
            return Err(at(
                r.span(),
                "region",
                "must be an Azure region's name as `az account list-locations` prints it (lowercase letters and digits, e.g. \"westeurope\")".into(),
            ));
        }
        Some(r) => Some(r.get_ref().clone()),
        None => None,
    };
    if let Some(names) = s.key_names
        && let Some(bad) = names
            .iter()
            .find(|n| n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        return Err(at(
            s.kind_span.clone(),
            "key_names",
            format!("{bad:?} is not a key name (1-127 of 0-9 a-z A-Z -)"),
        ));
    }
    if let Some(d) = s.certificates_dir {
        return Err(at(
            d.span(),
            "certificates_dir",
            "was replaced by the certificate database: certificates = \"sqlite:///path/certs.db\" or \"postgres://user@host/db\"".into(),
        ));
    }
    let base = match source {
        Source::File(f) => f.parent().unwrap_or(Path::new(".")).to_owned(),
        Source::Embedded => default_store_dir()?
            .parent()
            .unwrap_or(Path::new("."))
            .to_owned(),
    };
    let certificates = match s.certificates {
        Some(c) => {
            let location = crate::certdb::Location::parse(c.get_ref(), &base)
                .map_err(|m| at(c.span(), "certificates", m))?;
            // A password in the URL only in a file nobody else can read (else PGPASSWORD).
            if location.has_password()
                && let Source::File(f) = source
            {
                read_secret_file(f).map_err(|m| {
                    at(
                        c.span(),
                        "certificates",
                        format!("a database password needs a private configuration file (or use PGPASSWORD): {m}"),
                    )
                })?;
            }
            location
        }
        // One SQLite file per slot beside the configuration.
        None => crate::certdb::Location::Sqlite(base.join(format!("{label}.certificates.db"))),
    };
    Ok(AzureConfig {
        url: url.get_ref().trim_end_matches('/').to_owned(),
        service,
        ca_pem,
        credential,
        key_names: s.key_names.clone(),
        tags: s.tags.clone().unwrap_or_default(),
        hsm_keys: managed_hsm || require_hsm || s.hsm_keys.unwrap_or(false),
        require_hsm,
        allow_destroy: s.allow_destroy.unwrap_or(false),
        deadline_seconds,
        max_retries,
        rate_budget,
        full_refresh_seconds,
        region,
        certificates,
        hsm_random: s.hsm_random.unwrap_or(false),
    })
}

/// Validates `[slot.credential]`; the AZURE_* environment variables fill what the file
/// leaves out, as the Azure SDKs do.
fn credential(
    c: &RawCredential,
    source: &Source,
    at: &dyn Fn(&str, String) -> Error,
    relative: &dyn Fn(&Path) -> PathBuf,
) -> Result<Credential> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let tenant_id = c.tenant_id.clone().or_else(|| env("AZURE_TENANT_ID"));
    let client_id = c.client_id.clone().or_else(|| env("AZURE_CLIENT_ID"));
    let authority_host = c
        .authority_host
        .clone()
        .or_else(|| env("AZURE_AUTHORITY_HOST"));
    if let Some(a) = &authority_host
        && !a.starts_with("https://")
    {
        return Err(at(
            "credential.authority_host",
            format!("{a:?} must be an https:// URL"),
        ));
    }
    let need = |v: &Option<String>, key: &str, var: &str| {
        v.clone().ok_or_else(|| {
            at(
                &format!("credential.{key}"),
                format!(
                    "is required for type = {:?} (or set {var})",
                    kind_name(c.kind)
                ),
            )
        })
    };
    let mut out = Credential {
        kind: c.kind,
        tenant_id: None,
        client_id: None,
        object_id: c.object_id.clone(),
        resource_id: c.resource_id.clone(),
        client_secret: None,
        certificate: None,
        token_file: None,
        authority_host,
    };
    match c.kind {
        CredentialKind::ManagedIdentity => {
            let given = [&c.client_id, &c.object_id, &c.resource_id]
                .iter()
                .filter(|v| v.is_some())
                .count();
            if given > 1 {
                return Err(at("credential", "give at most one of client_id, object_id, resource_id (user-assigned identity)".into()));
            }
            out.client_id = c.client_id.clone();
        }
        CredentialKind::ClientSecret => {
            out.tenant_id = Some(need(&tenant_id, "tenant_id", "AZURE_TENANT_ID")?);
            out.client_id = Some(need(&client_id, "client_id", "AZURE_CLIENT_ID")?);
            out.client_secret = Some(match (&c.client_secret, &c.client_secret_file) {
                (Some(_), Some(_)) => {
                    return Err(at(
                        "credential.client_secret",
                        "give client_secret or client_secret_file, not both".into(),
                    ));
                }
                (Some(s), None) => {
                    // An inline secret is only acceptable in a file nobody else can read.
                    if let Source::File(f) = source {
                        read_secret_file(f).map_err(|m| {
                            at(
                                "credential.client_secret",
                                format!("an inline secret needs a private configuration file: {m}"),
                            )
                        })?;
                    }
                    s.clone()
                }
                (None, Some(f)) => read_secret_file(&relative(f))
                    .map_err(|m| at("credential.client_secret_file", m))?,
                (None, None) => env("AZURE_CLIENT_SECRET").ok_or_else(|| {
                    at(
                        "credential.client_secret_file",
                        "is required for type = \"client-secret\" (or set AZURE_CLIENT_SECRET)"
                            .into(),
                    )
                })?,
            });
        }
        CredentialKind::ClientCertificate => {
            out.tenant_id = Some(need(&tenant_id, "tenant_id", "AZURE_TENANT_ID")?);
            out.client_id = Some(need(&client_id, "client_id", "AZURE_CLIENT_ID")?);
            let file = c
                .certificate_file
                .clone()
                .or_else(|| env("AZURE_CLIENT_CERTIFICATE_PATH").map(PathBuf::from))
                .ok_or_else(|| {
                    at(
                        "credential.certificate_file",
                        "is required for type = \"client-certificate\" (a PKCS#12 file)".into(),
                    )
                })?;
            let file = relative(&file);
            let bytes = std::fs::read(&file).map_err(|e| {
                at(
                    "credential.certificate_file",
                    format!("{}: {e}", file.display()),
                )
            })?;
            let password = match &c.certificate_password_file {
                Some(p) => Some(
                    read_secret_file(&relative(p))
                        .map_err(|m| at("credential.certificate_password_file", m))?,
                ),
                None => env("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
            };
            out.certificate = Some((bytes, password));
        }
        CredentialKind::WorkloadIdentity => {
            out.tenant_id = Some(need(&tenant_id, "tenant_id", "AZURE_TENANT_ID")?);
            out.client_id = Some(need(&client_id, "client_id", "AZURE_CLIENT_ID")?);
            let file = c.token_file.clone().or_else(|| env("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from)).ok_or_else(|| at("credential.token_file", "is required for type = \"workload-identity\" (or set AZURE_FEDERATED_TOKEN_FILE)".into()))?;
            out.token_file = Some(relative(&file));
        }
        CredentialKind::AzureCli => {
            out.tenant_id = tenant_id;
        }
    }
    Ok(out)
}

/// The configuration's name of a credential type.
pub fn kind_name(k: CredentialKind) -> &'static str {
    match k {
        CredentialKind::ManagedIdentity => "managed-identity",
        CredentialKind::ClientSecret => "client-secret",
        CredentialKind::ClientCertificate => "client-certificate",
        CredentialKind::WorkloadIdentity => "workload-identity",
        CredentialKind::AzureCli => "azure-cli",
    }
}

/// Reads a secret from a file that group and others cannot read; one trailing newline is
/// dropped.
pub(super) fn read_secret_file(path: &Path) -> std::result::Result<String, String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "{} is readable by group or others; chmod 600 it",
                path.display()
            ));
        }
    }
    let mut s = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    Ok(s)
}
