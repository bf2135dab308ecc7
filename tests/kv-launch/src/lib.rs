//! The one way the Rust code of this repository starts the Key Vault / Managed HSM
//! emulator (tests/kv-emulator): the integration tests' harness and the CLI's `bench`.
//! It spawns the emulator with a ready file, waits for it, reads its fields, sends admin
//! requests (plain HTTP/1.1 on loopback: a few lines of std rather than an HTTP client)
//! and stops it on drop. Std, serde_json and tempfile only.

use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the emulator may take to write its ready file.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// How to start the emulator.
pub struct Launch<'a> {
    /// The `kv-emulator` executable.
    pub bin: &'a Path,
    /// Keys to seed it with (`--seed-dir`).
    pub seed_dir: &'a Path,
    /// kv-emulator's TOML configuration (`None`: its defaults).
    pub config: Option<&'a str>,
    /// End with this process even when the handle is never dropped (a static).
    pub exit_with_this_process: bool,
    /// Keep its output in `emulator.log` in its directory (else discarded).
    pub log: bool,
}

/// A running emulator; stopped on drop.
pub struct Emulator {
    child: Child,
    /// Its directory: the ready file, the configuration, the log.
    pub dir: tempfile::TempDir,
    /// The ready file: URLs, the CA file, the principals, the hosts it serves.
    pub ready: Value,
}

/// `kv-emulator` from `KV_EMULATOR`, else in `dir` (where cargo builds it beside the
/// program or test that needs it).
pub fn default_bin(dir: &Path) -> PathBuf {
    std::env::var_os("KV_EMULATOR").map_or_else(
        || dir.join(format!("kv-emulator{}", std::env::consts::EXE_SUFFIX)),
        PathBuf::from,
    )
}

fn text<E: std::fmt::Display>(context: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{context}: {e}")
}

impl Emulator {
    pub fn start(l: &Launch<'_>) -> Result<Emulator, String> {
        if !l.bin.exists() {
            return Err(format!(
                "{} not found: build it first (cargo build -p kv-emulator) or set KV_EMULATOR",
                l.bin.display()
            ));
        }
        let dir = tempfile::tempdir().map_err(text("a directory for the emulator"))?;
        let ready_path = dir.path().join("ready.json");
        let mut command = Command::new(l.bin);
        if let Some(config) = l.config {
            let path = dir.path().join("emulator.toml");
            std::fs::write(&path, config).map_err(text("the emulator's configuration"))?;
            command.arg("--config").arg(path);
        }
        if l.exit_with_this_process {
            command
                .arg("--exit-with")
                .arg(std::process::id().to_string());
        }
        let (stdout, stderr) = if l.log {
            let log = std::fs::File::create(dir.path().join("emulator.log"))
                .map_err(text("the emulator's log"))?;
            let copy = log.try_clone().map_err(text("the emulator's log"))?;
            (Stdio::from(copy), Stdio::from(log))
        } else {
            (Stdio::null(), Stdio::null())
        };
        let child = command
            .arg("--ready-file")
            .arg(&ready_path)
            .arg("--seed-dir")
            .arg(l.seed_dir)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", l.bin.display()))?;
        // From here the child is stopped by Emulator's drop, also on the errors below.
        let mut emulator = Emulator {
            child,
            dir,
            ready: Value::Null,
        };
        let deadline = Instant::now() + READY_WITHIN;
        while !ready_path.exists() {
            if Instant::now() > deadline {
                return Err(format!(
                    "the emulator wrote no ready file within {} s",
                    READY_WITHIN.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let bytes = std::fs::read(&ready_path).map_err(text("the ready file"))?;
        emulator.ready = serde_json::from_slice(&bytes).map_err(text("the ready file"))?;
        Ok(emulator)
    }

    /// A string field of the ready file.
    pub fn field(&self, name: &str) -> Result<String, String> {
        self.ready[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("the ready file has no {name}"))
    }

    /// The host names the emulator serves that do not resolve here (each needs
    /// `127.0.0.1 HOST` in /etc/hosts); an error when the ready file lists none.
    pub fn unresolved_hosts(&self) -> Result<Vec<String>, String> {
        let hosts = self.ready["hosts"]
            .as_array()
            .ok_or("the ready file has no hosts")?;
        Ok(hosts
            .iter()
            .filter_map(Value::as_str)
            .filter(|h| std::net::ToSocketAddrs::to_socket_addrs(&(*h, 443)).is_err())
            .map(str::to_owned)
            .collect())
    }

    /// One admin request; the answer's body as JSON (`Null` when it is not JSON). A status
    /// other than 2xx is an error naming the request.
    pub fn admin(&self, method: &str, path: &str, body: &str) -> Result<Value, String> {
        admin(&self.field("admin_url")?, method, path, body)
    }
}

/// One request to the admin interface at `url` (the ready file's `admin_url`), for a
/// process that did not start the emulator; as [`Emulator::admin`].
pub fn admin(url: &str, method: &str, path: &str, body: &str) -> Result<Value, String> {
    {
        let addr = url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).map_err(text("the admin interface"))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .map_err(text("the admin interface"))?;
        let mut out = String::new();
        s.read_to_string(&mut out)
            .map_err(text("the admin interface"))?;
        let (head, rest) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        if !head.starts_with("HTTP/1.1 2") {
            return Err(format!(
                "admin {method} {path}: {}",
                head.lines().next().unwrap_or("")
            ));
        }
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_owned()
        };
        Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}

/// The body of a chunked HTTP/1.1 answer.
fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail.get(n + 2..).unwrap_or("");
    }
    out
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined_and_truncation_is_safe() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
        assert_eq!(dechunk("5\r\nab"), "");
        assert_eq!(dechunk(""), "");
    }

    #[test]
    fn a_missing_emulator_is_an_error_naming_it() {
        let e = Emulator::start(&Launch {
            bin: Path::new("/nonexistent/kv-emulator"),
            seed_dir: Path::new("."),
            config: None,
            exit_with_this_process: false,
            log: false,
        })
        .err()
        .unwrap_or_default();
        assert!(
            e.contains("/nonexistent/kv-emulator") && e.contains("cargo build"),
            "{e}"
        );
    }
}
