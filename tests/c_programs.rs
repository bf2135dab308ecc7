//! C programs compiled with gcc that load the built library as Identify does (dlopen), and
//! check fork() behaviour in a single-threaded process of their own.

mod harness;

use harness::{Emulator, FixtureStore, fixture_cert, module_path};
use std::path::{Path, PathBuf};
use std::process::Command;

fn compile(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let status = Command::new("gcc")
        .args([
            "-std=c99",
            "-D_POSIX_C_SOURCE=200809L",
            "-Wall",
            "-Werror",
            "-O1",
        ])
        .arg("-I")
        .arg(root.join("include"))
        .args(["-I", "/usr/include/p11-kit-1"])
        .arg(root.join(format!("tests/c/{name}.c")))
        .arg("-o")
        .arg(&out)
        .arg("-ldl")
        .status()
        .expect("gcc must be installed (Debian package gcc)");
    assert!(
        status.success(),
        "compiling tests/c/{name}.c (needs libp11-kit-dev for pkcs11.h)"
    );
    out
}

#[test]
fn dlopen_finds_the_key_and_signs() {
    let exe = compile("dlopen_sign");
    // A log file, which the module creates readable by its owner only (issue 12).
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("module.log");
    let store = FixtureStore::new(
        "fixtures",
        &format!("[log]\nlevel = \"info\"\nfile = {log:?}"),
    );
    let sig_path = store.dir.path().join("sig.bin");
    let message = "<saml:Assertion>signed the way Identify signs</saml:Assertion>";
    let out = Command::new(&exe)
        .arg(module_path())
        .arg("rsa2048")
        .arg(message)
        .arg(&sig_path)
        .env("IDENTIFY_PKCS11_CONFIG", &store.config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "backend key id: {}",
            store.store.join("rsa2048.key.pem").display()
        )),
        "{stdout}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(&log).expect("the module created its log file");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "log file mode");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("initializing"), "{text}");
    }
    let sig = std::fs::read(&sig_path).unwrap();
    let key = fixture_cert("rsa2048").public_key().unwrap();
    let mut v = openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
    v.update(message.as_bytes()).unwrap();
    assert!(
        v.verify(&sig).unwrap(),
        "signature from the C program does not verify with OpenSSL"
    );
}

#[test]
fn forked_child_must_initialize_again() {
    let exe = compile("fork");
    let store = FixtureStore::new("fixtures", "");
    let out = Command::new(&exe)
        .arg(module_path())
        .arg("rsa2048")
        .env("IDENTIFY_PKCS11_CONFIG", &store.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// fork() with a key-vault slot: the parent has the module's I/O thread and a connection
/// pool; the child initializes its own (never touching the parent's), signs through the
/// vault, finalizes; the parent signs again. Three signatures reach the vault. A child
/// stuck on the parent's state is killed after 120 s and fails the test.
#[test]
fn forked_child_signs_through_a_key_vault_slot() {
    let exe = compile("fork");
    let emu = Emulator::start();
    let config = emu.config("vault", "");
    let mut child = Command::new(&exe)
        .arg(module_path())
        .arg("rsa2048")
        .env("IDENTIFY_PKCS11_CONFIG", &config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > std::time::Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the fork program hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = emu.stats();
    assert_eq!(stats["by_operation"]["sign"], 3, "{stats}");
}

/// 1,000 cycles of dlopen → C_Initialize → login → find → sign → C_Finalize → dlclose keep
/// the process flat: no thread of the module is left after C_Finalize, open descriptors
/// do not grow, resident memory grows by less than 2 KiB a cycle (allocator noise) —
/// for a directory slot and for a key-vault slot (a runtime, a connection pool and a
/// token every cycle).
#[test]
fn dlopen_cycles_leave_no_thread_descriptor_or_memory_behind() {
    const CYCLES: &str = "1000";
    let exe = compile("dlopen_cycles");
    let store = FixtureStore::new("fixtures", "");
    let emu = Emulator::start();
    let vault = emu.config("vault", "");
    for (what, config) in [("directory", &store.config), ("key-vault", &vault)] {
        let t = std::time::Instant::now();
        let out = Command::new(&exe)
            .arg(module_path())
            .arg("rsa2048")
            .arg(CYCLES)
            .env("IDENTIFY_PKCS11_CONFIG", config)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{what}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{what}: {} in {:?}", stdout.trim(), t.elapsed());
        let at = |cycle: &str| -> Vec<i64> {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(&format!("cycle {cycle} ")))
                .unwrap_or_else(|| panic!("{what}: no report for cycle {cycle}: {stdout}"));
            let f: Vec<&str> = line.split(' ').collect();
            [3, 5, 7].iter().map(|&i| f[i].parse().unwrap()).collect()
        };
        let (early, late) = (at("10"), at(CYCLES));
        assert_eq!(
            late[2], 1,
            "{what}: threads left after C_Finalize: {stdout}"
        );
        assert_eq!(
            early[2], 1,
            "{what}: threads left after C_Finalize: {stdout}"
        );
        assert_eq!(late[1], early[1], "{what}: descriptors grew: {stdout}");
        assert!(
            late[0] - early[0] < 2 * 990,
            "{what}: resident memory grew {} KiB over 990 cycles: {stdout}",
            late[0] - early[0]
        );
    }
}

/// The same cycles under valgrind's memcheck, for both slot kinds: no invalid read or
/// write, no use of uninitialised memory, no memory definitely lost (0 errors).
#[test]
fn dlopen_cycles_are_clean_under_valgrind_memcheck() {
    let exe = compile("dlopen_cycles");
    let store = FixtureStore::new("fixtures", "");
    let emu = Emulator::start();
    let vault = emu.config("vault", "");
    for (what, config) in [("directory", &store.config), ("key-vault", &vault)] {
        let out = Command::new("valgrind")
            .args([
                "--error-exitcode=99",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
                "--show-leak-kinds=definite",
                "--track-origins=yes",
            ])
            .arg(&exe)
            .arg(module_path())
            .arg("rsa2048")
            .arg("3")
            .env("IDENTIFY_PKCS11_CONFIG", config)
            .output()
            .expect("valgrind must be installed (Debian package valgrind)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.contains("ERROR SUMMARY: 0 errors"),
            "{what} under memcheck ({}): {}{stderr}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
        let summary = stderr
            .lines()
            .filter(|l| l.contains("definitely lost") || l.contains("ERROR SUMMARY"))
            .collect::<Vec<_>>()
            .join(" / ");
        eprintln!("{what} under memcheck: {summary}");
    }
}
