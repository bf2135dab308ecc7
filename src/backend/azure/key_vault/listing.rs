//! Listing a vault: keys and versions (each fetched for its public key), filters, certificates; JWK to SPKI.

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

    /// Lists keys, versions (each fetched for its public key) and certificates.
    pub(super) async fn list_remote(&self) -> Result<(Vec<(KeyRecord, f64)>, Vec<CertRecord>)> {
        let mut names = Vec::new();
        let mut pager = self
            .keys
            .list_key_properties(None)
            .map_err(|e| errors::map(e, "listing keys"))?;
        while let Some(item) = pager
            .try_next()
            .await
            .map_err(|e| errors::map(e, "listing keys"))?
        {
            let Ok(id) = item.resource_id() else { continue };
            if self.wanted(&id.name, item.tags.as_ref()) {
                names.push(id.name);
            }
        }
        let mut versions = Vec::new();
        for name in &names {
            match self.enabled_versions(name).await {
                Ok(v) => versions.extend(v),
                // Deleted by another client since the names were listed: not an error.
                Err(Error::ObjectGone(m)) => tracing::info!("{m}"),
                Err(e) => return Err(e),
            }
        }
        // The newest enabled version of each key is its current one.
        let mut newest: HashMap<String, i64> = HashMap::new();
        for (name, _, created) in &versions {
            let e = newest.entry(name.clone()).or_insert(*created);
            *e = (*e).max(*created);
        }
        // Versions made within the same second (a rotation right after a creation) tie on
        // `created`: the service's own answer for the key without a version decides.
        let mut tied: HashMap<String, usize> = HashMap::new();
        for (name, _, created) in &versions {
            if newest.get(name) == Some(created) {
                *tied.entry(name.clone()).or_default() += 1;
            }
        }
        let mut decided: HashMap<String, String> = HashMap::new();
        for name in tied.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k) {
            let what = format!("reading the current version of {name}");
            let read = match self.keys.get_key(name, None).await {
                Ok(r) => r.into_model().map_err(|e| errors::map(e, &what)),
                Err(e) => Err(errors::map(e, &what)),
            };
            let key = match read {
                Ok(key) => key,
                // Deleted meanwhile: its versions are not fetched either.
                Err(Error::ObjectGone(m)) => {
                    tracing::info!("{m}");
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(v) = key.resource_id().ok().and_then(|id| id.version) {
                decided.insert(name.clone(), v);
            }
        }
        let fetched: Vec<Result<Option<(KeyRecord, f64)>>> =
            futures::stream::iter(versions.into_iter().map(|(name, version, created)| {
                let current = match decided.get(&name) {
                    Some(v) => *v == version,
                    None => newest.get(&name) == Some(&created),
                };
                async move { self.fetch_version(&name, &version, current).await }
            }))
            .buffer_unordered(LIST_CONCURRENCY)
            .collect()
            .await;
        let mut keys = Vec::new();
        for f in fetched {
            match f {
                Ok(Some(k)) => keys.push(k),
                Ok(None) => {}
                // A version that vanished or was disabled meanwhile is not an error.
                Err(Error::ObjectGone(m)) => tracing::info!("{m}"),
                Err(e) => return Err(e),
            }
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
            Some(c) => match self.list_certificates(c, &names).await {
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

    /// The enabled versions of key `name`: (name, version, created).
    async fn enabled_versions(&self, name: &str) -> Result<Vec<(String, String, i64)>> {
        let mut versions = Vec::new();
        let mut o = KeyClientListKeyPropertiesVersionsOptions::default();
        o.maxresults = Some(25);
        let what = format!("listing the versions of {name}");
        let mut pager = self
            .keys
            .list_key_properties_versions(name, Some(o))
            .map_err(|e| errors::map(e, &what))?;
        while let Some(item) = pager.try_next().await.map_err(|e| errors::map(e, &what))? {
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
            if let (true, Ok(id)) = (enabled, item.resource_id())
                && let Some(v) = id.version
            {
                versions.push((name.to_owned(), v, created));
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

    pub(super) async fn list_certificates(
        &self,
        client: &CertificateClient,
        key_names: &[String],
    ) -> Result<Vec<CertRecord>> {
        let mut out = Vec::new();
        let mut pager = client
            .list_certificate_properties(None)
            .map_err(|e| errors::map(e, "listing certificates"))?;
        while let Some(item) = pager
            .try_next()
            .await
            .map_err(|e| errors::map(e, "listing certificates"))?
        {
            let enabled = item
                .attributes
                .as_ref()
                .and_then(|a| a.enabled)
                .unwrap_or(true);
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
            let what = format!("reading certificate {name}");
            let cert = client
                .get_certificate(&name, None)
                .await
                .map_err(|e| errors::map(e, &what))?
                .into_model()
                .map_err(|e| errors::map(e, &what))?;
            let Some(current) = cert.id.clone() else {
                continue;
            };
            if let Some(der) = cert.cer {
                out.push(CertRecord {
                    stable_id: current.to_ascii_lowercase(),
                    label: name.clone(),
                    id: None,
                    der,
                    authority: false,
                    managed: true,
                });
            }
            // Older versions: their keys stay listed for decryption, and an application
            // finds such a key by its certificate.
            out.extend(self.older_certificates(client, &name, &current).await?);
        }
        Ok(out)
    }

    /// The enabled versions of certificate `name` other than `current` (its id), labelled
    /// `name/version` like their keys.
    pub(super) async fn older_certificates(
        &self,
        client: &CertificateClient,
        name: &str,
        current: &str,
    ) -> Result<Vec<CertRecord>> {
        let what = format!("listing the versions of certificate {name}");
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
