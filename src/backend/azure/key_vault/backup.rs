//! Backup and restore of a vault's or Managed HSM's keys (the service's own opaque blobs),
//! and of the certificate database's rows.
//!
//! A key-vault key that backs a vault certificate can only be backed up, restored and
//! deleted through its certificate (the service answers 403 "Operation backup is not
//! allowed on this Key, since it is associated with a certificate"): its backup is the
//! certificate's, which carries every version of the certificate and of its key.

use super::lifecycle::ISSUE_BOUND;
use super::{KeyVaultBackend, errors};
use crate::backend::{BackupOf, KeyBackup, StoredCertificate};
use crate::certdb::NewCert;
use crate::error::{Error, Result};
use azure_security_keyvault_certificates::models::RestoreCertificateParameters;
use azure_security_keyvault_keys::models::RestoreKeyParameters;
use std::time::{Duration, Instant};

impl KeyVaultBackend {
    /// Whether the vault has a certificate `name` (never on a Managed HSM, which keeps no
    /// certificates).
    fn has_certificate(&self, name: &str) -> Result<bool> {
        let Some(certificates) = &self.certificates else {
            return Ok(false);
        };
        match self.run(certificates.get_certificate(name, None))? {
            Ok(_) => Ok(true),
            // None, or none the principal may read (it may still back up keys; a key that
            // backs a certificate then gets the service's own refusal, named as such).
            Err(e) if matches!(e.http_status().map(u16::from), Some(403 | 404)) => Ok(false),
            Err(e) => Err(errors::map(
                e,
                &format!("checking whether certificate {name} exists"),
            )),
        }
    }

    pub(super) fn backup(&self, name: &str) -> Result<KeyBackup> {
        if let Some(certificates) = self.certificates.as_ref()
            && self.has_certificate(name)?
        {
            let what = format!("back up certificate {name} (with its key)");
            let blob = self
                .run(certificates.backup_certificate(name, None))?
                .map_err(|e| errors::map(e, &what))?
                .into_model()
                .map_err(|e| errors::map(e, &what))?
                .value
                .ok_or_else(|| Error::Backend(format!("{what}: no blob in the answer")))?;
            return Ok(KeyBackup {
                of: BackupOf::Certificate,
                blob,
            });
        }
        let what = format!("back up key {name}");
        let blob = self
            .run(self.keys.backup_key(name, None))?
            .map_err(|e| errors::map(e, &what))?
            .into_model()
            .map_err(|e| errors::map(e, &what))?
            .value
            .ok_or_else(|| Error::Backend(format!("{what}: no blob in the answer")))?;
        Ok(KeyBackup {
            of: BackupOf::Key,
            blob,
        })
    }

    pub(super) fn restore(&self, name: &str, backup: &KeyBackup, replace: bool) -> Result<()> {
        let certificates = match (backup.of, &self.certificates) {
            (BackupOf::Key, _) => None,
            (BackupOf::Certificate, Some(c)) => Some(c),
            (BackupOf::Certificate, None) => {
                return Err(Error::ActionProhibited(format!(
                    "the backup of {name:?} is a Key Vault certificate with its key; {} keeps no certificates (restore it into a key-vault slot)",
                    self.cfg.url
                )));
            }
        };
        if self.run(self.exists(name))?? || self.has_certificate(name)? {
            if !replace {
                return Err(Error::ActionProhibited(format!(
                    "{} already has a key {name:?}",
                    self.cfg.url
                )));
            }
            self.delete_and_purge(name)?;
        }
        let blob = Some(backup.blob.clone());
        match certificates {
            Some(certificates) => {
                let what = format!("restore certificate {name} (with its key)");
                let params = RestoreCertificateParameters {
                    certificate_backup: blob,
                };
                let body = params.try_into().map_err(|e| errors::map(e, &what))?;
                self.run(certificates.restore_certificate(body, None))?
                    .map(|_| ())
                    .map_err(|e| errors::map(e, &what))
            }
            None => {
                let what = format!("restore key {name}");
                let params = RestoreKeyParameters { key_backup: blob };
                let body = params.try_into().map_err(|e| errors::map(e, &what))?;
                self.run(self.keys.restore_key(body, None))?
                    .map(|_| ())
                    .map_err(|e| errors::map(e, &what))
            }
        }
    }

    /// Deletes key `name` (through its certificate where it backs one) and purges it, so
    /// that its name is free for a restore. Needs `allow_destroy`; the purge is retried
    /// while the service is still deleting.
    fn delete_and_purge(&self, name: &str) -> Result<()> {
        if !self.cfg.allow_destroy {
            return Err(Error::ActionProhibited(format!(
                "replacing key {name:?} deletes it from {}; set allow_destroy = true in the slot to allow it",
                self.cfg.url
            )));
        }
        let until = Instant::now() + ISSUE_BOUND;
        // 409 ObjectIsBeingDeleted, or 404 while the deletion is not yet visible.
        let deleting = |e: &azure_core::Error| {
            matches!(e.http_status().map(u16::from), Some(404 | 409)) && Instant::now() < until
        };
        if let Some(certificates) = self.certificates.as_ref()
            && self.has_certificate(name)?
        {
            let what = format!("delete certificate {name} (with its key)");
            self.run(certificates.delete_certificate(name, None))?
                .map_err(|e| errors::map(e, &what))?;
            let what = format!("purge certificate {name}");
            loop {
                match self.run(certificates.purge_deleted_certificate(name, None))? {
                    Ok(_) => return Ok(()),
                    Err(e) if deleting(&e) => std::thread::sleep(Duration::from_millis(500)),
                    Err(e) => return Err(errors::map(e, &what)),
                }
            }
        }
        let what = format!("delete key {name}");
        self.run(self.keys.delete_key(name, None))?
            .map_err(|e| errors::map(e, &what))?;
        let what = format!("purge key {name}");
        loop {
            match self.run(self.keys.purge_deleted_key(name, None))? {
                Ok(_) => return Ok(()),
                Err(e) if deleting(&e) => std::thread::sleep(Duration::from_millis(500)),
                Err(e) => return Err(errors::map(e, &what)),
            }
        }
    }

    pub(super) fn stored(&self, keys: Option<&[String]>) -> Result<Vec<StoredCertificate>> {
        Ok(self
            .local_certificates
            .list()?
            .into_iter()
            .filter(|r| match (keys, &r.key_name) {
                (None, _) => true,
                (Some(k), Some(n)) => k.contains(n),
                (Some(_), None) => false,
            })
            .map(|r| StoredCertificate {
                key_name: r.key_name,
                key_version: r.key_version,
                label: r.label,
                cka_id: crate::crypto::hex::encode(&r.cka_id),
                der: openssl::base64::encode_block(&r.der),
            })
            .collect())
    }

    pub(super) fn restore_stored(&self, certificates: &[StoredCertificate]) -> Result<usize> {
        let decoded = certificates
            .iter()
            .map(|c| c.decode().map(|(der, id)| (c, der, id)))
            .collect::<Result<Vec<_>>>()?;
        let before = self.local_certificates.list()?.len();
        for (c, der, id) in &decoded {
            self.local_certificates.insert(&NewCert {
                key_name: c.key_name.as_deref(),
                key_version: c.key_version.as_deref(),
                cka_id: id,
                label: &c.label,
                der,
            })?;
        }
        Ok(self.local_certificates.list()?.len().saturating_sub(before))
    }
}
