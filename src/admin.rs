//! The administration API: what the operator's tool (`cli/`) and the integration tests use
//! besides the C ABI (`ffi`). Everything else in the crate is `pub(crate)`.

pub use crate::backend::azure::{client_options, credential, http_client};
pub use crate::backend::{
    Backend, BackupOf, CertRecord, IssueRequest, KeyBackup, KeyRecord, KeySpec, KeyUsage, Listing,
    ObjectUpdate, Protection, StoredCertificate,
};
pub use crate::certdb::{CertDb, Location};
pub use crate::config::{
    AzureConfig, CONFIG_ENV, Config, SlotConfig, SlotKind, StoreConfig, hash_pin, kind_name, load,
    load_file, system_path,
};
/// Lower-case hex, as the module writes ids and thumbprints.
pub use crate::crypto::hex::encode as hex;
pub use crate::crypto::time::{now_rfc3339_millis, rfc3339_of};
pub use crate::crypto::{Curve, DecryptRequest, HashAlg, PublicInfo, SignRequest};
pub use crate::error::rv_name;
pub use crate::mechanism::check_signature;
use crate::module::Module;
pub use crate::object::{certificate_id, key_id, key_label};

use crate::error::{Error, Result};
use std::sync::Arc;

/// The configured slots' stores, opened as C_Initialize opens them (nothing reaches the
/// network until a store is used), for the operator's commands: list, doctor, certificate
/// creation, import and rotation, backup and restore. Closed on drop (background threads
/// stopped within their bound).
pub struct Stores {
    module: Module,
}

impl Stores {
    pub fn open(config: Config) -> Result<Stores> {
        Ok(Stores {
            module: Module::new(config, true)?,
        })
    }

    /// Each slot's configuration and store, in slot order.
    pub fn slots(&self) -> impl Iterator<Item = (&SlotConfig, Result<Arc<dyn Backend>>)> + '_ {
        self.module
            .slots
            .iter()
            .enumerate()
            .map(|(index, slot)| (&slot.config, self.module.backend(index)))
    }

    /// The slot labelled `label`; the error names the labels there are.
    pub fn slot(&self, label: &str) -> Result<(&SlotConfig, Arc<dyn Backend>)> {
        let found = self.slots().find(|(config, _)| config.label == label);
        match found {
            Some((config, backend)) => Ok((config, backend?)),
            None => {
                let labels: Vec<&str> = self.slots().map(|(c, _)| c.label.as_str()).collect();
                Err(Error::Config(format!(
                    "no slot labelled {label:?}; the slots are {labels:?}"
                )))
            }
        }
    }

    /// The store of the slot labelled `label`.
    pub fn backend(&self, label: &str) -> Result<Arc<dyn Backend>> {
        self.slot(label).map(|(_, backend)| backend)
    }

    /// The kind of the slot labelled `label`.
    pub fn kind(&self, label: &str) -> Option<SlotKind> {
        self.slot(label).ok().map(|(config, _)| config.kind)
    }
}

impl Drop for Stores {
    fn drop(&mut self) {
        self.module.shutdown();
    }
}
