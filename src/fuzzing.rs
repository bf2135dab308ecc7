//! Entry points for the fuzz targets (`fuzz/`), behind the `fuzzing` feature (off by
//! default). Thin wrappers over code that is private to its module; each runs the same
//! function production runs, on bytes the fuzzer chose. Nothing here is API.

/// What the fuzz targets drive directly (crate-private otherwise).
pub use crate::backend::Backend;
pub use crate::backend::directory::{DirectoryBackend, DirectoryConfig};
pub use crate::config::{Source, parse as parse_config};
pub use crate::crypto::hash::hash;
pub use crate::crypto::{HashAlg, KeyKind, PublicInfo, digest_info};
pub use crate::mechanism::aes::AesScheme;
pub use crate::mechanism::{CryptScheme, SignScheme, digest_hash};

use crate::backend::CertRecord;
use crate::backend::azure::{errors, key_vault};
use azure_core::http::{RawResponse, StatusCode, Url, headers::Headers};
use azure_security_keyvault_keys::ResourceExt;

/// A `GET /keys/{name}/{version}` answer body, as `fetch_version` turns it into a key
/// record (JWK n/e/crv/x/y to a public key, kid, key_ops, tags), then the public-key facts
/// the object layer derives from the record.
pub fn key_bundle(body: &[u8]) {
    let Ok(key) = azure_core::json::from_json::<_, azure_security_keyvault_keys::models::Key>(body)
    else {
        return;
    };
    // The same resource-id parse the listing applies to an item.
    let _ = key.resource_id();
    if let Some((record, weight)) = key_vault::key_record(
        crate::config::Service::KeyVault,
        "https://fuzz.vault.azure.net/",
        "name",
        "version",
        true,
        &key,
        "fuzzing",
    ) {
        assert!(weight.is_finite() && weight > 0.0, "rate weight {weight}");
        let public = crate::crypto::PublicInfo::from_spki(&record.spki_der);
        if let Ok(p) = public {
            let _ = crate::crypto::key::key_identifier(&record.spki_der);
            let _ = p.signature_len();
        }
    }
}

/// A page of `GET /keys` or `GET /keys/{name}/versions`: the items' ids, attributes and
/// tags as the listing reads them, and `nextLink` resolved against the vault as the SDK's
/// pager does.
pub fn key_page(body: &[u8]) {
    let Ok(page) = azure_core::json::from_json::<
        _,
        azure_security_keyvault_keys::models::ListKeyPropertiesResult,
    >(body) else {
        return;
    };
    for item in &page.value {
        if let Ok(id) = item.resource_id() {
            let _ = (id.name.len(), id.version.as_deref().map(str::len));
        }
        let a = item.attributes.as_ref();
        let _ = a.and_then(|a| a.enabled);
        let _ = a.and_then(|a| a.created).map(|t| t.unix_timestamp());
    }
    next_link(page.next_link.as_deref());
}

/// A `GET /certificates/{name}` answer body (the certificate bundle): its `cer` becomes a
/// certificate object's attributes; and a page of `GET /certificates`.
pub fn certificate_bundle(body: &[u8]) {
    use azure_security_keyvault_certificates::models::{
        Certificate, ListCertificatePropertiesResult,
    };
    if let Ok(cert) = azure_core::json::from_json::<_, Certificate>(body) {
        let _ = cert.attributes.as_ref().and_then(|a| a.enabled);
        if let Some(der) = cert.cer {
            certificate_der(der);
        }
    }
    if let Ok(page) = azure_core::json::from_json::<_, ListCertificatePropertiesResult>(body) {
        for item in &page.value {
            let _ = item
                .id
                .as_deref()
                .and_then(|id| id.trim_end_matches('/').rsplit('/').next());
        }
        next_link(page.next_link.as_deref());
    }
}

fn next_link(link: Option<&str>) {
    if let Some(link) = link.filter(|l| !l.is_empty())
        && let Ok(base) = Url::parse("https://fuzz.vault.azure.net/keys?api-version=7.6")
    {
        let _ = base.join(link);
    }
}

/// An error answer (status and body) through the service → module error table.
pub fn error_body(status: u16, body: &[u8]) {
    let response = RawResponse::from_bytes(StatusCode::from(status), Headers::new(), body.to_vec());
    let e = azure_core::Error::with_message(
        azure_core::error::ErrorKind::HttpResponse {
            status: StatusCode::from(status),
            error_code: None,
            raw_response: Some(Box::new(response)),
        },
        "fuzzing",
    );
    let mapped = errors::map(e, "fuzzing");
    let _ = mapped.rv();
    let _ = mapped.to_string();
}

/// Certificate DER as every store hands it to the object layer.
pub fn certificate_der(der: Vec<u8>) {
    let record = CertRecord {
        stable_id: "cert:fuzz".into(),
        label: "fuzz".into(),
        id: None,
        der,
        authority: false,
        managed: false,
    };
    let _ = crate::object::attributes::certificate(&record, true, false, None);
}
