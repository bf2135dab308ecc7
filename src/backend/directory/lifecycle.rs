//! The operator's writes to a directory store: import of a key with its certificates, and
//! backup / restore of an entry (all files of one stem, so a PKCS#12 file, a PEM key with
//! its certificates and the labels set through PKCS#11 come back together).

use super::{
    CERT_SUFFIX, DirectoryBackend, KEY_SUFFIX, META_SUFFIX, P12_SUFFIXES, WriteError,
    remove_if_present, sanitize, write_private_file, write_private_file_new,
};
use crate::backend::{Backend, KeyRecord, KeySpec, ObjectUpdate, StoredCertificate};
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// Every file an entry may have.
const SUFFIXES: [&str; 5] = [
    KEY_SUFFIX,
    CERT_SUFFIX,
    META_SUFFIX,
    P12_SUFFIXES[0],
    P12_SUFFIXES[1],
];

/// The backup blob of one entry: its files by suffix, base64.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryBackup {
    files: BTreeMap<String, String>,
}

impl DirectoryBackend {
    fn taken(&self, stem: &str) -> bool {
        SUFFIXES.iter().any(|s| self.path(stem, s).exists())
    }

    /// A stem the operator named: it must be a file stem as it stands.
    fn checked_stem(name: &str) -> Result<&str> {
        if sanitize(name) == name {
            Ok(name)
        } else {
            Err(Error::AttributeValueInvalid(format!(
                "{name:?} is not a file stem here: letters, digits, '.', '_' and '-' only"
            )))
        }
    }

    pub(super) fn import(
        &self,
        name: &str,
        pkcs8_der: &[u8],
        chain: &[Vec<u8>],
        update: &ObjectUpdate,
    ) -> Result<KeyRecord> {
        let stem = Self::checked_stem(name)?;
        let pkey = openssl::pkey::PKey::private_key_from_der(pkcs8_der)?;
        super::check_key_type(&pkey)?;
        let mut certs = Vec::new();
        for der in chain {
            certs.extend(openssl::x509::X509::from_der(der)?.to_pem()?);
        }
        let writing = self.write_guard()?;
        if self.taken(stem) {
            return Err(Error::ActionProhibited(format!(
                "{} already holds an entry {stem:?}; choose another name",
                self.dir().display()
            )));
        }
        match write_private_file_new(
            &self.path(stem, KEY_SUFFIX),
            &pkey.private_key_to_pem_pkcs8()?,
        ) {
            Ok(()) => {}
            Err(WriteError::Exists) => {
                return Err(Error::ActionProhibited(format!(
                    "{stem}{KEY_SUFFIX} appeared meanwhile; choose another name"
                )));
            }
            Err(WriteError::Other(e)) => return Err(e),
        }
        if !certs.is_empty() {
            write_private_file(&self.path(stem, CERT_SUFFIX), &certs)?;
        }
        self.update_meta(stem, |m| {
            m.apply(update, false);
            m.apply(update, true);
        })?;
        drop(writing);
        self.list()?
            .keys
            .into_iter()
            .find(|k| k.name == stem)
            .ok_or_else(|| Error::Internal(format!("imported key {stem} not listed")))
    }

    pub(super) fn backup(&self, name: &str) -> Result<Vec<u8>> {
        let stem = Self::checked_stem(name)?;
        let mut files = BTreeMap::new();
        for suffix in SUFFIXES {
            let path = self.path(stem, suffix);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    files.insert(suffix.to_owned(), openssl::base64::encode_block(&bytes));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::backend(&format!("reading {}", path.display()), e)),
            }
        }
        if files.is_empty() {
            return Err(Error::ObjectGone(format!(
                "{} has no entry {stem:?}",
                self.dir().display()
            )));
        }
        serde_json::to_vec(&EntryBackup { files }).map_err(|e| Error::backend("backup", e))
    }

    pub(super) fn restore(&self, name: &str, blob: &[u8], replace: bool) -> Result<()> {
        let stem = Self::checked_stem(name)?;
        let backup: EntryBackup = serde_json::from_slice(blob).map_err(|e| {
            Error::AttributeValueInvalid(format!(
                "backup of {stem:?} is not a directory entry: {e}"
            ))
        })?;
        // Everything is decoded and checked before the first file is touched.
        let mut files = Vec::new();
        for (suffix, b64) in &backup.files {
            if !SUFFIXES.contains(&suffix.as_str()) {
                return Err(Error::AttributeValueInvalid(format!(
                    "backup of {stem:?}: {suffix:?} is not a file of an entry"
                )));
            }
            let bytes = openssl::base64::decode_block(b64).map_err(|e| {
                Error::AttributeValueInvalid(format!("backup of {stem:?}, {suffix}: {e}"))
            })?;
            files.push((self.path(stem, suffix), bytes));
        }
        let _writing = self.write_guard()?;
        if self.taken(stem) {
            if !replace {
                return Err(Error::ActionProhibited(format!(
                    "{} already holds an entry {stem:?}",
                    self.dir().display()
                )));
            }
            for suffix in SUFFIXES {
                remove_if_present(&self.path(stem, suffix))?;
            }
        }
        for (path, bytes) in &files {
            write_private_file(path, bytes)?;
        }
        Ok(())
    }
}

impl DirectoryBackend {
    /// A directory keeps one key per entry: the new key is a new entry that takes the
    /// label, and the previous key stays (for decryption) under the label
    /// `LABEL (until TIME)`, with its certificate.
    pub(super) fn rotate(&self, current: &KeyRecord) -> Result<KeyRecord> {
        let spec = KeySpec::like(&current.spki_der)?;
        let label = current
            .label
            .clone()
            .unwrap_or_else(|| current.name.clone());
        let new = self.generate_key(
            &label,
            &spec,
            &ObjectUpdate {
                label: Some(label.clone()),
                id: None,
            },
            current.usage,
        )?;
        let previous = format!(
            "{label} (until {})",
            crate::crypto::time::now_rfc3339_millis()
        );
        let _writing = self.write_guard()?;
        self.update_meta(&current.name, |m| {
            m.key_label = Some(previous.clone());
            m.cert_label = Some(previous.clone());
        })?;
        Ok(KeyRecord {
            label: Some(label),
            ..new
        })
    }
}

impl DirectoryBackend {
    /// Certificates of entries without a key (CA and peer certificates): key backups carry
    /// the others.
    pub(super) fn loose_certificates(
        &self,
        keys: Option<&[String]>,
    ) -> Result<Vec<StoredCertificate>> {
        if keys.is_some() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for (stem, entry) in self.entries()? {
            let (None, None, Some(path)) = (&entry.key, &entry.p12, &entry.certs) else {
                continue;
            };
            let meta = Self::read_meta(entry.meta.as_deref());
            let pem =
                std::fs::read(path).map_err(|e| Error::backend(&path.display().to_string(), e))?;
            for cert in openssl::x509::X509::stack_from_pem(&pem)? {
                out.push(StoredCertificate {
                    key_name: None,
                    key_version: None,
                    label: meta.cert_label.clone().unwrap_or_else(|| stem.clone()),
                    cka_id: meta.cert_id.clone().unwrap_or_default(),
                    der: openssl::base64::encode_block(&cert.to_der()?),
                });
            }
        }
        Ok(out)
    }

    /// Stores the certificates that the directory does not hold yet.
    pub(super) fn restore_loose(&self, certificates: &[StoredCertificate]) -> Result<usize> {
        let decoded = certificates
            .iter()
            .map(|c| c.decode().map(|(der, id)| (c, der, id)))
            .collect::<Result<Vec<_>>>()?;
        let present: Vec<Vec<u8>> = self
            .list()?
            .certificates
            .into_iter()
            .map(|c| c.der)
            .collect();
        let mut added = 0;
        for (c, der, id) in decoded {
            if present.contains(&der) {
                continue;
            }
            self.store_certificate(
                &der,
                None,
                &ObjectUpdate {
                    label: Some(c.label.clone()),
                    id: (!id.is_empty()).then_some(id),
                },
            )?;
            added += 1;
        }
        Ok(added)
    }
}
