//! Configuration → backends: the network runtime the Azure slots share, and one backend
//! per configured slot.

use crate::backend::Backend;
use crate::backend::azure::AzureRuntime;
use crate::backend::azure::key_vault::KeyVaultBackend;
use crate::backend::directory::{DirectoryBackend, DirectoryConfig};
use crate::config::{Config, SlotConfig, StoreConfig};
use crate::error::{Error, Result};
use crate::telemetry::Telemetry;
use std::sync::Arc;

/// The network runtime of key-vault / managed-hsm slots, if the configuration has any.
/// `may_create_threads` is false when the application set
/// `CKF_LIBRARY_CANT_CREATE_OS_THREADS`: network slots then run on the caller's thread.
pub fn runtime(config: &Config, may_create_threads: bool) -> Result<Option<Arc<AzureRuntime>>> {
    if config
        .slots
        .iter()
        .any(|s| matches!(s.store, StoreConfig::Azure(_)))
    {
        Ok(Some(Arc::new(AzureRuntime::new(may_create_threads)?)))
    } else {
        Ok(None)
    }
}

/// The backend of one configured slot.
pub fn open(
    sc: &SlotConfig,
    runtime: Option<&Arc<AzureRuntime>>,
    telemetry: &Telemetry,
) -> Result<Arc<dyn Backend>> {
    let backend: Arc<dyn Backend> = match &sc.store {
        StoreConfig::Azure(azure) => {
            let rt = runtime
                .cloned()
                .ok_or_else(|| Error::Internal("no network runtime".into()))?;
            Arc::new(KeyVaultBackend::new(
                (**azure).clone(),
                rt,
                telemetry.http_counts(&sc.label),
            )?)
        }
        #[cfg(windows)]
        StoreConfig::Windows(w) => {
            Arc::new(crate::backend::windows::WindowsStoreBackend::new(w.clone()))
        }
        // The configuration accepts Windows stores only on Windows.
        #[cfg(not(windows))]
        StoreConfig::Windows(w) => {
            return Err(Error::Config(format!(
                "{}: a Windows certificate store on another system",
                w.display()
            )));
        }
        StoreConfig::Directory {
            path,
            writable,
            pkcs12_password,
            create,
        } => {
            if *create {
                create_private_dir(path)?;
            }
            Arc::new(DirectoryBackend::new(DirectoryConfig {
                path: path.clone(),
                pkcs12_password: pkcs12_password.clone(),
                writable: *writable,
            }))
        }
    };
    Ok(backend)
}

/// Creates the per-user store directory with mode 0700 (the embedded default).
fn create_private_dir(path: &std::path::Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path).map_err(|e| {
        Error::Config(format!(
            "cannot create the store directory {}: {e}",
            path.display()
        ))
    })
}
