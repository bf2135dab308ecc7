//! key-vault slots against the emulator (tests/kv-emulator), through the C ABI with the
//! `cryptoki` crate: what crosses the network (ARCHITECTURE.md §4), signatures compared with
//! OpenSSL's over the same fixture keys, and faults ending in the right return code within
//! the deadline, after which the next call works.
// Setting the configuration variable before loading the module is process-global: the
// tests take turns (TURN) and set it only then.
#![allow(unsafe_code)]

mod support;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::MechanismType;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::{Emulator, fixtures_dir, module_path};

static TURN: Mutex<()> = Mutex::new(());

/// A loaded module with a logged-in session; on drop the session closes, then the module
/// is finalized.
struct Loaded {
    session: Option<Session>,
    pkcs11: Option<Pkcs11>,
}

impl Loaded {
    fn session(&self) -> &Session {
        self.session.as_ref().expect("open until drop")
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        drop(self.session.take());
        if let Some(p) = self.pkcs11.take() {
            let _ = p.finalize();
        }
    }
}

fn load(config: &std::path::Path) -> Loaded {
    // SAFETY: tests take turns (TURN) and no other thread reads the environment now.
    unsafe { std::env::set_var("IDENTIFY_PKCS11_CONFIG", config) };
    let pkcs11 = Pkcs11::new(module_path()).unwrap();
    pkcs11
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = pkcs11.get_slots_with_token().unwrap()[0];
    let session = pkcs11.open_rw_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::new("1234".into())))
        .unwrap();
    Loaded {
        session: Some(session),
        pkcs11: Some(pkcs11),
    }
}

fn find(s: &Session, class: ObjectClass, label: &str) -> ObjectHandle {
    let found = s
        .find_objects(&[
            Attribute::Class(class),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1, "{class} {label}");
    found[0]
}

fn ops(stats: &serde_json::Value, op: &str) -> u64 {
    stats["by_operation"][op].as_u64().unwrap_or(0)
}

fn fixture_key(name: &str) -> openssl::pkey::PKey<openssl::pkey::Private> {
    let pem = std::fs::read(fixtures_dir().join(format!("keys/{name}.key.pem"))).unwrap();
    openssl::pkey::PKey::private_key_from_pem(&pem).unwrap()
}

fn rv(e: CkError) -> RvError {
    match e {
        CkError::Pkcs11(rv, _) => rv,
        other => panic!("not a PKCS#11 error: {other}"),
    }
}

#[test]
fn only_sign_and_decrypt_cross_the_network() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let emu = Emulator::start();
    let m = load(&emu.config("vault", ""));
    let s = m.session();
    // The first listing happens here, lazily.
    let key = find(s, ObjectClass::PRIVATE_KEY, "rsa2048");
    emu.reset_stats();

    // Finds, attributes, verify, encrypt and size queries: no request at all.
    let public = find(s, ObjectClass::PUBLIC_KEY, "rsa2048");
    let cert = find(s, ObjectClass::CERTIFICATE, "rsa2048");
    let attrs = s
        .get_attributes(
            key,
            &[
                AttributeType::Modulus,
                AttributeType::Id,
                AttributeType::Label,
            ],
        )
        .unwrap();
    assert_eq!(attrs.len(), 3);
    s.get_attributes(cert, &[AttributeType::Value]).unwrap();
    let expected = {
        let mut signer = openssl::sign::Signer::new(
            openssl::hash::MessageDigest::sha256(),
            &fixture_key("rsa2048"),
        )
        .unwrap();
        signer.update(b"message").unwrap();
        signer.sign_to_vec().unwrap()
    };
    s.verify(&Mechanism::Sha256RsaPkcs, public, b"message", &expected)
        .unwrap();
    let oaep = PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    );
    let ciphertext = s
        .encrypt(&Mechanism::RsaPkcsOaep(oaep), public, b"content key")
        .unwrap();
    let stats = emu.stats();
    assert_eq!(
        stats["total_requests"], 0,
        "local operations reached the vault: {stats}"
    );

    // C_Sign (its size query included): exactly one request, and the bytes OpenSSL makes.
    let signature = s.sign(&Mechanism::Sha256RsaPkcs, key, b"message").unwrap();
    assert_eq!(
        signature, expected,
        "RSA PKCS#1 v1.5 from the vault differs from OpenSSL's"
    );
    let stats = emu.stats();
    assert_eq!(
        (ops(&stats, "sign"), stats["total_requests"].as_u64()),
        (1, Some(1)),
        "{stats}"
    );

    // C_Decrypt: exactly one request.
    let plain = s
        .decrypt(&Mechanism::RsaPkcsOaep(oaep), key, &ciphertext)
        .unwrap();
    assert_eq!(plain, b"content key");
    let stats = emu.stats();
    assert_eq!(
        (ops(&stats, "decrypt"), stats["total_requests"].as_u64()),
        (1, Some(2)),
        "{stats}"
    );

    // OAEP with a label cannot be done by Key Vault: refused at C_DecryptInit.
    let labelled = PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::data_specified(b"l"),
    );
    let e = s
        .decrypt(&Mechanism::RsaPkcsOaep(labelled), key, &ciphertext)
        .unwrap_err();
    assert_eq!(rv(e), RvError::MechanismParamInvalid);
    assert_eq!(emu.stats()["total_requests"], 2);
}

#[test]
fn faults_end_in_the_right_code_within_the_deadline() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let emu = Emulator::start();
    let m = load(&emu.config("vault", "deadline_seconds = 3\nmax_retries = 2"));
    let s = m.session();
    let key = find(s, ObjectClass::PRIVATE_KEY, "p256");
    let sign = || s.sign(&Mechanism::EcdsaSha256, key, b"data");
    sign().unwrap();

    // One 429 with Retry-After: retried, the call succeeds.
    emu.reset_stats();
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "sign", "status": 429, "retry_after_s": 1}"#,
    );
    sign().unwrap();
    assert_eq!(ops(&emu.stats(), "sign"), 2);

    // A 503 burst shorter than the retry limit: still succeeds.
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "sign", "status": 503, "times": 2}"#,
    );
    sign().unwrap();

    // Throttled past the retries: CKR_DEVICE_ERROR, then the next call works.
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "sign", "status": 429, "retry_after_s": 0, "times": 3}"#,
    );
    assert_eq!(rv(sign().unwrap_err()), RvError::DeviceError);
    sign().unwrap();

    // A stalled connection: CKR_DEVICE_ERROR within the deadline (3 s), then recovery.
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "sign", "stall_ms": 20000}"#,
    );
    let t = Instant::now();
    assert_eq!(rv(sign().unwrap_err()), RvError::DeviceError);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    emu.admin("DELETE", "/faults", "");
    sign().unwrap();
}
