//! The configuration parser's tests: every mistake names the file, the line and the key.

use super::*;

/// The most PIN checks seen running at once.
static MOST_RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub(super) fn note_running(n: usize) {
    MOST_RUNNING.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
}

#[test]
fn a_login_storm_runs_at_most_four_pin_checks_at_once() {
    let hash = hash_pin(b"1234").unwrap();
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let hash = hash.clone();
            std::thread::spawn(move || {
                let pin: &[u8] = if i % 2 == 0 { b"1234" } else { b"4321" };
                verify_pin(pin, &hash).unwrap() == (i % 2 == 0)
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap(), "a PIN check gave the wrong answer");
    }
    let most = MOST_RUNNING.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=4).contains(&most), "{most} PIN checks ran at once");
}

fn err(text: &str) -> String {
    match parse(text, Source::File("/etc/x.toml".into())) {
        Err(Error::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn parse_errors_never_print_a_secret() {
    let head = "[[slot]]\nlabel = \"v\"\nkind = \"key-vault\"\nvault = \"https://v.vault.azure.net\"\n[slot.credential]\ntype = \"client-secret\"\ntenant_id = \"t\"\nclient_id = \"c\"\n";
    for (line, secret) in [
        ("client_secret = 987654321987", "987654321987"),
        (
            "client_secret = \"s3cr3t-unterminated",
            "s3cr3t-unterminated",
        ),
        (
            "\"client_secret\" = [\"s3cr3t-in-array\"]",
            "s3cr3t-in-array",
        ),
    ] {
        let m = err(&format!("{head}{line}\n"));
        assert!(m.contains("line 9"), "{m}");
        assert!(m.contains("client_secret"), "the key is named: {m}");
        assert!(!m.contains(secret), "the secret leaked: {m}");
    }
    // A secret inside an inline table on the line of the error.
    let inline = head.replace("[slot.credential]\n", "").replace(
        "type = \"client-secret\"\ntenant_id = \"t\"\nclient_id = \"c\"\n",
        "credential = { type = \"client-secret\", client_secret = \"s3cr3t-inline\" \n",
    );
    let m = err(&inline);
    assert!(!m.contains("s3cr3t-inline"), "the secret leaked: {m}");
    // An error inside a multi-line string (a bad escape on line 10): that line is not
    // shown at all.
    let m = err(&format!(
        "{head}client_secret = \"\"\"\ns3cr3t-multi \\q\n\"\"\"\n"
    ));
    assert!(m.contains("line 10"), "{m}");
    assert!(!m.contains("s3cr3t-multi"), "the secret leaked: {m}");
    // Other keys' lines are still shown as written.
    let m = err(&format!("{head}client_id = 42\n"));
    assert!(m.contains("client_id = 42"), "{m}");
}

#[test]
fn unknown_key_names_file_line_and_accepted_keys() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\npath = {:?}\ncolour = 1\n",
        dir.path()
    );
    let m = err(&text);
    assert!(m.starts_with("/etc/x.toml: line 5 (`colour = 1`): "), "{m}");
    assert!(m.contains("colour") && m.contains("pin_hash"), "{m}");
}

#[test]
fn a_key_of_another_kind_names_the_kinds_that_take_it() {
    let dir = tempfile::tempdir().unwrap();
    let cert_store = format!(
        "[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\npath = {:?}\n",
        dir.path()
    );
    let m = err(&format!(
        "{cert_store}vault = \"https://v.vault.azure.net\"\n"
    ));
    assert!(
        m.starts_with("/etc/x.toml: line 5 (`vault = \"https://v.vault.azure.net\"`): ")
            && m.contains("`vault` is for key-vault slots, not for kind = \"cert-store\""),
        "{m}"
    );
    let m = err(&format!("{cert_store}deadline_seconds = 5\n"));
    assert!(
        m.contains("line 5") && m.contains("is for key-vault and managed-hsm slots"),
        "{m}"
    );
    let vault =
        "[[slot]]\nlabel = \"v\"\nkind = \"key-vault\"\nvault = \"https://v.vault.azure.net\"\n";
    let m = err(&format!("{vault}writable = false\n"));
    assert!(
        m.contains("line 5")
            && m.contains("`writable` is for cert-store slots, not for kind = \"key-vault\""),
        "{m}"
    );
    let m = err(&format!(
        "{vault}hsm = \"https://h.managedhsm.azure.net\"\n"
    ));
    assert!(m.contains("line 5") && m.contains("vault = "), "{m}");
    // The module's own message is not scrubbed for a secret-bearing word in the line (it
    // quotes no value), the line itself still is.
    let m = err(&format!("{vault}pkcs12_password_file = \"/p\"\n"));
    assert!(
        m.contains("`pkcs12_password_file` is for cert-store slots, not for kind = \"key-vault\"")
            && !m.contains("\"/p\""),
        "{m}"
    );
    // A slot key written after `[slot.credential]` belongs to the credential table: the
    // parser's list of that table's keys, not "is for key-vault slots" on a key-vault slot.
    let m = err(&format!(
        "{vault}[slot.credential]\ntype = \"azure-cli\"\nrate_budget = 0.5\n"
    ));
    assert!(
        m.contains("line 7")
            && m.contains("unknown field `rate_budget`")
            && m.contains("tenant_id"),
        "{m}"
    );
    let m = err(&format!(
        "{vault}[slot.credential]\ntype = \"azure-cli\"\nwritable = true\n"
    ));
    assert!(
        m.contains("line 7") && m.contains("unknown field `writable`") && m.contains("tenant_id"),
        "{m}"
    );
}

#[test]
fn slot_tables_have_a_kind_and_are_tables() {
    let m = err("[[slot]]\nlabel = \"a\"\n");
    assert!(
        m.contains("line 1") && m.contains("missing field `kind`"),
        "{m}"
    );
    let m = err("slot = 5\n");
    assert!(
        m.contains("line 1") && m.contains("`[[slot]]` tables"),
        "{m}"
    );
    let m = err("slot = [1]\n");
    assert!(m.contains("`[[slot]]` tables"), "{m}");
}

#[test]
fn wrong_type_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let m = err(&format!(
        "[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\npath = {:?}\nwritable = \"yes\"\n",
        dir.path()
    ));
    assert!(
        m.contains("line 5 (`writable = \"yes\"`)") && m.contains("boolean"),
        "{m}"
    );
}

#[test]
fn wrong_kind_lists_accepted_values() {
    let m = err("[[slot]]\nlabel = \"a\"\nkind = \"vault\"\n");
    assert!(m.contains("line 3"), "{m}");
    assert!(m.contains("cert-store") && m.contains("key-vault"), "{m}");
}

#[test]
fn missing_directory_and_missing_path() {
    let m = err("[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\npath = \"/nonexistent/dir\"\n");
    assert!(
        m.contains("line 4: `path`") && m.contains("not an existing directory"),
        "{m}"
    );
    let m = err("[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\n");
    assert!(m.contains("`path`"), "{m}");
}

#[test]
fn labels_checked() {
    let dir = tempfile::tempdir().unwrap();
    let slot = |l: &str| {
        format!(
            "[[slot]]\nlabel = {l:?}\nkind = \"cert-store\"\npath = {:?}\n",
            dir.path()
        )
    };
    assert!(err(&slot(&"x".repeat(33))).contains("1 to 32 bytes"));
    assert!(err(&format!("{}{}", slot("a"), slot("a"))).contains("unique"));
    assert!(err("").contains("no `[[slot]]`"));
}

#[test]
fn pin_hash_round_trip_and_bad_hash() {
    let h = hash_pin(b"1234").unwrap();
    assert!(h.starts_with("$argon2id$"));
    assert!(verify_pin(b"1234", &h).unwrap());
    assert!(!verify_pin(b"12345", &h).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let m = err(&format!(
        "[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\npath = {:?}\npin_hash = \"1234\"\n",
        dir.path()
    ));
    assert!(m.contains("pin_hash") && m.contains("pin-hash"), "{m}");
    // A valid PHC string of another algorithm could never match: refused at load.
    let scrypt =
        "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E";
    let m = err(&format!(
        "[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\npath = {:?}\npin_hash = {scrypt:?}\n",
        dir.path()
    ));
    assert!(m.contains("line 5") && m.contains("not argon2"), "{m}");
}

#[test]
fn pin_throttling_keys_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let h = hash_pin(b"1234").unwrap();
    let slot = |extra: &str| {
        format!(
            "[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\npath = {:?}\n{extra}\n",
            dir.path()
        )
    };
    let c = parse(
        &slot(&format!("pin_hash = {h:?}")),
        Source::File("/etc/x.toml".into()),
    )
    .unwrap();
    assert_eq!(c.slots[0].pin_tries, 10);
    assert_eq!(c.slots[0].pin_lockout, Duration::from_secs(300));
    let c = parse(
        &slot(&format!(
            "pin_hash = {h:?}\npin_tries = 3\npin_lockout_seconds = 60"
        )),
        Source::File("/etc/x.toml".into()),
    )
    .unwrap();
    assert_eq!(c.slots[0].pin_tries, 3);
    assert_eq!(c.slots[0].pin_lockout, Duration::from_secs(60));
    let m = err(&slot("pin_tries = 3"));
    assert!(
        m.contains("pin_tries") && m.contains("only with pin_hash"),
        "{m}"
    );
    let m = err(&slot(&format!("pin_hash = {h:?}\npin_tries = 0")));
    assert!(m.contains("line 6") && m.contains("1 to 1000"), "{m}");
    let m = err(&slot(&format!("pin_hash = {h:?}\npin_lockout_seconds = 0")));
    assert!(
        m.contains("pin_lockout_seconds") && m.contains("1 to 86400"),
        "{m}"
    );
}

#[test]
fn windows_stores_are_named_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let m = err("[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\nstore = \"Elsewhere/My\"\n");
    assert!(m.contains("line 4") && m.contains("CurrentUser/My"), "{m}");
    let m = err(&format!(
        "[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\nstore = \"CurrentUser/My\"\npath = {:?}\n",
        dir.path()
    ));
    assert!(m.contains("not both"), "{m}");
    let text = "[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\nstore = \"CurrentUser/My\"\n";
    if cfg!(windows) {
        let c = parse(text, Source::File(dir.path().join("c.toml"))).unwrap();
        assert!(matches!(c.slots[0].store, StoreConfig::Windows(_)));
    } else {
        let m = err(text);
        assert!(m.contains("line 4") && m.contains("not Windows"), "{m}");
    }
}

#[test]
fn relative_store_path_is_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("store")).unwrap();
    let c = parse(
        "[[slot]]\nlabel = \"a\"\nkind = \"cert-store\"\npath = \"store\"\n",
        Source::File(dir.path().join("config.toml")),
    )
    .unwrap();
    match &c.slots[0].store {
        StoreConfig::Directory { path, .. } => assert_eq!(path, &dir.path().join("store")),
        other => panic!("expected a directory store, got {other:?}"),
    }
}

#[test]
fn secret_file_must_be_private() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pw");
    std::fs::write(&f, "secret\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_secret_file(&f).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    assert_eq!(read_secret_file(&f).unwrap(), "secret");
}

#[test]
fn managed_hsm_slots_and_their_certificate_database() {
    let hsm = "[[slot]]\nlabel = \"hsm\"\nkind = \"managed-hsm\"\nhsm = \"https://contoso.managedhsm.azure.net\"\n";
    let cred = "[slot.credential]\ntype = \"managed-identity\"\n";
    let c = parse(
        &format!("{hsm}hsm_random = true\n{cred}"),
        Source::File("/etc/identify/c.toml".into()),
    )
    .unwrap();
    let StoreConfig::Azure(a) = &c.slots[0].store else {
        panic!("not an Azure slot")
    };
    assert!(a.service == Service::ManagedHsm && a.hsm_keys && a.hsm_random);
    assert_eq!(a.url, "https://contoso.managedhsm.azure.net");
    // Default: one SQLite file per slot beside the configuration.
    assert_eq!(
        a.certificates,
        crate::certdb::Location::Sqlite("/etc/identify/hsm.certificates.db".into())
    );
    let m = err(&format!(
        "[[slot]]\nlabel = \"hsm\"\nkind = \"managed-hsm\"\nvault = \"https://x.vault.azure.net\"\n{cred}"
    ));
    assert!(m.contains("`vault`") && m.contains("hsm = "), "{m}");
    let m = err(&format!(
        "[[slot]]\nlabel = \"v\"\nkind = \"key-vault\"\nvault = \"https://x.vault.azure.net\"\nhsm_random = true\n{cred}"
    ));
    assert!(m.contains("hsm_random") && m.contains("managed-hsm"), "{m}");
    let m = err(&format!("{hsm}certificates_dir = \"/x\"\n{cred}"));
    assert!(m.contains("line 5") && m.contains("certificates = "), "{m}");
    let m = err(&format!("{hsm}certificates = \"mysql://db/x\"\n{cred}"));
    assert!(
        m.contains("`certificates`") && m.contains("postgres://"),
        "{m}"
    );
    // A database password only in a private file, and never echoed.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    let text = format!("{hsm}certificates = \"postgres://app:s3cret@db/certs\"\n{cred}");
    std::fs::write(&file, &text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let m = match parse(&text, Source::File(file.clone())) {
            Err(Error::Config(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(m.contains("PGPASSWORD") && m.contains("chmod 600"), "{m}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    parse(&text, Source::File(file)).unwrap();
}

#[test]
fn valid_config_parses() {
    let dir = tempfile::tempdir().unwrap();
    let c = parse(
        &format!(
            "[log]\nlevel = \"debug\"\n[[slot]]\nlabel = \"s\"\nkind = \"cert-store\"\npath = {:?}\nwritable = false\nrefresh_seconds = 30\n",
            dir.path()
        ),
        Source::Embedded,
    )
    .unwrap();
    assert_eq!(c.log.level, Some(LogLevel::Debug));
    assert_eq!(c.slots[0].refresh_seconds, 30);
    assert!(matches!(
        c.slots[0].store,
        StoreConfig::Directory {
            writable: false,
            ..
        }
    ));
}
