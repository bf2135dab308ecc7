//! The module: configuration, slots, sessions and the object cache, built by C_Initialize
//! and dropped by C_Finalize. Every C_* lands in one method here after `ffi/` decoded its
//! arguments; nothing here sees a raw pointer.
//!
//! Locking: a session's lock is held only to read or change its operation state; objects
//! are `Arc`s taken out of the cache; store calls (sign, decrypt, list, write) run with no
//! lock held (ARCHITECTURE.md §2 rule 4).

use crate::backend::azure::AzureRuntime;
use crate::backend::azure::key_vault::KeyVaultBackend;
use crate::backend::directory::{DirectoryBackend, DirectoryConfig};
use crate::backend::{Backend, CertRecord, Curve, KeyRecord, KeySpec, KeyUsage, ObjectUpdate};
use crate::config::{Config, SlotConfig, StoreConfig};
use crate::error::{Error, Result};
use crate::mechanism::{
    self, CryptScheme, Hashing, KeyKind, Mechanism, PublicInfo, SignKind, SignScheme,
};
use crate::object::attributes::{self, read_bool, read_ulong};
use crate::object::refresher::Refresher;
use crate::object::{KeyObject, Object, ObjectCache, ObjectKind};
use crate::session::{self, CryptOp, DigestOp, FindOp, SessionTable, SignOp};
use crate::telemetry::{KeyUse, SlotFacts, Telemetry};
use cryptoki_sys::*;
use std::sync::Arc;
use std::time::Duration;

/// A template as decoded by `ffi/`: attribute types with their value bytes.
pub type Template = Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>;

/// What an output-producing call gives back (§5.2 two-call convention).
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// The caller asked for the length (NULL buffer); the operation stays active.
    Length(usize),
    /// The caller's buffer is too short for this many bytes; the operation stays active.
    TooSmall(usize),
    /// The result; the operation has ended.
    Data(Vec<u8>),
}

fn deliver(len: usize, capacity: Option<usize>) -> Option<Output> {
    match capacity {
        None => Some(Output::Length(len)),
        Some(c) if c < len => Some(Output::TooSmall(len)),
        Some(_) => None,
    }
}

pub struct Slot {
    pub config: SlotConfig,
    pub backend: Arc<dyn Backend>,
}

/// Which operation an *Init/Update/Final call addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignSide {
    Sign,
    Verify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptSide {
    Encrypt,
    Decrypt,
}

impl SignSide {
    fn operation(self, s: &mut session::Session) -> &mut Option<SignOp> {
        match self {
            SignSide::Sign => &mut s.sign,
            SignSide::Verify => &mut s.verify,
        }
    }
}

impl CryptSide {
    fn operation(self, s: &mut session::Session) -> &mut Option<CryptOp> {
        match self {
            CryptSide::Encrypt => &mut s.encrypt,
            CryptSide::Decrypt => &mut s.decrypt,
        }
    }
}

pub struct Module {
    pub pid: u32,
    /// The network runtime of key-vault / managed-hsm slots, if any.
    runtime: Option<Arc<AzureRuntime>>,
    pub config: Config,
    pub slots: Vec<Slot>,
    pub objects: Arc<ObjectCache>,
    pub sessions: SessionTable,
    /// Lists remote slots again in the background (none without threads of our own).
    refresher: Option<Refresher>,
    /// The audit log and the metrics.
    pub telemetry: Arc<Telemetry>,
}

/// How long C_Finalize waits for the refresh thread.
const REFRESHER_STOP_BOUND: Duration = Duration::from_secs(2);

const MAX_PIN_LEN: usize = 256;

impl Module {
    /// Builds the module. `may_create_threads` is false when the application set
    /// `CKF_LIBRARY_CANT_CREATE_OS_THREADS`: network slots then run on the caller's thread.
    pub fn new(config: Config, may_create_threads: bool) -> Result<Module> {
        let runtime = if config
            .slots
            .iter()
            .any(|s| matches!(s.store, StoreConfig::Azure(_)))
        {
            Some(Arc::new(AzureRuntime::new(may_create_threads)?))
        } else {
            None
        };
        let telemetry = Telemetry::new(config.audit.clone(), config.metrics.clone());
        let mut slots = Vec::new();
        for sc in &config.slots {
            let backend: Arc<dyn Backend> = match &sc.store {
                StoreConfig::Azure(azure) => {
                    let rt = runtime
                        .clone()
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
            slots.push(Slot {
                config: sc.clone(),
                backend,
            });
        }
        let objects = Arc::new(ObjectCache::new(
            slots
                .iter()
                .map(|s| {
                    (
                        s.backend.clone(),
                        Duration::from_secs(s.config.refresh_seconds),
                        s.config.pin_hash.is_some(),
                    )
                })
                .collect(),
        ));
        let remote: Vec<usize> = (0..slots.len())
            .filter(|&i| slots[i].backend.remote())
            .collect();
        let refresher = if may_create_threads && !remote.is_empty() {
            Some(Refresher::start(objects.clone(), remote)?)
        } else {
            None
        };
        if may_create_threads {
            let (cache, labels) = (
                objects.clone(),
                slots
                    .iter()
                    .map(|s| s.config.label.clone())
                    .collect::<Vec<_>>(),
            );
            telemetry.start_writer(move || {
                labels
                    .iter()
                    .zip(cache.counts())
                    .enumerate()
                    .map(|(i, (label, counts))| SlotFacts {
                        label: label.clone(),
                        counts,
                        certificates: cache.certificate_expiry(i),
                    })
                    .collect::<Vec<_>>()
            })?;
        }
        Ok(Module {
            pid: std::process::id(),
            runtime,
            config,
            slots,
            objects,
            sessions: SessionTable::default(),
            refresher,
            telemetry,
        })
    }

    /// C_Finalize: stops background work (the network runtime's threads, joined within a
    /// bound); calls still running finish with an error.
    pub fn shutdown(&self) {
        if let Some(rt) = &self.runtime {
            rt.cancel();
        }
        if let Some(r) = &self.refresher
            && !r.stop(REFRESHER_STOP_BOUND)
        {
            tracing::warn!("the refresh thread did not stop within 2 s; left to end on its own");
        }
        if let Some(rt) = &self.runtime {
            rt.shutdown();
        }
        self.telemetry.stop(REFRESHER_STOP_BOUND);
    }

    /// Runs one use of a key of `slot` and records it (audit log, metrics).
    fn key_use<T>(
        &self,
        slot: usize,
        record: &KeyRecord,
        operation: &'static str,
        mechanism: &str,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let started = std::time::Instant::now();
        let r = f();
        let result = r.as_ref().map(|_| ()).map_err(Clone::clone);
        self.telemetry.key_use(&KeyUse {
            slot: self.slots.get(slot).map_or("", |s| s.config.label.as_str()),
            key: &record.name,
            version: record.version.as_deref(),
            operation,
            mechanism,
            result: &result,
            latency: started.elapsed(),
        });
        r
    }

    // ----- slots and tokens (§5.5) -----

    pub fn slot(&self, id: CK_SLOT_ID) -> Result<(usize, &Slot)> {
        let index = usize::try_from(id).map_err(|_| Error::SlotIdInvalid)?;
        self.slots
            .get(index)
            .map(|s| (index, s))
            .ok_or(Error::SlotIdInvalid)
    }

    pub fn slot_ids(&self) -> Result<Vec<CK_SLOT_ID>> {
        (0..self.slots.len())
            .map(|i| CK_SLOT_ID::try_from(i).map_err(|e| Error::Internal(e.to_string())))
            .collect()
    }

    pub fn slot_info(&self, id: CK_SLOT_ID) -> Result<CK_SLOT_INFO> {
        let (_, slot) = self.slot(id)?;
        let mut info = CK_SLOT_INFO {
            slotDescription: [b' '; 64],
            manufacturerID: [b' '; 32],
            flags: CKF_TOKEN_PRESENT,
            hardwareVersion: version(),
            firmwareVersion: version(),
        };
        pad(
            &mut info.slotDescription,
            &format!(
                "identify-pkcs11 {} slot {}",
                slot.config.kind.as_str(),
                slot.config.label
            ),
        );
        pad(&mut info.manufacturerID, MANUFACTURER);
        Ok(info)
    }

    pub fn token_info(&self, id: CK_SLOT_ID) -> Result<CK_TOKEN_INFO> {
        let (index, slot) = self.slot(id)?;
        let (sessions, rw) = self.sessions.count(index)?;
        let mut flags = CKF_RNG | CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED;
        if slot.config.pin_hash.is_some() {
            flags |= CKF_LOGIN_REQUIRED;
        }
        if !slot.backend.writable() {
            flags |= CKF_WRITE_PROTECTED;
        }
        let ul = |n: usize| CK_ULONG::try_from(n).map_err(|e| Error::Internal(e.to_string()));
        let mut info = CK_TOKEN_INFO {
            label: [b' '; 32],
            manufacturerID: [b' '; 32],
            model: [b' '; 16],
            serialNumber: [b' '; 16],
            flags,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: ul(sessions)?,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: ul(rw)?,
            ulMaxPinLen: ul(MAX_PIN_LEN)?,
            ulMinPinLen: 0,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: version(),
            firmwareVersion: version(),
            utcTime: [b' '; 16],
        };
        pad(&mut info.label, &slot.config.label);
        pad(&mut info.manufacturerID, MANUFACTURER);
        pad(&mut info.model, slot.config.kind.as_str());
        let serial = attributes_hex(&openssl::sha::sha1(slot.config.label.as_bytes())[..8]);
        pad(&mut info.serialNumber, &serial);
        Ok(info)
    }

    pub fn mechanism_list(&self, id: CK_SLOT_ID) -> Result<Vec<CK_MECHANISM_TYPE>> {
        self.slot(id)?;
        Ok(mechanism::TABLE.iter().map(|(m, _)| *m).collect())
    }

    pub fn mechanism_info(
        &self,
        id: CK_SLOT_ID,
        m: CK_MECHANISM_TYPE,
    ) -> Result<CK_MECHANISM_INFO> {
        self.slot(id)?;
        let i = mechanism::info(m)?;
        Ok(CK_MECHANISM_INFO {
            ulMinKeySize: i.min_key_size,
            ulMaxKeySize: i.max_key_size,
            flags: i.flags,
        })
    }

    // ----- sessions (§5.6) -----

    fn session(
        &self,
        h: CK_SESSION_HANDLE,
    ) -> Result<Arc<crate::lock_order::Mutex<session::Session>>> {
        self.sessions.get(h)
    }

    fn logged_in(&self, slot: usize) -> bool {
        self.sessions.is_logged_in(slot)
    }

    pub fn open_session(&self, id: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE> {
        let (index, _) = self.slot(id)?;
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(Error::SessionParallelNotSupported);
        }
        self.sessions.open(index, flags & CKF_RW_SESSION != 0)
    }

    pub fn close_session(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        let before = self.sessions.slot_of(h)?.0;
        let was_logged_in = self.logged_in(before);
        let slot = self.sessions.close(h)?;
        self.objects.close_session(slot, h)?;
        self.after_implicit_logout(slot, was_logged_in)
    }

    pub fn close_all_sessions(&self, id: CK_SLOT_ID) -> Result<()> {
        let (index, _) = self.slot(id)?;
        let was_logged_in = self.logged_in(index);
        for h in self.sessions.close_all(index)? {
            self.objects.close_session(index, h)?;
        }
        self.after_implicit_logout(index, was_logged_in)
    }

    /// Closing the last session logs the slot out: as after C_Logout, the handles to
    /// private objects become invalid for good.
    fn after_implicit_logout(&self, slot: usize, was_logged_in: bool) -> Result<()> {
        if was_logged_in && !self.logged_in(slot) {
            self.objects.reissue_private(slot)?;
        }
        Ok(())
    }

    pub fn session_info(&self, h: CK_SESSION_HANDLE) -> Result<CK_SESSION_INFO> {
        let (slot, read_write) = self.sessions.slot_of(h)?;
        let user = self.logged_in(slot);
        let state = match (read_write, user) {
            (false, false) => CKS_RO_PUBLIC_SESSION,
            (false, true) => CKS_RO_USER_FUNCTIONS,
            (true, false) => CKS_RW_PUBLIC_SESSION,
            (true, true) => CKS_RW_USER_FUNCTIONS,
        };
        Ok(CK_SESSION_INFO {
            slotID: CK_SLOT_ID::try_from(slot).map_err(|e| Error::Internal(e.to_string()))?,
            state,
            flags: CKF_SERIAL_SESSION | if read_write { CKF_RW_SESSION } else { 0 },
            ulDeviceError: 0,
        })
    }

    /// Login is per application (§5.6): it covers every session of the slot.
    pub fn login(&self, h: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &[u8]) -> Result<()> {
        let slot = self.sessions.slot_of(h)?.0;
        match user {
            CKU_USER => {}
            // No key here needs a per-operation login (CKA_ALWAYS_AUTHENTICATE is false).
            CKU_CONTEXT_SPECIFIC => return Err(Error::OperationNotInitialized),
            // The module has no security officer: tokens are set up by configuration.
            _ => return Err(Error::UserTypeInvalid),
        }
        if pin.len() > MAX_PIN_LEN {
            return Err(Error::PinLenRange);
        }
        let s = self.slots.get(slot).ok_or(Error::SlotIdInvalid)?;
        self.sessions.login(slot, || match &s.config.pin_hash {
            Some(hash) if !crate::config::verify_pin(pin, hash)? => {
                tracing::warn!(slot = %s.config.label, "C_Login: wrong PIN");
                Err(Error::PinIncorrect)
            }
            _ => Ok(()),
        })
    }

    pub fn logout(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        let slot = self.sessions.slot_of(h)?.0;
        self.sessions.logout(slot)?;
        // §5.6 C_Logout: the application's handles to private objects become invalid and
        // stay so after a new login; the objects get new handles.
        self.objects.reissue_private(slot)
    }

    // ----- objects (§5.7) -----

    fn object(&self, h: CK_OBJECT_HANDLE) -> Result<Arc<Object>> {
        self.objects.get(h, |slot| self.logged_in(slot))
    }

    /// The object, checked to belong to the session's slot.
    fn session_object(&self, slot: usize, h: CK_OBJECT_HANDLE) -> Result<Arc<Object>> {
        let o = self.object(h)?;
        if o.slot != slot {
            return Err(Error::ObjectHandleInvalid);
        }
        Ok(o)
    }

    pub fn attributes_of(
        &self,
        session: CK_SESSION_HANDLE,
        h: CK_OBJECT_HANDLE,
    ) -> Result<Arc<Object>> {
        let slot = self.sessions.slot_of(session)?.0;
        self.session_object(slot, h)
    }

    pub fn find_init(&self, h: CK_SESSION_HANDLE, template: &Template) -> Result<()> {
        let s = self.session(h)?;
        let slot = {
            let g = session::lock(&s)?;
            if g.find.is_some() {
                return Err(Error::OperationActive);
            }
            g.slot
        };
        let handles = self.objects.find(slot, template, self.logged_in(slot))?;
        let mut g = session::lock(&s)?;
        if g.find.is_some() {
            return Err(Error::OperationActive);
        }
        g.find = Some(FindOp {
            handles,
            position: 0,
        });
        Ok(())
    }

    pub fn find_next(&self, h: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>> {
        let s = self.session(h)?;
        let mut g = session::lock(&s)?;
        let f = g.find.as_mut().ok_or(Error::OperationNotInitialized)?;
        let end = f.handles.len().min(f.position.saturating_add(max));
        let out = f.handles.get(f.position..end).unwrap_or_default().to_vec();
        f.position = end;
        Ok(out)
    }

    pub fn find_final(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        let s = self.session(h)?;
        let mut g = session::lock(&s)?;
        g.find
            .take()
            .map(|_| ())
            .ok_or(Error::OperationNotInitialized)
    }

    /// Slot and read-write flag of a session, checking the session may change token
    /// objects.
    fn writable_session(&self, h: CK_SESSION_HANDLE, token: bool) -> Result<usize> {
        let (slot, read_write) = self.sessions.slot_of(h)?;
        if token && !read_write {
            return Err(Error::SessionReadOnly);
        }
        if token {
            let s = self.slots.get(slot).ok_or(Error::SlotIdInvalid)?;
            if !s.backend.writable() {
                return Err(Error::TokenWriteProtected);
            }
            if s.config.pin_hash.is_some() && !self.logged_in(slot) {
                return Err(Error::UserNotLoggedIn);
            }
        }
        Ok(slot)
    }

    pub fn set_attributes(
        &self,
        h: CK_SESSION_HANDLE,
        oh: CK_OBJECT_HANDLE,
        template: &Template,
    ) -> Result<()> {
        let slot = self.sessions.slot_of(h)?.0;
        let obj = self.session_object(slot, oh)?;
        let mut update = ObjectUpdate::default();
        for (t, v) in template {
            match *t {
                CKA_LABEL => {
                    let l = String::from_utf8(v.clone()).map_err(|_| {
                        Error::AttributeValueInvalid("CKA_LABEL must be UTF-8".into())
                    })?;
                    update.label = Some(l);
                }
                CKA_ID => update.id = Some(v.clone()),
                // Setting an attribute to the value it has is not a change.
                other if obj.attrs.get(&other) == Some(v) => {}
                _ => return Err(Error::AttributeReadOnly),
            }
        }
        if update == ObjectUpdate::default() {
            return Ok(());
        }
        if obj.owner.is_some() {
            let mut attrs = obj.attrs.clone();
            if let Some(l) = update.label {
                attrs.insert(CKA_LABEL, l.into_bytes());
            }
            if let Some(i) = update.id {
                attrs.insert(CKA_ID, i);
            }
            return self.objects.replace_session_object(&obj, attrs);
        }
        self.writable_session(h, true)?;
        let stable = match (&obj.kind, &obj.key) {
            (ObjectKind::Certificate, _) => obj.stable_id.clone(),
            (_, Some(k)) => k
                .record
                .as_ref()
                .ok_or(Error::ObjectHandleInvalid)?
                .stable_id
                .clone(),
            (_, None) => return Err(Error::ObjectHandleInvalid),
        };
        let backend = self.objects.backend(slot)?;
        backend.update(&stable, &update)?;
        self.objects.refresh(slot, true)
    }

    pub fn create_object(
        &self,
        h: CK_SESSION_HANDLE,
        template: &Template,
    ) -> Result<CK_OBJECT_HANDLE> {
        let t = TemplateView(template);
        let class = t
            .ulong(CKA_CLASS)?
            .ok_or(Error::TemplateIncomplete("CKA_CLASS"))?;
        let token = t.bool(CKA_TOKEN)?.unwrap_or(false);
        let slot = self.writable_session(h, token)?;
        let update = ObjectUpdate {
            label: t.string(CKA_LABEL)?,
            id: t.bytes(CKA_ID).map(<[u8]>::to_vec),
        };
        match class {
            CKO_CERTIFICATE => {
                if let Some(ct) = t.ulong(CKA_CERTIFICATE_TYPE)?
                    && ct != CKC_X_509
                {
                    return Err(Error::AttributeValueInvalid(format!(
                        "CKA_CERTIFICATE_TYPE {ct:#x}: only CKC_X_509"
                    )));
                }
                let der = t.bytes(CKA_VALUE).ok_or(Error::TemplateIncomplete("CKA_VALUE"))?;
                let record = CertRecord {
                    stable_id: String::new(),
                    label: update.label.clone().unwrap_or_default(),
                    id: update.id.clone(),
                    der: der.to_vec(),
                    authority: t.ulong(CKA_CERTIFICATE_CATEGORY)? == Some(2),
                    managed: false,
                };
                // Parses and validates the DER before anything is stored.
                let (attrs, facts) = attributes::certificate(&record, token, true, None)?;
                if !token {
                    let session = h;
                    return self.objects.add_session_object(slot, session, ObjectKind::Certificate, attrs, None);
                }
                let key = self.objects.key_record_for_spki(slot, &facts.spki_der)?;
                let backend = self.objects.backend(slot)?;
                let stored = backend.store_certificate(der, key.as_ref(), &update)?;
                self.objects.refresh(slot, true)?;
                self.objects.handle_of(slot, &stored.stable_id)
            }
            CKO_PUBLIC_KEY if !token => {
                let spki = public_key_from_template(&t)?;
                let public = PublicInfo::from_spki(&spki)?;
                let label = update.label.clone().unwrap_or_default();
                let id = match &update.id {
                    Some(i) => i.clone(),
                    None => attributes::key_identifier(&spki)?,
                };
                let record = KeyRecord {
                    stable_id: String::new(),
                    name: label.clone(),
                    version: None,
                    current: true,
                    label: None,
                    id: None,
                    spki_der: spki,
                    usage: KeyUsage {
                        sign: t.bool(CKA_VERIFY)?.unwrap_or(true),
                        decrypt: t.bool(CKA_ENCRYPT)?.unwrap_or(true),
                        unwrap: false,
                    },
                    local: false,
                    backend_key_id: String::new(),
                };
                let mut attrs = attributes::public_key(&record, &public, &label, &id, t.bytes(CKA_SUBJECT).unwrap_or_default(), true)?;
                attrs.insert(CKA_TOKEN, attributes::bool_(false));
                let key = Arc::new(KeyObject { record: None, public });
                self.objects.add_session_object(slot, h, ObjectKind::PublicKey, attrs, Some(key))
            }
            CKO_PUBLIC_KEY => Err(Error::TemplateInconsistent(
                "token public keys come from the store's private keys; create it with CKA_TOKEN false".into(),
            )),
            other => Err(Error::AttributeValueInvalid(format!(
                "CKA_CLASS {other:#x}: C_CreateObject takes certificates (and session public keys)"
            ))),
        }
    }

    pub fn destroy_object(&self, h: CK_SESSION_HANDLE, oh: CK_OBJECT_HANDLE) -> Result<()> {
        let slot = self.sessions.slot_of(h)?.0;
        let obj = self.session_object(slot, oh)?;
        if obj.owner.is_some() {
            return self.objects.remove(&obj);
        }
        self.writable_session(h, true)?;
        let backend = self.objects.backend(slot)?;
        match obj.kind {
            ObjectKind::Certificate => backend.delete_certificate(&obj.stable_id)?,
            ObjectKind::PrivateKey => {
                let record = obj
                    .key()?
                    .record
                    .as_ref()
                    .ok_or(Error::ObjectHandleInvalid)?;
                self.key_use(slot, record, "delete", "", || {
                    backend.delete_key(&record.stable_id)
                })?;
            }
            ObjectKind::PublicKey => {
                return Err(Error::ActionProhibited(
                    "a public key is derived from its private key in the store; destroy the private key".into(),
                ));
            }
            // Secret keys exist only as session objects (removed above).
            ObjectKind::SecretKey => return Err(Error::ObjectHandleInvalid),
        }
        self.objects.refresh(slot, true)
    }

    pub fn generate_key_pair(
        &self,
        h: CK_SESSION_HANDLE,
        m: &Mechanism,
        public: &Template,
        private: &Template,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let (pt, kt) = (TemplateView(public), TemplateView(private));
        for t in [&pt, &kt] {
            if t.bool(CKA_TOKEN)? == Some(false) {
                return Err(Error::TemplateInconsistent(
                    "key pairs live in the store: CKA_TOKEN must be true".into(),
                ));
            }
        }
        if kt.bool(CKA_EXTRACTABLE)? == Some(true) || kt.bool(CKA_SENSITIVE)? == Some(false) {
            return Err(Error::TemplateInconsistent(
                "private keys never leave the store: CKA_EXTRACTABLE false, CKA_SENSITIVE true"
                    .into(),
            ));
        }
        let spec = match m.mechanism {
            CKM_RSA_PKCS_KEY_PAIR_GEN => {
                let bits = pt
                    .ulong(CKA_MODULUS_BITS)?
                    .ok_or(Error::TemplateIncomplete("CKA_MODULUS_BITS"))?;
                // CK_ULONG is u64 on Unix and u32 on Windows, where this conversion is
                // the identity.
                #[allow(clippy::useless_conversion)]
                let bits = match bits {
                    2048 | 3072 | 4096 => u32::try_from(bits).map_err(|_| Error::KeySizeRange)?,
                    _ => return Err(Error::KeySizeRange),
                };
                let public_exponent = match pt.bytes(CKA_PUBLIC_EXPONENT) {
                    None => vec![1, 0, 1],
                    Some(e) => check_exponent(e)?,
                };
                KeySpec::Rsa {
                    bits,
                    public_exponent,
                }
            }
            CKM_EC_KEY_PAIR_GEN => {
                let params = pt
                    .bytes(CKA_EC_PARAMS)
                    .ok_or(Error::TemplateIncomplete("CKA_EC_PARAMS"))?;
                KeySpec::Ec(curve_from_params(params)?)
            }
            _ => return Err(Error::MechanismInvalid),
        };
        let label = match kt.string(CKA_LABEL)? {
            Some(l) => Some(l),
            None => pt.string(CKA_LABEL)?,
        };
        let id = kt.bytes(CKA_ID).or(pt.bytes(CKA_ID)).map(<[u8]>::to_vec);
        let slot = self.writable_session(h, true)?;
        let backend = self.objects.backend(slot)?;
        let name = label.clone().unwrap_or_else(|| "key".into());
        // Uses the template refuses are kept; those it asks for are what the key can do.
        let usage = KeyUsage {
            sign: kt.bool(CKA_SIGN)?.unwrap_or(true),
            decrypt: kt.bool(CKA_DECRYPT)?.unwrap_or(true),
            unwrap: kt.bool(CKA_UNWRAP)?.unwrap_or(true),
        };
        let started = std::time::Instant::now();
        let generated = backend.generate_key(&name, &spec, &ObjectUpdate { label, id }, usage);
        // Recorded under the requested name when nothing was created.
        let (key_name, version) = match &generated {
            Ok(r) => (r.name.clone(), r.version.clone()),
            Err(_) => (name.clone(), None),
        };
        self.telemetry.key_use(&KeyUse {
            slot: self.slots.get(slot).map_or("", |s| s.config.label.as_str()),
            key: &key_name,
            version: version.as_deref(),
            operation: "generate",
            mechanism: &format!("{spec:?}"),
            result: &generated.as_ref().map(|_| ()).map_err(Clone::clone),
            latency: started.elapsed(),
        });
        let record = generated?;
        self.objects.refresh(slot, true)?;
        let public = self
            .objects
            .handle_of(slot, &format!("{}#public", record.stable_id))?;
        let private = self
            .objects
            .handle_of(slot, &format!("{}#private", record.stable_id))?;
        Ok((public, private))
    }

    // ----- unwrap (§5.18) -----

    /// C_UnwrapKey: RSA PKCS#1 v1.5 or OAEP with a private key permitted CKA_UNWRAP, done
    /// by the key's store (Key Vault: unwrapKey), giving a session secret key
    /// (CKK_GENERIC_SECRET or CKK_AES). Its value can be read (CKA_VALUE) unless the
    /// template makes it CKA_SENSITIVE or not CKA_EXTRACTABLE; this module has no
    /// secret-key mechanisms, so reading it is the one use of such a key here.
    pub fn unwrap_key(
        &self,
        h: CK_SESSION_HANDLE,
        m: &Mechanism,
        unwrapping_key: CK_OBJECT_HANDLE,
        wrapped: &[u8],
        template: &Template,
    ) -> Result<CK_OBJECT_HANDLE> {
        let slot = self.sessions.slot_of(h)?.0;
        let t = TemplateView(template);
        match t.ulong(CKA_CLASS)? {
            Some(CKO_SECRET_KEY) => {}
            Some(c) => {
                return Err(Error::TemplateInconsistent(format!(
                    "CKA_CLASS {c:#x}: C_UnwrapKey makes secret keys (CKO_SECRET_KEY) only"
                )));
            }
            None => return Err(Error::TemplateIncomplete("CKA_CLASS")),
        }
        let key_type = t
            .ulong(CKA_KEY_TYPE)?
            .ok_or(Error::TemplateIncomplete("CKA_KEY_TYPE"))?;
        if key_type != CKK_GENERIC_SECRET && key_type != CKK_AES {
            return Err(Error::TemplateInconsistent(format!(
                "CKA_KEY_TYPE {key_type:#x}: CKK_GENERIC_SECRET or CKK_AES"
            )));
        }
        if t.bool(CKA_TOKEN)? == Some(true) {
            return Err(Error::TemplateInconsistent(
                "CKA_TOKEN true: unwrapped keys are session objects here".into(),
            ));
        }
        if t.bytes(CKA_VALUE).is_some() {
            return Err(Error::TemplateInconsistent(
                "CKA_VALUE: the value comes from the wrapped key".into(),
            ));
        }
        let private = t.bool(CKA_PRIVATE)?.unwrap_or(false);
        if private && !self.logged_in(slot) {
            return Err(Error::UserNotLoggedIn);
        }
        let scheme = CryptScheme::from_mechanism(m)?;
        let key = self
            .operation_key(slot, unwrapping_key, CKA_UNWRAP, None, KeyKind::Rsa)
            .map_err(|e| match e {
                Error::KeyHandleInvalid | Error::ObjectHandleInvalid => {
                    Error::UnwrappingKeyHandleInvalid
                }
                Error::KeyTypeInconsistent => Error::UnwrappingKeyTypeInconsistent,
                other => other,
            })?;
        let material = key.key()?;
        let record = material
            .record
            .as_ref()
            .ok_or(Error::UnwrappingKeyHandleInvalid)?;
        let backend = self.objects.backend(slot)?;
        backend.check_decrypt(record, &scheme.0)?;
        if wrapped.len() != material.public.size_bytes {
            return Err(Error::WrappedKeyLenRange);
        }
        let value = self
            .key_use(slot, record, "unwrap", &scheme.0.describe(), || {
                backend.unwrap_key(record, &scheme.0, wrapped)
            })
            .map_err(|e| match e {
                Error::EncryptedDataInvalid => Error::WrappedKeyInvalid,
                Error::EncryptedDataLenRange => Error::WrappedKeyLenRange,
                Error::ObjectGone(m) => {
                    tracing::warn!("{m}");
                    Error::UnwrappingKeyHandleInvalid
                }
                other => other,
            })?;
        if value.is_empty() || (key_type == CKK_AES && ![16, 24, 32].contains(&value.len())) {
            return Err(Error::WrappedKeyInvalid);
        }
        if let Some(len) = t.ulong(CKA_VALUE_LEN)?
            && usize::try_from(len).ok() != Some(value.len())
        {
            return Err(Error::TemplateInconsistent(format!(
                "CKA_VALUE_LEN {len}: the unwrapped key has {} bytes",
                value.len()
            )));
        }
        let sensitive = t.bool(CKA_SENSITIVE)?.unwrap_or(false);
        let extractable = t.bool(CKA_EXTRACTABLE)?.unwrap_or(true);
        let len = CK_ULONG::try_from(value.len()).map_err(|_| Error::WrappedKeyInvalid)?;
        let mut a = attributes::Attributes::new();
        a.insert(CKA_CLASS, attributes::ulong(CKO_SECRET_KEY));
        a.insert(CKA_KEY_TYPE, attributes::ulong(key_type));
        a.insert(CKA_TOKEN, attributes::bool_(false));
        a.insert(CKA_PRIVATE, attributes::bool_(private));
        a.insert(CKA_MODIFIABLE, attributes::bool_(false));
        a.insert(CKA_COPYABLE, attributes::bool_(false));
        a.insert(CKA_DESTROYABLE, attributes::bool_(true));
        a.insert(
            CKA_LABEL,
            t.string(CKA_LABEL)?.unwrap_or_default().into_bytes(),
        );
        a.insert(CKA_ID, t.bytes(CKA_ID).unwrap_or_default().to_vec());
        a.insert(CKA_START_DATE, Vec::new());
        a.insert(CKA_END_DATE, Vec::new());
        a.insert(CKA_LOCAL, attributes::bool_(false));
        a.insert(
            CKA_KEY_GEN_MECHANISM,
            attributes::ulong(CK_UNAVAILABLE_INFORMATION),
        );
        a.insert(CKA_ALLOWED_MECHANISMS, Vec::new());
        for flag in [
            CKA_ENCRYPT,
            CKA_DECRYPT,
            CKA_SIGN,
            CKA_VERIFY,
            CKA_WRAP,
            CKA_UNWRAP,
            CKA_DERIVE,
        ] {
            a.insert(flag, attributes::bool_(t.bool(flag)?.unwrap_or(false)));
        }
        a.insert(CKA_SENSITIVE, attributes::bool_(sensitive));
        a.insert(CKA_EXTRACTABLE, attributes::bool_(extractable));
        a.insert(CKA_ALWAYS_SENSITIVE, attributes::bool_(false));
        a.insert(CKA_NEVER_EXTRACTABLE, attributes::bool_(false));
        a.insert(CKA_WRAP_WITH_TRUSTED, attributes::bool_(false));
        a.insert(CKA_TRUSTED, attributes::bool_(false));
        a.insert(CKA_VALUE_LEN, attributes::ulong(len));
        let hidden: &'static [CK_ATTRIBUTE_TYPE] = if sensitive || !extractable {
            // The value of a sensitive or unextractable key is never revealed; with no
            // secret-key mechanism here, it is not kept either.
            &[CKA_VALUE]
        } else {
            a.insert(CKA_VALUE, value);
            &[]
        };
        self.objects.add_session_secret(slot, h, a, hidden)
    }

    // ----- sign and verify (§5.13, §5.14) -----

    pub fn sign_init(
        &self,
        side: SignSide,
        h: CK_SESSION_HANDLE,
        m: Option<&Mechanism>,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        self.start_operation(
            h,
            m,
            |s| side.operation(s),
            |slot, m| {
                let scheme = SignScheme::from_mechanism(m)?;
                // Verification with the private key's handle is accepted: it carries the
                // public key too.
                let (private_flag, public_flag) = match side {
                    SignSide::Sign => (CKA_SIGN, None),
                    SignSide::Verify => (CKA_SIGN, Some(CKA_VERIFY)),
                };
                let key =
                    self.operation_key(slot, key, private_flag, public_flag, scheme.key_kind())?;
                scheme.check_key(&key.key()?.public)?;
                self.check_backend_sign(&key, &scheme)?;
                let hashing = scheme.prehash.map(Hashing::new).transpose()?;
                Ok(SignOp {
                    key,
                    scheme,
                    hashing,
                    multi_part: false,
                })
            },
        )
    }

    /// Lets the store refuse at C_SignInit what it cannot sign.
    fn check_backend_sign(&self, key: &Object, scheme: &SignScheme) -> Result<()> {
        let Some(record) = &key.key()?.record else {
            return Ok(());
        };
        if key.kind != ObjectKind::PrivateKey {
            return Ok(());
        }
        let request = match &scheme.kind {
            SignKind::RsaPkcs1 => crate::backend::SignRequest::RsaPkcs1 {
                hash: scheme.prehash,
            },
            SignKind::RsaPss {
                hash,
                mgf_hash,
                salt_len,
            } => crate::backend::SignRequest::RsaPss {
                hash: *hash,
                mgf_hash: *mgf_hash,
                salt_len: *salt_len,
            },
            SignKind::Ecdsa => crate::backend::SignRequest::Ecdsa,
        };
        self.objects.backend(key.slot)?.check_sign(record, &request)
    }

    /// The common part of every *Init: a NULL mechanism cancels; an active operation of
    /// the kind is `CKR_OPERATION_ACTIVE`; the new operation is built with no session lock
    /// held and installed if the slot is still free.
    fn start_operation<T>(
        &self,
        h: CK_SESSION_HANDLE,
        m: Option<&Mechanism>,
        select: impl Fn(&mut session::Session) -> &mut Option<T>,
        build: impl FnOnce(usize, &Mechanism) -> Result<T>,
    ) -> Result<()> {
        let s = self.session(h)?;
        let slot = {
            let mut g = session::lock(&s)?;
            let slot = g.slot;
            let op = select(&mut g);
            if m.is_none() {
                // v3.0: a NULL mechanism cancels the active operation.
                *op = None;
                return Ok(());
            }
            if op.is_some() {
                return Err(Error::OperationActive);
            }
            slot
        };
        let m = m.ok_or(Error::ArgumentsBad("mechanism"))?;
        let new = build(slot, m)?;
        let mut g = session::lock(&s)?;
        let op = select(&mut g);
        if op.is_some() {
            return Err(Error::OperationActive);
        }
        *op = Some(new);
        Ok(())
    }

    /// The key object for an operation: a private key permitted `private_flag`, or (when
    /// `public_flag` is given) a public key permitted that, of the algorithm the mechanism
    /// needs.
    fn operation_key(
        &self,
        slot: usize,
        key: CK_OBJECT_HANDLE,
        private_flag: CK_ATTRIBUTE_TYPE,
        public_flag: Option<CK_ATTRIBUTE_TYPE>,
        kind: KeyKind,
    ) -> Result<Arc<Object>> {
        let obj = self.session_object(slot, key).map_err(key_handle)?;
        let material = obj.key().map_err(key_handle)?;
        let permitted = match (obj.kind, public_flag) {
            (ObjectKind::PrivateKey, _) => obj.flag(private_flag),
            (ObjectKind::PublicKey, Some(f)) => obj.flag(f),
            _ => false,
        };
        if !permitted {
            return Err(Error::KeyFunctionNotPermitted);
        }
        if material.public.kind != kind {
            return Err(Error::KeyTypeInconsistent);
        }
        Ok(obj)
    }

    /// Takes the sign/verify operation out of the session (ending it) unless `keep`
    /// decides otherwise from the operation.
    fn take_sign_op(
        &self,
        side: SignSide,
        h: CK_SESSION_HANDLE,
        check: impl FnOnce(&SignOp) -> Result<Option<Output>>,
    ) -> Result<std::result::Result<SignOp, Output>> {
        let s = self.session(h)?;
        let mut g = session::lock(&s)?;
        let slot_ref = side.operation(&mut g);
        let op = slot_ref.as_ref().ok_or(Error::OperationNotInitialized)?;
        match check(op) {
            Ok(Some(out)) => Ok(Err(out)),
            Ok(None) => slot_ref
                .take()
                .map(Ok)
                .ok_or(Error::OperationNotInitialized),
            Err(e) => {
                *slot_ref = None;
                Err(e)
            }
        }
    }

    pub fn sign(
        &self,
        h: CK_SESSION_HANDLE,
        data: &[u8],
        capacity: Option<usize>,
    ) -> Result<Output> {
        let op = match self.take_sign_op(SignSide::Sign, h, |op| {
            if op.multi_part {
                return Err(Error::OperationActive);
            }
            Ok(deliver(op.key.key()?.public.signature_len(), capacity))
        })? {
            Ok(op) => op,
            Err(out) => return Ok(out),
        };
        let input = match op.hashing {
            Some(mut hashing) => {
                hashing.update(data)?;
                hashing.finish()?
            }
            None => data.to_vec(),
        };
        self.sign_prepared(&op.key, &op.scheme, &input)
    }

    fn sign_prepared(&self, key: &Object, scheme: &SignScheme, input: &[u8]) -> Result<Output> {
        let material = key.key()?;
        let record = material.record.as_ref().ok_or(Error::KeyHandleInvalid)?;
        let (request, data) = scheme.request(input, &material.public)?;
        let backend = self.objects.backend(key.slot)?;
        let signature = self.key_use(key.slot, record, "sign", &request.describe(), || {
            let signature = backend.sign(record, &request, &data)?;
            // A store's answer is checked before it reaches the caller: a wrong signature
            // is worse than an error.
            mechanism::check_signature(&material.public, &request, &data, &signature).map_err(|e| {
                tracing::error!(key = %record.stable_id, error = %e, "the store returned a signature that does not verify");
                Error::Backend(format!("signature from {} did not verify", backend.kind()))
            })?;
            Ok(signature)
        })?;
        Ok(Output::Data(signature))
    }

    pub fn sign_update(&self, side: SignSide, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        let mut g = session::lock(&s)?;
        let slot_ref = side.operation(&mut g);
        let op = slot_ref.as_mut().ok_or(Error::OperationNotInitialized)?;
        let result = match op.hashing.as_mut() {
            // Single-part mechanisms (CKM_RSA_PKCS, CKM_ECDSA, CKM_RSA_PKCS_PSS).
            None => Err(Error::FunctionNotSupported),
            Some(hashing) => hashing.update(data),
        };
        match result {
            Ok(()) => {
                op.multi_part = true;
                Ok(())
            }
            Err(e) => {
                *slot_ref = None;
                Err(e)
            }
        }
    }

    pub fn sign_final(&self, h: CK_SESSION_HANDLE, capacity: Option<usize>) -> Result<Output> {
        let op = match self.take_sign_op(SignSide::Sign, h, |op| {
            if op.hashing.is_none() {
                return Err(Error::FunctionNotSupported);
            }
            Ok(deliver(op.key.key()?.public.signature_len(), capacity))
        })? {
            Ok(op) => op,
            Err(out) => return Ok(out),
        };
        let mut hashing = op.hashing.ok_or(Error::OperationNotInitialized)?;
        let digest = hashing.finish()?;
        self.sign_prepared(&op.key, &op.scheme, &digest)
    }

    pub fn verify(&self, h: CK_SESSION_HANDLE, data: &[u8], signature: &[u8]) -> Result<()> {
        let op = match self.take_sign_op(SignSide::Verify, h, |op| {
            if op.multi_part {
                return Err(Error::OperationActive);
            }
            Ok(None)
        })? {
            Ok(op) => op,
            Err(_) => return Err(Error::Internal("verify produced output".into())),
        };
        let input = match op.hashing {
            Some(mut hashing) => {
                hashing.update(data)?;
                hashing.finish()?
            }
            None => data.to_vec(),
        };
        op.scheme.verify(&op.key.key()?.public, &input, signature)
    }

    pub fn verify_final(&self, h: CK_SESSION_HANDLE, signature: &[u8]) -> Result<()> {
        let op = match self.take_sign_op(SignSide::Verify, h, |_| Ok(None))? {
            Ok(op) => op,
            Err(_) => return Err(Error::Internal("verify produced output".into())),
        };
        let mut hashing = op.hashing.ok_or(Error::FunctionNotSupported)?;
        let digest = hashing.finish()?;
        op.scheme.verify(&op.key.key()?.public, &digest, signature)
    }

    // ----- encrypt and decrypt (§5.10, §5.11) -----

    pub fn crypt_init(
        &self,
        side: CryptSide,
        h: CK_SESSION_HANDLE,
        m: Option<&Mechanism>,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        self.start_operation(
            h,
            m,
            |s| side.operation(s),
            |slot, m| {
                let scheme = CryptScheme::from_mechanism(m)?;
                let public_flag = match side {
                    CryptSide::Encrypt => Some(CKA_ENCRYPT),
                    CryptSide::Decrypt => None,
                };
                let key = self.operation_key(slot, key, CKA_DECRYPT, public_flag, KeyKind::Rsa)?;
                if side == CryptSide::Decrypt
                    && let Some(record) = &key.key()?.record
                {
                    self.objects
                        .backend(slot)?
                        .check_decrypt(record, &scheme.0)?;
                }
                Ok(CryptOp {
                    key,
                    scheme,
                    buffer: Vec::new(),
                    multi_part: false,
                    pending: None,
                })
            },
        )
    }

    pub fn crypt_update(
        &self,
        side: CryptSide,
        h: CK_SESSION_HANDLE,
        data: &[u8],
    ) -> Result<Output> {
        let s = self.session(h)?;
        let mut g = session::lock(&s)?;
        let slot_ref = side.operation(&mut g);
        let op = slot_ref.as_mut().ok_or(Error::OperationNotInitialized)?;
        // RSA is single-block: updates collect input, C_*Final processes it.
        let limit = op.key.key()?.public.size_bytes;
        if op.buffer.len().saturating_add(data.len()) > limit {
            *slot_ref = None;
            return Err(match side {
                CryptSide::Encrypt => Error::DataLenRange,
                CryptSide::Decrypt => Error::EncryptedDataLenRange,
            });
        }
        op.buffer.extend_from_slice(data);
        op.multi_part = true;
        Ok(Output::Data(Vec::new()))
    }

    /// C_Encrypt / C_Decrypt (`input: Some`) and C_EncryptFinal / C_DecryptFinal (`None`).
    pub fn crypt(
        &self,
        side: CryptSide,
        h: CK_SESSION_HANDLE,
        input: Option<&[u8]>,
        capacity: Option<usize>,
    ) -> Result<Output> {
        let s = self.session(h)?;
        let op = {
            let mut g = session::lock(&s)?;
            let slot_ref = side.operation(&mut g);
            let op = slot_ref.as_mut().ok_or(Error::OperationNotInitialized)?;
            let checked = (|| {
                if input.is_some() && op.multi_part {
                    return Err(Error::OperationActive);
                }
                if let Some(p) = &op.pending {
                    return Ok(deliver(p.len(), capacity));
                }
                let public = &op.key.key()?.public;
                let data = input.unwrap_or(&op.buffer);
                let bound = match side {
                    CryptSide::Encrypt => public.size_bytes,
                    CryptSide::Decrypt => {
                        if data.len() != public.size_bytes {
                            return Err(Error::EncryptedDataLenRange);
                        }
                        op.scheme.max_plaintext(public)
                    }
                };
                Ok(match capacity {
                    None => Some(Output::Length(bound)),
                    // Encryption output length is exact; a short buffer needs no work.
                    Some(c) if side == CryptSide::Encrypt && c < bound => {
                        Some(Output::TooSmall(bound))
                    }
                    _ => None,
                })
            })();
            match checked {
                Ok(Some(out)) => return Ok(out),
                Ok(None) => slot_ref.take().ok_or(Error::OperationNotInitialized)?,
                Err(e) => {
                    *slot_ref = None;
                    return Err(e);
                }
            }
        };
        let result = match (&op.pending, side) {
            (Some(p), _) => p.clone(),
            (None, CryptSide::Encrypt) => op
                .scheme
                .encrypt(&op.key.key()?.public, input.unwrap_or(&op.buffer))?,
            (None, CryptSide::Decrypt) => {
                let material = op.key.key()?;
                let record = material.record.as_ref().ok_or(Error::KeyHandleInvalid)?;
                let backend = self.objects.backend(op.key.slot)?;
                self.key_use(
                    op.key.slot,
                    record,
                    "decrypt",
                    &op.scheme.0.describe(),
                    || backend.decrypt(record, &op.scheme.0, input.unwrap_or(&op.buffer)),
                )?
            }
        };
        if let Some(c) = capacity
            && c < result.len()
        {
            // Keep the result so that the retry with a larger buffer does not decrypt again.
            let len = result.len();
            let mut g = session::lock(&s)?;
            if g.decrypt.is_none() {
                g.decrypt = Some(CryptOp {
                    pending: Some(result),
                    ..op
                });
            }
            return Ok(Output::TooSmall(len));
        }
        Ok(Output::Data(result))
    }

    // ----- digest (§5.12) -----

    pub fn digest_init(&self, h: CK_SESSION_HANDLE, m: Option<&Mechanism>) -> Result<()> {
        self.start_operation(
            h,
            m,
            |s| &mut s.digest,
            |_, m| {
                Ok(DigestOp {
                    hashing: Hashing::new(mechanism::digest_hash(m)?)?,
                    multi_part: false,
                })
            },
        )
    }

    /// C_Digest (`data: Some`) and C_DigestFinal (`None`).
    pub fn digest(
        &self,
        h: CK_SESSION_HANDLE,
        data: Option<&[u8]>,
        capacity: Option<usize>,
    ) -> Result<Output> {
        let s = self.session(h)?;
        let mut g = session::lock(&s)?;
        let op = g.digest.as_mut().ok_or(Error::OperationNotInitialized)?;
        if data.is_some() && op.multi_part {
            g.digest = None;
            return Err(Error::OperationActive);
        }
        if let Some(out) = deliver(op.hashing.alg.output_len(), capacity) {
            return Ok(out);
        }
        let mut op = g.digest.take().ok_or(Error::OperationNotInitialized)?;
        if let Some(d) = data {
            op.hashing.update(d)?;
        }
        Ok(Output::Data(op.hashing.finish()?))
    }

    pub fn digest_update(&self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        let mut g = session::lock(&s)?;
        let op = g.digest.as_mut().ok_or(Error::OperationNotInitialized)?;
        op.multi_part = true;
        if let Err(e) = op.hashing.update(data) {
            g.digest = None;
            return Err(e);
        }
        Ok(())
    }

    // ----- misc -----

    pub fn generate_random(&self, h: CK_SESSION_HANDLE, out: &mut [u8]) -> Result<()> {
        let slot = self.sessions.slot_of(h)?.0;
        if let Some(bytes) = self.objects.backend(slot)?.random(out.len()) {
            let bytes = bytes?;
            if bytes.len() != out.len() {
                return Err(Error::Backend(format!(
                    "the store's random service gave {} bytes, not {}",
                    bytes.len(),
                    out.len()
                )));
            }
            out.copy_from_slice(&bytes);
            return Ok(());
        }
        getrandom::fill(out).map_err(|e| {
            tracing::error!(error = %e, "the operating system's random source failed");
            Error::RandomNoRng
        })
    }

    /// C_SessionCancel (v3.0): ends the operations named by `flags`.
    pub fn session_cancel(&self, h: CK_SESSION_HANDLE, flags: CK_FLAGS) -> Result<()> {
        let s = self.session(h)?;
        let mut g = session::lock(&s)?;
        if flags & CKF_SIGN != 0 {
            g.sign = None;
        }
        if flags & CKF_VERIFY != 0 {
            g.verify = None;
        }
        if flags & CKF_ENCRYPT != 0 {
            g.encrypt = None;
        }
        if flags & CKF_DECRYPT != 0 {
            g.decrypt = None;
        }
        if flags & CKF_DIGEST != 0 {
            g.digest = None;
        }
        if flags & CKF_FIND_OBJECTS != 0 {
            g.find = None;
        }
        Ok(())
    }

    pub fn check_session(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        self.session(h).map(|_| ())
    }
}

const MANUFACTURER: &str = "identify-pkcs11";

fn version() -> CK_VERSION {
    let parse = |s: &str| s.parse::<u8>().unwrap_or(0);
    CK_VERSION {
        major: parse(env!("CARGO_PKG_VERSION_MAJOR")),
        minor: parse(env!("CARGO_PKG_VERSION_MINOR")),
    }
}

/// Blank-padded fixed-width PKCS#11 text, cut at a character boundary.
pub fn pad(field: &mut [u8], text: &str) {
    field.fill(b' ');
    let mut end = text.len().min(field.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    field[..end].copy_from_slice(&text.as_bytes()[..end]);
}

fn attributes_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// An object handle that is not a key, in a key position, is a key handle error.
fn key_handle(e: Error) -> Error {
    match e {
        Error::ObjectHandleInvalid => Error::KeyHandleInvalid,
        other => other,
    }
}

fn check_exponent(e: &[u8]) -> Result<Vec<u8>> {
    let trimmed: Vec<u8> = e.iter().copied().skip_while(|b| *b == 0).collect();
    let odd = trimmed.last().is_some_and(|b| b & 1 == 1);
    if trimmed.is_empty() || trimmed.len() > 8 || !odd || trimmed == [1] {
        return Err(Error::AttributeValueInvalid(
            "CKA_PUBLIC_EXPONENT must be odd and > 1 (65537 is usual)".into(),
        ));
    }
    Ok(trimmed)
}

fn curve_from_params(params: &[u8]) -> Result<Curve> {
    use x509_cert::der::Decode;
    let oid = x509_cert::der::asn1::ObjectIdentifier::from_der(params).map_err(|_| {
        Error::AttributeValueInvalid("CKA_EC_PARAMS must be a DER named-curve OID".into())
    })?;
    match oid.to_string().as_str() {
        "1.2.840.10045.3.1.7" => Ok(Curve::P256),
        "1.3.132.0.34" => Ok(Curve::P384),
        "1.3.132.0.35" => Ok(Curve::P521),
        other => Err(Error::AttributeValueInvalid(format!(
            "curve {other} (P-256, P-384 and P-521 are supported)"
        ))),
    }
}

/// A DER SubjectPublicKeyInfo from a public-key template (RSA modulus + exponent, or EC
/// params + point).
fn public_key_from_template(t: &TemplateView<'_>) -> Result<Vec<u8>> {
    let key_type = t
        .ulong(CKA_KEY_TYPE)?
        .ok_or(Error::TemplateIncomplete("CKA_KEY_TYPE"))?;
    let pkey = match key_type {
        CKK_RSA => {
            let n = t
                .bytes(CKA_MODULUS)
                .ok_or(Error::TemplateIncomplete("CKA_MODULUS"))?;
            let e = t
                .bytes(CKA_PUBLIC_EXPONENT)
                .ok_or(Error::TemplateIncomplete("CKA_PUBLIC_EXPONENT"))?;
            let rsa = openssl::rsa::Rsa::from_public_components(
                openssl::bn::BigNum::from_slice(n)?,
                openssl::bn::BigNum::from_slice(e)?,
            )?;
            openssl::pkey::PKey::from_rsa(rsa)?
        }
        CKK_EC => {
            let curve = curve_from_params(
                t.bytes(CKA_EC_PARAMS)
                    .ok_or(Error::TemplateIncomplete("CKA_EC_PARAMS"))?,
            )?;
            let point = t
                .bytes(CKA_EC_POINT)
                .ok_or(Error::TemplateIncomplete("CKA_EC_POINT"))?;
            // CKA_EC_POINT is a DER OCTET STRING; some callers give the raw point.
            use x509_cert::der::Decode;
            let raw = x509_cert::der::asn1::OctetStringRef::from_der(point)
                .map(|o| o.as_bytes().to_vec())
                .unwrap_or_else(|_| point.to_vec());
            let group = openssl::ec::EcGroup::from_curve_name(curve.nid())?;
            let mut ctx = openssl::bn::BigNumContext::new()?;
            let p = openssl::ec::EcPoint::from_bytes(&group, &raw, &mut ctx).map_err(|_| {
                Error::AttributeValueInvalid("CKA_EC_POINT is not a point on the curve".into())
            })?;
            openssl::pkey::PKey::from_ec_key(openssl::ec::EcKey::from_public_key(&group, &p)?)?
        }
        other => {
            return Err(Error::AttributeValueInvalid(format!(
                "CKA_KEY_TYPE {other:#x}"
            )));
        }
    };
    Ok(pkey.public_key_to_der()?)
}

/// Typed reads of a caller's template.
struct TemplateView<'a>(&'a Template);

impl TemplateView<'_> {
    fn bytes(&self, t: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(a, _)| *a == t)
            .map(|(_, v)| v.as_slice())
    }
    fn ulong(&self, t: CK_ATTRIBUTE_TYPE) -> Result<Option<CK_ULONG>> {
        self.bytes(t).map(read_ulong).transpose()
    }
    fn bool(&self, t: CK_ATTRIBUTE_TYPE) -> Result<Option<bool>> {
        self.bytes(t).map(read_bool).transpose()
    }
    fn string(&self, t: CK_ATTRIBUTE_TYPE) -> Result<Option<String>> {
        self.bytes(t)
            .map(|v| {
                String::from_utf8(v.to_vec()).map_err(|_| {
                    Error::AttributeValueInvalid(format!("attribute {t:#x} must be UTF-8"))
                })
            })
            .transpose()
    }
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
