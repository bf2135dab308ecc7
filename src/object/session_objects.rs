//! Session objects (`CKA_TOKEN` false): made by C_CreateObject, C_GenerateKeyPair and
//! C_UnwrapKey, owned by their session, gone with it (and the private ones at C_Logout).

use super::*;

impl ObjectCache {
    /// Adds a session object (`CKA_TOKEN` false) owned by `session`.
    pub fn add_session_object(
        &self,
        slot: usize,
        session: CK_SESSION_HANDLE,
        kind: ObjectKind,
        attrs: Attributes,
        key: Option<Arc<KeyObject>>,
    ) -> Result<CK_OBJECT_HANDLE> {
        self.insert_session_object(slot, session, kind, attrs, key, &[])
    }

    /// Adds a session key pair (`CKA_TOKEN` false) owned by `session`: the public and the
    /// private key object of `record`, whose private key `pkey` lives in them.
    pub fn add_session_key_pair(
        &self,
        slot: usize,
        session: CK_SESSION_HANDLE,
        record: KeyRecord,
        pkey: openssl::pkey::PKey<openssl::pkey::Private>,
        private: bool,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let (public, private) = self.add_session_key(slot, session, record, pkey, private, true)?;
        Ok((
            public.ok_or_else(|| Error::Internal("no public key object".into()))?,
            private,
        ))
    }

    /// Adds the private key object of a session private key (C_CreateObject).
    pub fn add_session_private_key(
        &self,
        slot: usize,
        session: CK_SESSION_HANDLE,
        record: KeyRecord,
        pkey: openssl::pkey::PKey<openssl::pkey::Private>,
        private: bool,
    ) -> Result<CK_OBJECT_HANDLE> {
        Ok(self
            .add_session_key(slot, session, record, pkey, private, false)?
            .1)
    }

    pub(super) fn add_session_key(
        &self,
        slot: usize,
        session: CK_SESSION_HANDLE,
        record: KeyRecord,
        pkey: openssl::pkey::PKey<openssl::pkey::Private>,
        private: bool,
        with_public: bool,
    ) -> Result<(Option<CK_OBJECT_HANDLE>, CK_OBJECT_HANDLE)> {
        let public = PublicInfo::from_spki(&record.spki_der)?;
        let id = key_id(&record)?;
        let label = key_label(&record);
        let sensitive = match public.kind {
            KeyKind::Rsa => attributes::SENSITIVE_RSA,
            KeyKind::Ec => attributes::SENSITIVE_EC,
        };
        let mut private_attrs =
            attributes::private_key(&record, &public, &label, &id, &[], private, true)?;
        let mut public_attrs = attributes::public_key(&record, &public, &label, &id, &[], true)?;
        for attrs in [&mut private_attrs, &mut public_attrs] {
            attrs.insert(CKA_TOKEN, attributes::bool_(false));
        }
        if !record.local {
            // A key the caller created from its components has been outside a token.
            private_attrs.insert(CKA_ALWAYS_SENSITIVE, attributes::bool_(false));
            private_attrs.insert(CKA_NEVER_EXTRACTABLE, attributes::bool_(false));
        }
        // Only the private key object holds the private key: destroying it drops the key
        // even while the public key object stays.
        let public_material = Arc::new(KeyObject {
            record: Some(record.clone()),
            public: public.clone(),
            session_key: None,
        });
        let private_material = Arc::new(KeyObject {
            record: Some(record),
            public,
            session_key: Some(pkey),
        });
        let public_handle = if with_public {
            Some(self.insert_session_object(
                slot,
                session,
                ObjectKind::PublicKey,
                public_attrs,
                Some(public_material),
                &[],
            )?)
        } else {
            None
        };
        let private_handle = self.insert_session_object(
            slot,
            session,
            ObjectKind::PrivateKey,
            private_attrs,
            Some(private_material),
            sensitive,
        )?;
        Ok((public_handle, private_handle))
    }

    /// Adds a session secret key; `hidden` attributes exist but are never revealed.
    pub fn add_session_secret(
        &self,
        slot: usize,
        session: CK_SESSION_HANDLE,
        attrs: Attributes,
        hidden: &'static [CK_ATTRIBUTE_TYPE],
    ) -> Result<CK_OBJECT_HANDLE> {
        self.insert_session_object(slot, session, ObjectKind::SecretKey, attrs, None, hidden)
    }

    pub(super) fn insert_session_object(
        &self,
        slot: usize,
        session: CK_SESSION_HANDLE,
        kind: ObjectKind,
        attrs: Attributes,
        key: Option<Arc<KeyObject>>,
        sensitive: &'static [CK_ATTRIBUTE_TYPE],
    ) -> Result<CK_OBJECT_HANDLE> {
        let so = self.slot(slot)?;
        let handle = self.fresh_handle()?;
        self.handles
            .lock()
            .map_err(lock_err)?
            .slot_of
            .insert(handle, slot);
        let mut state = so.state.write().map_err(lock_err)?;
        state.objects.insert(
            handle,
            Arc::new(Object {
                handle,
                slot,
                stable_id: format!("session:{handle}"),
                kind,
                attrs,
                sensitive,
                key,
                owner: Some(session),
            }),
        );
        state.generation += 1;
        Ok(handle)
    }

    /// Gives every private token object of `slot` a new handle: the old ones are invalid
    /// from now on (C_Logout); the objects themselves are unchanged. Private session
    /// objects are destroyed (§5.6 C_Logout).
    pub fn reissue_private(&self, slot: usize) -> Result<()> {
        let so = self.slot(slot)?;
        let mut state = so.state.write().map_err(lock_err)?;
        let private: Vec<CK_OBJECT_HANDLE> = state
            .objects
            .iter()
            .filter(|(_, o)| o.is_private())
            .map(|(h, _)| *h)
            .collect();
        if private.is_empty() {
            return Ok(());
        }
        // Lock order: a slot's state, then the handles (nothing takes them the other way).
        let mut handles = self.handles.lock().map_err(lock_err)?;
        for old in private {
            let Some(o) = state.objects.remove(&old) else {
                continue;
            };
            handles.slot_of.remove(&old);
            if o.owner.is_some() {
                continue;
            }
            let handle = self.fresh_handle()?;
            handles.slot_of.insert(handle, slot);
            if o.owner.is_none() {
                handles.by_id.insert((slot, o.stable_id.clone()), handle);
            }
            let moved = Object {
                handle,
                slot: o.slot,
                stable_id: o.stable_id.clone(),
                kind: o.kind,
                attrs: o.attrs.clone(),
                sensitive: o.sensitive,
                key: o.key.clone(),
                owner: o.owner,
            };
            state.objects.insert(handle, Arc::new(moved));
        }
        state.generation += 1;
        state.queries.clear();
        // A listing in flight was built with the handles before this: it must not be
        // applied (it would bring back handles that no longer resolve).
        state.epoch += 1;
        Ok(())
    }

    /// Removes a session object, or forgets a token object after the store deleted it.
    pub fn remove(&self, obj: &Object) -> Result<()> {
        let so = self.slot(obj.slot)?;
        let mut state = so.state.write().map_err(lock_err)?;
        state.objects.remove(&obj.handle);
        state.generation += 1;
        Ok(())
    }

    /// Replaces the attributes of a session object (C_SetAttributeValue), same handle.
    pub fn replace_session_object(&self, obj: &Object, attrs: Attributes) -> Result<()> {
        let so = self.slot(obj.slot)?;
        let mut state = so.state.write().map_err(lock_err)?;
        let replacement = Arc::new(Object {
            handle: obj.handle,
            slot: obj.slot,
            stable_id: obj.stable_id.clone(),
            kind: obj.kind,
            attrs,
            sensitive: obj.sensitive,
            key: obj.key.clone(),
            owner: obj.owner,
        });
        state.objects.insert(obj.handle, replacement);
        state.generation += 1;
        Ok(())
    }

    /// Drops the session objects of a closed session.
    pub fn close_session(&self, slot: usize, session: CK_SESSION_HANDLE) -> Result<()> {
        let so = self.slot(slot)?;
        let mut state = so.state.write().map_err(lock_err)?;
        let before = state.objects.len();
        state.objects.retain(|_, o| o.owner != Some(session));
        if state.objects.len() != before {
            state.generation += 1;
        }
        Ok(())
    }
}
