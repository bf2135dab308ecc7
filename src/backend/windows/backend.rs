//! The Windows store backend: listing, signing and decryption through CNG or CryptoAPI,
//! key generation, certificates, PFX import.
//!
//! This file holds the backend's state, the ids of its objects and the `Backend`
//! implementation; the work is in `listing`, `crypt` (signing and decryption), `keys`
//! (generation, PKCS#12 import, deletion) and `certificates` (certificates written
//! through PKCS#11, labels and ids).

mod certificates;
mod crypt;
mod keys;
mod listing;
#[cfg(test)]
mod tests;

use super::WindowsStoreConfig;
use super::win32::{ProvInfo, Store};
use crate::backend::{Backend, CertRecord, KeyRecord, KeySpec, KeyUsage, Listing, ObjectUpdate};
use crate::crypto::{DecryptRequest, SignRequest};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::Mutex;
use windows_sys::Win32::Security::Cryptography as c;

/// The prefix of the CNG keys this module creates.
const KEY_PREFIX: &str = "identify-pkcs11-";
/// Certificate properties of the module's own (CERT_FIRST_USER_PROP_ID and up): the
/// CKA_ID set through PKCS#11, and a mark on certificates added through PKCS#11 (listed
/// even without a key).
const PROP_CKA_ID: u32 = c::CERT_FIRST_USER_PROP_ID + 0x0110;
const PROP_ADDED: u32 = c::CERT_FIRST_USER_PROP_ID + 0x0111;

/// Where a listed key is and how to reach it.
#[derive(Debug, Clone)]
struct Locator {
    /// The SHA-1 thumbprint of its certificate, when it has one in the store.
    cert_sha1: Option<Vec<u8>>,
    prov: ProvInfo,
}

pub struct WindowsStoreBackend {
    config: WindowsStoreConfig,
    /// Keys as last listed, by stable id (a lookup only, never held across a call).
    keys: Mutex<HashMap<String, Locator>>,
    /// Labels and ids given to generated keys that have no certificate yet; they go to
    /// the certificate when it is stored.
    pending: Mutex<HashMap<String, ObjectUpdate>>,
}

fn lock_err<T>(_: T) -> Error {
    Error::Internal("windows store lock poisoned".into())
}

/// The stable id of a key: its provider and container, which do not change when its
/// certificate is added or replaced.
fn key_id(p: &ProvInfo) -> String {
    let digest = openssl::sha::sha1(
        format!(
            "{}\n{}\n{}",
            p.provider.as_deref().unwrap_or(""),
            p.container.as_deref().unwrap_or(""),
            p.key_spec
        )
        .as_bytes(),
    );
    format!("winkey:{}", crate::crypto::hex::encode(&digest[..10]))
}

fn cert_id(sha1: &[u8]) -> String {
    format!("wincert:{}", crate::crypto::hex::encode(sha1))
}

impl WindowsStoreBackend {
    pub fn new(config: WindowsStoreConfig) -> WindowsStoreBackend {
        WindowsStoreBackend {
            config,
            keys: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn store(&self, write: bool) -> Result<Store> {
        Store::open(self.config.location, &self.config.name, write)
            .map_err(|e| Error::Backend(format!("Windows store {}: {e}", self.config.display())))
    }

    /// The prefix of the CNG keys this slot generates: the store's name is in it, so a
    /// key waiting for its certificate shows in its own store's slot only.
    fn key_prefix(&self) -> String {
        let store: String = self
            .config
            .name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        format!("{KEY_PREFIX}{}-", store.to_ascii_lowercase())
    }

    fn require_writable(&self) -> Result<()> {
        if self.config.writable {
            Ok(())
        } else {
            Err(Error::TokenWriteProtected)
        }
    }

    fn locator(&self, key: &KeyRecord) -> Result<Locator> {
        self.keys
            .lock()
            .map_err(lock_err)?
            .get(&key.stable_id)
            .cloned()
            .ok_or(Error::KeyHandleInvalid)
    }
}

/// The CNG provider the module creates keys in.
fn win32_provider_name() -> String {
    "Microsoft Software Key Storage Provider".to_owned()
}

impl Backend for WindowsStoreBackend {
    fn kind(&self) -> &'static str {
        "windows-store"
    }

    fn writable(&self) -> bool {
        self.config.writable
    }

    fn check_sign(&self, key: &KeyRecord, request: &SignRequest) -> Result<()> {
        self.check_sign_request(key, request)
    }

    fn check_decrypt(&self, key: &KeyRecord, request: &DecryptRequest) -> Result<()> {
        self.check_decrypt_request(key, request)
    }

    fn list(&self) -> Result<Listing> {
        let (listing, locators) = self.list_store()?;
        *self.keys.lock().map_err(lock_err)? = locators;
        Ok(listing)
    }

    fn sign(&self, key: &KeyRecord, request: &SignRequest, data: &[u8]) -> Result<Vec<u8>> {
        self.sign_with_store_key(key, request, data)
    }

    fn decrypt(&self, key: &KeyRecord, request: &DecryptRequest, data: &[u8]) -> Result<Vec<u8>> {
        self.decrypt_with_store_key(key, request, data)
    }

    fn generate_key(
        &self,
        name: &str,
        spec: &KeySpec,
        update: &ObjectUpdate,
        usage: KeyUsage,
    ) -> Result<KeyRecord> {
        self.generate_cng_key(name, spec, update, usage)
    }

    fn store_certificate(
        &self,
        der: &[u8],
        key: Option<&KeyRecord>,
        update: &ObjectUpdate,
    ) -> Result<CertRecord> {
        self.add_certificate(der, key, update)
    }

    fn delete_key(&self, stable_id: &str) -> Result<()> {
        self.delete_store_key(stable_id)
    }

    fn delete_certificate(&self, stable_id: &str) -> Result<()> {
        self.delete_store_certificate(stable_id)
    }

    fn update(&self, stable_id: &str, update: &ObjectUpdate) -> Result<()> {
        self.update_labels(stable_id, update)
    }

    fn import_key(
        &self,
        name: &str,
        pkcs8_der: &[u8],
        chain: &[Vec<u8>],
        update: &ObjectUpdate,
    ) -> Result<KeyRecord> {
        self.import_through_pkcs12(name, pkcs8_der, chain, update)
    }
}
