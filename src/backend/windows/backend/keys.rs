//! Key lifecycle: generation of persisted CNG keys (and their CNG usage flags), import of
//! a key with its certificate through a PKCS#12 file, and deletion of a key's container.

use super::{
    Locator, PROP_ADDED, PROP_CKA_ID, WindowsStoreBackend, key_id, lock_err, win32_provider_name,
};
use crate::backend::windows::spki_of_blob;
use crate::backend::windows::win32::{CapiProvider, NcryptKey, ProvInfo, Store};
use crate::backend::{Backend, KeyRecord, KeySpec, KeyUsage, ObjectUpdate};
use crate::crypto::Curve;
use crate::error::{Error, Result};
use windows_sys::Win32::Security::Cryptography as c;

impl WindowsStoreBackend {
    /// `Backend::generate_key`: a persisted CNG key, listed before its certificate exists.
    pub(super) fn generate_cng_key(
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
        let key_name = format!(
            "{}{safe}-{}",
            self.key_prefix(),
            crate::crypto::hex::encode(&suffix)
        );
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

    /// `Backend::delete_key`: the key's container; its certificates stay, without a key.
    pub(super) fn delete_store_key(&self, stable_id: &str) -> Result<()> {
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

    /// `Backend::import_key`: a key and its certificate through `PFXImportCertStore`.
    pub(super) fn import_through_pkcs12(
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
        let password = crate::crypto::hex::encode(&password);
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
pub(super) fn cng_usage(usage: KeyUsage, rsa: bool) -> Result<u32> {
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
pub(super) fn usage_of(flags: u32) -> KeyUsage {
    let all = flags & c::NCRYPT_ALLOW_ALL_USAGES == c::NCRYPT_ALLOW_ALL_USAGES;
    let decrypt = all || flags & c::NCRYPT_ALLOW_DECRYPT_FLAG != 0;
    KeyUsage {
        sign: all || flags & c::NCRYPT_ALLOW_SIGNING_FLAG != 0,
        decrypt,
        unwrap: decrypt,
    }
}
