//! identify-pkcs11: a PKCS#11 module through which applications use signing certificates
//! whose private keys stay in their store (a directory of PKCS#12/PEM files, the Windows
//! certificate store, Azure Key Vault, Azure Managed HSM).
//!
//! Public: [`ffi`], the C ABI that applications load; [`admin`], the small administration
//! API of the operator's tool (`cli/`) and the integration tests; [`Error`]. Everything
//! else is crate-private. Layers, top to bottom (docs/ARCHITECTURE.md): `ffi` → `module`
//! (slots, sessions, operations) → `session` and `object` (session table, object cache)
//! → `mechanism` (parameters, local public-key operations) and `backend` (key stores, no
//! PKCS#11 types) → `crypto` (the shared vocabulary) and `error`.

pub mod admin;
pub(crate) mod backend;
pub(crate) mod certdb;
pub(crate) mod config;
pub(crate) mod crypto;
pub mod error;
pub mod ffi;
/// Entry points of the fuzz targets (`fuzz/`); not API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod lock_order;
pub(crate) mod logging;
pub(crate) mod mechanism;
pub(crate) mod module;
pub(crate) mod object;
pub(crate) mod session;
pub(crate) mod telemetry;

pub use error::{Error, Result};
