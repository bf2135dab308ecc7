//! The certificate database of `managed-hsm` and `key-vault` slots: Managed HSM stores keys
//! only, so the certificates of its keys (and, on vaults, certificates written with
//! C_CreateObject for keys that have none in the vault) live in SQL: an embedded SQLite
//! file by default, or PostgreSQL when several servers share them.
//!
//! Schema (version 1; `identify_schema` holds the version, migrations run in order on first
//! use, inside a transaction under a lock so that concurrent first uses apply them once):
//!
//! ```sql
//! CREATE TABLE certificates (
//!     id          INTEGER PRIMARY KEY,   -- BIGSERIAL on PostgreSQL; the object's stable id
//!     backend     TEXT NOT NULL,         -- the slot's store: vault or HSM URL
//!     key_name    TEXT,                  -- the key whose public key the certificate carries
//!     key_version TEXT,                  --   (NULL: no key of the store matched when stored)
//!     cka_id      BLOB NOT NULL,         -- CKA_ID shared with that key's objects
//!     label       TEXT NOT NULL,         -- CKA_LABEL
//!     der         BLOB NOT NULL,         -- the X.509 certificate
//!     sha256      TEXT NOT NULL,         -- hex SHA-256 of der
//!     created_at  TEXT NOT NULL,         -- RFC 3339, UTC
//!     UNIQUE (backend, sha256)
//! );
//! ```
//!
//! Every call opens its own connection (SQLite: a file handle; PostgreSQL: a new
//! connection): no lock is held across a database round trip, and certificate reads happen
//! only at listing and refresh, writes only on C_CreateObject / C_DestroyObject and in the
//! operator's tool.

use crate::error::{Error, Result};
use std::path::PathBuf;
use std::time::Duration;

/// Where the certificates are kept.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    /// A `postgres://` URL (libpq syntax: user, host, port, database, `sslmode`); the
    /// password, if any, comes from the URL of a private file or from PGPASSWORD.
    Postgres(String),
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.display())
    }
}

impl Location {
    /// Parses `sqlite:///abs/path`, `sqlite:relative/path` (to `base`) or `postgres://…`.
    pub fn parse(s: &str, base: &std::path::Path) -> std::result::Result<Location, String> {
        if let Some(rest) = s.strip_prefix("sqlite://") {
            if rest.is_empty() || !rest.starts_with('/') {
                return Err(format!(
                    "{s:?}: sqlite:///absolute/path or sqlite:relative/path"
                ));
            }
            return Ok(Location::Sqlite(PathBuf::from(rest)));
        }
        if let Some(rest) = s.strip_prefix("sqlite:") {
            if rest.is_empty() {
                return Err(format!("{s:?}: no file after sqlite:"));
            }
            return Ok(Location::Sqlite(base.join(rest)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            pg_config(s).map_err(|e| format!("{}: {e}", redact(s)))?;
            return Ok(Location::Postgres(s.to_owned()));
        }
        Err(format!(
            "{:?}: expected sqlite:///path, sqlite:relative/path or postgres://user@host/db",
            redact(s)
        ))
    }

    /// The location for logs and messages: never a password.
    pub fn display(&self) -> String {
        match self {
            Location::Sqlite(p) => format!("sqlite://{}", p.display()),
            Location::Postgres(url) => redact(url),
        }
    }

    /// Whether the URL carries a password (refused in a file others can read).
    pub fn has_password(&self) -> bool {
        match self {
            Location::Sqlite(_) => false,
            Location::Postgres(url) => {
                pg_config(url).is_ok_and(|(c, _)| c.get_password().is_some())
            }
        }
    }
}

/// How a PostgreSQL server's TLS certificate is checked, from the URL's libpq keys that
/// tokio-postgres does not know itself (`sslmode=verify-ca|verify-full`, `sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PgTls {
    /// False only for `sslmode=verify-ca` (the chain is checked, not the host name).
    verify_hostname: bool,
    /// `sslrootcert`: trust anchors beside the system's and the slot's `ca_file`.
    root_cert: Option<PathBuf>,
}

/// The URL's connection settings and TLS checks. Every TLS connection is verified (system
/// roots, `ca_file`, `sslrootcert`), whatever the sslmode: `prefer` and `require` decide
/// only whether TLS is used; `verify-ca` and `verify-full` require it. This is stricter
/// than libpq, whose `prefer` and `require` accept any certificate.
fn pg_config(url: &str) -> std::result::Result<(postgres::Config, PgTls), String> {
    const MODES: &str = "disable, prefer, require, verify-ca, verify-full";
    let mut u = url::Url::parse(url).map_err(|e| e.to_string())?;
    let mut tls = PgTls {
        verify_hostname: true,
        root_cert: None,
    };
    let mut kept: Vec<(String, String)> = Vec::new();
    for (k, v) in u.query_pairs() {
        match (k.as_ref(), v.as_ref()) {
            ("sslrootcert", path) => tls.root_cert = Some(PathBuf::from(path)),
            ("sslmode", "verify-full") => kept.push(("sslmode".into(), "require".into())),
            ("sslmode", "verify-ca") => {
                tls.verify_hostname = false;
                kept.push(("sslmode".into(), "require".into()));
            }
            ("sslmode", "disable" | "prefer" | "require") => kept.push((k.into(), v.into())),
            ("sslmode", other) => return Err(format!("sslmode={other}: accepted: {MODES}")),
            _ => kept.push((k.into(), v.into())),
        }
    }
    if kept.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(kept);
    }
    let config = u
        .as_str()
        .parse::<postgres::Config>()
        .map_err(|e| e.to_string())?;
    Ok((config, tls))
}

/// The TLS connector for a PostgreSQL connection: the platform's TLS stack (the same as
/// Azure's), its system roots, plus `ca_pem` (the slot's `ca_file`) and `sslrootcert`.
fn pg_tls_connector(
    tls: &PgTls,
    ca_pem: Option<&[u8]>,
) -> std::result::Result<postgres_native_tls::MakeTlsConnector, String> {
    let mut b = native_tls::TlsConnector::builder();
    let root_file = match &tls.root_cert {
        Some(path) => {
            Some(std::fs::read(path).map_err(|e| format!("sslrootcert {}: {e}", path.display()))?)
        }
        None => None,
    };
    for (what, pem) in [("ca_file", ca_pem), ("sslrootcert", root_file.as_deref())] {
        let Some(pem) = pem else { continue };
        let certs = openssl::x509::X509::stack_from_pem(pem)
            .map_err(|e| format!("{what}: not PEM certificates: {e}"))?;
        for c in certs {
            let der = c.to_der().map_err(|e| format!("{what}: {e}"))?;
            b.add_root_certificate(
                native_tls::Certificate::from_der(&der).map_err(|e| format!("{what}: {e}"))?,
            );
        }
    }
    b.danger_accept_invalid_hostnames(!tls.verify_hostname);
    let connector = b.build().map_err(|e| e.to_string())?;
    Ok(postgres_native_tls::MakeTlsConnector::new(connector))
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparsable URL>".into(),
    }
}

/// One stored certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRow {
    pub id: i64,
    pub key_name: Option<String>,
    pub key_version: Option<String>,
    pub cka_id: Vec<u8>,
    pub label: String,
    pub der: Vec<u8>,
    pub created_at: String,
}

/// A certificate to store.
pub struct NewCert<'a> {
    pub key_name: Option<&'a str>,
    pub key_version: Option<&'a str>,
    pub cka_id: &'a [u8],
    pub label: &'a str,
    pub der: &'a [u8],
}

/// The certificates of one store (`backend`) in one database.
#[derive(Debug, Clone)]
pub struct CertDb {
    location: Location,
    backend: String,
    /// Extra TLS trust anchors for PostgreSQL (the slot's `ca_file`).
    ca_pem: Option<Vec<u8>>,
}

/// How long a writer waits for SQLite's lock, and a PostgreSQL connection may take.
const BUSY: Duration = Duration::from_secs(10);

/// (version, SQLite, PostgreSQL): applied in order, each once.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "CREATE TABLE certificates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        backend TEXT NOT NULL,
        key_name TEXT,
        key_version TEXT,
        cka_id BLOB NOT NULL,
        label TEXT NOT NULL,
        der BLOB NOT NULL,
        sha256 TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (backend, sha256)
    );
    CREATE INDEX certificates_backend ON certificates (backend);",
    "CREATE TABLE certificates (
        id BIGSERIAL PRIMARY KEY,
        backend TEXT NOT NULL,
        key_name TEXT,
        key_version TEXT,
        cka_id BYTEA NOT NULL,
        label TEXT NOT NULL,
        der BYTEA NOT NULL,
        sha256 TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (backend, sha256)
    );
    CREATE INDEX certificates_backend ON certificates (backend);",
)];

/// Serialises concurrent first uses on PostgreSQL (pg_advisory_xact_lock key).
const PG_MIGRATION_LOCK: i64 = 0x4944_5043_4442; // "IDPCDB"

fn db_err(location: &Location, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend(format!(
        "certificate database {}: {what}: {e}",
        location.display()
    ))
}

impl CertDb {
    /// No connection is made here (C_Initialize needs none); the schema is created or
    /// migrated on first use.
    pub fn new(location: Location, backend: &str) -> CertDb {
        CertDb {
            location,
            backend: backend.to_owned(),
            ca_pem: None,
        }
    }

    /// Trusts `ca_pem` (PEM certificates: the slot's `ca_file`) for PostgreSQL's TLS, as
    /// for Azure, besides the system roots.
    pub fn with_ca(mut self, ca_pem: Option<Vec<u8>>) -> CertDb {
        self.ca_pem = ca_pem;
        self
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The certificates of this store, oldest first.
    pub fn list(&self) -> Result<Vec<CertRow>> {
        const Q: &str = "SELECT id, key_name, key_version, cka_id, label, der, created_at
                         FROM certificates WHERE backend = $1 ORDER BY id";
        match &self.location {
            Location::Sqlite(_) => {
                let c = self.sqlite()?;
                let mut st = c
                    .prepare(&Q.replace("$1", "?1"))
                    .map_err(|e| self.err("reading", e))?;
                let rows = st
                    .query_map([&self.backend], |r| {
                        Ok(CertRow {
                            id: r.get(0)?,
                            key_name: r.get(1)?,
                            key_version: r.get(2)?,
                            cka_id: r.get(3)?,
                            label: r.get(4)?,
                            der: r.get(5)?,
                            created_at: r.get(6)?,
                        })
                    })
                    .map_err(|e| self.err("reading", e))?;
                rows.collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| self.err("reading", e))
            }
            Location::Postgres(_) => {
                let mut c = self.postgres()?;
                let rows = c
                    .query(Q, &[&self.backend])
                    .map_err(|e| self.err("reading", e))?;
                Ok(rows
                    .iter()
                    .map(|r| CertRow {
                        id: r.get(0),
                        key_name: r.get(1),
                        key_version: r.get(2),
                        cka_id: r.get(3),
                        label: r.get(4),
                        der: r.get(5),
                        created_at: r.get(6),
                    })
                    .collect())
            }
        }
    }

    /// Stores a certificate; the same certificate stored again (by anyone) is the same row,
    /// returned as it is.
    pub fn insert(&self, cert: &NewCert<'_>) -> Result<CertRow> {
        let sha256 = crate::crypto::hex::encode(&openssl::sha::sha256(cert.der));
        let created_at = crate::crypto::time::now_rfc3339();
        const INSERT: &str = "INSERT INTO certificates
            (backend, key_name, key_version, cka_id, label, der, sha256, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (backend, sha256) DO NOTHING";
        const SELECT: &str = "SELECT id, key_name, key_version, cka_id, label, der, created_at
            FROM certificates WHERE backend = $1 AND sha256 = $2";
        let row = |id, key_name, key_version, cka_id, label, der, created_at| CertRow {
            id,
            key_name,
            key_version,
            cka_id,
            label,
            der,
            created_at,
        };
        match &self.location {
            Location::Sqlite(_) => {
                let c = self.sqlite()?;
                c.execute(
                    &sqlite_params(INSERT),
                    rusqlite::params![
                        self.backend,
                        cert.key_name,
                        cert.key_version,
                        cert.cka_id,
                        cert.label,
                        cert.der,
                        sha256,
                        created_at
                    ],
                )
                .map_err(|e| self.err("storing a certificate", e))?;
                c.query_row(
                    &sqlite_params(SELECT),
                    rusqlite::params![self.backend, sha256],
                    |r| {
                        Ok(row(
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                        ))
                    },
                )
                .map_err(|e| self.err("storing a certificate", e))
            }
            Location::Postgres(_) => {
                let mut c = self.postgres()?;
                c.execute(
                    INSERT,
                    &[
                        &self.backend,
                        &cert.key_name,
                        &cert.key_version,
                        &cert.cka_id,
                        &cert.label,
                        &cert.der,
                        &sha256,
                        &created_at,
                    ],
                )
                .map_err(|e| self.err("storing a certificate", e))?;
                let r = c
                    .query_one(SELECT, &[&self.backend, &sha256])
                    .map_err(|e| self.err("storing a certificate", e))?;
                Ok(row(
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                ))
            }
        }
    }

    /// Removes a certificate; false if it was not there (removed by someone else).
    pub fn delete(&self, id: i64) -> Result<bool> {
        const Q: &str = "DELETE FROM certificates WHERE backend = $1 AND id = $2";
        let n = match &self.location {
            Location::Sqlite(_) => self
                .sqlite()?
                .execute(&sqlite_params(Q), rusqlite::params![self.backend, id])
                .map_err(|e| self.err("deleting a certificate", e))?,
            Location::Postgres(_) => usize::try_from(
                self.postgres()?
                    .execute(Q, &[&self.backend, &id])
                    .map_err(|e| self.err("deleting a certificate", e))?,
            )
            .unwrap_or(usize::MAX),
        };
        Ok(n > 0)
    }

    /// Changes a certificate's label and/or CKA_ID.
    pub fn update(&self, id: i64, label: Option<&str>, cka_id: Option<&[u8]>) -> Result<bool> {
        const Q: &str = "UPDATE certificates SET label = COALESCE($3, label),
            cka_id = COALESCE($4, cka_id) WHERE backend = $1 AND id = $2";
        let n = match &self.location {
            Location::Sqlite(_) => self
                .sqlite()?
                .execute(
                    &sqlite_params(Q),
                    rusqlite::params![self.backend, id, label, cka_id],
                )
                .map_err(|e| self.err("updating a certificate", e))?,
            Location::Postgres(_) => usize::try_from(
                self.postgres()?
                    .execute(Q, &[&self.backend, &id, &label, &cka_id])
                    .map_err(|e| self.err("updating a certificate", e))?,
            )
            .unwrap_or(usize::MAX),
        };
        Ok(n > 0)
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> Error {
        db_err(&self.location, what, e)
    }

    /// A connection with the schema up to date.
    fn sqlite(&self) -> Result<rusqlite::Connection> {
        let Location::Sqlite(path) = &self.location else {
            return Err(Error::Internal("not a SQLite database".into()));
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(|e| self.err("creating its directory", e))?;
        }
        let mut c = rusqlite::Connection::open(path).map_err(|e| self.err("opening", e))?;
        c.busy_timeout(BUSY).map_err(|e| self.err("opening", e))?;
        // WAL: readers in other processes never block the writer and see committed rows.
        // Switching to it takes a lock the busy timeout does not wait for (seen on Windows
        // when several processes open a new database at once): retried within BUSY.
        let until = std::time::Instant::now() + BUSY;
        loop {
            match c.pragma_update(None, "journal_mode", "WAL") {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::DatabaseBusy
                        && std::time::Instant::now() < until =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(self.err("opening", e)),
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        let tx = c
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err("migrating", e))?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS identify_schema (version INTEGER NOT NULL)")
            .map_err(|e| self.err("migrating", e))?;
        let version: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM identify_schema",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err("migrating", e))?;
        for (v, sql, _) in MIGRATIONS.iter().filter(|(v, _, _)| *v > version) {
            tx.execute_batch(sql)
                .map_err(|e| self.err(&format!("migration {v}"), e))?;
            tx.execute("INSERT INTO identify_schema (version) VALUES (?1)", [v])
                .map_err(|e| self.err(&format!("migration {v}"), e))?;
        }
        check_version(&self.location, version)?;
        tx.commit().map_err(|e| self.err("migrating", e))?;
        Ok(c)
    }

    /// A PostgreSQL connection with the schema up to date.
    fn postgres(&self) -> Result<postgres::Client> {
        let Location::Postgres(url) = &self.location else {
            return Err(Error::Internal("not a PostgreSQL database".into()));
        };
        let (mut config, tls) = pg_config(url).map_err(|e| self.err("configuration", e))?;
        if config.get_password().is_none()
            && let Ok(p) = std::env::var("PGPASSWORD")
        {
            config.password(p);
        }
        config.connect_timeout(BUSY);
        let connector =
            pg_tls_connector(&tls, self.ca_pem.as_deref()).map_err(|e| self.err("TLS", e))?;
        let mut c = config.connect(connector).map_err(|e| {
            let chain = crate::error::source_chain(&e);
            self.err("connecting", format!("{e}: {chain}"))
        })?;
        let mut tx = c.transaction().map_err(|e| self.err("migrating", e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PG_MIGRATION_LOCK])
            .map_err(|e| self.err("migrating", e))?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS identify_schema (version BIGINT NOT NULL)")
            .map_err(|e| self.err("migrating", e))?;
        let version: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0)::BIGINT FROM identify_schema",
                &[],
            )
            .map_err(|e| self.err("migrating", e))?
            .get(0);
        for (v, _, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > version) {
            tx.batch_execute(sql)
                .map_err(|e| self.err(&format!("migration {v}"), e))?;
            tx.execute("INSERT INTO identify_schema (version) VALUES ($1)", &[v])
                .map_err(|e| self.err(&format!("migration {v}"), e))?;
        }
        check_version(&self.location, version)?;
        tx.commit().map_err(|e| self.err("migrating", e))?;
        Ok(c)
    }
}

/// A database migrated by a newer release is not written by this one.
fn check_version(location: &Location, found: i64) -> Result<()> {
    let known = MIGRATIONS.last().map_or(0, |(v, _, _)| *v);
    if found > known {
        return Err(db_err(
            location,
            "schema",
            format!(
                "version {found} is newer than this release knows ({known}); upgrade identify-pkcs11"
            ),
        ));
    }
    Ok(())
}

/// `$1`-style placeholders as SQLite's `?1`.
fn sqlite_params(q: &str) -> String {
    let mut out = q.to_owned();
    for n in (1..=9).rev() {
        out = out.replace(&format!("${n}"), &format!("?{n}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_tls_keys_are_taken_from_the_url() {
        let (c, tls) = pg_config(
            "postgres://app@db.example/certs?sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(c.get_ssl_mode(), postgres::config::SslMode::Require);
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(
            tls,
            PgTls {
                verify_hostname: true,
                root_cert: Some("/etc/ca.pem".into())
            }
        );
        let (c, tls) = pg_config("postgres://app@db/certs?sslmode=verify-ca").unwrap();
        assert_eq!(c.get_ssl_mode(), postgres::config::SslMode::Require);
        assert!(!tls.verify_hostname && tls.root_cert.is_none());
        let (c, tls) = pg_config("postgresql://app@db/certs").unwrap();
        assert_eq!(c.get_ssl_mode(), postgres::config::SslMode::Prefer);
        assert!(tls.verify_hostname);
        let (c, _) = pg_config("postgres://app@db/certs?sslmode=disable").unwrap();
        assert_eq!(c.get_ssl_mode(), postgres::config::SslMode::Disable);
        let e = Location::parse(
            "postgres://app:pw@db/certs?sslmode=allow",
            std::path::Path::new("/"),
        )
        .unwrap_err();
        assert!(
            e.contains("sslmode=allow") && e.contains("verify-full") && !e.contains("pw"),
            "{e}"
        );
    }

    fn db(dir: &std::path::Path, backend: &str) -> CertDb {
        CertDb::new(Location::Sqlite(dir.join("certs.db")), backend)
    }

    #[test]
    fn locations_parse_and_never_show_a_password() {
        let base = std::path::Path::new("/etc/identify");
        assert_eq!(
            Location::parse("sqlite:///var/lib/c.db", base).unwrap(),
            Location::Sqlite("/var/lib/c.db".into())
        );
        assert_eq!(
            Location::parse("sqlite:c.db", base).unwrap(),
            Location::Sqlite("/etc/identify/c.db".into())
        );
        let pg = Location::parse("postgres://app:s3cret@db.local:5433/certs", base).unwrap();
        assert!(pg.has_password());
        assert!(!pg.display().contains("s3cret"), "{}", pg.display());
        assert!(!format!("{pg:?}").contains("s3cret"));
        assert!(
            !Location::parse("postgres://app@db/certs", base)
                .unwrap()
                .has_password()
        );
        for bad in ["mysql://x", "sqlite://relative", "sqlite:", "c.db"] {
            assert!(Location::parse(bad, base).is_err(), "{bad}");
        }
    }

    #[test]
    fn rows_round_trip_dedupe_and_stay_per_backend() {
        let dir = tempfile::tempdir().unwrap();
        let a = db(dir.path(), "https://a.managedhsm.azure.net");
        let b = db(dir.path(), "https://b.managedhsm.azure.net");
        assert!(a.list().unwrap().is_empty());
        let new = NewCert {
            key_name: Some("k"),
            key_version: Some("v1"),
            cka_id: &[1, 2],
            label: "k",
            der: b"not parsed here",
        };
        let row = a.insert(&new).unwrap();
        assert_eq!(row.key_name.as_deref(), Some("k"));
        assert!(row.created_at.ends_with('Z') && row.created_at.len() == 20);
        // The same certificate again is the same row.
        assert_eq!(a.insert(&new).unwrap().id, row.id);
        assert_eq!(a.list().unwrap(), vec![row.clone()]);
        assert!(b.list().unwrap().is_empty());
        assert!(a.update(row.id, Some("new"), None).unwrap());
        assert_eq!(a.list().unwrap()[0].label, "new");
        assert_eq!(a.list().unwrap()[0].cka_id, vec![1, 2]);
        assert!(!b.delete(row.id).unwrap(), "another backend's row");
        assert!(a.delete(row.id).unwrap());
        assert!(!a.delete(row.id).unwrap());
        assert!(a.list().unwrap().is_empty());
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let d = db(&path, "x");
                    for i in 0..10 {
                        let der = format!("cert {t} {i}");
                        d.insert(&NewCert {
                            key_name: None,
                            key_version: None,
                            cka_id: &[],
                            label: "l",
                            der: der.as_bytes(),
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(db(&path, "x").list().unwrap().len(), 80);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = db(dir.path(), "x");
        d.list().unwrap();
        let c = rusqlite::Connection::open(dir.path().join("certs.db")).unwrap();
        c.execute("INSERT INTO identify_schema (version) VALUES (99)", [])
            .unwrap();
        let e = d.list().unwrap_err().to_string();
        assert!(e.contains("newer than this release"), "{e}");
    }
}
