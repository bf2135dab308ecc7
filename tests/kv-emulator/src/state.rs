//! In-memory state of every vault and Managed HSM the emulator serves: keys with their
//! versions, soft-deleted keys, certificates and their pending operations. One lock per
//! container; cryptography happens outside it on an `Arc` of the key material.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde_json::{Map, Value};

use crate::crypto::KeyMaterial;
use crate::throttle::Throttle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Vault,
    Hsm,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Vault => "vault",
            Kind::Hsm => "hsm",
        }
    }
}

#[derive(Clone, Debug)]
pub struct KeyAttrs {
    pub enabled: bool,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub created: i64,
    pub updated: i64,
    pub exportable: bool,
}

#[derive(Clone)]
pub struct KeyVersion {
    pub version: String,
    pub material: Arc<KeyMaterial>,
    /// The `kty` the service reports: RSA, RSA-HSM, EC, EC-HSM.
    pub kty: String,
    pub key_ops: Vec<String>,
    pub attrs: KeyAttrs,
    pub tags: Map<String, Value>,
    pub release_policy: Option<Value>,
}

impl KeyVersion {
    pub fn is_hsm(&self) -> bool {
        self.kty.ends_with("-HSM")
    }
}

#[derive(Clone)]
pub struct KeyObject {
    /// The name as first created (names are case-insensitive; maps are keyed by lowercase).
    pub name: String,
    /// In creation order; the last one is the current version.
    pub versions: Vec<KeyVersion>,
    /// True for keys that back a certificate.
    pub managed: bool,
    pub rotation_policy: Option<Value>,
}

impl KeyObject {
    pub fn current(&self) -> Option<&KeyVersion> {
        self.versions.last()
    }

    pub fn find(&self, version: &str) -> Option<&KeyVersion> {
        self.versions
            .iter()
            .find(|v| v.version.eq_ignore_ascii_case(version))
    }

    pub fn find_mut(&mut self, version: Option<&str>) -> Option<&mut KeyVersion> {
        match version {
            None => self.versions.last_mut(),
            Some(v) => self
                .versions
                .iter_mut()
                .find(|k| k.version.eq_ignore_ascii_case(v)),
        }
    }
}

/// A soft-deleted object. Until `ready_at` the deletion is still in progress: it is not
/// listed yet, and purge or recover answer 409 ObjectIsBeingDeleted.
#[derive(Clone)]
pub struct Deleted<T> {
    pub object: T,
    pub deleted_date: i64,
    pub scheduled_purge: i64,
    pub ready_at: Instant,
}

impl<T> Deleted<T> {
    pub fn ready(&self) -> bool {
        Instant::now() >= self.ready_at
    }
}

#[derive(Clone, Debug)]
pub struct CertAttrs {
    pub enabled: bool,
    pub nbf: i64,
    pub exp: i64,
    pub created: i64,
    pub updated: i64,
}

#[derive(Clone)]
pub struct CertVersion {
    pub version: String,
    pub der: Vec<u8>,
    /// Further certificates of the chain given at import (leaf first is `der`).
    pub chain: Vec<Vec<u8>>,
    pub attrs: CertAttrs,
    pub tags: Map<String, Value>,
    pub content_type: String,
    pub policy: Value,
}

#[derive(Clone)]
pub struct PendingOp {
    pub request_id: String,
    pub csr_der: Vec<u8>,
    pub issuer: Value,
    /// Polls still to be answered `inProgress` before the certificate is issued.
    pub polls_left: u32,
    /// The version the issued certificate will get (None once completed).
    pub waiting: Option<PendingIssue>,
    pub completed: bool,
}

#[derive(Clone)]
pub struct PendingIssue {
    pub version: String,
    pub material: Arc<KeyMaterial>,
    pub kty: String,
    pub key_ops: Vec<String>,
    pub policy: Value,
    pub attrs_enabled: bool,
    pub tags: Map<String, Value>,
}

#[derive(Clone)]
pub struct CertObject {
    pub name: String,
    pub versions: Vec<CertVersion>,
    pub pending: Option<PendingOp>,
}

impl CertObject {
    pub fn current(&self) -> Option<&CertVersion> {
        self.versions.last()
    }

    pub fn find(&self, version: &str) -> Option<&CertVersion> {
        self.versions
            .iter()
            .find(|v| v.version.eq_ignore_ascii_case(version))
    }
}

/// A deleted certificate keeps its managed key with it.
#[derive(Clone)]
pub struct DeletedCert {
    pub cert: CertObject,
    pub key: Option<KeyObject>,
}

#[derive(Default)]
pub struct ContainerState {
    pub keys: HashMap<String, KeyObject>,
    pub deleted_keys: HashMap<String, Deleted<KeyObject>>,
    pub certs: HashMap<String, CertObject>,
    pub deleted_certs: HashMap<String, Deleted<DeletedCert>>,
}

/// One vault or Managed HSM.
pub struct Container {
    pub kind: Kind,
    pub name: String,
    /// `https://host:port`, the prefix of every identifier.
    pub base_url: String,
    /// Sent in `x-ms-keyvault-region` with every answer.
    pub region: String,
    /// A vault of the Standard tier, which keeps no HSM keys (default: Premium).
    pub standard: bool,
    /// A Premium vault whose HSM keys report `hsmPlatform` "1" (FIPS 140-2 Level 2) instead
    /// of "2" (FIPS 140-3 Level 3).
    pub hsm_platform_1: bool,
    state: Mutex<ContainerState>,
    pub throttle: Mutex<Throttle>,
}

impl Container {
    /// A Standard vault refuses every HSM key (create, import, a certificate's key); a
    /// Premium vault and a Managed HSM keep them. The message is the service's (as quoted
    /// in public reports); the 400 BadParameter around it is inferred.
    pub fn hsm_allowed(&self, hsm: bool) -> Result<(), crate::reply::ApiError> {
        if hsm && self.standard && self.kind == Kind::Vault {
            return Err(crate::reply::ApiError::bad_parameter(
                "Hardware key operation not allowed on standard vault",
            ));
        }
        Ok(())
    }

    pub fn new(kind: Kind, name: &str, base_url: String, throttle: Throttle) -> Self {
        Container {
            kind,
            name: name.to_string(),
            base_url,
            region: "westus".into(),
            standard: false,
            hsm_platform_1: false,
            state: Mutex::new(ContainerState::default()),
            throttle: Mutex::new(throttle),
        }
    }

    /// The state lock; a poisoned lock (a panic elsewhere) still yields the data.
    pub fn lock(&self) -> MutexGuard<'_, ContainerState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn throttle(&self) -> MutexGuard<'_, Throttle> {
        self.throttle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn key_id(&self, name: &str, version: &str) -> String {
        format!("{}/keys/{name}/{version}", self.base_url)
    }
}
