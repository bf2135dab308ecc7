//! X.509 for certificates: issuing a self-signed certificate from a Key Vault policy,
//! the CSR of a pending operation, and reading an imported certificate's validity, key
//! usage, extended key usage and names back into a policy.

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::stack::Stack;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509Name, X509NameBuilder, X509Req, X509ReqBuilder};
use serde_json::{Value, json};
use x509_cert::der::Decode;
use x509_cert::der::oid::AssociatedOid;

use crate::crypto::{Curve, Family, KeyMaterial};
use crate::ids;
use crate::reply::{ApiError, ApiResult};

pub const KEY_USAGES: [&str; 9] = [
    "digitalSignature",
    "nonRepudiation",
    "keyEncipherment",
    "dataEncipherment",
    "keyAgreement",
    "keyCertSign",
    "cRLSign",
    "encipherOnly",
    "decipherOnly",
];

fn internal(e: openssl::error::ErrorStack) -> ApiError {
    ApiError::new(
        500,
        "InternalServerError",
        format!("certificate failure: {e}"),
    )
}

/// "CN=a, O=b" → an X.509 name.
pub fn parse_subject(subject: &str) -> ApiResult<X509Name> {
    let mut b = X509NameBuilder::new().map_err(internal)?;
    let mut any = false;
    for part in subject.split([',', ';']) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| ApiError::bad_parameter(format!("Invalid subject '{subject}'.")))?;
        let field = match k.trim().to_ascii_uppercase().as_str() {
            "E" => "emailAddress".to_string(),
            other => other.to_string(),
        };
        b.append_entry_by_text(&field, v.trim()).map_err(|_| {
            ApiError::bad_parameter(format!(
                "Invalid subject '{subject}': unknown attribute '{k}'."
            ))
        })?;
        any = true;
    }
    if !any {
        return Err(ApiError::bad_parameter(
            "The certificate subject must not be empty.",
        ));
    }
    Ok(b.build())
}

pub fn subject_string(cert: &X509) -> String {
    cert.subject_name()
        .entries()
        .filter_map(|e| {
            let key = e.object().nid().short_name().ok()?;
            let val = e.data().to_string().ok()?;
            Some(format!("{key}={val}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Key operations that a certificate's key usage allows (FACTS.md §2).
pub fn key_ops_for_usage(usages: &[String], family: Family) -> ApiResult<Vec<String>> {
    let mut ops: Vec<&str> = Vec::new();
    for u in usages {
        let add: &[&str] = match u.as_str() {
            "digitalSignature" | "nonRepudiation" | "keyCertSign" | "cRLSign" => {
                &["sign", "verify"]
            }
            "keyEncipherment" => &["wrapKey", "unwrapKey"],
            "dataEncipherment" => &["encrypt", "decrypt"],
            _ => &[],
        };
        for op in add {
            if !ops.contains(op) {
                ops.push(op);
            }
        }
    }
    if matches!(family, Family::Ec(_)) {
        let bad: Vec<String> = ops
            .iter()
            .filter(|o| !["sign", "verify"].contains(o))
            .map(|o| format!("\"{o}\""))
            .collect();
        if !bad.is_empty() {
            return Err(ApiError::bad_parameter(format!(
                "Unsupported key operation(s): {}. Supported values are \"sign\", \"verify\".",
                bad.join(", ")
            )));
        }
    }
    Ok(ops.into_iter().map(str::to_string).collect())
}

fn digest_for(family: Family) -> MessageDigest {
    match family {
        Family::Ec(Curve::P384) => MessageDigest::sha384(),
        Family::Ec(Curve::P521) => MessageDigest::sha512(),
        _ => MessageDigest::sha256(),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The pieces of `x509_props` that go into a certificate or CSR.
pub struct Profile {
    pub subject: X509Name,
    pub key_usage: Vec<String>,
    pub ekus: Vec<String>,
    pub dns_names: Vec<String>,
    pub emails: Vec<String>,
    pub validity_months: u32,
}

impl Profile {
    pub fn from_policy(x509_props: &Value) -> ApiResult<Profile> {
        let subject = x509_props
            .get("subject")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let sans = x509_props.get("sans");
        let dns_names = strings(sans.and_then(|s| s.get("dns_names")));
        let emails = strings(sans.and_then(|s| s.get("emails")));
        let subject = if subject.is_empty() {
            match dns_names.first() {
                Some(d) => parse_subject(&format!("CN={d}"))?,
                None => {
                    return Err(ApiError::bad_parameter(
                        "The policy needs a subject or subject alternative names.",
                    ));
                }
            }
        } else {
            parse_subject(subject)?
        };
        let key_usage = strings(x509_props.get("key_usage"));
        for u in &key_usage {
            if !KEY_USAGES.contains(&u.as_str()) {
                return Err(ApiError::bad_parameter(format!("Invalid key usage '{u}'.")));
            }
        }
        let months = x509_props
            .get("validity_months")
            .and_then(Value::as_u64)
            .unwrap_or(12);
        let validity_months = u32::try_from(months)
            .ok()
            .filter(|m| (1..=1200).contains(m))
            .ok_or_else(|| ApiError::bad_parameter(format!("Invalid validity_months {months}.")))?;
        Ok(Profile {
            subject,
            key_usage,
            ekus: strings(x509_props.get("ekus")),
            dns_names,
            emails,
            validity_months,
        })
    }
}

fn key_usage_ext(usages: &[String]) -> ApiResult<Option<openssl::x509::X509Extension>> {
    if usages.is_empty() {
        return Ok(None);
    }
    let mut ku = KeyUsage::new();
    ku.critical();
    for u in usages {
        match u.as_str() {
            "digitalSignature" => ku.digital_signature(),
            "nonRepudiation" => ku.non_repudiation(),
            "keyEncipherment" => ku.key_encipherment(),
            "dataEncipherment" => ku.data_encipherment(),
            "keyAgreement" => ku.key_agreement(),
            "keyCertSign" => ku.key_cert_sign(),
            "cRLSign" => ku.crl_sign(),
            "encipherOnly" => ku.encipher_only(),
            _ => ku.decipher_only(),
        };
    }
    Ok(Some(ku.build().map_err(internal)?))
}

fn eku_ext(ekus: &[String]) -> ApiResult<Option<openssl::x509::X509Extension>> {
    if ekus.is_empty() {
        return Ok(None);
    }
    let mut e = ExtendedKeyUsage::new();
    for oid in ekus {
        if !oid
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(ApiError::bad_parameter(format!(
                "Invalid extended key usage '{oid}'."
            )));
        }
        e.other(oid);
    }
    Ok(Some(e.build().map_err(internal)?))
}

/// Issues the self-signed certificate of a `Self` issuer policy. Returns the DER and its
/// validity (nbf = created − 10 min, exp = created + validity, as the service does).
pub fn self_signed(key: &KeyMaterial, profile: &Profile) -> ApiResult<(Vec<u8>, i64, i64)> {
    let now = ids::now();
    let nbf = now - 600;
    let exp = now + i64::from(profile.validity_months) * 365 * 86_400 / 12;
    let mut b = X509Builder::new().map_err(internal)?;
    b.set_version(2).map_err(internal)?;
    let mut serial_bytes = ids::random_bytes(16);
    serial_bytes[0] &= 0x7f;
    let serial = BigNum::from_slice(&serial_bytes)
        .and_then(|bn| Asn1Integer::from_bn(&bn))
        .map_err(internal)?;
    b.set_serial_number(&serial).map_err(internal)?;
    b.set_subject_name(&profile.subject).map_err(internal)?;
    b.set_issuer_name(&profile.subject).map_err(internal)?;
    b.set_pubkey(key.pkey()).map_err(internal)?;
    let (not_before, not_after) = (
        Asn1Time::from_unix(nbf).map_err(internal)?,
        Asn1Time::from_unix(exp).map_err(internal)?,
    );
    b.set_not_before(&not_before).map_err(internal)?;
    b.set_not_after(&not_after).map_err(internal)?;
    if let Some(ku) = key_usage_ext(&profile.key_usage)? {
        b.append_extension(ku).map_err(internal)?;
    }
    b.append_extension(BasicConstraints::new().build().map_err(internal)?)
        .map_err(internal)?;
    if let Some(eku) = eku_ext(&profile.ekus)? {
        b.append_extension(eku).map_err(internal)?;
    }
    if !profile.dns_names.is_empty() || !profile.emails.is_empty() {
        let mut san = SubjectAlternativeName::new();
        for d in &profile.dns_names {
            san.dns(d);
        }
        for e in &profile.emails {
            san.email(e);
        }
        let ext = san
            .build(&b.x509v3_context(None, None))
            .map_err(|_| ApiError::bad_parameter("Invalid subject alternative names."))?;
        b.append_extension(ext).map_err(internal)?;
    }
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .map_err(internal)?;
    b.append_extension(ski).map_err(internal)?;
    // With no issuer given the context is the certificate itself (self-signed).
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&b.x509v3_context(None, None))
        .map_err(internal)?;
    b.append_extension(aki).map_err(internal)?;
    b.sign(key.pkey(), digest_for(key.family))
        .map_err(internal)?;
    let der = b.build().to_der().map_err(internal)?;
    Ok((der, nbf, exp))
}

/// The PKCS#10 request a pending operation shows.
pub fn csr(key: &KeyMaterial, profile: &Profile) -> ApiResult<Vec<u8>> {
    let mut b = X509ReqBuilder::new().map_err(internal)?;
    b.set_subject_name(&profile.subject).map_err(internal)?;
    b.set_pubkey(key.pkey()).map_err(internal)?;
    let mut exts = Stack::new().map_err(internal)?;
    if let Some(ku) = key_usage_ext(&profile.key_usage)? {
        exts.push(ku).map_err(internal)?;
    }
    if let Some(eku) = eku_ext(&profile.ekus)? {
        exts.push(eku).map_err(internal)?;
    }
    exts.push(BasicConstraints::new().build().map_err(internal)?)
        .map_err(internal)?;
    b.add_extensions(&exts).map_err(internal)?;
    b.sign(key.pkey(), digest_for(key.family))
        .map_err(internal)?;
    let req: X509Req = b.build();
    req.to_der().map_err(internal)
}

fn epoch(t: &openssl::asn1::Asn1TimeRef) -> i64 {
    Asn1Time::from_unix(0)
        .ok()
        .and_then(|zero| zero.diff(t).ok())
        .map_or(0, |d| i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// What a certificate says about itself, for an imported certificate's policy.
pub struct CertFacts {
    pub nbf: i64,
    pub exp: i64,
    pub subject: String,
    pub key_usage: Vec<String>,
    pub ekus: Vec<String>,
    pub dns_names: Vec<String>,
    pub emails: Vec<String>,
}

pub fn facts(cert: &X509) -> ApiResult<CertFacts> {
    let der = cert.to_der().map_err(internal)?;
    let parsed = x509_cert::Certificate::from_der(&der)
        .map_err(|_| ApiError::bad_parameter("The certificate could not be parsed."))?;
    let mut key_usage = Vec::new();
    let mut ekus = Vec::new();
    for ext in parsed.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id == x509_cert::ext::pkix::KeyUsage::OID {
            if let Ok(ku) = x509_cert::ext::pkix::KeyUsage::from_der(ext.extn_value.as_bytes()) {
                let flags = [
                    (ku.digital_signature(), "digitalSignature"),
                    (ku.non_repudiation(), "nonRepudiation"),
                    (ku.key_encipherment(), "keyEncipherment"),
                    (ku.data_encipherment(), "dataEncipherment"),
                    (ku.key_agreement(), "keyAgreement"),
                    (ku.key_cert_sign(), "keyCertSign"),
                    (ku.crl_sign(), "cRLSign"),
                    (ku.encipher_only(), "encipherOnly"),
                    (ku.decipher_only(), "decipherOnly"),
                ];
                key_usage = flags
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, n)| n.to_string())
                    .collect();
            }
        } else if ext.extn_id == x509_cert::ext::pkix::ExtendedKeyUsage::OID {
            if let Ok(eku) =
                x509_cert::ext::pkix::ExtendedKeyUsage::from_der(ext.extn_value.as_bytes())
            {
                ekus = eku.0.iter().map(ToString::to_string).collect();
            }
        }
    }
    let mut dns_names = Vec::new();
    let mut emails = Vec::new();
    if let Some(names) = cert.subject_alt_names() {
        for n in &names {
            if let Some(d) = n.dnsname() {
                dns_names.push(d.to_string());
            }
            if let Some(e) = n.email() {
                emails.push(e.to_string());
            }
        }
    }
    Ok(CertFacts {
        nbf: epoch(cert.not_before()),
        exp: epoch(cert.not_after()),
        subject: subject_string(cert),
        key_usage,
        ekus,
        dns_names,
        emails,
    })
}

/// Key properties of a policy for a key.
pub fn key_props(key: &KeyMaterial, exportable: bool, hsm: bool) -> Value {
    match key.family {
        Family::Rsa { bits } => json!({
            "exportable": exportable, "kty": if hsm { "RSA-HSM" } else { "RSA" }, "key_size": bits, "reuse_key": false
        }),
        Family::Ec(c) => json!({
            "exportable": exportable, "kty": if hsm { "EC-HSM" } else { "EC" }, "key_size": key.bits(), "crv": c.name(), "reuse_key": false
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_carries_policy() {
        let key = KeyMaterial::generate_ec(Curve::P256).unwrap();
        let profile = Profile::from_policy(&json!({
            "subject": "CN=test, O=Emulator",
            "key_usage": ["digitalSignature"],
            "ekus": ["1.3.6.1.5.5.7.3.2"],
            "sans": {"dns_names": ["a.example"]},
            "validity_months": 12
        }))
        .unwrap();
        let (der, nbf, exp) = self_signed(&key, &profile).unwrap();
        let cert = X509::from_der(&der).unwrap();
        let f = facts(&cert).unwrap();
        assert_eq!(f.subject, "CN=test, O=Emulator");
        assert_eq!(f.key_usage, vec!["digitalSignature"]);
        assert_eq!(f.ekus, vec!["1.3.6.1.5.5.7.3.2"]);
        assert_eq!(f.dns_names, vec!["a.example"]);
        assert_eq!((f.nbf, f.exp), (nbf, exp));
        assert_eq!(exp - nbf, 365 * 86_400 + 600);
        assert!(cert.verify(&cert.public_key().unwrap()).unwrap());
        assert!(!csr(&key, &profile).unwrap().is_empty());
    }

    #[test]
    fn usage_maps_to_key_ops() {
        let rsa = Family::Rsa { bits: 2048 };
        let ops =
            key_ops_for_usage(&["digitalSignature".into(), "keyEncipherment".into()], rsa).unwrap();
        assert_eq!(ops, vec!["sign", "verify", "wrapKey", "unwrapKey"]);
        let e =
            key_ops_for_usage(&["keyEncipherment".into()], Family::Ec(Curve::P256)).unwrap_err();
        assert_eq!(
            e.message,
            "Unsupported key operation(s): \"wrapKey\", \"unwrapKey\". Supported values are \"sign\", \"verify\"."
        );
        assert!(parse_subject("nonsense").is_err());
    }
}
