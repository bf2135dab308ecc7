//! CNG (NCrypt): persisted keys (opening, creation, usage, public export, deletion),
//! signing and decryption with their padding schemes, and key storage providers with the
//! enumeration of their keys.

use super::{WinError, WinResult, check_status, len32, nul_terminated, ptr_opt, wide};
use std::ptr::{null, null_mut};
use windows_sys::Win32::Security::Cryptography as c;

/// A CNG key handle (freed on drop when ours).
pub struct NcryptKey {
    pub(super) handle: c::NCRYPT_KEY_HANDLE,
    pub(super) owned: bool,
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
