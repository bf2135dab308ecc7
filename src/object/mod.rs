//! The object cache: stable object ids ↔ handles (never reused), attributes computed once
//! from backend records, find templates matched on cached attributes, a query cache for
//! repeated identical searches, and a refresh after the slot's TTL that keeps handles.
//! Remote slots are refreshed by a background thread (`refresher`), so that a search
//! never waits for the network once the first listing is in.

pub mod attributes;
mod gate;
mod lookup;
pub mod refresher;
mod session_objects;
pub mod template;

use crate::backend::{Backend, CertRecord, KeyRecord, Listing};
use crate::crypto::{KeyKind, PublicInfo};
use crate::error::{Error, Result};
use crate::lock_order::{self, Level};
use crate::telemetry::CacheCounts;
use attributes::Attributes;
use cryptoki_sys::*;
use gate::ListingGate;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The three kinds of object the module exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    PrivateKey,
    PublicKey,
    Certificate,
    /// A session secret key made by C_UnwrapKey.
    SecretKey,
}

/// A key's material as the operations need it.
#[derive(Debug, Clone)]
pub struct KeyObject {
    /// The backend record; `None` for public keys created as session objects.
    pub record: Option<KeyRecord>,
    pub public: PublicInfo,
    /// The private key of a session key pair (`CKA_TOKEN` false): its store is the
    /// session, and it goes when its objects do.
    pub session_key: Option<openssl::pkey::PKey<openssl::pkey::Private>>,
}

/// One object as PKCS#11 sees it.
#[derive(Debug)]
pub struct Object {
    pub handle: CK_OBJECT_HANDLE,
    pub slot: usize,
    pub stable_id: String,
    pub kind: ObjectKind,
    pub attrs: Attributes,
    /// Attributes that exist but are never revealed (private key material).
    pub sensitive: &'static [CK_ATTRIBUTE_TYPE],
    pub key: Option<Arc<KeyObject>>,
    /// The session owning a session object (`CKA_TOKEN` false).
    pub owner: Option<CK_SESSION_HANDLE>,
}

/// What C_GetAttributeValue finds for one attribute.
#[derive(Debug, PartialEq, Eq)]
pub enum AttrLookup<'a> {
    Value(&'a [u8]),
    Sensitive,
    Invalid,
}

impl Object {
    pub fn attr(&self, t: CK_ATTRIBUTE_TYPE) -> AttrLookup<'_> {
        if self.sensitive.contains(&t) {
            return AttrLookup::Sensitive;
        }
        match self.attrs.get(&t) {
            Some(v) => AttrLookup::Value(v),
            None => AttrLookup::Invalid,
        }
    }

    pub fn flag(&self, t: CK_ATTRIBUTE_TYPE) -> bool {
        matches!(self.attrs.get(&t).map(Vec::as_slice), Some([b]) if *b != CK_FALSE)
    }

    pub fn is_private(&self) -> bool {
        self.flag(CKA_PRIVATE)
    }

    fn matches(&self, template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> bool {
        template
            .iter()
            .all(|(t, v)| matches!(self.attr(*t), AttrLookup::Value(have) if have == v.as_slice()))
    }

    /// The value of a session secret key (`CKA_VALUE`), also when it is sensitive: for
    /// the module's own use of the key, never for the caller.
    pub fn secret_value(&self) -> Option<&[u8]> {
        if self.kind != ObjectKind::SecretKey {
            return None;
        }
        self.attrs.get(&CKA_VALUE).map(Vec::as_slice)
    }

    /// The key of a key object, or `CKR_KEY_HANDLE_INVALID`.
    pub fn key(&self) -> Result<&Arc<KeyObject>> {
        self.key.as_ref().ok_or(Error::KeyHandleInvalid)
    }
}

/// Handle allocation: a handle belongs to one (slot, stable id) for the module's life.
#[derive(Default)]
struct Handles {
    by_id: HashMap<(usize, String), CK_OBJECT_HANDLE>,
    slot_of: HashMap<CK_OBJECT_HANDLE, usize>,
}

/// Object handles come from one counter for the life of the process (as session handles
/// do): a handle is never reused, not even across C_Finalize and C_Initialize.
static NEXT_OBJECT: AtomicU64 = AtomicU64::new(1);

pub struct ObjectCache {
    handles: lock_order::Mutex<Handles>,
    slots: Vec<SlotObjects>,
}

/// What the cache is given for each slot.
pub struct SlotStore {
    pub backend: Arc<dyn Backend>,
    /// How long a listing is served before the store is read again.
    pub ttl: Duration,
    /// The slot has a PIN: private objects need a login.
    pub login_required: bool,
}

struct SlotObjects {
    backend: Arc<dyn Backend>,
    ttl: Duration,
    /// Private keys are CKA_PRIVATE (need login) when the slot has a PIN.
    login_required: bool,
    /// A background thread refreshes this slot: searches never list once loaded.
    background: std::sync::atomic::AtomicBool,
    /// The metrics' counters.
    counters: Counters,
    state: lock_order::RwLock<SlotState>,
    /// One listing of the slot at a time.
    gate: ListingGate,
    /// Tests: runs once between a listing's build and its apply (the window a C_Logout
    /// can fall into).
    #[cfg(test)]
    after_build: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

/// A slot's counters for the metrics (`CacheCounts` when read).
#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    listings: AtomicU64,
    failed_listings: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> CacheCounts {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheCounts {
            hits: read(&self.hits),
            misses: read(&self.misses),
            listings: read(&self.listings),
            failed_listings: read(&self.failed_listings),
        }
    }
}

/// After a failed refresh of a slot that has a listing, the next attempt waits this
/// long (or the TTL if shorter), so that an outage does not turn every search, or the
/// refresher, into a listing.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// What a refresh is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Refresh {
    /// After a write through this module: always list.
    Force,
    /// A search: list if never listed, or if stale and no refresher runs for the slot.
    Search,
    /// The refresher: list if stale.
    Background,
}

type QueryKey = (Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>, bool);

#[derive(Default)]
struct SlotState {
    loaded_at: Option<Instant>,
    /// Set when a refresh failed: no new attempt before then.
    retry_at: Option<Instant>,
    /// Moves on when a listing is applied or a write is noted (see `refresh`).
    epoch: u64,
    /// Bumped on every change of the object set; query cache entries carry it.
    generation: u64,
    objects: BTreeMap<CK_OBJECT_HANDLE, Arc<Object>>,
    queries: HashMap<QueryKey, (u64, Vec<CK_OBJECT_HANDLE>)>,
    /// Before the first listing: the labels whose key was looked up on its own (a first
    /// search by label answered at once); their objects are in `objects` until the
    /// listing replaces them (same stable ids, so the same handles).
    looked_up: std::collections::HashSet<String>,
    /// When the first of them was looked up.
    looked_up_at: Option<Instant>,
}

/// Bounds the query cache; NSS and Java repeat a handful of templates, not thousands.
const MAX_CACHED_QUERIES: usize = 256;

fn lock_err<T>(_: T) -> Error {
    Error::Internal("object cache lock poisoned".into())
}

impl ObjectCache {
    pub fn new(slots: Vec<SlotStore>) -> ObjectCache {
        ObjectCache {
            handles: lock_order::Mutex::new(Level::ObjectHandles, Handles::default()),
            slots: slots
                .into_iter()
                .map(|s| SlotObjects {
                    backend: s.backend,
                    ttl: s.ttl,
                    login_required: s.login_required,
                    background: Default::default(),
                    counters: Counters::default(),
                    state: lock_order::RwLock::new(Level::SlotObjects, SlotState::default()),
                    gate: ListingGate::default(),
                    #[cfg(test)]
                    after_build: Default::default(),
                })
                .collect(),
        }
    }

    fn slot(&self, slot: usize) -> Result<&SlotObjects> {
        self.slots.get(slot).ok_or(Error::SlotIdInvalid)
    }

    /// The slot's backend, for a call into it: no lock may be held across that call.
    pub fn backend(&self, slot: usize) -> Result<Arc<dyn Backend>> {
        lock_order::assert_none_held("a backend call");
        Ok(self.slot(slot)?.backend.clone())
    }

    fn handle_for(&self, slot: usize, stable_id: &str) -> Result<CK_OBJECT_HANDLE> {
        let mut h = self.handles.lock().map_err(lock_err)?;
        if let Some(handle) = h.by_id.get(&(slot, stable_id.to_owned())) {
            return Ok(*handle);
        }
        let handle = self.fresh_handle()?;
        h.by_id.insert((slot, stable_id.to_owned()), handle);
        h.slot_of.insert(handle, slot);
        Ok(handle)
    }

    fn fresh_handle(&self) -> Result<CK_OBJECT_HANDLE> {
        let n = NEXT_OBJECT.fetch_add(1, Ordering::Relaxed);
        CK_OBJECT_HANDLE::try_from(n)
            .ok()
            .filter(|h| *h != CK_INVALID_HANDLE && *h != CK_UNAVAILABLE_INFORMATION)
            .ok_or(Error::HostMemory)
    }

    /// Reads the store again when the TTL has passed (or `force`). The store is read
    /// without holding the cache lock; a failed read keeps serving what was listed before.
    pub fn refresh(&self, slot: usize, force: bool) -> Result<()> {
        self.refresh_as(
            slot,
            if force {
                Refresh::Force
            } else {
                Refresh::Search
            },
        )
    }

    /// Per slot: query cache hits, misses, listings applied, listings failed.
    pub fn counts(&self) -> Vec<CacheCounts> {
        self.slots.iter().map(|so| so.counters.snapshot()).collect()
    }

    /// The certificates of `slot` as listed: label, SHA-1 thumbprint (hex), notAfter (Unix
    /// seconds). Empty when the slot was not listed yet.
    pub fn certificate_expiry(&self, slot: usize) -> Vec<(String, String, i64)> {
        let Ok(so) = self.slot(slot) else {
            return Vec::new();
        };
        let Ok(state) = so.state.read() else {
            return Vec::new();
        };
        state
            .objects
            .values()
            .filter(|o| o.kind == ObjectKind::Certificate)
            .filter_map(|o| {
                let AttrLookup::Value(der) = o.attr(CKA_VALUE) else {
                    return None;
                };
                let label = match o.attr(CKA_LABEL) {
                    AttrLookup::Value(l) => String::from_utf8_lossy(l).into_owned(),
                    _ => String::new(),
                };
                let x = openssl::x509::X509::from_der(der).ok()?;
                let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
                let d = epoch.diff(x.not_after()).ok()?;
                let sha1 = crate::crypto::hex::encode(&openssl::sha::sha1(der));
                Some((label, sha1, i64::from(d.days) * 86_400 + i64::from(d.secs)))
            })
            .collect()
    }

    /// How long `slot`'s listings are served before it is listed again.
    pub fn ttl(&self, slot: usize) -> Result<Duration> {
        Ok(self.slot(slot)?.ttl)
    }

    /// Marks `slot` as refreshed by the background thread (see `refresher`).
    pub fn set_background(&self, slot: usize) -> Result<()> {
        self.slot(slot)?.background.store(true, Ordering::Release);
        Ok(())
    }

    /// When `slot` is next due for a refresh; `None` while it was never listed.
    pub fn refresh_due(&self, slot: usize) -> Result<Option<Instant>> {
        let so = self.slot(slot)?;
        let state = so.state.read().map_err(lock_err)?;
        // A slot answered from lookups only is listed at once, in the background.
        if state.loaded_at.is_none()
            && let Some(since) = state.looked_up_at
        {
            return Ok(Some(state.retry_at.unwrap_or(since)));
        }
        Ok(state
            .loaded_at
            .map(|t| t + so.ttl)
            .map(|due| state.retry_at.map_or(due, |r| r.max(due))))
    }

    /// The refresher's refresh: lists `slot` if it is stale.
    pub fn refresh_stale(&self, slot: usize) -> Result<()> {
        self.refresh_as(slot, Refresh::Background)
    }

    fn refresh_as(&self, slot: usize, why: Refresh) -> Result<()> {
        let so = self.slot(slot)?;
        if why != Refresh::Force && self.fresh(so, why)? {
            return Ok(());
        }
        // One listing at a time for searches and the refresher: a search waits for the
        // one in flight and is served by it; the refresher never waits (that listing is
        // the refresh). A write's forced listing waits for none: it must reflect the write,
        // and the epoch below drops any listing that started before it.
        let mut gate = if why == Refresh::Force {
            None
        } else {
            let Some((mut gate, waited)) = so.gate.enter(why == Refresh::Search) else {
                return Ok(());
            };
            // Served by the listing it waited for (or one that ended just before), or
            // failed with it: a search of a slot never listed gets that listing's error
            // rather than making the same requests again.
            if self.fresh(so, why)? {
                return Ok(());
            }
            if let gate::Waited::For(Some(e)) = waited {
                // Passed on to the next waiter too, as it opens the gate again.
                gate.failed(&e);
                return Err(e);
            }
            Some(gate)
        };
        let started = {
            let mut state = so.state.write().map_err(lock_err)?;
            if why != Refresh::Force && state.loaded_at.is_some() {
                let now = Instant::now();
                let fresh = state.loaded_at.is_some_and(|t| now - t < so.ttl);
                let waiting = state.retry_at.is_some_and(|r| now < r);
                let others = why == Refresh::Search && so.background.load(Ordering::Acquire);
                if fresh || waiting || others {
                    return Ok(());
                }
            }
            if why == Refresh::Force {
                state.epoch += 1;
            }
            state.epoch
        };
        lock_order::assert_none_held("a store listing");
        let listing = match so.backend.list() {
            Ok(l) => l,
            Err(e) => {
                if let Some(g) = gate.as_mut() {
                    g.failed(&e);
                }
                so.counters.failed_listings.fetch_add(1, Ordering::Relaxed);
                let mut state = so.state.write().map_err(lock_err)?;
                // A slot served from lookups is not listed again before then either.
                if why != Refresh::Force && !state.looked_up.is_empty() {
                    state.retry_at = Some(Instant::now() + RETRY_AFTER_FAILURE.min(so.ttl));
                }
                if state.loaded_at.is_some() && why != Refresh::Force {
                    state.retry_at = Some(Instant::now() + RETRY_AFTER_FAILURE.min(so.ttl));
                    // NotInitialized: cancelled by C_Finalize, nothing to report.
                    if e != Error::NotInitialized {
                        tracing::warn!(slot, error = %e, "store listing failed; serving the objects listed before");
                    }
                    return Ok(());
                }
                return Err(e);
            }
        };
        let built = self.build(slot, so, &listing)?;
        #[cfg(test)]
        if let Some(hook) = so.after_build.lock().ok().and_then(|mut h| h.take()) {
            hook();
        }
        let mut state = so.state.write().map_err(lock_err)?;
        if state.epoch != started {
            // A newer listing or write won; this one may be stale.
            return Ok(());
        }
        let sessions: Vec<(CK_OBJECT_HANDLE, Arc<Object>)> = state
            .objects
            .iter()
            .filter(|(_, o)| o.owner.is_some())
            .map(|(h, o)| (*h, o.clone()))
            .collect();
        state.objects = built;
        state.objects.extend(sessions);
        state.looked_up.clear();
        state.looked_up_at = None;
        state.loaded_at = Some(Instant::now());
        state.retry_at = None;
        so.counters.listings.fetch_add(1, Ordering::Relaxed);
        state.epoch += 1;
        state.generation += 1;
        state.queries.clear();
        Ok(())
    }

    /// Whether `so` needs no listing for `why` now (listed within its TTL, waiting after
    /// a failure, or refreshed by the background thread).
    fn fresh(&self, so: &SlotObjects, why: Refresh) -> Result<bool> {
        let state = so.state.read().map_err(lock_err)?;
        let Some(loaded) = state.loaded_at else {
            return Ok(false);
        };
        let now = Instant::now();
        Ok(now - loaded < so.ttl
            || state.retry_at.is_some_and(|r| now < r)
            || (why == Refresh::Search && so.background.load(Ordering::Acquire)))
    }

    fn build(
        &self,
        slot: usize,
        so: &SlotObjects,
        listing: &Listing,
    ) -> Result<BTreeMap<CK_OBJECT_HANDLE, Arc<Object>>> {
        let modifiable = so.backend.writable();
        let mut objects = BTreeMap::new();
        // Certificates first: keys take their subject from the certificate that carries
        // their public key.
        let mut subject_of: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut certs: Vec<(&CertRecord, Attributes, Vec<u8>)> = Vec::new();
        for cert in &listing.certificates {
            let key_id_override = certificate_id_override(cert, listing);
            match attributes::certificate(cert, true, modifiable, key_id_override.as_deref()) {
                Ok((mut attrs, facts)) => {
                    attrs.insert(
                        CKA_DESTROYABLE,
                        attributes::bool_(so.backend.certificate_destroyable(cert)),
                    );
                    if !cert.authority {
                        subject_of
                            .entry(facts.spki_der.clone())
                            .or_insert(facts.subject);
                    }
                    certs.push((cert, attrs, facts.spki_der));
                }
                Err(e) => {
                    tracing::warn!(certificate = %cert.stable_id, error = %e, "skipping certificate");
                }
            }
        }
        for (cert, attrs, _) in certs {
            let handle = self.handle_for(slot, &cert.stable_id)?;
            objects.insert(
                handle,
                Arc::new(Object {
                    handle,
                    slot,
                    stable_id: cert.stable_id.clone(),
                    kind: ObjectKind::Certificate,
                    attrs,
                    sensitive: &[],
                    key: None,
                    owner: None,
                }),
            );
        }
        for key in &listing.keys {
            if let Err(e) = self.add_key(slot, so, key, &subject_of, modifiable, &mut objects) {
                tracing::warn!(key = %key.stable_id, error = %e, "skipping key");
            }
        }
        Ok(objects)
    }

    fn add_key(
        &self,
        slot: usize,
        so: &SlotObjects,
        key: &KeyRecord,
        subject_of: &HashMap<Vec<u8>, Vec<u8>>,
        modifiable: bool,
        objects: &mut BTreeMap<CK_OBJECT_HANDLE, Arc<Object>>,
    ) -> Result<()> {
        let public = PublicInfo::from_spki(&key.spki_der)?;
        let id = key_id(key)?;
        let label = key_label(key);
        let subject = subject_of.get(&key.spki_der).cloned().unwrap_or_default();
        let sensitive = match public.kind {
            KeyKind::Rsa => attributes::SENSITIVE_RSA,
            KeyKind::Ec => attributes::SENSITIVE_EC,
        };
        let private_attrs = attributes::private_key(
            key,
            &public,
            &label,
            &id,
            &subject,
            so.login_required,
            modifiable,
        )?;
        let mut public_attrs =
            attributes::public_key(key, &public, &label, &id, &subject, modifiable)?;
        let mut private_attrs = private_attrs;
        // An older version is never destroyed alone: the store deletes a key with all its
        // versions (C_DestroyObject says CKR_ACTION_PROHIBITED).
        let older_version = key.version.is_some() && !key.current;
        private_attrs.insert(
            CKA_DESTROYABLE,
            attributes::bool_(so.backend.keys_destroyable() && !older_version),
        );
        // A public key goes with its private key; alone it is never destroyed
        // (C_DestroyObject says CKR_ACTION_PROHIBITED).
        public_attrs.insert(CKA_DESTROYABLE, attributes::bool_(false));
        let material = Arc::new(KeyObject {
            record: Some(key.clone()),
            public,
            session_key: None,
        });
        for (suffix, kind, attrs, sensitive) in [
            ("#private", ObjectKind::PrivateKey, private_attrs, sensitive),
            ("#public", ObjectKind::PublicKey, public_attrs, &[][..]),
        ] {
            let stable_id = format!("{}{suffix}", key.stable_id);
            let handle = self.handle_for(slot, &stable_id)?;
            objects.insert(
                handle,
                Arc::new(Object {
                    handle,
                    slot,
                    stable_id,
                    kind,
                    attrs,
                    sensitive,
                    key: Some(material.clone()),
                    owner: None,
                }),
            );
        }
        Ok(())
    }

    /// The object behind a handle, if the caller may see it.
    pub fn get(
        &self,
        handle: CK_OBJECT_HANDLE,
        logged_in: impl Fn(usize) -> bool,
    ) -> Result<Arc<Object>> {
        let slot = *self
            .handles
            .lock()
            .map_err(lock_err)?
            .slot_of
            .get(&handle)
            .ok_or(Error::ObjectHandleInvalid)?;
        let so = self.slot(slot)?;
        let obj = so
            .state
            .read()
            .map_err(lock_err)?
            .objects
            .get(&handle)
            .cloned()
            .ok_or(Error::ObjectHandleInvalid)?;
        if obj.is_private() && !logged_in(slot) {
            return Err(Error::ObjectHandleInvalid);
        }
        Ok(obj)
    }

    /// Handles of the objects of `slot` matching `template`.
    pub fn find(
        &self,
        slot: usize,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
        logged_in: bool,
    ) -> Result<Vec<CK_OBJECT_HANDLE>> {
        if let Some(found) = self.find_before_listing(slot, template, logged_in)? {
            return Ok(found);
        }
        self.refresh(slot, false)?;
        let so = self.slot(slot)?;
        let mut key: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> = template.to_vec();
        key.sort();
        let key = (key, logged_in);
        {
            let state = so.state.read().map_err(lock_err)?;
            if let Some((generation, handles)) = state.queries.get(&key)
                && *generation == state.generation
            {
                so.counters.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(handles.clone());
            }
        }
        so.counters.misses.fetch_add(1, Ordering::Relaxed);
        let mut state = so.state.write().map_err(lock_err)?;
        let found: Vec<CK_OBJECT_HANDLE> = state
            .objects
            .values()
            .filter(|o| logged_in || !o.is_private())
            .filter(|o| o.matches(template))
            .map(|o| o.handle)
            .collect();
        if state.queries.len() >= MAX_CACHED_QUERIES {
            state.queries.clear();
        }
        let generation = state.generation;
        state.queries.insert(key, (generation, found.clone()));
        Ok(found)
    }

    /// The handle of a token object the store reports under `stable_id` (after a refresh).
    pub fn handle_of(&self, slot: usize, stable_id: &str) -> Result<CK_OBJECT_HANDLE> {
        self.handles
            .lock()
            .map_err(lock_err)?
            .by_id
            .get(&(slot, stable_id.to_owned()))
            .copied()
            .ok_or_else(|| Error::Internal(format!("no handle for {stable_id}")))
    }

    /// The public key of the store's key matching `spki_der`, if any (pairs certificates).
    pub fn key_record_for_spki(&self, slot: usize, spki_der: &[u8]) -> Result<Option<KeyRecord>> {
        self.refresh(slot, false)?;
        let so = self.slot(slot)?;
        let state = so.state.read().map_err(lock_err)?;
        Ok(state
            .objects
            .values()
            // Token keys only: a session key's record names no entry of the store.
            .filter(|o| o.kind == ObjectKind::PrivateKey && o.owner.is_none())
            .filter_map(|o| o.key.as_ref()?.record.clone())
            .find(|r| r.spki_der == spki_der))
    }
}

/// The CKA_LABEL of a key version's objects: a label set through PKCS#11, else the key's
/// name for the current version and `name/version` for older ones.
pub fn key_label(key: &KeyRecord) -> String {
    match (&key.label, &key.version) {
        (Some(l), _) => l.clone(),
        (None, Some(v)) if !key.current => format!("{}/{v}", key.name),
        (None, _) => key.name.clone(),
    }
}

/// The CKA_ID of a key version's objects: one set through PKCS#11, else the SHA-1 of its
/// public key (RFC 5280 §4.2.1.2 method 1, which certificates' SKIs use too).
pub fn key_id(key: &KeyRecord) -> Result<Vec<u8>> {
    match &key.id {
        Some(id) => Ok(id.clone()),
        None => crate::crypto::key::key_identifier(&key.spki_der),
    }
}

/// A certificate without a CKA_ID of its own takes the one set on its key.
fn certificate_id_override(cert: &CertRecord, listing: &Listing) -> Option<Vec<u8>> {
    if cert.id.is_some() {
        return None;
    }
    listing
        .keys
        .iter()
        .find(|k| {
            k.id.is_some()
                && crate::crypto::key::certificate_spki(&cert.der).as_deref()
                    == Some(k.spki_der.as_slice())
        })
        .and_then(|k| k.id.clone())
}

/// The CKA_ID of a certificate's object, as C_GetAttributeValue answers it.
pub fn certificate_id(cert: &CertRecord, listing: &Listing) -> Result<Vec<u8>> {
    let over = certificate_id_override(cert, listing);
    let (attrs, _) = attributes::certificate(cert, true, false, over.as_deref())?;
    Ok(attrs.get(&CKA_ID).cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests;
