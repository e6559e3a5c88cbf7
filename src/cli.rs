//! The command line: `serve`, `init`, `verify-log`, `export`, `verify`, `replay`,
//! `recover-admin`, `signing-key`, `access-report`, `backup`, `restore`, `config print` and
//! `openapi`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use std::time::Duration;

use crate::app::{self, Application, CheckpointConfig, Config, DatabaseConfig, Limits};
use crate::domain::Timestamp;
use crate::http::denials::DEFAULT_WINDOW;
use crate::http::throttle::ThrottleConfig;
use crate::ledger::{Ledger, verify_log};
use crate::log::{AnyLog, FjallLog, PostgresLog, SchemaPolicy};
use crate::wire::report::{AccessReport, ReportFormat};

mod backup;
pub mod config;
mod output;
mod progress;

pub use output::{VerdictFormat, ViewFormat};

/// Prints a line to standard output. A reader that went away (`keyledger … | head`) ends
/// the command quietly and successfully, as for other command-line tools, rather than in
/// a panic; any other failure to write is an error.
macro_rules! say {
    ($($arg:tt)*) => { emit(format_args!($($arg)*)) };
}

fn emit(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    match out.write_fmt(line).and_then(|()| out.write_all(b"\n")) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("error: cannot write to standard output: {error}");
            std::process::exit(1);
        }
    }
}

/// Writes bytes to standard output as they are (a text table or CSV that ends its own
/// lines), with [`emit`]'s handling of a reader that went away.
fn print_raw(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("error: cannot write to standard output: {error}");
            std::process::exit(1);
        }
    }
}

/// keyledger: event-sourced API keys and permissions, with a provable audit trail.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// When to sign checkpoints, and with which key.
#[derive(Debug, clap::Args)]
pub struct CheckpointArgs {
    /// Sign a checkpoint of the log once this many records were appended since the last.
    #[arg(long, default_value_t = CheckpointConfig::default().every)]
    checkpoint_every: u64,
    /// Sign a checkpoint this often (seconds), if records were appended since the last.
    #[arg(long, default_value_t = CheckpointConfig::default().interval.as_secs_f64())]
    checkpoint_interval_secs: f64,
    /// The Ed25519 signing key file (64 hex digits). Default: `signing-key` in the data
    /// directory, created when missing.
    #[arg(long, value_name = "FILE")]
    signing_key: Option<PathBuf>,
}

impl From<CheckpointArgs> for CheckpointConfig {
    fn from(args: CheckpointArgs) -> Self {
        let interval = Duration::try_from_secs_f64(args.checkpoint_interval_secs).unwrap_or(Duration::from_secs(60));
        CheckpointConfig { every: args.checkpoint_every, interval, signing_key: args.signing_key }
    }
}

/// Where the log is kept when it is not in the data directory: a PostgreSQL database.
#[derive(Debug, clap::Args)]
pub struct DatabaseArgs {
    /// Keep the log and the checkpoints in this PostgreSQL database (a `postgres://` URL
    /// or `key=value` pairs; a password left out is read from PGPASSWORD) instead of the
    /// data directory, which then holds only the signing key and snapshots.
    // A secret: the URL may hold a password (`config print` redacts it).
    #[arg(long, value_name = "URL", hide_env_values = true)]
    database_url: Option<String>,
}

impl DatabaseArgs {
    /// The database, opened under `schema`, if one was given.
    fn config(self, schema: SchemaPolicy) -> Option<DatabaseConfig> {
        self.database_url.map(|url| DatabaseConfig { url, schema })
    }
}

/// A database and whether to migrate its schema, for the commands that start a ledger.
#[derive(Debug, clap::Args)]
pub struct MigratableDatabaseArgs {
    /// Where the log is kept.
    #[command(flatten)]
    database: DatabaseArgs,
    /// Apply the database schema's missing migrations before starting. Without it, a
    /// database whose schema is older than this keyledger's is refused.
    #[arg(long, requires = "database_url")]
    migrate: bool,
}

impl MigratableDatabaseArgs {
    fn config(self) -> Option<DatabaseConfig> {
        let schema = if self.migrate { SchemaPolicy::Migrate } else { SchemaPolicy::RequireCurrent };
        self.database.config(schema)
    }
}

/// The options of `serve`.
/// The options of `serve`. Each is also read from `KEYLEDGER_<NAME>` and from the
/// `--config` file: see [`config`].
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A TOML file of options: each key is a flag's long name with `_` for `-`
    /// (`data_dir = "/var/lib/keyledger"`, `trusted_proxy = ["10.0.0.1"]`). Precedence:
    /// flag > environment (`KEYLEDGER_<NAME>`, e.g. KEYLEDGER_DATA_DIR) > file > default.
    /// An unknown key is an error.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The data directory (created if missing).
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Where the log is kept, if not in the data directory.
    #[command(flatten)]
    database: MigratableDatabaseArgs,
    /// The address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Serve Prometheus metrics (`/metrics`) on this address instead of the main one
    /// (which then answers 404 for it); port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
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
    /// Milliseconds a client may take to send a request's head, and again its body (408
    /// past either).
    #[arg(long, default_value_t = 5000)]
    request_timeout_ms: u64,
    /// Seconds an idle keep-alive connection is kept.
    #[arg(long, default_value_t = 5)]
    keep_alive_secs: u64,
    /// The most bytes of keys and answers the idempotency cache holds; the oldest
    /// answers are forgotten first.
    #[arg(long, default_value_t = Limits::default().idempotency_cache_bytes)]
    idempotency_cache_bytes: usize,
    /// When to sign checkpoints, and with which key.
    #[command(flatten)]
    checkpoints: CheckpointArgs,
    /// Seconds between records of key usage (one KeyUsageIntervalRecorded holding every
    /// key used since the last, split every 4,096 keys); pending usage is also recorded
    /// at a graceful stop.
    #[arg(long, default_value_t = app::DEFAULT_KEY_USAGE_INTERVAL.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    key_usage_interval_secs: u64,
    /// Seconds of a key's window for recording refused admin requests: at most 3 are
    /// recorded per key per window, and the count of the rest goes into the next one.
    #[arg(long, default_value_t = DEFAULT_WINDOW.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    denial_window_secs: u64,
    /// Milliseconds a change feed stream (GET /v1/audit/watch) stays silent before it
    /// sends a heartbeat comment.
    #[arg(long, default_value_t = crate::http::watch::DEFAULT_HEARTBEAT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(10..))]
    watch_heartbeat_ms: u64,
    /// Serve HTTPS (TLS 1.3 and 1.2, HTTP/2 and HTTP/1.1) with this certificate chain
    /// (PEM, the server's certificate first). Needs --tls-key. Reloaded when the file
    /// changes and on SIGHUP; a new certificate that cannot be used is refused and the
    /// old one kept.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Verify client certificates (mutual TLS) against these authorities (PEM). Clients
    /// without one are still accepted, except where --require-client-cert-for says.
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// Where a client certificate is required: `checks` (/v1/check, /v1/authorize), `admin`
    /// (every other /v1/ operation) or `all` (the handshake itself). Needs --tls-client-ca.
    #[arg(long, value_enum, value_name = "SCOPE")]
    require_client_cert_for: Option<crate::tls::ClientCertScope>,
    /// Seconds between checks of the certificate and key files for a change.
    #[arg(long, default_value_t = crate::tls::DEFAULT_RELOAD_INTERVAL.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    tls_reload_interval_secs: u64,
    /// Serve plain HTTP on a non-loopback address without the start-up warning.
    #[arg(long)]
    allow_plain_http: bool,
    /// Seconds a console session (/console/) may stay unused before it ends.
    #[arg(long, default_value_t = crate::console::session::DEFAULT_IDLE_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    console_idle_timeout_secs: u64,
    /// Refuse a change that grants access (activate functions, assign a role, enable a
    /// user, set event access, add an event to a group, generate or rotate a key) without
    /// a Keyledger-Justification header: 422 justification_required. Creations of empty
    /// things and removals never need one.
    #[arg(long)]
    require_justification: bool,
    /// This node's id among the nodes serving one database (--database-url): its row in
    /// the heartbeat table, and what Keyledger-Nodes-Pending names. Default: the host
    /// name and the process id.
    #[arg(long, value_name = "ID")]
    node_id: Option<String>,
    /// Milliseconds after which a node whose heartbeat is older is not waited for, and a
    /// node that has not reached the database answers checks as --stale-checks says.
    #[arg(long, default_value_t = crate::ledger::tail::DEFAULT_NODE_TIMEOUT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(100..))]
    node_timeout_ms: u64,
    /// What a node that has not reached the database for --node-timeout-ms does with
    /// checks: `fail-closed` refuses them (503 node_stale), `serve-stale` answers from its
    /// view as it stands.
    #[arg(long, value_enum, default_value_t = StaleChecksArg::FailClosed)]
    stale_checks: StaleChecksArg,
    /// Milliseconds between reads of the log's head when no notification came.
    #[arg(long, default_value_t = crate::ledger::tail::DEFAULT_POLL_INTERVAL.as_millis() as u64, value_parser = clap::value_parser!(u64).range(5..))]
    tail_poll_ms: u64,
    /// The longest a request with Keyledger-Min-Position (or min_position) waits for this
    /// node to apply that position, in milliseconds, before a 503 position_not_reached.
    #[arg(long, default_value_t = crate::http::position::DEFAULT_MAX_WAIT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    max_position_wait_ms: u64,
}

/// `--stale-checks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StaleChecksArg {
    /// Refuse checks (503 node_stale).
    FailClosed,
    /// Answer checks from the view as it stands.
    ServeStale,
}

impl TryFrom<ServeArgs> for Config {
    type Error = String;

    fn try_from(args: ServeArgs) -> Result<Self, String> {
        let throttle = ThrottleConfig {
            burst: args.failed_check_burst,
            per_minute: args.failed_checks_per_minute,
            trusted_proxies: args.trusted_proxies,
        };
        let limits = Limits {
            max_body_bytes: args.max_body_bytes,
            max_connections: args.max_connections,
            request_timeout: Duration::from_millis(args.request_timeout_ms),
            keep_alive: Duration::from_secs(args.keep_alive_secs),
            idempotency_cache_bytes: args.idempotency_cache_bytes,
        };
        let tls = match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsConfig {
                cert,
                key,
                client_ca: args.tls_client_ca,
                require_client_cert_for: args.require_client_cert_for,
                reload_interval: Duration::from_secs(args.tls_reload_interval_secs),
            }),
            (None, None) if args.tls_client_ca.is_none() && args.require_client_cert_for.is_none() => None,
            (None, None) => {
                return Err("--tls-client-ca and --require-client-cert-for need --tls-cert and --tls-key".into());
            }
            (Some(_), None) => return Err("--tls-cert needs --tls-key, the certificate's private key".into()),
            (None, Some(_)) => return Err("--tls-key needs --tls-cert, the certificate it belongs to".into()),
        };
        if tls.as_ref().is_some_and(|tls| tls.require_client_cert_for.is_some() && tls.client_ca.is_none()) {
            return Err(
                "--require-client-cert-for needs --tls-client-ca, the authorities to verify client certificates with"
                    .into(),
            );
        }
        Ok(Config {
            data_dir: args.data_dir,
            database: args.database.config(),
            listen: args.listen,
            metrics_listen: args.metrics_listen,
            workers: args.workers,
            snapshot_every: args.snapshot_every,
            checkpoints: args.checkpoints.into(),
            throttle,
            limits,
            key_usage_interval: Duration::from_secs(args.key_usage_interval_secs),
            denial_window: Duration::from_secs(args.denial_window_secs),
            watch_heartbeat: Duration::from_millis(args.watch_heartbeat_ms),
            tls,
            allow_plain_http: args.allow_plain_http,
            console_idle_timeout: Duration::from_secs(args.console_idle_timeout_secs),
            require_justification: args.require_justification,
            nodes: app::NodeConfig {
                tail: crate::ledger::tail::TailConfig {
                    node_id: args.node_id.unwrap_or_else(default_node_id),
                    node_timeout: Duration::from_millis(args.node_timeout_ms),
                    poll_interval: Duration::from_millis(args.tail_poll_ms),
                    stale_checks: match args.stale_checks {
                        StaleChecksArg::FailClosed => crate::ledger::tail::StaleChecks::FailClosed,
                        StaleChecksArg::ServeStale => crate::ledger::tail::StaleChecks::ServeStale,
                    },
                },
                max_position_wait: Duration::from_millis(args.max_position_wait_ms),
            },
        })
    }
}

/// A node id when none is given: the host name and the process id.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    format!("{host}-{}", std::process::id())
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API. On an empty data directory, first create the Administrator and
    /// print its key once.
    Serve(ServeArgs),
    /// Initialise a data directory without serving; print the Administrator's key alone on
    /// the last line of standard output. Fails on an initialised directory.
    Init {
        /// The data directory (created if missing).
        #[arg(long)]
        data_dir: PathBuf,
        /// Where the log is kept, if not in the data directory.
        #[command(flatten)]
        database: MigratableDatabaseArgs,
        /// The Ed25519 signing key file. Default: `signing-key` in the data directory,
        /// created.
        #[arg(long, value_name = "FILE")]
        signing_key: Option<PathBuf>,
    },
    /// Verify a data directory's log offline: the hash chain, the Merkle tree, and every
    /// signed checkpoint against the records. Exits 1 if anything fails.
    VerifyLog {
        /// The data directory.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Where the log is kept, if not in the data directory.
        #[command(flatten)]
        database: DatabaseArgs,
        /// How to print the verdict.
        #[arg(long, value_enum, default_value_t)]
        format: VerdictFormat,
    },
    /// Export the audit trail of a stopped service's data directory as a bundle: every
    /// record exactly as stored, every signed checkpoint, a new checkpoint at the full size,
    /// and the public key. Verify it anywhere with `keyledger verify`.
    Export {
        /// The data directory.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Where the log is kept, if not in the data directory.
        #[command(flatten)]
        database: DatabaseArgs,
        /// Where to write the bundle; `-` for standard output.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The signing key file, if the service was given one.
        #[arg(long, value_name = "FILE")]
        signing_key: Option<PathBuf>,
    },
    /// Verify an audit bundle offline: hashes, chain, Merkle roots, signatures, replayed
    /// views, and consistency with a checkpoint you trust.
    ///
    /// The signer must be pinned with `--public-key` or `--trusted-checkpoint`: anyone can
    /// edit a bundle and re-sign it with a key of their own.
    ///
    /// Exit status: 0 valid under a pinned signer (or under the bundle's own key with
    /// `--trust-bundle-key`); 1 invalid, naming the first line that fails; 2 a usage
    /// error; 3 intact but the signer was not pinned, so nothing proves who signed it.
    Verify {
        /// The bundle.
        bundle: PathBuf,
        /// How the signer is pinned.
        #[command(flatten)]
        pin: Pin,
        /// How to print the verdict.
        #[arg(long, value_enum, default_value_t)]
        format: VerdictFormat,
    },
    /// Print the permission view at a position or a time from a bundle alone, after
    /// verifying the bundle as `verify` does (the signer pinned the same way).
    ///
    /// Exit status: 0 printed; 1 the bundle does not verify or cannot be read; 2 a usage
    /// error; 3 the signer was not pinned (nothing is printed).
    Replay {
        /// The bundle.
        bundle: PathBuf,
        /// Where to replay to: a log position, such as 42 (0 is before the first record), or
        /// an RFC 3339 time, such as 2027-01-31T17:00:00Z. Default: after the last record.
        ///
        /// A position is a record's sequence number, as `Keyledger-Position` gives it: the
        /// view just after that record. A time needs its offset and may have
        /// milliseconds: the view after the last record at or before it. Key states are
        /// judged at that time (at the position's record time, or now by default).
        ///
        /// Examples: `--at 42`, `--at 0`, `--at 2027-01-31T17:00:00Z`,
        /// `--at 2027-01-31T18:00:00+01:00` (the same instant), `--at 2027-01-31T17:00:00.250Z`.
        #[arg(long, value_name = "POSITION|TIME")]
        at: Option<String>,
        /// How the signer is pinned.
        #[command(flatten)]
        pin: Pin,
        /// The output format: text (tables), json (as `getPermissionsAt` answers) or csv
        /// (one row per user). Default: text on a terminal, json otherwise.
        #[arg(long, value_enum)]
        format: Option<ViewFormat>,
    },
    /// Recover administration of a stopped service's data directory, when no working
    /// administrator key is left: append one `AdministratorRecovered` record (actor
    /// `system`, with your reason) that creates a new user, "Recovered administrator", with
    /// a new role holding every admin function, sign a checkpoint covering it, and print
    /// the new key alone on the last line of standard output, once. Nothing existing is
    /// changed. Fails while a server uses the directory.
    RecoverAdmin {
        /// The data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Where the log is kept, if not in the data directory.
        #[command(flatten)]
        database: DatabaseArgs,
        /// Why administration is recovered (1 to 500 characters), kept in the record.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// The signing key file, if the service was given one.
        #[arg(long, value_name = "FILE")]
        signing_key: Option<PathBuf>,
    },
    /// Copy a stopped service's fjall log (every record's bytes, the Merkle tree, the
    /// signed checkpoints) into an empty PostgreSQL database, in one transaction, after
    /// applying the database schema; then verify the copy: the chain, the Merkle root and
    /// every checkpoint. Refuses a database that already holds a log. The signing key and
    /// snapshots stay in the data directory: serve the copy with the same --data-dir and
    /// --database-url.
    Migrate {
        /// The data directory holding the fjall log.
        #[arg(long)]
        data_dir: PathBuf,
        /// The PostgreSQL database to copy into.
        #[arg(long, value_name = "URL")]
        database_url: String,
    },
    /// Print the public half of a data directory's signing key.
    SigningKey {
        /// The data directory.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// The signing key file, if the service was given one.
        #[arg(long, value_name = "FILE")]
        signing_key: Option<PathBuf>,
    },
    /// Print the access review report of a data directory, offline: one row per user with
    /// roles, functions, event access, key, last use and review flags. The whole log is
    /// verified and replayed first. A data directory must not be in use by a running server
    /// (a database may be).
    AccessReport {
        /// The data directory.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Where the log is kept, if not in the data directory.
        #[command(flatten)]
        database: DatabaseArgs,
        /// The output format: text (a table), json (as `accessReport` answers) or csv (as
        /// `accessReport` answers with `format=csv`). Default: text on a terminal, json
        /// otherwise.
        #[arg(long, value_enum)]
        format: Option<ViewFormat>,
        /// The window of the unused access findings (functions granted but not used, and
        /// keys not used), in days ending now: 1 to 365.
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=365))]
        unused_days: u32,
    },
    /// Look up a key found where it should not be, offline: read the key (or the 64
    /// hexadecimal characters of its hash) from the first line of standard input, and
    /// print, as JSON like `lookupKey` answers, its id, owner, state, every record about it
    /// and its use. The whole log is verified and replayed first; nothing is written (the
    /// HTTP `lookupKey` records the lookup, this does not). The key is never printed. The
    /// directory must not be in use by a running server.
    LookupKey {
        /// The data directory.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Where the log is kept, if not in the data directory.
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Back up a running service: download its audit bundle (`exportAuditBundle`, a
    /// consistent signed copy of the log) into a file, written whole or not at all. The
    /// key (with `security.audit.read`) comes from --key-file or KEYLEDGER_KEY, never
    /// from the command line. With --public-key or --trusted-checkpoint, the bundle is
    /// verified before it is kept.
    Backup {
        /// The service's base URL, such as https://keyledger.internal:8443.
        #[arg(long)]
        url: String,
        /// Where to write the bundle.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// A file holding the key; default: the KEYLEDGER_KEY environment variable.
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// The authorities (PEM) to verify the server's certificate with; default: the
        /// public web's.
        #[arg(long, value_name = "FILE")]
        ca_cert: Option<PathBuf>,
        /// A client certificate (PEM), for a service that requires one (mutual TLS).
        #[arg(long, value_name = "FILE", requires = "client_key")]
        client_cert: Option<PathBuf>,
        /// The private key (PEM) of --client-cert.
        #[arg(long, value_name = "FILE", requires = "client_cert")]
        client_key: Option<PathBuf>,
        /// How the signer is pinned, to verify the bundle before keeping it (optional).
        #[command(flatten)]
        pin: Pin,
    },
    /// Rebuild a data directory from an audit bundle (a backup: `exportAuditBundle`, taken
    /// while the service runs), after verifying it as `verify` does under a pinned signer.
    /// Every record is restored byte for byte, with every checkpoint; the directory then
    /// opens as the original did at the bundle's last position. Refuses a directory that
    /// is not empty.
    ///
    /// Exit status: 0 restored; 1 the bundle does not verify or cannot be written; 2 a
    /// usage error; 3 the signer was not pinned (nothing is written).
    Restore {
        /// The bundle.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The data directory to create (new, or empty).
        #[arg(long)]
        data_dir: PathBuf,
        /// The service's signing key file (its private half is never in a bundle: back it
        /// up apart). It must be the bundle's signer; it is copied into the directory.
        #[arg(long, value_name = "FILE")]
        signing_key: PathBuf,
        /// How the signer is pinned (required: --public-key or --trusted-checkpoint).
        #[command(flatten)]
        pin: Pin,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Show the configuration `serve` would run with.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// The subcommands of `config`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration of `serve` given these options, the environment
    /// and the --config file, as a TOML file (which --config reads back) with the source
    /// of each value; secrets are redacted. Checks the options as `serve` does.
    Print(ServeArgs),
}

/// Why a command failed: [`main`] prints it once, as `error: …` on standard error, and
/// exits with its status (1 unless said otherwise).
#[derive(Debug)]
pub struct CliError {
    message: String,
    status: u8,
}

impl CliError {
    /// A failure that exits with `status` rather than 1.
    fn with_status(status: u8, message: impl std::fmt::Display) -> Self {
        CliError { message: message.to_string(), status }
    }
}

/// Every error that can be displayed is a failure with status 1, so a subcommand ends on
/// one with `?`. `CliError` is not itself `Display`, so this does not clash with
/// `From<T> for T`.
impl<E: std::fmt::Display> From<E> for CliError {
    fn from(error: E) -> Self {
        CliError { message: error.to_string(), status: 1 }
    }
}

/// What a subcommand ends with: the exit status of its verdict (0, or 1 for an invalid
/// log or bundle, 3 for an unpinned signer), or the error that stopped it.
type Outcome = Result<ExitCode, CliError>;

/// Runs the command line.
pub fn main() -> ExitCode {
    let parsed = config::parse(Cli::command(), std::env::args_os().collect()).and_then(|(matches, effective)| {
        let cli = Cli::from_arg_matches(&matches).map_err(|error| error.to_string())?;
        Ok((cli, effective.unwrap_or_default()))
    });
    let outcome = match parsed {
        Ok((cli, effective)) => run(cli.command, effective),
        Err(message) => Err(CliError::with_status(2, message)),
    };
    // Log lines still buffered go out before the process ends (see `telemetry`).
    crate::telemetry::flush();
    match outcome {
        Ok(status) => status,
        Err(error) => {
            eprintln!("error: {}", error.message);
            ExitCode::from(error.status)
        }
    }
}

fn run(command: Command, effective: config::Effective) -> Outcome {
    match command {
        Command::Serve(args) => serve(args.try_into().map_err(|error| CliError::with_status(2, error))?),
        Command::Config(ConfigCommand::Print(args)) => {
            Config::try_from(args).map_err(|error| CliError::with_status(2, error))?;
            print_raw(effective.to_toml().as_bytes());
            Ok(ExitCode::SUCCESS)
        }
        Command::Init { data_dir, database, signing_key } => {
            init(data_dir, database.config(), CheckpointConfig { signing_key, ..CheckpointConfig::default() })
        }
        Command::VerifyLog { data_dir, database, format } => {
            verify(data_dir, database.config(SchemaPolicy::RequireCurrent).as_ref(), format)
        }
        Command::Export { data_dir, database, out, signing_key } => {
            export(&data_dir, database.config(SchemaPolicy::RequireCurrent).as_ref(), &out, signing_key)
        }
        Command::Verify { bundle, pin, format } => verify_bundle(&bundle, &pin, format),
        Command::Replay { bundle, at, pin, format } => {
            replay(&bundle, at.as_deref(), &pin, ViewFormat::or_default(format))
        }
        Command::RecoverAdmin { data_dir, database, reason, signing_key } => recover_admin(
            &data_dir,
            database.config(SchemaPolicy::RequireCurrent).as_ref(),
            &reason,
            CheckpointConfig { signing_key, ..CheckpointConfig::default() },
        ),
        Command::Migrate { data_dir, database_url } => migrate(&data_dir, &database_url),
        Command::SigningKey { data_dir, signing_key } => {
            let path = signing_key.unwrap_or_else(|| data_dir.join(crate::checkpoint::SIGNING_KEY_FILE));
            say!("{}", crate::checkpoint::Signer::load(&path)?.public_key().to_hex());
            Ok(ExitCode::SUCCESS)
        }
        Command::AccessReport { data_dir, database, format, unused_days } => access_report(
            &data_dir,
            database.config(SchemaPolicy::RequireCurrent).as_ref(),
            ViewFormat::or_default(format),
            unused_days,
        ),
        Command::LookupKey { data_dir, database } => {
            lookup_key(&data_dir, database.config(SchemaPolicy::RequireCurrent).as_ref())
        }
        Command::Backup { url, out, key_file, ca_cert, client_cert, client_key, pin } => {
            let key = match key_file {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|error| format!("{}: {error}", path.display()))?
                    .trim()
                    .to_owned(),
                None => std::env::var("KEYLEDGER_KEY")
                    .map_err(|_| "give the key with --key-file FILE or the KEYLEDGER_KEY environment variable")?,
            };
            let client = client_cert.as_deref().zip(client_key.as_deref());
            let source = backup::Source { url: &url, key: &key, ca_cert: ca_cert.as_deref(), client };
            back_up(&source, &out, &pin)
        }
        Command::Restore { from, data_dir, signing_key, pin } => restore(&from, &data_dir, &signing_key, &pin),
        Command::Openapi => {
            say!("{}", crate::http::openapi::document_json().trim_end());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn serve(config: Config) -> Outcome {
    crate::telemetry::init("info");
    let started = std::time::Instant::now();
    // Bind first: a start that cannot listen must leave the data directory as it found it,
    // so that the next start on a free address bootstraps it and prints the key.
    // The TLS certificate is loaded then too, for the same reason.
    let listeners = app::Listeners::bind_with_tls(&config.listen, config.tls.as_ref())
        .and_then(|listeners| listeners.with_metrics(config.metrics_listen.as_deref()))
        .map_err(|error| {
            let remedy = match error {
                app::StartError::Bind { .. } => {
                    ": choose a free address with --listen (or --metrics-listen) and start again"
                }
                _ => "",
            };
            format!("{error}; nothing was initialised or changed in {}{remedy}", config.data_dir.display())
        })?;
    let (ledger, secret) =
        app::open_ledger(&config.data_dir, config.database.as_ref(), config.snapshot_every, &config.checkpoints)?;
    actix_web::rt::System::new().block_on(async move {
        let mut application = Application::build(&config, listeners, ledger, secret)?;
        let mut stdout = std::io::stdout().lock();
        if let Some(secret) = application.take_bootstrap_secret() {
            // Shown once: the log keeps only its hash.
            let place = match &config.database {
                Some(_) => "the database".to_owned(),
                None => config.data_dir.display().to_string(),
            };
            let _ = writeln!(stdout, "initialised {place}: store this key now, it is not shown again");
            let _ = writeln!(stdout, "admin key: {}", secret.expose());
        }
        if let Some(metrics) = application.metrics_address() {
            let _ = writeln!(stdout, "metrics on http://{metrics}/metrics");
        }
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        let _ = writeln!(stdout, "listening on {scheme}://{}", application.address());
        let _ = stdout.flush();
        drop(stdout);
        tracing::info!(
            address = %application.address(),
            data_dir = %config.data_dir.display(),
            startup_ms = started.elapsed().as_millis(),
            "serving"
        );
        crate::systemd::notify("READY=1");
        application.run().await?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn init(data_dir: PathBuf, database: Option<DatabaseConfig>, checkpoints: CheckpointConfig) -> Outcome {
    crate::telemetry::init("warn");
    let (admin, public_key, secret) = app::init(&data_dir, database.as_ref(), &checkpoints)?;
    match database {
        Some(_) => say!("initialised the database (signing key and snapshots in {})", data_dir.display()),
        None => say!("initialised {}", data_dir.display()),
    }
    say!("admin user: {admin}");
    say!("signing key (ed25519, public): {}", public_key.to_hex());
    show_once(&secret)
}

fn recover_admin(
    data_dir: &Path,
    database: Option<&DatabaseConfig>,
    reason: &str,
    checkpoints: CheckpointConfig,
) -> Outcome {
    crate::telemetry::init("warn");
    let reason = crate::domain::RecoveryReason::parse(reason).map_err(|error| format!("--reason {error}"))?;
    let (admin, secret) = app::recover_admin(data_dir, database, &checkpoints, reason.clone())?;
    match database {
        Some(_) => say!("recovered administration of the database"),
        None => say!("recovered administration of {}", data_dir.display()),
    }
    say!("admin user: {admin} (Recovered administrator, holding every admin function)");
    say!("reason: {}", reason.as_str());
    show_once(&secret)
}

/// Prints a new administrator key, alone on the last line of standard output: the only
/// time it is shown.
fn show_once(secret: &crate::domain::KeySecret) -> Outcome {
    say!("store the key below now: it is not shown again");
    say!("{}", secret.expose());
    Ok(ExitCode::SUCCESS)
}

/// Fails unless `data_dir` holds a log: commands that read one must not create one.
fn require_data_dir(data_dir: &Path) -> Result<(), String> {
    if data_dir.join("log").is_dir() {
        Ok(())
    } else {
        Err(format!("no keyledger data directory at {} (it has no log/)", data_dir.display()))
    }
}

fn export(data_dir: &Path, database: Option<&DatabaseConfig>, out: &Path, signing_key: Option<PathBuf>) -> Outcome {
    crate::telemetry::init("warn");
    if database.is_none() {
        require_data_dir(data_dir)?;
    }
    let checkpoints = CheckpointConfig { signing_key, ..CheckpointConfig::default() };
    let (ledger, _) = app::open_ledger(data_dir, database, app::DEFAULT_SNAPSHOT_EVERY, &checkpoints)?;
    let last = ledger.checkpoint_blocking()?;
    let all = ledger.checkpoints()?;
    let key = ledger.public_key().ok_or("the ledger has no signing key")?;
    let mut sink: Box<dyn Write> = if out.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?)
    };
    // A line per record and per checkpoint, and the public key's.
    let lines = last.size + all.len() as u64 + 2;
    let bar = progress::bar("exporting", lines, progress::Unit::Records);
    let mut writer = std::io::BufWriter::new(progress::LineProgress::new(&mut sink, bar.clone()));
    let exported = crate::bundle::export(ledger.log(), &key, &all, &last, &mut writer)?;
    writer.flush()?;
    drop(writer);
    bar.finish_and_clear();
    eprintln!(
        "exported {} records and {} checkpoints; the last covers size {} with root {}",
        exported.records, exported.checkpoints, last.size, last.root
    );
    Ok(ExitCode::SUCCESS)
}

/// The exit status of `verify` and `replay` for an intact bundle whose signer was not
/// pinned.
const EXIT_UNPINNED: u8 = 3;

/// How a reviewer pins the signer of a bundle, as `verify` and `replay` take it.
#[derive(Debug, clap::Args)]
pub struct Pin {
    /// The service's public key (64 hex digits, or a file holding them), from
    /// `getSigningKey` or `keyledger signing-key`, saved when you were onboarded.
    #[arg(long, value_name = "KEY")]
    public_key: Option<String>,
    /// A checkpoint you kept from earlier or got from elsewhere (a file holding one
    /// checkpoint line, as `getCheckpoint` returns it): the bundle must extend it, and
    /// its signature pins the signer.
    #[arg(long, value_name = "FILE")]
    trusted_checkpoint: Option<PathBuf>,
    /// Accept the key carried inside the bundle as the signer, without a pin. The
    /// verdict then says so: it proves the bundle is intact, not who signed it.
    #[arg(long)]
    trust_bundle_key: bool,
}

impl Pin {
    /// Whether the signer is pinned by something the reviewer brought.
    fn is_pinned(&self) -> bool {
        self.public_key.is_some() || self.trusted_checkpoint.is_some()
    }

    /// The options to verify with.
    fn options(&self) -> Result<crate::bundle::VerifyOptions, String> {
        let public_key = self.public_key.as_deref().map(read_public_key).transpose()?;
        let trusted = self.trusted_checkpoint.as_deref().map(read_checkpoint).transpose()?;
        Ok(crate::bundle::VerifyOptions { public_key, trusted })
    }
}

/// What `verify` and `replay` say when the signer was not pinned.
const UNPINNED: &str = "the signer was not pinned: the bundle carries its own public key, and anyone who edits \
     records can re-sign the checkpoints with a key of their own. Pin it with --public-key KEY (the service's key, \
     from getSigningKey or `keyledger signing-key`, saved when you were onboarded) or --trusted-checkpoint FILE; \
     or pass --trust-bundle-key to accept the bundle's own key knowingly";

/// What the verdict says when the reviewer accepted the bundle's own key.
const TRUSTED_BUNDLE_KEY: &str = "signer NOT pinned: taken from the bundle itself (--trust-bundle-key); this proves \
     the bundle is intact, not who signed it";

/// Opens a bundle for reading, behind a progress bar of its bytes.
fn open_bundle(bundle: &Path, what: &'static str) -> Result<(impl std::io::BufRead, indicatif::ProgressBar), String> {
    let file = std::fs::File::open(bundle).map_err(|error| format!("{}: {error}", bundle.display()))?;
    let size = file.metadata().map_or(0, |metadata| metadata.len());
    let bar = progress::bar(what, size, progress::Unit::Bytes);
    Ok((std::io::BufReader::new(bar.wrap_read(file)), bar))
}

fn verify_bundle(bundle: &Path, pin: &Pin, format: VerdictFormat) -> Outcome {
    let options = pin.options()?;
    let (reader, bar) = open_bundle(bundle, "verifying")?;
    let result = crate::bundle::verify(reader, &options);
    bar.finish_and_clear();
    let pinned = pin.is_pinned();
    let status = match &result {
        Ok(_) if !pinned && !pin.trust_bundle_key => ExitCode::from(EXIT_UNPINNED),
        Ok(_) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    };
    if format == VerdictFormat::Json {
        say!("{}", bundle_verdict_json(&result, &options, pin));
        return Ok(status);
    }
    match result {
        Ok(summary) if !pinned && !pin.trust_bundle_key => {
            say!(
                "UNPINNED: {} records and {} signed checkpoints are intact, but {UNPINNED}",
                summary.records,
                summary.checkpoints
            );
            say!("bundle's own public key: {}", summary.public_key.to_hex());
        }
        Ok(summary) => {
            say!("valid: {} records, {} signed checkpoints", summary.records, summary.checkpoints);
            say!("public key: {}", summary.public_key.to_hex());
            let last = &summary.last;
            say!("last checkpoint: size {} root {} at {}", last.size, last.root, last.time);
            if let Some(trusted) = &options.trusted {
                say!("consistent with the trusted checkpoint at size {} (root {})", trusted.size, trusted.root);
            }
            if !pinned {
                say!("{TRUSTED_BUNDLE_KEY}");
            }
            for recovery in &summary.recoveries {
                say!(
                    "administrator recovered (keyledger recover-admin) at record {}, {}: user {}, reason: {}",
                    recovery.seq,
                    recovery.at,
                    recovery.user_id,
                    recovery.reason
                );
            }
        }
        Err(failure) => say!("INVALID at {failure}"),
    }
    Ok(status)
}

/// `verify --format json`: the verdict (`valid`, `unpinned` or `invalid`) and what the
/// text says, as one object.
fn bundle_verdict_json(
    result: &Result<crate::bundle::Summary, crate::bundle::Failure>,
    options: &crate::bundle::VerifyOptions,
    pin: &Pin,
) -> serde_json::Value {
    use serde_json::json;
    match result {
        Ok(summary) => {
            let verdict = if pin.is_pinned() || pin.trust_bundle_key { "valid" } else { "unpinned" };
            let last = &summary.last;
            json!({
                "verdict": verdict,
                "records": summary.records,
                "checkpoints": summary.checkpoints,
                "public_key": summary.public_key.to_hex(),
                "signer_pinned": pin.is_pinned(),
                "last_checkpoint": {"size": last.size, "root": last.root.to_string(), "time": last.time.to_string()},
                "trusted_checkpoint": options.trusted.as_ref().map(|trusted| json!({"size": trusted.size, "root": trusted.root.to_string()})),
                "recoveries": summary.recoveries.iter().map(|recovery| json!({
                    "seq": recovery.seq,
                    "at": recovery.at.to_string(),
                    "user_id": recovery.user_id.to_string(),
                    "reason": recovery.reason,
                })).collect::<Vec<_>>(),
            })
        }
        Err(failure) => json!({
            "verdict": "invalid",
            "failure": {"line": failure.line, "place": failure.place, "reason": failure.reason},
        }),
    }
}

fn back_up(source: &backup::Source<'_>, out: &Path, pin: &Pin) -> Outcome {
    let options = pin.options()?;
    let partial = backup::partial_path(out);
    let downloaded = backup::download(source, &partial).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    if pin.is_pinned() {
        let file = std::fs::File::open(&partial).map_err(|error| format!("{}: {error}", partial.display()))?;
        if let Err(failure) = crate::bundle::verify(std::io::BufReader::new(file), &options) {
            let _ = std::fs::remove_file(&partial);
            return Err(format!("the downloaded bundle does not verify, so it was not kept: {failure}").into());
        }
    }
    std::fs::rename(&partial, out).map_err(|error| format!("{}: {error}", out.display()))?;
    let verified = if pin.is_pinned() { ", verified under the pinned signer" } else { "" };
    say!("backed up {downloaded} bytes into {}{verified}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn restore(bundle: &Path, data_dir: &Path, signing_key: &Path, pin: &Pin) -> Outcome {
    crate::telemetry::init("warn");
    if !pin.is_pinned() {
        return Err(CliError::with_status(
            EXIT_UNPINNED,
            "not restored: pin the signer with --public-key KEY or --trusted-checkpoint FILE; a backup is restored \
             only when it provably comes from your service",
        ));
    }
    let options = pin.options()?;
    let bytes = std::fs::read(bundle).map_err(|error| format!("{}: {error}", bundle.display()))?;
    let restored = crate::restore::restore(&bytes, &options, data_dir, signing_key)?;
    say!(
        "restored {} records and {} checkpoints into {}; the last checkpoint covers size {} with root {}",
        restored.records,
        restored.checkpoints,
        data_dir.display(),
        restored.last.size,
        restored.last.root
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads `--at`: digits are a position, anything else an RFC 3339 time.
fn parse_at(at: Option<&str>) -> Result<crate::history::At, String> {
    use crate::history::At;
    match at {
        None => Ok(At::Head),
        Some(text) if text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse().map(At::Position).map_err(|_| format!("--at {text} is not a position"))
        }
        Some(text) => Timestamp::parse(text)
            .map(At::Time)
            .map_err(|_| format!("--at {text} is neither a position nor an RFC 3339 time")),
    }
}

fn replay(bundle: &Path, at: Option<&str>, pin: &Pin, format: ViewFormat) -> Outcome {
    let at = parse_at(at)?;
    let options = pin.options()?;
    let bytes = std::fs::read(bundle).map_err(|error| format!("{}: {error}", bundle.display()))?;
    let bar = progress::bar("verifying", bytes.len() as u64, progress::Unit::Bytes);
    let verified = crate::bundle::verify(std::io::BufReader::new(bar.wrap_read(bytes.as_slice())), &options);
    bar.finish_and_clear();
    verified.map_err(|failure| format!("the bundle does not verify, so it is not replayed: {failure}"))?;
    if !pin.is_pinned() {
        if !pin.trust_bundle_key {
            return Err(CliError::with_status(EXIT_UNPINNED, format!("not replayed: {UNPINNED}")));
        }
        eprintln!("warning: {TRUSTED_BUNDLE_KEY}");
    }
    // The verified records, in a log of their own, replayed as the service would.
    let log = crate::log::MemoryLog::new();
    crate::log::EventLog::append(&log, 0, &crate::bundle::records(&bytes))?;
    let log = progress::ProgressLog::new(log, "replaying")?;
    let replayed = crate::history::state_at(&log, at)?;
    log.bar().finish_and_clear();
    let view = crate::wire::review::PermissionsAt::of(&replayed, at.as_of(&replayed, Timestamp::now()));
    match format {
        ViewFormat::Json => say!("{}", serde_json::to_string_pretty(&view)?),
        ViewFormat::Text => print_raw(output::permissions_text(&view).as_bytes()),
        ViewFormat::Csv => print_raw(output::permissions_csv(&view).as_bytes()),
    }
    Ok(ExitCode::SUCCESS)
}

/// A public key from 64 hex digits, or from a file holding them (or a public key line).
fn read_public_key(value: &str) -> Result<crate::checkpoint::PublicKey, String> {
    use crate::checkpoint::PublicKey;
    if let Some(key) = PublicKey::from_hex(value) {
        return Ok(key);
    }
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("--public-key {value} is not an ed25519 public key (64 lowercase hex digits)"));
    }
    let text = std::fs::read_to_string(value)
        .map_err(|e| format!("--public-key is neither 64 hex digits nor a readable file ({value}: {e})"))?;
    PublicKey::from_hex(text.trim())
        .or_else(|| PublicKey::parse_line(text.trim()).ok())
        .ok_or_else(|| format!("{value} holds no ed25519 public key"))
}

fn read_checkpoint(path: &Path) -> Result<crate::checkpoint::Checkpoint, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    crate::checkpoint::Checkpoint::parse_line(text.trim_end())
        .map_err(|e| format!("{} is not a checkpoint: {e}", path.display()))
}

/// Opens the log of an existing data directory, without creating one.
fn open_log(data_dir: &Path) -> Result<FjallLog, String> {
    require_data_dir(data_dir)?;
    FjallLog::open(&data_dir.join("log")).map_err(|error| error.to_string())
}

/// The log of a data directory, or the database's when one is given (for the offline
/// commands that only read it).
fn open_any_log(data_dir: &Path, database: Option<&DatabaseConfig>) -> Result<AnyLog, String> {
    match database {
        None => Ok(open_log(data_dir)?.into()),
        Some(_) => app::open_store(data_dir, database).map(|(log, _)| log).map_err(|error| error.to_string()),
    }
}

fn verify(data_dir: PathBuf, database: Option<&DatabaseConfig>, format: VerdictFormat) -> Outcome {
    if database.is_none() {
        require_data_dir(&data_dir)?;
    }
    // The checkpoints and the public key, where the data directory (or database) has them.
    let (log, store) = app::open_store(&data_dir, database)?;
    let log = progress::ProgressLog::new(log, "verifying")?;
    let checkpoints = store.all()?;
    let key = data_dir_public_key(&data_dir)?;
    let verification = verify_log(&log, &checkpoints, key.as_ref())?;
    log.bar().finish_and_clear();
    let status = if verification.is_valid() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    if format == VerdictFormat::Json {
        let value = serde_json::json!({
            "valid": verification.is_valid(),
            "size": verification.size,
            "verified": verification.verified,
            "head_hash": verification.head_hash.to_string(),
            "checkpoints": verification.checkpoints,
            "error": verification.error.as_ref().map(ToString::to_string)
                .or_else(|| (!verification.is_valid()).then(|| "records are missing".to_owned())),
        });
        say!("{value}");
        return Ok(status);
    }
    if verification.is_valid() {
        say!(
            "valid: {} records, head {}, Merkle tree intact, {} signed checkpoints match",
            verification.verified,
            verification.head_hash,
            verification.checkpoints
        );
        return Ok(ExitCode::SUCCESS);
    }
    let reason = verification.error.map_or_else(|| "records are missing".to_owned(), |e| e.to_string());
    say!("INVALID after {} of {} records: {reason}", verification.verified, verification.size);
    Ok(ExitCode::FAILURE)
}

/// The public half of the data directory's signing key, if it has one.
fn data_dir_public_key(data_dir: &Path) -> Result<Option<crate::checkpoint::PublicKey>, CliError> {
    let key_file = data_dir.join(crate::checkpoint::SIGNING_KEY_FILE);
    let signer = key_file.exists().then(|| crate::checkpoint::Signer::load(&key_file)).transpose()?;
    Ok(signer.map(|signer| signer.public_key()))
}

/// `keyledger migrate`: the fjall log of `data_dir`, verified, copied into the empty
/// database at `url` in one transaction, and the copy verified.
fn migrate(data_dir: &Path, url: &str) -> Outcome {
    use crate::log::{EventLog, Tree};
    crate::telemetry::init("warn");
    let source = open_log(data_dir)?;
    let checkpoints =
        crate::checkpoint::CheckpointStore::new(data_dir.join(crate::checkpoint::CHECKPOINTS_FILE)).all()?;
    let key = data_dir_public_key(data_dir)?;
    let before = verify_log(&source, &checkpoints, key.as_ref())?;
    if !before.is_valid() {
        let reason = before.error.map_or_else(|| "records are missing".to_owned(), |e| e.to_string());
        return Err(format!("the log in {} does not verify, so it was not copied: {reason}", data_dir.display()).into());
    }
    let target = PostgresLog::open(url, SchemaPolicy::Migrate)?;
    let lines: Vec<(u64, String)> = checkpoints.iter().map(|c| (c.size, c.to_line())).collect();
    let copied = target.import(&source, &lines)?;
    let copied_checkpoints = crate::checkpoint::CheckpointStore::in_postgres(target.checkpoint_store()).all()?;
    let after = verify_log(&target, &copied_checkpoints, key.as_ref())?;
    let head = source.head()?;
    let source_root = crate::merkle::root(&Tree(&source), head)?;
    let target_root = crate::merkle::root(&Tree(&target), head)?;
    if !after.is_valid() || copied != head || source_root != target_root || copied_checkpoints != checkpoints {
        let reason = after.error.map_or_else(|| "the roots or checkpoints differ".to_owned(), |e| e.to_string());
        return Err(format!("the copy in the database does not verify: {reason}").into());
    }
    say!(
        "migrated {copied} records and {} checkpoints; Merkle root {target_root}; the chain, the tree and every checkpoint verify",
        copied_checkpoints.len()
    );
    say!(
        "serve it with: keyledger serve --data-dir {} --database-url URL (the signing key stays there)",
        data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn lookup_key(data_dir: &Path, database: Option<&DatabaseConfig>) -> Outcome {
    crate::telemetry::init("warn");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|error| format!("cannot read standard input: {error}"))?;
    let hash = crate::http::lookup::hash_of_key_or_hash(&line).ok_or_else(|| {
        "standard input holds neither a keyledger key nor the 64 hexadecimal characters of a key hash".to_owned()
    })?;
    // No snapshots: the whole log is verified and replayed, and nothing is written.
    let ledger = Ledger::open(open_any_log(data_dir, database)?)?;
    let lookup = crate::key_history::look_up(ledger.log(), &hash)
        .map_err(|error| error.to_string())?
        .ok_or_else(|| "no key with that secret or hash was ever issued".to_owned())?;
    let answer = crate::http::lookup::KeyLookup::of(&lookup, &hash, &ledger.view(), Timestamp::now(), None)
        .ok_or_else(|| "a record about the key does not read as JSON".to_owned())?;
    let mut bytes = serde_json::to_vec_pretty(&answer).map_err(|error| error.to_string())?;
    bytes.push(b'\n');
    print_raw(&bytes);
    Ok(ExitCode::SUCCESS)
}

fn access_report(data_dir: &Path, database: Option<&DatabaseConfig>, format: ViewFormat, unused_days: u32) -> Outcome {
    let unused_days = crate::domain::UnusedDays::new(unused_days).ok_or("--unused-days must be 1 to 365")?;
    crate::telemetry::init("warn");
    let log = progress::ProgressLog::new(open_any_log(data_dir, database)?, "replaying")?;
    // No snapshots: the report replays and verifies the whole log, and writes nothing.
    let ledger = Ledger::open(log)?;
    ledger.log().bar().finish_and_clear();
    let report = AccessReport::with_unused_days(&ledger.view(), Timestamp::now(), unused_days);
    let bytes = match format {
        ViewFormat::Json => {
            let mut bytes = report.render(ReportFormat::Json);
            bytes.push(b'\n');
            bytes
        }
        ViewFormat::Csv => report.render(ReportFormat::Csv),
        ViewFormat::Text => output::access_report_text(&report).into_bytes(),
    };
    print_raw(&bytes);
    Ok(ExitCode::SUCCESS)
}
