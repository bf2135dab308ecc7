//! Reading caller memory that may not be readable, without faulting.
//!
//! `C_Initialize` is the one call where a wild pointer is part of ordinary use: the
//! specification wants `pReserved` NULL, conformance suites pass `(void *)1` there and
//! expect `CKR_ARGUMENTS_BAD`, while libp11's `init_args` and kmsp11 pass a string. So the
//! bytes behind `pInitArgs` and `pReserved` are copied by the kernel, which reports an
//! unmapped page as an error (`EFAULT`) instead of delivering SIGSEGV to the host: a
//! `write(2)` into a pipe on Unix, `ReadProcessMemory` on Windows. Hand-written because no
//! maintained crate offers a checked read of one's own memory.

/// Pages are at least this large on every supported target; a copy never crosses a
/// multiple of it, so that each copy is either wholly readable or refused whole.
const PAGE: usize = 4096;

/// `len` bytes at `addr` of this process, or `None` where any of them is not readable.
pub fn copy(addr: usize, len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    let mut at = addr;
    while out.len() < len {
        let in_page = PAGE - at % PAGE;
        let n = in_page.min(len - out.len());
        let mut chunk = vec![0u8; n];
        if !copy_chunk(at, &mut chunk) {
            return None;
        }
        out.extend_from_slice(&chunk);
        at = at.checked_add(n)?;
    }
    Some(out)
}

/// A NUL-terminated string at `addr` of at most `max` bytes before the NUL: `Ok(bytes)`,
/// `Err(true)` when no NUL comes within `max` bytes, `Err(false)` when unreadable.
///
/// Read one byte at a time, never past the NUL: the bytes after it are not the caller's
/// string but whatever else lives there, and a checker in the host (AddressSanitizer
/// intercepts `write(2)`) reports reading them as an overflow and aborts the host. Once
/// per C_Initialize, at most `max + 1` bytes.
pub fn c_string(addr: usize, max: usize) -> Result<Vec<u8>, bool> {
    let mut out = Vec::new();
    let mut at = addr;
    loop {
        let mut byte = [0u8; 1];
        if !copy_chunk(at, &mut byte) {
            return Err(false);
        }
        if byte[0] == 0 {
            return Ok(out);
        }
        if out.len() == max {
            return Err(true);
        }
        out.push(byte[0]);
        at = at.checked_add(1).ok_or(false)?;
    }
}

#[cfg(test)]
thread_local! {
    /// Bytes this thread copied from caller memory (tests: nothing past a string's NUL).
    static COPIED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Copies `buf.len()` bytes (within one page) from `addr`; false if they are unreadable.
///
/// `write(2)` from `addr` into a fresh pipe fails with EFAULT instead of faulting. A pipe,
/// not `process_vm_readv`: that is a ptrace-class call, and a service hardened with a
/// seccomp filter (systemd's `SystemCallFilter=@system-service`) may be killed for it.
#[cfg(unix)]
fn copy_chunk(addr: usize, buf: &mut [u8]) -> bool {
    if addr == 0 {
        return false;
    }
    #[cfg(test)]
    COPIED.with(|c| c.set(c.get() + buf.len()));
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a writable array of two descriptors, as pipe(2) wants.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let made = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0;
    // SAFETY: as above (no pipe2 here; the descriptors live only for this call).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let made = unsafe { libc::pipe(fds.as_mut_ptr()) } == 0;
    if !made {
        return false;
    }
    // One page fits in a pipe's buffer (at least 4096 bytes), so the write never blocks.
    // SAFETY: the kernel reads `buf.len()` bytes at `addr` and returns EFAULT for unmapped
    // memory; `fds[1]` is the pipe's write end we just created.
    let written = unsafe { libc::write(fds[1], addr as *const libc::c_void, buf.len()) };
    let ok = usize::try_from(written).is_ok_and(|w| w == buf.len())
        // SAFETY: `buf` is ours and writable for its length; `fds[0]` is the read end,
        // holding exactly the bytes just written.
        && usize::try_from(unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) })
            .is_ok_and(|r| r == buf.len());
    for fd in fds {
        // SAFETY: both descriptors were created above and are closed once.
        unsafe { libc::close(fd) };
    }
    ok
}

#[cfg(windows)]
fn copy_chunk(addr: usize, buf: &mut [u8]) -> bool {
    use windows_sys::Win32::System::Diagnostics::Debug::ReadProcessMemory;
    use windows_sys::Win32::System::Threading::GetCurrentProcess;
    if addr == 0 {
        return false;
    }
    #[cfg(test)]
    COPIED.with(|c| c.set(c.get() + buf.len()));
    let mut read = 0usize;
    // SAFETY: `buf` is ours and writable for its length; ReadProcessMemory checks that
    // `addr` is readable in this process and fails (no exception) when it is not.
    let ok = unsafe {
        ReadProcessMemory(
            GetCurrentProcess(),
            addr as *const core::ffi::c_void,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut read,
        )
    };
    ok != 0 && read == buf.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_memory_is_copied_across_pages() {
        let data: Vec<u8> = (0..3 * PAGE)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let addr = data.as_ptr() as usize + 100;
        assert_eq!(
            copy(addr, 2 * PAGE).as_deref(),
            Some(&data[100..100 + 2 * PAGE])
        );
    }

    #[test]
    fn unmapped_memory_is_refused_not_faulted() {
        assert_eq!(copy(1, 8), None);
        assert_eq!(copy(0, 8), None);
        assert_eq!(c_string(1, 4096), Err(false));
        assert_eq!(c_string(usize::MAX - 10, 4096), Err(false));
    }

    #[test]
    fn strings_end_at_their_nul_within_the_bound() {
        let s = b"/etc/identify-pkcs11/config.toml\0garbage";
        assert_eq!(
            c_string(s.as_ptr() as usize, 4096).as_deref(),
            Ok(&b"/etc/identify-pkcs11/config.toml"[..])
        );
        assert_eq!(c_string(s.as_ptr() as usize, 5), Err(true));
        let long = vec![b'a'; 3 * PAGE];
        let mut long_nul = long.clone();
        long_nul.push(0);
        assert_eq!(c_string(long_nul.as_ptr() as usize, 4096), Err(true));
        let exact = [b'a', b'b', 0];
        assert_eq!(
            c_string(exact.as_ptr() as usize, 2).as_deref(),
            Ok(&b"ab"[..])
        );
        assert_eq!(c_string(exact.as_ptr() as usize, 1), Err(true));
    }

    #[test]
    fn nothing_past_the_nul_is_read() {
        // Found by the c_abi fuzz target under AddressSanitizer: the string was read to
        // the end of its page, past the caller's allocation.
        let s = b"/etc/identify-pkcs11/config.toml\0";
        let before = COPIED.with(std::cell::Cell::get);
        assert!(c_string(s.as_ptr() as usize, 4096).is_ok());
        let copied = COPIED.with(std::cell::Cell::get) - before;
        assert_eq!(copied, s.len(), "bytes read for a {}-byte string", s.len());
    }
}
