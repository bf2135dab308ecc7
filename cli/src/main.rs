//! The operator's tool. It is a client of the module: `demo` loads the built library through
//! the C ABI exactly as an application does.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod audit;
mod backup;
mod bench;
mod bench_listing;
mod bench_local;
mod cert;
mod demo;
mod ops;

#[derive(Parser)]
#[command(
    name = "identify-pkcs11",
    version,
    about = "identify-pkcs11: PKCS#11 module operator's tool"
)]
struct Cli {
    /// The configuration file, for every command [default: as the module finds it: this
    /// variable, else /etc/identify-pkcs11/config.toml]
    #[arg(long, global = true, env = identify_pkcs11::admin::CONFIG_ENV)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum CertCommand {
    /// Create a key in the slot's store and a self-signed certificate signed by it (the
    /// private key stays in the store), kept where the slot keeps certificates; prints the
    /// certificate (PEM) and its thumbprints.
    SelfSigned {
        /// The slot (its label).
        #[arg(long)]
        slot: String,
        /// The key's name (and the objects' label).
        #[arg(long)]
        name: String,
        /// The subject, e.g. "CN=signing.example.com,O=Contoso".
        #[arg(long)]
        subject: String,
        /// rsa:2048, rsa:3072, rsa:4096, ec:p256 or ec:p384.
        #[arg(long, default_value = "rsa:3072")]
        key: String,
        /// Validity in days.
        #[arg(long, default_value_t = 730)]
        days: u32,
        /// JSON on standard output instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Bring a key and its certificate from a PFX (PKCS#12) or PEM file into the slot's
    /// store: a vault certificate (key-vault), a key plus the certificate in the
    /// certificate database (managed-hsm), files (cert-store directory).
    Import {
        /// The slot (its label).
        #[arg(long)]
        slot: String,
        /// The key's name (default: the file's name without extension, letters, digits, '-').
        #[arg(long)]
        name: Option<String>,
        /// A file holding the PFX's password or the PEM key's passphrase (its first line).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// The PFX/PKCS#12 or PEM file.
        file: PathBuf,
        /// JSON on standard output instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make a new version of key N current, with a new certificate (the same subject
    /// unless --subject); the older versions stay for decryption. Prints the certificate
    /// (PEM) and its thumbprints for federation metadata. Slot kinds: key-vault (a new key
    /// version, or a new version of a vault-issued certificate), managed-hsm (a new key
    /// version), cert-store over a directory (a new key file takes the label; the previous
    /// key is relabelled and kept). Not the Windows certificate store.
    Rotate {
        /// The slot (its label).
        #[arg(long)]
        slot: String,
        /// The key's name.
        #[arg(long)]
        name: String,
        /// The new certificate's subject (default: the current certificate's).
        #[arg(long)]
        subject: Option<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 730)]
        days: u32,
        /// JSON on standard output instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Which configuration and slots a subcommand works on, and how it prints.
#[derive(clap::Args)]
struct On {
    /// Only this slot (its label).
    #[arg(long)]
    slot: Option<String>,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Load the module through its C ABI, create a key and a self-signed certificate, sign a
    /// JWT (RS256) and verify it, decrypt an RSA-OAEP-wrapped key, and print each step.
    Demo {
        /// The module to load (default: the libidentify_pkcs11 built beside this program).
        #[arg(long)]
        module: Option<PathBuf>,
        /// Use this directory as the store instead of a temporary one.
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// Slots, keys and their versions (which is current), certificates (subject, SHA-1 and
    /// SHA-256 thumbprints, not-after).
    List {
        #[command(flatten)]
        on: On,
    },
    /// Check the configuration, credentials, permissions, latency, certificates and the
    /// certificate database of every slot. Exit codes as monitoring plugins: 0 OK,
    /// 1 WARNING, 2 CRITICAL (a check failed), 3 UNKNOWN (no such slot); 64 bad arguments.
    Doctor {
        #[command(flatten)]
        on: On,
        /// Also make a test signature with the current version of every signing key, and a
        /// test decryption (RSA-OAEP SHA-256) with every RSA key that decrypts: with the
        /// listing, every permission a signing server needs is then tried.
        #[arg(long)]
        sign: bool,
        /// Round trips timed for the latency median.
        #[arg(long, default_value_t = 5)]
        samples: usize,
        /// A median round trip above this many milliseconds is a warning (another region).
        #[arg(long, default_value_t = 20)]
        latency_warn_ms: u64,
        /// Certificates expiring within this many days are a warning.
        #[arg(long, default_value_t = 30)]
        expiry_days: i64,
        /// The Azure Instance Metadata Service URL that tells this host's region, compared
        /// with the region each vault reports (a slot's `region` takes precedence; empty:
        /// not asked).
        #[arg(long, env = "IDENTIFY_PKCS11_IMDS_URL", default_value = IMDS_LOCATION)]
        imds_url: String,
    },
    /// Summarise the audit log: key uses by slot, key, operation and result, with latency
    /// percentiles.
    Audit {
        /// How far back: 90s, 15m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        since: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Back up the slot's keys (the store's own backup blobs: all versions of each key)
    /// and its certificate-database rows to a new directory, with a manifest of SHA-256
    /// checksums.
    Backup {
        /// The slot (its label).
        #[arg(long)]
        slot: String,
        /// A directory that does not exist yet or is empty.
        #[arg(long)]
        out: PathBuf,
        /// Only this key (repeatable; default: every key of the slot).
        #[arg(long = "key")]
        keys: Vec<String>,
        /// JSON on standard output instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup into a slot of the same kind. Every checksum is checked first; keys
    /// already there with the same versions are kept; other keys of the same name make it
    /// refuse unless --force (which deletes them first, where allow_destroy permits).
    Restore {
        /// The slot (its label).
        #[arg(long)]
        slot: String,
        /// Replace keys of the same name that differ from the backup's.
        #[arg(long)]
        force: bool,
        /// The backup directory (made by `backup`).
        dir: PathBuf,
        /// JSON on standard output instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Certificates: `cert self-signed`, `cert import`, `cert rotate`.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Print the argon2id hash of a PIN for `pin_hash` in the configuration: asked twice
    /// without echo on a terminal, else one line of standard input.
    PinHash,
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Write the manual pages (identify-pkcs11.1 and one per command) into DIR (packaging).
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// Measure C_Sign throughput and latency through the C ABI against a key-vault slot on
    /// the emulator (tests/kv-emulator) with injected latency.
    Bench {
        /// The module to load (default: the libidentify_pkcs11 built beside this program).
        #[arg(long)]
        module: Option<PathBuf>,
        /// The kv-emulator binary (default: KV_EMULATOR, else beside this program).
        #[arg(long)]
        emulator: Option<PathBuf>,
        /// Directory of NAME.key.pem / NAME.crt.pem the emulator is seeded with.
        #[arg(long, default_value = "softhsm-fixtures/keys")]
        seed_dir: PathBuf,
        /// The key to sign with.
        #[arg(long, default_value = "rsa2048")]
        key: String,
        /// Thread counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        threads: Vec<usize>,
        /// Seconds per thread count.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Latency the emulator adds to every request, in milliseconds.
        #[arg(long, default_value_t = 20)]
        latency_ms: u64,
        /// Instead of signing: list vaults of these many keys (comma-separated), and
        /// report the first search's time and requests and a refresh's requests.
        #[arg(long, value_delimiter = ',')]
        listing: Vec<usize>,
        /// The slot's rate_budget for --listing (a share of the vault's published limits).
        #[arg(long, default_value_t = 0.9)]
        rate_budget: f64,
        /// Instead: RSA-2048 C_Sign with a directory store (the --seed-dir keys) on one
        /// thread, beside `openssl speed rsa2048`, for --seconds each, twice.
        #[arg(long)]
        local: bool,
    },
}

/// Bad arguments, for every command (sysexits' EX_USAGE): apart from doctor's 0–3 and the
/// 1 of any other failure.
const EXIT_USAGE: u8 = 64;

/// The Azure Instance Metadata Service: this VM's region, as text.
const IMDS_LOCATION: &str =
    "http://169.254.169.254/metadata/instance/compute/location?api-version=2021-02-01&format=text";

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors.
            let usage = e.use_stderr();
            let _ = e.print();
            return if usage {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let config = cli.config;
    let result = match cli.command {
        Command::Demo { module, store } => demo::run(module, store),
        Command::PinHash => pin_hash(),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "identify-pkcs11", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir } => man_pages(&dir),
        Command::Audit { since, json } => audit::audit(config.as_ref(), &since, json),
        Command::Cert {
            command:
                CertCommand::SelfSigned {
                    slot,
                    name,
                    subject,
                    key,
                    days,
                    json,
                },
        } => cert::self_signed(&cert::SelfSigned {
            config,
            slot,
            name,
            subject,
            key,
            days,
            json,
        }),
        Command::Cert {
            command:
                CertCommand::Rotate {
                    slot,
                    name,
                    subject,
                    days,
                    json,
                },
        } => cert::rotate(&cert::Rotate {
            config,
            slot,
            name,
            subject,
            days,
            json,
        }),
        Command::Cert {
            command:
                CertCommand::Import {
                    slot,
                    name,
                    password_file,
                    file,
                    json,
                },
        } => cert::import(&cert::Import {
            config,
            slot,
            file,
            password_file,
            name,
            json,
        }),
        Command::Backup {
            slot,
            out,
            keys,
            json,
        } => backup::backup(&backup::Backup {
            config,
            slot,
            out,
            keys,
            json,
        }),
        Command::Restore {
            slot,
            force,
            dir,
            json,
        } => backup::restore(&backup::Restore {
            config,
            slot,
            dir,
            force,
            json,
        }),
        Command::List { on } => ops::list(config.as_ref(), on.slot.as_deref(), on.json),
        Command::Doctor {
            on: On { slot, json },
            sign,
            samples,
            latency_warn_ms,
            expiry_days,
            imds_url,
        } => {
            return ops::doctor(&ops::DoctorOptions {
                config,
                slot,
                json,
                sign,
                samples,
                latency_warn_ms,
                expiry_days,
                imds_url,
            });
        }
        Command::Bench {
            module,
            emulator,
            seed_dir,
            key,
            threads,
            seconds,
            latency_ms,
            listing,
            rate_budget,
            local,
        } => (|| {
            let beside = |name: &str| -> Result<PathBuf, String> {
                let exe = std::env::current_exe().map_err(|e| e.to_string())?;
                Ok(exe.parent().ok_or("no directory")?.join(name))
            };
            let o = bench::Options {
                module: match module {
                    Some(m) => m,
                    None => demo::default_module()?,
                },
                emulator: match emulator {
                    Some(e) => e,
                    None => {
                        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
                        kv_launch::default_bin(exe.parent().ok_or("no directory")?)
                    }
                },
                kv_load: beside("kv-load")?,
                fixtures: seed_dir.clone(),
                key,
                threads,
                seconds,
                latency_ms,
            };
            if local {
                if std::env::var_os(bench_local::INNER).is_some() {
                    return bench_local::measure(&o.module, o.seconds);
                }
                return bench_local::run(&seed_dir, o.seconds);
            }
            if !listing.is_empty() {
                if let Ok(n) = std::env::var(bench_listing::INNER) {
                    let n = n
                        .parse()
                        .map_err(|_| format!("{}: {n}", bench_listing::INNER))?;
                    return bench_listing::measure(&o.module, n);
                }
                return bench_listing::run(&bench_listing::Options {
                    emulator: o.emulator,
                    fixtures: seed_dir,
                    keys: listing,
                    latency_ms,
                    rate_budget,
                });
            }
            if std::env::var_os(bench::INNER).is_some() {
                bench::measure(&o)
            } else {
                bench::run(o)
            }
        })(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("identify-pkcs11: {e}");
            ExitCode::FAILURE
        }
    }
}

/// identify-pkcs11.1, and identify-pkcs11-COMMAND.1 for each command (and
/// identify-pkcs11-cert-COMMAND.1 below `cert`), from the clap definitions.
fn man_pages(dir: &std::path::Path) -> Result<(), String> {
    use clap::CommandFactory;
    fn write(dir: &std::path::Path, name: &str, cmd: clap::Command) -> Result<(), String> {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd.clone())
            .title(name.to_owned())
            .render(&mut out)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::write(&path, out).map_err(|e| format!("{}: {e}", path.display()))?;
        for sub in cmd
            .get_subcommands()
            .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        {
            write(dir, &format!("{name}-{}", sub.get_name()), sub.clone())?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    write(dir, "identify-pkcs11", cmd)
}

/// Reads the PIN without echo from a terminal (asked twice), or as one line from standard
/// input when it is not a terminal (a pipe, a file): never from the command line, where
/// it would stay in the shell's history and the process list.
fn pin_hash() -> Result<(), String> {
    use std::io::IsTerminal;
    let pin = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("PIN: ")
            .map_err(|e| format!("reading the PIN from the terminal: {e}"))?;
        let again = rpassword::prompt_password("PIN again: ")
            .map_err(|e| format!("reading the PIN from the terminal: {e}"))?;
        if first != again {
            return Err("the two PINs differ".into());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("reading the PIN from standard input: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if pin.is_empty() {
        return Err("empty PIN".into());
    }
    let hash = identify_pkcs11::admin::hash_pin(pin.as_bytes()).map_err(|e| e.to_string())?;
    println!("{hash}");
    Ok(())
}
