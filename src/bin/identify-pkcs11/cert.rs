//! `identify-pkcs11 cert self-signed`: a new key in the slot's store (HSM-protected where
//! the slot makes keys so) and a self-signed certificate that rcgen builds and the store's
//! key signs (the private key never leaves the store), kept where the slot keeps
//! certificates: the directory, or the certificate database for key-vault and managed-hsm
//! slots.

use crate::ops;
use identify_pkcs11::backend::{
    Backend, Curve, HashAlg, KeyRecord, KeySpec, KeyUsage, ObjectUpdate, SignRequest,
};
use identify_pkcs11::mechanism::{PublicInfo, check_signature};
use identify_pkcs11::module::Module;
use std::path::PathBuf;

type Result<T> = std::result::Result<T, String>;

pub struct SelfSigned {
    pub config: Option<PathBuf>,
    pub slot: String,
    pub name: String,
    pub subject: String,
    pub key: String,
    pub days: u32,
}

/// The store of the slot labelled `label`.
fn backend_of<'a>(module: &'a Module, label: &str) -> Result<&'a dyn Backend> {
    module
        .slots
        .iter()
        .find(|s| s.config.label == label)
        .map(|s| s.backend.as_ref())
        .ok_or_else(|| {
            let labels: Vec<&str> = module
                .slots
                .iter()
                .map(|s| s.config.label.as_str())
                .collect();
            format!("no slot labelled {label:?}; the slots are {labels:?}")
        })
}

/// `rsa:2048|3072|4096`, `ec:p256|p384|p521`.
fn key_spec(s: &str) -> Result<KeySpec> {
    let bad = || format!("--key {s:?}: rsa:2048, rsa:3072, rsa:4096, ec:p256, ec:p384 or ec:p521");
    let (kind, size) = s.split_once(':').ok_or_else(bad)?;
    match (kind, size) {
        ("rsa", "2048" | "3072" | "4096") => Ok(KeySpec::Rsa {
            bits: size.parse().map_err(|_| bad())?,
            public_exponent: vec![1, 0, 1],
        }),
        ("ec", "p256") => Ok(KeySpec::Ec(Curve::P256)),
        ("ec", "p384") => Ok(KeySpec::Ec(Curve::P384)),
        ("ec", "p521") => Ok(KeySpec::Ec(Curve::P521)),
        _ => Err(bad()),
    }
}

/// `CN=name,O=org,OU=unit,C=DK,ST=state,L=city` (no commas inside values).
fn subject(s: &str) -> Result<rcgen::DistinguishedName> {
    let mut dn = rcgen::DistinguishedName::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("--subject {s:?}: {part:?} is not KEY=value"))?;
        let t = match k.trim().to_ascii_uppercase().as_str() {
            "CN" => rcgen::DnType::CommonName,
            "O" => rcgen::DnType::OrganizationName,
            "OU" => rcgen::DnType::OrganizationalUnitName,
            "C" => rcgen::DnType::CountryName,
            "ST" => rcgen::DnType::StateOrProvinceName,
            "L" => rcgen::DnType::LocalityName,
            other => {
                return Err(format!(
                    "--subject {s:?}: {other:?} is not one of CN, O, OU, C, ST, L"
                ));
            }
        };
        dn.push(t, v.trim());
    }
    if dn.iter().next().is_none() {
        return Err(format!(
            "--subject {s:?}: e.g. \"CN=signing.example.com,O=Contoso\""
        ));
    }
    Ok(dn)
}

/// rcgen's view of a key in a store: it signs through the backend, the signature is
/// verified here before rcgen uses it.
struct StoreKey<'a> {
    backend: &'a dyn Backend,
    record: &'a KeyRecord,
    public: PublicInfo,
    /// The subjectPublicKey bits (PKCS#1 RSAPublicKey, or the EC point).
    key_bits: Vec<u8>,
}

impl StoreKey<'_> {
    fn hash(&self) -> HashAlg {
        match self.public.curve {
            Some(Curve::P384) => HashAlg::Sha384,
            Some(Curve::P521) => HashAlg::Sha512,
            _ => HashAlg::Sha256,
        }
    }
}

impl rcgen::PublicKeyData for StoreKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.key_bits
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self.public.curve {
            None => &rcgen::PKCS_RSA_SHA256,
            Some(Curve::P256) => &rcgen::PKCS_ECDSA_P256_SHA256,
            Some(Curve::P384) => &rcgen::PKCS_ECDSA_P384_SHA384,
            // rcgen 0.14 names no P-521 algorithm: `issue` refuses such keys first.
            Some(_) => &rcgen::PKCS_ECDSA_P256_SHA256,
        }
    }
}

impl rcgen::SigningKey for StoreKey<'_> {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        let hash = self.hash();
        let digest = match hash {
            HashAlg::Sha384 => openssl::sha::sha384(msg).to_vec(),
            HashAlg::Sha512 => openssl::sha::sha512(msg).to_vec(),
            _ => openssl::sha::sha256(msg).to_vec(),
        };
        let request = match self.public.curve {
            None => SignRequest::RsaPkcs1 { hash: Some(hash) },
            Some(_) => SignRequest::Ecdsa,
        };
        let signature = self
            .backend
            .sign(self.record, &request, &digest)
            .and_then(|s| check_signature(&self.public, &request, &digest, &s).map(|()| s))
            .map_err(|_| rcgen::Error::RemoteKeyError)?;
        if self.public.curve.is_none() {
            return Ok(signature);
        }
        // The store gives r || s; X.509 carries ECDSA-Sig-Value (DER).
        let (r, s) = signature.split_at(signature.len() / 2);
        let sig = openssl::ecdsa::EcdsaSig::from_private_components(
            openssl::bn::BigNum::from_slice(r).map_err(|_| rcgen::Error::RemoteKeyError)?,
            openssl::bn::BigNum::from_slice(s).map_err(|_| rcgen::Error::RemoteKeyError)?,
        )
        .map_err(|_| rcgen::Error::RemoteKeyError)?;
        sig.to_der().map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

pub fn self_signed(o: &SelfSigned) -> Result<()> {
    let spec = key_spec(&o.key)?;
    if matches!(spec, KeySpec::Ec(Curve::P521)) {
        return Err("--key ec:p521: certificates are made for rsa:* and ec:p256/p384 only".into());
    }
    let dn = subject(&o.subject)?;
    if !(1..=3650).contains(&o.days) {
        return Err(format!("--days {}: 1 to 3650", o.days));
    }
    let module = Module::new(ops::load(o.config.as_ref())?, true).map_err(|e| e.to_string())?;
    let result = make(&module, o, &spec, dn);
    module.shutdown();
    result
}

fn make(
    module: &Module,
    o: &SelfSigned,
    spec: &KeySpec,
    dn: rcgen::DistinguishedName,
) -> Result<()> {
    let backend = backend_of(module, &o.slot)?;
    if !backend.writable() {
        return Err(format!("slot {:?} is read-only (writable = false)", o.slot));
    }
    let update = ObjectUpdate {
        label: Some(o.name.clone()),
        id: None,
    };
    let record = backend
        .generate_key(&o.name, spec, &update, KeyUsage::ALL)
        .map_err(|e| format!("creating key {:?} in slot {:?}: {e}", o.name, o.slot))?;
    let cert = issue(backend, &record, dn, o.days)?;
    let der = cert.der().to_vec();
    backend
        .store_certificate(&der, Some(&record), &update)
        .map_err(|e| format!("storing the certificate in slot {:?}: {e}", o.slot))?;
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    eprintln!(
        "key {:?}{} created in slot {:?}; certificate stored\nSHA-1   {}\nSHA-256 {}",
        record.name,
        record
            .version
            .as_ref()
            .map(|v| format!(" (version {v})"))
            .unwrap_or_default(),
        o.slot,
        hex(&openssl::sha::sha1(&der)),
        hex(&openssl::sha::sha256(&der)),
    );
    print!("{}", cert.pem());
    Ok(())
}

pub struct Rotate {
    pub config: Option<PathBuf>,
    pub slot: String,
    pub name: String,
    /// Default: the subject of the current version's certificate.
    pub subject: Option<String>,
    pub days: u32,
}

/// The subject of a certificate as rcgen's name (the attributes `subject` accepts).
fn subject_of(der: &[u8]) -> Option<rcgen::DistinguishedName> {
    use openssl::nid::Nid;
    let x = openssl::x509::X509::from_der(der).ok()?;
    let mut dn = rcgen::DistinguishedName::new();
    for e in x.subject_name().entries() {
        let t = match e.object().nid() {
            Nid::COMMONNAME => rcgen::DnType::CommonName,
            Nid::ORGANIZATIONNAME => rcgen::DnType::OrganizationName,
            Nid::ORGANIZATIONALUNITNAME => rcgen::DnType::OrganizationalUnitName,
            Nid::COUNTRYNAME => rcgen::DnType::CountryName,
            Nid::STATEORPROVINCENAME => rcgen::DnType::StateOrProvinceName,
            Nid::LOCALITYNAME => rcgen::DnType::LocalityName,
            _ => continue,
        };
        dn.push(t, e.data().to_string().ok()?);
    }
    Some(dn)
}

/// `identify-pkcs11 cert rotate`: a new version of key N becomes current with a new
/// certificate (same subject unless `--subject`); the older versions stay, so what was
/// encrypted to them still decrypts.
pub fn rotate(o: &Rotate) -> Result<()> {
    if !(1..=3650).contains(&o.days) {
        return Err(format!("--days {}: 1 to 3650", o.days));
    }
    let given = o.subject.as_deref().map(subject).transpose()?;
    let module = Module::new(ops::load(o.config.as_ref())?, true).map_err(|e| e.to_string())?;
    let result = rotate_in(&module, o, given);
    module.shutdown();
    result
}

fn rotate_in(module: &Module, o: &Rotate, given: Option<rcgen::DistinguishedName>) -> Result<()> {
    let backend = backend_of(module, &o.slot)?;
    let listing = backend
        .list()
        .map_err(|e| format!("slot {:?}: {e}", o.slot))?;
    let current = listing
        .keys
        .iter()
        .find(|k| k.name == o.name && k.current)
        .ok_or_else(|| format!("slot {:?} has no key {:?}", o.slot, o.name))?;
    // Refused before a new version is made: no certificate could be issued for it.
    if PublicInfo::from_spki(&current.spki_der).is_ok_and(|p| p.curve == Some(Curve::P521)) {
        return Err(format!(
            "key {:?} is EC P-521: certificates are made for RSA and EC P-256/P-384 keys only",
            o.name
        ));
    }
    let dn = match given {
        Some(dn) => dn,
        None => listing
            .certificates
            .iter()
            .filter_map(|c| {
                let x = openssl::x509::X509::from_der(&c.der).ok()?;
                let spki = x.public_key().ok()?.public_key_to_der().ok()?;
                (spki == current.spki_der)
                    .then(|| subject_of(&c.der))
                    .flatten()
            })
            .next()
            .ok_or_else(|| {
                format!(
                    "key {:?} has no certificate to take the subject from: give --subject",
                    o.name
                )
            })?,
    };
    let new = backend
        .rotate_key(current)
        .map_err(|e| format!("rotating key {:?} in slot {:?}: {e}", o.name, o.slot))?;
    let cert = issue(backend, &new, dn, o.days)?;
    let der = cert.der().to_vec();
    backend
        .store_certificate(
            &der,
            Some(&new),
            &ObjectUpdate {
                label: Some(o.name.clone()),
                id: None,
            },
        )
        .map_err(|e| format!("storing the certificate in slot {:?}: {e}", o.slot))?;
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    eprintln!(
        "key {:?}: version {} is current; version {} stays for decryption\nSHA-1   {}\nSHA-256 {}",
        o.name,
        new.version.as_deref().unwrap_or("?"),
        current.version.as_deref().unwrap_or("?"),
        hex(&openssl::sha::sha1(&der)),
        hex(&openssl::sha::sha256(&der)),
    );
    print!("{}", cert.pem());
    Ok(())
}

/// A certificate for `record`'s public key, built by rcgen and signed by the store's key.
fn issue(
    backend: &dyn Backend,
    record: &KeyRecord,
    dn: rcgen::DistinguishedName,
    days: u32,
) -> Result<rcgen::Certificate> {
    let public = PublicInfo::from_spki(&record.spki_der).map_err(|e| e.to_string())?;
    if public.curve == Some(Curve::P521) {
        return Err(format!(
            "key {:?} is EC P-521: certificates are made for RSA and EC P-256/P-384 keys only",
            record.name
        ));
    }
    let key_bits = {
        use x509_cert::der::Decode;
        x509_cert::spki::SubjectPublicKeyInfoRef::from_der(&record.spki_der)
            .map_err(|e| format!("public key: {e}"))?
            .subject_public_key
            .raw_bytes()
            .to_vec()
    };
    let key = StoreKey {
        backend,
        record,
        public,
        key_bits,
    };
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = dn;
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(300)).into();
    params.not_after = (now + std::time::Duration::from_secs(u64::from(days) * 86_400)).into();
    let mut serial = [0u8; 16];
    openssl::rand::rand_bytes(&mut serial).map_err(|e| e.to_string())?;
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("signing the certificate with {:?}: {e}", record.name))?;
    Ok(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_specs_and_subjects_parse() {
        assert!(matches!(
            key_spec("rsa:3072"),
            Ok(KeySpec::Rsa { bits: 3072, .. })
        ));
        assert!(matches!(key_spec("ec:p384"), Ok(KeySpec::Ec(Curve::P384))));
        for bad in ["rsa", "rsa:1024", "ec:p224", "dsa:2048"] {
            let e = key_spec(bad).unwrap_err();
            assert!(e.contains("rsa:2048") && e.contains("ec:p256"), "{e}");
        }
        assert_eq!(subject("CN=a, O=b").unwrap().iter().count(), 2);
        assert!(subject("CN").unwrap_err().contains("KEY=value"));
        assert!(subject("XX=1").unwrap_err().contains("CN, O"));
        assert!(subject("").is_err());
    }
}
