//! key-vault slots against the emulator (tests/kv-emulator), through the C ABI with the
//! `cryptoki` crate: what crosses the network (ARCHITECTURE.md §4), signatures compared with
//! OpenSSL's over the same fixture keys, and faults ending in the right return code within
//! the deadline, after which the next call works.
// Setting the configuration variable before loading the module is process-global: the
// tests take turns (TURN) and set it only then.
#![allow(unsafe_code)]

mod harness;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::MechanismType;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use harness::{Emulator, fixtures_dir, module_path};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
        if let Some(p) = self.pkcs11.take()
            && let Err(e) = p.finalize()
            && !std::thread::panicking()
        {
            panic!("C_Finalize failed: {e}");
        }
    }
}

/// The module loaded over `config` and logged in on its first slot, which is listed (a
/// search without a label): a test's request counts start after the first listing.
fn load(config: &std::path::Path) -> Loaded {
    let m = load_unlisted(config);
    m.session()
        .find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])
        .unwrap();
    m
}

/// As `load`, before any search: the slot is listed lazily, by the first search that
/// needs it (a search by label is first answered from a lookup of that key).
fn load_unlisted(config: &std::path::Path) -> Loaded {
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

/// OpenSSL's RS256 (PKCS#1 v1.5, SHA-256) signature with a fixture key.
fn openssl_rs256(key: &str, data: &[u8]) -> Vec<u8> {
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &fixture_key(key))
            .unwrap();
    signer.update(data).unwrap();
    signer.sign_to_vec().unwrap()
}

fn rv(e: CkError) -> RvError {
    match e {
        CkError::Pkcs11(rv, _) => rv,
        other => panic!("not a PKCS#11 error: {other}"),
    }
}

#[test]
fn only_sign_and_decrypt_cross_the_network() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    let m = load(&emu.config("vault", ""));
    let s = m.session();
    // The slot was listed by `load`.
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
    let expected = openssl_rs256("rsa2048", b"message");
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

    // C_UnwrapKey into a key that stays inside (sensitive): exactly one request
    // (unwrapKey); the key OpenSSL wrapped then decrypts OpenSSL's AES-GCM locally.
    let aes = [0x42u8; 32];
    let wrapped = {
        let cert = harness::fixture_cert("rsa2048");
        let rsa = cert.public_key().unwrap().rsa().unwrap();
        let mut out = vec![0u8; 256];
        rsa.public_encrypt(&aes, &mut out, openssl::rsa::Padding::PKCS1_OAEP)
            .unwrap();
        out
    };
    let oaep_sha1 = PkcsOaepParams::new(
        MechanismType::SHA1,
        PkcsMgfType::MGF1_SHA1,
        PkcsOaepSource::empty(),
    );
    let secret = s
        .unwrap_key(
            &Mechanism::RsaPkcsOaep(oaep_sha1),
            key,
            &wrapped,
            &kept_secret_template(),
        )
        .unwrap();
    let e = s
        .get_attributes(secret, &[AttributeType::Value])
        .map(|a| a.len());
    assert_eq!(e.ok(), Some(0), "a sensitive key's CKA_VALUE is not given");
    assert_eq!(
        aes_gcm_decrypt(s, secret, &aes, b"the assertion"),
        b"the assertion"
    );
    let stats = emu.stats();
    assert_eq!(
        (ops(&stats, "unwrap_key"), stats["total_requests"].as_u64()),
        (1, Some(3)),
        "{stats}"
    );
    emu.reset_stats();

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
    assert_eq!(emu.stats()["total_requests"], 0);
}

/// A sensitive, unextractable AES session key, as C_UnwrapKey's template.
fn kept_secret_template() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(cryptoki::object::KeyType::AES),
        Attribute::Token(false),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
    ]
}

/// A key its store lets unwrap but not decrypt (key_ops without `decrypt`: CKA_DECRYPT
/// false) is no decryption oracle: C_UnwrapKey refuses a readable key before any request,
/// makes a sensitive, unextractable one by default, whose value no attribute read and no
/// search reveals; it decrypts AES-GCM content inside the module.
#[test]
fn a_key_that_may_unwrap_but_not_decrypt_gives_no_plaintext() {
    use azure_security_keyvault_keys::models::KeyOperation;
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    OutOfBand::new(&emu).set_ops(
        "rsa2048",
        vec![KeyOperation::UnwrapKey, KeyOperation::WrapKey],
    );
    let m = load(&emu.config_officer("vault", ""));
    let s = m.session();
    let key = find(s, ObjectClass::PRIVATE_KEY, "rsa2048");
    assert_eq!(
        s.get_attributes(key, &[AttributeType::Decrypt, AttributeType::Unwrap])
            .unwrap(),
        vec![Attribute::Decrypt(false), Attribute::Unwrap(true)]
    );
    let aes = [0x17u8; 32];
    let wrapped = {
        let rsa = harness::fixture_cert("rsa2048")
            .public_key()
            .unwrap()
            .rsa()
            .unwrap();
        let mut out = vec![0u8; 256];
        rsa.public_encrypt(&aes, &mut out, openssl::rsa::Padding::PKCS1)
            .unwrap();
        out
    };
    emu.reset_stats();
    let e = s
        .unwrap_key(&Mechanism::RsaPkcs, key, &wrapped, &secret_template())
        .unwrap_err();
    assert_eq!(rv(e), RvError::TemplateInconsistent);
    let e = s.decrypt(&Mechanism::RsaPkcs, key, &wrapped).unwrap_err();
    assert_eq!(rv(e), RvError::KeyFunctionNotPermitted);
    assert_eq!(emu.stats()["total_requests"], 0, "{}", emu.stats());
    let secret = s
        .unwrap_key(
            &Mechanism::RsaPkcs,
            key,
            &wrapped,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(cryptoki::object::KeyType::AES),
            ],
        )
        .unwrap();
    assert_eq!(
        s.get_attributes(
            secret,
            &[AttributeType::Sensitive, AttributeType::Extractable]
        )
        .unwrap(),
        vec![Attribute::Sensitive(true), Attribute::Extractable(false)]
    );
    assert!(
        s.get_attributes(secret, &[AttributeType::Value])
            .unwrap()
            .is_empty()
    );
    assert!(
        s.find_objects(&[Attribute::Value(aes.to_vec())])
            .unwrap()
            .is_empty(),
        "a search by value finds nothing"
    );
    // Nor does C_SetAttributeValue confirm a guess: the right value and a wrong one get
    // the same answer.
    for guess in [aes.to_vec(), vec![0u8; 32]] {
        let e = s
            .update_attributes(secret, &[Attribute::Value(guess)])
            .unwrap_err();
        assert_eq!(rv(e), RvError::AttributeReadOnly);
    }
    assert_eq!(aes_gcm_decrypt(s, secret, &aes, b"content"), b"content");
    assert_eq!(ops(&emu.stats(), "unwrap_key"), 1, "{}", emu.stats());
}

/// `hsm_keys = true` on a key-vault slot: C_GenerateKeyPair makes RSA-HSM and EC-HSM keys
/// in a Premium vault (the emulator's default), which sign (verified by OpenSSL), decrypt
/// and unwrap through PKCS#11. A Standard vault refuses HSM keys: CKR_FUNCTION_FAILED, and
/// the module's log names the tier and what to change.
#[test]
fn hsm_keys_in_a_premium_vault_and_refused_by_a_standard_one() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start_with("extra_vaults = [\"basic\"]\nstandard_vaults = [\"basic\"]\n");
    let oob = OutOfBand::new(&emu);
    let data = b"signed in a hardware security module";
    {
        let m = load(&emu.config_officer("premium", "hsm_keys = true"));
        let s = m.session();
        let (rsa_public, rsa) = s
            .generate_key_pair(
                &Mechanism::RsaPkcsKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::ModulusBits(2048.into()),
                    Attribute::PublicExponent(vec![1, 0, 1]),
                    Attribute::Label(b"hsm-rsa".to_vec()),
                ],
                &[
                    Attribute::Token(true),
                    Attribute::Label(b"hsm-rsa".to_vec()),
                    Attribute::Sign(true),
                    Attribute::Decrypt(true),
                    Attribute::Unwrap(true),
                ],
            )
            .unwrap();
        let ec = generate_ec(s, "hsm-ec");
        assert_eq!(oob.kty("hsm-rsa"), "RsaHsm");
        assert_eq!(oob.kty("hsm-ec"), "EcHsm");
        let spki = |h: ObjectHandle| match &s
            .get_attributes(h, &[AttributeType::PublicKeyInfo])
            .unwrap()[..]
        {
            [Attribute::PublicKeyInfo(der)] => {
                openssl::pkey::PKey::public_key_from_der(der).unwrap()
            }
            other => panic!("{other:?}"),
        };
        let rsa_key = spki(rsa_public);
        // RS256 and ES256, verified by OpenSSL.
        let sig = s.sign(&Mechanism::Sha256RsaPkcs, rsa, data).unwrap();
        let mut v =
            openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &rsa_key).unwrap();
        v.update(data).unwrap();
        assert!(v.verify(&sig).unwrap(), "RS256 by the RSA-HSM key");
        let sig = s.sign(&Mechanism::EcdsaSha256, ec, data).unwrap();
        let der = openssl::ecdsa::EcdsaSig::from_private_components(
            openssl::bn::BigNum::from_slice(&sig[..32]).unwrap(),
            openssl::bn::BigNum::from_slice(&sig[32..]).unwrap(),
        )
        .unwrap()
        .to_der()
        .unwrap();
        let ec_public = s
            .find_objects(&[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::Label(b"hsm-ec".to_vec()),
            ])
            .unwrap();
        let ec_key = spki(ec_public[0]);
        let mut v =
            openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &ec_key).unwrap();
        v.update(data).unwrap();
        assert!(v.verify(&der).unwrap(), "ES256 by the EC-HSM key");
        // RSA-OAEP (SHA-256) decryption of OpenSSL's encryption.
        let secret = b"a session key";
        let ct = harness::oaep_sha256_encrypt(&rsa_key, secret);
        let oaep = PkcsOaepParams::new(
            MechanismType::SHA256,
            PkcsMgfType::MGF1_SHA256,
            PkcsOaepSource::empty(),
        );
        assert_eq!(
            s.decrypt(&Mechanism::RsaPkcsOaep(oaep), rsa, &ct).unwrap(),
            secret
        );
        // An AES key unwrapped inside, then AES-GCM content decrypted with it.
        let aes = [0x42u8; 32];
        let mut wrapped = vec![0u8; 256];
        rsa_key
            .rsa()
            .unwrap()
            .public_encrypt(&aes, &mut wrapped, openssl::rsa::Padding::PKCS1)
            .unwrap();
        let kept = s
            .unwrap_key(&Mechanism::RsaPkcs, rsa, &wrapped, &kept_secret_template())
            .unwrap();
        assert_eq!(aes_gcm_decrypt(s, kept, &aes, b"content"), b"content");
    }

    // The Standard vault: refused, named in the log. The module logs to standard error
    // (its default), and installs its log once per process: the generation runs in a
    // child process (`standard_vault_child`) whose standard error is read here.
    let config = emu.config_officer("basic", "hsm_keys = true");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("://testvault.", "://basic.");
    assert!(text.contains("://basic."), "{text}");
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "standard_vault_child",
            "--nocapture",
        ])
        .env("IDENTIFY_PKCS11_CONFIG", &config)
        .env("IDENTIFY_PKCS11_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}{stderr}"
    );
    assert!(
        stderr.contains("Standard tier") && stderr.contains("hsm_keys = false"),
        "{stderr}"
    );
}

#[test]
#[ignore = "a helper: hsm_keys_in_a_premium_vault_and_refused_by_a_standard_one runs it in a child process"]
fn standard_vault_child() {
    let m = load(std::path::Path::new(
        &std::env::var_os("IDENTIFY_PKCS11_CONFIG").expect("IDENTIFY_PKCS11_CONFIG"),
    ));
    let e = try_generate_ec(m.session(), "refused").unwrap_err();
    assert_eq!(rv(e), RvError::FunctionFailed);
}

/// One module, every kind: a directory slot, a key-vault slot and a managed-hsm slot in one
/// process. Each lists and signs on its own. A fourth slot's vault never answers (its
/// address leads to a listener that accepts and stays silent): a search there fails with
/// CKR_DEVICE_ERROR once its listing's time is up. A fifth, managed-hsm slot's certificate
/// database is locked by another writer (an open write transaction on its SQLite file): its
/// listing waits for the lock (10 s), then lists the HSM's keys without the database's
/// certificates. While both wait, the directory, key-vault and managed-hsm slots search
/// and sign as before.
#[test]
fn a_stalled_vault_or_a_locked_database_delays_no_other_slot() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    let dir = harness::FixtureStore::new("dir", "");
    let vault = emu.config("vault", "");
    // One try, a short deadline: the stalled search ends within seconds.
    let stalled = emu.config("stalled", "deadline_seconds = 2\nmax_retries = 0");
    let hsm = emu.config_hsm("hsm", "");
    let locked = emu.config_hsm("locked", "");
    // Another process's writer holds the locked slot's database (SQLite's write lock; a
    // process's own connections would not see each other's locks across the module's and
    // this binary's copies of SQLite).
    let mut holder = hold_database(&emu.dir.path().join("locked.certificates.db"));
    // The stalled vault: the same host name on a port whose listener never answers (the
    // token endpoint stays the emulator's).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let (accepted_tx, accepted) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming().flatten() {
            held.push(conn);
            let _ = accepted_tx.send(());
        }
    });
    let vault_url = emu.field("vault_url");
    let port = vault_url.rsplit(':').next().unwrap().trim_end_matches('/');
    let vault_line = format!("vault = {vault_url:?}");
    let stalled_text = std::fs::read_to_string(&stalled).unwrap().replace(
        &vault_line,
        &vault_line.replace(&format!(":{port}"), &format!(":{silent_port}")),
    );
    assert!(
        stalled_text.contains(&format!(":{silent_port}")),
        "{stalled_text}"
    );
    let config = emu.dir.path().join("every-kind.toml");
    let text = [
        std::fs::read_to_string(&dir.config).unwrap(),
        std::fs::read_to_string(&vault).unwrap(),
        std::fs::read_to_string(&hsm).unwrap(),
        stalled_text,
        std::fs::read_to_string(&locked).unwrap(),
    ]
    .join("\n");
    std::fs::write(&config, text).unwrap();
    let m = load(&config);
    let pkcs11 = m.pkcs11.as_ref().expect("loaded");
    let slot_of = |label: &str| {
        pkcs11
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| pkcs11.get_token_info(*s).unwrap().label().trim_end() == label)
            .unwrap_or_else(|| panic!("no slot {label}"))
    };
    let sign_on = |label: &str| {
        let s = pkcs11.open_ro_session(slot_of(label)).unwrap();
        let key = find(&s, ObjectClass::PRIVATE_KEY, "p256");
        s.sign(&Mechanism::EcdsaSha256, key, b"data").unwrap();
    };
    for label in ["dir", "vault", "hsm"] {
        sign_on(label);
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let locked_done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let stalled = scope.spawn(|| {
            let s = pkcs11.open_ro_session(slot_of("stalled")).unwrap();
            let r = s.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)]);
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            r
        });
        let locked = scope.spawn(|| {
            let t = Instant::now();
            let s = pkcs11.open_ro_session(slot_of("locked")).unwrap();
            let r = s.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)]);
            locked_done.store(true, std::sync::atomic::Ordering::SeqCst);
            (r, t.elapsed())
        });
        // The stalled slot's search has reached the silent listener: it is waiting now.
        accepted
            .recv_timeout(Duration::from_secs(30))
            .expect("the stalled slot never connected");
        for label in ["dir", "hsm", "vault"] {
            sign_on(label);
        }
        assert!(
            !done.load(std::sync::atomic::Ordering::SeqCst),
            "the other slots waited for the stalled one"
        );
        assert!(
            !locked_done.load(std::sync::atomic::Ordering::SeqCst),
            "the other slots waited for the locked database's slot"
        );
        let e = stalled.join().unwrap().unwrap_err();
        assert_eq!(rv(e), RvError::DeviceError);
        let (found, waited) = locked.join().unwrap();
        let found = found.expect("the locked slot lists its keys without the database");
        assert!(!found.is_empty(), "the HSM's keys");
        // It did wait for the lock (the lock was real), and answered after it.
        assert!(
            waited >= Duration::from_secs(5),
            "answered after {waited:?}"
        );
        eprintln!("the locked database's slot answered after {waited:?}");
    });
    let _ = holder.kill();
    let _ = holder.wait();
}

/// Starts `hold_database_child` on `path` and returns once it holds the write lock.
fn hold_database(path: &std::path::Path) -> std::process::Child {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "hold_database_child", "--nocapture"])
        .env("HOLD_DATABASE", path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let held = std::io::BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .any(|l| l == "held");
    assert!(held, "the holder never took the lock");
    child
}

#[test]
#[ignore = "a helper: a_stalled_vault_or_a_locked_database_delays_no_other_slot runs it in a child process"]
fn hold_database_child() {
    let path = std::env::var_os("HOLD_DATABASE").expect("HOLD_DATABASE");
    let db = rusqlite::Connection::open(path).unwrap();
    db.pragma_update(None, "journal_mode", "WAL").unwrap();
    db.execute_batch("BEGIN IMMEDIATE; CREATE TABLE held (a INTEGER);")
        .unwrap();
    println!("held");
    // Until the parent closes stdin or kills this process.
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    drop(db);
}

/// `plain` encrypted by OpenSSL with AES-256-GCM under `aes`, decrypted by the module
/// with the session key `secret`.
fn aes_gcm_decrypt(s: &Session, secret: ObjectHandle, aes: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut iv = [7u8; 12];
    let mut tag = [0u8; 16];
    let ct = openssl::symm::encrypt_aead(
        openssl::symm::Cipher::aes_256_gcm(),
        aes,
        Some(&iv),
        b"",
        plain,
        &mut tag,
    )
    .unwrap();
    let params = cryptoki::mechanism::aead::GcmParams::new(&mut iv, b"", 128.into()).unwrap();
    s.decrypt(
        &Mechanism::AesGcm(params),
        secret,
        &[ct.as_slice(), &tag].concat(),
    )
    .unwrap()
}

/// An extractable AES session key, as C_UnwrapKey's template.
fn secret_template() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(cryptoki::object::KeyType::AES),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ]
}

#[test]
fn faults_end_in_the_right_code_within_the_deadline() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    let m = load(&emu.config("vault", "deadline_seconds = 5\nmax_retries = 2"));
    let s = m.session();
    let key = find(s, ObjectClass::PRIVATE_KEY, "p256");
    let sign = || s.sign(&Mechanism::EcdsaSha256, key, b"data");
    sign().unwrap();

    // One 429 with Retry-After: 2: the retry waits for it, the call succeeds (within the
    // deadline of 5 s, or it would have failed).
    emu.reset_stats();
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "sign", "status": 429, "retry_after_s": 2}"#,
    );
    let t = Instant::now();
    sign().unwrap();
    let took = t.elapsed();
    assert_eq!(ops(&emu.stats(), "sign"), 2, "the 429, then the retry");
    assert!(
        took >= Duration::from_secs(2),
        "retried after {took:?}, before the Retry-After of 2 s"
    );

    // A Retry-After beyond the deadline: CKR_DEVICE_ERROR at the deadline, not after the
    // Retry-After (the bound leaves room for a loaded machine).
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "sign", "status": 429, "retry_after_s": 60}"#,
    );
    let t = Instant::now();
    assert_eq!(rv(sign().unwrap_err()), RvError::DeviceError);
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "waited {:?} for a Retry-After of 60 s past a deadline of 5 s",
        t.elapsed()
    );
    emu.admin("DELETE", "/faults", "");
    sign().unwrap();

    // One 429 without Retry-After: retried after the SDK's backoff, the call succeeds.
    emu.reset_stats();
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "sign", "status": 429}"#,
    );
    // (It succeeded, so within the slot's deadline of 5 s: no wall-clock check needed.)
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

    // A stalled connection (600 s): CKR_DEVICE_ERROR at the deadline (5 s; the bound
    // leaves room for a loaded machine and is still far below the stall), then recovery.
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "sign", "stall_ms": 600000}"#,
    );
    let t = Instant::now();
    assert_eq!(rv(sign().unwrap_err()), RvError::DeviceError);
    assert!(
        t.elapsed() < 4 * Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    emu.admin("DELETE", "/faults", "");
    sign().unwrap();
}

/// 200 threads sign through one slot, for 12 s, against the emulator's published
/// (unscaled) limits: RSA-3072 software keys, 1,000 operations per vault per 10 s (each
/// costs 4 units of the budget). The slot's rate budget (90 % by default: 90 signatures
/// per second) makes them wait their turn: no call fails and the vault answers no 429. The
/// load must reach the budget, or the test shows nothing (it says so).
#[test]
fn many_threads_sign_within_the_vaults_limits() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    let m = load(&emu.config("vault", ""));
    let key = find(m.session(), ObjectClass::PRIVATE_KEY, "rsa3072");
    let pkcs11 = m.pkcs11.as_ref().expect("loaded");
    let slot = pkcs11.get_slots_with_token().unwrap()[0];
    emu.reset_stats();
    let run = Duration::from_secs(12);
    let start = Instant::now();
    let results: Vec<(u64, Vec<String>)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..200)
            .map(|_| {
                scope.spawn(move || {
                    let s = pkcs11.open_ro_session(slot).unwrap();
                    let (mut signed, mut failed) = (0, Vec::new());
                    while start.elapsed() < run {
                        match s.sign(&Mechanism::Sha256RsaPkcs, key, b"data") {
                            Ok(_) => signed += 1,
                            Err(e) => failed.push(e.to_string()),
                        }
                    }
                    (signed, failed)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let signed: u64 = results.iter().map(|r| r.0).sum();
    let failed: Vec<&String> = results.iter().flat_map(|r| &r.1).collect();
    let stats = emu.stats();
    let throttled = stats["by_status"]["429"].as_u64().unwrap_or(0);
    let rate = signed as f64 / elapsed;
    eprintln!(
        "200 threads, {elapsed:.1} s: {signed} signatures ({rate:.0}/s; budget 90/s, limit 100/s), {} failed, {throttled} answered 429, {} requests",
        failed.len(),
        stats["total_requests"]
    );
    assert!(
        failed.is_empty(),
        "{} calls failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(throttled, 0, "the vault answered 429: {stats}");
    assert!(
        rate > 0.8 * 90.0,
        "{rate:.0} signatures/s: the load stayed below the rate budget (90/s), so this run cannot show that the budget holds it back"
    );
}

/// Answers the service damaged: a listing whose key bundles have no `kid` still lists
/// every key apart (ids derived from the vault, name and version), and each signs; a
/// signature that does not verify is an error (CKR_DEVICE_ERROR), never handed to the
/// caller, and the next one is fine.
#[test]
fn damaged_answers_are_repaired_or_refused() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "get_key", "mangle": "drop-kid", "times": 1000}"#,
    );
    let m = load(&emu.config("vault", ""));
    let s = m.session();
    let keys = s
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap();
    emu.admin("DELETE", "/faults", "");
    let mut labels: Vec<String> = keys
        .iter()
        .map(
            |k| match &s.get_attributes(*k, &[AttributeType::Label]).unwrap()[..] {
                [Attribute::Label(l)] => String::from_utf8(l.clone()).unwrap(),
                other => panic!("{other:?}"),
            },
        )
        .collect();
    labels.sort();
    assert_eq!(
        labels,
        ["p256", "rsa2048", "rsa3072"],
        "keys without kid collapsed"
    );
    for label in ["rsa2048", "rsa3072"] {
        let key = find(s, ObjectClass::PRIVATE_KEY, label);
        s.sign(&Mechanism::Sha256RsaPkcs, key, b"no kid").unwrap();
    }
    let key = find(s, ObjectClass::PRIVATE_KEY, "p256");
    s.sign(&Mechanism::EcdsaSha256, key, b"no kid").unwrap();

    // A wrong signature from the service: an error, then the next signature is right.
    let rsa = find(s, ObjectClass::PRIVATE_KEY, "rsa2048");
    for (key, mechanism) in [
        (rsa, Mechanism::Sha256RsaPkcs),
        (key, Mechanism::EcdsaSha256),
    ] {
        emu.admin(
            "POST",
            "/faults/once",
            r#"{"operation": "sign", "mangle": "corrupt-value"}"#,
        );
        let e = s.sign(&mechanism, key, b"damaged").unwrap_err();
        assert_eq!(rv(e), RvError::DeviceError);
        s.sign(&mechanism, key, b"damaged").unwrap();
    }
}

/// A least-privilege principal with Key Vault Crypto User only (no Certificate User): the
/// vault refuses it the certificate listing (403), and still its keys are listed and sign;
/// the refusal is the certificates' alone.
#[test]
fn a_crypto_user_without_certificate_rights_lists_and_signs_its_keys() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start_with(
        r#"
[[principal]]
client_id = "crypto-app"
client_secret = "crypto-secret"

[[role_assignment]]
principal = "crypto-app"
role = "Key Vault Crypto User"
scope = "vault"
"#,
    );
    let m = load(&emu.config_as("vault", "", "crypto-app", "crypto-secret"));
    let s = m.session();
    let key = find(s, ObjectClass::PRIVATE_KEY, "rsa2048");
    let stats = emu.stats();
    assert!(
        emu.stats()["by_status"]["403"].as_u64().unwrap_or(0) >= 1,
        "the certificate listing was not refused: {stats}"
    );
    s.sign(&Mechanism::Sha256RsaPkcs, key, b"least privilege")
        .unwrap();
    assert_eq!(
        s.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
            .unwrap()
            .len(),
        3
    );
}

/// A key outside its validity window (the key of an expired certificate): the service
/// refuses to sign with it (403) and the caller gets CKR_KEY_FUNCTION_NOT_PERMITTED, as
/// the error table says, not CKR_FUNCTION_FAILED with advice to assign a role; decryption
/// with it still works (the window does not apply there).
#[test]
fn an_expired_key_may_not_sign_but_still_decrypts() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    let m = load(&emu.config("vault", ""));
    let s = m.session();
    let key = find(s, ObjectClass::PRIVATE_KEY, "rsa2048");
    s.sign(&Mechanism::Sha256RsaPkcs, key, b"valid").unwrap();
    OutOfBand::new(&emu).expire("rsa2048");
    emu.reset_stats();
    let e = s
        .sign(&Mechanism::Sha256RsaPkcs, key, b"expired")
        .unwrap_err();
    assert_eq!(rv(e), RvError::KeyFunctionNotPermitted);
    assert_eq!(ops(&emu.stats(), "sign"), 1, "refused once, not retried");
    let mut ct = vec![0u8; 256];
    let n = fixture_key("rsa2048")
        .rsa()
        .unwrap()
        .public_encrypt(b"still decrypts", &mut ct, openssl::rsa::Padding::PKCS1)
        .unwrap();
    ct.truncate(n);
    assert_eq!(
        s.decrypt(&Mechanism::RsaPkcs, key, &ct).unwrap(),
        b"still decrypts"
    );
}

/// The service's own KeyOperationForbidden (the key's operations changed in the vault
/// after the module listed it, so its local check still allows signing): the caller gets
/// CKR_KEY_FUNCTION_NOT_PERMITTED, not retried.
#[test]
fn the_services_key_operation_forbidden_is_key_function_not_permitted() {
    use azure_security_keyvault_keys::models::KeyOperation;
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    let m = load(&emu.config("vault", ""));
    let s = m.session();
    let key = find(s, ObjectClass::PRIVATE_KEY, "rsa2048");
    OutOfBand::new(&emu).set_ops(
        "rsa2048",
        vec![
            KeyOperation::Decrypt,
            KeyOperation::Encrypt,
            KeyOperation::Verify,
        ],
    );
    emu.reset_stats();
    let e = s
        .sign(&Mechanism::Sha256RsaPkcs, key, b"not any more")
        .unwrap_err();
    assert_eq!(rv(e), RvError::KeyFunctionNotPermitted);
    let stats = emu.stats();
    assert_eq!(ops(&stats, "sign"), 1, "{stats}");
    assert_eq!(stats["by_status"]["403"], 1, "{stats}");
}

/// Failures before any key is reached, seen through the C ABI: a vault whose TLS
/// certificate the slot does not trust, and a credential the token endpoint refuses (401),
/// each make the first search fail with CKR_FUNCTION_FAILED (the operator's mistake, not
/// an outage), and neither is retried into the deadline.
#[test]
fn untrusted_tls_and_a_refused_credential_fail_the_search() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    // The slot trusts a certificate that did not issue the emulator's.
    let good = std::fs::read_to_string(emu.config("vault", "deadline_seconds = 30")).unwrap();
    let other_ca = harness::fixtures_dir().join("keys/rsa2048.crt.pem");
    let untrusted = good.replace(
        &format!("ca_file = {:?}", emu.field("ca_file")),
        &format!("ca_file = {other_ca:?}"),
    );
    assert_ne!(good, untrusted, "the ca_file line was not found");
    let dir = tempfile::tempdir().unwrap();
    let untrusted_path = dir.path().join("untrusted.toml");
    std::fs::write(&untrusted_path, untrusted).unwrap();
    let wrong = emu.config_as(
        "vault",
        "deadline_seconds = 30",
        &emu.field("client_id"),
        "not-the-secret",
    );
    for (config, what) in [
        (&untrusted_path, "untrusted TLS"),
        (&wrong, "refused credential"),
    ] {
        let m = load_unlisted(config);
        let t = Instant::now();
        let e = m
            .session()
            .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
            .unwrap_err();
        assert_eq!(rv(e), RvError::FunctionFailed, "{what}");
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "{what}: waited {:?}, as if retried into the 30 s deadline",
            t.elapsed()
        );
    }
}

/// CKA_DESTROYABLE tells the truth: a vault's keys are destroyable only where the slot
/// sets `allow_destroy` (C_DestroyObject refuses otherwise).
#[test]
fn keys_are_destroyable_only_with_allow_destroy() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    for (extra, want) in [("", false), ("allow_destroy = true", true)] {
        let m = load(&emu.config("vault", extra));
        let s = m.session();
        // A public key is never destroyed alone (it goes with its private key).
        for (class, want) in [
            (ObjectClass::PRIVATE_KEY, want),
            (ObjectClass::PUBLIC_KEY, false),
        ] {
            let key = find(s, class, "rsa2048");
            let attrs = s
                .get_attributes(key, &[AttributeType::Destroyable])
                .unwrap();
            assert!(
                matches!(attrs[..], [Attribute::Destroyable(d)] if d == want),
                "{extra:?} {class:?}: {attrs:?}"
            );
        }
        if !want {
            let key = find(s, ObjectClass::PRIVATE_KEY, "rsa2048");
            let e = s.destroy_object(key).unwrap_err();
            assert_eq!(rv(e), RvError::ActionProhibited);
        }
    }
}

/// An older version is never destroyed alone: the vault deletes a key with all its
/// versions, so C_DestroyObject on an older version's object is CKR_ACTION_PROHIBITED
/// (and its CKA_DESTROYABLE false), and the key, current version included, stays.
#[test]
fn an_older_version_is_not_destroyed_alone() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    let vault = OutOfBand::new(&emu);
    vault.create_ec("versioned");
    vault.create_ec("versioned");
    let m = load(&emu.config_officer("vault", "allow_destroy = true"));
    let s = m.session();
    let current = find(s, ObjectClass::PRIVATE_KEY, "versioned");
    // The current version answers to the name, older ones to `name/version`.
    let older = s
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap()
        .into_iter()
        .filter(|&k| {
            let label = s.get_attributes(k, &[AttributeType::Label]).unwrap();
            matches!(&label[..], [Attribute::Label(l)] if l.starts_with(b"versioned/"))
        })
        .collect::<Vec<_>>();
    assert_eq!(
        older.len(),
        1,
        "the older version is listed by name/version"
    );
    let older = older[0];
    assert_ne!(older, current);
    let attrs = s
        .get_attributes(older, &[AttributeType::Destroyable])
        .unwrap();
    assert!(
        matches!(attrs[..], [Attribute::Destroyable(false)]),
        "{attrs:?}"
    );
    emu.reset_stats();
    let e = s.destroy_object(older).unwrap_err();
    assert_eq!(rv(e), RvError::ActionProhibited);
    assert_eq!(ops(&emu.stats(), "delete_key"), 0, "{}", emu.stats());
    s.sign(&Mechanism::Ecdsa, current, &[7; 32]).unwrap();
    s.sign(&Mechanism::Ecdsa, older, &[7; 32]).unwrap();
}

/// A slot that filters by tags or names: a key it generates carries the slot's tags (so
/// the slot lists it), and a name the slot would hide is refused before anything is made.
#[test]
fn generated_keys_pass_the_slots_filters() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    let m = load(&emu.config_officer("vault", "tags = { team = \"idp\" }"));
    let s = m.session();
    assert_eq!(labelled(s, "rsa2048"), 0, "untagged keys are hidden");
    let key = generate_ec(s, "tagged");
    assert_eq!(labelled(s, "tagged"), 2);
    s.sign(&Mechanism::Ecdsa, key, &[7; 32]).unwrap();
    drop(m);

    let m = load(&emu.config_officer("vault", "key_names = [\"named\"]"));
    let s = m.session();
    emu.reset_stats();
    let e = try_generate_ec(s, "other").unwrap_err();
    assert_eq!(rv(e), RvError::TemplateInconsistent);
    assert_eq!(ops(&emu.stats(), "create_key"), 0, "{}", emu.stats());
    let key = generate_ec(s, "named");
    s.sign(&Mechanism::Ecdsa, key, &[7; 32]).unwrap();
}

/// Key Vault has no conditional create: a create under a taken name adds a version. The
/// module's create is held at the emulator (after its "is the name free?" check) while
/// another client creates a key of the same name; the module's new key must not become
/// the newest version of the other's: its version there is disabled and it makes a key
/// of its own under the next free name.
#[test]
fn a_generation_raced_by_another_creator_of_the_name_makes_a_key_of_its_own() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    let m = load(&emu.config_officer("vault", ""));
    let s = m.session();
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "create_key", "delay_ms": 3000}"#,
    );
    let key = std::thread::scope(|scope| {
        let other = scope.spawn(|| {
            // The module's create has arrived and is held: the other client's lands first.
            wait_until_faults_taken(&emu, Duration::from_secs(60));
            OutOfBand::new(&emu).create_ec("raced");
        });
        let key = generate_ec(s, "raced");
        other.join().unwrap();
        key
    });
    let vault = OutOfBand::new(&emu);
    let mut raced = vault.versions("raced");
    raced.sort();
    assert_eq!(
        raced,
        vec![false, true],
        "the other client's key keeps its one enabled version; the raced one is disabled"
    );
    assert_eq!(
        vault.versions("raced-2"),
        vec![true],
        "the module's own key"
    );
    s.sign(&Mechanism::Ecdsa, key, &[7; 32]).unwrap();
    drop(m);
    // A fresh listing shows both keys, each once: the other's under its name, the
    // module's under the label it was given (its tag).
    let m = load(&emu.config_officer("vault", ""));
    assert_eq!(
        labelled(m.session(), "raced"),
        4,
        "two private and two public keys"
    );
}

/// The other order: the module's create lands first and another client's create of the
/// same name lands while the module lists the name's versions. The module keeps its key
/// (the first version) and never disables the other client's version.
#[test]
fn a_generation_that_came_first_keeps_its_name_and_disables_nothing() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    let m = load(&emu.config_officer("vault", ""));
    let s = m.session();
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "list_key_versions", "delay_ms": 3000}"#,
    );
    let key = std::thread::scope(|scope| {
        let other = scope.spawn(|| {
            wait_until_faults_taken(&emu, Duration::from_secs(60));
            // In a later second than the module's create: `created` counts whole seconds,
            // and within one second the version ids decide which came first.
            std::thread::sleep(Duration::from_millis(1100));
            OutOfBand::new(&emu).create_ec("first");
        });
        let key = generate_ec(s, "first");
        other.join().unwrap();
        key
    });
    let vault = OutOfBand::new(&emu);
    assert_eq!(
        vault.versions("first"),
        vec![true, true],
        "both versions stay enabled"
    );
    assert!(vault.versions("first-2").is_empty(), "no second name taken");
    s.sign(&Mechanism::Ecdsa, key, &[7; 32]).unwrap();
}

/// Another client deletes a key while the module lists the vault (between the names and
/// that key's versions): the listing goes on without it, it does not fail (the torture
/// test met this as a C_DestroyObject answering CKR_KEY_HANDLE_INVALID).
#[test]
fn a_key_deleted_during_a_listing_is_left_out() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    let vault = OutOfBand::new(&emu);
    // Listed first (names come back in order), so that its versions are the held request.
    vault.create_ec("aaa-doomed");
    let m = load_unlisted(&emu.config_officer("vault", ""));
    let s = m.session();
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "list_key_versions", "delay_ms": 3000}"#,
    );
    let found = std::thread::scope(|scope| {
        let other = scope.spawn(|| {
            wait_until_faults_taken(&emu, Duration::from_secs(60));
            OutOfBand::new(&emu).delete("aaa-doomed");
        });
        // The first search lists the vault.
        let found = s.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)]);
        other.join().unwrap();
        found
    });
    let found = found.expect("the listing goes on without the deleted key");
    assert!(!found.is_empty(), "the other keys are listed");
    let labels: Vec<String> = found
        .iter()
        .filter_map(|h| s.get_attributes(*h, &[AttributeType::Label]).ok())
        .flatten()
        .filter_map(|a| match a {
            Attribute::Label(l) => String::from_utf8(l).ok(),
            _ => None,
        })
        .collect();
    assert!(!labels.iter().any(|l| l == "aaa-doomed"), "{labels:?}");
}

/// The first search by label is answered from a lookup of that key alone (one GET of the
/// key, one of its certificate), without waiting for the whole listing: here the listing's
/// request is held by the vault, and the search answers all the same. The key signs; once
/// the listing is in, the same search gives the same handle and the key is there once.
#[test]
fn the_first_search_by_label_does_not_wait_for_the_listing() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    let m = load_unlisted(&emu.config("vault", "refresh_seconds = 2\ndeadline_seconds = 2"));
    let s = m.session();
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "list_keys", "stall_ms": 600000, "times": 1000}"#,
    );
    emu.reset_stats();
    let key = find(s, ObjectClass::PRIVATE_KEY, "rsa2048");
    let cert = find(s, ObjectClass::CERTIFICATE, "rsa2048");
    // Answered: the token, the key, its certificate (each client's first request also
    // meets the 401 challenge that names the token's audience); nothing listed.
    let stats = emu.stats();
    assert_eq!(stats["by_status"]["200"], 3, "{stats}");
    assert!(
        ops(&stats, "get_key") <= 2
            && ops(&stats, "get_certificate") <= 2
            && ops(&stats, "list_key_versions") == 0,
        "{stats}"
    );
    let sig = s.sign(&Mechanism::Sha256RsaPkcs, key, b"message").unwrap();
    let der = match &s.get_attributes(cert, &[AttributeType::Value]).unwrap()[..] {
        [Attribute::Value(der)] => der.clone(),
        other => panic!("{other:?}"),
    };
    let public = openssl::x509::X509::from_der(&der)
        .unwrap()
        .public_key()
        .unwrap();
    let mut v =
        openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &public).unwrap();
    v.update(b"message").unwrap();
    assert!(v.verify(&sig).unwrap(), "signed by the certificate's key");

    // The listing: a search without a label waits for it.
    emu.admin("DELETE", "/faults", "");
    let all = s
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap();
    assert!(all.len() >= 3, "{all:?}");
    assert_eq!(find(s, ObjectClass::PRIVATE_KEY, "rsa2048"), key);
    assert_eq!(find(s, ObjectClass::CERTIFICATE, "rsa2048"), cert);
    assert_eq!(
        labelled(s, "rsa2048"),
        3,
        "private key, public key, certificate: once each"
    );
}

/// A refresh of a vault nobody changed costs its list pages only (keys, certificates):
/// no version is listed or fetched again. A key that got a new version out of band has its
/// versions listed again and only the new one fetched (versions are immutable: each is
/// fetched once per process), and it is current through PKCS#11 at that refresh. A full
/// listing (`full_refresh_seconds`) lists every key's versions again, still fetching none.
#[test]
fn refreshes_list_only_what_changed_and_fetch_each_version_once() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    let vault = OutOfBand::new(&emu);
    vault.create_ec("delta");
    let m = load(&emu.config_officer("vault", "refresh_seconds = 1"));
    let s = m.session();
    let before = find(s, ObjectClass::PRIVATE_KEY, "delta");
    let point = |key| match &s.get_attributes(key, &[AttributeType::EcPoint]).unwrap()[..] {
        [Attribute::EcPoint(p)] => p.clone(),
        other => panic!("{other:?}"),
    };
    let old_point = point(before);
    // The refresher lists the slot every second: wait for `n` listings after a reset.
    let refreshed = |n: u64| {
        emu.reset_stats();
        let t = Instant::now();
        while ops(&emu.stats(), "list_keys") < n {
            assert!(t.elapsed() < Duration::from_secs(60), "no refresh");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The listing that asked for the list has finished its other requests.
        std::thread::sleep(Duration::from_millis(500));
        emu.stats()
    };
    let stats = refreshed(2);
    for op in [
        "list_key_versions",
        "get_key",
        "get_certificate",
        "list_certificate_versions",
    ] {
        assert_eq!(ops(&stats, op), 0, "{op}: {stats}");
    }
    assert!(ops(&stats, "list_certificates") >= 1, "{stats}");

    // A new version of one key: its versions listed, the new one fetched, nothing else.
    vault.create_ec("delta");
    let t = Instant::now();
    let stats = loop {
        let stats = refreshed(1);
        if ops(&stats, "list_key_versions") > 0 {
            break stats;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the change was never seen"
        );
    };
    assert_eq!(
        (ops(&stats, "list_key_versions"), ops(&stats, "get_key")),
        (1, 1),
        "{stats}"
    );
    let t = Instant::now();
    while point(find(s, ObjectClass::PRIVATE_KEY, "delta")) == old_point {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the new version is not current"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(m);

    // Every refresh a full listing: every key's versions listed again, none fetched.
    let m = load(&emu.config_officer("full", "refresh_seconds = 1\nfull_refresh_seconds = 1"));
    find(m.session(), ObjectClass::PRIVATE_KEY, "delta");
    let stats = refreshed(2);
    assert!(ops(&stats, "list_key_versions") >= 4, "4 keys: {stats}");
    assert_eq!(ops(&stats, "get_key"), 0, "{stats}");
}

/// The vault as another application changes it: the official SDK, default principal.
// The SDK's models are `#[non_exhaustive]`: built from `Default` and assigned.
struct OutOfBand {
    rt: tokio::runtime::Runtime,
    keys: azure_security_keyvault_keys::KeyClient,
}

#[allow(clippy::field_reassign_with_default)]
impl OutOfBand {
    fn new(emu: &Emulator) -> OutOfBand {
        let (cred, options) = emu.sdk_access();
        let mut o = azure_security_keyvault_keys::KeyClientOptions::default();
        o.client_options = options;
        let keys =
            azure_security_keyvault_keys::KeyClient::new(&emu.field("vault_url"), cred, Some(o))
                .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        OutOfBand { rt, keys }
    }

    fn disable(&self, name: &str) {
        use azure_security_keyvault_keys::models::{KeyAttributes, UpdateKeyPropertiesParameters};
        let mut attributes = KeyAttributes::default();
        attributes.enabled = Some(false);
        let mut p = UpdateKeyPropertiesParameters::default();
        p.key_attributes = Some(attributes);
        self.rt
            .block_on(
                self.keys
                    .update_key_properties(name, p.try_into().unwrap(), None),
            )
            .unwrap();
    }

    /// Replaces the operations the current version of `name` allows.
    fn set_ops(&self, name: &str, ops: Vec<azure_security_keyvault_keys::models::KeyOperation>) {
        use azure_security_keyvault_keys::models::UpdateKeyPropertiesParameters;
        let mut p = UpdateKeyPropertiesParameters::default();
        p.key_ops = Some(ops);
        self.rt
            .block_on(
                self.keys
                    .update_key_properties(name, p.try_into().unwrap(), None),
            )
            .unwrap();
    }

    /// Sets the current version's `exp` (expiry) an hour in the past.
    fn expire(&self, name: &str) {
        use azure_security_keyvault_keys::models::{KeyAttributes, UpdateKeyPropertiesParameters};
        let mut attributes = KeyAttributes::default();
        attributes.expires = Some(
            azure_core::time::OffsetDateTime::now_utc() - azure_core::time::Duration::hours(1),
        );
        let mut p = UpdateKeyPropertiesParameters::default();
        p.key_attributes = Some(attributes);
        self.rt
            .block_on(
                self.keys
                    .update_key_properties(name, p.try_into().unwrap(), None),
            )
            .unwrap();
    }

    fn delete(&self, name: &str) {
        self.rt.block_on(self.keys.delete_key(name, None)).unwrap();
    }

    /// Whether each version of `name` is enabled (empty: no such key).
    fn versions(&self, name: &str) -> Vec<bool> {
        use futures::TryStreamExt;
        self.rt.block_on(async {
            let mut pager = self.keys.list_key_properties_versions(name, None).unwrap();
            let mut out = Vec::new();
            loop {
                match pager.try_next().await {
                    Ok(Some(item)) => {
                        out.push(item.attributes.and_then(|a| a.enabled).unwrap_or(true));
                    }
                    Ok(None) => return out,
                    Err(e) if e.http_status().map(u16::from) == Some(404) => return out,
                    Err(e) => panic!("listing the versions of {name}: {e}"),
                }
            }
        })
    }

    /// The key type the vault reports for the current version of `name`.
    fn kty(&self, name: &str) -> String {
        let key = self
            .rt
            .block_on(self.keys.get_key(name, None))
            .unwrap()
            .into_model()
            .unwrap();
        format!("{:?}", key.key.and_then(|k| k.kty).unwrap())
    }

    /// Creates `name` as a P-256 key, or a new version of it.
    fn create_ec(&self, name: &str) {
        use azure_security_keyvault_keys::models::{CreateKeyParameters, CurveName, KeyType};
        let mut p = CreateKeyParameters::default();
        p.kty = Some(KeyType::Ec);
        p.curve = Some(CurveName::P256);
        self.rt
            .block_on(self.keys.create_key(name, p.try_into().unwrap(), None))
            .unwrap();
    }
}

fn generate_ec(s: &Session, label: &str) -> ObjectHandle {
    try_generate_ec(s, label).unwrap()
}

fn try_generate_ec(s: &Session, label: &str) -> Result<ObjectHandle, CkError> {
    let p256 = vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let (_, private) = s.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[
            Attribute::EcParams(p256),
            Attribute::Token(true),
            Attribute::Label(label.into()),
            Attribute::Verify(true),
        ],
        &[
            Attribute::Token(true),
            Attribute::Label(label.into()),
            Attribute::Sign(true),
        ],
    )?;
    Ok(private)
}

fn labelled(s: &Session, label: &str) -> usize {
    s.find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
        .unwrap()
        .len()
}

/// Waits until the emulator has taken every queued one-shot fault (its requests have
/// arrived), within `limit`: an event, not a guess at timing.
fn wait_until_faults_taken(emu: &Emulator, limit: Duration) {
    let t = Instant::now();
    while emu.admin("GET", "/faults", "")["once"]
        .as_array()
        .is_some_and(|q| !q.is_empty())
    {
        assert!(t.elapsed() < limit, "the queued fault was never reached");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A key disabled or deleted in the vault by someone else: an operation on it meanwhile
/// says so (CKR_KEY_HANDLE_INVALID), it disappears at the next background refresh, and a
/// search never waits for a refresh, not even a stalled one.
///
/// No wall-clock threshold decides: the "before the refresh" checks run while every
/// listing is held by a stalled `list_keys`, and the bounds below follow from the
/// slot's deadline (5 s), its refresh interval (3 s) and C_Finalize's bounded waits.
#[test]
fn keys_changed_in_the_vault_disappear_at_the_background_refresh() {
    const DEADLINE: Duration = Duration::from_secs(5);
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    let m = load(&emu.config_officer("vault", "refresh_seconds = 3\ndeadline_seconds = 5"));
    let s = m.session();
    let disabled = generate_ec(s, "disable-me");
    let deleted = generate_ec(s, "delete-me");
    let kept = find(s, ObjectClass::PRIVATE_KEY, "p256");
    for key in [disabled, deleted, kept] {
        s.sign(&Mechanism::Ecdsa, key, &[7; 32]).unwrap();
    }

    // From here no listing completes until the faults are cleared: one is stalled in
    // flight (its request has arrived), and every later one will be.
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "list_keys", "stall_ms": 600000}"#,
    );
    wait_until_faults_taken(&emu, Duration::from_secs(60));
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "list_keys", "stall_ms": 600000, "times": 1000}"#,
    );
    let vault = OutOfBand::new(&emu);
    vault.disable("disable-me");
    vault.delete("delete-me");
    // Before the refresh: the objects are still listed; signing says the key is gone.
    assert_eq!(labelled(s, "disable-me"), 2);
    for key in [disabled, deleted] {
        let e = s.sign(&Mechanism::Ecdsa, key, &[7; 32]).unwrap_err();
        assert_eq!(rv(e), RvError::KeyHandleInvalid);
    }
    emu.admin("DELETE", "/faults", "");

    // The next refresh drops both (at most: a stalled listing's deadline, the retry after
    // a failure, one interval); the other key keeps its handle.
    let limit = 2 * (DEADLINE + Duration::from_secs(3 + 3)) + Duration::from_secs(30);
    let t = Instant::now();
    while labelled(s, "disable-me") + labelled(s, "delete-me") > 0 {
        assert!(
            t.elapsed() < limit,
            "not dropped by a refresh within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for key in [disabled, deleted] {
        let e = s.sign(&Mechanism::Ecdsa, key, &[7; 32]).unwrap_err();
        assert_eq!(rv(e), RvError::KeyHandleInvalid);
    }
    assert_eq!(find(s, ObjectClass::PRIVATE_KEY, "p256"), kept);
    s.sign(&Mechanism::Ecdsa, kept, &[7; 32]).unwrap();

    // A stalled listing in flight (its request has reached the vault): searches go on from
    // the cache, without a request, each far quicker than the listing's deadline, which a
    // search that waited for it would have to reach.
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "list_keys", "stall_ms": 600000}"#,
    );
    wait_until_faults_taken(&emu, Duration::from_secs(60));
    emu.reset_stats();
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(find(s, ObjectClass::PRIVATE_KEY, "p256"), kept);
        assert!(
            t.elapsed() < DEADLINE / 2,
            "a search waited {:?}",
            t.elapsed()
        );
    }
    assert_eq!(emu.stats()["total_requests"], 0, "{}", emu.stats());
    s.sign(&Mechanism::Ecdsa, kept, &[7; 32]).unwrap();

    // C_Finalize with a listing stalled: the refresh thread is stopped and the listing
    // cancelled; C_Finalize's waits are bounded (the refresher, the telemetry writer and
    // the runtime's threads, 2 s each), far below the stalled request's 600 s.
    emu.admin(
        "POST",
        "/faults/once",
        r#"{"operation": "list_keys", "stall_ms": 600000}"#,
    );
    wait_until_faults_taken(&emu, Duration::from_secs(60));
    let t = Instant::now();
    drop(m);
    assert!(
        t.elapsed() < 3 * Duration::from_secs(2) + Duration::from_secs(4),
        "C_Finalize took {:?}",
        t.elapsed()
    );
}

/// An access token the vault refuses while the module's clock still calls it valid (here
/// the service's clock runs an hour ahead; in life also a revoked token) is replaced at
/// once: the call that met the 401 succeeds with one new token, instead of every call
/// failing until the token's refresh window. The token lifetime is an hour, beyond the
/// SDK's 5-minute refresh window, so only the module's handling of the refusal renews it.
/// A token endpoint outage then ends in an error within the deadline, and the call after
/// it works.
#[test]
fn refused_tokens_are_renewed_and_an_outage_is_an_error() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start_with("token_lifetime_s = 3600\n");
    let m = load(&emu.config("vault", "deadline_seconds = 3\nmax_retries = 1"));
    let s = m.session();
    let key = find(s, ObjectClass::PRIVATE_KEY, "rsa2048");
    s.sign(&Mechanism::Sha256RsaPkcs, key, b"a").unwrap();
    emu.admin("POST", "/clock", r#"{"advance_s": 3700}"#);
    emu.reset_stats();
    s.sign(&Mechanism::Sha256RsaPkcs, key, b"b").unwrap();
    let stats = emu.stats();
    assert_eq!(ops(&stats, "token"), 1, "one new token: {stats}");
    assert_eq!(stats["by_status"]["401"], 1, "one refusal: {stats}");

    // The token endpoint fails when the token is refused again.
    emu.admin("PUT", "/faults", r#"{"token_outage": true}"#);
    emu.admin("POST", "/clock", r#"{"advance_s": 3700}"#);
    let t = Instant::now();
    let e = s.sign(&Mechanism::Sha256RsaPkcs, key, b"c").unwrap_err();
    assert_eq!(rv(e), RvError::DeviceError);
    // Bounded by the slot's deadline (3 s), with room for a loaded machine.
    assert!(
        t.elapsed() < 4 * Duration::from_secs(3),
        "{:?}",
        t.elapsed()
    );
    emu.admin("DELETE", "/faults", "");
    s.sign(&Mechanism::Sha256RsaPkcs, key, b"d").unwrap();
}

/// A principal without the role for an operation: CKR_FUNCTION_FAILED at once (a 403 is
/// not retried), while what its roles allow keeps working.
#[test]
fn an_rbac_denial_is_an_error_and_allowed_keys_still_work() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start_with(
        r#"
[[principal]]
client_id = "reader-app"
client_secret = "reader-secret"

[[role_assignment]]
principal = "reader-app"
role = "Key Vault Reader"
scope = "vault"

[[role_assignment]]
principal = "reader-app"
role = "Key Vault Crypto User"
scope = "vault/keys/rsa2048"

[[role_assignment]]
principal = "reader-app"
role = "Key Vault Crypto Service Encryption User"
scope = "vault/keys/rsa3072"
"#,
    );
    let m = load(&emu.config_as("vault", "", "reader-app", "reader-secret"));
    let s = m.session();
    let allowed = find(s, ObjectClass::PRIVATE_KEY, "rsa2048");
    let denied = find(s, ObjectClass::PRIVATE_KEY, "p256");
    emu.reset_stats();
    let e = s.sign(&Mechanism::Ecdsa, denied, &[7; 32]).unwrap_err();
    assert_eq!(rv(e), RvError::FunctionFailed);
    let stats = emu.stats();
    assert_eq!(ops(&stats, "sign"), 1, "a 403 was retried: {stats}");
    assert_eq!(stats["by_status"]["403"], 1, "{stats}");
    s.sign(&Mechanism::Sha256RsaPkcs, allowed, b"data").unwrap();

    // Crypto Service Encryption User unwraps but does not decrypt. A key whose value the
    // caller could read would be a decryption: it goes to the store's decrypt, which the
    // principal may not do (no plaintext through C_UnwrapKey). A key kept inside is the
    // store's unwrapKey, and decrypts the content locally.
    let wrapping = find(s, ObjectClass::PRIVATE_KEY, "rsa3072");
    let public = find(s, ObjectClass::PUBLIC_KEY, "rsa3072");
    let wrapped = s.encrypt(&Mechanism::RsaPkcs, public, &[9u8; 32]).unwrap();
    emu.reset_stats();
    let e = s
        .unwrap_key(&Mechanism::RsaPkcs, wrapping, &wrapped, &secret_template())
        .unwrap_err();
    assert_eq!(rv(e), RvError::FunctionFailed);
    assert_eq!(ops(&emu.stats(), "decrypt"), 1, "{}", emu.stats());
    let secret = s
        .unwrap_key(
            &Mechanism::RsaPkcs,
            wrapping,
            &wrapped,
            &kept_secret_template(),
        )
        .unwrap();
    assert!(
        s.get_attributes(secret, &[AttributeType::Value])
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        aes_gcm_decrypt(s, secret, &[9u8; 32], b"content"),
        b"content"
    );
    let e = s
        .decrypt(&Mechanism::RsaPkcs, wrapping, &wrapped)
        .unwrap_err();
    assert_eq!(rv(e), RvError::FunctionFailed);
}

/// A managed-hsm slot: the fixture certificates written with C_CreateObject land in the
/// certificate database and pair with the HSM's keys; after the first listing finds,
/// attributes, verify and encrypt make no request, each sign, decrypt and unwrap exactly
/// one; C_GenerateRandom uses the HSM's /rng when `hsm_random = true`.
#[test]
fn managed_hsm_slot_with_its_certificate_database() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    let m = load(&emu.config_hsm("hsm", "hsm_random = true"));
    let s = m.session();
    let der = harness::fixture_cert("rsa2048").to_der().unwrap();
    let cert = s
        .create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(cryptoki::object::CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Label(b"rsa2048".to_vec()),
            Attribute::Value(der.clone()),
        ])
        .unwrap();
    let key = find(s, ObjectClass::PRIVATE_KEY, "rsa2048");
    let public = find(s, ObjectClass::PUBLIC_KEY, "rsa2048");
    assert_eq!(find(s, ObjectClass::CERTIFICATE, "rsa2048"), cert);
    // Paired: the certificate carries the key's CKA_ID.
    let id_of = |h| s.get_attributes(h, &[AttributeType::Id]).unwrap();
    assert_eq!(id_of(cert), id_of(key));
    emu.reset_stats();

    find(s, ObjectClass::CERTIFICATE, "rsa2048");
    s.get_attributes(cert, &[AttributeType::Value]).unwrap();
    let expected = openssl_rs256("rsa2048", b"message");
    s.verify(&Mechanism::Sha256RsaPkcs, public, b"message", &expected)
        .unwrap();
    let ciphertext = s.encrypt(&Mechanism::RsaPkcs, public, &[5u8; 32]).unwrap();
    assert_eq!(emu.stats()["total_requests"], 0, "{}", emu.stats());

    assert_eq!(
        s.sign(&Mechanism::Sha256RsaPkcs, key, b"message").unwrap(),
        expected
    );
    assert_eq!(
        s.decrypt(&Mechanism::RsaPkcs, key, &ciphertext).unwrap(),
        vec![5u8; 32]
    );
    // A readable unwrapped key is the HSM's decrypt; one kept inside its unwrapKey.
    let secret = s
        .unwrap_key(&Mechanism::RsaPkcs, key, &ciphertext, &secret_template())
        .unwrap();
    assert_eq!(
        s.get_attributes(secret, &[AttributeType::Value]).unwrap(),
        vec![Attribute::Value(vec![5u8; 32])]
    );
    let kept = s
        .unwrap_key(
            &Mechanism::RsaPkcs,
            key,
            &ciphertext,
            &kept_secret_template(),
        )
        .unwrap();
    assert_eq!(aes_gcm_decrypt(s, kept, &[5u8; 32], b"hsm"), b"hsm");
    let stats = emu.stats();
    assert_eq!(
        (
            ops(&stats, "sign"),
            ops(&stats, "decrypt"),
            ops(&stats, "unwrap_key"),
            stats["total_requests"].as_u64()
        ),
        (1, 2, 1, Some(4)),
        "{stats}"
    );
    // 300 random bytes: three /rng requests of at most 128.
    let random = s.generate_random_vec(300).unwrap();
    assert_eq!(random.len(), 300);
    assert_ne!(random, vec![0u8; 300]);
    assert_eq!(ops(&emu.stats(), "rng"), 3, "{}", emu.stats());
    // One call takes at most 4096 bytes (32 requests) from the HSM; more is refused
    // before any request is made.
    emu.reset_stats();
    assert_eq!(s.generate_random_vec(4096).unwrap().len(), 4096);
    assert_eq!(ops(&emu.stats(), "rng"), 32, "{}", emu.stats());
    emu.reset_stats();
    let e = s.generate_random_vec(64 << 20).unwrap_err();
    assert_eq!(rv(e), RvError::ArgumentsBad);
    assert_eq!(ops(&emu.stats(), "rng"), 0, "{}", emu.stats());

    // Destroying the certificate removes its row; the key stays.
    s.destroy_object(cert).unwrap();
    assert!(
        s.find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Label(b"rsa2048".to_vec()),
        ])
        .unwrap()
        .is_empty()
    );
    assert_eq!(find(s, ObjectClass::PRIVATE_KEY, "rsa2048"), key);
}

/// The certificate database unreachable: the slot lists its keys and signs; writing a
/// certificate is CKR_DEVICE_ERROR; malformed DER is CKR_ATTRIBUTE_VALUE_INVALID.
#[test]
fn an_unreachable_certificate_database_stops_only_certificate_writes() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    // A port nothing listens on.
    let port = harness::closed_port();
    let m = load(&emu.config_hsm(
        "hsm",
        &format!("certificates = \"postgres://identify@127.0.0.1:{port}/certs\""),
    ));
    let s = m.session();
    let key = find(s, ObjectClass::PRIVATE_KEY, "p256");
    s.sign(&Mechanism::Ecdsa, key, &[1; 32]).unwrap();
    let write = |der: Vec<u8>| {
        s.create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(cryptoki::object::CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Label(b"p256".to_vec()),
            Attribute::Value(der),
        ])
    };
    let der = harness::fixture_cert("p256").to_der().unwrap();
    assert_eq!(rv(write(der).unwrap_err()), RvError::DeviceError);
    assert_eq!(
        rv(write(b"not a certificate".to_vec()).unwrap_err()),
        RvError::AttributeValueInvalid
    );
    s.sign(&Mechanism::Ecdsa, key, &[2; 32]).unwrap();
}

/// A Managed HSM Crypto Auditor reads key attributes (the listing works) but may not sign:
/// CKR_FUNCTION_FAILED, not retried.
#[test]
fn an_hsm_crypto_auditor_lists_but_cannot_sign() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start_with(
        r#"
[[principal]]
client_id = "auditor-app"
client_secret = "auditor-secret"

[[role_assignment]]
principal = "auditor-app"
role = "Managed HSM Crypto Auditor"
scope = "hsm"
"#,
    );
    let m = load(&emu.config_hsm_as("hsm", "auditor-app", "auditor-secret"));
    let s = m.session();
    let key = find(s, ObjectClass::PRIVATE_KEY, "rsa2048");
    emu.reset_stats();
    let e = s.sign(&Mechanism::Sha256RsaPkcs, key, b"data").unwrap_err();
    assert_eq!(rv(e), RvError::FunctionFailed);
    let stats = emu.stats();
    assert_eq!(ops(&stats, "sign"), 1, "a 403 was retried: {stats}");
}

/// Two module instances in two processes share one certificate database: a certificate
/// that pkcs11-tool (another process, its own instance) writes appears in this running
/// instance at its next refresh, paired with its key; one this instance destroys is gone
/// for the other.
#[test]
fn two_processes_share_the_certificate_database() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    let config = emu.config_hsm("hsm", "refresh_seconds = 1");
    let m = load(&config);
    let s = m.session();
    let key = find(s, ObjectClass::PRIVATE_KEY, "p256");
    let certs = || {
        s.find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])
            .unwrap()
    };
    assert!(certs().is_empty());
    let der = emu.dir.path().join("p256.der");
    std::fs::write(&der, harness::fixture_cert("p256").to_der().unwrap()).unwrap();
    let tool = |args: &[&str]| {
        let out = std::process::Command::new("pkcs11-tool")
            .env("IDENTIFY_PKCS11_CONFIG", &config)
            .arg("--module")
            .arg(module_path())
            .args(["--token-label", "hsm", "--login", "--pin", "1234"])
            .args(args)
            .output()
            .expect("pkcs11-tool (package opensc) is needed by this test");
        assert!(
            out.status.success(),
            "pkcs11-tool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    tool(&[
        "--write-object",
        der.to_str().unwrap(),
        "--type",
        "cert",
        "--label",
        "p256",
    ]);
    let t = Instant::now();
    while certs().is_empty() {
        // An event wait: the refresh interval is 1 s; the bound only stops a broken run.
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "not seen after refreshes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let cert = find(s, ObjectClass::CERTIFICATE, "p256");
    let id_of = |h| s.get_attributes(h, &[AttributeType::Id]).unwrap();
    assert_eq!(id_of(cert), id_of(key));
    s.destroy_object(cert).unwrap();
    let listed = tool(&["--list-objects", "--type", "cert"]);
    assert!(
        !listed.contains("p256"),
        "still listed by the other process: {listed}"
    );
}

/// The audit log gets one JSON line per key use (with the vault's request id) and the
/// metrics file the operation counts, latency histograms, request and cache counts.
#[test]
fn key_uses_are_audited_and_counted() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start();
    let config = emu.config("vault", "");
    let audit = emu.dir.path().join("audit.jsonl");
    let metrics = emu.dir.path().join("identify_{pid}.prom");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &format!(
        "[audit]\nfile = {audit:?}\n[metrics]\nfile = {metrics:?}\ninterval_seconds = 1\n"
    );
    std::fs::write(&config, text).unwrap();
    let m = load(&config);
    let s = m.session();
    let key = find(s, ObjectClass::PRIVATE_KEY, "rsa2048");
    find(s, ObjectClass::PRIVATE_KEY, "rsa2048");
    s.sign(&Mechanism::Sha256RsaPkcs, key, b"one").unwrap();
    s.sign(&Mechanism::Sha256RsaPkcs, key, b"two").unwrap();
    let e = s
        .decrypt(&Mechanism::RsaPkcs, key, &[0x55; 256])
        .unwrap_err();
    assert_eq!(rv(e), RvError::EncryptedDataInvalid);
    drop(m); // C_Finalize writes the metrics a last time.

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for l in &lines[..2] {
        assert_eq!(l["operation"], "sign");
        assert_eq!(l["result"], "CKR_OK");
        assert_eq!(l["mechanism"], "RSA-PKCS1-SHA256");
        assert_eq!(l["slot"], "vault");
        assert_eq!(l["key"], "rsa2048");
        assert_eq!(l["pid"], std::process::id());
        assert!(l["version"].as_str().is_some_and(|v| v.len() == 32), "{l}");
        assert!(
            l["request_id"].as_str().is_some_and(|r| !r.is_empty()),
            "{l}"
        );
        assert!(l["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{l}");
    }
    assert_eq!(lines[2]["operation"], "decrypt");
    assert_eq!(lines[2]["result"], "CKR_ENCRYPTED_DATA_INVALID");
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(!text.contains(&emu.field("client_secret")));

    let prom = emu
        .dir
        .path()
        .join(format!("identify_{}.prom", std::process::id()));
    let prom = std::fs::read_to_string(&prom).unwrap();
    for want in [
        "identify_pkcs11_key_operations_total{slot=\"vault\",operation=\"sign\",result=\"CKR_OK\"} 2",
        "identify_pkcs11_key_operations_total{slot=\"vault\",operation=\"decrypt\",result=\"CKR_ENCRYPTED_DATA_INVALID\"} 1",
        "identify_pkcs11_key_operation_seconds_count{slot=\"vault\",operation=\"sign\"} 2",
        "identify_pkcs11_http_retries_total{slot=\"vault\"} 0",
        "identify_pkcs11_cache_hits_total{slot=\"vault\"} 1",
        "identify_pkcs11_refreshes_total{slot=\"vault\"} 1",
        // The fixture certificates are valid until 2046.
        "identify_pkcs11_certificate_not_after_seconds{slot=\"vault\",label=\"rsa2048\",sha1=\"",
    ] {
        assert!(prom.contains(want), "no {want} in:\n{prom}");
    }
}
