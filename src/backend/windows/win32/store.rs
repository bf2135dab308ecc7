//! Certificate stores and certificates: opening a system store, PFX import, enumeration
//! and search, adding and deleting certificates, their properties (the link to a key,
//! labels), and the private key acquired through a certificate.

use super::{
    CapiProvider, Location, NcryptKey, WinError, WinResult, check, from_wide, len32, wide, wide_opt,
};
use std::ptr::{null, null_mut};
use windows_sys::Win32::Security::Cryptography as c;

/// An open certificate store, closed on drop.
pub struct Store(c::HCERTSTORE);

impl Store {
    /// Opens system store `name` (`My`, `Root`, …) at `location`: read-only and only if
    /// it exists (a misspelt name is an error, not an empty store), or for writing,
    /// created when missing (a new user profile may not have `My` yet).
    pub fn open(location: Location, name: &str, write: bool) -> WinResult<Store> {
        let mut flags = match location {
            Location::CurrentUser => c::CERT_SYSTEM_STORE_CURRENT_USER,
            Location::LocalMachine => c::CERT_SYSTEM_STORE_LOCAL_MACHINE,
        };
        if !write {
            flags |= c::CERT_STORE_READONLY_FLAG | c::CERT_STORE_OPEN_EXISTING_FLAG;
        }
        let name = wide(name);
        // SAFETY: CERT_STORE_PROV_SYSTEM_W takes the store name as a NUL-terminated UTF-16
        // string in `pvPara`; `name` outlives the call.
        let h = unsafe {
            c::CertOpenStore(
                c::CERT_STORE_PROV_SYSTEM_W,
                0,
                0,
                flags,
                name.as_ptr().cast(),
            )
        };
        if !h.is_null() {
            return Ok(Store(h));
        }
        Err(WinError::last("CertOpenStore"))
    }

    /// The certificates of a PKCS#12 file (its keys imported into the user's or the
    /// machine's key containers), as a temporary store.
    pub fn import_pfx(pfx: &[u8], password: &str, machine: bool) -> WinResult<Store> {
        let blob = c::CRYPT_INTEGER_BLOB {
            cbData: len32(pfx.len()).map_err(|_| WinError::status("PFXImportCertStore", 0))?,
            pbData: pfx.as_ptr().cast_mut(),
        };
        let password = wide(password);
        let keyset = if machine {
            c::CRYPT_MACHINE_KEYSET
        } else {
            c::CRYPT_USER_KEYSET
        };
        // Keys go to CNG where the system takes the flag (PSS, OAEP with SHA-2); where it
        // does not (Wine 8 refuses it), to CryptoAPI.
        for flags in [keyset | c::PKCS12_PREFER_CNG_KSP, keyset] {
            // SAFETY: `blob` points at `pfx`, which the call only reads; the password is
            // a NUL-terminated UTF-16 string; both outlive the call.
            let h = unsafe { c::PFXImportCertStore(&blob, password.as_ptr(), flags) };
            if !h.is_null() {
                return Ok(Store(h));
            }
        }
        Err(WinError::last("PFXImportCertStore"))
    }

    /// Every certificate of the store.
    pub fn certificates(&self) -> Vec<Cert> {
        let mut out = Vec::new();
        let mut prev: *const c::CERT_CONTEXT = null();
        loop {
            // SAFETY: `prev` is null or the context the previous call returned, which this
            // call frees; the store handle is open.
            let next = unsafe { c::CertEnumCertificatesInStore(self.0, prev) };
            if next.is_null() {
                break;
            }
            // SAFETY: `next` is a valid context; the duplicate is ours to free.
            out.push(Cert(unsafe { c::CertDuplicateCertificateContext(next) }));
            prev = next;
        }
        out
    }

    /// The certificate with this SHA-1 thumbprint.
    pub fn find_sha1(&self, sha1: &[u8]) -> Option<Cert> {
        let blob = c::CRYPT_INTEGER_BLOB {
            cbData: u32::try_from(sha1.len()).ok()?,
            pbData: sha1.as_ptr().cast_mut(),
        };
        // SAFETY: CERT_FIND_SHA1_HASH takes a CRYPT_HASH_BLOB that outlives the call.
        let found = unsafe {
            c::CertFindCertificateInStore(
                self.0,
                c::X509_ASN_ENCODING | c::PKCS_7_ASN_ENCODING,
                0,
                c::CERT_FIND_SHA1_HASH,
                (&raw const blob).cast(),
                null(),
            )
        };
        (!found.is_null()).then_some(Cert(found))
    }

    /// Adds a DER certificate; one already there is an error (never replaced).
    pub fn add_der(&self, der: &[u8]) -> WinResult<Cert> {
        let mut ctx: *mut c::CERT_CONTEXT = null_mut();
        // SAFETY: the DER buffer outlives the call; `ctx` receives a context we free.
        let ok = unsafe {
            c::CertAddEncodedCertificateToStore(
                self.0,
                c::X509_ASN_ENCODING,
                der.as_ptr(),
                len32(der.len()).map_err(|_| WinError::status("add certificate", 0))?,
                c::CERT_STORE_ADD_NEW,
                &mut ctx,
            )
        };
        check(ok, "CertAddEncodedCertificateToStore")?;
        Ok(Cert(ctx))
    }

    /// Adds a copy of `cert` (with its properties: the link to its key) to this store.
    pub fn add(&self, cert: &Cert) -> WinResult<Cert> {
        let mut ctx: *mut c::CERT_CONTEXT = null_mut();
        // SAFETY: `cert.0` is a valid context; `ctx` receives one we free.
        let ok = unsafe {
            c::CertAddCertificateContextToStore(self.0, cert.0, c::CERT_STORE_ADD_NEW, &mut ctx)
        };
        check(ok, "CertAddCertificateContextToStore")?;
        Ok(Cert(ctx))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: the handle is open and closed once here.
        unsafe { c::CertCloseStore(self.0, 0) };
    }
}

/// Where a certificate's private key is, from CERT_KEY_PROV_INFO_PROP_ID. `None` names
/// are the API's defaults (null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvInfo {
    pub container: Option<String>,
    pub provider: Option<String>,
    /// 0 for a CNG key storage provider, a PROV_* type for a CryptoAPI provider.
    pub prov_type: u32,
    pub flags: u32,
    pub key_spec: u32,
}

impl ProvInfo {
    pub fn machine(&self) -> bool {
        self.flags & c::CRYPT_MACHINE_KEYSET != 0
    }

    /// Microsoft's software RSA providers share one key storage: a container of any of
    /// them opens with the RSA-AES provider (which has SHA-2).
    pub fn microsoft_software_rsa(&self) -> bool {
        const NAMES: [&str; 5] = [
            "Microsoft Base Cryptographic Provider v1.0",
            "Microsoft Enhanced Cryptographic Provider v1.0",
            "Microsoft Strong Cryptographic Provider",
            "Microsoft Enhanced RSA and AES Cryptographic Provider",
            "Microsoft RSA SChannel Cryptographic Provider",
        ];
        matches!(
            self.prov_type,
            c::PROV_RSA_FULL | c::PROV_RSA_AES | c::PROV_RSA_SCHANNEL
        ) && self
            .provider
            .as_deref()
            .is_none_or(|p| NAMES.iter().any(|n| n.eq_ignore_ascii_case(p)))
    }
}

/// A certificate context, freed on drop.
pub struct Cert(*const c::CERT_CONTEXT);

impl Cert {
    pub fn der(&self) -> Vec<u8> {
        // SAFETY: a valid context's encoded bytes are `cbCertEncoded` long at
        // `pbCertEncoded` while the context lives.
        unsafe {
            let ctx = &*self.0;
            std::slice::from_raw_parts(ctx.pbCertEncoded, ctx.cbCertEncoded as usize).to_vec()
        }
    }

    /// A property, in an 8-byte-aligned buffer (structures the API writes there are read
    /// in place), and its length in bytes; `None` when the certificate does not have it.
    fn property_aligned(&self, id: u32) -> Option<(Vec<u64>, usize)> {
        let mut size = 0u32;
        // SAFETY: a size query with a null buffer.
        let ok = unsafe { c::CertGetCertificateContextProperty(self.0, id, null_mut(), &mut size) };
        if ok == 0 {
            return None;
        }
        let bytes = usize::try_from(size).ok()?;
        let mut buf = vec![0u64; bytes.div_ceil(8)];
        // SAFETY: `buf` has at least the `size` bytes the first call asked for.
        let ok = unsafe {
            c::CertGetCertificateContextProperty(self.0, id, buf.as_mut_ptr().cast(), &mut size)
        };
        if ok == 0 {
            return None;
        }
        Some((buf, usize::try_from(size).ok()?.min(bytes)))
    }

    /// A property's bytes, `None` when the certificate does not have it.
    pub fn property(&self, id: u32) -> Option<Vec<u8>> {
        let (buf, len) = self.property_aligned(id)?;
        Some(buf.iter().flat_map(|w| w.to_ne_bytes()).take(len).collect())
    }

    /// Where the private key is, when the certificate has one.
    // The casts from `base` are aligned: it points into a `Vec<u64>` (see the SAFETY note).
    #[allow(clippy::cast_ptr_alignment)]
    pub fn prov_info(&self) -> Option<ProvInfo> {
        let (buf, len) = self.property_aligned(c::CERT_KEY_PROV_INFO_PROP_ID)?;
        if len < std::mem::size_of::<c::CRYPT_KEY_PROV_INFO>() {
            return None;
        }
        let base = buf.as_ptr().cast::<u8>();
        // SAFETY: `base .. base + len` is the property inside `buf`, which is 8-byte
        // aligned (a CRYPT_KEY_PROV_INFO's alignment) and lives to the end of this block;
        // string pointers outside it are ignored. `end` is rounded down to a whole u16, so
        // that `from_wide`'s distance from an even `p` is a whole number of u16s.
        unsafe {
            let end = base.add(len - len % 2).cast::<u16>();
            let info = &*base.cast::<c::CRYPT_KEY_PROV_INFO>();
            let inside = |p: *const u16| {
                (p.cast::<u8>() >= base && p < end && (p as usize).is_multiple_of(2)).then_some(p)
            };
            Some(ProvInfo {
                container: inside(info.pwszContainerName).and_then(|p| from_wide(p, end)),
                provider: inside(info.pwszProvName).and_then(|p| from_wide(p, end)),
                prov_type: info.dwProvType,
                flags: info.dwFlags,
                key_spec: info.dwKeySpec,
            })
        }
    }

    /// Links the certificate to a key (CERT_KEY_PROV_INFO_PROP_ID).
    pub fn set_prov_info(&self, p: &ProvInfo) -> WinResult<()> {
        let mut container = wide_opt(&p.container);
        let mut provider = wide_opt(&p.provider);
        let info = c::CRYPT_KEY_PROV_INFO {
            pwszContainerName: container.as_mut().map_or(null_mut(), Vec::as_mut_ptr),
            pwszProvName: provider.as_mut().map_or(null_mut(), Vec::as_mut_ptr),
            dwProvType: p.prov_type,
            dwFlags: p.flags,
            cProvParam: 0,
            rgProvParam: null_mut(),
            dwKeySpec: p.key_spec,
        };
        // SAFETY: the struct and its strings outlive the call, which copies them.
        let ok = unsafe {
            c::CertSetCertificateContextProperty(
                self.0,
                c::CERT_KEY_PROV_INFO_PROP_ID,
                0,
                (&raw const info).cast(),
            )
        };
        check(ok, "setting the certificate's key")
    }

    /// A property holding bytes (a CRYPT_DATA_BLOB); `None` removes it.
    pub fn set_bytes(&self, id: u32, value: Option<&[u8]>) -> WinResult<()> {
        let blob = match value {
            Some(v) => Some(c::CRYPT_INTEGER_BLOB {
                cbData: len32(v.len()).map_err(|_| WinError::status("property", 0))?,
                pbData: v.as_ptr().cast_mut(),
            }),
            None => None,
        };
        let p = blob
            .as_ref()
            .map_or(null(), |b| (b as *const c::CRYPT_INTEGER_BLOB).cast());
        // SAFETY: the blob and its bytes outlive the call, which copies them; null
        // removes the property.
        let ok = unsafe { c::CertSetCertificateContextProperty(self.0, id, 0, p) };
        check(ok, "setting a certificate property")
    }

    /// The friendly name (a UTF-16 string property).
    pub fn friendly_name(&self) -> Option<String> {
        let b = self.property(c::CERT_FRIENDLY_NAME_PROP_ID)?;
        let w: Vec<u16> = b
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .take_while(|u| *u != 0)
            .collect();
        Some(String::from_utf16_lossy(&w)).filter(|s| !s.is_empty())
    }

    pub fn set_friendly_name(&self, name: &str) -> WinResult<()> {
        let w = wide(name);
        let bytes: Vec<u8> = w.iter().flat_map(|u| u.to_le_bytes()).collect();
        self.set_bytes(c::CERT_FRIENDLY_NAME_PROP_ID, Some(&bytes))
    }

    /// Deletes the certificate from its store.
    pub fn delete(self) -> WinResult<()> {
        // SAFETY: CertDeleteCertificateFromStore frees the context it is given (even on
        // failure), so ours is handed over and not freed again.
        let ok = unsafe { c::CertDeleteCertificateFromStore(self.0) };
        std::mem::forget(self);
        check(ok, "CertDeleteCertificateFromStore")
    }

    /// The certificate's private key, acquired silently: a CNG handle when the key spec
    /// says CNG, else the CryptoAPI provider (never handed to NCrypt). The certificate
    /// goes with it: a handle the caller may not free belongs to the certificate context.
    pub fn private_key(self) -> WinResult<Acquired> {
        let mut handle: c::HCRYPTPROV_OR_NCRYPT_KEY_HANDLE = 0;
        let mut spec: c::CERT_KEY_SPEC = 0;
        let mut free = 0;
        // SAFETY: out-parameters are valid; the handle is freed by `AcquiredKey` when
        // `free` says the caller owns it.
        let ok = unsafe {
            c::CryptAcquireCertificatePrivateKey(
                self.0,
                c::CRYPT_ACQUIRE_SILENT_FLAG | c::CRYPT_ACQUIRE_ALLOW_NCRYPT_KEY_FLAG,
                null(),
                &mut handle,
                &mut spec,
                &mut free,
            )
        };
        check(ok, "CryptAcquireCertificatePrivateKey")?;
        let owned = free != 0;
        let key = if spec == c::CERT_NCRYPT_KEY_SPEC {
            AcquiredKey::Cng(NcryptKey { handle, owned })
        } else {
            AcquiredKey::Capi(CapiProvider { handle, owned })
        };
        Ok(Acquired {
            key,
            _cert: Some(self),
        })
    }
}

impl Drop for Cert {
    fn drop(&mut self) {
        // SAFETY: the context is ours and freed once.
        unsafe { c::CertFreeCertificateContext(self.0) };
    }
}

/// A private key, with the certificate it was acquired through (when it was): the key is
/// dropped before the certificate.
pub struct Acquired {
    pub key: AcquiredKey,
    _cert: Option<Cert>,
}

impl Acquired {
    /// A CNG key opened by name (no certificate involved).
    pub fn cng(key: NcryptKey) -> Acquired {
        Acquired {
            key: AcquiredKey::Cng(key),
            _cert: None,
        }
    }
}

/// What CryptAcquireCertificatePrivateKey gave.
pub enum AcquiredKey {
    Cng(NcryptKey),
    Capi(CapiProvider),
}
