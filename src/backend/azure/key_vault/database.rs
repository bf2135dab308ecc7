//! Certificates kept in the certificate database (every Managed HSM key's, and vault keys' written through PKCS#11).

use super::*;

/// The stable id of a database certificate: `certdb:ROWID`.
pub(super) fn db_id(stable_id: &str) -> Option<i64> {
    stable_id.strip_prefix("certdb:")?.parse().ok()
}

pub(super) fn cert_record(row: crate::certdb::CertRow) -> CertRecord {
    CertRecord {
        stable_id: format!("certdb:{}", row.id),
        label: row.label,
        id: (!row.cka_id.is_empty()).then_some(row.cka_id),
        der: row.der,
        authority: false,
        managed: false,
    }
}

impl KeyVaultBackend {
    /// The database's certificates; when it cannot be read, those read last time (none
    /// before the first read), so that the keys' objects stay and signing goes on.
    pub(super) fn database_certificates(&self) -> Vec<CertRecord> {
        match self.local_certificates.list() {
            Ok(rows) => {
                let records: Vec<CertRecord> = rows.into_iter().map(cert_record).collect();
                if let Ok(mut last) = self.last_db_certificates.lock() {
                    *last = Some(records.clone());
                }
                records
            }
            Err(e) => {
                tracing::warn!(error = %e, "certificate database not readable; its certificates as last read are kept");
                self.last_db_certificates
                    .lock()
                    .ok()
                    .and_then(|l| l.clone())
                    .unwrap_or_default()
            }
        }
    }
}
