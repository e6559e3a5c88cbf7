//! The command line: `serve`, `init`, `verify-log`, `access-report` and `openapi`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use std::time::Duration;

use crate::app::{self, Application, Config, Limits};
use crate::domain::Timestamp;
use crate::http::denials::DEFAULT_WINDOW;
use crate::http::report::{AccessReport, ReportFormat};
use crate::http::throttle::ThrottleConfig;
use crate::ledger::{Ledger, verify_log};
use crate::log::FjallLog;

/// keyledger: event-sourced API keys and permissions, with a provable audit trail.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API. On an empty data directory, first create the Administrator and
    /// print its key once.
    Serve {
        /// The data directory (created if missing).
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// The address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// HTTP worker threads (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
        /// Save a snapshot of the permission view every N records, so that start-up
        /// replays only the records after it.
        #[arg(long, default_value_t = app::DEFAULT_SNAPSHOT_EVERY)]
        snapshot_every: u64,
        /// Checks refused for their key (malformed or unknown) a client address may make in
        /// a burst before it gets 429; 0 turns the limit off.
        #[arg(long, default_value_t = ThrottleConfig::default().burst)]
        failed_check_burst: u32,
        /// Checks refused for their key a client address may make per minute, sustained.
        #[arg(long, default_value_t = ThrottleConfig::default().per_minute)]
        failed_checks_per_minute: u32,
        /// A proxy whose X-Forwarded-For names the client (repeatable). Without one,
        /// X-Forwarded-For is ignored.
        #[arg(long = "trusted-proxy", value_name = "IP")]
        trusted_proxies: Vec<std::net::IpAddr>,
        /// The largest request body accepted, in bytes.
        #[arg(long, default_value_t = Limits::default().max_body_bytes)]
        max_body_bytes: usize,
        /// Open connections per worker thread; more wait in the listen backlog.
        #[arg(long, default_value_t = Limits::default().max_connections)]
        max_connections: usize,
        /// Milliseconds a client may take to send a request's head (408 past it).
        #[arg(long, default_value_t = 5000)]
        request_timeout_ms: u64,
        /// Seconds an idle keep-alive connection is kept.
        #[arg(long, default_value_t = 5)]
        keep_alive_secs: u64,
        /// Seconds between records of key usage (one KeyUsageRecorded per key used since
        /// the last record); pending usage is also recorded at a graceful stop.
        #[arg(long, default_value_t = app::DEFAULT_KEY_USAGE_INTERVAL.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
        key_usage_interval_secs: u64,
        /// Seconds of a key's window for recording refused admin requests: at most 3 are
        /// recorded per key per window, and the count of the rest goes into the next one.
        #[arg(long, default_value_t = DEFAULT_WINDOW.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
        denial_window_secs: u64,
    },
    /// Initialise a data directory without serving; print the Administrator's key alone on
    /// the last line of standard output. Fails on an initialised directory.
    Init {
        /// The data directory (created if missing).
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Verify the hash chain of a data directory's log, offline. Exits 1 if it fails.
    VerifyLog {
        /// The data directory.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Print the access review report of a data directory, offline: one row per user with
    /// roles, functions, event access, key, last use and review flags. The whole log is
    /// verified and replayed first. The directory must not be in use by a running server.
    AccessReport {
        /// The data directory.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// The output format.
        #[arg(long, value_enum, default_value_t = ReportFormatArg::Json)]
        format: ReportFormatArg,
    },
    /// Print the OpenAPI document.
    Openapi,
}

/// The formats `access-report` prints.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReportFormatArg {
    /// JSON, as `accessReport` answers.
    Json,
    /// CSV (RFC 4180, formula-neutralised), as `accessReport` answers with `format=csv`.
    Csv,
}

impl From<ReportFormatArg> for ReportFormat {
    fn from(format: ReportFormatArg) -> Self {
        match format {
            ReportFormatArg::Json => ReportFormat::Json,
            ReportFormatArg::Csv => ReportFormat::Csv,
        }
    }
}

/// Runs the command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            data_dir,
            listen,
            workers,
            snapshot_every,
            failed_check_burst,
            failed_checks_per_minute,
            trusted_proxies,
            max_body_bytes,
            max_connections,
            request_timeout_ms,
            keep_alive_secs,
            key_usage_interval_secs,
            denial_window_secs,
        } => {
            let throttle =
                ThrottleConfig { burst: failed_check_burst, per_minute: failed_checks_per_minute, trusted_proxies };
            let limits = Limits {
                max_body_bytes,
                max_connections,
                request_timeout: Duration::from_millis(request_timeout_ms),
                keep_alive: Duration::from_secs(keep_alive_secs),
            };
            serve(Config {
                data_dir,
                listen,
                workers,
                snapshot_every,
                throttle,
                limits,
                key_usage_interval: Duration::from_secs(key_usage_interval_secs),
                denial_window: Duration::from_secs(denial_window_secs),
            })
        }
        Command::Init { data_dir } => init(data_dir),
        Command::VerifyLog { data_dir } => verify(data_dir),
        Command::AccessReport { data_dir, format } => access_report(data_dir, format.into()),
        Command::Openapi => {
            print!("{}", crate::http::openapi::document_json());
            ExitCode::SUCCESS
        }
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

fn serve(config: Config) -> ExitCode {
    crate::telemetry::init("info");
    let (ledger, secret) = match app::open_ledger(&config.data_dir, config.snapshot_every) {
        Ok(opened) => opened,
        Err(error) => return fail(error),
    };
    actix_web::rt::System::new().block_on(async move {
        let mut application = match Application::build(&config, ledger, secret) {
            Ok(application) => application,
            Err(error) => return fail(error),
        };
        let mut stdout = std::io::stdout().lock();
        if let Some(secret) = application.take_bootstrap_secret() {
            // Shown once: the log keeps only its hash.
            let _ = writeln!(
                stdout,
                "initialised {}: store this key now, it is not shown again",
                config.data_dir.display()
            );
            let _ = writeln!(stdout, "admin key: {}", secret.expose());
        }
        let _ = writeln!(stdout, "listening on http://{}", application.address());
        let _ = stdout.flush();
        drop(stdout);
        tracing::info!(address = %application.address(), data_dir = %config.data_dir.display(), "serving");
        match application.run().await {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(error) => fail(error),
        }
    })
}

fn init(data_dir: PathBuf) -> ExitCode {
    crate::telemetry::init("warn");
    match app::init(&data_dir) {
        Ok((admin, secret)) => {
            println!("initialised {}", data_dir.display());
            println!("admin user: {admin}");
            println!("store the key below now: it is not shown again");
            println!("{}", secret.expose());
            ExitCode::SUCCESS
        }
        Err(error) => fail(error),
    }
}

fn verify(data_dir: PathBuf) -> ExitCode {
    let log_dir = data_dir.join("log");
    if !log_dir.is_dir() {
        return fail(format!("no keyledger data directory at {} (it has no log/)", data_dir.display()));
    }
    let log = match FjallLog::open(&log_dir) {
        Ok(log) => log,
        Err(error) => return fail(error),
    };
    match verify_log(&log) {
        Ok(verification) if verification.is_valid() => {
            println!("valid: {} records, head {}", verification.verified, verification.head_hash);
            ExitCode::SUCCESS
        }
        Ok(verification) => {
            let reason = verification.error.map_or_else(|| "records are missing".to_owned(), |e| e.to_string());
            println!("INVALID after {} of {} records: {reason}", verification.verified, verification.size);
            ExitCode::FAILURE
        }
        Err(error) => fail(error),
    }
}

fn access_report(data_dir: PathBuf, format: ReportFormat) -> ExitCode {
    crate::telemetry::init("warn");
    let log_dir = data_dir.join("log");
    if !log_dir.is_dir() {
        return fail(format!("no keyledger data directory at {} (it has no log/)", data_dir.display()));
    }
    let log = match FjallLog::open(&log_dir) {
        Ok(log) => log,
        Err(error) => return fail(error),
    };
    // No snapshots: the report replays and verifies the whole log, and writes nothing.
    let ledger = match Ledger::open(log) {
        Ok(ledger) => ledger,
        Err(error) => return fail(error),
    };
    let report = AccessReport::of(&ledger.view(), Timestamp::now());
    let mut stdout = std::io::stdout().lock();
    let mut bytes = report.render(format);
    if matches!(format, ReportFormat::Json) {
        bytes.push(b'\n');
    }
    match stdout.write_all(&bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}
