//! identify-pkcs11: a PKCS#11 module through which applications use signing certificates
//! whose private keys stay in their store (a directory of key files here; the Windows
//! certificate store, Azure Key Vault and Managed HSM in later backends).
//!
//! Layers, top to bottom (ARCHITECTURE.md §2): [`ffi`] (the C ABI, the only place with raw
//! pointers) → [`module`] (configuration, slots, sessions, operations) → [`session`] and
//! [`object`] (session table, object cache) → [`mechanism`] (parameters, local public-key
//! operations) → [`backend`] (key stores, no PKCS#11 types).

pub mod backend;
pub mod certdb;
pub mod config;
pub mod crypto;
pub mod error;
pub mod ffi;
/// Entry points of the fuzz targets (`fuzz/`); not API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod lock_order;
pub mod logging;
pub mod mechanism;
pub mod module;
pub mod object;
pub mod session;
pub mod telemetry;

pub use error::{Error, Result};
