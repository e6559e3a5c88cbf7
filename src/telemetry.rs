//! Logs: `tracing` to standard error, filtered by `RUST_LOG` (default `info`).
//!
//! Without `RUST_LOG`, the INFO lines of a normal start are the ones an operator needs:
//! the log opened (its head, the snapshot it started from, how long replay took) and the
//! address served with the data directory and the start-up time. The libraries' own
//! progress lines (fjall's "Recovering database / LSM-tree / manifest" on every start,
//! actix's workers) are quieted to warnings by [`QUIET_BY_DEFAULT`]; an explicit
//! `RUST_LOG` replaces the whole default, so `RUST_LOG=debug` shows them again.
//!
//! Nothing logged ever contains a key's secret: requests are logged by method, path and
//! status, never by header or body.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The libraries whose INFO lines are their own progress, not the operator's business:
/// warnings and errors only, unless `RUST_LOG` says otherwise.
pub const QUIET_BY_DEFAULT: &str = "fjall=warn,lsm_tree=warn,actix_server=warn";

/// The filter used when `RUST_LOG` is not set: `default_level` for keyledger, and the
/// [`QUIET_BY_DEFAULT`] libraries at warnings.
pub fn default_filter(default_level: &str) -> String {
    format!("{default_level},{QUIET_BY_DEFAULT}")
}

/// Installs the global subscriber. Calling it twice is harmless.
pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter(default_level)));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
