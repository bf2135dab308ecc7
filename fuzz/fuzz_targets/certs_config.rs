//! Certificates and the configuration: an entry of a directory store (PKCS#12, PEM key,
//! PEM certificates, metadata JSON) listed by the `cert-store` backend as it lists real
//! files, certificate DER into the object layer's attributes, and `config::parse` on text.
#![no_main]

use identify_pkcs11::fuzzing::{Backend, DirectoryBackend, DirectoryConfig, Source, parse_config};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// A directory of this process (on tmpfs where there is one), emptied for every input.
fn store() -> &'static (PathBuf, String) {
    static STORE: OnceLock<(PathBuf, String)> = OnceLock::new();
    STORE.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("fuzz-certs-")
            .tempdir_in(base)
            .expect("tempdir")
            .keep();
        let pw = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../softhsm-fixtures/pkcs12/chain.password"
        ))
        .expect("fixture password");
        (dir, pw.trim_end().to_owned())
    })
}

/// Between the files of an entry (the input format is written for the seeds in
/// fuzz/corpus/certs_config: `2`, a flags byte, then the files joined by this).
const SEPARATOR: &[u8] = b"--8<--";

enum Input<'a> {
    Config(std::borrow::Cow<'a, str>),
    CertificateDer(&'a [u8]),
    Entry {
        p12: Option<&'a [u8]>,
        key_pem: Option<&'a [u8]>,
        crt_pem: Option<&'a [u8]>,
        meta_json: Option<&'a [u8]>,
        /// The slot's PKCS#12 password, or the fixture's.
        password: Option<std::borrow::Cow<'a, str>>,
    },
}

/// `0` + configuration text; `1` + certificate DER; `2` + flags + files: the flags' bits
/// 0..=4 say which of p12, key, certificates, metadata and password come (in that order).
fn decode(data: &[u8]) -> Option<Input<'_>> {
    let (&mode, rest) = data.split_first()?;
    Some(match mode % 3 {
        0 => Input::Config(String::from_utf8_lossy(rest)),
        1 => Input::CertificateDer(rest),
        _ => {
            let (&flags, rest) = rest.split_first()?;
            let mut parts = split(rest).into_iter();
            let mut next = |bit: u8| {
                if flags & (1 << bit) != 0 {
                    Some(parts.next().unwrap_or(&[]))
                } else {
                    None
                }
            };
            Input::Entry {
                p12: next(0),
                key_pem: next(1),
                crt_pem: next(2),
                meta_json: next(3),
                password: next(4).map(String::from_utf8_lossy),
            }
        }
    })
}

fn split(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some(i) = data.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        out.push(&data[..i]);
        data = &data[i + SEPARATOR.len()..];
    }
    out.push(data);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = decode(data) else {
        return;
    };
    match input {
        Input::Config(text) => {
            let _ = parse_config(&text, Source::Embedded);
        }
        Input::CertificateDer(der) => identify_pkcs11::fuzzing::certificate_der(der.to_vec()),
        Input::Entry {
            p12,
            key_pem,
            crt_pem,
            meta_json,
            password,
        } => {
            let (dir, fixture_password) = store();
            for (suffix, contents) in [
                ("p12", p12),
                ("key.pem", key_pem),
                ("crt.pem", crt_pem),
                ("meta.json", meta_json),
            ] {
                let path = dir.join(format!("entry.{suffix}"));
                match contents {
                    Some(c) => std::fs::write(&path, c).expect("write"),
                    None => {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
            let backend = DirectoryBackend::new(DirectoryConfig {
                path: dir.clone(),
                pkcs12_password: Some(
                    password.map_or_else(|| fixture_password.clone(), |p| p.into_owned()),
                ),
                writable: false,
            });
            if let Ok(listing) = backend.list() {
                for k in &listing.keys {
                    identify_pkcs11::fuzzing::PublicInfo::from_spki(&k.spki_der)
                        .expect("a listed key has a usable public key");
                }
                for c in listing.certificates {
                    identify_pkcs11::fuzzing::certificate_der(c.der);
                }
            }
        }
    }
});
