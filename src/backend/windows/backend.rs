//! The Windows store backend: listing, signing and decryption through CNG or CryptoAPI,
//! key generation, certificates, PFX import.

use super::win32::{
    self, Acquired, AcquiredKey, CapiProvider, CngPadding, NcryptKey, ProvInfo, Store,
};
use super::{WindowsStoreConfig, spki_of_blob};
use crate::backend::{
    Backend, CertRecord, Curve, DecryptRequest, HashAlg, KeyRecord, KeySpec, KeyUsage, Listing,
    ObjectUpdate, SignRequest,
};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::Mutex;
use windows_sys::Win32::Security::Cryptography as c;

/// The prefix of the CNG keys this module creates.
const KEY_PREFIX: &str = "identify-pkcs11-";
/// Certificate properties of the module's own (CERT_FIRST_USER_PROP_ID and up): the
/// CKA_ID set through PKCS#11, and a mark on certificates added through PKCS#11 (listed
/// even without a key).
const PROP_CKA_ID: u32 = c::CERT_FIRST_USER_PROP_ID + 0x0110;
const PROP_ADDED: u32 = c::CERT_FIRST_USER_PROP_ID + 0x0111;

/// Where a listed key is and how to reach it.
#[derive(Debug, Clone)]
struct Locator {
    /// The SHA-1 thumbprint of its certificate, when it has one in the store.
    cert_sha1: Option<Vec<u8>>,
    prov: ProvInfo,
}

pub struct WindowsStoreBackend {
    config: WindowsStoreConfig,
    /// Keys as last listed, by stable id (a lookup only, never held across a call).
    keys: Mutex<HashMap<String, Locator>>,
    /// Labels and ids given to generated keys that have no certificate yet; they go to
    /// the certificate when it is stored.
    pending: Mutex<HashMap<String, ObjectUpdate>>,
}

fn hex(b: &[u8]) -> String {
    crate::backend::directory::hex(b)
}

fn lock_err<T>(_: T) -> Error {
    Error::Internal("windows store lock poisoned".into())
}

/// The stable id of a key: its provider and container, which do not change when its
/// certificate is added or replaced.
fn key_id(p: &ProvInfo) -> String {
    let digest = openssl::sha::sha1(
        format!(
            "{}\n{}\n{}",
            p.provider.as_deref().unwrap_or(""),
            p.container.as_deref().unwrap_or(""),
            p.key_spec
        )
        .as_bytes(),
    );
    format!("winkey:{}", hex(&digest[..10]))
}

fn cert_id(sha1: &[u8]) -> String {
    format!("wincert:{}", hex(sha1))
}

fn cng_hash(h: HashAlg) -> windows_sys::core::PCWSTR {
    match h {
        HashAlg::Sha1 => c::BCRYPT_SHA1_ALGORITHM,
        // CNG has no SHA-224: PKCS#1 signs its DigestInfo raw, PSS and OAEP refuse it.
        HashAlg::Sha224 => windows_sys::core::w!("SHA224"),
        HashAlg::Sha256 => c::BCRYPT_SHA256_ALGORITHM,
        HashAlg::Sha384 => c::BCRYPT_SHA384_ALGORITHM,
        HashAlg::Sha512 => c::BCRYPT_SHA512_ALGORITHM,
    }
}

/// PSS and OAEP on Windows: MGF1 with the message hash only, and no SHA-224 (CNG has none).
fn cng_hashes(hash: HashAlg, mgf_hash: HashAlg, scheme: &str) -> Result<()> {
    if hash != mgf_hash {
        return Err(Error::MechanismParamInvalid(format!(
            "Windows does {scheme} with MGF1 of the same hash only"
        )));
    }
    if hash == HashAlg::Sha224 {
        return Err(Error::MechanismParamInvalid(format!(
            "Windows (CNG) has no SHA-224 for {scheme}"
        )));
    }
    Ok(())
}

/// The CryptoAPI algorithm of a digest CryptSignHash signs (PKCS#1 v1.5 only).
fn capi_alg(request: &SignRequest, len: usize) -> Result<u32> {
    match request {
        SignRequest::RsaPkcs1 { hash: Some(h) } if len != h.output_len() => {
            Err(Error::DataLenRange)
        }
        SignRequest::RsaPkcs1 { hash: Some(h) } => match h {
            HashAlg::Sha1 => Ok(c::CALG_SHA1),
            HashAlg::Sha256 => Ok(c::CALG_SHA_256),
            HashAlg::Sha384 => Ok(c::CALG_SHA_384),
            HashAlg::Sha512 => Ok(c::CALG_SHA_512),
            HashAlg::Sha224 => Err(Error::MechanismParamInvalid(
                "CryptoAPI keys do not sign SHA-224".into(),
            )),
        },
        // TLS 1.0/1.1's MD5+SHA-1 concatenation is CryptoAPI's CALG_SSL3_SHAMD5.
        SignRequest::RsaPkcs1 { hash: None } if len == 36 => Ok(c::CALG_SSL3_SHAMD5),
        // CryptoAPI signs raw PKCS#1 input only as a 36-byte MD5+SHA-1.
        SignRequest::RsaPkcs1 { hash: None } => Err(Error::DataLenRange),
        _ => Err(Error::MechanismInvalid),
    }
}

/// The subject's common name, for a label when the certificate has no friendly name.
fn common_name(der: &[u8]) -> Option<String> {
    let x = openssl::x509::X509::from_der(der).ok()?;
    let cn = x
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()?
        .data()
        .to_string()
        .ok()?;
    Some(cn)
}

impl WindowsStoreBackend {
    pub fn new(config: WindowsStoreConfig) -> WindowsStoreBackend {
        WindowsStoreBackend {
            config,
            keys: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn store(&self, write: bool) -> Result<Store> {
        Store::open(self.config.location, &self.config.name, write)
            .map_err(|e| Error::Backend(format!("Windows store {}: {e}", self.config.display())))
    }

    /// The prefix of the CNG keys this slot generates: the store's name is in it, so a
    /// key waiting for its certificate shows in its own store's slot only.
    fn key_prefix(&self) -> String {
        let store: String = self
            .config
            .name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        format!("{KEY_PREFIX}{}-", store.to_ascii_lowercase())
    }

    fn require_writable(&self) -> Result<()> {
        if self.config.writable {
            Ok(())
        } else {
            Err(Error::TokenWriteProtected)
        }
    }

    fn locator(&self, key: &KeyRecord) -> Result<Locator> {
        self.keys
            .lock()
            .map_err(lock_err)?
            .get(&key.stable_id)
            .cloned()
            .ok_or(Error::KeyHandleInvalid)
    }

    /// The key of a listed record, acquired silently.
    fn acquire(&self, loc: &Locator) -> Result<Acquired> {
        match &loc.cert_sha1 {
            Some(sha1) => {
                let store = self.store(false)?;
                let cert = store.find_sha1(sha1).ok_or_else(|| {
                    Error::ObjectGone(format!(
                        "certificate {} is no longer in {}",
                        hex(sha1),
                        self.config.display()
                    ))
                })?;
                Ok(cert.private_key()?)
            }
            // A generated CNG key without its certificate yet.
            None => Ok(Acquired::cng(NcryptKey::open(
                loc.prov.provider.as_deref(),
                loc.prov.container.as_deref().unwrap_or_default(),
                loc.prov.machine(),
            )?)),
        }
    }

    /// The CryptoAPI key spec of a container (PFX imports give AT_KEYEXCHANGE).
    fn capi_spec(prov: &ProvInfo) -> u32 {
        match prov.key_spec {
            c::AT_SIGNATURE => c::AT_SIGNATURE,
            _ => c::AT_KEYEXCHANGE,
        }
    }

    /// The uses CNG allows a key this module generated (its NCRYPT_KEY_USAGE_PROPERTY);
    /// `None` for other keys (imported, CryptoAPI), which keep every use.
    fn generated_usage(prov: &ProvInfo) -> Option<KeyUsage> {
        let container = prov.container.as_deref()?;
        if prov.prov_type != 0 || !container.starts_with(KEY_PREFIX) {
            return None;
        }
        let key = NcryptKey::open(prov.provider.as_deref(), container, prov.machine()).ok()?;
        key.usage().map(usage_of)
    }

    fn key_record(
        &self,
        stable_id: String,
        name: String,
        label: Option<String>,
        id: Option<Vec<u8>>,
        spki_der: Vec<u8>,
        prov: &ProvInfo,
    ) -> KeyRecord {
        KeyRecord {
            stable_id,
            name,
            version: None,
            current: true,
            label,
            id,
            spki_der,
            usage: Self::generated_usage(prov).unwrap_or(KeyUsage::ALL),
            local: prov
                .container
                .as_deref()
                .is_some_and(|c| c.starts_with(KEY_PREFIX)),
            backend_key_id: format!(
                "{}: {}",
                prov.provider.as_deref().unwrap_or("(default provider)"),
                prov.container.as_deref().unwrap_or("(default container)")
            ),
        }
    }

    fn list_store(&self) -> Result<(Listing, HashMap<String, Locator>)> {
        let store = self.store(false)?;
        let mut listing = Listing::default();
        let mut locators = HashMap::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut linked = std::collections::HashSet::new();
        for cert in store.certificates() {
            let der = cert.der();
            let prov = cert.prov_info();
            let added = cert.property(PROP_ADDED).is_some();
            if prov.is_none() && !added {
                continue;
            }
            let sha1 = openssl::sha::sha1(&der).to_vec();
            let label = cert
                .friendly_name()
                .or_else(|| common_name(&der))
                .unwrap_or_else(|| hex(&sha1));
            let id = cert.property(PROP_CKA_ID).filter(|i| !i.is_empty());
            listing.certificates.push(CertRecord {
                stable_id: cert_id(&sha1),
                label: label.clone(),
                id: id.clone(),
                der: der.clone(),
                authority: false,
                managed: false,
            });
            let Some(prov) = prov else { continue };
            let Ok(x) = openssl::x509::X509::from_der(&der) else {
                continue;
            };
            let Ok(spki) = x.public_key().and_then(|k| k.public_key_to_der()) else {
                continue;
            };
            let stable_id = key_id(&prov);
            if !linked.insert(stable_id.clone()) {
                // Two certificates of one key (a renewal): the key is listed once.
                continue;
            }
            let n = names.entry(label.clone()).or_default();
            *n += 1;
            let name = if *n == 1 {
                label.clone()
            } else {
                format!("{label}-{}", &hex(&sha1)[..8])
            };
            listing.keys.push(self.key_record(
                stable_id.clone(),
                name,
                Some(label),
                id,
                spki,
                &prov,
            ));
            locators.insert(
                stable_id,
                Locator {
                    cert_sha1: Some(sha1),
                    prov,
                },
            );
        }
        // Keys this module generated whose certificate is not stored yet.
        let machine = self.config.machine();
        let provider = win32_provider_name();
        let cng = win32::cng_key_names(&provider, &self.key_prefix(), machine).unwrap_or_default();
        let pending = self.pending.lock().map_err(lock_err)?.clone();
        for name in cng {
            let prov = ProvInfo {
                container: Some(name.clone()),
                provider: Some(provider.clone()),
                prov_type: 0,
                flags: if machine { c::CRYPT_MACHINE_KEYSET } else { 0 },
                key_spec: 0,
            };
            let stable_id = key_id(&prov);
            if linked.contains(&stable_id) {
                continue;
            }
            let Ok(key) = NcryptKey::open(Some(&provider), &name, machine) else {
                continue;
            };
            let spki = key
                .export_public(c::BCRYPT_RSAPUBLIC_BLOB)
                .ok()
                .and_then(|b| spki_of_blob(&b, true).ok())
                .or_else(|| {
                    key.export_public(c::BCRYPT_ECCPUBLIC_BLOB)
                        .ok()
                        .and_then(|b| spki_of_blob(&b, false).ok())
                });
            let Some(spki) = spki else { continue };
            let update = pending.get(&stable_id).cloned().unwrap_or_default();
            listing.keys.push(self.key_record(
                stable_id.clone(),
                name,
                update.label,
                update.id,
                spki,
                &prov,
            ));
            locators.insert(
                stable_id,
                Locator {
                    cert_sha1: None,
                    prov,
                },
            );
        }
        Ok((listing, locators))
    }

    /// The certificate of a stable certificate id.
    fn find_cert(&self, store: &Store, stable_id: &str) -> Result<win32::Cert> {
        let sha1 = stable_id
            .strip_prefix("wincert:")
            .and_then(crate::backend::directory::unhex)
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
}

/// The CNG provider the module creates keys in.
fn win32_provider_name() -> String {
    "Microsoft Software Key Storage Provider".to_owned()
}

impl Backend for WindowsStoreBackend {
    fn kind(&self) -> &'static str {
        "windows-store"
    }

    fn writable(&self) -> bool {
        self.config.writable
    }

    fn check_sign(&self, key: &KeyRecord, request: &SignRequest) -> Result<()> {
        let loc = self.locator(key)?;
        if loc.prov.prov_type != 0 {
            // CryptoAPI: PKCS#1 v1.5 only.
            if !matches!(request, SignRequest::RsaPkcs1 { .. }) {
                return Err(Error::MechanismInvalid);
            }
            if matches!(
                request,
                SignRequest::RsaPkcs1 {
                    hash: Some(HashAlg::Sha224)
                }
            ) {
                return Err(Error::MechanismParamInvalid(
                    "CryptoAPI keys do not sign SHA-224".into(),
                ));
            }
        }
        if let SignRequest::RsaPss { hash, mgf_hash, .. } = request {
            cng_hashes(*hash, *mgf_hash, "PSS")?;
        }
        Ok(())
    }

    fn check_decrypt(&self, key: &KeyRecord, request: &DecryptRequest) -> Result<()> {
        let loc = self.locator(key)?;
        match request {
            DecryptRequest::RsaPkcs1 => Ok(()),
            DecryptRequest::RsaOaep {
                hash,
                mgf_hash,
                label,
            } => {
                cng_hashes(*hash, *mgf_hash, "OAEP")?;
                if loc.prov.prov_type != 0 && (*hash != HashAlg::Sha1 || !label.is_empty()) {
                    return Err(Error::MechanismParamInvalid(
                        "CryptoAPI keys decrypt OAEP with SHA-1 and no label only".into(),
                    ));
                }
                Ok(())
            }
        }
    }

    fn list(&self) -> Result<Listing> {
        let (listing, locators) = self.list_store()?;
        *self.keys.lock().map_err(lock_err)? = locators;
        Ok(listing)
    }

    fn sign(&self, key: &KeyRecord, request: &SignRequest, data: &[u8]) -> Result<Vec<u8>> {
        let loc = self.locator(key)?;
        let acquired = self.acquire(&loc)?;
        match &acquired.key {
            AcquiredKey::Cng(k) => {
                // CNG has no SHA-224: its DigestInfo is built here and signed raw.
                if let SignRequest::RsaPkcs1 {
                    hash: Some(HashAlg::Sha224),
                } = request
                {
                    let info = crate::mechanism::digest_info::encode(HashAlg::Sha224, data);
                    return Ok(k.sign(&CngPadding::Pkcs1(None), &info)?);
                }
                let padding = match request {
                    SignRequest::RsaPkcs1 { hash } => CngPadding::Pkcs1(hash.map(cng_hash)),
                    SignRequest::RsaPss { hash, salt_len, .. } => CngPadding::Pss {
                        hash: cng_hash(*hash),
                        salt: u32::try_from(*salt_len).map_err(|_| Error::DataLenRange)?,
                    },
                    SignRequest::Ecdsa => CngPadding::None,
                };
                Ok(k.sign(&padding, data)?)
            }
            AcquiredKey::Capi(acquired) => {
                let alg = capi_alg(request, data.len())?;
                let spec = Self::capi_spec(&loc.prov);
                if loc.prov.microsoft_software_rsa() {
                    // Microsoft's software providers share their key storage, and the
                    // container's own one may lack SHA-2: re-opened with the RSA-AES
                    // provider, which reaches the same key.
                    let p = CapiProvider::open_aes(&loc.prov.container, loc.prov.machine())?;
                    Ok(p.sign(spec, alg, data)?)
                } else {
                    // Another vendor's provider (a smart card): its own context.
                    Ok(acquired.sign(spec, alg, data)?)
                }
            }
        }
    }

    fn decrypt(&self, key: &KeyRecord, request: &DecryptRequest, data: &[u8]) -> Result<Vec<u8>> {
        let loc = self.locator(key)?;
        // A padding check that fails: NTE_BAD_DATA from CryptoAPI, NTE_INVALID_PARAMETER
        // from CNG's software provider (the parameters were checked at C_DecryptInit).
        let bad_data = |e: win32::WinError| {
            if e.code == win32::NTE_BAD_DATA || e.code == win32::NTE_INVALID_PARAMETER {
                tracing::debug!("{e}");
                Error::EncryptedDataInvalid
            } else {
                Error::from(e)
            }
        };
        let acquired = self.acquire(&loc)?;
        match &acquired.key {
            AcquiredKey::Cng(k) => {
                let padding = match request {
                    DecryptRequest::RsaPkcs1 => CngPadding::Pkcs1(None),
                    DecryptRequest::RsaOaep { hash, label, .. } => CngPadding::Oaep {
                        hash: cng_hash(*hash),
                        label,
                    },
                };
                k.decrypt(&padding, data).map_err(bad_data)
            }
            AcquiredKey::Capi(p) => {
                let oaep = match request {
                    DecryptRequest::RsaPkcs1 => false,
                    DecryptRequest::RsaOaep {
                        hash: HashAlg::Sha1,
                        mgf_hash: HashAlg::Sha1,
                        label,
                    } if label.is_empty() => true,
                    DecryptRequest::RsaOaep { .. } => {
                        return Err(Error::MechanismParamInvalid(
                            "CryptoAPI keys decrypt OAEP with SHA-1 and no label only".into(),
                        ));
                    }
                };
                p.decrypt(Self::capi_spec(&loc.prov), oaep, data)
                    .map_err(bad_data)
            }
        }
    }

    fn generate_key(
        &self,
        name: &str,
        spec: &KeySpec,
        update: &ObjectUpdate,
        usage: KeyUsage,
    ) -> Result<KeyRecord> {
        self.require_writable()?;
        let rsa_spec = matches!(spec, KeySpec::Rsa { .. });
        let flags = cng_usage(usage, rsa_spec)?;
        let mut suffix = [0u8; 6];
        openssl::rand::rand_bytes(&mut suffix)?;
        let safe: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(40)
            .collect();
        let key_name = format!("{}{safe}-{}", self.key_prefix(), hex(&suffix));
        let (alg, bits, rsa) = match spec {
            KeySpec::Rsa {
                bits,
                public_exponent,
            } => {
                if public_exponent.as_slice() != [1, 0, 1] {
                    return Err(Error::AttributeValueInvalid(
                        "Windows creates RSA keys with public exponent 65537 only".into(),
                    ));
                }
                (c::BCRYPT_RSA_ALGORITHM, Some(*bits), true)
            }
            KeySpec::Ec(Curve::P256) => (c::BCRYPT_ECDSA_P256_ALGORITHM, None, false),
            KeySpec::Ec(Curve::P384) => (c::BCRYPT_ECDSA_P384_ALGORITHM, None, false),
            KeySpec::Ec(Curve::P521) => (c::BCRYPT_ECDSA_P521_ALGORITHM, None, false),
        };
        let provider = win32_provider_name();
        let machine = self.config.machine();
        let key = NcryptKey::create(&provider, alg, &key_name, bits, flags, machine)?;
        let spki = match key
            .export_public(if rsa {
                c::BCRYPT_RSAPUBLIC_BLOB
            } else {
                c::BCRYPT_ECCPUBLIC_BLOB
            })
            .map_err(Error::from)
            .and_then(|blob| spki_of_blob(&blob, rsa))
        {
            Ok(s) => s,
            Err(e) => {
                // Not left behind for a later listing to find half-made.
                let _ = key.delete();
                return Err(e);
            }
        };
        // Signing opens the key again by name: a system whose CNG keeps no persisted keys
        // (Wine 8) fails here, clearly, instead of leaving a key no listing finds.
        if let Err(e) = NcryptKey::open(Some(&provider), &key_name, machine) {
            let _ = key.delete();
            return Err(Error::Backend(format!(
                "CNG key {key_name} was created but cannot be opened again by name ({e}); this system does not keep persisted CNG keys"
            )));
        }
        let prov = ProvInfo {
            container: Some(key_name.clone()),
            provider: Some(provider),
            prov_type: 0,
            flags: if machine { c::CRYPT_MACHINE_KEYSET } else { 0 },
            key_spec: 0,
        };
        let stable_id = key_id(&prov);
        self.pending
            .lock()
            .map_err(lock_err)?
            .insert(stable_id.clone(), update.clone());
        self.keys.lock().map_err(lock_err)?.insert(
            stable_id.clone(),
            Locator {
                cert_sha1: None,
                prov: prov.clone(),
            },
        );
        let mut record = self.key_record(
            stable_id,
            key_name,
            update.label.clone(),
            update.id.clone(),
            spki,
            &prov,
        );
        record.usage = usage_of(flags);
        Ok(record)
    }

    fn store_certificate(
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

    fn delete_key(&self, stable_id: &str) -> Result<()> {
        self.require_writable()?;
        let loc = self
            .keys
            .lock()
            .map_err(lock_err)?
            .get(stable_id)
            .cloned()
            .ok_or(Error::ObjectHandleInvalid)?;
        if loc.prov.prov_type == 0 {
            NcryptKey::open(
                loc.prov.provider.as_deref(),
                loc.prov.container.as_deref().unwrap_or_default(),
                loc.prov.machine(),
            )?
            .delete()?;
        } else {
            CapiProvider::delete_container(&loc.prov)?;
        }
        // No certificate claims the deleted key any more (a renewal may share it); they
        // stay listed as certificates without a key.
        let store = self.store(true)?;
        for cert in store.certificates() {
            if cert.prov_info().is_some_and(|p| key_id(&p) == stable_id) {
                cert.set_bytes(c::CERT_KEY_PROV_INFO_PROP_ID, None)?;
                cert.set_bytes(PROP_ADDED, Some(b"1"))?;
            }
        }
        self.keys.lock().map_err(lock_err)?.remove(stable_id);
        self.pending.lock().map_err(lock_err)?.remove(stable_id);
        Ok(())
    }

    fn delete_certificate(&self, stable_id: &str) -> Result<()> {
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

    fn update(&self, stable_id: &str, update: &ObjectUpdate) -> Result<()> {
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

    fn import_key(
        &self,
        name: &str,
        pkcs8_der: &[u8],
        chain: &[Vec<u8>],
        update: &ObjectUpdate,
    ) -> Result<KeyRecord> {
        self.require_writable()?;
        // Opened for writing first: that creates the store when the profile has none yet.
        let store = self.store(true)?;
        let listing = self.list()?;
        let containers: std::collections::HashSet<String> = self
            .keys
            .lock()
            .map_err(lock_err)?
            .keys()
            .cloned()
            .collect();
        if listing.keys.iter().any(|k| k.name == name) {
            return Err(Error::ActionProhibited(format!(
                "{} already has a key {name:?}; choose another name",
                self.config.display()
            )));
        }
        // Through a PKCS#12 file for PFXImportCertStore (its password random, the file
        // never written to disk).
        let key = openssl::pkey::PKey::private_key_from_der(pkcs8_der)?;
        let leaf = openssl::x509::X509::from_der(
            chain
                .first()
                .ok_or_else(|| Error::AttributeValueInvalid("no certificate".into()))?,
        )?;
        let mut password = [0u8; 16];
        openssl::rand::rand_bytes(&mut password)?;
        let password = hex(&password);
        let p12 = openssl::pkcs12::Pkcs12::builder()
            .name(name)
            .pkey(&key)
            .cert(&leaf)
            .build2(&password)?
            .to_der()?;
        let imported = Store::import_pfx(&p12, &password, self.config.machine())?;
        let mut added = None;
        for cert in imported.certificates() {
            if let Some(prov) = cert.prov_info() {
                // Windows puts every imported key in a new container. Wine's import uses
                // the user's default container: a second import replaces the key of the
                // first certificate. Said, rather than listed as two working keys.
                if containers.contains(&key_id(&prov)) {
                    return Err(Error::Backend(format!(
                        "PFXImportCertStore put the key into container {:?} of {:?}, which another certificate of {} already uses: that certificate's key was replaced (Wine's import does this; Windows makes a new container per import)",
                        prov.container,
                        prov.provider,
                        self.config.display()
                    )));
                }
                let c = store.add(&cert)?;
                c.set_friendly_name(update.label.as_deref().unwrap_or(name))?;
                if let Some(id) = &update.id {
                    c.set_bytes(PROP_CKA_ID, Some(id))?;
                }
                added = Some(());
            }
        }
        if added.is_none() {
            return Err(Error::Backend(
                "the PKCS#12 import gave no certificate with a key".into(),
            ));
        }
        // Closed before listing: a new handle sees what this one wrote.
        drop(store);
        let spki = leaf.public_key()?.public_key_to_der()?;
        self.list()?
            .keys
            .into_iter()
            .find(|k| k.spki_der == spki)
            .ok_or_else(|| Error::Internal("imported key not listed".into()))
    }
}

/// CNG's usage flags for a generated key. CNG has one permission for decryption and key
/// unwrapping, so CKA_DECRYPT and CKA_UNWRAP must agree; EC keys only sign.
fn cng_usage(usage: KeyUsage, rsa: bool) -> Result<u32> {
    if rsa && usage.decrypt != usage.unwrap {
        return Err(Error::TemplateInconsistent(
            "the Windows store has one permission for decryption and unwrapping: CKA_DECRYPT and CKA_UNWRAP must be equal".into(),
        ));
    }
    let mut flags = 0;
    if usage.sign {
        flags |= c::NCRYPT_ALLOW_SIGNING_FLAG;
    }
    if rsa && usage.decrypt {
        flags |= c::NCRYPT_ALLOW_DECRYPT_FLAG;
    }
    if flags == 0 {
        return Err(Error::TemplateInconsistent(
            "a key that may neither sign nor decrypt (CKA_SIGN and CKA_DECRYPT false)".into(),
        ));
    }
    Ok(flags)
}

/// The PKCS#11 uses of CNG usage flags (NCRYPT_ALLOW_ALL_USAGES allows everything).
fn usage_of(flags: u32) -> KeyUsage {
    let all = flags & c::NCRYPT_ALLOW_ALL_USAGES == c::NCRYPT_ALLOW_ALL_USAGES;
    let decrypt = all || flags & c::NCRYPT_ALLOW_DECRYPT_FLAG != 0;
    KeyUsage {
        sign: all || flags & c::NCRYPT_ALLOW_SIGNING_FLAG != 0,
        decrypt,
        unwrap: decrypt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_templates_become_cng_usage_and_back() {
        let u = |sign, decrypt, unwrap| KeyUsage {
            sign,
            decrypt,
            unwrap,
        };
        assert_eq!(
            cng_usage(KeyUsage::ALL, true).unwrap(),
            c::NCRYPT_ALLOW_SIGNING_FLAG | c::NCRYPT_ALLOW_DECRYPT_FLAG
        );
        assert_eq!(
            cng_usage(u(false, true, true), true).unwrap(),
            c::NCRYPT_ALLOW_DECRYPT_FLAG
        );
        assert_eq!(
            cng_usage(u(true, false, false), true).unwrap(),
            c::NCRYPT_ALLOW_SIGNING_FLAG
        );
        // EC keys sign only, whatever the template says of decryption.
        assert_eq!(
            cng_usage(KeyUsage::ALL, false).unwrap(),
            c::NCRYPT_ALLOW_SIGNING_FLAG
        );
        assert!(cng_usage(u(true, false, true), true).is_err());
        assert!(cng_usage(u(false, false, false), true).is_err());
        assert!(cng_usage(u(false, true, true), false).is_err());
        for usage in [KeyUsage::ALL, u(false, true, true), u(true, false, false)] {
            assert_eq!(usage_of(cng_usage(usage, true).unwrap()), usage);
        }
        assert_eq!(usage_of(c::NCRYPT_ALLOW_ALL_USAGES), KeyUsage::ALL);
    }

    #[test]
    fn capi_signs_pkcs1_with_known_digests_only() {
        assert_eq!(
            capi_alg(
                &SignRequest::RsaPkcs1 {
                    hash: Some(HashAlg::Sha256)
                },
                32
            )
            .unwrap(),
            c::CALG_SHA_256
        );
        assert_eq!(
            capi_alg(&SignRequest::RsaPkcs1 { hash: None }, 36).unwrap(),
            c::CALG_SSL3_SHAMD5
        );
        assert!(capi_alg(&SignRequest::RsaPkcs1 { hash: None }, 35).is_err());
        assert!(capi_alg(&SignRequest::Ecdsa, 32).is_err());
        assert!(
            capi_alg(
                &SignRequest::RsaPkcs1 {
                    hash: Some(HashAlg::Sha224)
                },
                28
            )
            .is_err()
        );
    }
}
