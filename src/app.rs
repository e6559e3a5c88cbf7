//! Wiring: open the ledger, bootstrap it, bind the HTTP server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{Condition, Next, from_fn};
use actix_web::rt::signal::unix::{SignalKind, signal};
use actix_web::{App, HttpResponse, HttpServer, ResponseError, web};
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_swagger_ui::{Config as SwaggerConfig, SwaggerUi};

use crate::checkpoint::{CHECKPOINTS_FILE, CheckpointStore, PublicKey, SIGNING_KEY_FILE, Signer};
use crate::domain::{Actor, Command, KeySecret, MAX_KEYS_PER_USAGE_RECORD};
use crate::http::body::{BodyTimeout, MAX_BODY_BYTES};
use crate::http::denials::{DenialLimiter, OperationIds};
use crate::http::mutation::{DEFAULT_IDEMPOTENCY_CACHE_BYTES, IdempotencyCache};
use crate::http::openapi::ApiDoc;
use crate::http::problem::ApiError;
use crate::http::refusals::RefusalLog;
use crate::http::routing::{self, RouteTable};
use crate::http::throttle::{FailureLimiter, ThrottleConfig};
use crate::http::usage::KeyUsageCounter;
use crate::http::watch::Followers;
use crate::http::{self, AppState};
use crate::ledger::{
    CheckpointPolicy, FatalStorageError, Ledger, OpenError, Policies, Request, SnapshotPolicy, SubmitError,
};
use crate::log::{AnyLog, FjallLog, FjallLogError, PostgresLog, PostgresLogError, SchemaPolicy};
use crate::metrics::CheckCounters;
use crate::tls::{ClientCertScope, ReloadingCertificate, TlsConfig, TlsError};

/// The exit status when the log fails a write and the process must restart (EX_IOERR).
pub const EXIT_STORAGE_FAILED: i32 = 74;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data directory; the log lives in its `log` subdirectory, unless `database`
    /// names a PostgreSQL database for it.
    pub data_dir: PathBuf,
    /// The PostgreSQL database holding the log and the checkpoints instead of the data
    /// directory (`--database-url`), which then holds the signing key and snapshots only.
    pub database: Option<DatabaseConfig>,
    /// The address to listen on; port 0 picks a free port.
    pub listen: String,
    /// The address to serve `/metrics` on instead of `listen`; `None` serves it on
    /// `listen`.
    pub metrics_listen: Option<String>,
    /// How many HTTP worker threads; `None` means one per core.
    pub workers: Option<usize>,
    /// Save a snapshot of the view every this many records (and at shutdown).
    pub snapshot_every: u64,
    /// When to sign checkpoints, and with which key.
    pub checkpoints: CheckpointConfig,
    /// Per-client limits on checks refused for their key.
    pub throttle: ThrottleConfig,
    /// Bounds on requests and connections.
    pub limits: Limits,
    /// How often the key usage counted in memory is recorded in the log (and once more at
    /// a graceful stop).
    pub key_usage_interval: Duration,
    /// How long a key's window of recorded refused admin requests lasts.
    pub denial_window: Duration,
    /// HTTPS, when set; plain HTTP otherwise.
    pub tls: Option<TlsConfig>,
    /// Serve plain HTTP on a non-loopback address without the warning.
    pub allow_plain_http: bool,
    /// Whether a change that grants access needs a `Keyledger-Justification`
    /// (`--require-justification`).
    pub require_justification: bool,
    /// How long a change feed stream (`watchAuditEvents`) stays silent before it sends a
    /// heartbeat comment.
    pub watch_heartbeat: Duration,
    /// How long a console session may stay unused before it ends.
    pub console_idle_timeout: Duration,
    /// How this node works beside others on one PostgreSQL log (issue #12).
    pub nodes: NodeConfig,
}

/// How a node works beside others on one PostgreSQL log: how it follows the log, when it
/// counts as stale, and how long requests wait for a position.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id in the heartbeat table, how it tails the log, and when it is stale.
    pub tail: crate::ledger::tail::TailConfig,
    /// The longest a request with `Keyledger-Min-Position` waits for the view to reach it.
    pub max_position_wait: Duration,
}

/// A PostgreSQL database for the log and the checkpoints (`--database-url`).
#[derive(Clone)]
pub struct DatabaseConfig {
    /// The connection string: a `postgres://` URL or `key=value` pairs.
    pub url: String,
    /// Whether opening applies missing schema migrations (`--migrate`).
    pub schema: SchemaPolicy,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("DatabaseConfig").field("schema", &self.schema).finish_non_exhaustive()
    }
}

/// The default interval between records of key usage: 15 minutes, as AWS records a key's
/// last use.
pub const DEFAULT_KEY_USAGE_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// The most keys one `RecordKeyUsage` command holds: one record's worth, so that a flush
/// of many keys is several bounded records, each appended (or, on a failure, put back for
/// the next attempt) on its own.
const USAGE_PER_COMMAND: usize = MAX_KEYS_PER_USAGE_RECORD;

/// Bounds on what one client can make the server hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest request body accepted (413 past it).
    pub max_body_bytes: usize,
    /// Open connections per worker thread; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request's head, and then its body (408 past
    /// either).
    pub request_timeout: std::time::Duration,
    /// How long an idle keep-alive connection is kept.
    pub keep_alive: std::time::Duration,
    /// The most bytes of keys and answers the idempotency cache holds; the oldest answers
    /// are forgotten first.
    pub idempotency_cache_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: MAX_BODY_BYTES,
            max_connections: 10_000,
            request_timeout: std::time::Duration::from_secs(5),
            keep_alive: std::time::Duration::from_secs(5),
            idempotency_cache_bytes: DEFAULT_IDEMPOTENCY_CACHE_BYTES,
        }
    }
}

/// The default snapshot interval, in records.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 100_000;

/// When the service signs checkpoints, and with which key.
///
/// Signing one computes the view's fingerprint on the writer thread, which pauses writes
/// for a time that grows with the number of users (at 250,000: 0.28 s for the first
/// checkpoint after start, about 0.05 s for later ones, which re-encode only what changed;
/// see BENCHMARKS.md), so the defaults sign by time (every minute, if anything changed)
/// and only every 100,000 records by count.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// Sign one once this many records were appended since the last one.
    pub every: u64,
    /// Sign one this often, if records were appended since the last one.
    pub interval: std::time::Duration,
    /// The signing key file; `None` means `signing-key` in the data directory, created
    /// when missing.
    pub signing_key: Option<PathBuf>,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self { every: 100_000, interval: std::time::Duration::from_secs(60), signing_key: None }
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {}", crate::io_advice::describe(.path, .source))]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The log could not be opened.
    #[error(transparent)]
    Log(#[from] FjallLogError),
    /// The PostgreSQL log could not be opened.
    #[error(transparent)]
    Postgres(#[from] PostgresLogError),
    /// The log could not be replayed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Bootstrapping failed.
    #[error("bootstrapping failed: {0}")]
    Bootstrap(#[from] SubmitError),
    /// The data directory was initialised already (for `init`).
    #[error("the data directory {} is already initialised", .0.display())]
    AlreadyInitialised(PathBuf),
    /// The PostgreSQL database was initialised already (for `init --database-url`).
    #[error("the database is already initialised")]
    DatabaseAlreadyInitialised,
    /// The PostgreSQL database holds no initialised ledger (for `recover-admin`).
    #[error(
        "the database holds no initialised keyledger: use `keyledger init` or `keyledger serve` with --database-url to create one"
    )]
    DatabaseNotInitialised,
    /// The data directory holds no initialised ledger (for `recover-admin`).
    #[error("no initialised keyledger data directory at {}: use `keyledger init` or `keyledger serve` to create one", .0.display())]
    NotInitialised(PathBuf),
    /// Recovering administration failed.
    #[error("recovering administration failed: {0}")]
    Recovery(#[source] SubmitError),
    /// The signal handlers could not be installed.
    #[error("cannot listen for SIGTERM, SIGINT and SIGHUP: {source}")]
    Signals {
        /// Why.
        source: std::io::Error,
    },
    /// The signing key or the checkpoints could not be read.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// The TLS certificate, key or client authorities could not be used.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Opens the log and the checkpoint store: in the data directory (`log/`,
/// `checkpoints.jsonl`), or in the PostgreSQL database when one is given.
pub fn open_store(data_dir: &Path, database: Option<&DatabaseConfig>) -> Result<(AnyLog, CheckpointStore), StartError> {
    match database {
        None => {
            Ok((FjallLog::open(&data_dir.join("log"))?.into(), CheckpointStore::new(data_dir.join(CHECKPOINTS_FILE))))
        }
        Some(database) => {
            let log = PostgresLog::open(&database.url, database.schema)?;
            let store = CheckpointStore::in_postgres(log.checkpoint_store());
            Ok((log.into(), store))
        }
    }
}

/// Opens the ledger in a data directory (the log in `log/`, snapshots in `snapshots/`,
/// checkpoints in `checkpoints.jsonl`, the signing key in `signing-key` unless given
/// elsewhere), or with the log and checkpoints in a PostgreSQL database (snapshots and the
/// signing key still in the data directory), bootstrapping it when the log is empty.
/// Returns the Administrator's key secret when it bootstrapped.
pub fn open_ledger(
    data_dir: &Path,
    database: Option<&DatabaseConfig>,
    snapshot_every: u64,
    checkpoints: &CheckpointConfig,
) -> Result<(Ledger<AnyLog>, Option<KeySecret>), StartError> {
    std::fs::create_dir_all(data_dir).map_err(|source| StartError::DataDir { path: data_dir.to_owned(), source })?;
    let (log, store) = open_store(data_dir, database)?;
    let signer = match &checkpoints.signing_key {
        Some(path) => Signer::load(path)?,
        None => Signer::load_or_create(&data_dir.join(SIGNING_KEY_FILE))?,
    };
    let policies = Policies {
        snapshots: Some(SnapshotPolicy { dir: data_dir.join("snapshots"), every: snapshot_every.max(1) }),
        checkpoints: Some(CheckpointPolicy { store, signer, every: checkpoints.every.max(1) }),
    };
    let ledger = Ledger::open_with(log, policies)?;
    let secret = ledger.bootstrap()?;
    Ok((ledger, secret))
}

/// Recovers administration of an initialised data directory whose service is stopped
/// (`keyledger recover-admin`): appends one `AdministratorRecovered` (a new user with a
/// new role holding every admin function, and a key), signs a checkpoint covering it, and
/// closes the ledger. Returns the new user, the public half of the signing key and the key
/// secret, to be shown once.
pub fn recover_admin(
    data_dir: &Path,
    database: Option<&DatabaseConfig>,
    checkpoints: &CheckpointConfig,
    reason: crate::domain::RecoveryReason,
) -> Result<(crate::domain::UserId, KeySecret), StartError> {
    if database.is_none() && !data_dir.join("log").is_dir() {
        return Err(StartError::NotInitialised(data_dir.to_owned()));
    }
    let (log, store) = open_store(data_dir, database)?;
    let signer = match &checkpoints.signing_key {
        Some(path) => Signer::load(path)?,
        None => Signer::load(&data_dir.join(SIGNING_KEY_FILE))?,
    };
    let policies = Policies {
        snapshots: Some(SnapshotPolicy { dir: data_dir.join("snapshots"), every: DEFAULT_SNAPSHOT_EVERY }),
        checkpoints: Some(CheckpointPolicy { store, signer, every: checkpoints.every.max(1) }),
    };
    let ledger = Ledger::open_with(log, policies)?;
    if ledger.view().head() == 0 {
        if database.is_some() {
            return Err(StartError::DatabaseNotInitialised);
        }
        return Err(StartError::NotInitialised(data_dir.to_owned()));
    }
    let recovered = ledger.recover_administrator(reason).map_err(StartError::Recovery)?;
    // Signed now, so that the recovery is covered before anything else can happen.
    ledger.checkpoint_blocking().map_err(StartError::Recovery)?;
    ledger.close();
    Ok(recovered)
}

/// Initialises a data directory without serving. Fails if it is initialised already.
/// Returns the Administrator, the public half of the signing key, and the Administrator's
/// key secret.
pub fn init(
    data_dir: &Path,
    database: Option<&DatabaseConfig>,
    checkpoints: &CheckpointConfig,
) -> Result<(crate::domain::UserId, PublicKey, KeySecret), StartError> {
    let (ledger, secret) = open_ledger(data_dir, database, DEFAULT_SNAPSHOT_EVERY, checkpoints)?;
    let Some(secret) = secret else {
        if database.is_some() {
            return Err(StartError::DatabaseAlreadyInitialised);
        }
        return Err(StartError::AlreadyInitialised(data_dir.to_owned()));
    };
    let view = ledger.view();
    let admin = view.key(&secret.hash()).map(|key| key.user_id().clone());
    drop(view);
    let public_key = ledger.public_key();
    admin
        .zip(public_key)
        .map(|(admin, key)| (admin, key, secret))
        .ok_or(StartError::Bootstrap(SubmitError::ShuttingDown))
}

/// The sockets the service will listen on, bound before the data directory is touched.
///
/// `serve` binds them first so that an address already in use fails the start before
/// bootstrapping: a directory is never initialised by a start that then cannot hand
/// out the Administrator's key.
///
/// With TLS, the certificate is loaded here too, for the same reason: a start with a
/// certificate it cannot use changes nothing.
#[derive(Debug)]
pub struct Listeners {
    sockets: Vec<std::net::TcpListener>,
    /// The sockets of `--metrics-listen`, when `/metrics` has an address of its own.
    metrics: Option<(String, Vec<std::net::TcpListener>)>,
    /// The certificate and rustls configuration, when serving HTTPS.
    tls: Option<(Arc<ReloadingCertificate>, rustls::ServerConfig)>,
}

impl Listeners {
    /// Binds every address `listen` resolves to (as actix does: it fails only if none can
    /// be bound); port 0 picks a free port.
    pub fn bind(listen: &str) -> Result<Self, StartError> {
        Ok(Self { sockets: Self::bind_all(listen)?, metrics: None, tls: None })
    }

    /// Also binds `metrics_listen`, where `/metrics` is then served instead of the main
    /// address; `None` keeps it on the main address.
    pub fn with_metrics(mut self, metrics_listen: Option<&str>) -> Result<Self, StartError> {
        if let Some(listen) = metrics_listen {
            self.metrics = Some((listen.to_owned(), Self::bind_all(listen)?));
        }
        Ok(self)
    }

    fn bind_all(listen: &str) -> Result<Vec<std::net::TcpListener>, StartError> {
        use std::net::ToSocketAddrs;
        let bind_error = |source| StartError::Bind { address: listen.to_owned(), source };
        let mut sockets = Vec::new();
        let mut last_error = None;
        for address in listen.to_socket_addrs().map_err(bind_error)? {
            match std::net::TcpListener::bind(address) {
                Ok(socket) => sockets.push(socket),
                Err(error) => last_error = Some(error),
            }
        }
        if sockets.is_empty() {
            let error = last_error.unwrap_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "the address resolves to nothing")
            });
            return Err(bind_error(error));
        }
        Ok(sockets)
    }

    /// Loads the TLS certificate and client authorities of `tls`, failing if they cannot
    /// be used, and binds `listen` as [`Listeners::bind`] does.
    pub fn bind_with_tls(listen: &str, tls: Option<&TlsConfig>) -> Result<Self, StartError> {
        let prepared = tls.map(prepare_tls).transpose()?;
        let mut listeners = Self::bind(listen)?;
        listeners.tls = prepared;
        Ok(listeners)
    }
}

fn prepare_tls(tls: &TlsConfig) -> Result<(Arc<ReloadingCertificate>, rustls::ServerConfig), StartError> {
    let certificate = Arc::new(ReloadingCertificate::load(&tls.cert, &tls.key)?);
    let rustls_config = crate::tls::server_config(tls, certificate.clone())?;
    Ok((certificate, rustls_config))
}

/// Stops the server gracefully (in-flight requests finish) on SIGTERM or SIGINT. Change
/// feed streams never finish by themselves, so they are ended first.
fn stop_gracefully_on_signals(
    handle: actix_web::dev::ServerHandle,
    state: web::Data<AppState>,
) -> Result<(), StartError> {
    let signal_error = |source| StartError::Signals { source };
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
    actix_web::rt::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: finishing in-flight requests, then stopping"),
            _ = interrupt.recv() => tracing::info!("SIGINT: finishing in-flight requests, then stopping"),
        }
        state.followers.stop();
        crate::systemd::notify("STOPPING=1");
        handle.stop(true).await;
    });
    Ok(())
}

/// Signs a checkpoint every `interval` (at least 100 ms), if anything was appended since
/// the last one, until the ledger shuts down.
fn sign_checkpoints_every(interval: std::time::Duration, state: web::Data<AppState>) {
    let interval = interval.max(std::time::Duration::from_millis(100));
    actix_web::rt::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            if let Err(SubmitError::ShuttingDown) = state.ledger.checkpoint().await {
                break;
            }
        }
    });
}

/// The running service.
pub struct Application {
    server: Server,
    state: web::Data<AppState>,
    address: SocketAddr,
    bootstrap_secret: Option<KeySecret>,
    usage_recorder: UsageRecorder,
    /// The server of `/metrics` on an address of its own, if there is one.
    metrics_server: Option<MetricsServer>,
}

impl Application {
    /// Builds the server on sockets already bound (see [`Listeners::bind`]) over an opened
    /// ledger (see [`open_ledger`], which blocks and so runs before the async runtime
    /// starts) and installs the handlers for SIGTERM and SIGINT; must be called within the
    /// actix runtime. The server starts answering once [`Application::run`] is awaited
    /// (connections made before then wait in the backlog).
    pub fn build(
        config: &Config,
        listeners: Listeners,
        ledger: Ledger<AnyLog>,
        bootstrap_secret: Option<KeySecret>,
    ) -> Result<Self, StartError> {
        let openapi = ApiDoc::openapi();
        let state = web::Data::new(AppState {
            ledger,
            idempotency: IdempotencyCache::with_budget(config.limits.idempotency_cache_bytes),
            limiter: FailureLimiter::new(config.throttle.clone()),
            usage: KeyUsageCounter::default(),
            denials: DenialLimiter::new(config.denial_window),
            operations: OperationIds::from_openapi(&openapi),
            max_body_bytes: config.limits.max_body_bytes,
            followers: Followers::new(config.watch_heartbeat),
            checks: CheckCounters::default(),
            refusals: RefusalLog::default(),
            require_justification: config.require_justification,
        });
        if let Some(follower) = state.ledger.log().follower() {
            state
                .ledger
                .follow(follower, config.nodes.tail.clone())
                .map_err(|source| StartError::Signals { source })?;
        }
        let positions = web::Data::new(http::position::Positions::new(config.nodes.max_position_wait));
        let routes = RouteTable::from_openapi(&openapi);
        let metrics_server = match listeners.metrics {
            Some((listen, sockets)) => Some(MetricsServer::start(&listen, sockets, state.clone())?),
            None => None,
        };
        let metrics_on_main = metrics_server.is_none();
        // Served on its own address, `/metrics` is unknown here: 404, not 405.
        let routes = web::Data::new(if metrics_on_main { routes } else { routes.without(http::metrics::PATH) });
        let shared = state.clone();
        let max_body_bytes = config.limits.max_body_bytes;
        let request_timeout = config.limits.request_timeout;
        let client_certificates = RequiredClientCertificate(
            config
                .tls
                .as_ref()
                .and_then(|tls| tls.require_client_cert_for)
                .filter(|scope| *scope != ClientCertScope::All),
        );
        let console = web::Data::new(crate::console::Sessions::new(crate::console::ConsoleConfig {
            idle_timeout: config.console_idle_timeout,
            tls: config.tls.is_some(),
            trusted_proxies: config.throttle.trusted_proxies.clone(),
        }));
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(max_body_bytes))
                .app_data(BodyTimeout(request_timeout))
                .app_data(
                    web::QueryConfig::default()
                        .error_handler(|error, _| ApiError::InvalidQuery(error.to_string()).into()),
                )
                .app_data(
                    web::PathConfig::default()
                        .error_handler(|error, _| ApiError::InvalidQuery(error.to_string()).into()),
                )
                .app_data(routes.clone())
                .app_data(positions.clone())
                .app_data(client_certificates)
                // Only where a scope is set: the checks' hot path pays nothing otherwise.
                .wrap(Condition::new(client_certificates.0.is_some(), from_fn(require_client_certificate)))
                .wrap(from_fn(http::position::positions))
                .wrap(from_fn(request_context))
                .configure(http::configure)
                .configure(|config| {
                    if metrics_on_main {
                        http::metrics::configure(config);
                    }
                })
                .service(
                    SwaggerUi::new(format!("{}{{_:.*}}", routing::DOCS_PREFIX))
                        .url(routing::OPENAPI_PATH, openapi.clone())
                        // No call to the public validator: the docs work with no network.
                        .config(SwaggerConfig::default().validator_url("none")),
                )
                .route(routing::DOCS_WITHOUT_SLASH, web::get().to(routing::redirect_to_docs))
                .configure(|config| crate::console::configure(config, console.clone()))
                .default_service(web::to(routing::no_route))
        });
        server = server.on_connect(note_client_certificate);
        if let Some(workers) = config.workers {
            server = server.workers(workers.max(1));
        }
        server = server
            .max_connections(config.limits.max_connections.max(1))
            .client_request_timeout(config.limits.request_timeout)
            .keep_alive(config.limits.keep_alive);
        let bind_error = |source| StartError::Bind { address: config.listen.clone(), source };
        match &config.tls {
            None => {
                if !config.allow_plain_http && !crate::tls::is_loopback(&config.listen) {
                    tracing::warn!(
                        listen = %config.listen,
                        "serving plain HTTP on a non-loopback address: keys cross the network in the clear; \
                         give --tls-cert and --tls-key, or --allow-plain-http to say this is deliberate"
                    );
                }
                for socket in listeners.sockets {
                    server = server.listen(socket).map_err(bind_error)?;
                }
            }
            Some(tls) => {
                let (certificate, rustls_config) = match listeners.tls {
                    Some(prepared) => prepared,
                    None => prepare_tls(tls)?,
                };
                for socket in listeners.sockets {
                    server = server.listen_rustls_0_23(socket, rustls_config.clone()).map_err(bind_error)?;
                }
                crate::tls::reload_on_change_and_sighup(certificate, tls.reload_interval)
                    .map_err(|source| StartError::Signals { source })?;
            }
        }
        let address = server.addrs().first().copied().ok_or_else(|| StartError::Bind {
            address: config.listen.clone(),
            source: std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no address bound"),
        })?;
        // Stop gracefully on SIGTERM or SIGINT. The handlers are installed here, before
        // `listening on` is printed, so that a signal sent as soon as the server says it is
        // up is never the default (fatal) one.
        let server = server.disable_signals().run();
        stop_gracefully_on_signals(server.handle(), shared.clone())?;
        sign_checkpoints_every(config.checkpoints.interval, shared.clone());
        actix_web::rt::spawn(stop_on_fatal_storage_error(shared.ledger.fatal()));
        let usage_recorder = UsageRecorder::start(shared.clone(), config.key_usage_interval);
        Ok(Self { server, state: shared, address, bootstrap_secret, usage_recorder, metrics_server })
    }

    /// The address `/metrics` is served on when it has one of its own
    /// (`--metrics-listen`), with the real port.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_server.as_ref().map(|metrics| metrics.address)
    }

    /// The address the server listens on, with the real port.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The Administrator's key, if this start bootstrapped an empty data directory.
    /// It is handed out once.
    pub fn take_bootstrap_secret(&mut self) -> Option<KeySecret> {
        self.bootstrap_secret.take()
    }

    /// Serves until SIGINT or SIGTERM, then finishes in-flight requests, records the key
    /// usage counted since the last record, lets the writer finish what is queued and save
    /// a snapshot, and stops.
    pub async fn run(self) -> std::io::Result<()> {
        let served = self.server.await;
        if let Some(metrics) = self.metrics_server {
            metrics.stop().await;
        }
        self.usage_recorder.stop().await;
        self.state.ledger.close();
        served
    }
}

/// The server of `/metrics` alone, on the `--metrics-listen` address: one worker, the
/// same request ids and problem documents as the main server, 404 for every other path.
struct MetricsServer {
    address: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl MetricsServer {
    fn start(
        listen: &str,
        sockets: Vec<std::net::TcpListener>,
        state: web::Data<AppState>,
    ) -> Result<Self, StartError> {
        let bind_error = |source| StartError::Bind { address: listen.to_owned(), source };
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(from_fn(request_context))
                .configure(http::metrics::configure)
                .default_service(web::to(routing::no_route))
        })
        .workers(1);
        for socket in sockets {
            server = server.listen(socket).map_err(bind_error)?;
        }
        let address =
            server.addrs().first().copied().ok_or_else(|| {
                bind_error(std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no address bound"))
            })?;
        // The main server's signal handlers stop it; `Application::run` then stops this one.
        let server = server.disable_signals().run();
        let handle = server.handle();
        let task = actix_web::rt::spawn(server);
        Ok(Self { address, handle, task })
    }

    async fn stop(self) {
        self.handle.stop(true).await;
        if let Ok(Err(error)) = self.task.await {
            tracing::warn!(%error, "the metrics server stopped with an error");
        }
    }
}

/// Stops the process once the ledger reports that the log failed a write only a restart
/// recovers from (RELIABILITY.md, "Storage faults"). Nothing acknowledged is lost: every
/// acknowledged batch was synced, and the failed one was answered 503. The exit status
/// tells a supervisor to restart.
async fn stop_on_fatal_storage_error(fatal: impl Future<Output = Option<FatalStorageError>>) {
    let Some(error) = fatal.await else { return };
    tracing::error!(%error, "the log cannot be written; stopping so that a restart can recover");
    eprintln!("keyledger: {error}; stopping. Free space or fix the disk, then restart: nothing acknowledged was lost.");
    // Give the 503 answers a moment to leave.
    tokio::time::sleep(Duration::from_millis(200)).await;
    crate::telemetry::flush();
    std::process::exit(EXIT_STORAGE_FAILED);
}

/// The background task that records key usage every interval, and once more when asked
/// to stop.
struct UsageRecorder {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl UsageRecorder {
    fn start(state: web::Data<AppState>, interval: Duration) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        // A zero interval would make the timer panic; the command line refuses it too.
        let interval = interval.max(Duration::from_millis(1));
        let task = actix_web::rt::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => record_key_usage(&state).await,
                    _ = &mut stopped => {
                        record_key_usage(&state).await;
                        let lost = state.usage.take();
                        if !lost.is_empty() {
                            let checks: u64 = lost.iter().map(|usage| usage.allowed.saturating_add(usage.refused)).sum();
                            tracing::error!(keys = lost.len(), checks, "key usage could not be recorded before stopping; it is lost");
                        }
                        return;
                    }
                }
            }
        });
        Self { stop, task }
    }

    /// Records what is counted and waits for the task to end.
    async fn stop(self) {
        let _ = self.stop.send(());
        if self.task.await.is_err() {
            tracing::error!("the key usage task panicked; usage since its last record is lost");
        }
    }
}

/// Records the key usage counted since the last record: one `KeyUsageIntervalRecorded` per
/// [`MAX_KEYS_PER_USAGE_RECORD`] keys used (one for fewer). Counts that cannot be recorded (storage unavailable) are put back for the next attempt;
/// at shutdown they are logged, since there is no next attempt.
async fn record_key_usage(state: &AppState) {
    let usage = state.usage.take();
    for chunk in usage.chunks(USAGE_PER_COMMAND) {
        let command = Command::RecordKeyUsage { usage: chunk.to_vec() };
        match state
            .ledger
            .submit(
                command,
                Request { actor: Actor::System, expected_version: None, credential: None, justification: None },
            )
            .await
        {
            Ok(applied) => tracing::debug!(keys = chunk.len(), records = applied.events.len(), "recorded key usage"),
            Err(error) => {
                let checks: u64 = chunk.iter().map(|usage| usage.allowed.saturating_add(usage.refused)).sum();
                tracing::warn!(%error, keys = chunk.len(), checks, "recording key usage failed; keeping the counts for the next attempt");
                state.usage.put_back(chunk);
            }
        }
    }
}

/// Where requests need a client certificate, when the handshake did not already require
/// one ([`ClientCertScope::All`] fails the handshake instead).
#[derive(Debug, Clone, Copy)]
struct RequiredClientCertificate(Option<ClientCertScope>);

/// Marks a connection whose client presented a certificate, which rustls verified against
/// `--tls-client-ca` during the handshake.
#[derive(Debug, Clone, Copy)]
struct VerifiedClientCertificate;

fn note_client_certificate(connection: &dyn std::any::Any, extensions: &mut actix_web::dev::Extensions) {
    type TlsConnection = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    if let Some(tls) = connection.downcast_ref::<TlsConnection>()
        && tls.get_ref().1.peer_certificates().is_some_and(|certificates| !certificates.is_empty())
    {
        extensions.insert(VerifiedClientCertificate);
    }
}

/// Refuses (401) a request to a route `--require-client-cert-for` covers, on a connection
/// without a verified client certificate.
async fn require_client_certificate(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let scope = request.app_data::<RequiredClientCertificate>().and_then(|required| required.0);
    if let Some(scope) = scope
        && scope.covers(request.path())
        && request.conn_data::<VerifiedClientCertificate>().is_none()
    {
        let error = ApiError::Unauthenticated(
            "this operation needs a client certificate (mutual TLS) signed by an authority the service trusts".into(),
        );
        return Ok(request.error_response(error).map_into_right_body());
    }
    Ok(next.call(request).await?.map_into_left_body())
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

fn is_check_path(path: &str) -> bool {
    // `/metrics` too: a scraper asks every few seconds.
    matches!(path, "/v1/check" | "/v1/authorize" | "/health" | "/health/live" | "/health/ready" | "/metrics")
}

/// Gives every request an id (`X-Request-Id`, the client's if it sent a sane one), logs
/// it with its outcome, and turns any error answer that is not yet a problem document
/// into one. Key checks are logged at debug level only: they are the hot path.
async fn request_context(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{:x}-{:x}", std::process::id(), REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed)));
    let method = request.method().clone();
    routing::answer_head_as_get(&mut request);
    let path = request.path().to_owned();
    let quiet = is_check_path(&path);
    let span = tracing::info_span!("request", id = %request_id);
    let started = Instant::now();
    let response = next.call(request).instrument(span.clone()).await?;
    let mut response = into_problem(response.map_into_boxed_body());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(header::HeaderName::from_static("x-request-id"), value);
    }
    let status = response.status().as_u16();
    let micros = started.elapsed().as_micros();
    let _entered = span.enter();
    if status >= 500 {
        let error = response.response().error().map(ToString::to_string).unwrap_or_default();
        tracing::error!(%method, %path, status, micros, %error, "request failed");
    } else if quiet {
        tracing::debug!(%method, %path, status, micros, "request");
    } else {
        tracing::info!(%method, %path, status, micros, "request");
    }
    Ok(response)
}

fn into_problem(response: ServiceResponse) -> ServiceResponse {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/problem+json"));
    // The console answers its errors as HTML pages.
    let is_console_page =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|value| value.as_bytes().starts_with(b"text/html"))
            && response.request().path().starts_with("/console");
    if !(status.is_client_error() || status.is_server_error()) || is_problem || is_console_page {
        return response;
    }
    // Readiness answers its 503 with its own documented body (`Health`).
    if status == StatusCode::SERVICE_UNAVAILABLE && response.request().path() == "/health/ready" {
        return response;
    }
    let detail = response.response().error().map(ToString::to_string).unwrap_or_else(|| status.to_string());
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::NoRoute(response.request().path().to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => routing::method_not_allowed(response.request()),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(
            response.request().app_data::<web::Data<AppState>>().map_or(MAX_BODY_BYTES, |state| state.max_body_bytes),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
        status if status.is_client_error() => ApiError::InvalidHeader(detail),
        _ => ApiError::Internal,
    };
    let (request, _) = response.into_parts();
    let answer: HttpResponse = error.error_response();
    ServiceResponse::new(request, answer)
}
