//! `--seed-dir`: every `NAME.key.pem` (PKCS#8, RSA or EC) becomes key NAME in the vault
//! (RSA/EC) and in the HSM (RSA-HSM/EC-HSM); a `NAME.crt.pem` beside it makes the vault
//! entry a certificate NAME whose managed key is that key. Versions are derived from
//! the container, name and key, so the same files give the same identifiers.

use std::path::Path;

use openssl::hash::{MessageDigest, hash};
use openssl::x509::X509;

use crate::crypto::KeyMaterial;
use crate::state::Container;
use crate::{cert_import, ids, keys, routing};

fn version_for(c: &Container, name: &str, der: &[u8]) -> String {
    let mut input = format!("{}:{}:{}:", c.kind.as_str(), c.name, name).into_bytes();
    input.extend_from_slice(der);
    hash(MessageDigest::sha256(), &input)
        .map(|d| ids::hex(&d[..16]))
        .unwrap_or_else(|_| ids::new_version())
}

/// Imports the directory; returns the names seeded.
pub fn seed_dir(dir: &Path, vault: &Container, hsm: &Container) -> Result<Vec<String>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    let mut names = Vec::new();
    for path in files {
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let Some(name) = file.strip_suffix(".key.pem") else {
            continue;
        };
        if !routing::valid_name(name) {
            return Err(format!(
                "{}: '{name}' is not a valid Key Vault name",
                path.display()
            ));
        }
        let pem = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let load = || {
            KeyMaterial::from_pem(&pem).map_err(|e| format!("{}: {}", path.display(), e.message))
        };
        let material = load()?;
        let der = material.private_pkcs8_der().map_err(|e| e.message)?;
        let crt_path = dir.join(format!("{name}.crt.pem"));
        if crt_path.exists() {
            let crt =
                std::fs::read(&crt_path).map_err(|e| format!("{}: {e}", crt_path.display()))?;
            let cert = X509::from_pem(&crt).map_err(|e| format!("{}: {e}", crt_path.display()))?;
            let matches = cert
                .public_key()
                .map(|k| k.public_eq(material.pkey()))
                .unwrap_or(false);
            if !matches {
                return Err(format!(
                    "{}: the certificate is not for {}",
                    crt_path.display(),
                    path.display()
                ));
            }
            cert_import::seed(
                vault,
                name,
                material,
                &cert,
                &version_for(vault, name, &der),
            )
            .map_err(|e| format!("{}: {}", crt_path.display(), e.message))?;
        } else {
            keys::seed_key(
                vault,
                name,
                material,
                false,
                &version_for(vault, name, &der),
            )
            .map_err(|e| format!("{}: {}", path.display(), e.message))?;
        }
        keys::seed_key(hsm, name, load()?, false, &version_for(hsm, name, &der))
            .map_err(|e| format!("{}: {}", path.display(), e.message))?;
        names.push(name.to_string());
    }
    Ok(names)
}
