//! The one place where backend records become PKCS#11 attributes.

use crate::backend::{CertRecord, KeyRecord};
use crate::crypto::{KeyKind, PublicInfo};
use crate::error::{Error, Result};
use cryptoki_sys::*;
use std::collections::BTreeMap;
use x509_cert::der::{Decode, Encode};

/// The module's vendor attribute: the backend's full identifier of a key (UTF-8), e.g. a
/// file path or a Key Vault key id. Also in include/identify_pkcs11.h.
pub const CKA_IDENTIFY_BACKEND_KEY_ID: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 0x4944_0001;

/// Attribute values in their PKCS#11 byte encoding.
pub type Attributes = BTreeMap<CK_ATTRIBUTE_TYPE, Vec<u8>>;

/// Attributes that exist on private keys but are never revealed.
pub const SENSITIVE_RSA: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_PRIVATE_EXPONENT,
    CKA_PRIME_1,
    CKA_PRIME_2,
    CKA_EXPONENT_1,
    CKA_EXPONENT_2,
    CKA_COEFFICIENT,
];
pub const SENSITIVE_EC: &[CK_ATTRIBUTE_TYPE] = &[CKA_VALUE];

pub fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

pub fn bool_(v: bool) -> Vec<u8> {
    vec![if v { CK_TRUE } else { CK_FALSE }]
}

/// Reads a CK_ULONG attribute value given by a caller.
pub fn read_ulong(v: &[u8]) -> Result<CK_ULONG> {
    let bytes: [u8; std::mem::size_of::<CK_ULONG>()] = v.try_into().map_err(|_| {
        Error::AttributeValueInvalid(format!("expected a CK_ULONG, got {} bytes", v.len()))
    })?;
    Ok(CK_ULONG::from_ne_bytes(bytes))
}

/// Reads a CK_BBOOL attribute value given by a caller.
pub fn read_bool(v: &[u8]) -> Result<bool> {
    match v {
        [b] => Ok(*b != CK_FALSE),
        _ => Err(Error::AttributeValueInvalid(format!(
            "expected a CK_BBOOL, got {} bytes",
            v.len()
        ))),
    }
}

fn key_common(
    attrs: &mut Attributes,
    key: &KeyRecord,
    public: &PublicInfo,
    label: &str,
    id: &[u8],
    modifiable: bool,
) -> Result<()> {
    attrs.insert(CKA_TOKEN, bool_(true));
    attrs.insert(CKA_MODIFIABLE, bool_(modifiable));
    attrs.insert(CKA_DESTROYABLE, bool_(modifiable));
    attrs.insert(CKA_COPYABLE, bool_(false));
    attrs.insert(CKA_LABEL, label.as_bytes().to_vec());
    attrs.insert(CKA_ID, id.to_vec());
    attrs.insert(CKA_DERIVE, bool_(false));
    attrs.insert(CKA_LOCAL, bool_(key.local));
    attrs.insert(CKA_START_DATE, Vec::new());
    attrs.insert(CKA_END_DATE, Vec::new());
    attrs.insert(CKA_PUBLIC_KEY_INFO, key.spki_der.clone());
    attrs.insert(
        CKA_IDENTIFY_BACKEND_KEY_ID,
        key.backend_key_id.as_bytes().to_vec(),
    );
    attrs.insert(CKA_ALLOWED_MECHANISMS, Vec::new());
    match public.kind {
        KeyKind::Rsa => {
            let rsa = public.pkey.rsa()?;
            attrs.insert(CKA_KEY_TYPE, ulong(CKK_RSA));
            attrs.insert(CKA_MODULUS, rsa.n().to_vec());
            attrs.insert(CKA_PUBLIC_EXPONENT, rsa.e().to_vec());
            attrs.insert(
                CKA_MODULUS_BITS,
                ulong(CK_ULONG::try_from(public.bits).map_err(|e| Error::Internal(e.to_string()))?),
            );
            attrs.insert(
                CKA_KEY_GEN_MECHANISM,
                ulong(if key.local {
                    CKM_RSA_PKCS_KEY_PAIR_GEN
                } else {
                    CK_UNAVAILABLE_INFORMATION
                }),
            );
        }
        KeyKind::Ec => {
            let (params, point) = crate::crypto::key::ec_params_and_point(&key.spki_der)?;
            attrs.insert(CKA_KEY_TYPE, ulong(CKK_EC));
            attrs.insert(CKA_EC_PARAMS, params);
            attrs.insert(CKA_EC_POINT, point);
            attrs.insert(
                CKA_KEY_GEN_MECHANISM,
                ulong(if key.local {
                    CKM_EC_KEY_PAIR_GEN
                } else {
                    CK_UNAVAILABLE_INFORMATION
                }),
            );
        }
    }
    Ok(())
}

/// Attributes of the private key object of a key version.
pub fn private_key(
    key: &KeyRecord,
    public: &PublicInfo,
    label: &str,
    id: &[u8],
    subject: &[u8],
    private: bool,
    modifiable: bool,
) -> Result<Attributes> {
    let mut a = Attributes::new();
    a.insert(CKA_CLASS, ulong(CKO_PRIVATE_KEY));
    a.insert(CKA_PRIVATE, bool_(private));
    key_common(&mut a, key, public, label, id, modifiable)?;
    a.insert(CKA_SUBJECT, subject.to_vec());
    a.insert(CKA_SENSITIVE, bool_(true));
    a.insert(CKA_ALWAYS_SENSITIVE, bool_(true));
    a.insert(CKA_EXTRACTABLE, bool_(false));
    a.insert(CKA_NEVER_EXTRACTABLE, bool_(true));
    a.insert(CKA_SIGN, bool_(key.usage.sign));
    a.insert(CKA_SIGN_RECOVER, bool_(false));
    a.insert(
        CKA_DECRYPT,
        bool_(key.usage.decrypt && public.kind == KeyKind::Rsa),
    );
    a.insert(
        CKA_UNWRAP,
        bool_(key.usage.unwrap && public.kind == KeyKind::Rsa),
    );
    a.insert(CKA_WRAP_WITH_TRUSTED, bool_(false));
    a.insert(CKA_ALWAYS_AUTHENTICATE, bool_(false));
    Ok(a)
}

/// Attributes of the public key object of a key version.
pub fn public_key(
    key: &KeyRecord,
    public: &PublicInfo,
    label: &str,
    id: &[u8],
    subject: &[u8],
    modifiable: bool,
) -> Result<Attributes> {
    let mut a = Attributes::new();
    a.insert(CKA_CLASS, ulong(CKO_PUBLIC_KEY));
    a.insert(CKA_PRIVATE, bool_(false));
    key_common(&mut a, key, public, label, id, modifiable)?;
    a.insert(CKA_SUBJECT, subject.to_vec());
    a.insert(CKA_VERIFY, bool_(key.usage.sign));
    a.insert(CKA_VERIFY_RECOVER, bool_(false));
    a.insert(
        CKA_ENCRYPT,
        bool_(key.usage.decrypt && public.kind == KeyKind::Rsa),
    );
    // No C_WrapKey here (the secret keys this module holds come from C_UnwrapKey and
    // are read out, if at all, through CKA_VALUE).
    a.insert(CKA_WRAP, bool_(false));
    a.insert(CKA_TRUSTED, bool_(false));
    Ok(a)
}

/// What the object layer needs out of a certificate.
pub struct CertFacts {
    pub subject: Vec<u8>,
    pub spki_der: Vec<u8>,
}

/// Attributes of a certificate object, and the facts used to pair it with a key.
pub fn certificate(
    cert: &CertRecord,
    token: bool,
    modifiable: bool,
    id_override: Option<&[u8]>,
) -> Result<(Attributes, CertFacts)> {
    let parsed = x509_cert::Certificate::from_der(&cert.der)
        .map_err(|e| Error::AttributeValueInvalid(format!("not a DER X.509 certificate: {e}")))?;
    let tbs = &parsed.tbs_certificate;
    let der = |r: std::result::Result<Vec<u8>, x509_cert::der::Error>| {
        r.map_err(|e| Error::backend("certificate field", e))
    };
    let subject = der(tbs.subject.to_der())?;
    let issuer = der(tbs.issuer.to_der())?;
    let serial = der(tbs.serial_number.to_der())?;
    let spki_der = der(tbs.subject_public_key_info.to_der())?;
    let id = match id_override.or(cert.id.as_deref()) {
        Some(id) => id.to_vec(),
        None => crate::crypto::key::key_identifier(&spki_der)?,
    };
    let mut a = Attributes::new();
    a.insert(CKA_CLASS, ulong(CKO_CERTIFICATE));
    a.insert(CKA_TOKEN, bool_(token));
    a.insert(CKA_PRIVATE, bool_(false));
    a.insert(CKA_MODIFIABLE, bool_(modifiable));
    a.insert(CKA_DESTROYABLE, bool_(modifiable));
    a.insert(CKA_COPYABLE, bool_(false));
    a.insert(CKA_LABEL, cert.label.as_bytes().to_vec());
    a.insert(CKA_CERTIFICATE_TYPE, ulong(CKC_X_509));
    a.insert(CKA_TRUSTED, bool_(false));
    a.insert(
        CKA_CERTIFICATE_CATEGORY,
        ulong(if cert.authority { 2 } else { 0 }),
    );
    a.insert(CKA_CHECK_VALUE, openssl::sha::sha1(&cert.der)[..3].to_vec());
    a.insert(CKA_START_DATE, ck_date(&tbs.validity.not_before));
    a.insert(CKA_END_DATE, ck_date(&tbs.validity.not_after));
    a.insert(CKA_PUBLIC_KEY_INFO, spki_der.clone());
    a.insert(CKA_SUBJECT, subject.clone());
    a.insert(CKA_ID, id);
    a.insert(CKA_ISSUER, issuer);
    a.insert(CKA_SERIAL_NUMBER, serial);
    a.insert(CKA_VALUE, cert.der.clone());
    a.insert(CKA_URL, Vec::new());
    a.insert(CKA_HASH_OF_SUBJECT_PUBLIC_KEY, Vec::new());
    a.insert(CKA_HASH_OF_ISSUER_PUBLIC_KEY, Vec::new());
    a.insert(CKA_JAVA_MIDP_SECURITY_DOMAIN, ulong(0));
    a.insert(CKA_NAME_HASH_ALGORITHM, ulong(CKM_SHA_1));
    Ok((a, CertFacts { subject, spki_der }))
}

/// CK_DATE: "YYYYMMDD" in ASCII.
fn ck_date(t: &x509_cert::time::Time) -> Vec<u8> {
    let dt = t.to_date_time();
    format!("{:04}{:02}{:02}", dt.year(), dt.month(), dt.day()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulong_and_bool_round_trip_and_reject_wrong_sizes() {
        assert_eq!(read_ulong(&ulong(42)).unwrap(), 42);
        assert!(read_ulong(&[1, 2, 3]).is_err());
        assert!(read_bool(&bool_(true)).unwrap());
        assert!(read_bool(&[]).is_err());
    }
}
