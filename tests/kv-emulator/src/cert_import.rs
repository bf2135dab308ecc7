//! Certificate import (PFX with its password, or PEM with a PKCS#8 key) and seeding from
//! files: the leaf is the certificate whose public key matches the private key; the key
//! operations come from its key usage.

use std::sync::Arc;

use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::x509::X509;
use serde_json::{Map, Value};

use crate::b64;
use crate::cert_policy::normalize_policy;
use crate::certificates::{PEM, PKCS12, bundle, check_name_free, lc, store_version};
use crate::crypto::{Family, KeyMaterial};
use crate::ids;
use crate::keys;
use crate::params;
use crate::pipeline::Ctx;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::state::{CertAttrs, CertVersion};
use crate::x509;

fn parse_pem_bundle(text: &str) -> ApiResult<(PKey<openssl::pkey::Private>, Vec<X509>)> {
    if text.contains("-----BEGIN RSA PRIVATE KEY-----")
        || text.contains("-----BEGIN EC PRIVATE KEY-----")
    {
        return Err(ApiError::bad_parameter(
            "The specified PEM X.509 certificate content is in an unexpected format. Key Vault will only accept a key in PKCS#8 format.",
        ));
    }
    let key_start = text.find("-----BEGIN PRIVATE KEY-----").ok_or_else(|| {
        ApiError::bad_parameter("The specified PEM content must contain the private key (PKCS#8) as well as the X.509 certificates.")
    })?;
    let key_end = text[key_start..]
        .find("-----END PRIVATE KEY-----")
        .map(|i| key_start + i + "-----END PRIVATE KEY-----".len())
        .ok_or_else(|| ApiError::bad_parameter("The PEM private key is not terminated."))?;
    let pkey = PKey::private_key_from_pem(&text.as_bytes()[key_start..key_end])
        .map_err(|_| ApiError::bad_parameter("The PEM private key could not be read."))?;
    let certs = X509::stack_from_pem(text.as_bytes())
        .map_err(|_| ApiError::bad_parameter("The PEM certificates could not be read."))?;
    Ok((pkey, certs))
}

pub fn import(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let body = params::object(ctx.body, "request body")?;
    let value = params::req_str(body, "value")?;
    let pwd = params::opt_str(body, "pwd")?.unwrap_or("");
    let given = params::opt_object(body, "policy")?
        .cloned()
        .unwrap_or_default();
    let content_type = given
        .get("secret_props")
        .and_then(|s| s.get("contentType"))
        .and_then(Value::as_str)
        .unwrap_or(PKCS12);
    let (pkey, mut certs) = if content_type.eq_ignore_ascii_case(PEM) {
        let text = if value.contains("-----BEGIN") {
            value.to_string()
        } else {
            b64::decode(value.trim())
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ApiError::bad_parameter(
                        "The specified PEM X.509 certificate content is in an unexpected format.",
                    )
                })?
        };
        parse_pem_bundle(&text)?
    } else {
        let der = b64::decode(value.trim())
            .ok_or_else(|| ApiError::bad_parameter("The certificate value is not valid base64."))?;
        let p12 = Pkcs12::from_der(&der).map_err(|_| {
            ApiError::bad_parameter("The specified PKCS#12 X.509 certificate content is in an unexpected format. Check if the certificate is in a valid PKCS#12 format.")
        })?;
        let parsed = p12
            .parse2(pwd)
            .map_err(|_| ApiError::bad_parameter("The specified PKCS#12 X.509 certificate content can not be read. Please check if certificate is in valid PKCS#12 format or the password is correct."))?;
        let pkey = parsed
            .pkey
            .ok_or_else(|| ApiError::bad_parameter("The PKCS#12 content has no private key."))?;
        let mut certs: Vec<X509> = parsed.cert.into_iter().collect();
        certs.extend(parsed.ca.into_iter().flatten());
        (pkey, certs)
    };
    let leaf_index = certs
        .iter()
        .position(|c| c.public_key().map(|k| k.public_eq(&pkey)).unwrap_or(false))
        .ok_or_else(|| {
            ApiError::bad_parameter("No certificate in the content matches its private key.")
        })?;
    let leaf = certs.remove(leaf_index);
    let material = KeyMaterial::from_pkey(pkey)?;
    let facts = x509::facts(&leaf)?;
    let key_ops = if facts.key_usage.is_empty() {
        keys::supported_ops(material.family)
            .iter()
            .map(std::string::ToString::to_string)
            .collect()
    } else {
        x509::key_ops_for_usage(&facts.key_usage, material.family)?
    };
    let mut policy = normalize_policy(&given, Some(&material), Some(&facts))?;
    if let Some(sp) = policy.get_mut("secret_props") {
        sp["contentType"] = content_type.to_ascii_lowercase().into();
    }
    let enabled = params::opt_object(body, "attributes")?
        .and_then(|a| a.get("enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let hsm = policy
        .pointer("/key_props/kty")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("-HSM"));
    ctx.c.hsm_allowed(hsm)?;
    let kty = match (material.family, hsm) {
        (Family::Rsa { .. }, false) => "RSA",
        (Family::Rsa { .. }, true) => "RSA-HSM",
        (Family::Ec(_), false) => "EC",
        (Family::Ec(_), true) => "EC-HSM",
    };
    let now = ids::now();
    let version = ids::new_version();
    let cert = CertVersion {
        version: version.clone(),
        der: leaf
            .to_der()
            .map_err(|e| ApiError::new(500, "InternalServerError", e.to_string()))?,
        chain: certs.iter().filter_map(|c| c.to_der().ok()).collect(),
        attrs: CertAttrs {
            enabled,
            nbf: facts.nbf,
            exp: facts.exp,
            created: now,
            updated: now,
        },
        tags: params::tags(body)?.unwrap_or_default(),
        content_type: content_type.to_ascii_lowercase(),
        policy,
    };
    let mut st = ctx.c.lock();
    check_name_free(&st, name)?;
    store_version(
        &mut st,
        name,
        version,
        Arc::new(material),
        kty.to_string(),
        key_ops,
        cert,
    )?;
    let obj = st
        .certs
        .get(&lc(name))
        .ok_or_else(|| ApiError::certificate_not_found(name))?;
    let v = obj
        .current()
        .ok_or_else(|| ApiError::certificate_not_found(name))?;
    Ok(Reply::ok(bundle(ctx, obj, v)))
}

/// Seeds a certificate with its key (from `--seed-dir`).
pub fn seed(
    c: &crate::state::Container,
    name: &str,
    material: KeyMaterial,
    cert: &X509,
    version: &str,
) -> ApiResult<()> {
    let facts = x509::facts(cert)?;
    let key_ops = if facts.key_usage.is_empty() {
        keys::supported_ops(material.family)
            .iter()
            .map(std::string::ToString::to_string)
            .collect()
    } else {
        x509::key_ops_for_usage(&facts.key_usage, material.family).unwrap_or_else(|_| {
            keys::supported_ops(material.family)
                .iter()
                .map(std::string::ToString::to_string)
                .collect()
        })
    };
    let policy = normalize_policy(&Map::new(), Some(&material), Some(&facts))?;
    let kty = match material.family {
        Family::Rsa { .. } => "RSA",
        Family::Ec(_) => "EC",
    };
    let now = ids::now();
    let cert_version = CertVersion {
        version: version.to_string(),
        der: cert
            .to_der()
            .map_err(|e| ApiError::new(500, "InternalServerError", e.to_string()))?,
        chain: Vec::new(),
        attrs: CertAttrs {
            enabled: true,
            nbf: facts.nbf,
            exp: facts.exp,
            created: now,
            updated: now,
        },
        tags: Map::new(),
        content_type: PKCS12.to_string(),
        policy,
    };
    let mut st = c.lock();
    store_version(
        &mut st,
        name,
        version.to_string(),
        Arc::new(material),
        kty.to_string(),
        key_ops,
        cert_version,
    )
}
