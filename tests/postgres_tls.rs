//! The certificate database's PostgreSQL TLS: every connection is verified, `sslmode`
//! is honoured, and the trust anchors are the system's, the slot's `ca_file` and the URL's
//! `sslrootcert`.
//!
//! These need the TLS-only PostgreSQL server of tests/postgres/server.sh, so they are
//! `#[ignore]`d in a plain `cargo test`; .ci/run's managed-hsm step starts the server and
//! runs them with `--ignored`, passing its URL in `IDENTIFY_PKCS11_TEST_PG_URL` (a missing
//! variable fails them, it never skips).

use identify_pkcs11::admin::{CertDb, Location};
use std::path::Path;

const WHY: &str = "needs tests/postgres/server.sh: run by .ci/run's managed-hsm step";

/// The server's URL (host `localhost`, `sslmode=verify-full`, `sslrootcert=…/ca.pem`) and
/// the CA file it names.
fn server() -> (String, String) {
    let url = std::env::var("IDENTIFY_PKCS11_TEST_PG_URL")
        .expect("IDENTIFY_PKCS11_TEST_PG_URL: the URL printed by tests/postgres/server.sh start");
    let ca = url
        .split_once("sslrootcert=")
        .map(|(_, rest)| rest.split('&').next().unwrap_or(rest).to_owned())
        .expect("the server's URL names its sslrootcert");
    (url, ca)
}

/// Lists through `url` with `ca_pem` as the slot's `ca_file`: Ok(()) or the error text.
fn connect(url: &str, ca_pem: Option<Vec<u8>>) -> Result<(), String> {
    let location = Location::parse(url, Path::new("/")).map_err(|e| e.clone())?;
    CertDb::new(location, "tls-test")
        .with_ca(ca_pem)
        .list()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
#[ignore = "needs tests/postgres/server.sh: run by .ci/run's managed-hsm step"]
fn verify_full_with_the_servers_ca_connects() {
    let (url, _) = server();
    connect(&url, None).unwrap_or_else(|e| panic!("{WHY}: {e}"));
}

#[test]
#[ignore = "needs tests/postgres/server.sh: run by .ci/run's managed-hsm step"]
fn an_unknown_ca_is_refused_whatever_the_sslmode() {
    let (url, ca) = server();
    let bare = url.replace(&format!("&sslrootcert={ca}"), "");
    assert!(!bare.contains("sslrootcert"), "{bare}");
    for mode in ["verify-full", "verify-ca", "require", "prefer"] {
        let u = bare.replace("sslmode=verify-full", &format!("sslmode={mode}"));
        let e = connect(&u, None).expect_err(&u);
        assert!(e.contains("certificate verify failed"), "{mode}: {e}");
    }
}

#[test]
#[ignore = "needs tests/postgres/server.sh: run by .ci/run's managed-hsm step"]
fn the_slots_ca_file_is_trusted_too() {
    let (url, ca) = server();
    let bare = url.replace(&format!("&sslrootcert={ca}"), "");
    let pem = std::fs::read(&ca).expect("the server's CA file");
    connect(&bare, Some(pem)).unwrap_or_else(|e| panic!("{WHY}: {e}"));
}

#[test]
#[ignore = "needs tests/postgres/server.sh: run by .ci/run's managed-hsm step"]
fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let (url, _) = server();
    // The server's certificate names "localhost" only.
    let by_ip = url.replace("@localhost:", "@127.0.0.1:");
    let e = connect(&by_ip, None).expect_err("verify-full to 127.0.0.1");
    assert!(e.contains("certificate verify failed"), "{e}");
    let ca_only = by_ip.replace("sslmode=verify-full", "sslmode=verify-ca");
    connect(&ca_only, None).unwrap_or_else(|e| panic!("verify-ca: {e}"));
}

#[test]
#[ignore = "needs tests/postgres/server.sh: run by .ci/run's managed-hsm step"]
fn sslmode_disable_is_honoured() {
    // The server refuses connections without TLS (hostssl only): a refusal shows that
    // disable really connected without it.
    let (url, _) = server();
    let plain = url.replace("sslmode=verify-full", "sslmode=disable");
    let e = connect(&plain, None).expect_err("a plain connection to a TLS-only server");
    assert!(
        e.contains("no encryption") || e.contains("pg_hba.conf"),
        "{e}"
    );
}
