//! The operator's tool. It is a client of the module: `demo` loads the built library through
//! the C ABI exactly as an application does.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod demo;

#[derive(Parser)]
#[command(
    name = "identify-pkcs11",
    version,
    about = "identify-pkcs11: PKCS#11 module operator's tool"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    /// Print the argon2id hash of a PIN read from standard input, for `pin_hash` in the
    /// configuration.
    PinHash,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { module, store } => demo::run(module, store),
        Command::PinHash => pin_hash(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("identify-pkcs11: {e}");
            ExitCode::FAILURE
        }
    }
}

fn pin_hash() -> Result<(), String> {
    let mut pin = String::new();
    std::io::stdin()
        .read_line(&mut pin)
        .map_err(|e| format!("reading the PIN from standard input: {e}"))?;
    let pin = pin.trim_end_matches(['\r', '\n']);
    if pin.is_empty() {
        return Err("empty PIN on standard input".into());
    }
    let hash = identify_pkcs11::config::hash_pin(pin.as_bytes()).map_err(|e| e.to_string())?;
    println!("{hash}");
    Ok(())
}
