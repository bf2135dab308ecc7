//! Typed reads of a caller's template, and the key facts templates carry (public keys,
//! curves, RSA exponents).

use crate::crypto::Curve;
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
    Curve::from_params_der(params).ok_or_else(|| {
        Error::AttributeValueInvalid(format!(
            "curve {oid} (P-256, P-384 and P-521 are supported)"
        ))
    })
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

/// A private key from a private-key template (C_CreateObject): RSA from CKA_MODULUS,
/// CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT and, together or not at all, CKA_PRIME_1/2,
/// CKA_EXPONENT_1/2 and CKA_COEFFICIENT; EC from CKA_EC_PARAMS and CKA_VALUE (the
/// private scalar). The key is checked (OpenSSL's RSA key check, a scalar below the
/// curve's order) before anything keeps it.
pub fn private_key_from_template(
    t: &TemplateView<'_>,
) -> Result<openssl::pkey::PKey<openssl::pkey::Private>> {
    use openssl::bn::BigNum;
    let key_type = t
        .ulong(CKA_KEY_TYPE)?
        .ok_or(Error::TemplateIncomplete("CKA_KEY_TYPE"))?;
    let num = |a: CK_ATTRIBUTE_TYPE, name: &'static str| -> Result<BigNum> {
        Ok(BigNum::from_slice(
            t.bytes(a).ok_or(Error::TemplateIncomplete(name))?,
        )?)
    };
    let invalid = |what: &str| Error::AttributeValueInvalid(format!("the private key: {what}"));
    match key_type {
        CKK_RSA => {
            let (n, e, d) = (
                num(CKA_MODULUS, "CKA_MODULUS")?,
                num(CKA_PUBLIC_EXPONENT, "CKA_PUBLIC_EXPONENT")?,
                num(CKA_PRIVATE_EXPONENT, "CKA_PRIVATE_EXPONENT")?,
            );
            if !(1024..=16384).contains(&n.num_bits()) {
                return Err(invalid("an RSA modulus of 1024 to 16384 bits"));
            }
            let crt = [
                CKA_PRIME_1,
                CKA_PRIME_2,
                CKA_EXPONENT_1,
                CKA_EXPONENT_2,
                CKA_COEFFICIENT,
            ];
            let given = crt.iter().filter(|a| t.bytes(**a).is_some()).count();
            let mut builder = openssl::rsa::RsaPrivateKeyBuilder::new(n, e, d)?;
            let rsa = match given {
                0 => builder.build(),
                5 => {
                    builder = builder
                        .set_factors(
                            num(CKA_PRIME_1, "CKA_PRIME_1")?,
                            num(CKA_PRIME_2, "CKA_PRIME_2")?,
                        )?
                        .set_crt_params(
                            num(CKA_EXPONENT_1, "CKA_EXPONENT_1")?,
                            num(CKA_EXPONENT_2, "CKA_EXPONENT_2")?,
                            num(CKA_COEFFICIENT, "CKA_COEFFICIENT")?,
                        )?;
                    let rsa = builder.build();
                    if !rsa.check_key().unwrap_or(false) {
                        return Err(invalid("the RSA components do not make one key"));
                    }
                    rsa
                }
                _ => {
                    return Err(Error::TemplateIncomplete(
                        "CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2 and CKA_COEFFICIENT go together",
                    ));
                }
            };
            let pkey = openssl::pkey::PKey::from_rsa(rsa)?;
            if given == 0 {
                // No factors to check: the key must at least sign what its public half verifies.
                check_pair(&pkey)
                    .map_err(|_| invalid("the RSA exponents do not match the modulus"))?;
            }
            Ok(pkey)
        }
        CKK_EC => {
            let curve = curve_from_params(
                t.bytes(CKA_EC_PARAMS)
                    .ok_or(Error::TemplateIncomplete("CKA_EC_PARAMS"))?,
            )?;
            let d = num(CKA_VALUE, "CKA_VALUE")?;
            let group = openssl::ec::EcGroup::from_curve_name(curve.nid())?;
            let mut ctx = openssl::bn::BigNumContext::new()?;
            let mut order = BigNum::new()?;
            group.order(&mut order, &mut ctx)?;
            if d.num_bits() == 0 || d >= order {
                return Err(invalid(
                    "an EC private value between 1 and the curve's order",
                ));
            }
            let mut point = openssl::ec::EcPoint::new(&group)?;
            point.mul_generator2(&group, &d, &mut ctx)?;
            let ec = openssl::ec::EcKey::from_private_components(&group, &d, &point)?;
            ec.check_key()
                .map_err(|_| invalid("the EC key does not check"))?;
            Ok(openssl::pkey::PKey::from_ec_key(ec)?)
        }
        other => Err(Error::AttributeValueInvalid(format!(
            "CKA_KEY_TYPE {other:#x}: RSA or EC private keys"
        ))),
    }
}

/// Signs a fixed digest with `pkey` and verifies it with its public half.
fn check_pair(pkey: &openssl::pkey::PKey<openssl::pkey::Private>) -> Result<()> {
    let md = openssl::hash::MessageDigest::sha256();
    let mut signer = openssl::sign::Signer::new(md, pkey)?;
    let signature = signer.sign_oneshot_to_vec(b"identify-pkcs11 key check")?;
    let mut verifier = openssl::sign::Verifier::new(md, pkey)?;
    if verifier.verify_oneshot(&signature, b"identify-pkcs11 key check")? {
        Ok(())
    } else {
        Err(Error::AttributeValueInvalid("key check".into()))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_reads_find_decode_and_refuse_bad_values() {
        let template: Template = vec![
            (CKA_LABEL, b"key".to_vec()),
            (CKA_TOKEN, vec![1]),
            (CKA_CLASS, CKO_CERTIFICATE.to_ne_bytes().to_vec()),
            (CKA_ID, vec![0xff]),
        ];
        let t = TemplateView(&template);
        assert_eq!(t.string(CKA_LABEL).unwrap().as_deref(), Some("key"));
        assert_eq!(t.bool(CKA_TOKEN).unwrap(), Some(true));
        assert_eq!(t.ulong(CKA_CLASS).unwrap(), Some(CKO_CERTIFICATE));
        assert_eq!(t.bytes(CKA_SUBJECT), None);
        assert!(t.string(CKA_ID).is_err());
        assert!(t.ulong(CKA_ID).is_err());
    }

    #[test]
    fn exponents_must_be_odd_and_above_one() {
        assert_eq!(check_exponent(&[0, 1, 0, 1]).unwrap(), vec![1, 0, 1]);
        assert!(check_exponent(&[0, 0, 1]).is_err());
        assert!(check_exponent(&[1, 0, 0]).is_err());
        assert!(check_exponent(&[]).is_err());
        assert!(check_exponent(&[1; 9]).is_err());
    }

    #[test]
    fn named_curves_only() {
        // DER OIDs: prime256v1, secp384r1, secp521r1, secp256k1.
        let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        assert_eq!(curve_from_params(&p256).unwrap(), Curve::P256);
        let p384 = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
        assert_eq!(curve_from_params(&p384).unwrap(), Curve::P384);
        let p521 = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
        assert_eq!(curve_from_params(&p521).unwrap(), Curve::P521);
        let k256 = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];
        assert!(curve_from_params(&k256).is_err());
        assert!(curve_from_params(b"P-256").is_err());
    }

    #[test]
    fn public_keys_from_templates_round_trip() {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let template: Template = vec![
            (CKA_KEY_TYPE, CKK_RSA.to_ne_bytes().to_vec()),
            (CKA_MODULUS, rsa.n().to_vec()),
            (CKA_PUBLIC_EXPONENT, rsa.e().to_vec()),
        ];
        let spki = public_key_from_template(&TemplateView(&template)).unwrap();
        let pkey = openssl::pkey::PKey::from_rsa(rsa).unwrap();
        assert_eq!(spki, pkey.public_key_to_der().unwrap());
        let incomplete: Template = vec![(CKA_KEY_TYPE, CKK_RSA.to_ne_bytes().to_vec())];
        assert!(matches!(
            public_key_from_template(&TemplateView(&incomplete)),
            Err(Error::TemplateIncomplete("CKA_MODULUS"))
        ));
    }
}
