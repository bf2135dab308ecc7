//! Certificates written through PKCS#11: adding one (linked to a key generated here),
//! deleting one, and the labels and ids kept on a certificate (or waiting, for a key
//! without its certificate yet).

use super::{PROP_ADDED, PROP_CKA_ID, WindowsStoreBackend, cert_id, lock_err};
use crate::backend::windows::win32::{self, Store};
use crate::backend::{Backend, CertRecord, KeyRecord, ObjectUpdate};
use crate::error::{Error, Result};

impl WindowsStoreBackend {
    /// The certificate of a stable certificate id.
    fn find_cert(&self, store: &Store, stable_id: &str) -> Result<win32::Cert> {
        let sha1 = stable_id
            .strip_prefix("wincert:")
            .and_then(crate::crypto::hex::decode)
            .ok_or_else(|| Error::Internal(format!("not a certificate id: {stable_id}")))?;
        store.find_sha1(&sha1).ok_or(Error::ObjectHandleInvalid)
    }

    /// Labels and id onto a certificate.
    fn apply(cert: &win32::Cert, update: &ObjectUpdate) -> Result<()> {
        if let Some(l) = &update.label {
            cert.set_friendly_name(l)?;
        }
        if let Some(i) = &update.id {
            cert.set_bytes(PROP_CKA_ID, Some(i))?;
        }
        Ok(())
    }

    /// `Backend::store_certificate`: a new certificate, linked to its key when the key was
    /// generated here.
    pub(super) fn add_certificate(
        &self,
        der: &[u8],
        key: Option<&KeyRecord>,
        update: &ObjectUpdate,
    ) -> Result<CertRecord> {
        self.require_writable()?;
        openssl::x509::X509::from_der(der).map_err(|e| {
            Error::AttributeValueInvalid(format!("CKA_VALUE is not a DER X.509 certificate: {e}"))
        })?;
        let store = self.store(true)?;
        let cert = store.add_der(der).map_err(|e| {
            if e.code == win32::CRYPT_E_EXISTS {
                Error::ActionProhibited(format!(
                    "this certificate is already in {}",
                    self.config.display()
                ))
            } else {
                Error::from(e)
            }
        })?;
        let mut update = update.clone();
        let linked = (|| {
            cert.set_bytes(PROP_ADDED, Some(b"1"))?;
            if let Some(k) = key
                && let Ok(loc) = self.locator(k)
                && loc.cert_sha1.is_none()
            {
                // A key made here: the certificate is linked to it, and takes the labels
                // the key was generated with unless given its own.
                cert.set_prov_info(&loc.prov)?;
                if let Some(p) = self.pending.lock().map_err(lock_err)?.get(&k.stable_id) {
                    update.label = update.label.take().or_else(|| p.label.clone());
                    update.id = update.id.take().or_else(|| p.id.clone());
                }
            }
            Self::apply(&cert, &update)
        })();
        if let Err(e) = linked {
            // No half-made certificate stays in the store.
            let _ = cert.delete();
            return Err(e);
        }
        if let Some(k) = key {
            self.pending.lock().map_err(lock_err)?.remove(&k.stable_id);
        }
        // Closed before listing: a new handle sees what this one wrote.
        drop(cert);
        drop(store);
        let id = cert_id(&openssl::sha::sha1(der));
        self.list()?
            .certificates
            .into_iter()
            .find(|c| c.stable_id == id)
            .ok_or_else(|| Error::Internal("stored certificate not listed".into()))
    }

    /// `Backend::delete_certificate`: a certificate that is not how the store reaches a key.
    pub(super) fn delete_store_certificate(&self, stable_id: &str) -> Result<()> {
        self.require_writable()?;
        let store = self.store(true)?;
        let cert = self.find_cert(&store, stable_id)?;
        // The store reaches a key through its certificate: deleting the certificate would
        // hide the key and leave its container behind.
        if cert.prov_info().is_some() {
            return Err(Error::ActionProhibited(
                "this certificate is how the store reaches its private key: destroy the private key first".into(),
            ));
        }
        cert.delete()?;
        Ok(())
    }

    /// `Backend::update`: labels and ids, on the certificate or waiting for it.
    pub(super) fn update_labels(&self, stable_id: &str, update: &ObjectUpdate) -> Result<()> {
        self.require_writable()?;
        if stable_id.starts_with("wincert:") {
            let store = self.store(true)?;
            return Self::apply(&self.find_cert(&store, stable_id)?, update);
        }
        // A key: its labels live on its certificate, or wait for it.
        let loc = self
            .keys
            .lock()
            .map_err(lock_err)?
            .get(stable_id)
            .cloned()
            .ok_or(Error::ObjectHandleInvalid)?;
        match &loc.cert_sha1 {
            Some(sha1) => {
                let store = self.store(true)?;
                let cert = store.find_sha1(sha1).ok_or(Error::ObjectHandleInvalid)?;
                Self::apply(&cert, update)
            }
            None => {
                let mut pending = self.pending.lock().map_err(lock_err)?;
                let p = pending.entry(stable_id.to_owned()).or_default();
                if update.label.is_some() {
                    p.label.clone_from(&update.label);
                }
                if update.id.is_some() {
                    p.id.clone_from(&update.id);
                }
                Ok(())
            }
        }
    }
}
