//! Object writes (§5.7, §5.14, §5.18): C_SetAttributeValue, C_CreateObject,
//! C_DestroyObject, C_GenerateKeyPair and C_UnwrapKey. Session objects stay in the object
//! cache; token objects are written to the slot's store (with no lock held) and the slot is
//! listed again.

use super::Module;
use crate::backend::{CertRecord, KeyRecord, KeySpec, KeyUsage, ObjectUpdate};
use crate::crypto::{KeyKind, PublicInfo};
use crate::error::{Error, Result};
use crate::mechanism::{CryptScheme, Mechanism};
use crate::object::attributes;
use crate::object::template::{
    Template, TemplateView, check_exponent, curve_from_params, public_key_from_template,
};
use crate::object::{AttrLookup, KeyObject, ObjectKind};
use crate::telemetry::KeyUse;
use cryptoki_sys::*;
use std::sync::Arc;

impl Module {
    /// Slot and read-write flag of a session, checking the session may change token
    /// objects.
    fn writable_session(&self, h: CK_SESSION_HANDLE, token: bool) -> Result<usize> {
        let (slot, read_write) = self.sessions.slot_of(h)?;
        if token && !read_write {
            return Err(Error::SessionReadOnly);
        }
        if token {
            let s = self.slots.get(slot).ok_or(Error::SlotIdInvalid)?;
            if !self.backend(slot)?.writable() {
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
                // Setting an attribute to the value it has is not a change. Compared as
                // C_GetAttributeValue would show it: a sensitive attribute never equals
                // anything (else this call would confirm guesses of a hidden value).
                other if obj.attr(other) == AttrLookup::Value(v) => {}
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
        let backend = self.backend(slot)?;
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
                let backend = self.backend(slot)?;
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
                    None => crate::crypto::key::key_identifier(&spki)?,
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
                    protection: crate::backend::Protection::Software,
                };
                let mut attrs = attributes::public_key(&record, &public, &label, &id, t.bytes(CKA_SUBJECT).unwrap_or_default(), true)?;
                attrs.insert(CKA_TOKEN, attributes::bool_(false));
                let key = Arc::new(KeyObject {
                    record: None,
                    public,
                    session_key: None,
                });
                self.objects.add_session_object(slot, h, ObjectKind::PublicKey, attrs, Some(key))
            }
            CKO_PUBLIC_KEY => Err(Error::TemplateInconsistent(
                "token public keys come from the store's private keys; create it with CKA_TOKEN false".into(),
            )),
            CKO_PRIVATE_KEY => self.create_private_key(h, slot, &t, token, update),
            other => Err(Error::AttributeValueInvalid(format!(
                "CKA_CLASS {other:#x}: C_CreateObject takes certificates, private keys (directory slots) and session public keys"
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
        let backend = self.backend(slot)?;
        // An object the store no longer has (another client or thread deleted it since
        // it was listed) is an invalid object handle here, not the KEY_HANDLE_INVALID
        // that `ObjectGone` means for an operation.
        // It is also dropped from the cache at once (the listing is read again).
        let gone = |e: Error| match e {
            Error::ObjectGone(_) => {
                let _ = self.objects.refresh(slot, true);
                Error::ObjectHandleInvalid
            }
            other => other,
        };
        match obj.kind {
            ObjectKind::Certificate => backend.delete_certificate(&obj.stable_id).map_err(gone)?,
            ObjectKind::PrivateKey => {
                let record = obj
                    .key()?
                    .record
                    .as_ref()
                    .ok_or(Error::ObjectHandleInvalid)?;
                if record.version.is_some() && !record.current {
                    // Key Vault and Managed HSM delete a key with every version: deleting
                    // through an older version's object would take the current one too.
                    return Err(Error::ActionProhibited(format!(
                        "{} is an older version of key {}; the store deletes a key only \
                         with all its versions: destroy the current version's object",
                        record.stable_id, record.name
                    )));
                }
                // Mapped inside, so that the audit log records what the caller gets.
                self.key_use(slot, record, "delete", "", || {
                    backend.delete_key(&record.stable_id).map_err(gone)
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
        // The store deleted it: that is the answer, whatever the listing that follows
        // says. When the listing fails, the object is forgotten here and the next
        // listing brings the cache up to date.
        if let Err(e) = self.objects.refresh(slot, true) {
            tracing::warn!("listing after deleting {}: {e}", obj.stable_id);
            self.objects.remove(&obj)?;
        }
        Ok(())
    }

    pub fn generate_key_pair(
        &self,
        h: CK_SESSION_HANDLE,
        m: &Mechanism,
        public: &Template,
        private: &Template,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let (pt, kt) = (TemplateView(public), TemplateView(private));
        // CKA_TOKEN defaults to false (§4.4): a session key pair, unless both say true.
        let token = kt.bool(CKA_TOKEN)?.unwrap_or(false);
        if pt.bool(CKA_TOKEN)?.unwrap_or(false) != token {
            return Err(Error::TemplateInconsistent(
                "CKA_TOKEN: both keys of a pair are token objects, or both session objects".into(),
            ));
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
        let name = label.clone().unwrap_or_else(|| "key".into());
        // Uses the template refuses are kept; those it asks for are what the key can do.
        // CKA_UNWRAP follows CKA_DECRYPT unless given (a decryption-refusing template
        // means no unwrapping either, and the Windows store has one permission for both).
        let decrypt = kt.bool(CKA_DECRYPT)?.unwrap_or(true);
        let usage = KeyUsage {
            sign: kt.bool(CKA_SIGN)?.unwrap_or(true),
            decrypt,
            unwrap: kt.bool(CKA_UNWRAP)?.unwrap_or(decrypt),
        };
        if !token {
            let update = ObjectUpdate { label, id };
            let private = kt.bool(CKA_PRIVATE)?;
            return self.generate_session_key_pair(h, &name, &spec, update, usage, private);
        }
        let slot = self.writable_session(h, true)?;
        let backend = self.backend(slot)?;
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

    /// C_CreateObject of an RSA or EC private key on a directory slot: a token key is
    /// written to the directory (PKCS#8, 0600, as `cert import` does), a session key is
    /// kept in its object only. Sensitive and unextractable like every private key here.
    fn create_private_key(
        &self,
        h: CK_SESSION_HANDLE,
        slot: usize,
        t: &TemplateView<'_>,
        token: bool,
        update: ObjectUpdate,
    ) -> Result<CK_OBJECT_HANDLE> {
        let backend = self.backend(slot)?;
        let kind = backend.kind();
        if kind != "directory" {
            return Err(Error::TemplateInconsistent(format!(
                "private keys are created on cert-store slots over a directory; this slot's keys live in its {kind} store (import a PKCS#12 with `identify-pkcs11 cert import`)"
            )));
        }
        if t.bool(CKA_EXTRACTABLE)? == Some(true) || t.bool(CKA_SENSITIVE)? == Some(false) {
            return Err(Error::TemplateInconsistent(
                "private keys never leave the store: CKA_EXTRACTABLE false, CKA_SENSITIVE true"
                    .into(),
            ));
        }
        let pkey = crate::object::template::private_key_from_template(t)?;
        let decrypt = t.bool(CKA_DECRYPT)?.unwrap_or(true);
        let usage = KeyUsage {
            sign: t.bool(CKA_SIGN)?.unwrap_or(true),
            decrypt,
            unwrap: t.bool(CKA_UNWRAP)?.unwrap_or(decrypt),
        };
        if token {
            let name = update.label.clone().unwrap_or_else(|| "key".into());
            let der = pkey.private_key_to_pkcs8()?;
            let record = backend.store_private_key(&name, &der, &update, usage)?;
            self.objects.refresh(slot, true)?;
            return self
                .objects
                .handle_of(slot, &format!("{}#private", record.stable_id));
        }
        let pin = self
            .slots
            .get(slot)
            .is_some_and(|s| s.config.pin_hash.is_some());
        let private = t.bool(CKA_PRIVATE)?.unwrap_or(pin);
        if private && !self.logged_in(slot) {
            return Err(Error::UserNotLoggedIn);
        }
        let name = update.label.clone().unwrap_or_else(|| "key".into());
        let record = session_key_record(&name, update, usage, pkey.public_key_to_der()?);
        let handle = self
            .objects
            .add_session_private_key(slot, h, record, pkey, private)?;
        self.keep_session_objects(h, slot, private, &[handle])?;
        Ok(handle)
    }

    /// A session key pair (`CKA_TOKEN` false) on a directory slot: made by OpenSSL in this
    /// process, kept in its two session objects only (never written; gone when they are
    /// destroyed or the session closes), allowed in a read-only session (§5.7).
    fn generate_session_key_pair(
        &self,
        h: CK_SESSION_HANDLE,
        name: &str,
        spec: &KeySpec,
        update: ObjectUpdate,
        usage: KeyUsage,
        private: Option<bool>,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let slot = self.sessions.slot_of(h)?.0;
        let kind = self.backend(slot)?.kind();
        if kind != "directory" {
            return Err(Error::TemplateInconsistent(format!(
                "session key pairs (CKA_TOKEN false, the default) are made on cert-store slots over a directory; this slot's keys live in its {kind} store: set CKA_TOKEN true"
            )));
        }
        let pin = self
            .slots
            .get(slot)
            .is_some_and(|s| s.config.pin_hash.is_some());
        let private = private.unwrap_or(pin);
        if private && !self.logged_in(slot) {
            return Err(Error::UserNotLoggedIn);
        }
        let pkey = crate::backend::directory::generate_pkey(spec)?;
        let mut record = session_key_record(name, update, usage, pkey.public_key_to_der()?);
        record.local = true;
        let (public, private_key) = self
            .objects
            .add_session_key_pair(slot, h, record, pkey, private)?;
        self.keep_session_objects(h, slot, private, &[public, private_key])?;
        Ok((public, private_key))
    }

    /// Session objects made by a long call (a generation, a store's unwrap) stay only if
    /// their session is still open, and private ones only while the user is still logged
    /// in: a C_CloseSession or C_Logout during the call would otherwise leave them behind
    /// (owned by a closed session, or private past the logout, §5.6).
    fn keep_session_objects(
        &self,
        h: CK_SESSION_HANDLE,
        slot: usize,
        private: bool,
        handles: &[CK_OBJECT_HANDLE],
    ) -> Result<()> {
        let gone = match self.sessions.slot_of(h) {
            Err(e) => Some(e),
            Ok(_) if private && !self.logged_in(slot) => Some(Error::UserNotLoggedIn),
            Ok(_) => None,
        };
        let Some(e) = gone else { return Ok(()) };
        for handle in handles {
            if let Ok(o) = self.objects.get(*handle, |_| true) {
                self.objects.remove(&o)?;
            }
        }
        Err(e)
    }

    // ----- unwrap (§5.18) -----

    /// C_UnwrapKey: RSA PKCS#1 v1.5 or OAEP with a private key permitted CKA_UNWRAP,
    /// giving a session secret key (CKK_GENERIC_SECRET or CKK_AES). A key whose value the
    /// caller may read (not CKA_SENSITIVE, CKA_EXTRACTABLE) is the store's decryption and
    /// needs the unwrapping key's CKA_DECRYPT; any other is the store's unwrap (Key Vault:
    /// unwrapKey), its value kept inside for CKM_AES_CBC_PAD / CKM_AES_GCM decryption.
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
        // Private (gone at C_Logout) unless the template says otherwise, on a slot with a
        // PIN: a key unwrapped while logged in is not usable after the logout.
        let pin = self
            .slots
            .get(slot)
            .is_some_and(|s| s.config.pin_hash.is_some());
        let private = t.bool(CKA_PRIVATE)?.unwrap_or(pin);
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
        let backend = self.backend(slot)?;
        backend.check_decrypt(record, &scheme.0)?;
        if wrapped.len() != material.public.size_bytes {
            return Err(Error::WrappedKeyLenRange);
        }
        // A key whose value the caller may read is a decryption, whatever it is called:
        // it needs the unwrapping key's CKA_DECRYPT, and the store's decrypt operation (so
        // that a principal the store lets unwrap but not decrypt, e.g. Key Vault's Crypto
        // Service Encryption User, gets no plaintext out of C_UnwrapKey). A key that stays
        // inside the module (sensitive or unextractable) is the store's unwrap; it is used
        // through CKM_AES_CBC_PAD / CKM_AES_GCM. Defaults: readable when the unwrapping
        // key may decrypt, kept inside otherwise.
        let may_decrypt = key.flag(CKA_DECRYPT);
        let sensitive = t.bool(CKA_SENSITIVE)?.unwrap_or(!may_decrypt);
        let extractable = t.bool(CKA_EXTRACTABLE)?.unwrap_or(may_decrypt);
        let readable = !sensitive && extractable;
        if readable && !may_decrypt {
            return Err(Error::TemplateInconsistent(
                "the unwrapping key may not decrypt (CKA_DECRYPT false), so a key it unwraps stays inside the module: CKA_SENSITIVE true or CKA_EXTRACTABLE false (the defaults here); use it with CKM_AES_CBC_PAD or CKM_AES_GCM".into(),
            ));
        }
        let operation = if readable { "decrypt" } else { "unwrap" };
        let value = self
            .key_use(slot, record, operation, &scheme.0.describe(), || {
                if let Some(k) = &material.session_key {
                    crate::backend::directory::decrypt_with(k, &scheme.0, wrapped)
                } else if readable {
                    backend.decrypt(record, &scheme.0, wrapped)
                } else {
                    backend.unwrap_key(record, &scheme.0, wrapped)
                }
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
            // An AES key's one use here is decryption: CKA_DECRYPT unless the template
            // says otherwise.
            let default = flag == CKA_DECRYPT && key_type == CKK_AES;
            a.insert(flag, attributes::bool_(t.bool(flag)?.unwrap_or(default)));
        }
        a.insert(CKA_SENSITIVE, attributes::bool_(sensitive));
        a.insert(CKA_EXTRACTABLE, attributes::bool_(extractable));
        a.insert(CKA_ALWAYS_SENSITIVE, attributes::bool_(false));
        a.insert(CKA_NEVER_EXTRACTABLE, attributes::bool_(false));
        a.insert(CKA_WRAP_WITH_TRUSTED, attributes::bool_(false));
        a.insert(CKA_TRUSTED, attributes::bool_(false));
        a.insert(CKA_VALUE_LEN, attributes::ulong(len));
        // The value is kept for the module's AES decryption; a sensitive or unextractable
        // key's value is never revealed (C_GetAttributeValue: CKR_ATTRIBUTE_SENSITIVE),
        // never matched by a search nor compared by C_SetAttributeValue. A hidden generic
        // secret has no use here: its value is not kept at all.
        if readable || key_type == CKK_AES {
            a.insert(CKA_VALUE, value);
        }
        let hidden: &'static [CK_ATTRIBUTE_TYPE] = if readable { &[] } else { &[CKA_VALUE] };
        let handle = self.objects.add_session_secret(slot, h, a, hidden)?;
        self.keep_session_objects(h, slot, private, &[handle])?;
        Ok(handle)
    }
}

/// The record of a session key (generated or created): its store is this process's memory.
fn session_key_record(
    name: &str,
    update: ObjectUpdate,
    usage: KeyUsage,
    spki_der: Vec<u8>,
) -> KeyRecord {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    KeyRecord {
        stable_id: format!("session-key:{n}"),
        name: name.to_owned(),
        version: None,
        current: true,
        label: update.label,
        id: update.id,
        spki_der,
        usage,
        local: false,
        backend_key_id: format!("session key {n} (this process's memory)"),
        protection: crate::backend::Protection::Software,
    }
}
