//! The crypto vocabulary every layer shares: hash and curve names, DigestInfo, the public
//! half of a key parsed from its SPKI, RSA encryption padding, hex and time text.
//!
//! A leaf: it uses nothing of the crate but `error` and the one outbound libcrypto call
//! (`ffi::oaep_label`, which rule 1 keeps in `src/ffi/`). Backends and mechanisms both
//! depend on it and neither on the other; `tests/architecture.rs` checks it.

pub mod digest_info;
pub mod hash;
pub mod hex;
pub mod key;
pub mod scheme;
pub mod time;

pub use hash::{HashAlg, Hashing};
pub use key::{Curve, KeyKind, PublicInfo};
pub use scheme::{DecryptRequest, SignRequest};
