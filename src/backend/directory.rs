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

mod files;
mod keys;
mod lifecycle;

pub(crate) use files::write_private_file;
use files::{WriteError, remove_if_present, sanitize, short_hash, write_private_file_new};
use keys::check_key_type;
pub(crate) use keys::{decrypt_with, generate_pkey, sign_with};

use super::{
    Backend, CertRecord, Curve, DecryptRequest, KeyRecord, KeySpec, KeyUsage, Listing,
    ObjectUpdate, Protection, SignRequest,
};
use crate::crypto::digest_info;
use crate::error::{Error, Result};
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
            *id = Some(crate::crypto::hex::encode(i));
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

        let key_id = meta.key_id.as_deref().and_then(crate::crypto::hex::decode);
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
                protection: Protection::Software,
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
                        .and_then(crate::crypto::hex::decode)
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
    fn rsa_signs_with_openssl(&self) -> bool {
        true
    }

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

    fn backup_key(&self, name: &str) -> Result<super::KeyBackup> {
        Ok(super::KeyBackup {
            of: super::BackupOf::Key,
            blob: self.backup(name)?,
        })
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

    fn restore_key(&self, name: &str, backup: &super::KeyBackup, replace: bool) -> Result<()> {
        if backup.of != super::BackupOf::Key {
            return Err(Error::ActionProhibited(format!(
                "the backup of {name:?} is a Key Vault certificate; a directory restores only its own keys"
            )));
        }
        self.restore(name, &backup.blob, replace)
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

#[cfg(test)]
mod tests;
