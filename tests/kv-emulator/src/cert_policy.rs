//! Certificate policies as the service stores them: the caller's fields over the
//! defaults the service fills in (recorded: RSA-2048 exportable key, PKCS#12 secret,
//! serverAuth + clientAuth, digitalSignature + keyEncipherment, 12 months, AutoRenew at
//! 80 %), or, for an imported certificate, what the certificate says about itself.

use serde_json::{Map, Value, json};

use crate::certificates::PKCS12;
use crate::crypto::{Curve, KeyMaterial, RSA_SIZES};
use crate::ids;
use crate::keys::Spec;
use crate::params;
use crate::reply::{ApiError, ApiResult};
use crate::x509;

pub fn default_lifetime_actions(self_issued: bool) -> Value {
    let action = if self_issued {
        "AutoRenew"
    } else {
        "EmailContacts"
    };
    json!([{"trigger": {"lifetime_percentage": 80}, "action": {"action_type": action}}])
}

/// The policy as the service stores it: the caller's fields over the defaults.
pub fn normalize_policy(
    given: &Map<String, Value>,
    key: Option<&KeyMaterial>,
    facts: Option<&x509::CertFacts>,
) -> ApiResult<Value> {
    let now = ids::now();
    let issuer = match params::opt_object(given, "issuer")? {
        Some(i) => Value::Object(i.clone()),
        None => json!({"name": if facts.is_some() { "Unknown" } else { "Self" }}),
    };
    let self_issued = issuer
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| n.eq_ignore_ascii_case("Self"));
    let mut key_props = params::opt_object(given, "key_props")?
        .cloned()
        .unwrap_or_default();
    key_props.entry("exportable").or_insert(true.into());
    key_props.entry("reuse_key").or_insert(false.into());
    if let Some(k) = key {
        let hsm = key_props
            .get("kty")
            .and_then(Value::as_str)
            .is_some_and(|t| t.ends_with("-HSM"));
        if let Value::Object(derived) = x509::key_props(
            k,
            key_props
                .get("exportable")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            hsm,
        ) {
            for (f, v) in derived {
                key_props.insert(f, v);
            }
        }
    }
    let mut secret_props = params::opt_object(given, "secret_props")?
        .cloned()
        .unwrap_or_default();
    secret_props.entry("contentType").or_insert(PKCS12.into());
    let mut x509_props = params::opt_object(given, "x509_props")?
        .cloned()
        .unwrap_or_default();
    match facts {
        Some(f) => {
            x509_props.insert("subject".into(), f.subject.clone().into());
            if !f.ekus.is_empty() {
                x509_props.insert("ekus".into(), json!(f.ekus));
            }
            if !f.key_usage.is_empty() {
                x509_props.insert("key_usage".into(), json!(f.key_usage));
            }
            if !f.dns_names.is_empty() || !f.emails.is_empty() {
                let mut sans = Map::new();
                if !f.dns_names.is_empty() {
                    sans.insert("dns_names".into(), json!(f.dns_names));
                }
                if !f.emails.is_empty() {
                    sans.insert("emails".into(), json!(f.emails));
                }
                x509_props.insert("sans".into(), Value::Object(sans));
            }
            let months = ((f.exp - f.nbf) / (86_400 * 30)).max(1);
            x509_props.insert("validity_months".into(), months.into());
        }
        None => {
            x509_props
                .entry("ekus")
                .or_insert(json!(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]));
            x509_props
                .entry("key_usage")
                .or_insert(json!(["digitalSignature", "keyEncipherment"]));
            x509_props.entry("validity_months").or_insert(12.into());
            x509_props
                .entry("basic_constraints")
                .or_insert(json!({"ca": false}));
        }
    }
    let lifetime_actions = match given.get("lifetime_actions") {
        Some(a @ Value::Array(_)) => a.clone(),
        None | Some(Value::Null) => default_lifetime_actions(self_issued),
        Some(_) => {
            return Err(ApiError::bad_parameter(
                "The parameter 'lifetime_actions' must be an array.",
            ));
        }
    };
    let enabled = params::opt_object(given, "attributes")?
        .and_then(|a| a.get("enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    Ok(json!({
        "key_props": key_props,
        "secret_props": secret_props,
        "x509_props": x509_props,
        "lifetime_actions": lifetime_actions,
        "issuer": issuer,
        "attributes": {"enabled": enabled, "created": now, "updated": now},
    }))
}

pub fn key_spec(key_props: Option<&Map<String, Value>>) -> ApiResult<(Spec, bool)> {
    let kty = key_props
        .and_then(|k| k.get("kty"))
        .and_then(Value::as_str)
        .unwrap_or("RSA");
    let hsm = kty.ends_with("-HSM");
    match kty {
        "RSA" | "RSA-HSM" => {
            let bits = key_props
                .and_then(|k| k.get("key_size"))
                .and_then(Value::as_u64)
                .unwrap_or(2048);
            let bits = u32::try_from(bits)
                .ok()
                .filter(|b| RSA_SIZES.contains(b))
                .ok_or_else(|| ApiError::bad_parameter(format!("Invalid key size {bits}.")))?;
            Ok((Spec::Rsa(bits, 65537), hsm))
        }
        "EC" | "EC-HSM" => {
            let crv = key_props
                .and_then(|k| k.get("crv"))
                .and_then(Value::as_str)
                .unwrap_or("P-256");
            let c = Curve::parse(crv)
                .ok_or_else(|| ApiError::bad_parameter(format!("Invalid curve name '{crv}'.")))?;
            Ok((Spec::Ec(c), hsm))
        }
        other => Err(ApiError::bad_parameter(format!(
            "Key type '{other}' is not supported for certificates by this emulator."
        ))),
    }
}
