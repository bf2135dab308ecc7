//! `require_hsm`: which keys a slot that must keep them in a FIPS 140 Level 3 HSM lists,
//! and the refusal of a new key the vault keeps below that level.

use super::KeyVaultBackend;
use crate::backend::{KeyRecord, Listing, Protection};
use crate::error::{Error, Result, ServiceFailure};

impl KeyVaultBackend {
    /// With `require_hsm`, a key this module just made must be kept in a FIPS 140 Level 3
    /// HSM: a vault whose HSM keys are on an older platform makes them Level 2, which the
    /// listing would hide. The call fails and says so (the version stays in the vault,
    /// hidden, for the operator to delete) instead of reporting a key nobody can use.
    pub(super) fn level3_or_refused(&self, key: KeyRecord) -> Result<KeyRecord> {
        if !self.cfg.require_hsm || key.protection == Protection::HsmLevel3 {
            return Ok(key);
        }
        Err(Error::Remote(
            ServiceFailure::BadRequest,
            format!(
                "{}: the new key {}/{} is kept below FIPS 140 Level 3 (a software key, or an HSM key on hsmPlatform 1 or an unreported platform), which require_hsm hides: delete it in the vault, and use a vault whose HSMs are FIPS 140-3 Level 3",
                self.cfg.url,
                key.name,
                key.version.as_deref().unwrap_or("?")
            ),
        ))
    }

    /// With `require_hsm`, leaves out the key versions not kept in a FIPS 140 Level 3 HSM
    /// and the certificates of their public keys, and notes them for `doctor`.
    pub(super) fn hide_below_level3(&self, mut listing: Listing) -> Listing {
        if !self.cfg.require_hsm {
            return listing;
        }
        let (kept, hidden): (Vec<KeyRecord>, Vec<KeyRecord>) = listing
            .keys
            .into_iter()
            .partition(|k| k.protection == Protection::HsmLevel3);
        listing.keys = kept;
        listing.certificates.retain(|c| {
            let spki = crate::crypto::key::certificate_spki(&c.der);
            !hidden
                .iter()
                .any(|k| spki.as_deref() == Some(k.spki_der.as_slice()))
        });
        let notes: Vec<String> = hidden
            .iter()
            .map(|k| {
                let why = match k.protection {
                    Protection::Software => "a software key",
                    _ => "an HSM key below FIPS 140 Level 3: hsmPlatform 1, or not reported",
                };
                format!("{}/{} ({why})", k.name, k.version.as_deref().unwrap_or("?"))
            })
            .collect();
        if !notes.is_empty() {
            tracing::info!(
                "require_hsm: {} key version(s) hidden: {}",
                notes.len(),
                notes.join(", ")
            );
        }
        if let Ok(mut h) = self.hidden.lock() {
            *h = notes;
        }
        listing
    }
}
