//! Keys as the layers above see them: the curve names, the key algorithm and the public
//! half of a key parsed once from its SubjectPublicKeyInfo.

use crate::error::{Error, Result};
use openssl::pkey::{PKey, PKeyRef, Public};
use x509_cert::der::{Decode, Encode};

/// Elliptic curves the module supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    pub fn nid(self) -> openssl::nid::Nid {
        match self {
            Curve::P256 => openssl::nid::Nid::X9_62_PRIME256V1,
            Curve::P384 => openssl::nid::Nid::SECP384R1,
            Curve::P521 => openssl::nid::Nid::SECP521R1,
        }
    }

    pub fn from_nid(nid: openssl::nid::Nid) -> Option<Curve> {
        [Curve::P256, Curve::P384, Curve::P521]
            .into_iter()
            .find(|c| c.nid() == nid)
    }

    /// The curve of an EC key (`None`: not an EC key, or a curve the module does not
    /// support). The one place a curve is derived from a key.
    pub fn of_key<T: openssl::pkey::HasParams>(pkey: &PKeyRef<T>) -> Option<Curve> {
        let ec = pkey.ec_key().ok()?;
        ec.group().curve_name().and_then(Curve::from_nid)
    }

    /// The curve named by a DER OBJECT IDENTIFIER (CKA_EC_PARAMS, an SPKI's parameters).
    pub fn from_params_der(params: &[u8]) -> Option<Curve> {
        let oid = x509_cert::der::asn1::ObjectIdentifier::from_der(params).ok()?;
        [Curve::P256, Curve::P384, Curve::P521]
            .into_iter()
            .find(|c| c.oid() == oid.to_string())
    }

    /// The named curve's object identifier (RFC 5480 §2.1.1.1).
    pub fn oid(self) -> &'static str {
        match self {
            Curve::P256 => "1.2.840.10045.3.1.7",
            Curve::P384 => "1.3.132.0.34",
            Curve::P521 => "1.3.132.0.35",
        }
    }

    /// The curve's order in bits (CKA_MODULUS_BITS' counterpart for EC keys).
    pub fn bits(self) -> usize {
        match self {
            Curve::P256 => 256,
            Curve::P384 => 384,
            Curve::P521 => 521,
        }
    }

    /// Bytes of one coordinate (and of r or s in a signature).
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
}

/// The key algorithm a mechanism needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ec,
}

/// The public half of a key, parsed once when the object is cached.
#[derive(Clone)]
pub struct PublicInfo {
    pub pkey: PKey<Public>,
    pub kind: KeyKind,
    /// Modulus bits, or the curve's order bits.
    pub bits: usize,
    /// Modulus bytes for RSA.
    pub size_bytes: usize,
    pub curve: Option<Curve>,
}

impl std::fmt::Debug for PublicInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicInfo")
            .field("kind", &self.kind)
            .field("bits", &self.bits)
            .finish()
    }
}

impl PublicInfo {
    pub fn from_spki(spki_der: &[u8]) -> Result<PublicInfo> {
        let pkey = PKey::public_key_from_der(spki_der)
            .map_err(|e| Error::backend("public key is not a DER SubjectPublicKeyInfo", e))?;
        if let Ok(rsa) = pkey.rsa() {
            let size_bytes = rsa.size() as usize;
            let bits =
                usize::try_from(rsa.n().num_bits()).map_err(|e| Error::Internal(e.to_string()))?;
            return Ok(PublicInfo {
                pkey,
                kind: KeyKind::Rsa,
                bits,
                size_bytes,
                curve: None,
            });
        }
        if pkey.ec_key().is_err() {
            return Err(Error::Backend("only RSA and EC keys are supported".into()));
        }
        let curve = Curve::of_key(&pkey)
            .ok_or_else(|| Error::Backend("unsupported elliptic curve".into()))?;
        Ok(PublicInfo {
            pkey,
            kind: KeyKind::Ec,
            bits: curve.bits(),
            size_bytes: 2 * curve.field_len(),
            curve: Some(curve),
        })
    }

    /// The length of a signature by this key, from metadata alone (size queries).
    pub fn signature_len(&self) -> usize {
        self.size_bytes
    }
}

/// The SubjectPublicKeyInfo (DER) of a certificate (DER); `None` when it does not parse.
pub fn certificate_spki(der: &[u8]) -> Option<Vec<u8>> {
    x509_cert::Certificate::from_der(der)
        .ok()?
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .ok()
}

/// SHA-1 over the subjectPublicKey BIT STRING contents (RFC 5280 §4.2.1.2 method 1).
pub fn key_identifier(spki_der: &[u8]) -> Result<Vec<u8>> {
    let spki = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| Error::backend("SubjectPublicKeyInfo", e))?;
    Ok(openssl::sha::sha1(spki.subject_public_key.raw_bytes()).to_vec())
}

/// CKA_EC_PARAMS (the named curve OID, DER) and CKA_EC_POINT (DER OCTET STRING of the
/// uncompressed point) from an EC SubjectPublicKeyInfo.
pub fn ec_params_and_point(spki_der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let spki = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| Error::backend("SubjectPublicKeyInfo", e))?;
    let params = spki
        .algorithm
        .parameters
        .ok_or_else(|| Error::Backend("EC key without curve parameters".into()))?
        .to_der()
        .map_err(|e| Error::backend("EC parameters", e))?;
    let point = x509_cert::der::asn1::OctetStringRef::new(spki.subject_public_key.raw_bytes())
        .and_then(|o| o.to_der())
        .map_err(|e| Error::backend("EC point", e))?;
    Ok((params, point))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_round_trip_through_oid_and_key() {
        for c in [Curve::P256, Curve::P384, Curve::P521] {
            let group = openssl::ec::EcGroup::from_curve_name(c.nid()).unwrap();
            let key = PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap();
            assert_eq!(Curve::of_key(&key), Some(c));
            let spki = key.public_key_to_der().unwrap();
            let info = PublicInfo::from_spki(&spki).unwrap();
            assert_eq!(
                (info.curve, info.bits, info.kind),
                (Some(c), c.bits(), KeyKind::Ec)
            );
            let (params, point) = ec_params_and_point(&spki).unwrap();
            assert_eq!(Curve::from_params_der(&params), Some(c));
            assert_eq!(point[0], 0x04, "an OCTET STRING");
        }
        let k256 = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];
        assert_eq!(
            Curve::from_params_der(&k256),
            None,
            "secp256k1 is not supported"
        );
        let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(1024).unwrap()).unwrap();
        assert_eq!(Curve::of_key(&rsa), None);
    }

    #[test]
    fn key_identifier_matches_openssl_subject_key_identifier() {
        // OpenSSL's `subjectKeyIdentifier=hash` is SHA-1 over the same bits.
        let key = openssl::pkey::PKey::from_ec_key(
            openssl::ec::EcKey::generate(
                &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                    .unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        let mut b = openssl::x509::X509Builder::new().unwrap();
        b.set_pubkey(&key).unwrap();
        let ctx = b.x509v3_context(None, None);
        let ski = openssl::x509::extension::SubjectKeyIdentifier::new()
            .build(&ctx)
            .unwrap();
        b.append_extension(ski).unwrap();
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        let cert = b.build();
        let expected = cert.subject_key_id().unwrap().as_slice().to_vec();
        assert_eq!(
            key_identifier(&key.public_key_to_der().unwrap()).unwrap(),
            expected
        );
    }
}
