//! `key-vault` slots (and the key side of `managed-hsm` slots): keys and their versions,
//! the vault's certificates, and private-key operations through the official SDK.
//!
//! Objects: every enabled version of every key that passes the name and tag filters. The
//! newest enabled version is the current one. Labels and ids set through PKCS#11 are kept
//! as the key version's tags `pkcs11-label` / `pkcs11-id` (hex), so every server sharing
//! the vault sees them. Certificates written with C_CreateObject (for vault keys that have
//! none in the vault; for every Managed HSM key) are kept in the certificate database
//! (`crate::certdb`), shared by every server configured with the same database.

mod algorithms;
mod backup;
mod database;
mod lifecycle;
mod listing;
mod memory;
mod protection;

use algorithms::pss_algorithm;
use database::{cert_record, db_id};
/// The JWK decoding, for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) use listing::key_record;

use super::errors;
use super::rate::{RateBudget, weight};
use super::token::{NoteRefusals, RenewingCredential};
use super::{AzureRuntime, client_options, http_client};
use crate::backend::{
    Backend, CertRecord, KeyRecord, KeySpec, KeyUsage, Listing, ObjectUpdate, Protection,
};
use crate::certdb::{CertDb, NewCert};
use crate::config::AzureConfig;
use crate::crypto::digest_info;
use crate::crypto::{Curve, DecryptRequest, HashAlg, SignRequest};
use crate::error::ServiceFailure;
use crate::error::{Error, Result};
use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, CurveName, EncryptionAlgorithm, GetRandomBytesParameters, JsonWebKey, Key,
    KeyAttributes, KeyClientGetKeyOptions, KeyClientListKeyPropertiesVersionsOptions,
    KeyClientSignOptions, KeyClientUpdateKeyPropertiesOptions, KeyOperation,
    KeyOperationParameters, KeyType, SignParameters, SignatureAlgorithm,
    UpdateKeyPropertiesParameters,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions, ResourceExt};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TAG_LABEL: &str = "pkcs11-label";
const TAG_ID: &str = "pkcs11-id";
/// Keys (and certificates) listed at once: each costs a round trip or two, so a vault of
/// 1,000 keys at 20 ms lists in about a second of round trips, when the rate budget allows
/// it (every listing request is paid from it).
const LIST_CONCURRENCY: usize = 32;

/// A `key-vault` or `managed-hsm` slot's store: the Key Vault keys API that both services
/// speak, with what differs decided by `cfg.service` (certificates, throttling).
pub struct KeyVaultBackend {
    cfg: AzureConfig,
    runtime: Arc<AzureRuntime>,
    keys: Arc<KeyClient>,
    certificates: Option<CertificateClient>,
    /// `None` on Managed HSM, which does not throttle cryptographic operations.
    budget: Option<RateBudget>,
    /// Rate weight of each listed key version (by stable id).
    weights: Mutex<HashMap<String, f64>>,
    /// The certificate database (this store's rows).
    local_certificates: CertDb,
    /// The database's certificates as last read: a refresh while the database is
    /// unreachable keeps them instead of dropping their objects.
    last_db_certificates: Mutex<Option<Vec<CertRecord>>>,
    /// DER of older vault certificate versions by id: a version never changes, so each is
    /// fetched once, not at every refresh.
    certificate_versions: Mutex<HashMap<String, Vec<u8>>>,
    /// What the last listing learnt, for the next (versions fetched, unchanged keys).
    memory: Mutex<memory::ListingMemory>,
    /// With `require_hsm`: the versions the last listing hid, as `name/version (why)`.
    hidden: Mutex<Vec<String>>,
    deadline: Duration,
}

impl KeyVaultBackend {
    /// `counts` receives the slot's request counts (metrics).
    pub fn new(
        cfg: AzureConfig,
        runtime: Arc<AzureRuntime>,
        counts: Arc<crate::telemetry::HttpCounts>,
    ) -> Result<KeyVaultBackend> {
        let deadline = Duration::from_secs(cfg.deadline_seconds);
        let http = http_client(cfg.ca_pem.as_deref(), deadline)?;
        let mut options = client_options(
            &http,
            cfg.max_retries,
            deadline,
            cfg.credential.authority_host.as_deref(),
        );
        let renewing = RenewingCredential::new(&cfg.credential, options.clone())?;
        // Token requests are not counted; vault requests are.
        super::count_requests(&mut options, counts);
        options
            .per_try_policies
            .push(Arc::new(NoteRefusals(renewing.clone())));
        let cred: Arc<dyn azure_core::credentials::TokenCredential> = renewing;
        let mut key_options = KeyClientOptions::default();
        key_options.client_options = options.clone();
        let keys = KeyClient::new(&cfg.url, cred.clone(), Some(key_options))
            .map_err(|e| Error::Config(format!("vault {}: {e}", cfg.url)))?;
        let certificates = if !cfg.service.has_certificates() {
            None
        } else {
            let mut o = CertificateClientOptions::default();
            o.client_options = options;
            Some(
                CertificateClient::new(&cfg.url, cred, Some(o))
                    .map_err(|e| Error::Config(format!("vault {}: {e}", cfg.url)))?,
            )
        };
        // C_Initialize needs no network: the database and the vault are first asked at
        // the first listing.
        let local_certificates =
            CertDb::new(cfg.certificates.clone(), &cfg.url).with_ca(cfg.ca_pem.clone());
        Ok(KeyVaultBackend {
            budget: cfg
                .service
                .throttles_operations()
                .then(|| RateBudget::new(cfg.rate_budget)),
            cfg,
            runtime,
            keys: Arc::new(keys),
            certificates,
            weights: Mutex::new(HashMap::new()),
            local_certificates,
            last_db_certificates: Mutex::new(None),
            certificate_versions: Mutex::new(HashMap::new()),
            memory: Mutex::new(memory::ListingMemory::default()),
            hidden: Mutex::new(Vec::new()),
            deadline,
        })
    }

    /// decrypt or unwrapKey (the same algorithms; unwrapKey is its own permission, so a
    /// principal with "Crypto Service Encryption User" can unwrap but not decrypt).
    fn key_operation(
        &self,
        key: &KeyRecord,
        request: &DecryptRequest,
        data: &[u8],
        unwrap: bool,
    ) -> Result<Vec<u8>> {
        let algorithm = Self::decrypt_algorithm(request)?;
        let version = Self::version_of(key)?;
        let left = self.spend(key)?;
        let mut params = KeyOperationParameters::default();
        params.algorithm = Some(algorithm);
        params.value = Some(data.to_vec());
        let verb = if unwrap { "unwrap" } else { "decrypt" };
        let what = format!("{verb} with {}/{version}", key.name);
        let body = params.try_into().map_err(|e| errors::map(e, &what))?;
        let (keys, name) = (self.keys.clone(), key.name.clone());
        let answer = self.runtime.run_spawned(left, async move {
            if unwrap {
                keys.unwrap_key(&name, &version, body, None).await
            } else {
                keys.decrypt(&name, &version, body, None).await
            }
        })?;
        crate::telemetry::note_request_id(match &answer {
            Ok(r) => super::request_id(r.headers()),
            Err(e) => super::error_request_id(e),
        });
        match answer {
            Ok(r) => r
                .into_model()
                .map_err(|e| errors::map(e, &what))?
                .result
                .ok_or_else(|| {
                    Error::Remote(
                        ServiceFailure::BadRequest,
                        format!("{what}: no plaintext in the answer"),
                    )
                }),
            // A padding failure is the caller's ciphertext, not the service's fault.
            Err(e) if e.http_status().map(u16::from) == Some(400) => {
                tracing::debug!("{what}: 400 from the service: {e}");
                Err(Error::EncryptedDataInvalid)
            }
            Err(e) => Err(errors::map(e, &what)),
        }
    }

    fn run<F: std::future::Future>(&self, f: F) -> Result<F::Output> {
        self.runtime.run(self.deadline, f)
    }

    /// Waits for the rate budget before an operation on `key`; answers what is left of
    /// the call's deadline for the request itself (the wait counts against it).
    fn spend(&self, key: &KeyRecord) -> Result<Duration> {
        let deadline = Instant::now() + self.deadline;
        if let Some(budget) = &self.budget {
            let units = self
                .weights
                .lock()
                .ok()
                .and_then(|w| w.get(&key.stable_id).copied())
                .unwrap_or(2.0);
            budget.acquire(units, deadline)?;
        }
        Ok(deadline.saturating_duration_since(Instant::now()))
    }

    fn version_of(key: &KeyRecord) -> Result<String> {
        key.version
            .clone()
            .ok_or_else(|| Error::Internal(format!("{} has no version", key.stable_id)))
    }

    /// A key name Key Vault accepts, from a label: `0-9 a-z A-Z -`, at most 127.
    fn key_name(label: &str) -> String {
        let s: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .take(100)
            .collect();
        let s = s.trim_matches('-').to_owned();
        if s.is_empty() { "key".into() } else { s }
    }

    /// How many versions of key `name` (enabled or not) came before `version`: created
    /// earlier, or in the same second with a smaller version id. Every racer sees the same
    /// order, so exactly one of them (the first) keeps the name.
    async fn earlier_versions(&self, name: &str, version: &str) -> Result<usize> {
        let what = format!("listing the versions of {name}");
        let mut pager = self
            .keys
            .list_key_properties_versions(name, None)
            .map_err(|e| errors::map(e, &what))?;
        let mut all = Vec::new();
        while let Some(item) = pager.try_next().await.map_err(|e| errors::map(e, &what))? {
            let created = item
                .attributes
                .as_ref()
                .and_then(|a| a.created)
                .map_or(i64::MAX, azure_core::time::OffsetDateTime::unix_timestamp);
            let id = item.resource_id().ok().and_then(|id| id.version);
            all.push((created, id.unwrap_or_default().to_ascii_lowercase()));
        }
        let ours = all
            .iter()
            .find(|(_, v)| v.eq_ignore_ascii_case(version))
            .cloned()
            .ok_or_else(|| {
                Error::Backend(format!("{what}: the new version {version} is not listed"))
            })?;
        Ok(all.iter().filter(|v| **v < ours).count())
    }

    /// Disables version `version` of key `name`.
    async fn disable_version(&self, name: &str, version: &str) -> Result<()> {
        let what = format!("disabling {name}/{version}");
        let mut attributes = KeyAttributes::default();
        attributes.enabled = Some(false);
        let mut params = UpdateKeyPropertiesParameters::default();
        params.key_attributes = Some(attributes);
        let body = params.try_into().map_err(|e| errors::map(e, &what))?;
        let mut o = KeyClientUpdateKeyPropertiesOptions::default();
        o.key_version = Some(version.to_owned());
        self.keys
            .update_key_properties(name, body, Some(o))
            .await
            .map(|_| ())
            .map_err(|e| errors::map(e, &what))
    }

    async fn exists(&self, name: &str) -> Result<bool> {
        match self.keys.get_key(name, None).await {
            Ok(_) => Ok(true),
            Err(e) if e.http_status().map(u16::from) == Some(404) => Ok(false),
            // A disabled latest version still means the name is taken.
            Err(e) if e.http_status().map(u16::from) == Some(403) => Ok(true),
            Err(e) => Err(errors::map(
                e,
                &format!("checking whether key {name} exists"),
            )),
        }
    }
}

impl Backend for KeyVaultBackend {
    fn kind(&self) -> &'static str {
        self.cfg.service.kind_name()
    }

    fn writable(&self) -> bool {
        true
    }

    /// Deleting keys in the vault is off unless the slot sets `allow_destroy`.
    fn keys_destroyable(&self) -> bool {
        self.cfg.allow_destroy
    }

    /// Certificates of the certificate database may be deleted; the vault's own are not
    /// deleted through PKCS#11 (C_DestroyObject says CKR_ACTION_PROHIBITED).
    fn certificate_destroyable(&self, cert: &CertRecord) -> bool {
        db_id(&cert.stable_id).is_some()
    }

    fn remote(&self) -> bool {
        true
    }

    fn list(&self) -> Result<Listing> {
        // A whole listing may take many requests: allow it several deadlines.
        let bound = self.deadline * 6;
        let (keys, mut certificates) = self
            .runtime
            .run(bound, self.list_remote(Instant::now() + bound))??;
        if let Ok(mut w) = self.weights.lock() {
            *w = keys
                .iter()
                .map(|(k, u)| (k.stable_id.clone(), *u))
                .collect();
        }
        certificates.extend(self.database_certificates());
        let listing = Listing {
            keys: keys.into_iter().map(|(k, _)| k).collect(),
            certificates,
        };
        Ok(self
            .hide_below_level3(listing)
            .labels_name_current_versions())
    }

    fn lookup(&self, name: &str) -> Result<Option<Listing>> {
        let bound = self.deadline;
        let Some((key, weight, certificates)) = self
            .runtime
            .run(bound, self.lookup_remote(name, Instant::now() + bound))??
        else {
            return Ok(None);
        };
        // Its rate weight, until the listing sets every key's.
        if let Ok(mut w) = self.weights.lock() {
            w.insert(key.stable_id.clone(), weight);
        }
        let mut certificates = certificates;
        certificates.extend(self.database_certificates());
        let listing = Listing {
            keys: vec![key],
            certificates,
        };
        Ok(Some(self.hide_below_level3(listing)))
    }

    fn hidden_keys(&self) -> Vec<String> {
        self.hidden.lock().map(|h| h.clone()).unwrap_or_default()
    }

    fn check_sign(&self, _key: &KeyRecord, request: &SignRequest) -> Result<()> {
        match request {
            SignRequest::RsaPss { .. } => pss_algorithm(request).map(|_| ()),
            SignRequest::Ecdsa { .. } => Ok(()),
            SignRequest::RsaPkcs1 { .. } => Ok(()),
        }
    }

    fn check_decrypt(&self, _key: &KeyRecord, request: &DecryptRequest) -> Result<()> {
        Self::decrypt_algorithm(request).map(|_| ())
    }

    fn sign(&self, key: &KeyRecord, request: &SignRequest, data: &[u8]) -> Result<Vec<u8>> {
        let (algorithm, value) = Self::sign_params(request, data)?;
        let version = Self::version_of(key)?;
        let left = self.spend(key)?;
        let mut params = SignParameters::default();
        params.algorithm = Some(algorithm);
        params.value = Some(value);
        let what = format!("sign with {}/{version}", key.name);
        let body = params.try_into().map_err(|e| errors::map(e, &what))?;
        let mut o = KeyClientSignOptions::default();
        o.key_version = Some(version.clone());
        let (keys, name) = (self.keys.clone(), key.name.clone());
        let answer = self
            .runtime
            .run_spawned(left, async move { keys.sign(&name, body, Some(o)).await })?;
        crate::telemetry::note_request_id(match &answer {
            Ok(r) => super::request_id(r.headers()),
            Err(e) => super::error_request_id(e),
        });
        let result = answer
            .map_err(|e| errors::map(e, &what))?
            .into_model()
            .map_err(|e| errors::map(e, &what))?;
        result.result.ok_or_else(|| {
            Error::Remote(
                ServiceFailure::BadRequest,
                format!("{what}: no signature in the answer"),
            )
        })
    }

    fn decrypt(&self, key: &KeyRecord, request: &DecryptRequest, data: &[u8]) -> Result<Vec<u8>> {
        self.key_operation(key, request, data, false)
    }

    fn ping(&self, key: &KeyRecord) -> Result<Option<String>> {
        let version = Self::version_of(key)?;
        let what = format!("get key {}/{version}", key.name);
        let mut o = KeyClientGetKeyOptions::default();
        o.key_version = Some(version.clone());
        // Every Key Vault answer names the vault's Azure region.
        let region = azure_core::http::headers::HeaderName::from_static("x-ms-keyvault-region");
        self.run(self.keys.get_key(&key.name, Some(o)))?
            .map(|r| r.headers().get_optional_string(&region))
            .map_err(|e| errors::map(e, &what))
    }

    fn random(&self, len: usize) -> Option<Result<Vec<u8>>> {
        if !self.cfg.hsm_random {
            return None;
        }
        Some(self.hsm_random(len))
    }

    fn unwrap_key(
        &self,
        key: &KeyRecord,
        request: &DecryptRequest,
        wrapped: &[u8],
    ) -> Result<Vec<u8>> {
        self.key_operation(key, request, wrapped, true)
    }

    fn generate_key(
        &self,
        name: &str,
        spec: &KeySpec,
        update: &ObjectUpdate,
        usage: KeyUsage,
    ) -> Result<KeyRecord> {
        let params = self.create_params(spec, update, usage)?;
        let base = Self::key_name(name);
        let names = |n: usize| {
            if n == 0 {
                base.clone()
            } else {
                format!("{base}-{}", n + 1)
            }
        };
        let made = self.generate_under(&base, params, &names);
        // A listing that ran meanwhile may have listed a name half-made.
        for n in 0..MAX_NAME_TRIES {
            self.forget(&names(n));
        }
        made
    }
    fn rotate_key(&self, current: &KeyRecord) -> Result<KeyRecord> {
        let spec = KeySpec::like(&current.spki_der)?;
        let update = ObjectUpdate {
            label: current.label.clone(),
            id: None,
        };
        let params = self.create_params(&spec, &update, current.usage)?;
        // A create under an existing name makes a new version of that key.
        self.changing(&current.name, || {
            self.level3_or_refused(self.create_version(&current.name, params)?)
        })
    }
    fn store_certificate(
        &self,
        der: &[u8],
        key: Option<&KeyRecord>,
        update: &ObjectUpdate,
    ) -> Result<CertRecord> {
        // In the certificate database, with the key it pairs with (kept unpaired when no
        // key of the store carries its public key, e.g. a CA certificate of a chain).
        let label = update
            .label
            .clone()
            .or_else(|| key.map(|k| k.name.clone()))
            .unwrap_or_default();
        let row = self.local_certificates.insert(&NewCert {
            key_name: key.map(|k| k.name.as_str()),
            key_version: key.and_then(|k| k.version.as_deref()),
            cka_id: update.id.as_deref().unwrap_or_default(),
            label: &label,
            der,
        })?;
        Ok(cert_record(row))
    }

    fn issue_certificate(
        &self,
        name: &str,
        request: &crate::backend::IssueRequest<'_>,
    ) -> Result<Option<KeyRecord>> {
        self.changing(name, || {
            self.issue(name, request)?
                .map(|k| self.level3_or_refused(k))
                .transpose()
        })
    }

    fn import_key(
        &self,
        name: &str,
        pkcs8_der: &[u8],
        chain: &[Vec<u8>],
        update: &ObjectUpdate,
    ) -> Result<KeyRecord> {
        self.changing(name, || {
            let record = self.import(name, pkcs8_der, chain, update)?;
            self.level3_or_refused(record)
        })
    }

    fn backup_key(&self, name: &str) -> Result<crate::backend::KeyBackup> {
        self.backup(name)
    }

    fn restore_key(
        &self,
        name: &str,
        backup: &crate::backend::KeyBackup,
        replace: bool,
    ) -> Result<()> {
        self.changing(name, || self.restore(name, backup, replace))
    }

    fn stored_certificates(
        &self,
        keys: Option<&[String]>,
    ) -> Result<Vec<crate::backend::StoredCertificate>> {
        self.stored(keys)
    }

    fn restore_certificates(
        &self,
        certificates: &[crate::backend::StoredCertificate],
    ) -> Result<usize> {
        self.restore_stored(certificates)
    }

    fn delete_key(&self, stable_id: &str) -> Result<()> {
        if !self.cfg.allow_destroy {
            return Err(Error::ActionProhibited(format!(
                "deleting keys in {} is off; set allow_destroy = true in the slot to allow it",
                self.cfg.url
            )));
        }
        let url =
            url::Url::parse(stable_id).map_err(|e| Error::Internal(format!("{stable_id}: {e}")))?;
        let name = url
            .path_segments()
            .and_then(|mut s| s.nth(1).map(str::to_owned))
            .ok_or_else(|| Error::Internal(format!("{stable_id}: no key name")))?;
        let what = format!("delete key {name}");
        self.changing(&name, || {
            self.run(self.keys.delete_key(&name, None))?
                .map(|_| ())
                .map_err(|e| errors::map(e, &what))
        })
    }

    fn delete_certificate(&self, stable_id: &str) -> Result<()> {
        if let Some(id) = db_id(stable_id) {
            self.local_certificates.delete(id)?;
            return Ok(());
        }
        Err(Error::ActionProhibited(
            "the vault's certificates are managed in the vault; this module does not delete them"
                .into(),
        ))
    }

    fn update(&self, stable_id: &str, update: &ObjectUpdate) -> Result<()> {
        if let Some(id) = db_id(stable_id) {
            if !self
                .local_certificates
                .update(id, update.label.as_deref(), update.id.as_deref())?
            {
                return Err(Error::ObjectHandleInvalid);
            }
            return Ok(());
        }
        self.update_key_tags(stable_id, update)
    }
}

impl KeyVaultBackend {
    /// The parameters of a new key (or key version) of `spec` with the permitted uses.
    fn create_params(
        &self,
        spec: &KeySpec,
        update: &ObjectUpdate,
        usage: KeyUsage,
    ) -> Result<CreateKeyParameters> {
        let hsm = self.cfg.hsm_keys;
        let mut params = CreateKeyParameters::default();
        let mut ops = vec![KeyOperation::Sign, KeyOperation::Verify];
        match spec {
            KeySpec::Rsa {
                bits,
                public_exponent,
            } => {
                params.kty = Some(if hsm { KeyType::RsaHsm } else { KeyType::Rsa });
                params.key_size = Some(i32::try_from(*bits).map_err(|_| Error::KeySizeRange)?);
                let e = public_exponent
                    .iter()
                    .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
                if e != 65537 {
                    return Err(Error::AttributeValueInvalid(
                        "Key Vault creates RSA keys with public exponent 65537 only".into(),
                    ));
                }
                params.public_exponent = Some(65537);
                if usage.decrypt {
                    ops.extend([KeyOperation::Decrypt, KeyOperation::Encrypt]);
                }
                if usage.unwrap {
                    ops.extend([KeyOperation::UnwrapKey, KeyOperation::WrapKey]);
                }
            }
            KeySpec::Ec(curve) => {
                params.kty = Some(if hsm { KeyType::EcHsm } else { KeyType::Ec });
                params.curve = Some(match curve {
                    Curve::P256 => CurveName::P256,
                    Curve::P384 => CurveName::P384,
                    Curve::P521 => CurveName::P521,
                });
            }
        }
        if !usage.sign {
            ops.retain(|o| !matches!(o, KeyOperation::Sign | KeyOperation::Verify));
        }
        params.key_ops = Some(ops);
        // A new key carries the tags the slot filters on, so that the slot lists it.
        let mut tags: HashMap<String, String> = self
            .cfg
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(l) = &update.label {
            tags.insert(TAG_LABEL.to_owned(), l.clone());
        }
        if let Some(i) = &update.id {
            tags.insert(TAG_ID.to_owned(), crate::crypto::hex::encode(i));
        }
        params.tags = Some(tags);
        Ok(params)
    }

    /// Creates key `key_name` (a new key, or a new version of an existing one).
    fn create_version(&self, key_name: &str, params: CreateKeyParameters) -> Result<KeyRecord> {
        let what = format!("create key {key_name}");
        let body = params.try_into().map_err(|e| errors::map(e, &what))?;
        let key: Key = self
            .runtime
            .run(
                self.deadline * 3,
                self.keys.create_key(key_name, body, None),
            )?
            .map_err(|e| errors::map(e, &what))?
            .into_model()
            .map_err(|e| errors::map(e, &what))?;
        let id = key.resource_id().map_err(|e| errors::map(e, &what))?;
        let version = id
            .version
            .ok_or_else(|| Error::Backend(format!("{what}: no version in the answer")))?;
        self.run(self.fetch_version(key_name, &version, true))??
            .map(|(mut k, _)| {
                k.local = true;
                k
            })
            .ok_or_else(|| Error::Backend(format!("{what}: the new key has no public key")))
    }
}

/// Names tried by one C_GenerateKeyPair: `label`, `label-2`, … (taken ones, or raced).
const MAX_NAME_TRIES: usize = 20;

/// The most one C_GenerateRandom takes from the HSM: 32 requests of RNG_MAX (README).
const HSM_RANDOM_MAX: usize = 4096;

/// The most /rng gives per request (FACTS.md §2: count 1..128).
const RNG_MAX: usize = 128;

impl KeyVaultBackend {
    /// `len` bytes from the Managed HSM's /rng, 128 per request.
    fn hsm_random(&self, len: usize) -> Result<Vec<u8>> {
        // A bound on the requests one call makes: 64 MiB would be half a million.
        if len > HSM_RANDOM_MAX {
            return Err(Error::ArgumentsBad(
                "C_GenerateRandom from the HSM (hsm_random) gives at most 4096 bytes per call",
            ));
        }
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let count = (len - out.len()).min(RNG_MAX);
            let mut p = GetRandomBytesParameters::default();
            p.count = Some(i32::try_from(count).map_err(|_| Error::DataLenRange)?);
            let body = p.try_into().map_err(|e| errors::map(e, "random bytes"))?;
            let bytes = self
                .run(self.keys.get_random_bytes(body, None))?
                .map_err(|e| errors::map(e, "random bytes"))?
                .into_model()
                .map_err(|e| errors::map(e, "random bytes"))?
                .value
                .unwrap_or_default();
            if bytes.len() != count {
                return Err(Error::Backend(format!(
                    "random bytes: asked {count}, the HSM gave {}",
                    bytes.len()
                )));
            }
            out.extend(bytes);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
