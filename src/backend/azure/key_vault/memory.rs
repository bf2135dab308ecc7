//! What a listing remembers for the next one (issue: large vaults). Key versions are
//! immutable, so the public part of each (public key, permitted operations, protection) is
//! fetched once for the life of the process. A key whose list entry (its current version's
//! attributes and tags) is unchanged keeps the versions listed before; the versions of
//! every key are listed again at the slot's `full_refresh_seconds`, so that a change to an
//! older version only (disabled, its tags) is seen then. Certificates likewise, by their
//! list entry (thumbprint, attributes, tags).

use crate::backend::{CertRecord, KeyRecord};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One enabled version as the versions listing gave it.
#[derive(Clone, Debug)]
pub(super) struct ListedVersion {
    pub version: String,
    pub created: i64,
    pub tags: Option<HashMap<String, String>>,
}

/// A key as last listed: its list entry's fingerprint, its enabled versions and which
/// of them is current.
#[derive(Clone, Debug)]
pub(super) struct KnownKey {
    pub fingerprint: String,
    pub versions: Vec<ListedVersion>,
    pub current: Option<String>,
}

#[derive(Default)]
pub(super) struct ListingMemory {
    /// By lower-case key id (with version): the record as fetched (None: not a key the
    /// module can use) and its rate weight.
    pub versions: HashMap<String, Option<(KeyRecord, f64)>>,
    /// By key name.
    pub keys: HashMap<String, KnownKey>,
    /// By certificate name: its list entry's fingerprint and its records.
    pub certificates: HashMap<String, (String, Vec<CertRecord>)>,
    /// When the versions of every key were last listed.
    pub full_at: Option<Instant>,
}

impl ListingMemory {
    /// Whether this listing lists the versions of every key.
    pub fn full_due(&self, every: Duration) -> bool {
        self.full_at.is_none_or(|t| t.elapsed() >= every)
    }

    /// A write through this module changed key `name`: its versions are listed again.
    pub fn forget(&mut self, name: &str) {
        self.keys.remove(name);
        self.certificates.remove(name);
    }
}

/// A list entry's fingerprint: what changes when its current version does, is disabled,
/// or gets other tags or dates (`fields`: the entry's attributes, as text).
pub(super) fn fingerprint(
    fields: &[Option<String>],
    tags: Option<&HashMap<String, String>>,
) -> String {
    let mut tags: Vec<_> = tags.into_iter().flatten().collect();
    tags.sort();
    format!("{fields:?}|{tags:?}")
}
