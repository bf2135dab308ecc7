//! Typed reads of a caller's template, and the key facts templates carry (public keys,
//! curves, RSA exponents).

use crate::backend::Curve;
use crate::error::{Error, Result};
use crate::object::attributes::{read_bool, read_ulong};
use cryptoki_sys::*;

/// A template as decoded by `ffi/`: attribute types with their value bytes.
pub type Template = Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>;

pub fn check_exponent(e: &[u8]) -> Result<Vec<u8>> {
    let trimmed: Vec<u8> = e.iter().copied().skip_while(|b| *b == 0).collect();
    let odd = trimmed.last().is_some_and(|b| b & 1 == 1);
    if trimmed.is_empty() || trimmed.len() > 8 || !odd || trimmed == [1] {
        return Err(Error::AttributeValueInvalid(
            "CKA_PUBLIC_EXPONENT must be odd and > 1 (65537 is usual)".into(),
        ));
    }
    Ok(trimmed)
}

pub fn curve_from_params(params: &[u8]) -> Result<Curve> {
    use x509_cert::der::Decode;
    let oid = x509_cert::der::asn1::ObjectIdentifier::from_der(params).map_err(|_| {
        Error::AttributeValueInvalid("CKA_EC_PARAMS must be a DER named-curve OID".into())
    })?;
    match oid.to_string().as_str() {
        "1.2.840.10045.3.1.7" => Ok(Curve::P256),
        "1.3.132.0.34" => Ok(Curve::P384),
        "1.3.132.0.35" => Ok(Curve::P521),
        other => Err(Error::AttributeValueInvalid(format!(
            "curve {other} (P-256, P-384 and P-521 are supported)"
        ))),
    }
}

/// A DER SubjectPublicKeyInfo from a public-key template (RSA modulus + exponent, or EC
/// params + point).
pub fn public_key_from_template(t: &TemplateView<'_>) -> Result<Vec<u8>> {
    let key_type = t
        .ulong(CKA_KEY_TYPE)?
        .ok_or(Error::TemplateIncomplete("CKA_KEY_TYPE"))?;
    let pkey = match key_type {
        CKK_RSA => {
            let n = t
                .bytes(CKA_MODULUS)
                .ok_or(Error::TemplateIncomplete("CKA_MODULUS"))?;
            let e = t
                .bytes(CKA_PUBLIC_EXPONENT)
                .ok_or(Error::TemplateIncomplete("CKA_PUBLIC_EXPONENT"))?;
            let rsa = openssl::rsa::Rsa::from_public_components(
                openssl::bn::BigNum::from_slice(n)?,
                openssl::bn::BigNum::from_slice(e)?,
            )?;
            openssl::pkey::PKey::from_rsa(rsa)?
        }
        CKK_EC => {
            let curve = curve_from_params(
                t.bytes(CKA_EC_PARAMS)
                    .ok_or(Error::TemplateIncomplete("CKA_EC_PARAMS"))?,
            )?;
            let point = t
                .bytes(CKA_EC_POINT)
                .ok_or(Error::TemplateIncomplete("CKA_EC_POINT"))?;
            // CKA_EC_POINT is a DER OCTET STRING; some callers give the raw point.
            use x509_cert::der::Decode;
            let raw = x509_cert::der::asn1::OctetStringRef::from_der(point)
                .map(|o| o.as_bytes().to_vec())
                .unwrap_or_else(|_| point.to_vec());
            let group = openssl::ec::EcGroup::from_curve_name(curve.nid())?;
            let mut ctx = openssl::bn::BigNumContext::new()?;
            let p = openssl::ec::EcPoint::from_bytes(&group, &raw, &mut ctx).map_err(|_| {
                Error::AttributeValueInvalid("CKA_EC_POINT is not a point on the curve".into())
            })?;
            openssl::pkey::PKey::from_ec_key(openssl::ec::EcKey::from_public_key(&group, &p)?)?
        }
        other => {
            return Err(Error::AttributeValueInvalid(format!(
                "CKA_KEY_TYPE {other:#x}"
            )));
        }
    };
    Ok(pkey.public_key_to_der()?)
}

/// Typed reads of a caller's template.
pub struct TemplateView<'a>(pub &'a Template);

impl TemplateView<'_> {
    pub fn bytes(&self, t: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(a, _)| *a == t)
            .map(|(_, v)| v.as_slice())
    }
    pub fn ulong(&self, t: CK_ATTRIBUTE_TYPE) -> Result<Option<CK_ULONG>> {
        self.bytes(t).map(read_ulong).transpose()
    }
    pub fn bool(&self, t: CK_ATTRIBUTE_TYPE) -> Result<Option<bool>> {
        self.bytes(t).map(read_bool).transpose()
    }
    pub fn string(&self, t: CK_ATTRIBUTE_TYPE) -> Result<Option<String>> {
        self.bytes(t)
            .map(|v| {
                String::from_utf8(v.to_vec()).map_err(|_| {
                    Error::AttributeValueInvalid(format!("attribute {t:#x} must be UTF-8"))
                })
            })
            .transpose()
    }
}
