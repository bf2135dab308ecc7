//! Decoding of caller memory: the only code that reads or writes through raw pointers.
//! Every read is unaligned (packed structures on Windows, careless callers elsewhere) and
//! every length is checked before it is used.

use crate::error::{Error, Result};
use crate::mechanism::{Mechanism, MechanismParam};
use crate::module::{Output, Template};
use cryptoki_sys::*;

/// More attributes than any real template has; a larger count is a caller's bug.
const MAX_TEMPLATE: usize = 4096;
/// Larger than any certificate, key or signature input this module handles in one piece.
const MAX_VALUE: usize = 64 << 20;

pub fn to_usize(n: CK_ULONG) -> Result<usize> {
    usize::try_from(n).map_err(|_| Error::ArgumentsBad("length does not fit in memory"))
}

pub fn to_ulong(n: usize) -> Result<CK_ULONG> {
    CK_ULONG::try_from(n).map_err(|_| Error::Internal("length does not fit CK_ULONG".into()))
}

/// A caller's byte buffer. NULL with length 0 is empty; NULL with a length is bad.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes that stay valid for `'a`.
pub unsafe fn bytes<'a>(p: *const CK_BYTE, len: CK_ULONG) -> Result<&'a [u8]> {
    let len = to_usize(len)?;
    if len > MAX_VALUE {
        return Err(Error::ArgumentsBad("buffer longer than 64 MiB"));
    }
    if p.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Error::ArgumentsBad("NULL buffer with a length"))
        };
    }
    // SAFETY: not NULL, and the caller guarantees `len` readable bytes (function contract).
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Reads a value the caller passed by pointer.
///
/// # Safety
/// `p` is NULL or points to a readable `T` (any alignment).
pub unsafe fn read<T: Copy>(p: *const T, what: &'static str) -> Result<T> {
    if p.is_null() {
        return Err(Error::ArgumentsBad(what));
    }
    // SAFETY: not NULL; readable per the contract; unaligned read tolerates packing.
    Ok(unsafe { p.read_unaligned() })
}

/// Writes a value through a caller's out-pointer.
///
/// # Safety
/// `p` is NULL or points to writable memory for a `T` (any alignment).
pub unsafe fn write<T>(p: *mut T, value: T, what: &'static str) -> Result<()> {
    if p.is_null() {
        return Err(Error::ArgumentsBad(what));
    }
    // SAFETY: not NULL; writable per the contract; unaligned write tolerates packing.
    unsafe { p.write_unaligned(value) };
    Ok(())
}

/// The capacity of an output buffer: `None` when the caller asks for the length only.
///
/// # Safety
/// `len` is NULL or points to a readable CK_ULONG.
pub unsafe fn capacity(out: *mut CK_BYTE, len: *mut CK_ULONG) -> Result<Option<usize>> {
    // SAFETY: forwarded contract.
    let cap = unsafe { read(len, "NULL output length pointer") }?;
    if out.is_null() {
        Ok(None)
    } else {
        Ok(Some(to_usize(cap)?))
    }
}

/// Writes an [`Output`] by the two-call convention and gives the return code.
///
/// # Safety
/// `len` points to a writable CK_ULONG; when `out` is not NULL it points to as many
/// writable bytes as `*len` said (checked by [`capacity`] before the operation ran).
pub unsafe fn output(out: *mut CK_BYTE, len: *mut CK_ULONG, result: Output) -> Result<CK_RV> {
    match result {
        Output::Length(n) => {
            // SAFETY: forwarded contract.
            unsafe { write(len, to_ulong(n)?, "NULL output length pointer") }?;
            Ok(CKR_OK)
        }
        Output::TooSmall(n) => {
            // SAFETY: forwarded contract.
            unsafe { write(len, to_ulong(n)?, "NULL output length pointer") }?;
            Ok(CKR_BUFFER_TOO_SMALL)
        }
        Output::Data(data) => {
            if !data.is_empty() {
                if out.is_null() {
                    return Err(Error::Internal("output without a buffer".into()));
                }
                // SAFETY: `out` has at least `capacity` >= data.len() writable bytes (the
                // module only returns Data when it fits); regions cannot overlap our Vec.
                unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), out, data.len()) };
            }
            // SAFETY: forwarded contract.
            unsafe { write(len, to_ulong(data.len())?, "NULL output length pointer") }?;
            Ok(CKR_OK)
        }
    }
}

/// A caller's template, copied.
///
/// # Safety
/// `p` is NULL or points to `count` readable CK_ATTRIBUTEs whose `pValue` are NULL or
/// point to `ulValueLen` readable bytes.
pub unsafe fn template(p: *const CK_ATTRIBUTE, count: CK_ULONG) -> Result<Template> {
    let count = to_usize(count)?;
    if count > MAX_TEMPLATE {
        return Err(Error::ArgumentsBad(
            "template with more than 4096 attributes",
        ));
    }
    if p.is_null() {
        return if count == 0 {
            Ok(Vec::new())
        } else {
            Err(Error::ArgumentsBad("NULL template with a count"))
        };
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        // SAFETY: i < count, within the caller's array.
        let a = unsafe { read(p.add(i), "template") }?;
        // SAFETY: the caller guarantees pValue/ulValueLen describe readable memory.
        let value = unsafe { bytes(a.pValue as *const CK_BYTE, a.ulValueLen) }?;
        out.push((a.type_, value.to_vec()));
    }
    Ok(out)
}

/// A caller's mechanism, with its parameters decoded. `None` for a NULL pointer.
///
/// # Safety
/// `p` is NULL or points to a readable CK_MECHANISM whose parameter pointer and length
/// describe readable memory.
pub unsafe fn mechanism(p: *const CK_MECHANISM) -> Result<Option<Mechanism>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: not NULL; readable per the contract.
    let m = unsafe { read(p, "mechanism") }?;
    let plen = to_usize(m.ulParameterLen)?;
    let param = match m.mechanism {
        CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => {
            if m.pParameter.is_null() || plen != std::mem::size_of::<CK_RSA_PKCS_PSS_PARAMS>() {
                MechanismParam::None
            } else {
                // SAFETY: pParameter points to ulParameterLen bytes, which is the size of
                // the structure (checked above).
                let pp = unsafe {
                    read(
                        m.pParameter as *const CK_RSA_PKCS_PSS_PARAMS,
                        "PSS parameters",
                    )
                }?;
                MechanismParam::Pss {
                    hash_alg: pp.hashAlg,
                    mgf: pp.mgf,
                    salt_len: pp.sLen,
                }
            }
        }
        CKM_RSA_PKCS_OAEP => {
            if m.pParameter.is_null() || plen != std::mem::size_of::<CK_RSA_PKCS_OAEP_PARAMS>() {
                MechanismParam::None
            } else {
                // SAFETY: as above, for the OAEP structure.
                let op = unsafe {
                    read(
                        m.pParameter as *const CK_RSA_PKCS_OAEP_PARAMS,
                        "OAEP parameters",
                    )
                }?;
                // SAFETY: pSourceData/ulSourceDataLen describe readable memory (contract).
                let label = unsafe { bytes(op.pSourceData as *const CK_BYTE, op.ulSourceDataLen) }?;
                MechanismParam::Oaep {
                    hash_alg: op.hashAlg,
                    mgf: op.mgf,
                    source: op.source,
                    source_data: label.to_vec(),
                }
            }
        }
        CKM_AES_GCM => {
            if m.pParameter.is_null() || plen != std::mem::size_of::<CK_GCM_PARAMS>() {
                MechanismParam::None
            } else {
                // SAFETY: as above, for the GCM structure.
                let gp = unsafe { read(m.pParameter as *const CK_GCM_PARAMS, "GCM parameters") }?;
                // SAFETY: pIv/ulIvLen and pAAD/ulAADLen describe readable memory (contract).
                let iv = unsafe { bytes(gp.pIv as *const CK_BYTE, gp.ulIvLen) }?;
                // SAFETY: as above.
                let aad = unsafe { bytes(gp.pAAD as *const CK_BYTE, gp.ulAADLen) }?;
                MechanismParam::Gcm {
                    iv: iv.to_vec(),
                    iv_bits: gp.ulIvBits,
                    aad: aad.to_vec(),
                    tag_bits: gp.ulTagBits,
                }
            }
        }
        _ => {
            // SAFETY: parameter pointer and length from the caller (contract).
            let raw = unsafe { bytes(m.pParameter as *const CK_BYTE, m.ulParameterLen) }?;
            if raw.is_empty() {
                MechanismParam::None
            } else {
                MechanismParam::Other(raw.to_vec())
            }
        }
    };
    Ok(Some(Mechanism {
        mechanism: m.mechanism,
        param,
    }))
}

/// Reads a NUL-terminated string of at most `max` bytes (C_GetInterface's name).
///
/// # Safety
/// `p` points to a NUL-terminated string, or to at least `max` readable bytes.
pub unsafe fn c_string(p: *const u8, max: usize) -> Result<String> {
    let mut bytes = Vec::new();
    for i in 0..max {
        // SAFETY: i < max and the string is NUL-terminated within its allocation or
        // `max` bytes are readable (contract); we stop at the first NUL.
        let b = unsafe { p.add(i).read() };
        if b == 0 {
            return String::from_utf8(bytes)
                .map_err(|_| Error::ArgumentsBad("the string is not UTF-8"));
        }
        bytes.push(b);
    }
    Err(Error::ArgumentsBad("string longer than its bound"))
}
