//! Logging through `tracing`: level from `IDENTIFY_PKCS11_LOG` or the configuration's
//! `[log] level` (default `warn`), to standard error or the configured file. Installed once
//! per process; later C_Initialize calls keep the first setting. Nothing logged carries a
//! PIN, a secret or a token.

use crate::config::{LOG_ENV, LogConfig};
use std::sync::Once;

static INIT: Once = Once::new();

pub fn init(config: Option<&LogConfig>) {
    INIT.call_once(|| {
        let level = std::env::var(LOG_ENV)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| config.and_then(|c| c.level).map(|l| l.as_str().to_owned()))
            .unwrap_or_else(|| "warn".to_owned());
        let filter = tracing_subscriber::EnvFilter::try_new(&level)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_ansi(false);
        // A new log file is readable by its owner only (0600): what it says about keys,
        // slots and failures is nobody else's business.
        let file = config.and_then(|c| c.file.as_ref()).and_then(|path| {
            crate::telemetry::open_append(path, 0o600)
                .inspect_err(|e| {
                    eprintln!(
                        "identify-pkcs11: cannot open log file {}: {e}; logging to stderr",
                        path.display()
                    );
                })
                .ok()
        });
        let _ = match file {
            Some(f) => builder.with_writer(std::sync::Mutex::new(f)).try_init(),
            None => builder.with_writer(std::io::stderr).try_init(),
        };
    });
}
