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

/// A version's record as fetched, with its rate weight.
pub(super) type Fetched = (KeyRecord, f64);

/// One enabled version as the versions listing gave it.
#[derive(Clone, Debug)]
pub(super) struct ListedVersion {
    pub version: String,
    pub created: i64,
    /// When its attributes or permitted operations last changed.
    pub updated: Option<i64>,
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
    /// By lower-case key id (with version): when the version was last updated as it was
    /// fetched, and the record (None: not a key the module can use) with its rate weight.
    /// Fetched again when the versions listing shows a later update (its permitted
    /// operations may have changed).
    pub versions: HashMap<String, (Option<i64>, Option<Fetched>)>,
    /// By key name.
    pub keys: HashMap<String, KnownKey>,
    /// By certificate name: its list entry's fingerprint and its records.
    pub certificates: HashMap<String, (String, Vec<CertRecord>)>,
    /// When the versions of every key were last listed.
    pub full_at: Option<Instant>,
    /// Writes noted so far, and by lower-case key name the count at its last one: a
    /// listing that started before a write does not keep what it listed of that key.
    pub forgets: u64,
    forgotten: HashMap<String, u64>,
}

impl ListingMemory {
    /// Whether this listing lists the versions of every key.
    pub fn full_due(&self, every: Duration) -> bool {
        self.full_at.is_none_or(|t| t.elapsed() >= every)
    }

    /// A write through this module changed key `name`: its versions are listed again.
    /// Names are compared without case, as Key Vault does.
    pub fn forget(&mut self, name: &str) {
        self.keys.retain(|k, _| !k.eq_ignore_ascii_case(name));
        self.certificates
            .retain(|k, _| !k.eq_ignore_ascii_case(name));
        self.forgets += 1;
        self.forgotten
            .insert(name.to_ascii_lowercase(), self.forgets);
    }

    /// Whether key `name` was forgotten after the count `since` (a listing's start).
    pub fn forgotten_since(&self, name: &str, since: u64) -> bool {
        self.forgotten
            .get(&name.to_ascii_lowercase())
            .is_some_and(|at| *at > since)
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
