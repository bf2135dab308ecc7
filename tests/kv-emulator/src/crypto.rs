//! Real key material and the Key Vault algorithms over it (FACTS.md §1.4–1.5), all
//! through OpenSSL: RSA PKCS#1 v1.5 (with the DigestInfo added by the server for RS*,
//! without it for RSNULL), RSA-PSS with salt = hash length, ECDSA with raw r‖s
//! signatures, RSA-OAEP (SHA-1), RSA-OAEP-256 and RSA1_5.

use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::md::Md;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::{Padding, Rsa};
use openssl::sign::RsaPssSaltlen;
use serde_json::{Map, Value};

use crate::b64;
use crate::reply::{ApiError, ApiResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P256K,
    P384,
    P521,
}

impl Curve {
    pub fn parse(name: &str) -> Option<Curve> {
        match name {
            "P-256" => Some(Curve::P256),
            "P-256K" => Some(Curve::P256K),
            "P-384" => Some(Curve::P384),
            "P-521" => Some(Curve::P521),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P256K => "P-256K",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }

    fn nid(self) -> Nid {
        match self {
            Curve::P256 => Nid::X9_62_PRIME256V1,
            Curve::P256K => Nid::SECP256K1,
            Curve::P384 => Nid::SECP384R1,
            Curve::P521 => Nid::SECP521R1,
        }
    }

    fn from_nid(nid: Nid) -> Option<Curve> {
        [Curve::P256, Curve::P256K, Curve::P384, Curve::P521]
            .into_iter()
            .find(|c| c.nid() == nid)
    }

    /// Bytes of one coordinate (and of r or s in a signature).
    pub fn coord_len(self) -> usize {
        match self {
            Curve::P256 | Curve::P256K => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// The signature algorithm that belongs to this curve.
    fn signature_alg(self) -> &'static str {
        match self {
            Curve::P256 => "ES256",
            Curve::P256K => "ES256K",
            Curve::P384 => "ES384",
            Curve::P521 => "ES512",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Rsa { bits: u32 },
    Ec(Curve),
}

pub const RSA_SIZES: [u32; 3] = [2048, 3072, 4096];

/// A private key held by the emulator.
pub struct KeyMaterial {
    pkey: PKey<Private>,
    pub family: Family,
}

fn internal(e: openssl::error::ErrorStack) -> ApiError {
    ApiError::new(500, "InternalServerError", format!("crypto failure: {e}"))
}

fn digest_len(alg: &str) -> Option<usize> {
    match alg {
        "RS256" | "PS256" | "ES256" | "ES256K" => Some(32),
        "RS384" | "PS384" | "ES384" => Some(48),
        "RS512" | "PS512" | "ES512" => Some(64),
        _ => None,
    }
}

fn hash_md(alg: &str) -> &'static openssl::md::MdRef {
    if alg.ends_with("384") {
        Md::sha384()
    } else if alg.ends_with("512") {
        Md::sha512()
    } else {
        Md::sha256()
    }
}

const SIGN_ALGS: [&str; 14] = [
    "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "RSNULL", "HS256", "HS384", "HS512",
    "ES256", "ES384", "ES512", "ES256K",
];
const ENCRYPT_ALGS: [&str; 3] = ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"];
const AES_ALGS: [&str; 17] = [
    "A128GCM",
    "A192GCM",
    "A256GCM",
    "A128KW",
    "A192KW",
    "A256KW",
    "A128CBC",
    "A192CBC",
    "A256CBC",
    "A128CBCPAD",
    "A192CBCPAD",
    "A256CBCPAD",
    "CKM_AES_KEY_WRAP",
    "CKM_AES_KEY_WRAP_PAD",
    "A128KWPAD",
    "A192KWPAD",
    "A256KWPAD",
];

fn unknown_alg(alg: &str) -> ApiError {
    ApiError::bad_parameter(format!("Invalid algorithm: '{alg}'."))
}

fn alg_not_for_key(alg: &str, kty: &str) -> ApiError {
    ApiError::bad_parameter(format!(
        "Algorithm '{alg}' is not supported for key type '{kty}'."
    ))
}

impl KeyMaterial {
    pub fn generate_rsa(bits: u32, exponent: u32) -> ApiResult<Self> {
        let e = BigNum::from_u32(exponent).map_err(internal)?;
        let rsa = Rsa::generate_with_e(bits, &e).map_err(internal)?;
        let pkey = PKey::from_rsa(rsa).map_err(internal)?;
        Ok(KeyMaterial {
            pkey,
            family: Family::Rsa { bits },
        })
    }

    pub fn generate_ec(curve: Curve) -> ApiResult<Self> {
        let group = EcGroup::from_curve_name(curve.nid()).map_err(internal)?;
        let ec = EcKey::generate(&group).map_err(internal)?;
        let pkey = PKey::from_ec_key(ec).map_err(internal)?;
        Ok(KeyMaterial {
            pkey,
            family: Family::Ec(curve),
        })
    }

    /// Wraps an OpenSSL key of a kind Key Vault supports.
    pub fn from_pkey(pkey: PKey<Private>) -> ApiResult<Self> {
        let family = match pkey.id() {
            Id::RSA => {
                let bits = pkey.bits();
                if !RSA_SIZES.contains(&bits) {
                    return Err(ApiError::bad_parameter(format!(
                        "Unsupported RSA key size {bits}. Supported sizes are 2048, 3072 and 4096."
                    )));
                }
                Family::Rsa { bits }
            }
            Id::EC => {
                let ec = pkey.ec_key().map_err(internal)?;
                let curve = ec
                    .group()
                    .curve_name()
                    .and_then(Curve::from_nid)
                    .ok_or_else(|| ApiError::bad_parameter("Unsupported elliptic curve."))?;
                Family::Ec(curve)
            }
            _ => return Err(ApiError::bad_parameter("Unsupported key type.")),
        };
        Ok(KeyMaterial { pkey, family })
    }

    pub fn from_pkcs8_der(der: &[u8]) -> ApiResult<Self> {
        let pkey = PKey::private_key_from_der(der)
            .map_err(|_| ApiError::bad_parameter("The key is not a valid PKCS#8 private key."))?;
        Self::from_pkey(pkey)
    }

    pub fn from_pem(pem: &[u8]) -> ApiResult<Self> {
        let pkey = PKey::private_key_from_pem(pem)
            .map_err(|_| ApiError::bad_parameter("The key is not a valid PEM private key."))?;
        Self::from_pkey(pkey)
    }

    /// Imports a JsonWebKey with its private parts (KeyImportParameters.key).
    pub fn from_jwk(jwk: &Map<String, Value>) -> ApiResult<Self> {
        let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or_default();
        let field = |name: &str| -> ApiResult<BigNum> {
            let text = jwk.get(name).and_then(Value::as_str).ok_or_else(|| {
                ApiError::bad_parameter(format!(
                    "The JSON Web Key is missing the required parameter '{name}'."
                ))
            })?;
            let bytes = b64::decode(text).ok_or_else(|| {
                ApiError::bad_parameter(format!(
                    "The JSON Web Key parameter '{name}' is not valid base64url."
                ))
            })?;
            BigNum::from_slice(&bytes).map_err(internal)
        };
        match kty {
            "RSA" | "RSA-HSM" => {
                let rsa = Rsa::from_private_components(
                    field("n")?,
                    field("e")?,
                    field("d")?,
                    field("p")?,
                    field("q")?,
                    field("dp")?,
                    field("dq")?,
                    field("qi")?,
                )
                .map_err(|_| ApiError::bad_parameter("The RSA key parameters are not valid."))?;
                if !rsa.check_key().unwrap_or(false) {
                    return Err(ApiError::bad_parameter(
                        "The RSA key parameters are not consistent.",
                    ));
                }
                Self::from_pkey(PKey::from_rsa(rsa).map_err(internal)?)
            }
            "EC" | "EC-HSM" => {
                let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or_default();
                let curve = Curve::parse(crv).ok_or_else(|| {
                    ApiError::bad_parameter(format!("Invalid curve name: '{crv}'."))
                })?;
                let group = EcGroup::from_curve_name(curve.nid()).map_err(internal)?;
                let mut ctx = BigNumContext::new().map_err(internal)?;
                let mut point = EcPoint::new(&group).map_err(internal)?;
                let (x, y, d) = (field("x")?, field("y")?, field("d")?);
                point
                    .set_affine_coordinates_gfp(&group, &x, &y, &mut ctx)
                    .map_err(|_| {
                        ApiError::bad_parameter("The EC public point is not on the curve.")
                    })?;
                let ec = EcKey::from_private_components(&group, &d, &point)
                    .map_err(|_| ApiError::bad_parameter("The EC key parameters are not valid."))?;
                ec.check_key().map_err(|_| {
                    ApiError::bad_parameter("The EC key parameters are not consistent.")
                })?;
                Ok(KeyMaterial {
                    pkey: PKey::from_ec_key(ec).map_err(internal)?,
                    family: Family::Ec(curve),
                })
            }
            "" => Err(ApiError::bad_parameter(
                "The JSON Web Key is missing 'kty'.",
            )),
            other => Err(ApiError::bad_parameter(format!(
                "Key type '{other}' is not supported for import."
            ))),
        }
    }

    pub fn pkey(&self) -> &PKey<Private> {
        &self.pkey
    }

    pub fn private_pkcs8_der(&self) -> ApiResult<Vec<u8>> {
        self.pkey.private_key_to_pkcs8().map_err(internal)
    }

    pub fn bits(&self) -> u32 {
        match self.family {
            Family::Rsa { bits } => bits,
            Family::Ec(curve) => match curve {
                Curve::P256 | Curve::P256K => 256,
                Curve::P384 => 384,
                Curve::P521 => 521,
            },
        }
    }

    /// Adds the public JsonWebKey members (`n`,`e` or `crv`,`x`,`y`) to `out`.
    pub fn public_jwk(&self, out: &mut Map<String, Value>) -> ApiResult<()> {
        match self.family {
            Family::Rsa { .. } => {
                let rsa = self.pkey.rsa().map_err(internal)?;
                out.insert("n".into(), Value::String(b64::url(&rsa.n().to_vec())));
                out.insert("e".into(), Value::String(b64::url(&rsa.e().to_vec())));
            }
            Family::Ec(curve) => {
                let ec = self.pkey.ec_key().map_err(internal)?;
                let mut ctx = BigNumContext::new().map_err(internal)?;
                let mut x = BigNum::new().map_err(internal)?;
                let mut y = BigNum::new().map_err(internal)?;
                ec.public_key()
                    .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
                    .map_err(internal)?;
                let width = i32::try_from(curve.coord_len()).unwrap_or(66);
                out.insert("crv".into(), Value::String(curve.name().into()));
                out.insert(
                    "x".into(),
                    Value::String(b64::url(&x.to_vec_padded(width).map_err(internal)?)),
                );
                out.insert(
                    "y".into(),
                    Value::String(b64::url(&y.to_vec_padded(width).map_err(internal)?)),
                );
            }
        }
        Ok(())
    }

    fn rsa_ctx(&self, alg: &str, kty: &str) -> ApiResult<(PkeyCtx<Private>, usize)> {
        match self.family {
            Family::Rsa { bits } => {
                let ctx = PkeyCtx::new(&self.pkey).map_err(internal)?;
                Ok((ctx, (bits as usize).div_ceil(8)))
            }
            Family::Ec(_) => Err(alg_not_for_key(alg, kty)),
        }
    }

    /// Signs a digest (or, for RSNULL, the bytes given).
    pub fn sign(&self, alg: &str, kty: &str, digest: &[u8]) -> ApiResult<Vec<u8>> {
        if !SIGN_ALGS.contains(&alg) {
            return Err(unknown_alg(alg));
        }
        match alg {
            "RSNULL" => {
                let (mut ctx, k) = self.rsa_ctx(alg, kty)?;
                if digest.is_empty() || digest.len() > k - 11 {
                    return Err(ApiError::bad_parameter(format!(
                        "Invalid length of the value to sign for algorithm RSNULL: {} bytes (at most {} for this key).",
                        digest.len(),
                        k - 11
                    )));
                }
                ctx.sign_init().map_err(internal)?;
                ctx.set_rsa_padding(Padding::PKCS1).map_err(internal)?;
                let mut out = Vec::new();
                ctx.sign_to_vec(digest, &mut out).map_err(internal)?;
                Ok(out)
            }
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => {
                let (mut ctx, _) = self.rsa_ctx(alg, kty)?;
                check_digest_len(alg, digest)?;
                ctx.sign_init().map_err(internal)?;
                set_rsa_sig_params(&mut ctx, alg)?;
                let mut out = Vec::new();
                ctx.sign_to_vec(digest, &mut out).map_err(internal)?;
                Ok(out)
            }
            "ES256" | "ES256K" | "ES384" | "ES512" => {
                let curve = self.ec_curve_for(alg, kty)?;
                check_digest_len(alg, digest)?;
                let ec = self.pkey.ec_key().map_err(internal)?;
                let sig = EcdsaSig::sign(digest, &ec).map_err(internal)?;
                let width = i32::try_from(curve.coord_len()).unwrap_or(66);
                let mut out = sig.r().to_vec_padded(width).map_err(internal)?;
                out.extend(sig.s().to_vec_padded(width).map_err(internal)?);
                Ok(out)
            }
            _ => Err(alg_not_for_key(alg, kty)),
        }
    }

    /// Verifies a signature; a malformed signature verifies as false.
    pub fn verify(&self, alg: &str, kty: &str, digest: &[u8], signature: &[u8]) -> ApiResult<bool> {
        if !SIGN_ALGS.contains(&alg) {
            return Err(unknown_alg(alg));
        }
        match alg {
            "RSNULL" | "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => {
                let (mut ctx, k) = self.rsa_ctx(alg, kty)?;
                if alg != "RSNULL" {
                    check_digest_len(alg, digest)?;
                }
                if signature.len() != k {
                    return Ok(false);
                }
                ctx.verify_init().map_err(internal)?;
                if alg == "RSNULL" {
                    ctx.set_rsa_padding(Padding::PKCS1).map_err(internal)?;
                } else {
                    set_rsa_sig_params(&mut ctx, alg)?;
                }
                Ok(ctx.verify(digest, signature).unwrap_or(false))
            }
            "ES256" | "ES256K" | "ES384" | "ES512" => {
                let curve = self.ec_curve_for(alg, kty)?;
                check_digest_len(alg, digest)?;
                let n = curve.coord_len();
                if signature.len() != 2 * n {
                    return Ok(false);
                }
                let r = BigNum::from_slice(&signature[..n]).map_err(internal)?;
                let s = BigNum::from_slice(&signature[n..]).map_err(internal)?;
                let sig = EcdsaSig::from_private_components(r, s).map_err(internal)?;
                let ec = self.pkey.ec_key().map_err(internal)?;
                Ok(sig.verify(digest, &ec).unwrap_or(false))
            }
            _ => Err(alg_not_for_key(alg, kty)),
        }
    }

    fn ec_curve_for(&self, alg: &str, kty: &str) -> ApiResult<Curve> {
        match self.family {
            Family::Ec(curve) if curve.signature_alg() == alg => Ok(curve),
            Family::Ec(curve) => Err(ApiError::bad_parameter(format!(
                "Algorithm '{alg}' cannot be used with curve '{}'.",
                curve.name()
            ))),
            Family::Rsa { .. } => Err(alg_not_for_key(alg, kty)),
        }
    }

    fn rsa_enc_ctx(
        &self,
        alg: &str,
        kty: &str,
        encrypt: bool,
    ) -> ApiResult<(PkeyCtx<Private>, usize)> {
        if !ENCRYPT_ALGS.contains(&alg) {
            return Err(if AES_ALGS.contains(&alg) {
                alg_not_for_key(alg, kty)
            } else {
                unknown_alg(alg)
            });
        }
        let (mut ctx, k) = self.rsa_ctx(alg, kty)?;
        if encrypt {
            ctx.encrypt_init().map_err(internal)?;
        } else {
            ctx.decrypt_init().map_err(internal)?;
        }
        let overhead = match alg {
            "RSA1_5" => {
                ctx.set_rsa_padding(Padding::PKCS1).map_err(internal)?;
                11
            }
            "RSA-OAEP" => {
                ctx.set_rsa_padding(Padding::PKCS1_OAEP).map_err(internal)?;
                ctx.set_rsa_oaep_md(Md::sha1()).map_err(internal)?;
                ctx.set_rsa_mgf1_md(Md::sha1()).map_err(internal)?;
                42
            }
            _ => {
                ctx.set_rsa_padding(Padding::PKCS1_OAEP).map_err(internal)?;
                ctx.set_rsa_oaep_md(Md::sha256()).map_err(internal)?;
                ctx.set_rsa_mgf1_md(Md::sha256()).map_err(internal)?;
                66
            }
        };
        Ok((ctx, k - overhead))
    }

    pub fn encrypt(&self, alg: &str, kty: &str, plaintext: &[u8]) -> ApiResult<Vec<u8>> {
        let (mut ctx, max) = self.rsa_enc_ctx(alg, kty, true)?;
        if plaintext.len() > max {
            return Err(ApiError::bad_parameter(format!(
                "The value is too long for algorithm {alg}: {} bytes, at most {max} for this key.",
                plaintext.len()
            )));
        }
        let mut out = Vec::new();
        ctx.encrypt_to_vec(plaintext, &mut out).map_err(internal)?;
        Ok(out)
    }

    pub fn decrypt(&self, alg: &str, kty: &str, ciphertext: &[u8]) -> ApiResult<Vec<u8>> {
        let (mut ctx, _) = self.rsa_enc_ctx(alg, kty, false)?;
        let k = match self.family {
            Family::Rsa { bits } => (bits as usize).div_ceil(8),
            Family::Ec(_) => 0,
        };
        if ciphertext.len() != k {
            return Err(ApiError::bad_parameter(format!(
                "The ciphertext length {} does not match the key size ({k} bytes).",
                ciphertext.len()
            )));
        }
        let mut out = Vec::new();
        ctx.decrypt_to_vec(ciphertext, &mut out).map_err(|_| {
            ApiError::bad_parameter(
                "Decryption failed: the ciphertext is not valid for this key and algorithm.",
            )
        })?;
        Ok(out)
    }
}

fn check_digest_len(alg: &str, digest: &[u8]) -> ApiResult<()> {
    match digest_len(alg) {
        Some(n) if digest.len() == n => Ok(()),
        Some(n) => Err(ApiError::bad_parameter(format!(
            "Invalid digest length {} for algorithm {alg}: it must be {n} bytes.",
            digest.len()
        ))),
        None => Ok(()),
    }
}

fn set_rsa_sig_params(ctx: &mut PkeyCtx<Private>, alg: &str) -> ApiResult<()> {
    let md = hash_md(alg);
    if alg.starts_with("PS") {
        ctx.set_rsa_padding(Padding::PKCS1_PSS).map_err(internal)?;
        ctx.set_signature_md(md).map_err(internal)?;
        ctx.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)
            .map_err(internal)?;
        ctx.set_rsa_mgf1_md(md).map_err(internal)?;
    } else {
        ctx.set_rsa_padding(Padding::PKCS1).map_err(internal)?;
        ctx.set_signature_md(md).map_err(internal)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::hash::{MessageDigest, hash};
    use openssl::sign::Verifier;

    #[test]
    fn rs256_matches_openssl_digest_sign() {
        let key = KeyMaterial::generate_rsa(2048, 65537).unwrap();
        let digest = hash(MessageDigest::sha256(), b"hello").unwrap();
        let sig = key.sign("RS256", "RSA", &digest).unwrap();
        let mut v = Verifier::new(MessageDigest::sha256(), key.pkey()).unwrap();
        v.update(b"hello").unwrap();
        assert!(v.verify(&sig).unwrap());
        assert!(key.verify("RS256", "RSA", &digest, &sig).unwrap());
        // RS256 is deterministic: RSNULL over the DigestInfo gives the same bytes.
        let mut info = hex_decode("3031300d060960864801650304020105000420");
        info.extend_from_slice(&digest);
        assert_eq!(key.sign("RSNULL", "RSA", &info).unwrap(), sig);
    }

    #[test]
    fn digest_length_is_enforced() {
        let key = KeyMaterial::generate_ec(Curve::P256).unwrap();
        let err = key.sign("ES256", "EC", &[0u8; 20]).unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (400, "BadParameter"));
        assert_eq!(key.sign("ES384", "EC", &[0u8; 48]).unwrap_err().status, 400);
        assert_eq!(key.sign("RS256", "EC", &[0u8; 32]).unwrap_err().status, 400);
        assert_eq!(key.sign("XX256", "EC", &[0u8; 32]).unwrap_err().status, 400);
    }

    #[test]
    fn es_signatures_are_raw_and_verify_with_openssl() {
        for curve in [Curve::P256, Curve::P256K, Curve::P384, Curve::P521] {
            let key = KeyMaterial::generate_ec(curve).unwrap();
            let alg = curve.signature_alg();
            let digest = vec![7u8; digest_len(alg).unwrap()];
            let sig = key.sign(alg, "EC", &digest).unwrap();
            assert_eq!(sig.len(), 2 * curve.coord_len());
            assert!(key.verify(alg, "EC", &digest, &sig).unwrap());
            let n = curve.coord_len();
            let der = EcdsaSig::from_private_components(
                BigNum::from_slice(&sig[..n]).unwrap(),
                BigNum::from_slice(&sig[n..]).unwrap(),
            )
            .unwrap();
            assert!(der.verify(&digest, &key.pkey().ec_key().unwrap()).unwrap());
            let mut bad = sig.clone();
            bad[3] ^= 1;
            assert!(!key.verify(alg, "EC", &digest, &bad).unwrap());
        }
    }

    #[test]
    fn oaep_round_trips_and_enforces_sizes() {
        let key = KeyMaterial::generate_rsa(2048, 65537).unwrap();
        for alg in ENCRYPT_ALGS {
            let ct = key.encrypt(alg, "RSA", b"plaintext").unwrap();
            assert_eq!(ct.len(), 256);
            assert_eq!(key.decrypt(alg, "RSA", &ct).unwrap(), b"plaintext");
        }
        assert_eq!(
            key.encrypt("RSA-OAEP-256", "RSA", &[0u8; 191])
                .unwrap_err()
                .status,
            400
        );
        assert!(key.encrypt("RSA-OAEP-256", "RSA", &[0u8; 190]).is_ok());
        assert_eq!(
            key.decrypt("RSA-OAEP", "RSA", &[0u8; 255])
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            key.decrypt("RSA-OAEP", "RSA", &[1u8; 256])
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn jwk_round_trip_keeps_public_part() {
        let key = KeyMaterial::generate_ec(Curve::P384).unwrap();
        let ec = key.pkey().ec_key().unwrap();
        let mut jwk = Map::new();
        key.public_jwk(&mut jwk).unwrap();
        jwk.insert("kty".into(), "EC".into());
        jwk.insert("d".into(), b64::url(&ec.private_key().to_vec()).into());
        let again = KeyMaterial::from_jwk(&jwk).unwrap();
        let mut jwk2 = Map::new();
        again.public_jwk(&mut jwk2).unwrap();
        assert_eq!(jwk2["x"], jwk["x"]);
        assert_eq!(again.family, Family::Ec(Curve::P384));
        jwk.remove("d");
        assert_eq!(KeyMaterial::from_jwk(&jwk).err().unwrap().status, 400);
    }

    fn hex_decode(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
