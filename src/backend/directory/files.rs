//! Files of the store: written atomically and readable by the owner only; names from labels.

use super::*;

/// Writes a file only its owner can read, atomically (temporary file + rename).
pub(crate) fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    temp_file_with(path, contents)?
        .persist(path)
        .map_err(|e| Error::backend(&format!("writing {}", path.display()), e.error))?;
    Ok(())
}

/// A temporary file beside `path`, mode 0600, holding `contents` on disk.
pub(super) fn temp_file_with(path: &Path, contents: &[u8]) -> Result<tempfile::NamedTempFile> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::Internal(format!("{} has no parent", path.display())))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-");
    // Windows files inherit the (per-user) directory's ACL instead.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o600));
    }
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| Error::backend(&format!("creating a file in {}", dir.display()), e))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::backend(&format!("writing {}", path.display()), e))?;
    Ok(tmp)
}

pub(super) enum WriteError {
    Exists,
    Other(Error),
}

/// Like [`write_private_file`], but fails with `Exists` instead of replacing a file.
pub(super) fn write_private_file_new(
    path: &Path,
    contents: &[u8],
) -> std::result::Result<(), WriteError> {
    let tmp = temp_file_with(path, contents).map_err(WriteError::Other)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(()),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Err(WriteError::Exists),
        Err(e) => Err(WriteError::Other(Error::backend(
            &format!("writing {}", path.display()),
            e.error,
        ))),
    }
}

pub(super) fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::backend(&format!("removing {}", path.display()), e)),
    }
}

/// A file stem from a label: letters, digits, `.`, `_` and `-` kept, anything else `_`.
pub(super) fn sanitize(label: &str) -> String {
    let s: String = label
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_owned();
    if s.is_empty() { "key".to_owned() } else { s }
}

pub(super) fn short_hash(bytes: &[u8]) -> String {
    crate::crypto::hex::encode(&openssl::sha::sha1(bytes)[..8])
}
