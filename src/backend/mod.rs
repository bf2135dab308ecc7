//! What a key store offers the core: listing keys and certificates, private-key operations,
//! and the few writes PKCS#11 needs. No `CK_*` type appears here: backends speak DER, SPKI,
//! names, versions, digests and bytes; `object/` maps them to attributes once.

pub mod azure;
pub mod directory;
pub mod open;
pub mod windows;

use crate::crypto::{Curve, DecryptRequest, SignRequest};
use crate::error::Result;

/// The key a backend should create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySpec {
    Rsa { bits: u32, public_exponent: Vec<u8> },
    Ec(Curve),
}

impl KeySpec {
    /// The spec of a new key like the one with this public key (a rotation): RSA of the
    /// same size with exponent 65537, or EC on the same curve.
    pub fn like(spki_der: &[u8]) -> Result<KeySpec> {
        let public = crate::crypto::PublicInfo::from_spki(spki_der)?;
        Ok(match public.curve {
            Some(c) => KeySpec::Ec(c),
            None => KeySpec::Rsa {
                bits: u32::try_from(public.bits).map_err(|_| crate::error::Error::KeySizeRange)?,
                public_exponent: vec![1, 0, 1],
            },
        })
    }
}

/// What a key may be used for, as the store says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyUsage {
    pub sign: bool,
    pub decrypt: bool,
    pub unwrap: bool,
}

impl KeyUsage {
    pub const ALL: KeyUsage = KeyUsage {
        sign: true,
        decrypt: true,
        unwrap: true,
    };
}

/// Where a key's private half is kept, as its store reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protection {
    /// In software: a file, a Windows provider, a vault's RSA or EC key.
    #[default]
    Software,
    /// In an HSM validated at FIPS 140-2 Level 2: a vault's RSA-HSM or EC-HSM key on
    /// `hsmPlatform` 1 (or one whose platform the vault does not report).
    HsmLevel2,
    /// In an HSM validated at FIPS 140 Level 3: every Managed HSM key, and a vault's
    /// RSA-HSM or EC-HSM key on `hsmPlatform` 2 (FIPS 140-3 Level 3).
    HsmLevel3,
}

/// One version of one key, as listed by a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Unique and stable within the backend for this key version; handles follow it.
    pub stable_id: String,
    /// The key's name in its store (file stem, vault key name, ...).
    pub name: String,
    /// `None` for stores without versions; otherwise the version, with `current` set on
    /// the one the name selects.
    pub version: Option<String>,
    pub current: bool,
    /// A label set through PKCS#11 that overrides the name-derived one.
    pub label: Option<String>,
    /// A CKA_ID set through PKCS#11 that overrides the SKI-derived one.
    pub id: Option<Vec<u8>>,
    /// DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    pub usage: KeyUsage,
    /// Generated inside the store through this module (CKA_LOCAL).
    pub local: bool,
    /// The backend's full identifier of the key (path, key id URL), for the vendor attribute.
    pub backend_key_id: String,
    pub protection: Protection,
}

/// One certificate, as listed by a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRecord {
    pub stable_id: String,
    pub label: String,
    pub id: Option<Vec<u8>>,
    /// DER X.509 certificate.
    pub der: Vec<u8>,
    /// A CA certificate of a chain rather than an end-entity one.
    pub authority: bool,
    /// The store issued it and manages it with its key (a Key Vault certificate): a new
    /// version of that key comes with a new certificate from the store
    /// ([`Backend::issue_certificate`]), never from `rotate_key`.
    pub managed: bool,
}

/// What the blob of a key's backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupOf {
    /// The key, every version of it.
    Key,
    /// A Key Vault certificate with the key it manages, every version of both: a vault
    /// backs up such a key only through its certificate.
    Certificate,
}

/// One key's backup: an opaque blob only a store of the same kind restores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBackup {
    pub of: BackupOf,
    pub blob: Vec<u8>,
}

/// A certificate as a store keeps it beside its keys (the certificate database of
/// key-vault and managed-hsm slots): what a backup saves and a restore puts back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredCertificate {
    pub key_name: Option<String>,
    pub key_version: Option<String>,
    pub label: String,
    /// CKA_ID set through PKCS#11 (hex; empty: none).
    pub cka_id: String,
    /// DER, base64.
    pub der: String,
}

impl StoredCertificate {
    /// The DER certificate (checked to be X.509) and the CKA_ID bytes.
    pub fn decode(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        use crate::error::Error;
        let der = openssl::base64::decode_block(&self.der).map_err(|e| {
            Error::AttributeValueInvalid(format!("certificate {:?}: {e}", self.label))
        })?;
        openssl::x509::X509::from_der(&der).map_err(|e| {
            Error::AttributeValueInvalid(format!("certificate {:?}: not X.509: {e}", self.label))
        })?;
        let id = crate::crypto::hex::decode(&self.cka_id).ok_or_else(|| {
            Error::AttributeValueInvalid(format!("certificate {:?}: CKA_ID is not hex", self.label))
        })?;
        Ok((der, id))
    }
}

/// A certificate to be issued by a store that issues certificates itself.
#[derive(Debug, Clone)]
pub struct IssueRequest<'a> {
    pub spec: &'a KeySpec,
    /// An X.500 name, e.g. `CN=signing.example.com,O=Contoso`.
    pub subject: &'a str,
    pub days: u32,
}

/// Everything a store currently holds.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub keys: Vec<KeyRecord>,
    pub certificates: Vec<CertRecord>,
}

impl Listing {
    /// A label names one version, the current one (README, "Objects"). A rotation copies
    /// a key's label tag to its new version and the old version keeps it; a label can also
    /// be set on an older version by hand. An older version whose label is its current
    /// version's is listed without it (its objects are then labelled `name/version`), and
    /// so are the certificates of its public key that carry that label, so that a search
    /// by the label finds the current version alone.
    pub fn labels_name_current_versions(mut self) -> Listing {
        let current: std::collections::HashMap<String, String> = self
            .keys
            .iter()
            .filter(|k| k.current)
            .map(|k| {
                (
                    k.name.clone(),
                    k.label.clone().unwrap_or_else(|| k.name.clone()),
                )
            })
            .collect();
        // (public key, the label it gives up, the label it gets)
        let mut yielded: Vec<(Vec<u8>, String, String)> = Vec::new();
        for k in &mut self.keys {
            let Some(version) = k.version.as_deref().filter(|_| !k.current) else {
                continue;
            };
            if k.label.is_some() && k.label.as_ref() == current.get(&k.name) {
                let label = k.label.take().unwrap_or_default();
                yielded.push((k.spki_der.clone(), label, format!("{}/{version}", k.name)));
            }
        }
        if yielded.is_empty() {
            return self;
        }
        for c in self.certificates.iter_mut().filter(|c| !c.authority) {
            let spki = crate::crypto::key::certificate_spki(&c.der);
            if let Some((_, _, to)) = yielded
                .iter()
                .find(|(key, from, _)| *from == c.label && spki.as_deref() == Some(key.as_slice()))
            {
                c.label = to.clone();
            }
        }
        self
    }
}

/// What to change on a stored object through C_SetAttributeValue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectUpdate {
    pub label: Option<String>,
    pub id: Option<Vec<u8>>,
}

/// A key store. Implementations are shared by all sessions (`Send + Sync`) and must not
/// hold their own locks across I/O longer than the I/O itself.
pub trait Backend: Send + Sync {
    /// A short name of the store kind for logs ("directory", "key-vault").
    fn kind(&self) -> &'static str;
    /// Whether writes (generate, create, destroy, set) are allowed at all.
    fn writable(&self) -> bool;
    /// Whether C_DestroyObject may delete this store's keys (CKA_DESTROYABLE of key
    /// objects).
    fn keys_destroyable(&self) -> bool {
        self.writable()
    }
    /// Whether C_DestroyObject may delete this certificate (its CKA_DESTROYABLE).
    fn certificate_destroyable(&self, _cert: &CertRecord) -> bool {
        self.writable()
    }
    /// Whether the store is reached over the network (listings are then refreshed less
    /// often and never block on a stale cache).
    fn remote(&self) -> bool {
        false
    }
    /// Whether the store's RSA signatures are made by OpenSSL in this process, whose RSA
    /// checks its CRT result against faults before it answers: the module then does not
    /// verify them again. False (the default) for remote and opaque stores, whose every
    /// signature is verified before it reaches the caller.
    fn rsa_signs_with_openssl(&self) -> bool {
        false
    }
    /// Refuses, at C_SignInit, what the store cannot sign (so C_Sign does not fail with a
    /// parameter error). `request` carries the mechanism's parameters.
    fn check_sign(&self, _key: &KeyRecord, _request: &SignRequest) -> Result<()> {
        Ok(())
    }
    /// The same for C_DecryptInit.
    fn check_decrypt(&self, _key: &KeyRecord, _request: &DecryptRequest) -> Result<()> {
        Ok(())
    }
    /// Everything the store holds now.
    fn list(&self) -> Result<Listing>;
    /// The current version of key `name` and its certificates, read from the store at
    /// once, for a first search by label that should not wait for the whole listing
    /// (remote stores). `None`: the store has no such lookup, or no key of that name.
    fn lookup(&self, _name: &str) -> Result<Option<Listing>> {
        Ok(None)
    }
    /// Sign `data` (a digest, or raw input for `RsaPkcs1 { hash: None }`) with a key version.
    fn sign(&self, key: &KeyRecord, request: &SignRequest, data: &[u8]) -> Result<Vec<u8>>;
    /// Decrypt with a key version.
    fn decrypt(&self, key: &KeyRecord, request: &DecryptRequest, data: &[u8]) -> Result<Vec<u8>>;
    /// A new version of a key (same name, type, size and uses) that becomes the current
    /// one; the older versions stay usable (decryption of what was encrypted to them).
    fn rotate_key(&self, _current: &KeyRecord) -> Result<KeyRecord> {
        Err(crate::error::Error::ActionProhibited(
            "this store keeps one version per key; key rotation is for key-vault, managed-hsm and directory slots".into(),
        ))
    }
    /// Key versions the slot's configuration hides from the last listing (`require_hsm`),
    /// each as `name/version (why)`: `doctor` reports them.
    fn hidden_keys(&self) -> Vec<String> {
        Vec::new()
    }
    /// One cheap authenticated round trip about `key` (the operator's latency check),
    /// answering the region the store says it is in, when it says; local stores have none.
    fn ping(&self, _key: &KeyRecord) -> Result<Option<String>> {
        Ok(None)
    }
    /// Random bytes from the store's own generator, when the slot is configured to use
    /// it (Managed HSM's /rng); `None`: the operating system's.
    fn random(&self, _len: usize) -> Option<Result<Vec<u8>>> {
        None
    }
    /// Unwrap a wrapped secret key with a key version (C_UnwrapKey): the store's own
    /// unwrap operation where it has one, else decryption.
    fn unwrap_key(
        &self,
        key: &KeyRecord,
        request: &DecryptRequest,
        wrapped: &[u8],
    ) -> Result<Vec<u8>> {
        self.decrypt(key, request, wrapped)
    }
    /// Create a key named `name` (unique in the store after the call; the store may adjust
    /// it) carrying `label`/`id` overrides and the permitted uses; returns its record.
    fn generate_key(
        &self,
        name: &str,
        spec: &KeySpec,
        update: &ObjectUpdate,
        usage: KeyUsage,
    ) -> Result<KeyRecord>;
    /// Store a certificate; `key` is the key whose public key it carries, when there is one.
    fn store_certificate(
        &self,
        der: &[u8],
        key: Option<&KeyRecord>,
        update: &ObjectUpdate,
    ) -> Result<CertRecord>;
    /// A key `name` with a certificate that the store issues itself (Key Vault: a
    /// certificate with a `Self` issuer); a new version of both when `name` is a
    /// certificate the store manages. `None`: this store does not issue certificates
    /// (the caller makes the key, has it sign a certificate and stores that).
    fn issue_certificate(
        &self,
        _name: &str,
        _request: &IssueRequest<'_>,
    ) -> Result<Option<KeyRecord>> {
        Ok(None)
    }
    /// Bring an operator's key (PKCS#8 DER) and its certificate chain (leaf first) into
    /// the store under `name`, which must be free.
    /// Writes a private key the application created (C_CreateObject, PKCS#8 DER) as a new
    /// key under a free name near `name`, keeping the uses it refused. Directory stores.
    fn store_private_key(
        &self,
        _name: &str,
        _pkcs8_der: &[u8],
        _update: &ObjectUpdate,
        _usage: KeyUsage,
    ) -> Result<KeyRecord> {
        Err(crate::error::Error::ActionProhibited(format!(
            "{} slots do not take private keys through C_CreateObject",
            self.kind()
        )))
    }
    fn import_key(
        &self,
        _name: &str,
        _pkcs8_der: &[u8],
        _chain: &[Vec<u8>],
        _update: &ObjectUpdate,
    ) -> Result<KeyRecord> {
        Err(crate::error::Error::ActionProhibited(format!(
            "{} slots do not import keys",
            self.kind()
        )))
    }
    /// The store's backup of key `name` (all its versions): an opaque blob only a store of
    /// the same kind restores.
    fn backup_key(&self, _name: &str) -> Result<KeyBackup> {
        Err(crate::error::Error::ActionProhibited(format!(
            "{} slots have no key backup",
            self.kind()
        )))
    }
    /// Restore key `name` from `backup_key`'s backup. A key of that name in the store is an
    /// error unless `replace`, which deletes it first (where deleting is allowed).
    fn restore_key(&self, _name: &str, _backup: &KeyBackup, _replace: bool) -> Result<()> {
        Err(crate::error::Error::ActionProhibited(format!(
            "{} slots have no key restore",
            self.kind()
        )))
    }
    /// The certificates a key backup does not carry, of the keys in `keys` (all when
    /// `None`): the certificate database's rows (key-vault, managed-hsm), a directory's
    /// certificates without a key. A vault's own certificates come with their keys.
    fn stored_certificates(&self, _keys: Option<&[String]>) -> Result<Vec<StoredCertificate>> {
        Ok(Vec::new())
    }
    /// Put back certificates from `stored_certificates`: those already there are kept;
    /// returns how many were added.
    fn restore_certificates(&self, certificates: &[StoredCertificate]) -> Result<usize> {
        if certificates.is_empty() {
            return Ok(0);
        }
        Err(crate::error::Error::ActionProhibited(format!(
            "{} slots keep no certificate database",
            self.kind()
        )))
    }
    /// Delete a key version (all its objects) by stable id.
    fn delete_key(&self, stable_id: &str) -> Result<()>;
    /// Delete a certificate by stable id.
    fn delete_certificate(&self, stable_id: &str) -> Result<()>;
    /// Change label or id of a key or certificate (by stable id).
    fn update(&self, stable_id: &str, update: &ObjectUpdate) -> Result<()>;
}
