//! The operator's lifecycle writes to a vault or Managed HSM: certificates the vault issues
//! itself and imports (backup and restore are in `backup`).

use super::{KeyVaultBackend, MAX_NAME_TRIES, TAG_ID, TAG_LABEL, errors};
use crate::backend::{IssueRequest, KeyRecord, KeySpec, ObjectUpdate};
use crate::certdb::NewCert;
use crate::error::{Error, Result};
use azure_security_keyvault_certificates::models::{
    CertificatePolicy, CertificatePolicyAction, CreateCertificateParameters,
    CurveName as CertCurve, ImportCertificateParameters, IssuerParameters, KeyProperties,
    KeyType as CertKeyType, KeyUsageType, LifetimeAction, LifetimeActionTrigger,
    LifetimeActionType, SecretProperties, X509CertificateProperties,
};
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, CurveName, ImportKeyParameters, JsonWebKey, KeyClientGetKeyOptions,
    KeyClientUpdateKeyPropertiesOptions, KeyType, UpdateKeyPropertiesParameters,
};
use openssl::pkey::{Id, PKey, Private};
use std::collections::HashMap;
use std::time::Duration;

/// How long a certificate the vault issues may take (Key Vault polls every 10 s; an
/// RSA-HSM key takes tens of seconds).
pub(super) const ISSUE_BOUND: Duration = Duration::from_secs(300);

/// Key Vault's policy counts validity in whole months: `days` rounded up.
fn months(days: u32) -> i32 {
    i32::try_from(days.saturating_mul(12).div_ceil(365).max(1)).unwrap_or(i32::MAX)
}

/// The name and version in a Key Vault key id `https://host/keys/NAME/VERSION`.
fn name_version(kid: &str) -> Option<(String, String)> {
    let url = url::Url::parse(kid).ok()?;
    let mut s = url.path_segments()?;
    if s.next()? != "keys" {
        return None;
    }
    Some((s.next()?.to_owned(), s.next()?.to_owned()))
}

fn cert_curve(c: crate::crypto::Curve) -> CertCurve {
    match c {
        crate::crypto::Curve::P256 => CertCurve::P256,
        crate::crypto::Curve::P384 => CertCurve::P384,
        crate::crypto::Curve::P521 => CertCurve::P521,
    }
}

impl KeyVaultBackend {
    /// A certificate with a `Self` issuer: the vault makes the key (HSM-protected when the
    /// slot's keys are) and the certificate; on an existing certificate, new versions.
    pub(super) fn issue(&self, name: &str, r: &IssueRequest<'_>) -> Result<Option<KeyRecord>> {
        let Some(client) = &self.certificates else {
            return Ok(None);
        };
        let hsm = self.cfg.hsm_keys;
        let mut key = KeyProperties {
            exportable: Some(false),
            reuse_key: Some(false),
            ..Default::default()
        };
        // The key's operations follow the usages: key and data encipherment give an RSA
        // key wrapKey/unwrapKey and encrypt/decrypt (XML-Encryption key transport is
        // C_Decrypt); the vault refuses those operations on EC keys.
        let usage = match r.spec {
            KeySpec::Rsa { bits, .. } => {
                key.key_type = Some(if hsm {
                    CertKeyType::RsaHsm
                } else {
                    CertKeyType::Rsa
                });
                key.key_size = Some(i32::try_from(*bits).map_err(|_| Error::KeySizeRange)?);
                vec![
                    KeyUsageType::DigitalSignature,
                    KeyUsageType::KeyEncipherment,
                    KeyUsageType::DataEncipherment,
                ]
            }
            KeySpec::Ec(c) => {
                key.key_type = Some(if hsm {
                    CertKeyType::EcHsm
                } else {
                    CertKeyType::Ec
                });
                key.curve = Some(cert_curve(*c));
                vec![KeyUsageType::DigitalSignature]
            }
        };
        let policy = CertificatePolicy {
            issuer_parameters: Some(IssuerParameters {
                name: Some("Self".into()),
                ..Default::default()
            }),
            key_properties: Some(key),
            secret_properties: Some(SecretProperties {
                content_type: Some("application/x-pkcs12".into()),
            }),
            x509_certificate_properties: Some(X509CertificateProperties {
                subject: Some(r.subject.to_owned()),
                key_usage: Some(usage),
                validity_in_months: Some(months(r.days)),
                ..Default::default()
            }),
            // A signing certificate in federation metadata must not change by itself:
            // the contacts are told 30 days ahead, `cert rotate` renews.
            lifetime_actions: Some(vec![LifetimeAction {
                action: Some(LifetimeActionType {
                    action_type: Some(CertificatePolicyAction::EmailContacts),
                }),
                trigger: Some(LifetimeActionTrigger {
                    days_before_expiry: Some(30),
                    ..Default::default()
                }),
            }]),
            ..Default::default()
        };
        let body = CreateCertificateParameters {
            certificate_policy: Some(policy),
            ..Default::default()
        };
        let what = format!("issue certificate {name}");
        let body = body.try_into().map_err(|e| errors::map(e, &what))?;
        let cert = self
            .runtime
            .run(ISSUE_BOUND.max(self.deadline * 3), async {
                // Polled every 2 s where the service gives no Retry-After (the SDK's
                // default is 30 s).
                let mut o = azure_security_keyvault_certificates::models::CertificateClientCreateCertificateOptions::default();
                o.method_options.frequency = azure_core::time::Duration::seconds(2);
                client.begin_create_certificate(name, body, Some(o))?.await
            })?
            .map_err(|e| errors::map(e, &what))?
            .into_model()
            .map_err(|e| errors::map(e, &what))?;
        let (key_name, version) = cert
            .kid
            .as_deref()
            .and_then(name_version)
            .ok_or_else(|| Error::Backend(format!("{what}: no key id in the answer")))?;
        self.run(self.fetch_version(&key_name, &version, true))??
            .map(|(mut k, _)| {
                k.local = true;
                Some(k)
            })
            .ok_or_else(|| Error::Backend(format!("{what}: the new key has no public key")))
    }

    pub(super) fn import(
        &self,
        name: &str,
        pkcs8_der: &[u8],
        chain: &[Vec<u8>],
        update: &ObjectUpdate,
    ) -> Result<KeyRecord> {
        if self.run(self.exists(name))?? {
            return Err(Error::ActionProhibited(format!(
                "{} already has a key {name:?}; choose another name (`cert rotate` makes new versions)",
                self.cfg.url
            )));
        }
        let pkey = PKey::private_key_from_der(pkcs8_der)?;
        let mut tags = HashMap::new();
        if let Some(l) = &update.label {
            tags.insert(TAG_LABEL.to_owned(), l.clone());
        }
        let (key_name, version) = match &self.certificates {
            Some(client) => {
                // A vault keeps the certificate with its key: certificate import of a PEM
                // bundle (PKCS#8 key, then the chain), the key not exportable.
                let mut pem = pkey.private_key_to_pem_pkcs8()?;
                for der in chain {
                    pem.extend(openssl::x509::X509::from_der(der)?.to_pem()?);
                }
                // With hsm_keys (or require_hsm) the key goes into the vault's HSMs: the
                // policy's key type says so (RSA-HSM / EC-HSM).
                let key_type = self.cfg.hsm_keys.then(|| {
                    if pkey.id() == openssl::pkey::Id::EC {
                        CertKeyType::EcHsm
                    } else {
                        CertKeyType::RsaHsm
                    }
                });
                let params = ImportCertificateParameters {
                    base64_encoded_certificate: Some(openssl::base64::encode_block(&pem)),
                    certificate_policy: Some(CertificatePolicy {
                        key_properties: Some(KeyProperties {
                            exportable: Some(false),
                            key_type,
                            ..Default::default()
                        }),
                        secret_properties: Some(SecretProperties {
                            content_type: Some("application/x-pem-file".into()),
                        }),
                        ..Default::default()
                    }),
                    tags: Some(tags),
                    ..Default::default()
                };
                let what = format!("import certificate {name}");
                let body = params.try_into().map_err(|e| errors::map(e, &what))?;
                let cert = self
                    .run(client.import_certificate(name, body, None))?
                    .map_err(|e| errors::map(e, &what))?
                    .into_model()
                    .map_err(|e| errors::map(e, &what))?;
                cert.kid
                    .as_deref()
                    .and_then(name_version)
                    .ok_or_else(|| Error::Backend(format!("{what}: no key id in the answer")))?
            }
            None => {
                // Managed HSM keeps keys only: the key is imported, the certificates go to
                // the certificate database.
                let params = ImportKeyParameters {
                    hsm: Some(true),
                    key: Some(jwk(&pkey)?),
                    tags: Some(tags),
                    ..Default::default()
                };
                let what = format!("import key {name}");
                let body = params.try_into().map_err(|e| errors::map(e, &what))?;
                let key = self
                    .run(self.keys.import_key(name, body, None))?
                    .map_err(|e| errors::map(e, &what))?
                    .into_model()
                    .map_err(|e| errors::map(e, &what))?;
                key.key
                    .as_ref()
                    .and_then(|k| k.kid.as_deref())
                    .and_then(name_version)
                    .ok_or_else(|| Error::Backend(format!("{what}: no key id in the answer")))?
            }
        };
        let record = self
            .run(self.fetch_version(&key_name, &version, true))??
            .map(|(k, _)| k)
            .ok_or_else(|| Error::Backend(format!("imported key {name}: no public key")))?;
        if self.certificates.is_none() {
            let label = update.label.clone().unwrap_or_else(|| name.to_owned());
            for (i, der) in chain.iter().enumerate() {
                self.local_certificates.insert(&NewCert {
                    key_name: (i == 0).then_some(key_name.as_str()),
                    key_version: (i == 0).then_some(version.as_str()),
                    cka_id: &[],
                    label: &label,
                    der,
                })?;
            }
        }
        Ok(record)
    }
}

/// The private key as a JSON Web Key for a Managed HSM import (RSA-HSM / EC-HSM).
fn jwk(pkey: &PKey<Private>) -> Result<JsonWebKey> {
    let mut k = JsonWebKey::default();
    match pkey.id() {
        Id::RSA => {
            let rsa = pkey.rsa()?;
            let v = |b: Option<&openssl::bn::BigNumRef>| b.map(openssl::bn::BigNumRef::to_vec);
            k.kty = Some(KeyType::RsaHsm);
            k.n = Some(rsa.n().to_vec());
            k.e = Some(rsa.e().to_vec());
            k.d = Some(rsa.d().to_vec());
            k.p = v(rsa.p());
            k.q = v(rsa.q());
            k.dp = v(rsa.dmp1());
            k.dq = v(rsa.dmq1());
            k.qi = v(rsa.iqmp());
            k.key_ops = Some(
                [
                    "sign",
                    "verify",
                    "encrypt",
                    "decrypt",
                    "wrapKey",
                    "unwrapKey",
                ]
                .map(String::from)
                .to_vec(),
            );
        }
        Id::EC => {
            let ec = pkey.ec_key()?;
            let curve = ec
                .group()
                .curve_name()
                .and_then(crate::crypto::Curve::from_nid)
                .ok_or(Error::KeySizeRange)?;
            let len = curve.field_len();
            let mut ctx = openssl::bn::BigNumContext::new()?;
            let (mut x, mut y) = (openssl::bn::BigNum::new()?, openssl::bn::BigNum::new()?);
            ec.public_key()
                .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)?;
            let pad = |b: &openssl::bn::BigNumRef| -> Result<Vec<u8>> {
                b.to_vec_padded(i32::try_from(len).map_err(|_| Error::KeySizeRange)?)
                    .map_err(Error::from)
            };
            k.kty = Some(KeyType::EcHsm);
            k.crv = Some(match curve {
                crate::crypto::Curve::P256 => CurveName::P256,
                crate::crypto::Curve::P384 => CurveName::P384,
                crate::crypto::Curve::P521 => CurveName::P521,
            });
            k.x = Some(pad(&x)?);
            k.y = Some(pad(&y)?);
            k.d = Some(pad(ec.private_key())?);
            k.key_ops = Some(["sign", "verify"].map(String::from).to_vec());
        }
        _ => return Err(Error::KeySizeRange),
    }
    Ok(k)
}

impl KeyVaultBackend {
    /// C_SetAttributeValue of CKA_LABEL / CKA_ID on a key version: its tags.
    pub(super) fn update_key_tags(&self, stable_id: &str, update: &ObjectUpdate) -> Result<()> {
        if !stable_id.starts_with("https://") || !stable_id.contains("/keys/") {
            return Err(Error::ActionProhibited(
                "the vault's certificates are managed in the vault".into(),
            ));
        }
        let url =
            url::Url::parse(stable_id).map_err(|e| Error::Internal(format!("{stable_id}: {e}")))?;
        let mut segs = url.path_segments().into_iter().flatten().skip(1);
        let (Some(name), Some(version)) = (
            segs.next().map(str::to_owned),
            segs.next().map(str::to_owned),
        ) else {
            return Err(Error::Internal(format!(
                "{stable_id}: no key name and version"
            )));
        };
        let what = format!("update tags of {name}/{version}");
        self.changing(&name, || self.write_tags(&name, &version, update, &what))
    }

    fn write_tags(
        &self,
        name: &str,
        version: &str,
        update: &ObjectUpdate,
        what: &str,
    ) -> Result<()> {
        let current = self
            .run(async {
                let mut o = KeyClientGetKeyOptions::default();
                o.key_version = Some(version.to_owned());
                self.keys.get_key(name, Some(o)).await
            })?
            .map_err(|e| errors::map(e, what))?
            .into_model()
            .map_err(|e| errors::map(e, what))?;
        let mut tags = current.tags.unwrap_or_default();
        if let Some(l) = &update.label {
            tags.insert(TAG_LABEL.to_owned(), l.clone());
        }
        if let Some(i) = &update.id {
            tags.insert(TAG_ID.to_owned(), crate::crypto::hex::encode(i));
        }
        let mut params = UpdateKeyPropertiesParameters::default();
        params.tags = Some(tags);
        let body = params.try_into().map_err(|e| errors::map(e, what))?;
        let mut o = KeyClientUpdateKeyPropertiesOptions::default();
        o.key_version = Some(version.to_owned());
        self.run(self.keys.update_key_properties(name, body, Some(o)))?
            .map(|_| ())
            .map_err(|e| errors::map(e, what))
    }
}

impl KeyVaultBackend {
    /// `generate_key`'s work: the first free name of `names(0..)` gets the new key.
    pub(super) fn generate_under(
        &self,
        base: &str,
        params: CreateKeyParameters,
        names: &dyn Fn(usize) -> String,
    ) -> Result<KeyRecord> {
        // C_GenerateKeyPair makes a new key: a free name, never a new version of another.
        // Key Vault has no conditional create (a create under a taken name adds a
        // version), so a name checked free may be taken by another creator (a thread or
        // a process) before this create lands. After the create the name's versions are
        // listed: the first one created keeps the name; a later one (this call's, if it
        // came second) is disabled, which leaves the first the newest enabled version,
        // and the next free name is tried. Never is another creator's version disabled.
        for n in 0..MAX_NAME_TRIES {
            let key_name = names(n);
            self.forget(&key_name);
            if self.run(self.exists(&key_name))?? {
                continue;
            }
            // A slot limited to some key names would hide a key of another name: refuse
            // before anything is created.
            if !self.wanted(&key_name, params.tags.as_ref()) {
                return Err(Error::TemplateInconsistent(format!(
                    "this slot shows only the keys named in key_names ({}); a new key would be named {key_name:?}: label it with one of those names that is free, or generate it in another slot",
                    self.cfg.key_names.as_deref().unwrap_or_default().join(", ")
                )));
            }
            let key = self.create_version(&key_name, params.clone())?;
            let version = Self::version_of(&key)?;
            let earlier = match self.run(self.earlier_versions(&key_name, &version)) {
                Ok(Ok(n)) => n,
                // Not knowing whether it was raced, the new version is not left enabled.
                Ok(Err(e)) | Err(e) => {
                    let _ = self.run(self.disable_version(&key_name, &version));
                    return Err(e);
                }
            };
            if earlier == 0 {
                return self.level3_or_refused(key);
            }
            tracing::warn!(
                "generating key {key_name}: another client created the same key name first ({earlier} earlier version(s)); disabling the new version {version} (it stays in the vault, disabled) and trying the next free name"
            );
            self.run(self.disable_version(&key_name, &version))?
                .map_err(|e| {
                    Error::Backend(format!(
                        "{e}; version {version} of {key_name}, made by this call, is still enabled"
                    ))
                })?;
        }
        Err(Error::Backend(format!(
            "no free key name near {base} after {MAX_NAME_TRIES} tries"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_months_round_up() {
        assert_eq!(months(1), 1);
        assert_eq!(months(30), 1);
        assert_eq!(months(31), 2);
        assert_eq!(months(365), 12);
        assert_eq!(months(730), 24);
        assert_eq!(months(3650), 120);
    }

    #[test]
    fn key_ids_give_name_and_version() {
        assert_eq!(
            name_version("https://v.vault.azure.net/keys/sig/abc123"),
            Some(("sig".into(), "abc123".into()))
        );
        assert_eq!(
            name_version("https://v.vault.azure.net/certificates/sig/abc"),
            None
        );
        assert_eq!(name_version("https://v.vault.azure.net/keys/sig"), None);
    }
}
