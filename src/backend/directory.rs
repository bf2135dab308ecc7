//! The `cert-store` backend on systems without a Windows certificate store: a directory of
//! key files and certificates.
//!
//! Layout, one *entry* per file stem:
//! - `<stem>.key.pem`: an unencrypted PKCS#8 private key (RSA or EC), and optionally
//!   `<stem>.crt.pem`: its certificate first, then chain certificates;
//! - `<stem>.p12` / `<stem>.pfx`: a PKCS#12 file (key, certificate, CA certificates), its
//!   password read from the slot's `pkcs12_password_file`;
//! - `<stem>.crt.pem` alone: certificates without a key here (CA or peer certificates);
//! - `<stem>.meta.json`: labels and ids set through PKCS#11 (`C_SetAttributeValue`, the
//!   templates of `C_GenerateKeyPair` / `C_CreateObject`).
//!
//! Writes go to a temporary file in the directory, then `rename`, with mode 0600, so a
//! reader never sees half a file. Private-key arithmetic is OpenSSL's (constant-time RSA
//! and ECDSA); the `rsa` crate is never used for it (RUSTSEC-2023-0071).

mod lifecycle;

use super::{
    Backend, CertRecord, Curve, DecryptRequest, KeyRecord, KeySpec, KeyUsage, Listing,
    ObjectUpdate, SignRequest,
};
use crate::error::{Error, Result};
use crate::mechanism::{digest_info, md};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::pkey::{Id, PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::{Padding, Rsa};
use openssl::x509::X509;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const KEY_SUFFIX: &str = ".key.pem";
const CERT_SUFFIX: &str = ".crt.pem";
const META_SUFFIX: &str = ".meta.json";
const P12_SUFFIXES: [&str; 2] = [".p12", ".pfx"];

/// How a directory slot is set up (from the configuration).
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    pub path: PathBuf,
    /// The password of the PKCS#12 files (read from the configured file).
    pub pkcs12_password: Option<String>,
    pub writable: bool,
}

/// Labels and ids set through PKCS#11, kept beside the entry.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cert_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cert_id: Option<String>,
    /// The key was generated through this module.
    #[serde(default)]
    local: bool,
    /// Uses refused in the generation template (CKA_SIGN / CKA_DECRYPT false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sign: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decrypt: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unwrap: Option<bool>,
}

impl Meta {
    fn apply(&mut self, update: &ObjectUpdate, certificate: bool) {
        let (label, id) = if certificate {
            (&mut self.cert_label, &mut self.cert_id)
        } else {
            (&mut self.key_label, &mut self.key_id)
        };
        if let Some(l) = &update.label {
            *label = Some(l.clone());
        }
        if let Some(i) = &update.id {
            *id = Some(hex(i));
        }
    }
}

/// The files of one stem.
#[derive(Debug, Default)]
struct Entry {
    key: Option<PathBuf>,
    certs: Option<PathBuf>,
    p12: Option<PathBuf>,
    meta: Option<PathBuf>,
}

pub struct DirectoryBackend {
    config: DirectoryConfig,
    /// Private keys loaded at the last listing, by stable id, so that signing does not
    /// parse files. A `PKey` clone only takes a reference.
    keys: Mutex<HashMap<String, PKey<Private>>>,
    /// Serializes this process's writes to the directory (file I/O only, never network):
    /// picking a free name and writing it, and read-modify-write of metadata.
    writes: Mutex<()>,
}

impl DirectoryBackend {
    pub fn new(config: DirectoryConfig) -> DirectoryBackend {
        DirectoryBackend {
            config,
            keys: Mutex::new(HashMap::new()),
            writes: Mutex::new(()),
        }
    }

    fn write_guard(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.require_writable()?;
        self.writes
            .lock()
            .map_err(|_| Error::Internal("directory write lock poisoned".into()))
    }

    fn dir(&self) -> &Path {
        &self.config.path
    }

    fn entries(&self) -> Result<BTreeMap<String, Entry>> {
        let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
        let read = fs::read_dir(self.dir())
            .map_err(|e| Error::backend(&format!("reading {}", self.dir().display()), e))?;
        for item in read {
            let item = item.map_err(|e| Error::backend("reading directory entry", e))?;
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            let path = item.path();
            if let Some(stem) = name.strip_suffix(KEY_SUFFIX) {
                entries.entry(stem.to_owned()).or_default().key = Some(path);
            } else if let Some(stem) = name.strip_suffix(CERT_SUFFIX) {
                entries.entry(stem.to_owned()).or_default().certs = Some(path);
            } else if let Some(stem) = name.strip_suffix(META_SUFFIX) {
                entries.entry(stem.to_owned()).or_default().meta = Some(path);
            } else if let Some(stem) = P12_SUFFIXES.iter().find_map(|s| name.strip_suffix(s)) {
                entries.entry(stem.to_owned()).or_default().p12 = Some(path);
            }
        }
        Ok(entries)
    }

    fn read_meta(path: Option<&Path>) -> Meta {
        let Some(path) = path else {
            return Meta::default();
        };
        match fs::read(path).map(|b| serde_json::from_slice::<Meta>(&b)) {
            Ok(Ok(meta)) => meta,
            Ok(Err(e)) => {
                tracing::warn!(file = %path.display(), error = %e, "ignoring unreadable metadata file");
                Meta::default()
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read metadata file");
                Meta::default()
            }
        }
    }

    /// Loads one entry; a broken file is logged and skipped so that one bad file does not
    /// hide the others.
    fn load_entry(
        &self,
        stem: &str,
        entry: &Entry,
        listing: &mut Listing,
        keys: &mut HashMap<String, PKey<Private>>,
    ) -> Result<()> {
        let meta = Self::read_meta(entry.meta.as_deref());
        let mut chain: Vec<X509> = Vec::new();
        let mut key: Option<(PKey<Private>, PathBuf)> = None;
        if let Some(p12) = &entry.p12 {
            let der = fs::read(p12).map_err(|e| Error::backend(&p12.display().to_string(), e))?;
            let pass = self.config.pkcs12_password.as_deref().unwrap_or("");
            let parsed = openssl::pkcs12::Pkcs12::from_der(&der)
                .and_then(|p| p.parse2(pass))
                .map_err(|e| {
                    Error::backend(
                        &format!(
                            "{}: cannot open PKCS#12 (check pkcs12_password_file)",
                            p12.display()
                        ),
                        e,
                    )
                })?;
            if let Some(k) = parsed.pkey {
                key = Some((k, p12.clone()));
            }
            chain.extend(parsed.cert);
            if let Some(ca) = parsed.ca {
                chain.extend(ca);
            }
        }
        if let Some(path) = &entry.key {
            let pem = fs::read(path).map_err(|e| Error::backend(&path.display().to_string(), e))?;
            let k = PKey::private_key_from_pem(&pem).map_err(|e| {
                Error::backend(&format!("{}: not a PKCS#8 PEM key", path.display()), e)
            })?;
            key = Some((k, path.clone()));
        }
        if let Some(path) = &entry.certs {
            let pem = fs::read(path).map_err(|e| Error::backend(&path.display().to_string(), e))?;
            chain.extend(X509::stack_from_pem(&pem).map_err(|e| {
                Error::backend(&format!("{}: not PEM certificates", path.display()), e)
            })?);
        }

        let key_id = meta.key_id.as_deref().and_then(unhex);
        let mut key_spki: Option<Vec<u8>> = None;
        if let Some((pkey, path)) = key {
            check_key_type(&pkey).map_err(|e| Error::backend(&path.display().to_string(), e))?;
            let spki_der = pkey.public_key_to_der()?;
            let stable_id = format!("key:{stem}:{}", short_hash(&spki_der));
            keys.insert(stable_id.clone(), pkey);
            listing.keys.push(KeyRecord {
                stable_id,
                name: stem.to_owned(),
                version: None,
                current: true,
                label: meta.key_label.clone(),
                id: key_id.clone(),
                spki_der: spki_der.clone(),
                usage: KeyUsage {
                    sign: meta.sign.unwrap_or(true),
                    decrypt: meta.decrypt.unwrap_or(true),
                    unwrap: meta.unwrap.unwrap_or(true),
                },
                local: meta.local,
                backend_key_id: path.display().to_string(),
            });
            key_spki = Some(spki_der);
        }
        for (index, cert) in chain.iter().enumerate() {
            let der = cert.to_der()?;
            let cert_spki = cert.public_key().and_then(|k| k.public_key_to_der()).ok();
            let is_leaf = key_spki.is_some() && cert_spki == key_spki;
            let stable_id = format!("cert:{stem}:{index}:{}", short_hash(&der));
            let (label, id) = if is_leaf || (key_spki.is_none() && index == 0) {
                (
                    meta.cert_label
                        .clone()
                        .or_else(|| meta.key_label.clone())
                        .unwrap_or_else(|| stem.to_owned()),
                    meta.cert_id
                        .as_deref()
                        .and_then(unhex)
                        .or_else(|| key_id.clone()),
                )
            } else {
                (format!("{stem}/chain{index}"), None)
            };
            listing.certificates.push(CertRecord {
                stable_id,
                label,
                id,
                authority: !is_leaf && is_ca(cert),
                der,
                managed: false,
            });
        }
        Ok(())
    }

    /// The private key of a listed key version. The map is only a cache: a key missing
    /// from it (a listing raced with a write) is loaded from its file and checked to be the
    /// same key.
    fn private_key(&self, key: &KeyRecord) -> Result<PKey<Private>> {
        let lock_err = |_| Error::Internal("directory key map poisoned".into());
        if let Some(k) = self.keys.lock().map_err(lock_err)?.get(&key.stable_id) {
            return Ok(k.clone());
        }
        let gone = || Error::ObjectGone(format!("{} is no longer in the directory", key.name));
        let ObjectId::Key { stem, .. } = ObjectId::parse(&key.stable_id)? else {
            return Err(gone());
        };
        let entries = self.entries()?;
        let entry = entries.get(stem).ok_or_else(gone)?;
        let mut listing = Listing::default();
        let mut keys = HashMap::new();
        self.load_entry(stem, entry, &mut listing, &mut keys)?;
        let k = keys.remove(&key.stable_id).ok_or_else(gone)?;
        self.keys
            .lock()
            .map_err(lock_err)?
            .insert(key.stable_id.clone(), k.clone());
        Ok(k)
    }

    fn path(&self, stem: &str, suffix: &str) -> PathBuf {
        self.dir().join(format!("{stem}{suffix}"))
    }

    /// A stem not used by any file yet, derived from `wanted`.
    fn free_stem(&self, wanted: &str) -> String {
        let base = sanitize(wanted);
        let taken = |s: &str| {
            [
                KEY_SUFFIX,
                CERT_SUFFIX,
                META_SUFFIX,
                P12_SUFFIXES[0],
                P12_SUFFIXES[1],
            ]
            .iter()
            .any(|suffix| self.path(s, suffix).exists())
        };
        if !taken(&base) {
            return base;
        }
        (2u32..)
            .map(|n| format!("{base}-{n}"))
            .find(|s| !taken(s))
            .unwrap_or(base)
    }

    fn update_meta(&self, stem: &str, f: impl FnOnce(&mut Meta)) -> Result<()> {
        let path = self.path(stem, META_SUFFIX);
        let mut meta = if path.exists() {
            Self::read_meta(Some(&path))
        } else {
            Meta::default()
        };
        f(&mut meta);
        if meta == Meta::default() {
            return remove_if_present(&path);
        }
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::backend("metadata", e))?;
        write_private_file(&path, &json)
    }

    fn require_writable(&self) -> Result<()> {
        if self.config.writable {
            Ok(())
        } else {
            Err(Error::TokenWriteProtected)
        }
    }
}

impl DirectoryBackend {
    /// Writes a new key file for `pkey` under a free name near `name` (created
    /// exclusively: concurrent writers never overwrite each other), with its labels, the
    /// uses the caller refused and whether it was generated here in its metadata; lists it.
    fn store_new_key(
        &self,
        name: &str,
        pkey: &PKey<Private>,
        update: &ObjectUpdate,
        usage: KeyUsage,
        local: bool,
    ) -> Result<KeyRecord> {
        let pem = pkey.private_key_to_pem_pkcs8()?;
        let _writing = self.write_guard()?;
        // Another process may take the same name between the check and the write: the
        // key file is created exclusively, and a taken name moves on to the next.
        let mut stem = self.free_stem(name);
        for _ in 0..16 {
            match write_private_file_new(&self.path(&stem, KEY_SUFFIX), &pem) {
                Ok(()) => break,
                Err(WriteError::Exists) => stem = self.free_stem(&format!("{stem}-")),
                Err(WriteError::Other(e)) => return Err(e),
            }
        }
        if !self.path(&stem, KEY_SUFFIX).exists() {
            return Err(Error::Backend(format!("no free file name for key {name}")));
        }
        self.update_meta(&stem, |m| {
            m.apply(update, false);
            m.local = local;
            m.sign = (!usage.sign).then_some(false);
            m.decrypt = (!usage.decrypt).then_some(false);
            m.unwrap = (!usage.unwrap).then_some(false);
        })?;
        let mut listing = Listing::default();
        let mut keys = HashMap::new();
        let entry = Entry {
            key: Some(self.path(&stem, KEY_SUFFIX)),
            meta: Some(self.path(&stem, META_SUFFIX)),
            ..Entry::default()
        };
        self.load_entry(&stem, &entry, &mut listing, &mut keys)?;
        self.keys
            .lock()
            .map_err(|_| Error::Internal("directory key map poisoned".into()))?
            .extend(keys);
        listing
            .keys
            .pop()
            .ok_or_else(|| Error::Internal("new key not listed".into()))
    }
}

impl Backend for DirectoryBackend {
    fn kind(&self) -> &'static str {
        "directory"
    }

    fn writable(&self) -> bool {
        self.config.writable
    }

    fn list(&self) -> Result<Listing> {
        let mut listing = Listing::default();
        let mut keys = HashMap::new();
        for (stem, entry) in self.entries()? {
            if let Err(e) = self.load_entry(&stem, &entry, &mut listing, &mut keys) {
                tracing::warn!(entry = %stem, error = %e, "skipping unreadable store entry");
            }
        }
        *self
            .keys
            .lock()
            .map_err(|_| Error::Internal("directory key map poisoned".into()))? = keys;
        Ok(listing)
    }

    fn sign(&self, key: &KeyRecord, request: &SignRequest, data: &[u8]) -> Result<Vec<u8>> {
        sign_with(&self.private_key(key)?, request, data)
    }

    fn decrypt(&self, key: &KeyRecord, request: &DecryptRequest, data: &[u8]) -> Result<Vec<u8>> {
        decrypt_with(&self.private_key(key)?, request, data)
    }

    fn generate_key(
        &self,
        name: &str,
        spec: &KeySpec,
        update: &ObjectUpdate,
        usage: KeyUsage,
    ) -> Result<KeyRecord> {
        self.store_new_key(name, &generate_pkey(spec)?, update, usage, true)
    }

    fn store_private_key(
        &self,
        name: &str,
        pkcs8_der: &[u8],
        update: &ObjectUpdate,
        usage: KeyUsage,
    ) -> Result<KeyRecord> {
        let pkey = PKey::private_key_from_der(pkcs8_der)?;
        check_key_type(&pkey)?;
        self.store_new_key(name, &pkey, update, usage, false)
    }

    fn store_certificate(
        &self,
        der: &[u8],
        key: Option<&KeyRecord>,
        update: &ObjectUpdate,
    ) -> Result<CertRecord> {
        let cert = X509::from_der(der).map_err(|e| {
            Error::AttributeValueInvalid(format!("CKA_VALUE is not a DER X.509 certificate: {e}"))
        })?;
        let _writing = self.write_guard()?;
        // Beside its key when the key is a PEM file without a certificate yet; otherwise a
        // file of its own (paired by CKA_ID all the same). No existing certificate is ever
        // replaced: creating one object must not destroy another.
        let stem = match key {
            Some(k)
                if self.path(&k.name, KEY_SUFFIX).exists()
                    && !self.path(&k.name, CERT_SUFFIX).exists() =>
            {
                k.name.clone()
            }
            Some(k) => self.free_stem(update.label.as_deref().unwrap_or(&k.name)),
            None => self.free_stem(update.label.as_deref().unwrap_or("certificate")),
        };
        let path = self.path(&stem, CERT_SUFFIX);
        match write_private_file_new(&path, &cert.to_pem()?) {
            Ok(()) => {}
            Err(WriteError::Exists) => {
                return Err(Error::Backend(format!(
                    "{} appeared meanwhile; retry",
                    path.display()
                )));
            }
            Err(WriteError::Other(e)) => return Err(e),
        }
        self.update_meta(&stem, |m| m.apply(update, true))?;
        let id = format!("cert:{stem}:0:{}", short_hash(der));
        self.list()?
            .certificates
            .into_iter()
            .find(|c| c.stable_id == id)
            .ok_or_else(|| Error::Internal("stored certificate not listed".into()))
    }

    fn import_key(
        &self,
        name: &str,
        pkcs8_der: &[u8],
        chain: &[Vec<u8>],
        update: &ObjectUpdate,
    ) -> Result<KeyRecord> {
        self.import(name, pkcs8_der, chain, update)
    }

    fn rotate_key(&self, current: &KeyRecord) -> Result<KeyRecord> {
        self.rotate(current)
    }

    fn backup_key(&self, name: &str) -> Result<Vec<u8>> {
        self.backup(name)
    }

    fn stored_certificates(
        &self,
        keys: Option<&[String]>,
    ) -> Result<Vec<super::StoredCertificate>> {
        self.loose_certificates(keys)
    }

    fn restore_certificates(&self, certificates: &[super::StoredCertificate]) -> Result<usize> {
        self.restore_loose(certificates)
    }

    fn restore_key(&self, name: &str, blob: &[u8], replace: bool) -> Result<()> {
        self.restore(name, blob, replace)
    }

    fn delete_key(&self, stable_id: &str) -> Result<()> {
        let _writing = self.write_guard()?;
        let ObjectId::Key { stem, .. } = ObjectId::parse(stable_id)? else {
            return Err(Error::Internal(format!("not a key id: {stable_id}")));
        };
        let key_path = self.path(stem, KEY_SUFFIX);
        if key_path.exists() {
            remove_if_present(&key_path)?;
        } else {
            for suffix in P12_SUFFIXES {
                remove_if_present(&self.path(stem, suffix))?;
            }
        }
        self.update_meta(stem, |m| {
            m.key_label = None;
            m.key_id = None;
            m.local = false;
            m.sign = None;
            m.decrypt = None;
        })?;
        if let Ok(mut keys) = self.keys.lock() {
            keys.remove(stable_id);
        }
        Ok(())
    }

    fn delete_certificate(&self, stable_id: &str) -> Result<()> {
        let _writing = self.write_guard()?;
        let ObjectId::Cert { stem, hash, .. } = ObjectId::parse(stable_id)? else {
            return Err(Error::Internal(format!(
                "not a certificate id: {stable_id}"
            )));
        };
        if P12_SUFFIXES.iter().any(|s| self.path(stem, s).exists()) {
            return Err(Error::ActionProhibited(format!(
                "certificate {stable_id} belongs to a PKCS#12 file; remove the file instead"
            )));
        }
        let path = self.path(stem, CERT_SUFFIX);
        let pem = fs::read(&path).map_err(|e| Error::backend(&path.display().to_string(), e))?;
        let certs = X509::stack_from_pem(&pem)
            .map_err(|e| Error::backend(&format!("{}: not PEM certificates", path.display()), e))?;
        // By content, not position: the file may have changed since it was listed.
        let mut keep = Vec::new();
        let mut found = false;
        for c in certs {
            if !found && short_hash(&c.to_der()?) == hash {
                found = true;
            } else {
                keep.push(c);
            }
        }
        if !found {
            return Err(Error::ObjectGone(format!(
                "certificate {stable_id} is no longer in {}",
                path.display()
            )));
        }
        if keep.is_empty() {
            remove_if_present(&path)?;
            self.update_meta(stem, |m| {
                m.cert_label = None;
                m.cert_id = None;
            })?;
        } else {
            let mut out = Vec::new();
            for c in keep {
                out.extend(c.to_pem()?);
            }
            write_private_file(&path, &out)?;
        }
        Ok(())
    }

    fn update(&self, stable_id: &str, update: &ObjectUpdate) -> Result<()> {
        let _writing = self.write_guard()?;
        match ObjectId::parse(stable_id)? {
            ObjectId::Key { stem, .. } => self.update_meta(stem, |m| m.apply(update, false)),
            ObjectId::Cert { stem, index: 0, .. } => {
                self.update_meta(stem, |m| m.apply(update, true))
            }
            ObjectId::Cert { .. } => Err(Error::ActionProhibited(
                "labels and ids of chain certificates are fixed; change the entry's certificate"
                    .into(),
            )),
        }
    }
}

/// The parts of a stable object id: `key:<stem>:<hash>` or `cert:<stem>:<index>:<hash>`.
/// Stems may contain `:`, so the id is split from the right.
#[derive(Debug, PartialEq, Eq)]
enum ObjectId<'a> {
    Key {
        stem: &'a str,
        hash: &'a str,
    },
    Cert {
        stem: &'a str,
        index: usize,
        hash: &'a str,
    },
}

impl<'a> ObjectId<'a> {
    fn parse(id: &'a str) -> Result<ObjectId<'a>> {
        let bad = || Error::Internal(format!("not a directory object id: {id}"));
        if let Some(rest) = id.strip_prefix("key:") {
            let (stem, hash) = rest.rsplit_once(':').ok_or_else(bad)?;
            return Ok(ObjectId::Key { stem, hash });
        }
        let rest = id.strip_prefix("cert:").ok_or_else(bad)?;
        let (rest, hash) = rest.rsplit_once(':').ok_or_else(bad)?;
        let (stem, index) = rest.rsplit_once(':').ok_or_else(bad)?;
        let index = index.parse().map_err(|_| bad())?;
        Ok(ObjectId::Cert { stem, index, hash })
    }
}

/// A new private key of `spec`, made by OpenSSL.
pub(crate) fn generate_pkey(spec: &KeySpec) -> Result<PKey<Private>> {
    Ok(match spec {
        KeySpec::Rsa {
            bits,
            public_exponent,
        } => {
            let e = BigNum::from_slice(public_exponent)?;
            PKey::from_rsa(Rsa::generate_with_e(*bits, &e)?)?
        }
        KeySpec::Ec(curve) => {
            let group = EcGroup::from_curve_name(curve.nid())?;
            PKey::from_ec_key(EcKey::generate(&group)?)?
        }
    })
}

/// Signs with a private key in this process: the directory store's keys, and session key
/// pairs (`CKA_TOKEN` false), whose store is the session.
pub(crate) fn sign_with(
    pkey: &PKey<Private>,
    request: &SignRequest,
    data: &[u8],
) -> Result<Vec<u8>> {
    match request {
        SignRequest::RsaPkcs1 { hash } => {
            let rsa = pkey.rsa().map_err(|_| Error::KeyTypeInconsistent)?;
            let input = match hash {
                Some(h) => digest_info::encode(*h, data),
                None => data.to_vec(),
            };
            let mut out = vec![0u8; rsa.size() as usize];
            let n = rsa
                .private_encrypt(&input, &mut out, Padding::PKCS1)
                .map_err(|_| Error::DataLenRange)?;
            out.truncate(n);
            Ok(out)
        }
        SignRequest::RsaPss {
            hash,
            mgf_hash,
            salt_len,
        } => {
            if pkey.id() != Id::RSA {
                return Err(Error::KeyTypeInconsistent);
            }
            let salt = i32::try_from(*salt_len)
                .map_err(|_| Error::MechanismParamInvalid("salt length".into()))?;
            let mut ctx = PkeyCtx::new(pkey)?;
            ctx.sign_init()?;
            ctx.set_rsa_padding(Padding::PKCS1_PSS)?;
            ctx.set_signature_md(md(*hash))?;
            ctx.set_rsa_mgf1_md(md(*mgf_hash))?;
            ctx.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::custom(salt))?;
            let mut out = Vec::new();
            ctx.sign_to_vec(data, &mut out)
                .map_err(|e| Error::backend("RSA-PSS signature", e))?;
            Ok(out)
        }
        SignRequest::Ecdsa => {
            let ec = pkey.ec_key().map_err(|_| Error::KeyTypeInconsistent)?;
            let curve = ec
                .group()
                .curve_name()
                .and_then(Curve::from_nid)
                .ok_or(Error::KeyTypeInconsistent)?;
            let sig = EcdsaSig::sign(data, &ec)?;
            let n = i32::try_from(curve.field_len()).map_err(|e| Error::Internal(e.to_string()))?;
            let mut out = sig.r().to_vec_padded(n)?;
            out.extend(sig.s().to_vec_padded(n)?);
            Ok(out)
        }
    }
}

/// Decrypts with a private key in this process (see `sign_with`).
pub(crate) fn decrypt_with(
    pkey: &PKey<Private>,
    request: &DecryptRequest,
    data: &[u8],
) -> Result<Vec<u8>> {
    if pkey.id() != Id::RSA {
        return Err(Error::KeyTypeInconsistent);
    }
    let mut ctx = PkeyCtx::new(pkey)?;
    ctx.decrypt_init()?;
    match request {
        DecryptRequest::RsaPkcs1 => ctx.set_rsa_padding(Padding::PKCS1)?,
        DecryptRequest::RsaOaep {
            hash,
            mgf_hash,
            label,
        } => {
            ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
            ctx.set_rsa_oaep_md(md(*hash))?;
            ctx.set_rsa_mgf1_md(md(*mgf_hash))?;
            crate::ffi::oaep_label::set_rsa_oaep_label(&mut ctx, label)?;
        }
    }
    let mut out = Vec::new();
    // Any padding failure is the same answer, whatever OpenSSL's reason: no oracle.
    ctx.decrypt_to_vec(data, &mut out)
        .map_err(|_| Error::EncryptedDataInvalid)?;
    Ok(out)
}

fn check_key_type(pkey: &PKey<Private>) -> Result<()> {
    match pkey.id() {
        Id::RSA => Ok(()),
        Id::EC => {
            let ec = pkey.ec_key()?;
            ec.group()
                .curve_name()
                .and_then(Curve::from_nid)
                .map(|_| ())
                .ok_or_else(|| {
                    Error::Backend("unsupported elliptic curve (P-256, P-384, P-521 are)".into())
                })
        }
        other => Err(Error::Backend(format!(
            "unsupported key type {other:?} (RSA and EC are)"
        ))),
    }
}

/// basicConstraints cA=TRUE: the certificate is an authority (CKA_CERTIFICATE_CATEGORY 2).
fn is_ca(cert: &X509) -> bool {
    let Ok(der) = cert.to_der() else { return false };
    use x509_cert::der::Decode;
    let Ok(parsed) = x509_cert::Certificate::from_der(&der) else {
        return false;
    };
    parsed
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == BASIC_CONSTRAINTS)
        .any(|e| {
            x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes())
                .map(|b| b.ca)
                .unwrap_or(false)
        })
}

const BASIC_CONSTRAINTS: x509_cert::der::asn1::ObjectIdentifier =
    x509_cert::der::asn1::ObjectIdentifier::new_unwrap("2.5.29.19");

/// Writes a file only its owner can read, atomically (temporary file + rename).
pub(crate) fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    temp_file_with(path, contents)?
        .persist(path)
        .map_err(|e| Error::backend(&format!("writing {}", path.display()), e.error))?;
    Ok(())
}

/// A temporary file beside `path`, mode 0600, holding `contents` on disk.
fn temp_file_with(path: &Path, contents: &[u8]) -> Result<tempfile::NamedTempFile> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::Internal(format!("{} has no parent", path.display())))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-");
    // Windows files inherit the (per-user) directory's ACL instead.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o600));
    }
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| Error::backend(&format!("creating a file in {}", dir.display()), e))?;
    tmp.write_all(contents)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| Error::backend(&format!("writing {}", path.display()), e))?;
    Ok(tmp)
}

enum WriteError {
    Exists,
    Other(Error),
}

/// Like [`write_private_file`], but fails with `Exists` instead of replacing a file.
fn write_private_file_new(path: &Path, contents: &[u8]) -> std::result::Result<(), WriteError> {
    let tmp = temp_file_with(path, contents).map_err(WriteError::Other)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(()),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Err(WriteError::Exists),
        Err(e) => Err(WriteError::Other(Error::backend(
            &format!("writing {}", path.display()),
            e.error,
        ))),
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::backend(&format!("removing {}", path.display()), e)),
    }
}

/// A file stem from a label: letters, digits, `.`, `_` and `-` kept, anything else `_`.
fn sanitize(label: &str) -> String {
    let s: String = label
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_owned();
    if s.is_empty() { "key".to_owned() } else { s }
}

fn short_hash(bytes: &[u8]) -> String {
    hex(&openssl::sha::sha1(bytes)[..8])
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(dir: &Path) -> DirectoryBackend {
        DirectoryBackend::new(DirectoryConfig {
            path: dir.to_owned(),
            pkcs12_password: None,
            writable: true,
        })
    }

    #[test]
    fn generate_list_update_delete() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(dir.path());
        let rec = b
            .generate_key(
                "my key/1",
                &KeySpec::Ec(Curve::P256),
                &ObjectUpdate {
                    label: Some("my key/1".into()),
                    id: Some(vec![1, 2]),
                },
                KeyUsage::ALL,
            )
            .unwrap();
        assert_eq!(rec.name, "my_key_1");
        assert_eq!(rec.label.as_deref(), Some("my key/1"));
        assert_eq!(rec.id, Some(vec![1, 2]));
        assert!(rec.local);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("my_key_1.key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let listing = b.list().unwrap();
        assert_eq!(listing.keys, vec![rec.clone()]);
        let sig = b.sign(&rec, &SignRequest::Ecdsa, &[7u8; 32]).unwrap();
        assert_eq!(sig.len(), 64);

        b.update(
            &rec.stable_id,
            &ObjectUpdate {
                label: Some("renamed".into()),
                id: None,
            },
        )
        .unwrap();
        let listing = b.list().unwrap();
        assert_eq!(listing.keys[0].label.as_deref(), Some("renamed"));
        assert_eq!(listing.keys[0].id, Some(vec![1, 2]));

        b.delete_key(&rec.stable_id).unwrap();
        assert!(b.list().unwrap().keys.is_empty());
        assert!(matches!(
            b.sign(&rec, &SignRequest::Ecdsa, &[7u8; 32]),
            Err(Error::ObjectGone(_))
        ));
    }

    #[test]
    fn read_only_store_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let b = DirectoryBackend::new(DirectoryConfig {
            path: dir.path().to_owned(),
            pkcs12_password: None,
            writable: false,
        });
        let e = b
            .generate_key(
                "k",
                &KeySpec::Ec(Curve::P256),
                &ObjectUpdate::default(),
                KeyUsage::ALL,
            )
            .unwrap_err();
        assert_eq!(e, Error::TokenWriteProtected);
    }

    #[test]
    fn broken_files_are_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("bad.key.pem"), b"not a key").unwrap();
        fs::write(
            dir.path().join("bad2.crt.pem"),
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let b = backend(dir.path());
        b.generate_key(
            "good",
            &KeySpec::Ec(Curve::P384),
            &ObjectUpdate::default(),
            KeyUsage::ALL,
        )
        .unwrap();
        let listing = b.list().unwrap();
        assert_eq!(listing.keys.len(), 1);
        assert_eq!(listing.keys[0].name, "good");
    }

    fn self_signed(key: &PKey<Private>, cn: &str) -> Vec<u8> {
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = openssl::x509::X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        b.sign(key, openssl::hash::MessageDigest::sha256()).unwrap();
        b.build().to_der().unwrap()
    }

    #[test]
    fn concurrent_generation_with_one_label_loses_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let b = std::sync::Arc::new(backend(dir.path()));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    (0..5)
                        .map(|_| {
                            b.generate_key(
                                "same",
                                &KeySpec::Ec(Curve::P256),
                                &ObjectUpdate::default(),
                                KeyUsage::ALL,
                            )
                            .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let made: Vec<KeyRecord> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let listed = b.list().unwrap().keys;
        assert_eq!(listed.len(), 20);
        for k in made {
            assert!(listed.contains(&k), "{} was overwritten", k.name);
        }
    }

    #[test]
    fn a_second_certificate_never_replaces_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(dir.path());
        let rec = b
            .generate_key(
                "k",
                &KeySpec::Ec(Curve::P256),
                &ObjectUpdate::default(),
                KeyUsage::ALL,
            )
            .unwrap();
        let pkey = b.private_key(&rec).unwrap();
        let first = b
            .store_certificate(
                &self_signed(&pkey, "one"),
                Some(&rec),
                &ObjectUpdate::default(),
            )
            .unwrap();
        let second = b
            .store_certificate(
                &self_signed(&pkey, "two"),
                Some(&rec),
                &ObjectUpdate::default(),
            )
            .unwrap();
        let certs = b.list().unwrap().certificates;
        assert_eq!(certs.len(), 2);
        assert!(certs.contains(&first) && certs.contains(&second));
        // Deleting one by id removes that one only.
        b.delete_certificate(&first.stable_id).unwrap();
        assert_eq!(b.list().unwrap().certificates, vec![second]);
    }

    // Windows file names cannot hold a colon.
    #[cfg(unix)]
    #[test]
    fn colons_in_file_names_do_not_confuse_ids() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(dir.path());
        let a = b
            .generate_key(
                "a",
                &KeySpec::Ec(Curve::P256),
                &ObjectUpdate::default(),
                KeyUsage::ALL,
            )
            .unwrap();
        // A file placed by hand, named with a colon.
        let other = PKey::from_ec_key(
            EcKey::generate(&EcGroup::from_curve_name(Curve::P256.nid()).unwrap()).unwrap(),
        )
        .unwrap();
        fs::write(
            dir.path().join("a:b.key.pem"),
            other.private_key_to_pem_pkcs8().unwrap(),
        )
        .unwrap();
        let listed = b.list().unwrap().keys;
        let colon = listed.iter().find(|k| k.name == "a:b").unwrap().clone();
        assert_eq!(
            ObjectId::parse(&colon.stable_id).unwrap(),
            ObjectId::Key {
                stem: "a:b",
                hash: &colon.stable_id["key:a:b:".len()..]
            }
        );
        b.delete_key(&colon.stable_id).unwrap();
        let left = b.list().unwrap().keys;
        assert_eq!(left, vec![a], "deleting a:b must not touch a");
    }

    #[test]
    fn chain_certificates_cannot_be_relabelled() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(dir.path());
        let k1 = PKey::from_ec_key(
            EcKey::generate(&EcGroup::from_curve_name(Curve::P256.nid()).unwrap()).unwrap(),
        )
        .unwrap();
        let k2 = PKey::from_ec_key(
            EcKey::generate(&EcGroup::from_curve_name(Curve::P256.nid()).unwrap()).unwrap(),
        )
        .unwrap();
        let mut pem = X509::from_der(&self_signed(&k1, "leaf"))
            .unwrap()
            .to_pem()
            .unwrap();
        pem.extend(
            X509::from_der(&self_signed(&k2, "ca"))
                .unwrap()
                .to_pem()
                .unwrap(),
        );
        fs::write(dir.path().join("c.crt.pem"), pem).unwrap();
        let certs = b.list().unwrap().certificates;
        let chain = certs.iter().find(|c| c.label == "c/chain1").unwrap();
        let relabel = ObjectUpdate {
            label: Some("NEW".into()),
            id: None,
        };
        assert!(matches!(
            b.update(&chain.stable_id, &relabel),
            Err(Error::ActionProhibited(_))
        ));
        b.update(&certs[0].stable_id, &relabel).unwrap();
        let labels: Vec<String> = b
            .list()
            .unwrap()
            .certificates
            .into_iter()
            .map(|c| c.label)
            .collect();
        assert_eq!(labels, vec!["NEW".to_string(), "c/chain1".to_string()]);
    }

    #[test]
    fn refused_uses_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(dir.path());
        let usage = KeyUsage {
            sign: true,
            decrypt: false,
            unwrap: false,
        };
        let rec = b
            .generate_key(
                "s",
                &KeySpec::Rsa {
                    bits: 2048,
                    public_exponent: vec![1, 0, 1],
                },
                &ObjectUpdate::default(),
                usage,
            )
            .unwrap();
        assert_eq!(rec.usage, usage);
        assert_eq!(b.list().unwrap().keys[0].usage, usage);
    }

    #[test]
    fn sanitize_and_hex() {
        assert_eq!(sanitize("../etc/passwd"), "_etc_passwd");
        assert_eq!(sanitize(""), "key");
        assert_eq!(unhex(&hex(&[0, 255, 16])), Some(vec![0, 255, 16]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
