//! `identify-pkcs11 cert self-signed`: a new key in the slot's store (HSM-protected where
//! the slot makes keys so) and a self-signed certificate that rcgen builds and the store's
//! key signs (the private key never leaves the store), kept where the slot keeps
//! certificates: the directory, or the certificate database for key-vault and managed-hsm
//! slots.

use crate::ops;
use identify_pkcs11::admin::PublicInfo;
use identify_pkcs11::admin::Stores;
use identify_pkcs11::admin::check_signature;
use identify_pkcs11::admin::hex;
use identify_pkcs11::admin::{Backend, IssueRequest, KeyRecord, KeySpec, KeyUsage, ObjectUpdate};
use identify_pkcs11::admin::{Curve, HashAlg, SignRequest};
use std::path::PathBuf;
use std::sync::Arc;

type Result<T> = std::result::Result<T, String>;

pub struct SelfSigned {
    pub config: Option<PathBuf>,
    pub slot: String,
    pub name: String,
    pub subject: String,
    pub key: String,
    pub days: u32,
    pub json: bool,
}

/// The store of the slot labelled `label`.
pub fn backend_of(stores: &Stores, label: &str) -> Result<Arc<dyn Backend>> {
    stores.backend(label).map_err(|e| e.to_string())
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
/// `--subject`: an RFC 4514 distinguished name (`CN=Contoso\\, Inc,O=Contoso`, `\\+`,
/// `#`-hex values...), parsed by x509-cert, with CN, O, OU, C, ST and L. Written most
/// specific first, as in RFC 4514 and the README's examples; spaces after a `,` are
/// allowed (OpenSSL and Windows print them).
fn subject(s: &str) -> Result<rcgen::DistinguishedName> {
    use std::str::FromStr;
    let example = "e.g. \"CN=signing.example.com,O=Contoso\" with CN, O, OU, C, ST, L \
                   (RFC 4514: escape a comma in a value as \\,)";
    let name = x509_cert::name::RdnSequence::from_str(&trim_after_separators(s))
        .map_err(|e| format!("--subject {s:?}: not an RFC 4514 name ({e}); {example}"))?;
    let mut dn = rcgen::DistinguishedName::new();
    // RdnSequence holds the RDNs in encoding order (the string's last first); the name
    // keeps the order written, most specific first, as before.
    for rdn in name.0.iter().rev() {
        for atv in rdn.0.iter() {
            let t = match atv.oid.to_string().as_str() {
                "2.5.4.3" => rcgen::DnType::CommonName,
                "2.5.4.10" => rcgen::DnType::OrganizationName,
                "2.5.4.11" => rcgen::DnType::OrganizationalUnitName,
                "2.5.4.6" => rcgen::DnType::CountryName,
                "2.5.4.8" => rcgen::DnType::StateOrProvinceName,
                "2.5.4.7" => rcgen::DnType::LocalityName,
                other => {
                    return Err(format!(
                        "--subject {s:?}: attribute {other} is not one of CN, O, OU, C, ST, L"
                    ));
                }
            };
            use x509_cert::der::asn1::{PrintableStringRef, Utf8StringRef};
            let value = Utf8StringRef::try_from(&atv.value)
                .map(|v| v.as_str().to_owned())
                .or_else(|_| {
                    PrintableStringRef::try_from(&atv.value).map(|v| v.as_str().to_owned())
                })
                .map_err(|_| format!("--subject {s:?}: values must be strings; {example}"))?;
            dn.push(t, value);
        }
    }
    if dn.iter().next().is_none() {
        return Err(format!("--subject {s:?}: {example}"));
    }
    Ok(dn)
}

/// An attribute value escaped as RFC 4514 §2.4 asks (the store parses the string back).
fn escape_rfc4514(v: &str) -> String {
    let last = v.chars().count().saturating_sub(1);
    v.chars()
        .enumerate()
        .map(|(i, c)| {
            let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
                || (i == 0 && matches!(c, '#' | ' '))
                || (i == last && c == ' ');
            if special {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Drops the spaces that follow an unescaped `,` or `+` (the separators RFC 4514 writes
/// without them); everything else, escapes included, is the parser's.
fn trim_after_separators(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    let mut after_separator = true;
    for c in s.chars() {
        if after_separator && c == ' ' {
            continue;
        }
        after_separator = !escaped && (c == ',' || c == '+');
        escaped = !escaped && c == '\\';
        out.push(c);
    }
    out
}

/// The subject as an X.500 string for a store that issues the certificate itself (the
/// names here are built by `subject` and `subject_of`, UTF-8 strings of six types).
fn subject_string(dn: &rcgen::DistinguishedName) -> String {
    dn.iter()
        .filter_map(|(t, v)| {
            let k = match t {
                rcgen::DnType::CommonName => "CN",
                rcgen::DnType::OrganizationName => "O",
                rcgen::DnType::OrganizationalUnitName => "OU",
                rcgen::DnType::CountryName => "C",
                rcgen::DnType::StateOrProvinceName => "ST",
                rcgen::DnType::LocalityName => "L",
                _ => return None,
            };
            match v {
                rcgen::DnValue::Utf8String(s) => Some(format!("{k}={}", escape_rfc4514(s))),
                _ => None,
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
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
            Some(curve) => SignRequest::Ecdsa { curve },
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

/// The `cert` commands' options that shape their report.
trait Reports {
    fn slot_and_json(&self) -> (&str, bool);

    fn outcome<'a>(
        &'a self,
        key: &'a KeyRecord,
        previous: Option<&'a KeyRecord>,
        text: String,
    ) -> Outcome<'a> {
        let (slot, json) = self.slot_and_json();
        Outcome {
            json,
            slot,
            key,
            previous,
            text,
        }
    }
}

impl Reports for SelfSigned {
    fn slot_and_json(&self) -> (&str, bool) {
        (&self.slot, self.json)
    }
}

impl Reports for Rotate {
    fn slot_and_json(&self) -> (&str, bool) {
        (&self.slot, self.json)
    }
}

impl Reports for Import {
    fn slot_and_json(&self) -> (&str, bool) {
        (&self.slot, self.json)
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
    let module = Stores::open(ops::load(o.config.as_ref())?).map_err(|e| e.to_string())?;
    let result = make(&module, o, &spec, dn);
    drop(module);
    result
}

fn make(
    module: &Stores,
    o: &SelfSigned,
    spec: &KeySpec,
    dn: rcgen::DistinguishedName,
) -> Result<()> {
    let backend = backend_of(module, &o.slot)?;
    if !backend.writable() {
        return Err(format!("slot {:?} is read-only (writable = false)", o.slot));
    }
    let listing = backend
        .list()
        .map_err(|e| format!("slot {:?}: {e}", o.slot))?;
    if listing
        .keys
        .iter()
        .any(|k| k.name.eq_ignore_ascii_case(&o.name))
    {
        return Err(format!(
            "slot {:?} already has a key {:?}; `cert rotate` makes a new version of it",
            o.slot, o.name
        ));
    }
    // A vault issues the certificate itself (a Key Vault certificate with its key).
    let request = IssueRequest {
        spec,
        subject: &subject_string(&dn),
        days: o.days,
    };
    if let Some(record) = backend
        .issue_certificate(&o.name, &request)
        .map_err(|e| format!("issuing certificate {:?} in slot {:?}: {e}", o.name, o.slot))?
    {
        let der = certificate_of(backend.as_ref(), &record, &o.slot)?;
        let text = format!(
            "key {:?}{} and its certificate issued by the vault in slot {:?}",
            record.name,
            version_note(&record),
            o.slot
        );
        return report(&o.outcome(&record, None, text), &der);
    }
    let update = ObjectUpdate {
        label: Some(o.name.clone()),
        id: None,
    };
    let record = backend
        .generate_key(&o.name, spec, &update, KeyUsage::ALL)
        .map_err(|e| format!("creating key {:?} in slot {:?}: {e}", o.name, o.slot))?;
    let cert = issue(backend.as_ref(), &record, dn, o.days)?;
    let der = cert.der().to_vec();
    backend
        .store_certificate(&der, Some(&record), &update)
        .map_err(|e| format!("storing the certificate in slot {:?}: {e}", o.slot))?;
    let text = format!(
        "key {:?}{} created in slot {:?}; certificate stored",
        record.name,
        version_note(&record),
        o.slot
    );
    report(&o.outcome(&record, None, text), &der)
}

fn version_note(record: &KeyRecord) -> String {
    record
        .version
        .as_ref()
        .map(|v| format!(" (version {v})"))
        .unwrap_or_default()
}

/// What a `cert` command did, for its report.
struct Outcome<'a> {
    json: bool,
    slot: &'a str,
    /// The key now current (created, imported or rotated to).
    key: &'a KeyRecord,
    /// Rotation: the key version that stays for decryption.
    previous: Option<&'a KeyRecord>,
    text: String,
}

/// Tells what was done with the thumbprints on standard error, and prints the certificate
/// (PEM) on standard output for federation metadata; with --json, one JSON object on
/// standard output holding all of it.
fn report(o: &Outcome, der: &[u8]) -> Result<()> {
    let (sha1, sha256) = (
        hex(&openssl::sha::sha1(der)),
        hex(&openssl::sha::sha256(der)),
    );
    let pem = openssl::x509::X509::from_der(der)
        .and_then(|x| x.to_pem())
        .map_err(|e| e.to_string())?;
    let pem = String::from_utf8_lossy(&pem);
    if o.json {
        let version = |k: &KeyRecord| serde_json::json!({"name": k.name, "version": k.version});
        println!(
            "{}",
            serde_json::json!({
                "slot": o.slot,
                "key": version(o.key),
                "previous": o.previous.map(version),
                "message": o.text,
                "sha1": sha1,
                "sha256": sha256,
                "certificate_pem": pem,
            })
        );
        return Ok(());
    }
    eprintln!("{}\nSHA-1   {sha1}\nSHA-256 {sha256}", o.text);
    print!("{pem}");
    Ok(())
}

/// The certificate the store lists for `record`'s public key.
fn certificate_of(backend: &dyn Backend, record: &KeyRecord, slot: &str) -> Result<Vec<u8>> {
    backend
        .list()
        .map_err(|e| format!("slot {slot:?}: {e}"))?
        .certificates
        .into_iter()
        .find(|c| spki_of(&c.der).as_deref() == Some(record.spki_der.as_slice()))
        .map(|c| c.der)
        .ok_or_else(|| {
            format!(
                "slot {slot:?} lists no certificate for key {:?}",
                record.name
            )
        })
}

fn spki_of(der: &[u8]) -> Option<Vec<u8>> {
    openssl::x509::X509::from_der(der)
        .ok()?
        .public_key()
        .ok()?
        .public_key_to_der()
        .ok()
}

pub struct Rotate {
    pub config: Option<PathBuf>,
    pub slot: String,
    pub name: String,
    /// Default: the subject of the current version's certificate.
    pub subject: Option<String>,
    pub days: u32,
    pub json: bool,
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
    let module = Stores::open(ops::load(o.config.as_ref())?).map_err(|e| e.to_string())?;
    let result = rotate_in(&module, o, given);
    drop(module);
    result
}

fn rotate_in(module: &Stores, o: &Rotate, given: Option<rcgen::DistinguishedName>) -> Result<()> {
    let backend = backend_of(module, &o.slot)?;
    let listing = backend
        .list()
        .map_err(|e| format!("slot {:?}: {e}", o.slot))?;
    // By label first: in a directory the rotated key is a new entry that took the label.
    let current = listing
        .keys
        .iter()
        .find(|k| k.current && k.label.as_deref() == Some(o.name.as_str()))
        .or_else(|| listing.keys.iter().find(|k| k.current && k.name == o.name))
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
            .filter(|c| spki_of(&c.der).as_deref() == Some(current.spki_der.as_slice()))
            .find_map(|c| subject_of(&c.der))
            .ok_or_else(|| {
                format!(
                    "key {:?} has no certificate to take the subject from: give --subject",
                    o.name
                )
            })?,
    };
    let kept = |new: &KeyRecord| match (&new.version, &current.version) {
        (Some(n), Some(c)) => format!(
            "key {:?}: version {n} is current; version {c} stays for decryption",
            o.name
        ),
        _ => format!(
            "key {:?}: the new key {:?} is current; the previous one ({:?}) stays for decryption, relabelled",
            o.name, new.name, current.name
        ),
    };
    // A certificate the vault manages gets its new version from the vault (a new key
    // version comes with it); the key of such a certificate cannot be rotated alone.
    let managed = listing
        .certificates
        .iter()
        .any(|c| c.managed && c.label.eq_ignore_ascii_case(&o.name));
    if managed {
        let spec = KeySpec::like(&current.spki_der).map_err(|e| e.to_string())?;
        let request = IssueRequest {
            spec: &spec,
            subject: &subject_string(&dn),
            days: o.days,
        };
        let new = backend
            .issue_certificate(&current.name, &request)
            .map_err(|e| {
                format!(
                    "issuing a new version of certificate {:?} in slot {:?}: {e}",
                    o.name, o.slot
                )
            })?
            .ok_or_else(|| format!("slot {:?} does not issue certificates", o.slot))?;
        let der = certificate_of(backend.as_ref(), &new, &o.slot)?;
        return report(&o.outcome(&new, Some(current), kept(&new)), &der);
    }
    let new = backend
        .rotate_key(current)
        .map_err(|e| format!("rotating key {:?} in slot {:?}: {e}", o.name, o.slot))?;
    let cert = issue(backend.as_ref(), &new, dn, o.days)?;
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
    report(&o.outcome(&new, Some(current), kept(&new)), &der)
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

pub struct Import {
    pub config: Option<PathBuf>,
    pub slot: String,
    pub file: PathBuf,
    pub password_file: Option<PathBuf>,
    /// Default: the file's name without its extension.
    pub name: Option<String>,
    pub json: bool,
}

/// A key and its certificates read from an operator's file.
struct Bundle {
    key: openssl::pkey::PKey<openssl::pkey::Private>,
    /// The key's certificate first, then the others.
    chain: Vec<openssl::x509::X509>,
}

/// Reads a PKCS#12 file, or PEM with a private key (encrypted with the password when one
/// is given) and certificates.
fn read_bundle(file: &std::path::Path, password: Option<&str>) -> Result<Bundle> {
    let shown = file.display();
    let bytes = std::fs::read(file).map_err(|e| format!("{shown}: {e}"))?;
    let (key, mut certs) = if bytes.starts_with(b"-----BEGIN")
        || bytes.trim_ascii_start().starts_with(b"-----BEGIN")
    {
        let key = match password {
            Some(p) => openssl::pkey::PKey::private_key_from_pem_passphrase(&bytes, p.as_bytes()),
            None => openssl::pkey::PKey::private_key_from_pem(&bytes),
        }
        .map_err(|_| {
            format!(
                "{shown}: no private key readable{}",
                if password.is_some() {
                    " with the password of --password-file"
                } else {
                    " (an encrypted key needs --password-file)"
                }
            )
        })?;
        let certs = openssl::x509::X509::stack_from_pem(&bytes)
            .map_err(|e| format!("{shown}: certificates: {e}"))?;
        (key, certs)
    } else {
        let p12 = openssl::pkcs12::Pkcs12::from_der(&bytes)
            .map_err(|_| format!("{shown}: neither PEM nor PKCS#12 (PFX)"))?;
        let parsed = p12.parse2(password.unwrap_or("")).map_err(|_| {
            format!("{shown}: the PKCS#12 file does not open with the password of --password-file (none given means an empty password)")
        })?;
        let key = parsed
            .pkey
            .ok_or_else(|| format!("{shown}: the PKCS#12 file holds no private key"))?;
        let mut certs: Vec<_> = parsed.cert.into_iter().collect();
        certs.extend(parsed.ca.into_iter().flatten());
        (key, certs)
    };
    let public = PublicInfo::from_spki(&key.public_key_to_der().map_err(|e| e.to_string())?)
        .map_err(|e| format!("{shown}: {e}"))?;
    match public.curve {
        None if ![2048, 3072, 4096].contains(&public.bits) => {
            return Err(format!(
                "{shown}: an RSA key of {} bits; RSA 2048, 3072 or 4096 are accepted",
                public.bits
            ));
        }
        _ => {}
    }
    let leaf = certs
        .iter()
        .position(|c| c.public_key().is_ok_and(|p| p.public_eq(&key)))
        .ok_or_else(|| format!("{shown}: no certificate for its private key"))?;
    let first = certs.remove(leaf);
    certs.insert(0, first);
    Ok(Bundle { key, chain: certs })
}

/// A key name from a file name: letters, digits and '-' (what Key Vault accepts).
fn name_from_file(file: &std::path::Path) -> String {
    let stem = file
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.split('.').next().unwrap_or(n))
        .unwrap_or("imported");
    let name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-').to_owned();
    if name.is_empty() {
        "imported".into()
    } else {
        name
    }
}

/// `identify-pkcs11 cert import`: a PFX or PEM key with its certificate into the slot's
/// store (Key Vault: certificate import; Managed HSM: key import and the certificate into
/// the database; directory: files).
pub fn import(o: &Import) -> Result<()> {
    let password = match &o.password_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| format!("--password-file {}: {e}", f.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        ),
        None => None,
    };
    let bundle = read_bundle(&o.file, password.as_deref())?;
    let name = o.name.clone().unwrap_or_else(|| name_from_file(&o.file));
    let module = Stores::open(ops::load(o.config.as_ref())?).map_err(|e| e.to_string())?;
    let result = (|| {
        let backend = backend_of(&module, &o.slot)?;
        if !backend.writable() {
            return Err(format!("slot {:?} is read-only (writable = false)", o.slot));
        }
        let pkcs8 = bundle
            .key
            .private_key_to_pkcs8()
            .map_err(|e| e.to_string())?;
        let chain = bundle
            .chain
            .iter()
            .map(|c| c.to_der().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>>>()?;
        let record = backend
            .import_key(
                &name,
                &pkcs8,
                &chain,
                &ObjectUpdate {
                    label: Some(name.clone()),
                    id: None,
                },
            )
            .map_err(|e| {
                format!(
                    "importing {} into slot {:?} as {name:?}: {e}",
                    o.file.display(),
                    o.slot
                )
            })?;
        let text = format!(
            "key {:?}{} imported into slot {:?} with {} certificate(s)",
            record.name,
            version_note(&record),
            o.slot,
            chain.len()
        );
        report(&o.outcome(&record, None, text), &chain[0])
    })();
    drop(module);
    result
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
        assert!(subject("CN").unwrap_err().contains("RFC 4514"));
        assert!(subject("XX=1").unwrap_err().contains("RFC 4514"));
        assert!(subject("street=1").unwrap_err().contains("CN, O"));
        assert!(subject("").is_err());
        // RFC 4514 escaping: a comma and a plus inside values, a space kept inside.
        assert_eq!(
            subject_string(&subject(r"CN=Contoso\, Inc, O=A\+B,C=DK").unwrap()),
            r"CN=Contoso\, Inc, O=A\+B, C=DK"
        );
        let dn = subject(r"CN=Contoso\, Inc").unwrap();
        assert_eq!(dn.iter().count(), 1);
        assert_eq!(
            subject_string(&subject("CN=a.example, O=Contoso,C=DK").unwrap()),
            "CN=a.example, O=Contoso, C=DK"
        );
    }

    #[test]
    fn names_from_files() {
        let n = |f: &str| name_from_file(std::path::Path::new(f));
        assert_eq!(n("/etc/x/signing.pfx"), "signing");
        assert_eq!(n("My Cert_2026.p12"), "My-Cert-2026");
        assert_eq!(n("..."), "imported");
    }
}
