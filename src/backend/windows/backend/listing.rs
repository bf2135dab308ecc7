//! Listing a store: its certificates that have a private key (or were added through
//! PKCS#11), one key per key container, and the CNG keys generated here whose certificate
//! is not stored yet.

use super::keys::usage_of;
use super::{
    KEY_PREFIX, Locator, PROP_ADDED, PROP_CKA_ID, WindowsStoreBackend, cert_id, key_id, lock_err,
    win32_provider_name,
};
use crate::backend::windows::spki_of_blob;
use crate::backend::windows::win32::{self, NcryptKey, ProvInfo};
use crate::backend::{CertRecord, KeyRecord, KeyUsage, Listing};
use crate::error::Result;
use std::collections::HashMap;
use windows_sys::Win32::Security::Cryptography as c;

/// The subject's common name, for a label when the certificate has no friendly name.
fn common_name(der: &[u8]) -> Option<String> {
    let x = openssl::x509::X509::from_der(der).ok()?;
    let cn = x
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()?
        .data()
        .to_string()
        .ok()?;
    Some(cn)
}

impl WindowsStoreBackend {
    /// The uses CNG allows a key this module generated (its NCRYPT_KEY_USAGE_PROPERTY);
    /// `None` for other keys (imported, CryptoAPI), which keep every use.
    fn generated_usage(prov: &ProvInfo) -> Option<KeyUsage> {
        let container = prov.container.as_deref()?;
        if prov.prov_type != 0 || !container.starts_with(KEY_PREFIX) {
            return None;
        }
        let key = NcryptKey::open(prov.provider.as_deref(), container, prov.machine()).ok()?;
        key.usage().map(usage_of)
    }

    pub(super) fn key_record(
        &self,
        stable_id: String,
        name: String,
        label: Option<String>,
        id: Option<Vec<u8>>,
        spki_der: Vec<u8>,
        prov: &ProvInfo,
    ) -> KeyRecord {
        KeyRecord {
            stable_id,
            name,
            version: None,
            current: true,
            label,
            id,
            spki_der,
            usage: Self::generated_usage(prov).unwrap_or(KeyUsage::ALL),
            local: prov
                .container
                .as_deref()
                .is_some_and(|c| c.starts_with(KEY_PREFIX)),
            backend_key_id: format!(
                "{}: {}",
                prov.provider.as_deref().unwrap_or("(default provider)"),
                prov.container.as_deref().unwrap_or("(default container)")
            ),
            protection: crate::backend::Protection::Software,
        }
    }

    pub(super) fn list_store(&self) -> Result<(Listing, HashMap<String, Locator>)> {
        let store = self.store(false)?;
        let mut listing = Listing::default();
        let mut locators = HashMap::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut linked = std::collections::HashSet::new();
        for cert in store.certificates() {
            let der = cert.der();
            let prov = cert.prov_info();
            let added = cert.property(PROP_ADDED).is_some();
            if prov.is_none() && !added {
                continue;
            }
            let sha1 = openssl::sha::sha1(&der).to_vec();
            let label = cert
                .friendly_name()
                .or_else(|| common_name(&der))
                .unwrap_or_else(|| crate::crypto::hex::encode(&sha1));
            let id = cert.property(PROP_CKA_ID).filter(|i| !i.is_empty());
            listing.certificates.push(CertRecord {
                stable_id: cert_id(&sha1),
                label: label.clone(),
                id: id.clone(),
                der: der.clone(),
                authority: false,
                managed: false,
            });
            let Some(prov) = prov else { continue };
            let Ok(x) = openssl::x509::X509::from_der(&der) else {
                continue;
            };
            let Ok(spki) = x.public_key().and_then(|k| k.public_key_to_der()) else {
                continue;
            };
            let stable_id = key_id(&prov);
            if !linked.insert(stable_id.clone()) {
                // Two certificates of one key (a renewal): the key is listed once.
                continue;
            }
            let n = names.entry(label.clone()).or_default();
            *n += 1;
            let name = if *n == 1 {
                label.clone()
            } else {
                format!("{label}-{}", &crate::crypto::hex::encode(&sha1)[..8])
            };
            listing.keys.push(self.key_record(
                stable_id.clone(),
                name,
                Some(label),
                id,
                spki,
                &prov,
            ));
            locators.insert(
                stable_id,
                Locator {
                    cert_sha1: Some(sha1),
                    prov,
                },
            );
        }
        // Keys this module generated whose certificate is not stored yet.
        let machine = self.config.machine();
        let provider = win32_provider_name();
        let cng = win32::cng_key_names(&provider, &self.key_prefix(), machine).unwrap_or_default();
        let pending = self.pending.lock().map_err(lock_err)?.clone();
        for name in cng {
            let prov = ProvInfo {
                container: Some(name.clone()),
                provider: Some(provider.clone()),
                prov_type: 0,
                flags: if machine { c::CRYPT_MACHINE_KEYSET } else { 0 },
                key_spec: 0,
            };
            let stable_id = key_id(&prov);
            if linked.contains(&stable_id) {
                continue;
            }
            let Ok(key) = NcryptKey::open(Some(&provider), &name, machine) else {
                continue;
            };
            let spki = key
                .export_public(c::BCRYPT_RSAPUBLIC_BLOB)
                .ok()
                .and_then(|b| spki_of_blob(&b, true).ok())
                .or_else(|| {
                    key.export_public(c::BCRYPT_ECCPUBLIC_BLOB)
                        .ok()
                        .and_then(|b| spki_of_blob(&b, false).ok())
                });
            let Some(spki) = spki else { continue };
            let update = pending.get(&stable_id).cloned().unwrap_or_default();
            listing.keys.push(self.key_record(
                stable_id.clone(),
                name,
                update.label,
                update.id,
                spki,
                &prov,
            ));
            locators.insert(
                stable_id,
                Locator {
                    cert_sha1: None,
                    prov,
                },
            );
        }
        Ok((listing, locators))
    }
}
