//! The operator's tool (`identify-pkcs11 list`, `doctor`) run as a program against a
//! directory store and the emulator, with the failure paths: wrong credentials, a missing
//! role, an unreachable vault, throttling, latency, an expiring certificate, a bad
//! configuration.

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use support::{Emulator, FixtureStore};

fn tool(args: &[&str], config: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_identify-pkcs11"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("IDENTIFY_PKCS11_LOG", "off")
        .output()
        .expect("running identify-pkcs11");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(args: &[&str], config: &Path) -> (i32, Value) {
    let (code, out, err) = tool(args, config);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, v)
}

/// The checks of the first slot as (name, status, detail).
fn checks(v: &Value) -> Vec<(String, String, String)> {
    v["slots"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn status_of(v: &Value, name: &str) -> Vec<(String, String)> {
    checks(v)
        .into_iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, s, d)| (s, d))
        .collect()
}

#[test]
fn list_shows_keys_and_certificate_thumbprints() {
    let store = FixtureStore::new("fixtures", "");
    let (code, v) = json(&["list", "--json"], &store.config);
    assert_eq!(code, 0, "{v}");
    let slot = &v["slots"][0];
    assert_eq!(slot["label"], "fixtures");
    let names: Vec<&str> = slot["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    for k in ["rsa2048", "rsa3072", "p256"] {
        assert!(names.contains(&k), "{names:?}");
    }
    let der = support::fixture_cert("rsa2048").to_der().unwrap();
    let sha256: String = openssl::sha::sha256(&der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cert = slot["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["sha256"] == sha256.as_str())
        .unwrap_or_else(|| panic!("no certificate with SHA-256 {sha256}: {slot}"));
    assert!(
        cert["subject"]
            .as_str()
            .unwrap()
            .contains("fixture rsa2048")
    );
    let key = slot["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "rsa2048")
        .unwrap();
    assert_eq!(key["certificates_sha256"][0], sha256.as_str(), "{key}");
    // Text output too.
    let (code, out, _) = tool(&["list"], &store.config);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("SHA-256 {sha256}")), "{out}");
    // An unknown slot is named.
    let (code, _, err) = tool(&["list", "--slot", "nope"], &store.config);
    assert_eq!(code, 1);
    assert!(
        err.contains("\"nope\"") && err.contains("fixtures"),
        "{err}"
    );
}

#[test]
fn doctor_on_a_directory_store_and_an_expiring_certificate() {
    let store = FixtureStore::new("fixtures", "");
    let (code, v) = json(&["doctor", "--json", "--sign"], &store.config);
    assert_eq!(code, 0, "{v}");
    assert!(
        status_of(&v, "test signature")
            .iter()
            .all(|(s, _)| s == "ok")
    );
    // A certificate that expires in 10 days: a warning, exit 2.
    let key = openssl::pkey::PKey::from_ec_key(
        openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "expiring").unwrap();
    let name = name.build();
    let mut b = openssl::x509::X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(10).unwrap())
        .unwrap();
    b.sign(&key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    std::fs::write(
        store.store.join("expiring.key.pem"),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    std::fs::write(
        store.store.join("expiring.crt.pem"),
        b.build().to_pem().unwrap(),
    )
    .unwrap();
    let (code, v) = json(&["doctor", "--json"], &store.config);
    assert_eq!(code, 2, "{v}");
    let warned: Vec<_> = status_of(&v, "certificate")
        .into_iter()
        .filter(|(s, _)| s == "warn")
        .collect();
    assert_eq!(warned.len(), 1, "{v}");
    let d = &warned[0].1;
    assert!(
        d.contains("\"expiring\"") && (d.contains("in 9 days") || d.contains("in 10 days")),
        "{warned:?}"
    );
}

#[test]
fn doctor_against_the_vault_and_its_failure_paths() {
    let emu = Emulator::start_with(
        r#"
[[principal]]
client_id = "reader-app"
client_secret = "reader-secret"

[[role_assignment]]
principal = "reader-app"
role = "Key Vault Reader"
scope = "vault"
"#,
    );
    // All good: token, listing, database, round trip, test signatures, certificates.
    let good = emu.config("vault", "");
    let (code, v) = json(&["doctor", "--json", "--sign"], &good);
    assert_eq!(code, 0, "{v}");
    for name in ["token", "list keys", "certificate database", "round trip"] {
        assert_eq!(status_of(&v, name)[0].0, "ok", "{name}: {v}");
    }
    assert_eq!(status_of(&v, "test signature").len(), 3, "{v}");

    // Wrong credentials: the token check fails and says what to check.
    let wrong = emu.config_as("wrong", "", &emu.field("client_id"), "not-the-secret");
    let (code, v) = json(&["doctor", "--json"], &wrong);
    assert_eq!(code, 1, "{v}");
    let (s, d) = &status_of(&v, "token")[0];
    assert_eq!(s, "fail");
    assert!(d.contains("slot.credential"), "{d}");

    // A reader may list but not sign: the test signature names the role to assign.
    let reader = emu.config_as("reader", "", "reader-app", "reader-secret");
    let (code, v) = json(&["doctor", "--json", "--sign"], &reader);
    assert_eq!(code, 1, "{v}");
    assert_eq!(status_of(&v, "list keys")[0].0, "ok", "{v}");
    let signed = status_of(&v, "test signature");
    assert!(
        signed
            .iter()
            .all(|(s, d)| s == "fail" && d.contains("Key Vault Crypto User")),
        "{signed:?}"
    );

    // Latency above the threshold: a region warning, exit 2.
    emu.admin("PUT", "/faults", r#"{"latency_ms": 30}"#);
    let (code, v) = json(&["doctor", "--json", "--samples", "3"], &good);
    assert_eq!(code, 2, "{v}");
    let (s, d) = &status_of(&v, "round trip")[0];
    assert_eq!(s, "warn");
    assert!(d.contains("another region"), "{d}");
    emu.admin("DELETE", "/faults", "");

    // Throttled past the retries: the listing fails with the throttling advice.
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "list_keys", "status": 429, "retry_after_s": 0, "times": 40}"#,
    );
    let throttled = emu.config("throttled", "max_retries = 1\ndeadline_seconds = 3");
    let (code, v) = json(&["doctor", "--json"], &throttled);
    assert_eq!(code, 1, "{v}");
    let failed: Vec<_> = checks(&v)
        .into_iter()
        .filter(|(_, s, _)| s == "fail")
        .collect();
    assert!(
        failed.iter().any(|(_, _, d)| d.contains("429")),
        "{failed:?}"
    );
    emu.admin("DELETE", "/faults", "");

    // An unreachable vault (a port nothing listens on).
    let port = support::closed_port();
    let text = std::fs::read_to_string(&good).unwrap();
    let vault = emu.field("vault_url");
    let dead = vault.rsplit_once(':').unwrap().0.to_owned() + &format!(":{port}");
    let unreachable = emu.dir.path().join("unreachable.toml");
    std::fs::write(
        &unreachable,
        text.replace(&vault, &dead).replace(
            "[slot.credential]",
            "deadline_seconds = 3\n[slot.credential]",
        ),
    )
    .unwrap();
    let (code, v) = json(&["doctor", "--json"], &unreachable);
    assert_eq!(code, 1, "{v}");
    assert!(checks(&v).iter().any(|(_, s, _)| s == "fail"), "{v}");

    // A configuration mistake: the same message as C_Initialize, exit 1.
    let bad = emu.dir.path().join("bad.toml");
    std::fs::write(&bad, "[[slot]]\nlabel = \"x\"\nkind = \"vault\"\n").unwrap();
    let (code, v) = json(&["doctor", "--json"], &bad);
    assert_eq!(code, 1, "{v}");
    let (s, d) = &status_of(&v, "configuration")[0];
    assert_eq!(s, "fail");
    assert!(
        d.contains("bad.toml: line 3") && d.contains("key-vault"),
        "{d}"
    );
}

#[test]
fn audit_summarises_the_log_and_its_rotated_files() {
    let store = FixtureStore::new("fixtures", "");
    let log = store.dir.path().join("audit.jsonl");
    let mut text = std::fs::read_to_string(&store.config).unwrap();
    text += &format!("[audit]\nfile = {log:?}\nkeep = 2\n");
    std::fs::write(&store.config, text).unwrap();
    let at = |ago: u64| {
        let t = std::time::SystemTime::now() - std::time::Duration::from_secs(ago);
        identify_pkcs11::certdb::rfc3339_of(t)
    };
    let line = |ago: u64, op: &str, result: &str, ms: f64| {
        format!(
            "{{\"time\":\"{}\",\"pid\":1,\"process\":\"t\",\"slot\":\"fixtures\",\"key\":\"rsa2048\",\"version\":null,\"operation\":\"{op}\",\"mechanism\":\"RSA-PKCS1-SHA256\",\"result\":\"{result}\",\"latency_ms\":{ms},\"request_id\":null}}\n",
            at(ago)
        )
    };
    std::fs::write(
        &log,
        line(60, "sign", "CKR_OK", 10.0)
            + &line(30, "sign", "CKR_OK", 30.0)
            + &line(20, "decrypt", "CKR_ENCRYPTED_DATA_INVALID", 5.0)
            + "not json\n",
    )
    .unwrap();
    std::fs::write(
        store.dir.path().join("audit.jsonl.1"),
        line(2 * 86_400, "sign", "CKR_OK", 1.0) + &line(600, "sign", "CKR_OK", 20.0),
    )
    .unwrap();
    let (code, v) = json(&["audit", "--json", "--since", "1h"], &store.config);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["uses"].as_u64(), v["failed"].as_u64()),
        (Some(4), Some(1)),
        "{v}"
    );
    assert_eq!(v["unreadable_lines"], 1);
    let signs = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["operation"] == "sign")
        .unwrap();
    assert_eq!(signs["count"], 3);
    assert_eq!(signs["p50_ms"], 20.0);
    assert_eq!(signs["p99_ms"], 30.0);
    let (_, v) = json(&["audit", "--json", "--since", "3d"], &store.config);
    assert_eq!(v["uses"], 5, "{v}");
    let (code, out, _) = tool(&["audit", "--since", "1h"], &store.config);
    assert_eq!(code, 0);
    assert!(
        out.contains("key uses since") && out.contains("CKR_ENCRYPTED_DATA_INVALID"),
        "{out}"
    );
    let (code, _, err) = tool(&["audit", "--since", "1y"], &store.config);
    assert_eq!(code, 1);
    assert!(err.contains("s, m, h or d"), "{err}");
    // No [audit] section: said so, with what to add.
    let plain = FixtureStore::new("fixtures", "");
    let (code, _, err) = tool(&["audit"], &plain.config);
    assert_eq!(code, 1);
    assert!(err.contains("[audit]"), "{err}");
}

/// The certificate's self-signature verifies with its own key, which is the new key's.
fn check_self_signed(pem: &str, subject_cn: &str) -> openssl::x509::X509 {
    let cert =
        openssl::x509::X509::from_pem(pem.as_bytes()).unwrap_or_else(|e| panic!("{e}: {pem}"));
    let key = cert.public_key().unwrap();
    assert!(cert.verify(&key).unwrap(), "self-signature does not verify");
    let cn = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .unwrap()
        .data()
        .to_string()
        .unwrap();
    assert_eq!(cn, subject_cn);
    cert
}

#[test]
fn cert_self_signed_in_a_directory_and_on_a_managed_hsm() {
    // Directory store: key and certificate files; list pairs them.
    let store = FixtureStore::new("fixtures", "");
    let (code, pem, err) = tool(
        &[
            "cert",
            "self-signed",
            "--slot",
            "fixtures",
            "--name",
            "web",
            "--subject",
            "CN=web.example,O=Contoso",
            "--key",
            "ec:p256",
            "--days",
            "30",
        ],
        &store.config,
    );
    assert_eq!(code, 0, "{err}");
    let cert = check_self_signed(&pem, "web.example");
    let sha256: String = openssl::sha::sha256(&cert.to_der().unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(err.contains(&sha256), "{err}");
    let (_, v) = json(&["list", "--json"], &store.config);
    let web = v["slots"][0]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "web")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(web["certificates_sha256"][0], sha256.as_str(), "{web}");
    assert_eq!(web["type"], "EC P256");

    // Bad input: named, nothing created.
    for (flag, value, says) in [
        ("--key", "rsa:1024", "rsa:2048"),
        ("--subject", "XX=1", "CN, O"),
        ("--slot", "nope", "\"nope\""),
        ("--days", "0", "1 to 3650"),
    ] {
        let mut all = vec!["cert", "self-signed"];
        for (f, default) in [
            ("--slot", "fixtures"),
            ("--name", "bad"),
            ("--subject", "CN=x"),
        ] {
            if f != flag {
                all.extend([f, default]);
            }
        }
        all.extend([flag, value]);
        let (code, _, err) = tool(&all, &store.config);
        assert_eq!(code, 1, "{all:?}: {err}");
        assert!(err.contains(says), "{all:?}: {err}");
    }
    assert!(!store.store.join("bad.key.pem").exists());

    // Managed HSM: an HSM key, its certificate in the certificate database.
    let emu = Emulator::start();
    let config = emu.config_hsm("hsm", "");
    let (code, pem, err) = tool(
        &[
            "cert",
            "self-signed",
            "--slot",
            "hsm",
            "--name",
            "signing",
            "--subject",
            "CN=idp.example",
            "--key",
            "rsa:2048",
        ],
        &config,
    );
    assert_eq!(code, 0, "{err}");
    check_self_signed(&pem, "idp.example");
    let (_, v) = json(&["list", "--json"], &config);
    let key = v["slots"][0]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "signing")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(
        key["certificates_sha256"].as_array().unwrap().len(),
        1,
        "{key}"
    );
    assert_eq!(key["type"], "RSA 2048");
}

#[test]
fn cert_rotate_makes_a_new_current_version_and_keeps_the_old() {
    let emu = Emulator::start();
    let config = emu.config("vault", "");
    let (code, first, err) = tool(
        &[
            "cert",
            "self-signed",
            "--slot",
            "vault",
            "--name",
            "idp",
            "--subject",
            "CN=idp.example,O=Contoso",
            "--key",
            "rsa:2048",
        ],
        &config,
    );
    assert_eq!(code, 0, "{err}");
    let first = check_self_signed(&first, "idp.example");
    let (code, second, err) = tool(
        &[
            "cert", "rotate", "--slot", "vault", "--name", "idp", "--days", "400",
        ],
        &config,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("stays for decryption"), "{err}");
    // The same subject (taken from the current certificate), a new key.
    let second = check_self_signed(&second, "idp.example");
    assert_eq!(
        format!("{:?}", second.subject_name()),
        format!("{:?}", first.subject_name())
    );
    assert!(
        !second
            .public_key()
            .unwrap()
            .public_eq(&first.public_key().unwrap())
    );
    let (_, v) = json(&["list", "--json"], &config);
    let versions: Vec<&Value> = v["slots"][0]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["name"] == "idp")
        .collect();
    assert_eq!(versions.len(), 2, "{v}");
    let sha = |c: &openssl::x509::X509| -> String {
        openssl::sha::sha256(&c.to_der().unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let current = versions.iter().find(|k| k["current"] == true).unwrap();
    let old = versions.iter().find(|k| k["current"] == false).unwrap();
    assert_eq!(
        current["certificates_sha256"][0],
        sha(&second).as_str(),
        "{current}"
    );
    assert_eq!(old["certificates_sha256"][0], sha(&first).as_str(), "{old}");
    assert_eq!(
        old["decrypt"], true,
        "the old version still decrypts: {old}"
    );

    // A directory store has no key versions: said so.
    let store = FixtureStore::new("fixtures", "");
    let (code, _, err) = tool(
        &["cert", "rotate", "--slot", "fixtures", "--name", "rsa2048"],
        &store.config,
    );
    assert_eq!(code, 1);
    assert!(err.contains("key-vault and managed-hsm"), "{err}");
    // An unknown key.
    let (code, _, err) = tool(
        &["cert", "rotate", "--slot", "vault", "--name", "nope"],
        &config,
    );
    assert_eq!(code, 1);
    assert!(err.contains("no key \"nope\""), "{err}");
}
