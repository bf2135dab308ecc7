//! Listing a vault: keys and versions (each fetched for its public key), filters, certificates; JWK to SPKI.

use super::memory::{KnownKey, ListedVersion, ListingMemory, fingerprint};
use super::*;

impl KeyVaultBackend {
    /// Whether a key passes the name and tag filters.
    pub(super) fn wanted(&self, name: &str, tags: Option<&HashMap<String, String>>) -> bool {
        let name_ok = self
            .cfg
            .key_names
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n.eq_ignore_ascii_case(name)));
        let tags_ok = self
            .cfg
            .tags
            .iter()
            .all(|(k, v)| tags.and_then(|t| t.get(k)) == Some(v));
        name_ok && tags_ok
    }

    /// Lists keys, versions (each fetched for its public key, once per process) and
    /// certificates. Keys run concurrently (LIST_CONCURRENCY), each request paid from the
    /// slot's rate budget; a key whose list entry is unchanged since the last listing keeps
    /// its versions without a request, except at a full listing (`full_refresh_seconds`).
    pub(super) async fn list_remote(
        &self,
        until: Instant,
    ) -> Result<(Vec<(KeyRecord, f64)>, Vec<CertRecord>)> {
        let every = Duration::from_secs(self.cfg.full_refresh_seconds);
        let (full, known, started) = {
            let memory = self.memory();
            (memory.full_due(every), memory.keys.clone(), memory.forgets)
        };
        // Each key is listed as soon as its page arrives, while the next pages come.
        let pager = self
            .keys
            .list_key_properties(None)
            .map_err(|e| errors::map(e, "listing keys"))?;
        self.pay(1.0, until).await?;
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let (seen, known) = (&seen, &known);
        let listed: Vec<Result<Option<(String, KnownKey)>>> = pager
            .map(|item| async move {
                let item = item.map_err(|e| errors::map(e, "listing keys"))?;
                // One request per page of 25.
                if seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 25 == 24 {
                    self.pay(1.0, until).await?;
                }
                let Ok(id) = item.resource_id() else {
                    return Ok(None);
                };
                if !self.wanted(&id.name, item.tags.as_ref()) {
                    return Ok(None);
                }
                let a = item.attributes.as_ref();
                let fields = [
                    a.and_then(|a| a.enabled).map(|e| e.to_string()),
                    a.and_then(|a| a.created).map(|t| t.to_string()),
                    a.and_then(|a| a.updated).map(|t| t.to_string()),
                    a.and_then(|a| a.not_before).map(|t| t.to_string()),
                    a.and_then(|a| a.expires).map(|t| t.to_string()),
                    item.managed.map(|m| m.to_string()),
                ];
                let fingerprint = fingerprint(&fields, item.tags.as_ref());
                match known
                    .get(&id.name)
                    .filter(|k| !full && k.fingerprint == fingerprint)
                {
                    Some(k) => Ok(Some((id.name, k.clone()))),
                    None => self.list_key(id.name, fingerprint, until).await,
                }
            })
            .buffer_unordered(LIST_CONCURRENCY)
            .collect()
            .await;
        let mut now_known = HashMap::new();
        for l in listed {
            if let Some((name, k)) = l? {
                now_known.insert(name, k);
            }
        }
        let names: Vec<String> = now_known.keys().cloned().collect();
        let mut keys = Vec::new();
        {
            let mut memory = self.memory();
            for (name, k) in &now_known {
                for v in &k.versions {
                    let id = self.version_id(name, &v.version);
                    let Some((_, Some((record, weight)))) = memory.versions.get(&id) else {
                        continue;
                    };
                    let mut record = record.clone();
                    record.current = k.current.as_deref() == Some(v.version.as_str());
                    let tags = v.tags.as_ref();
                    record.label = tags.and_then(|t| t.get(TAG_LABEL)).cloned();
                    record.id = tags
                        .and_then(|t| t.get(TAG_ID))
                        .and_then(|h| crate::crypto::hex::decode(h));
                    keys.push((record, *weight));
                }
            }
            if full {
                // Versions no longer listed are forgotten (deleted keys, disabled versions).
                let listed: std::collections::HashSet<String> = now_known
                    .iter()
                    .flat_map(|(n, k)| k.versions.iter().map(|v| self.version_id(n, &v.version)))
                    .collect();
                memory.versions.retain(|id, _| listed.contains(id));
                memory.full_at = Some(Instant::now());
            }
            // A key a write changed while this listing ran may be listed as it was before
            // the write: the next listing lists it again.
            now_known.retain(|name, _| !memory.forgotten_since(name, started));
            memory.keys = now_known;
        }
        // Never two current versions of one name (a tie the service did not settle).
        keys.sort_by(|a, b| (&a.0.name, &a.0.version).cmp(&(&b.0.name, &b.0.version)));
        let mut seen_current = std::collections::HashSet::new();
        for (k, _) in &mut keys {
            if k.current && !seen_current.insert(k.name.clone()) {
                k.current = false;
            }
        }
        // A principal with key roles only (Key Vault Crypto User, no Certificate User) is
        // refused the certificate listing: its keys are still listed and usable, and the
        // certificates of the database still pair with them.
        let certificates = match &self.certificates {
            Some(c) => match self.list_certificates(c, &names, full, until).await {
                Ok(certificates) => certificates,
                Err(Error::Remote(ServiceFailure::Denied, m)) => {
                    tracing::warn!(
                        "{m}; listing the vault's keys without its certificates (assign Key Vault Certificate User to see them)"
                    );
                    Vec::new()
                }
                Err(e) => return Err(e),
            },
            None => Vec::new(),
        };
        Ok((keys, certificates))
    }

    /// Key `name`'s current version (kept in the memory: the full listing will not fetch
    /// it again) and its vault certificate: one GET each. None when the vault has no
    /// such key, or the slot does not show it.
    pub(super) async fn lookup_remote(
        &self,
        name: &str,
        until: Instant,
    ) -> Result<Option<(KeyRecord, f64, Vec<CertRecord>)>> {
        if name.is_empty()
            || name.len() > 127
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Ok(None);
        }
        let what = format!("reading key {name}");
        self.pay(1.0, until).await?;
        let key = match self.keys.get_key(name, None).await {
            Ok(r) => r.into_model().map_err(|e| errors::map(e, &what))?,
            Err(e) if matches!(e.http_status().map(u16::from), Some(403 | 404)) => {
                return Ok(None);
            }
            Err(e) => return Err(errors::map(e, &what)),
        };
        if !key
            .attributes
            .as_ref()
            .and_then(|a| a.enabled)
            .unwrap_or(true)
            || !self.wanted(name, key.tags.as_ref())
        {
            return Ok(None);
        }
        // Key names are case-insensitive: the vault's spelling must be the label's, or the
        // record would carry a name the listing does not.
        let Some(version) = key
            .resource_id()
            .ok()
            .filter(|id| id.name == name)
            .and_then(|id| id.version)
        else {
            return Ok(None);
        };
        let Some((record, weight)) = key_record(
            self.cfg.service,
            &self.cfg.url,
            name,
            &version,
            true,
            &key,
            &what,
        ) else {
            return Ok(None);
        };
        let updated = key
            .attributes
            .as_ref()
            .and_then(|a| a.updated)
            .map(azure_core::time::OffsetDateTime::unix_timestamp);
        self.memory().versions.insert(
            self.version_id(name, &version),
            (updated, Some((record.clone(), weight))),
        );
        let mut certificates = Vec::new();
        if let Some(client) = &self.certificates {
            let what = format!("reading certificate {name}");
            self.pay(1.0, until).await?;
            match client.get_certificate(name, None).await {
                Ok(r) => {
                    let cert = r.into_model().map_err(|e| errors::map(e, &what))?;
                    let enabled = cert
                        .attributes
                        .as_ref()
                        .and_then(|a| a.enabled)
                        .unwrap_or(true);
                    if let (true, Some(id), Some(der)) = (enabled, cert.id, cert.cer) {
                        certificates.push(CertRecord {
                            stable_id: id.to_ascii_lowercase(),
                            label: name.to_owned(),
                            id: None,
                            der,
                            authority: false,
                            managed: true,
                        });
                    }
                }
                // No certificate of that name, or none the principal may read.
                Err(e) if matches!(e.http_status().map(u16::from), Some(403 | 404)) => {}
                Err(e) => return Err(errors::map(e, &what)),
            }
        }
        Ok(Some((record, weight, certificates)))
    }

    /// The listing memory; a poisoned lock still yields it (it only saves requests).
    fn memory(&self) -> std::sync::MutexGuard<'_, ListingMemory> {
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A write through this module changed key `name`: the next listing lists its
    /// versions (and its certificate's) again.
    pub(super) fn forget(&self, name: &str) {
        self.memory().forget(name);
    }

    /// Runs `write`, a change of key `name`, and forgets the key before and after it (a
    /// listing that ran meanwhile may have listed it half-changed).
    pub(super) fn changing<T>(&self, name: &str, write: impl FnOnce() -> Result<T>) -> Result<T> {
        self.forget(name);
        let r = write();
        self.forget(name);
        r
    }

    /// The memory's id of version `name/version` (the lower-case key id).
    fn version_id(&self, name: &str, version: &str) -> String {
        format!(
            "{}/keys/{name}/{version}",
            self.cfg.url.trim_end_matches('/')
        )
        .to_ascii_lowercase()
    }

    /// Waits for `units` of the slot's rate budget (none on a Managed HSM), without
    /// blocking the runtime's thread.
    pub(super) async fn pay(&self, units: f64, until: Instant) -> Result<()> {
        if let Some(budget) = &self.budget {
            let start = budget.reserve(units, until)?;
            tokio::time::sleep_until(start.into()).await;
        }
        Ok(())
    }

    /// Key `name`'s enabled versions, which is current, and the public part of each
    /// version not fetched before (into the memory). None: deleted since it was listed.
    async fn list_key(
        &self,
        name: String,
        fingerprint: String,
        until: Instant,
    ) -> Result<Option<(String, KnownKey)>> {
        let versions = match self.enabled_versions(&name, until).await {
            Ok(v) => v,
            // Deleted by another client since the names were listed: not an error.
            Err(Error::ObjectGone(m)) => {
                tracing::info!("{m}");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        // The newest enabled version is the current one. Versions made within the same
        // second (a rotation right after a creation) tie on `created`: the service's own
        // answer for the key without a version decides.
        let newest = versions.iter().map(|v| v.created).max();
        let tied: Vec<&ListedVersion> = versions
            .iter()
            .filter(|v| Some(v.created) == newest)
            .collect();
        let current = match tied[..] {
            [] => None,
            [one] => Some(one.version.clone()),
            _ => {
                let what = format!("reading the current version of {name}");
                self.pay(1.0, until).await?;
                let read = match self.keys.get_key(&name, None).await {
                    Ok(r) => r.into_model().map_err(|e| errors::map(e, &what)),
                    Err(e) => Err(errors::map(e, &what)),
                };
                match read {
                    Ok(key) => key.resource_id().ok().and_then(|id| id.version),
                    // Deleted meanwhile: its versions are not fetched either.
                    Err(Error::ObjectGone(m)) => {
                        tracing::info!("{m}");
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        for v in &versions {
            let id = self.version_id(&name, &v.version);
            // Known, and not updated since (its permitted operations can be).
            if self
                .memory()
                .versions
                .get(&id)
                .is_some_and(|(updated, _)| *updated == v.updated)
            {
                continue;
            }
            self.pay(1.0, until).await?;
            match self.fetch_version(&name, &v.version, false).await {
                Ok(fetched) => {
                    // A heavier key (RSA-3072 and up, HSM) costs more than the unit paid.
                    if let Some((_, w)) = &fetched
                        && *w > 1.0
                    {
                        self.pay(w - 1.0, until).await?;
                    }
                    self.memory().versions.insert(id, (v.updated, fetched));
                }
                // A version that vanished or was disabled meanwhile is not an error.
                Err(Error::ObjectGone(m)) => tracing::info!("{m}"),
                Err(e) => return Err(e),
            }
        }
        Ok(Some((
            name,
            KnownKey {
                fingerprint,
                versions,
                current,
            },
        )))
    }

    /// The enabled versions of key `name`.
    async fn enabled_versions(&self, name: &str, until: Instant) -> Result<Vec<ListedVersion>> {
        let mut versions = Vec::new();
        let mut o = KeyClientListKeyPropertiesVersionsOptions::default();
        o.maxresults = Some(25);
        let what = format!("listing the versions of {name}");
        let mut pager = self
            .keys
            .list_key_properties_versions(name, Some(o))
            .map_err(|e| errors::map(e, &what))?;
        self.pay(1.0, until).await?;
        let mut seen = 0usize;
        while let Some(item) = pager.try_next().await.map_err(|e| errors::map(e, &what))? {
            seen += 1;
            if seen.is_multiple_of(25) {
                self.pay(1.0, until).await?;
            }
            let enabled = item
                .attributes
                .as_ref()
                .and_then(|a| a.enabled)
                .unwrap_or(true);
            let created = item
                .attributes
                .as_ref()
                .and_then(|a| a.created)
                .map(azure_core::time::OffsetDateTime::unix_timestamp)
                .unwrap_or(0);
            let updated = item
                .attributes
                .as_ref()
                .and_then(|a| a.updated)
                .map(azure_core::time::OffsetDateTime::unix_timestamp);
            if let (true, Ok(id)) = (enabled, item.resource_id())
                && let Some(version) = id.version
            {
                versions.push(ListedVersion {
                    version,
                    created,
                    updated,
                    tags: item.tags.clone(),
                });
            }
        }
        Ok(versions)
    }

    pub(super) async fn fetch_version(
        &self,
        name: &str,
        version: &str,
        current: bool,
    ) -> Result<Option<(KeyRecord, f64)>> {
        let what = format!("reading key {name}/{version}");
        let mut o = KeyClientGetKeyOptions::default();
        o.key_version = Some(version.to_owned());
        let key: Key = self
            .keys
            .get_key(name, Some(o))
            .await
            .map_err(|e| errors::map(e, &what))?
            .into_model()
            .map_err(|e| errors::map(e, &what))?;
        Ok(key_record(
            self.cfg.service,
            &self.cfg.url,
            name,
            version,
            current,
            &key,
            &what,
        ))
    }

    /// The vault's certificates of the keys in `key_names`: each with its older versions.
    /// A certificate whose list entry is unchanged keeps its records without a request,
    /// except at a full listing.
    pub(super) async fn list_certificates(
        &self,
        client: &CertificateClient,
        key_names: &[String],
        full: bool,
        until: Instant,
    ) -> Result<Vec<CertRecord>> {
        let mut entries = Vec::new();
        let mut pager = client
            .list_certificate_properties(None)
            .map_err(|e| errors::map(e, "listing certificates"))?;
        self.pay(1.0, until).await?;
        let mut seen = 0usize;
        while let Some(item) = pager
            .try_next()
            .await
            .map_err(|e| errors::map(e, "listing certificates"))?
        {
            seen += 1;
            if seen.is_multiple_of(25) {
                self.pay(1.0, until).await?;
            }
            let a = item.attributes.as_ref();
            let enabled = a.and_then(|a| a.enabled).unwrap_or(true);
            let Some(name) = item
                .id
                .as_deref()
                .and_then(|id| id.trim_end_matches('/').rsplit('/').next())
                .map(str::to_owned)
            else {
                continue;
            };
            if !enabled || !key_names.iter().any(|k| k.eq_ignore_ascii_case(&name)) {
                continue;
            }
            let fields = [
                item.x509_thumbprint
                    .as_deref()
                    .map(crate::crypto::hex::encode),
                a.and_then(|a| a.created).map(|t| t.to_string()),
                a.and_then(|a| a.updated).map(|t| t.to_string()),
                a.and_then(|a| a.not_before).map(|t| t.to_string()),
                a.and_then(|a| a.expires).map(|t| t.to_string()),
            ];
            entries.push((name, fingerprint(&fields, item.tags.as_ref())));
        }
        let (known, started) = {
            let memory = self.memory();
            (memory.certificates.clone(), memory.forgets)
        };
        let read: Vec<Result<(String, String, Vec<CertRecord>)>> =
            futures::stream::iter(entries.into_iter().map(|(name, fingerprint)| {
                let before = known
                    .get(&name)
                    .filter(|(f, _)| !full && *f == fingerprint)
                    .map(|(_, records)| records.clone());
                async move {
                    let records = match before {
                        Some(records) => records,
                        None => self.read_certificate(client, &name, until).await?,
                    };
                    Ok((name, fingerprint, records))
                }
            }))
            .buffer_unordered(LIST_CONCURRENCY)
            .collect()
            .await;
        let mut out = Vec::new();
        let mut now_known = HashMap::new();
        for r in read {
            let (name, fingerprint, records) = r?;
            out.extend(records.iter().cloned());
            now_known.insert(name, (fingerprint, records));
        }
        let mut memory = self.memory();
        now_known.retain(|name, _| !memory.forgotten_since(name, started));
        memory.certificates = now_known;
        Ok(out)
    }

    /// Certificate `name`'s current version and its older ones.
    async fn read_certificate(
        &self,
        client: &CertificateClient,
        name: &str,
        until: Instant,
    ) -> Result<Vec<CertRecord>> {
        let what = format!("reading certificate {name}");
        self.pay(1.0, until).await?;
        let cert = client
            .get_certificate(name, None)
            .await
            .map_err(|e| errors::map(e, &what))?
            .into_model()
            .map_err(|e| errors::map(e, &what))?;
        let Some(current) = cert.id.clone() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        if let Some(der) = cert.cer {
            out.push(CertRecord {
                stable_id: current.to_ascii_lowercase(),
                label: name.to_owned(),
                id: None,
                der,
                authority: false,
                managed: true,
            });
        }
        // Older versions: their keys stay listed for decryption, and an application
        // finds such a key by its certificate.
        out.extend(
            self.older_certificates(client, name, &current, until)
                .await?,
        );
        Ok(out)
    }

    /// The enabled versions of certificate `name` other than `current` (its id), labelled
    /// `name/version` like their keys.
    pub(super) async fn older_certificates(
        &self,
        client: &CertificateClient,
        name: &str,
        current: &str,
        until: Instant,
    ) -> Result<Vec<CertRecord>> {
        let what = format!("listing the versions of certificate {name}");
        self.pay(1.0, until).await?;
        let mut older = Vec::new();
        let mut pager = client
            .list_certificate_properties_versions(name, None)
            .map_err(|e| errors::map(e, &what))?;
        while let Some(item) = pager.try_next().await.map_err(|e| errors::map(e, &what))? {
            let enabled = item
                .attributes
                .as_ref()
                .and_then(|a| a.enabled)
                .unwrap_or(true);
            let Some(id) = item
                .id
                .filter(|id| enabled && !id.eq_ignore_ascii_case(current))
            else {
                continue;
            };
            let Some(version) = id
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .map(str::to_owned)
            else {
                continue;
            };
            let stable_id = id.to_ascii_lowercase();
            let known = self
                .certificate_versions
                .lock()
                .ok()
                .and_then(|m| m.get(&stable_id).cloned());
            let der = match known {
                Some(der) => Some(der),
                None => {
                    self.pay(1.0, until).await?;
                    let mut o = azure_security_keyvault_certificates::models::CertificateClientGetCertificateOptions::default();
                    o.certificate_version = Some(version.clone());
                    let der = client
                        .get_certificate(name, Some(o))
                        .await
                        .map_err(|e| errors::map(e, &what))?
                        .into_model()
                        .map_err(|e| errors::map(e, &what))?
                        .cer;
                    if let (Some(d), Ok(mut m)) = (&der, self.certificate_versions.lock()) {
                        m.insert(stable_id.clone(), d.clone());
                    }
                    der
                }
            };
            if let Some(der) = der {
                older.push(CertRecord {
                    stable_id,
                    label: format!("{name}/{version}"),
                    id: None,
                    der,
                    authority: false,
                    managed: true,
                });
            }
        }
        Ok(older)
    }
}

/// The record of key version `name/version` from the service's answer (`None`: no public
/// key in it, or one the module cannot use), with its rate weight.
pub(crate) fn key_record(
    service: crate::config::Service,
    vault_url: &str,
    name: &str,
    version: &str,
    current: bool,
    key: &Key,
    what: &str,
) -> Option<(KeyRecord, f64)> {
    let jwk = key.key.as_ref()?;
    let spki_der = match jwk_to_spki(jwk) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("{what}: {e}; skipped");
            return None;
        }
    };
    let ops: Vec<&str> = jwk.key_ops.iter().flatten().map(String::as_str).collect();
    let tags = key.tags.as_ref();
    let hsm = matches!(jwk.kty, Some(KeyType::RsaHsm | KeyType::EcHsm));
    // A vault says which HSM platform keeps an HSM key: "1" FIPS 140-2 Level 2, "2"
    // FIPS 140-3 Level 3 (FACTS.md, KeyAttributes); a Managed HSM is Level 3 throughout.
    let platform = key
        .attributes
        .as_ref()
        .and_then(|a| a.hsm_platform.as_deref());
    let protection = match (hsm, service, platform) {
        (false, _, _) => Protection::Software,
        (true, crate::config::Service::ManagedHsm, _) | (true, _, Some("2")) => {
            Protection::HsmLevel3
        }
        (true, _, _) => Protection::HsmLevel2,
    };
    let rsa_bits = jwk
        .n
        .as_ref()
        .map(|n| n.iter().skip_while(|b| **b == 0).count() * 8);
    // Every key has an identifier: the service's `kid`, or the one it would have sent
    // (`{vault}/keys/{name}/{version}`) when a response has none, so that two such
    // keys never share an empty id.
    let kid = jwk
        .kid
        .clone()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| format!("{}/keys/{name}/{version}", vault_url.trim_end_matches('/')));
    let record = KeyRecord {
        stable_id: kid.to_ascii_lowercase(),
        name: name.to_owned(),
        version: Some(version.to_owned()),
        current,
        label: tags.and_then(|t| t.get(TAG_LABEL)).cloned(),
        id: tags
            .and_then(|t| t.get(TAG_ID))
            .and_then(|h| crate::crypto::hex::decode(h)),
        spki_der,
        usage: KeyUsage {
            sign: ops.contains(&"sign"),
            decrypt: ops.contains(&"decrypt"),
            unwrap: ops.contains(&"unwrapKey"),
        },
        local: false,
        backend_key_id: kid,
        protection,
    };
    Some((record, weight(rsa_bits, hsm)))
}
/// DER SubjectPublicKeyInfo from a JSON Web Key (RSA n/e, EC crv/x/y).
pub(super) fn jwk_to_spki(jwk: &JsonWebKey) -> Result<Vec<u8>> {
    use openssl::bn::BigNum;
    let pkey = match (&jwk.n, &jwk.e, &jwk.crv, &jwk.x, &jwk.y) {
        (Some(n), Some(e), _, _, _) => {
            openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::from_public_components(
                BigNum::from_slice(n)?,
                BigNum::from_slice(e)?,
            )?)?
        }
        (_, _, Some(crv), Some(x), Some(y)) => {
            let curve = match crv {
                CurveName::P256 => Curve::P256,
                CurveName::P384 => Curve::P384,
                CurveName::P521 => Curve::P521,
                other => return Err(Error::Backend(format!("curve {other:?} is not supported"))),
            };
            let group = openssl::ec::EcGroup::from_curve_name(curve.nid())?;
            let (x, y) = (BigNum::from_slice(x)?, BigNum::from_slice(y)?);
            let ec = openssl::ec::EcKey::from_public_key_affine_coordinates(&group, &x, &y)?;
            openssl::pkey::PKey::from_ec_key(ec)?
        }
        _ => return Err(Error::Backend("not an RSA or EC public key".into())),
    };
    Ok(pkey.public_key_to_der()?)
}
