//! Owned handles over the certificate store API, CryptoAPI and CNG (NCrypt): each `unsafe`
//! call is here, next to the handle whose lifetime makes it sound. Nothing above this file
//! touches a raw pointer.

#![allow(unsafe_code)]

pub use super::Location;
use crate::error::{Error, Result};
use std::ptr::{null, null_mut};
use windows_sys::Win32::Security::Cryptography as c;

/// A NUL-terminated UTF-16 copy of `s` for the W functions.
pub fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// The text of a NUL-terminated UTF-16 string inside a buffer the API filled; `None` for
/// a null pointer (the API's "default").
///
/// # Safety
/// `p` is null or points into the live, u16-aligned allocation that ends at `end`.
unsafe fn from_wide(p: *const u16, end: *const u16) -> Option<String> {
    if p.is_null() || p >= end {
        return None;
    }
    // SAFETY: `p` and `end` are in one allocation with `p < end` (caller and check above).
    let max = usize::try_from(unsafe { end.offset_from(p) }).ok()?;
    // SAFETY: the `max` u16s from `p` are inside the allocation.
    let all = unsafe { std::slice::from_raw_parts(p, max) };
    let len = all.iter().position(|u| *u == 0)?;
    Some(String::from_utf16_lossy(&all[..len]))
}

/// A NUL-terminated UTF-16 copy of a name, or none for the API's default (null).
fn wide_opt(s: &Option<String>) -> Option<Vec<u16>> {
    s.as_deref().map(wide)
}

fn ptr_opt(w: &Option<Vec<u16>>) -> *const u16 {
    w.as_ref().map_or(null(), |v| v.as_ptr())
}

/// `u32` of a length for the API.
fn len32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::DataLenRange)
}

/// HRESULT / SECURITY_STATUS values the module tells apart.
pub const NTE_BAD_DATA: i32 = 0x8009_0005_u32 as i32;
pub const NTE_BAD_KEYSET: i32 = 0x8009_0016_u32 as i32;
pub const NTE_SILENT_CONTEXT: i32 = 0x8009_0022_u32 as i32;
pub const NTE_NOT_SUPPORTED: i32 = 0x8009_0029_u32 as i32;
pub const NTE_INVALID_PARAMETER: i32 = 0x8009_0027_u32 as i32;
pub const NTE_PERM: i32 = 0x8009_0010_u32 as i32;
pub const CRYPT_E_EXISTS: i32 = 0x8009_2005_u32 as i32;

/// A failed Windows call: what was done, and the code.
#[derive(Debug)]
pub struct WinError {
    pub what: String,
    pub code: i32,
}

impl WinError {
    fn last(what: &str) -> WinError {
        let code = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        WinError {
            what: what.to_owned(),
            // GetLastError gives the HRESULT for crypto failures (NTE_*), a Win32 code
            // otherwise; both are kept as the API gave them.
            code,
        }
    }

    fn status(what: &str, code: i32) -> WinError {
        WinError {
            what: what.to_owned(),
            code,
        }
    }
}

impl std::fmt::Display for WinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self.code {
            NTE_BAD_DATA => "bad data (NTE_BAD_DATA)".to_owned(),
            NTE_BAD_KEYSET => "the key container does not exist (NTE_BAD_KEYSET)".to_owned(),
            NTE_SILENT_CONTEXT => "the key needs a dialog (a PIN or consent prompt), and this module never shows one (NTE_SILENT_CONTEXT)".to_owned(),
            NTE_NOT_SUPPORTED => "not supported by the key's provider (NTE_NOT_SUPPORTED)".to_owned(),
            NTE_INVALID_PARAMETER => "a parameter the provider refused (NTE_INVALID_PARAMETER)".to_owned(),
            NTE_PERM => "access denied to the key (NTE_PERM)".to_owned(),
            code => std::io::Error::from_raw_os_error(code).to_string(),
        };
        write!(f, "{}: {text} [{:#010x}]", self.what, self.code)
    }
}

impl From<WinError> for Error {
    fn from(e: WinError) -> Error {
        match e.code {
            // The key container is gone (deleted outside the module): the object is stale.
            NTE_BAD_KEYSET => Error::ObjectGone(e.to_string()),
            _ => Error::Backend(e.to_string()),
        }
    }
}

pub type WinResult<T> = std::result::Result<T, WinError>;

fn check(ok: windows_sys::core::BOOL, what: &str) -> WinResult<()> {
    if ok != 0 {
        Ok(())
    } else {
        Err(WinError::last(what))
    }
}

fn check_status(status: i32, what: &str) -> WinResult<()> {
    if status == 0 {
        Ok(())
    } else {
        Err(WinError::status(what, status))
    }
}

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
    pub fn prov_info(&self) -> Option<ProvInfo> {
        let (buf, len) = self.property_aligned(c::CERT_KEY_PROV_INFO_PROP_ID)?;
        if len < std::mem::size_of::<c::CRYPT_KEY_PROV_INFO>() {
            return None;
        }
        let base = buf.as_ptr().cast::<u8>();
        // SAFETY: `base .. base + len` is the property inside `buf`, which is 8-byte
        // aligned (a CRYPT_KEY_PROV_INFO's alignment) and lives to the end of this block;
        // string pointers outside it are ignored.
        unsafe {
            let end = base.add(len).cast::<u16>();
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
            pwszContainerName: container.as_mut().map_or(null_mut(), |v| v.as_mut_ptr()),
            pwszProvName: provider.as_mut().map_or(null_mut(), |v| v.as_mut_ptr()),
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

/// A CNG key handle (freed on drop when ours).
pub struct NcryptKey {
    handle: c::NCRYPT_KEY_HANDLE,
    owned: bool,
}

impl Drop for NcryptKey {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: the handle is ours and freed once.
            unsafe { c::NCryptFreeObject(self.handle) };
        }
    }
}

/// A padding scheme for NCryptSignHash / NCryptDecrypt.
pub enum CngPadding<'a> {
    None,
    /// PKCS#1 v1.5 with this hash's DigestInfo (`None`: raw, no DigestInfo).
    Pkcs1(Option<windows_sys::core::PCWSTR>),
    Pss {
        hash: windows_sys::core::PCWSTR,
        salt: u32,
    },
    Oaep {
        hash: windows_sys::core::PCWSTR,
        label: &'a [u8],
    },
}

impl NcryptKey {
    /// Opens a persisted key of a key storage provider by name.
    pub fn open(provider: Option<&str>, name: &str, machine: bool) -> WinResult<NcryptKey> {
        let prov = NcryptProvider::open(provider)?;
        let name = wide(name);
        let mut handle = 0;
        let flags = c::NCRYPT_SILENT_FLAG
            | if machine {
                c::NCRYPT_MACHINE_KEY_FLAG
            } else {
                0
            };
        // SAFETY: the provider is open; `name` is NUL-terminated; `handle` receives a key
        // handle we free.
        let s = unsafe { c::NCryptOpenKey(prov.0, &mut handle, name.as_ptr(), 0, flags) };
        check_status(s, "NCryptOpenKey")?;
        Ok(NcryptKey {
            handle,
            owned: true,
        })
    }

    /// Creates and finalizes a persisted, non-exportable key.
    pub fn create(
        provider: &str,
        algorithm: windows_sys::core::PCWSTR,
        name: &str,
        bits: Option<u32>,
        usage: u32,
        machine: bool,
    ) -> WinResult<NcryptKey> {
        let prov = NcryptProvider::open(Some(provider))?;
        let wname = wide(name);
        let mut handle = 0;
        let flags = if machine {
            c::NCRYPT_MACHINE_KEY_FLAG
        } else {
            0
        };
        // SAFETY: the provider is open; the algorithm id is a static string; `wname` is
        // NUL-terminated; `handle` receives a key handle we free.
        let s = unsafe {
            c::NCryptCreatePersistedKey(prov.0, &mut handle, algorithm, wname.as_ptr(), 0, flags)
        };
        check_status(s, "NCryptCreatePersistedKey")?;
        let key = NcryptKey {
            handle,
            owned: true,
        };
        if let Some(bits) = bits {
            key.set_property(c::NCRYPT_LENGTH_PROPERTY, &bits.to_le_bytes())?;
        }
        key.set_property(c::NCRYPT_EXPORT_POLICY_PROPERTY, &0u32.to_le_bytes())?;
        // What CNG lets the key do (NCRYPT_ALLOW_SIGNING_FLAG, NCRYPT_ALLOW_DECRYPT_FLAG):
        // enforced by CNG itself, and read back at every listing (`usage`).
        key.set_property(c::NCRYPT_KEY_USAGE_PROPERTY, &usage.to_le_bytes())?;
        // SAFETY: the key handle is ours and not yet finalized.
        let s = unsafe { c::NCryptFinalizeKey(key.handle, c::NCRYPT_SILENT_FLAG) };
        check_status(s, "NCryptFinalizeKey")?;
        Ok(key)
    }

    /// The key's NCRYPT_KEY_USAGE_PROPERTY (NCRYPT_ALLOW_* flags), `None` when the
    /// provider does not say.
    pub fn usage(&self) -> Option<u32> {
        let mut value = [0u8; 4];
        let mut got = 0u32;
        // SAFETY: `value` has the 4 bytes the call may write (`got` says how many it did).
        let s = unsafe {
            c::NCryptGetProperty(
                self.handle,
                c::NCRYPT_KEY_USAGE_PROPERTY,
                value.as_mut_ptr(),
                4,
                &mut got,
                c::NCRYPT_SILENT_FLAG,
            )
        };
        (s == 0 && got == 4).then(|| u32::from_le_bytes(value))
    }

    fn set_property(&self, name: windows_sys::core::PCWSTR, value: &[u8]) -> WinResult<()> {
        // SAFETY: `value` outlives the call, which copies it.
        let s = unsafe {
            c::NCryptSetProperty(
                self.handle,
                name,
                value.as_ptr(),
                len32(value.len()).map_err(|_| WinError::status("NCryptSetProperty", 0))?,
                c::NCRYPT_SILENT_FLAG,
            )
        };
        check_status(s, "NCryptSetProperty")
    }

    /// The public key blob of `blob_type` (BCRYPT_RSAPUBLIC_BLOB, BCRYPT_ECCPUBLIC_BLOB).
    pub fn export_public(&self, blob_type: windows_sys::core::PCWSTR) -> WinResult<Vec<u8>> {
        let mut size = 0u32;
        // SAFETY: a size query with a null output buffer.
        let s = unsafe {
            c::NCryptExportKey(
                self.handle,
                0,
                blob_type,
                null(),
                null_mut(),
                0,
                &mut size,
                0,
            )
        };
        check_status(s, "NCryptExportKey")?;
        let mut out = vec![0u8; size as usize];
        // SAFETY: `out` holds the `size` bytes asked for.
        let s = unsafe {
            c::NCryptExportKey(
                self.handle,
                0,
                blob_type,
                null(),
                out.as_mut_ptr(),
                size,
                &mut size,
                0,
            )
        };
        check_status(s, "NCryptExportKey")?;
        out.truncate(size as usize);
        Ok(out)
    }

    /// Deletes the persisted key (and frees the handle).
    pub fn delete(mut self) -> WinResult<()> {
        // SAFETY: NCryptDeleteKey frees the handle on success, so it is not freed again.
        let s = unsafe { c::NCryptDeleteKey(self.handle, c::NCRYPT_SILENT_FLAG) };
        if s == 0 {
            self.owned = false;
        }
        check_status(s, "NCryptDeleteKey")
    }

    #[allow(clippy::type_complexity)]
    fn padding_info(
        padding: &CngPadding<'_>,
    ) -> WinResult<(
        Option<c::BCRYPT_PKCS1_PADDING_INFO>,
        Option<c::BCRYPT_PSS_PADDING_INFO>,
        Option<c::BCRYPT_OAEP_PADDING_INFO>,
        c::NCRYPT_FLAGS,
    )> {
        Ok(match padding {
            CngPadding::None => (None, None, None, 0),
            CngPadding::Pkcs1(h) => (
                Some(c::BCRYPT_PKCS1_PADDING_INFO {
                    pszAlgId: h.unwrap_or(null()),
                }),
                None,
                None,
                c::NCRYPT_PAD_PKCS1_FLAG,
            ),
            CngPadding::Pss { hash, salt } => (
                None,
                Some(c::BCRYPT_PSS_PADDING_INFO {
                    pszAlgId: *hash,
                    cbSalt: *salt,
                }),
                None,
                c::NCRYPT_PAD_PSS_FLAG,
            ),
            CngPadding::Oaep { hash, label } => (
                None,
                None,
                Some(c::BCRYPT_OAEP_PADDING_INFO {
                    pszAlgId: *hash,
                    pbLabel: if label.is_empty() {
                        null_mut()
                    } else {
                        label.as_ptr().cast_mut()
                    },
                    cbLabel: len32(label.len()).map_err(|_| WinError::status("OAEP label", 0))?,
                }),
                c::NCRYPT_PAD_OAEP_FLAG,
            ),
        })
    }

    /// NCryptSignHash over `digest` (or raw input for raw PKCS#1).
    pub fn sign(&self, padding: &CngPadding<'_>, digest: &[u8]) -> WinResult<Vec<u8>> {
        let (pkcs1, pss, _, flags) = Self::padding_info(padding)?;
        let info: *const core::ffi::c_void = match (&pkcs1, &pss) {
            (Some(p), _) => (p as *const c::BCRYPT_PKCS1_PADDING_INFO).cast(),
            (_, Some(p)) => (p as *const c::BCRYPT_PSS_PADDING_INFO).cast(),
            _ => null(),
        };
        let flags = flags | c::NCRYPT_SILENT_FLAG;
        let n = len32(digest.len()).map_err(|_| WinError::status("NCryptSignHash", 0))?;
        let mut size = 0u32;
        // SAFETY: a size query (null output) with padding info that outlives the call.
        let s = unsafe {
            c::NCryptSignHash(
                self.handle,
                info,
                digest.as_ptr(),
                n,
                null_mut(),
                0,
                &mut size,
                flags,
            )
        };
        check_status(s, "NCryptSignHash")?;
        let mut out = vec![0u8; size as usize];
        // SAFETY: `out` holds `size` bytes; the inputs outlive the call.
        let s = unsafe {
            c::NCryptSignHash(
                self.handle,
                info,
                digest.as_ptr(),
                n,
                out.as_mut_ptr(),
                size,
                &mut size,
                flags,
            )
        };
        check_status(s, "NCryptSignHash")?;
        out.truncate(size as usize);
        Ok(out)
    }

    /// NCryptDecrypt.
    pub fn decrypt(&self, padding: &CngPadding<'_>, data: &[u8]) -> WinResult<Vec<u8>> {
        let (_, _, oaep, flags) = Self::padding_info(padding)?;
        let info: *const core::ffi::c_void = oaep
            .as_ref()
            .map_or(null(), |p| (p as *const c::BCRYPT_OAEP_PADDING_INFO).cast());
        let flags = flags | c::NCRYPT_SILENT_FLAG;
        let n = len32(data.len()).map_err(|_| WinError::status("NCryptDecrypt", 0))?;
        let mut out = vec![0u8; data.len()];
        let mut size = 0u32;
        // SAFETY: the output buffer is as long as the ciphertext (a plaintext is never
        // longer); the inputs outlive the call.
        let s = unsafe {
            c::NCryptDecrypt(
                self.handle,
                data.as_ptr(),
                n,
                info,
                out.as_mut_ptr(),
                n,
                &mut size,
                flags,
            )
        };
        check_status(s, "NCryptDecrypt")?;
        out.truncate(size as usize);
        Ok(out)
    }
}

/// A CNG key storage provider handle.
struct NcryptProvider(c::NCRYPT_PROV_HANDLE);

impl NcryptProvider {
    /// `None`: the default provider.
    fn open(name: Option<&str>) -> WinResult<NcryptProvider> {
        let w = name.map(wide);
        let mut h = 0;
        // SAFETY: `w` is null or NUL-terminated; `h` receives a handle we free.
        let s = unsafe { c::NCryptOpenStorageProvider(&mut h, ptr_opt(&w), 0) };
        check_status(s, "NCryptOpenStorageProvider")?;
        Ok(NcryptProvider(h))
    }
}

impl Drop for NcryptProvider {
    fn drop(&mut self) {
        // SAFETY: the handle is ours and freed once.
        unsafe { c::NCryptFreeObject(self.0) };
    }
}

/// The names of the persisted keys of a provider (user or machine) that start with
/// `prefix`.
pub fn cng_key_names(provider: &str, prefix: &str, machine: bool) -> WinResult<Vec<String>> {
    let prov = NcryptProvider::open(Some(provider))?;
    let mut names = Vec::new();
    let mut state: *mut core::ffi::c_void = null_mut();
    let flags = c::NCRYPT_SILENT_FLAG
        | if machine {
            c::NCRYPT_MACHINE_KEY_FLAG
        } else {
            0
        };
    loop {
        let mut item: *mut c::NCryptKeyName = null_mut();
        // SAFETY: `state` is null or the enumeration state of the previous call; `item`
        // receives a buffer we free below.
        let s = unsafe { c::NCryptEnumKeys(prov.0, null(), &mut item, &mut state, flags) };
        if s != 0 || item.is_null() {
            // NTE_NO_MORE_ITEMS ends the enumeration; any other failure too (listed keys
            // are those found so far).
            break;
        }
        // SAFETY: `item` is a valid NCryptKeyName until freed; its name is NUL-terminated.
        let name = unsafe { nul_terminated((*item).pszName) };
        // SAFETY: the buffer came from NCryptEnumKeys.
        unsafe { c::NCryptFreeBuffer(item.cast()) };
        if name.starts_with(prefix) {
            names.push(name);
        }
    }
    if !state.is_null() {
        // SAFETY: the enumeration state came from NCryptEnumKeys.
        unsafe { c::NCryptFreeBuffer(state) };
    }
    Ok(names)
}

/// A NUL-terminated UTF-16 string the API allocated on its own.
///
/// # Safety
/// `p` is null or a NUL-terminated UTF-16 string, aligned, valid for the call.
unsafe fn nul_terminated(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut len = 0usize;
    // SAFETY: the caller guarantees a NUL-terminated string; reading stops at its NUL.
    while unsafe { *p.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: `len` u16s were just read from `p`.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A CryptoAPI provider context (released on drop when ours).
pub struct CapiProvider {
    handle: usize,
    owned: bool,
}

impl Drop for CapiProvider {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: the context is ours and released once.
            unsafe { c::CryptReleaseContext(self.handle, 0) };
        }
    }
}

/// CryptoAPI's byte order is little-endian; PKCS#1 is big-endian.
fn reversed(b: &[u8]) -> Vec<u8> {
    b.iter().rev().copied().collect()
}

impl CapiProvider {
    /// Opens key container `container` with the RSA-AES provider (SHA-2 hashes), silently.
    pub fn open_aes(container: &Option<String>, machine: bool) -> WinResult<CapiProvider> {
        let w = wide_opt(container);
        let mut h = 0usize;
        let flags = c::CRYPT_SILENT | if machine { c::CRYPT_MACHINE_KEYSET } else { 0 };
        // SAFETY: the strings are NUL-terminated; `h` receives a context we release.
        let ok = unsafe {
            c::CryptAcquireContextW(
                &mut h,
                ptr_opt(&w),
                c::MS_ENH_RSA_AES_PROV_W,
                c::PROV_RSA_AES,
                flags,
            )
        };
        check(ok, "CryptAcquireContext (RSA-AES provider)")?;
        Ok(CapiProvider {
            handle: h,
            owned: true,
        })
    }

    /// Deletes key container `container` of `provider`.
    pub fn delete_container(p: &ProvInfo) -> WinResult<()> {
        let container = wide_opt(&p.container);
        let provider = wide_opt(&p.provider);
        let mut h = 0usize;
        let flags = c::CRYPT_DELETEKEYSET | c::CRYPT_SILENT | (p.flags & c::CRYPT_MACHINE_KEYSET);
        // SAFETY: the strings are NUL-terminated; with CRYPT_DELETEKEYSET no context is
        // returned to release.
        let ok = unsafe {
            c::CryptAcquireContextW(
                &mut h,
                ptr_opt(&container),
                ptr_opt(&provider),
                p.prov_type,
                flags,
            )
        };
        check(ok, "CryptAcquireContext (delete key container)")
    }

    /// CryptSignHash of a digest of `alg` (CALG_*) with the key of `key_spec`; the
    /// signature comes back big-endian.
    pub fn sign(&self, key_spec: u32, alg: u32, digest: &[u8]) -> WinResult<Vec<u8>> {
        let mut hash = 0usize;
        // SAFETY: the provider is open; `hash` receives a hash object destroyed below.
        let ok = unsafe { c::CryptCreateHash(self.handle, alg, 0, 0, &mut hash) };
        check(ok, "CryptCreateHash")?;
        let result = (|| {
            // SAFETY: HP_HASHVAL takes the digest, as long as the algorithm's output,
            // which the caller checked; the buffer outlives the call.
            let ok = unsafe { c::CryptSetHashParam(hash, c::HP_HASHVAL, digest.as_ptr(), 0) };
            check(ok, "CryptSetHashParam")?;
            let mut size = 0u32;
            // SAFETY: a size query with a null output.
            let ok = unsafe { c::CryptSignHashW(hash, key_spec, null(), 0, null_mut(), &mut size) };
            check(ok, "CryptSignHash")?;
            let mut sig = vec![0u8; size as usize];
            // SAFETY: `sig` holds `size` bytes.
            let ok = unsafe {
                c::CryptSignHashW(hash, key_spec, null(), 0, sig.as_mut_ptr(), &mut size)
            };
            check(ok, "CryptSignHash")?;
            sig.truncate(size as usize);
            Ok(reversed(&sig))
        })();
        // SAFETY: the hash object is ours and destroyed once.
        unsafe { c::CryptDestroyHash(hash) };
        result
    }

    /// CryptDecrypt with the key of `key_spec`: PKCS#1 v1.5, or OAEP (SHA-1, no label)
    /// when `oaep`.
    pub fn decrypt(&self, key_spec: u32, oaep: bool, data: &[u8]) -> WinResult<Vec<u8>> {
        let mut key = 0usize;
        // SAFETY: the provider is open; `key` receives a key handle destroyed below.
        let ok = unsafe { c::CryptGetUserKey(self.handle, key_spec, &mut key) };
        check(ok, "CryptGetUserKey")?;
        let mut buf = reversed(data);
        let mut len = len32(buf.len()).map_err(|_| WinError::status("CryptDecrypt", 0))?;
        let flags = if oaep { c::CRYPT_OAEP } else { 0 };
        // SAFETY: decryption in place in `buf`, which holds `len` bytes; the plaintext is
        // never longer than the ciphertext.
        let ok = unsafe { c::CryptDecrypt(key, 0, 1, flags, buf.as_mut_ptr(), &mut len) };
        let result = check(ok, "CryptDecrypt").map(|()| {
            buf.truncate(len as usize);
            buf
        });
        // SAFETY: the key handle is ours and destroyed once.
        unsafe { c::CryptDestroyKey(key) };
        result
    }
}
