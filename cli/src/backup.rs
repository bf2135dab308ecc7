//! `backup` and `restore`: the store's own backup of each key (an opaque blob for vaults
//! and Managed HSMs, a vault certificate's blob for a key that backs one, the entry's files
//! for a directory) and the certificate database's rows, under a manifest of SHA-256 checksums. A restore checks every checksum and every
//! conflict before it changes anything, and never replaces a key unless `--force`.

use crate::cert::backend_of;
use crate::ops;
use identify_pkcs11::admin::Stores;
use identify_pkcs11::admin::hex;
use identify_pkcs11::admin::{BackupOf, KeyBackup, KeyRecord, StoredCertificate};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, String>;

const FORMAT: &str = "identify-pkcs11 backup 1";
const MANIFEST: &str = "manifest.json";
const CERTIFICATES: &str = "certificates.json";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: String,
    created: String,
    tool_version: String,
    slot: String,
    kind: String,
    keys: Vec<KeyEntry>,
    certificates: FileEntry,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    /// The versions the blob holds (none for stores without versions), each with the
    /// SHA-256 of its public key: a restore recognises a key that is already there.
    versions: Vec<VersionEntry>,
    /// What the blob is: the key's backup, or (a key-vault key that backs a vault
    /// certificate) the certificate's, which holds the key. Absent: the key's.
    #[serde(default, skip_serializing_if = "Object::is_key")]
    object: Object,
    #[serde(flatten)]
    file: FileEntry,
}

#[derive(Serialize, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Object {
    #[default]
    Key,
    Certificate,
}

impl Object {
    fn is_key(&self) -> bool {
        *self == Object::Key
    }
}

#[derive(Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
#[serde(deny_unknown_fields)]
struct VersionEntry {
    version: Option<String>,
    current: bool,
    public_key_sha256: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    file: String,
    bytes: u64,
    sha256: String,
}

pub struct Backup {
    pub config: Option<PathBuf>,
    pub slot: String,
    pub out: PathBuf,
    pub keys: Vec<String>,
    pub json: bool,
}

pub struct Restore {
    pub config: Option<PathBuf>,
    pub slot: String,
    pub dir: PathBuf,
    pub force: bool,
    pub json: bool,
}

fn versions_of<'a>(keys: impl Iterator<Item = &'a KeyRecord>, name: &str) -> Vec<VersionEntry> {
    let mut v: Vec<VersionEntry> = keys
        .filter(|k| k.name == name)
        .map(|k| VersionEntry {
            version: k.version.clone(),
            current: k.current,
            public_key_sha256: hex(&openssl::sha::sha256(&k.spki_der)),
        })
        .collect();
    v.sort();
    v
}

/// Writes `bytes` to `dir/rel` (mode 0600) and describes it for the manifest.
fn write(dir: &Path, rel: &str, bytes: &[u8]) -> Result<FileEntry> {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::Write::write_all(&mut f, bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(FileEntry {
        file: rel.to_owned(),
        bytes: bytes.len() as u64,
        sha256: hex(&openssl::sha::sha256(bytes)),
    })
}

/// Reads a file the manifest names and checks its size and checksum.
fn read_checked(dir: &Path, entry: &FileEntry) -> Result<Vec<u8>> {
    let rel = Path::new(&entry.file);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(format!(
            "{}: {:?} is not a file inside the backup",
            dir.join(MANIFEST).display(),
            entry.file
        ));
    }
    let path = dir.join(rel);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 != entry.bytes || hex(&openssl::sha::sha256(&bytes)) != entry.sha256 {
        return Err(format!(
            "{}: does not match its checksum in {MANIFEST} (the backup is damaged or was changed)",
            path.display()
        ));
    }
    Ok(bytes)
}

fn progress(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {wide_msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// The configured kind of slot `label` (`cert-store`, `key-vault`, `managed-hsm`).
fn slot_kind(stores: &Stores, label: &str) -> &'static str {
    stores.kind(label).map_or("?", |k| k.as_str())
}

fn with_module<T>(config: Option<&PathBuf>, f: impl FnOnce(&Stores) -> Result<T>) -> Result<T> {
    let module = Stores::open(ops::load(config)?).map_err(|e| e.to_string())?;
    let result = f(&module);
    drop(module);
    result
}

pub fn backup(o: &Backup) -> Result<()> {
    if o.out.exists()
        && std::fs::read_dir(&o.out)
            .map_err(|e| format!("--out {}: {e}", o.out.display()))?
            .next()
            .is_some()
    {
        return Err(format!(
            "--out {}: exists and is not empty; a backup never overwrites files",
            o.out.display()
        ));
    }
    with_module(o.config.as_ref(), |module| {
        let backend = backend_of(module, &o.slot)?;
        let listing = backend
            .list()
            .map_err(|e| format!("slot {:?}: {e}", o.slot))?;
        let names: BTreeSet<String> = listing.keys.iter().map(|k| k.name.clone()).collect();
        for k in &o.keys {
            if !names.contains(k) {
                return Err(format!(
                    "slot {:?} has no key {k:?}; its keys are {names:?}",
                    o.slot
                ));
            }
        }
        let chosen: Vec<String> = if o.keys.is_empty() {
            names.into_iter().collect()
        } else {
            o.keys
                .iter()
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let certificates = backend
            .stored_certificates((!o.keys.is_empty()).then_some(chosen.as_slice()))
            .map_err(|e| format!("slot {:?}: reading the certificate database: {e}", o.slot))?;
        create_private_dir(&o.out)?;
        let bar = progress(chosen.len(), "backing up");
        let mut keys = Vec::new();
        for name in &chosen {
            bar.set_message(format!("backing up {name}"));
            let backup = backend
                .backup_key(name)
                .map_err(|e| format!("backing up key {name:?} of slot {:?}: {e}", o.slot))?;
            keys.push(KeyEntry {
                name: name.clone(),
                versions: versions_of(listing.keys.iter(), name),
                object: match backup.of {
                    BackupOf::Key => Object::Key,
                    BackupOf::Certificate => Object::Certificate,
                },
                file: write(&o.out, &format!("keys/{name}.blob"), &backup.blob)?,
            });
            bar.inc(1);
        }
        bar.finish_and_clear();
        let rows = serde_json::to_vec_pretty(&certificates).map_err(|e| e.to_string())?;
        let manifest = Manifest {
            format: FORMAT.into(),
            created: identify_pkcs11::admin::now_rfc3339_millis(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            slot: o.slot.clone(),
            kind: slot_kind(module, &o.slot).into(),
            certificates: write(&o.out, CERTIFICATES, &rows)?,
            keys,
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
        write(&o.out, MANIFEST, &json)?;
        if o.json {
            let keys: Vec<_> = manifest
                .keys
                .iter()
                .map(|k| {
                    serde_json::json!({
                        "name": k.name,
                        "versions": k.versions.len(),
                        "object": k.object,
                        "bytes": k.file.bytes,
                        "sha256": k.file.sha256,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({
                    "slot": o.slot,
                    "dir": o.out,
                    "keys": keys,
                    "certificates": certificates.len(),
                })
            );
            return Ok(());
        }
        for k in &manifest.keys {
            println!(
                "{}  {} version(s){}  {} bytes  sha256 {}",
                k.name,
                k.versions.len(),
                if k.object.is_key() {
                    ""
                } else {
                    " with their vault certificates"
                },
                k.file.bytes,
                k.file.sha256
            );
        }
        println!(
            "backed up {} key(s) and {} stored certificate(s) of slot {:?} to {}",
            manifest.keys.len(),
            certificates.len(),
            o.slot,
            o.out.display()
        );
        Ok(())
    })
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .map_err(|e| format!("--out {}: {e}", dir.display()))
}

/// What a restore will do with one key.
enum Plan {
    Restore,
    /// Already in the store with the same versions and public keys.
    Identical,
    /// A different key of that name is in the store.
    Conflict,
}

pub fn restore(o: &Restore) -> Result<()> {
    let manifest_path = o.dir.join(MANIFEST);
    let manifest: Manifest = std::fs::read(&manifest_path)
        .map_err(|e| format!("{}: {e}", manifest_path.display()))
        .and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", manifest_path.display()))
        })?;
    if manifest.format != FORMAT {
        return Err(format!(
            "{}: format {:?}; this tool reads {FORMAT:?}",
            manifest_path.display(),
            manifest.format
        ));
    }
    // Every file is read and checked before anything is changed.
    let mut blobs = Vec::new();
    for k in &manifest.keys {
        if k.file.file != format!("keys/{}.blob", k.name) {
            return Err(format!(
                "{}: key {:?} names file {:?}",
                manifest_path.display(),
                k.name,
                k.file.file
            ));
        }
        blobs.push(KeyBackup {
            of: match k.object {
                Object::Key => BackupOf::Key,
                Object::Certificate => BackupOf::Certificate,
            },
            blob: read_checked(&o.dir, &k.file)?,
        });
    }
    let rows: Vec<StoredCertificate> = {
        let bytes = read_checked(&o.dir, &manifest.certificates)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: {e}", o.dir.join(&manifest.certificates.file).display()))?
    };
    with_module(o.config.as_ref(), |module| {
        let backend = backend_of(module, &o.slot)?;
        let kind = slot_kind(module, &o.slot);
        if kind != manifest.kind {
            return Err(format!(
                "{} is a backup of a {} slot ({:?}); slot {:?} is a {kind} slot",
                o.dir.display(),
                manifest.kind,
                manifest.slot,
                o.slot,
            ));
        }
        if !backend.writable() {
            return Err(format!("slot {:?} is read-only (writable = false)", o.slot));
        }
        let listing = backend
            .list()
            .map_err(|e| format!("slot {:?}: {e}", o.slot))?;
        let present: BTreeMap<&str, Vec<VersionEntry>> = listing
            .keys
            .iter()
            .map(|k| (k.name.as_str(), versions_of(listing.keys.iter(), &k.name)))
            .collect();
        let same = |a: &[VersionEntry], b: &[VersionEntry]| {
            let strip = |v: &[VersionEntry]| -> Vec<(Option<String>, String)> {
                v.iter()
                    .map(|e| (e.version.clone(), e.public_key_sha256.clone()))
                    .collect()
            };
            strip(a) == strip(b)
        };
        let plans: Vec<Plan> = manifest
            .keys
            .iter()
            .map(|k| match present.get(k.name.as_str()) {
                None => Plan::Restore,
                Some(v) if same(v, &k.versions) => Plan::Identical,
                Some(_) => Plan::Conflict,
            })
            .collect();
        let conflicts: Vec<&str> = manifest
            .keys
            .iter()
            .zip(&plans)
            .filter(|(_, p)| matches!(p, Plan::Conflict))
            .map(|(k, _)| k.name.as_str())
            .collect();
        if !conflicts.is_empty() && !o.force {
            return Err(format!(
                "slot {:?} already has other keys named {conflicts:?}; nothing was restored (--force replaces them)",
                o.slot
            ));
        }
        let work = plans
            .iter()
            .filter(|p| !matches!(p, Plan::Identical))
            .count();
        let bar = progress(work, "restoring");
        let (mut restored, mut replaced, mut kept) = (Vec::new(), Vec::new(), Vec::new());
        for ((k, plan), blob) in manifest.keys.iter().zip(&plans).zip(&blobs) {
            if matches!(plan, Plan::Identical) {
                kept.push(k.name.as_str());
                continue;
            }
            bar.set_message(format!("restoring {}", k.name));
            backend
                .restore_key(&k.name, blob, matches!(plan, Plan::Conflict))
                .map_err(|e| {
                    bar.finish_and_clear();
                    format!(
                        "restoring key {:?} into slot {:?}: {e}{}",
                        k.name,
                        o.slot,
                        if restored.is_empty() && replaced.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " (restored before it: {:?})",
                                [&restored[..], &replaced[..]].concat()
                            )
                        }
                    )
                })?;
            if matches!(plan, Plan::Conflict) {
                replaced.push(k.name.as_str());
            } else {
                restored.push(k.name.as_str());
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let added = backend
            .restore_certificates(&rows)
            .map_err(|e| format!("restoring certificates into slot {:?}: {e}", o.slot))?;
        let present = rows.len() - added.min(rows.len());
        if o.json {
            println!(
                "{}",
                serde_json::json!({
                    "slot": o.slot,
                    "restored": restored,
                    "replaced": replaced,
                    "kept": kept,
                    "certificates_added": added,
                    "certificates_present": present,
                })
            );
            return Ok(());
        }
        for name in &restored {
            println!("{name}  restored");
        }
        for name in &replaced {
            println!("{name}  restored; the slot's other key of that name was deleted first");
        }
        for name in &kept {
            println!("{name}  already present with the same versions; kept");
        }
        println!(
            "restored {} key(s) ({} already present) and {} stored certificate(s) ({} already present) into slot {:?}",
            restored.len() + replaced.len(),
            kept.len(),
            added,
            present,
            o.slot
        );
        Ok(())
    })
}
