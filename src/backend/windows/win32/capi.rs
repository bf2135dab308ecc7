//! Legacy CryptoAPI: provider contexts, the RSA-AES provider re-opened on a key's
//! container, container deletion, and `CryptSignHash` / `CryptDecrypt` (little-endian,
//! reversed both ways).

use super::{ProvInfo, WinError, WinResult, check, len32, ptr_opt, wide_opt};
use std::ptr::{null, null_mut};
use windows_sys::Win32::Security::Cryptography as c;

/// A CryptoAPI provider context (released on drop when ours).
pub struct CapiProvider {
    pub(super) handle: usize,
    pub(super) owned: bool,
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
