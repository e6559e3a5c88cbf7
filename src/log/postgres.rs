//! The log on PostgreSQL: the same records, byte for byte, and the same Merkle tree as the
//! fjall log, in tables a versioned migration creates (`migrations/`).
//!
//! * `head` is one row holding the log's position. An append is one transaction per
//!   group-commit batch: `UPDATE head SET position = $new WHERE position = $expected`
//!   (no row moved: another writer appended first, [`AppendError::Conflict`]), then the
//!   records, the tree nodes they complete, and `NOTIFY keyledger_appended, '<head>'`,
//!   then commit. Positions never come from a sequence, whose numbers are taken in one
//!   order and committed in another.
//! * `records (seq, bytes)` and `tree_nodes (level, node_index, hash)` hold what fjall's
//!   two keyspaces hold; `checkpoints (size, line)` holds the lines `checkpoints.jsonl`
//!   would ([`PostgresCheckpoints`]).
//! * `schema_version` names the migrations applied. [`PostgresLog::open`] applies the
//!   missing ones only when asked ([`SchemaPolicy::Migrate`]), refuses an older schema
//!   otherwise, and always refuses a newer one than this build knows.
//!
//! Several keyledger processes (nodes) serve one database: each appends with the optimistic
//! head check, and follows the others' appends through a [`PostgresFollower`] (its own
//! connection: `LISTEN` as a wake-up hint, the head read back, the `nodes` heartbeat table
//! of migration 2, and the session advisory lock of the one node that signs checkpoints).
//!
//! The client is `postgres`, the synchronous one: every call comes from a thread that may
//! block (the writer thread, `web::block`, the command line), never from the event loop,
//! and the writer thread is synchronous. Each connection runs its own small runtime.

use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use postgres::{Client, Config, NoTls, Statement};

use super::{AppendError, EventLog, StoredRecord, Tree, check_sequence, grow};
use crate::merkle::{Frontier, NodeId, ProofError, TreeHash};

/// The channel each append notifies, with the new head as the payload. Listeners must
/// treat it as a hint and poll as well: notifications are lost across reconnects.
pub const NOTIFY_CHANNEL: &str = "keyledger_appended";

/// One versioned change of the schema, applied in a transaction of its own.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in order; the last one's version is the schema this build runs on.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "log, tree, head and checkpoints",
        sql: include_str!("../../migrations/0001_log.sql"),
    },
    Migration { version: 2, name: "nodes and their heartbeats", sql: include_str!("../../migrations/0002_nodes.sql") },
];

/// The schema version this build runs on.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// The session advisory lock of the one node that signs checkpoints ("kledger" and 1:
/// the number once held by the single process serving a database, which signed too).
const SIGNER_LOCK: i64 = 0x6b6c_6564_6765_7201;
/// The transaction advisory lock that serialises migrations ("kledger" and 2).
const MIGRATION_LOCK: i64 = 0x6b6c_6564_6765_7202;

/// What opening does with a schema older than this build's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaPolicy {
    /// Apply the missing migrations (`--migrate`).
    Migrate,
    /// Refuse to open, saying to run with `--migrate`.
    RequireCurrent,
}

/// What the PostgreSQL log can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresLogError {
    /// The database URL does not parse.
    #[error("the database URL is not a PostgreSQL connection string: {0}")]
    Url(String),
    /// The database refused a statement, or could not be reached.
    #[error("database error: {}", describe(.0))]
    Database(#[from] postgres::Error),
    /// The connection was lost while the append committed: whether the batch was written
    /// is unknown. The writer reads the log back to learn it ([`EventLog::outcome_unknown`]).
    #[error("the database connection was lost while an append committed (the batch may or may not be written): {}", describe(.0))]
    CommitUnknown(postgres::Error),
    /// The schema is older than this build's and the caller did not ask to migrate.
    #[error(
        "the database schema is version {found}, older than this keyledger's {expected}: run once with --migrate to upgrade it"
    )]
    SchemaTooOld {
        /// The version found.
        found: i32,
        /// The version this build runs on.
        expected: i32,
    },
    /// The schema is newer than any this build knows: it was migrated by a newer build.
    #[error(
        "the database schema is version {found}, newer than this keyledger knows ({known}): run a keyledger at least as new as the one that migrated it"
    )]
    SchemaTooNew {
        /// The version found.
        found: i32,
        /// The newest version this build knows.
        known: i32,
    },
    /// A number does not fit PostgreSQL's `bigint`, or a stored one is negative.
    #[error("{0} is out of range for the database")]
    OutOfRange(String),
    /// Another checkpoint is stored at this size.
    #[error("another checkpoint is stored at size {0}")]
    CheckpointConflict(i64),
    /// The Merkle tree's stored nodes do not cover the records.
    #[error("corrupt log: {0}")]
    CorruptTree(String),
}

/// The error and, for an error the server reported, its message and detail: the
/// client's own `Display` says only "db error".
fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {} ({detail})", db.code().code(), db.message()),
            None => format!("{}: {}", db.code().code(), db.message()),
        },
        None => error.to_string(),
    }
}

/// Parses a connection string (a `postgres://` URL or `key=value` pairs). A missing
/// password is taken from `PGPASSWORD`, so it need not appear on a command line.
pub fn parse_url(url: &str) -> Result<Config, PostgresLogError> {
    let mut config = Config::from_str(url).map_err(|error| PostgresLogError::Url(error.to_string()))?;
    if config.get_password().is_none()
        && let Some(password) = std::env::var_os("PGPASSWORD")
    {
        config.password(password.as_encoded_bytes());
    }
    if config.get_application_name().is_none() {
        config.application_name("keyledger");
    }
    Ok(config)
}

fn to_sql(value: u64) -> Result<i64, PostgresLogError> {
    i64::try_from(value).map_err(|_| PostgresLogError::OutOfRange(format!("position {value}")))
}

fn from_sql(value: i64) -> Result<u64, PostgresLogError> {
    u64::try_from(value).map_err(|_| PostgresLogError::OutOfRange(format!("stored number {value}")))
}

/// An append in one statement (one round trip once prepared): move the head if it is
/// where the caller expected, and only then insert the records and tree nodes and notify
/// the new head. The data-modifying parts run whatever the query reads; the one row it
/// returns, or none, says whether the head moved.
const APPEND: &str = "WITH moved AS (
        UPDATE head SET position = $2 WHERE position = $1 RETURNING position
    ), new_records AS (
        INSERT INTO records (seq, bytes)
        SELECT seq, bytes FROM unnest($3::bigint[], $4::bytea[]) AS batch (seq, bytes)
        WHERE EXISTS (SELECT FROM moved)
    ), new_nodes AS (
        INSERT INTO tree_nodes (level, node_index, hash)
        SELECT level, node_index, hash FROM unnest($5::smallint[], $6::bigint[], $7::bytea[]) AS nodes (level, node_index, hash)
        WHERE EXISTS (SELECT FROM moved)
    )
    SELECT pg_notify($8, position::text) FROM moved";
const HEAD: &str = "SELECT position FROM head";
const READ: &str = "SELECT seq, bytes FROM records WHERE seq >= $1 ORDER BY seq LIMIT $2";
const TREE_NODE: &str = "SELECT hash FROM tree_nodes WHERE level = $1 AND node_index = $2";

/// The statements the writer's connection prepares, by index.
const WRITER_STATEMENTS: &[&str] = &[APPEND, HEAD];
/// The statements the reader's connection prepares, by index.
const READER_STATEMENTS: &[&str] = &[HEAD, READ, TREE_NODE];

/// One connection, opened again (and its statements prepared again) when it was lost.
struct Connection {
    config: Config,
    /// The client and its prepared statements, in the order of `statements`.
    client: Option<(Client, Vec<Statement>)>,
    /// The statements to prepare on connecting.
    statements: &'static [&'static str],
}

impl Connection {
    fn new(config: Config, statements: &'static [&'static str]) -> Self {
        Self { config, client: None, statements }
    }

    /// The open client and its prepared statements, connecting first if there is none or
    /// it was closed.
    fn client(&mut self) -> Result<(&mut Client, &[Statement]), PostgresLogError> {
        let open = match self.client.take() {
            Some((client, prepared)) if !client.is_closed() => (client, prepared),
            _ => {
                let mut client = self.config.connect(NoTls)?;
                let prepared = self.statements.iter().map(|sql| client.prepare(sql)).collect::<Result<Vec<_>, _>>()?;
                (client, prepared)
            }
        };
        let (client, prepared) = self.client.insert(open);
        Ok((client, prepared.as_slice()))
    }

    /// Runs `work` on the client and its prepared statements (by index); once more on a
    /// new connection if the session had died (so `work` must be safe to repeat: a read,
    /// or one statement that the failure rolled back).
    fn run<T>(
        &mut self,
        work: impl Fn(&mut Client, &[Statement]) -> Result<T, postgres::Error>,
    ) -> Result<T, PostgresLogError> {
        let (client, prepared) = self.client()?;
        match work(client, prepared) {
            Err(error) if !is_statement_error(&error) => {
                tracing::info!(error = %describe(&error), "the database connection was lost; reconnecting");
                self.client = None;
                let (client, prepared) = self.client()?;
                work(client, prepared).map_err(|error| self.after_error(error))
            }
            outcome => outcome.map_err(|error| self.after_error(error)),
        }
    }

    /// Forgets the client after an error that may have broken its session (anything but
    /// a statement's error on a live session), so that the next call connects afresh: a
    /// client learns only lazily that the server closed its connection.
    fn after_error(&mut self, error: postgres::Error) -> PostgresLogError {
        if !is_statement_error(&error) {
            self.client = None;
        }
        PostgresLogError::Database(error)
    }
}

/// Whether the server refused a statement and the session lives on (a constraint, a
/// syntax error): the transaction was rolled back, and the connection can be used again.
fn is_statement_error(error: &postgres::Error) -> bool {
    !error.is_closed()
        && error.as_db_error().is_some_and(|db| db.parsed_severity() == Some(postgres::error::Severity::Error))
}

/// Where an append transaction failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Before COMMIT was sent: nothing was written.
    BeforeCommit,
    /// At COMMIT.
    Commit,
}

/// What an append transaction came to.
enum Appended {
    /// The head moved and the batch is committed.
    Committed,
    /// The head was elsewhere (this position); nothing was written.
    HeadMoved(i64),
}

/// The highest migration applied; 0 for a database keyledger never migrated.
fn schema_version(client: &mut Client) -> Result<i32, PostgresLogError> {
    let exists: bool = client.query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])?.try_get(0)?;
    if !exists {
        return Ok(0);
    }
    let version: Option<i32> = client.query_one("SELECT max(version) FROM schema_version", &[])?.try_get(0)?;
    Ok(version.unwrap_or(0))
}

/// Brings the schema to [`SCHEMA_VERSION`] under `policy`.
fn prepare_schema(client: &mut Client, policy: SchemaPolicy) -> Result<(), PostgresLogError> {
    let found = schema_version(client)?;
    if found > SCHEMA_VERSION {
        return Err(PostgresLogError::SchemaTooNew { found, known: SCHEMA_VERSION });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    if policy == SchemaPolicy::RequireCurrent {
        return Err(PostgresLogError::SchemaTooOld { found, expected: SCHEMA_VERSION });
    }
    for migration in MIGRATIONS {
        let mut transaction = client.transaction()?;
        // Two processes migrating at once: the second waits, then finds the work done.
        transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        transaction.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )?;
        let applied: Option<i32> = transaction.query_one("SELECT max(version) FROM schema_version", &[])?.try_get(0)?;
        if applied.unwrap_or(0) >= migration.version {
            continue;
        }
        transaction.batch_execute(migration.sql)?;
        transaction.execute(
            "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )?;
        transaction.commit()?;
        tracing::info!(version = migration.version, name = migration.name, "applied a schema migration");
    }
    Ok(())
}

/// The writer's connection and the tree's right edge at the head it last wrote.
struct Writer {
    connection: Connection,
    frontier: Frontier,
}

/// The PostgreSQL-backed log.
pub struct PostgresLog {
    config: Config,
    /// Appends. The mutex serialises this process's appends.
    writer: Mutex<Writer>,
    /// Reads of records, tree nodes and the head.
    reader: Mutex<Connection>,
}

impl std::fmt::Debug for PostgresLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration may hold a password: show where, not how.
        f.debug_struct("PostgresLog")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PostgresLog {
    /// Connects to the database at `url`, brings its schema to this build's under
    /// `policy`, and loads the tree's right edge.
    pub fn open(url: &str, policy: SchemaPolicy) -> Result<Self, PostgresLogError> {
        Self::open_config(parse_url(url)?, policy)
    }

    /// [`PostgresLog::open`] with a parsed configuration.
    pub fn open_config(config: Config, policy: SchemaPolicy) -> Result<Self, PostgresLogError> {
        prepare_schema(&mut config.connect(NoTls)?, policy)?;
        let mut writer = Connection::new(config.clone(), WRITER_STATEMENTS);
        writer.client()?;
        let log = Self {
            config: config.clone(),
            writer: Mutex::new(Writer { connection: writer, frontier: Frontier::default() }),
            reader: Mutex::new(Connection::new(config, READER_STATEMENTS)),
        };
        let head = log.head()?;
        let frontier = log.load_frontier(head)?;
        lock(&log.writer).frontier = frontier;
        Ok(log)
    }

    /// A follower of this database, on a connection of its own ([`PostgresFollower`]).
    pub fn follower(&self) -> PostgresFollower {
        PostgresFollower::new(self.config.clone())
    }

    /// The store of this database's signed checkpoints, on a connection of its own.
    pub fn checkpoint_store(&self) -> PostgresCheckpoints {
        PostgresCheckpoints { connection: Mutex::new(Connection::new(self.config.clone(), &[])) }
    }

    fn load_frontier(&self, size: u64) -> Result<Frontier, PostgresLogError> {
        Frontier::load(&Tree(self), size).map_err(|error| match error {
            ProofError::Storage(error) => error,
            ProofError::MissingNode(id) => PostgresLogError::CorruptTree(format!(
                "the tree node at level {} index {} is missing",
                id.level, id.index
            )),
            ProofError::OutOfRange(message) => PostgresLogError::CorruptTree(message),
        })
    }

    /// Copies a whole log and its checkpoint lines (`(size, line)`, oldest first) into
    /// this empty database, in one transaction: every record's bytes as stored, and the
    /// tree nodes they complete, each compared with the source's stored node. Fails, and
    /// writes nothing, if this database holds a record or a checkpoint, or if a source
    /// node differs. Returns the number of records copied.
    pub fn import<L: EventLog>(&self, source: &L, checkpoints: &[(u64, String)]) -> Result<u64, ImportError> {
        let mut writer = lock(&self.writer);
        let (client, _) = writer.connection.client()?;
        let mut transaction = client.transaction()?;
        let head: i64 = transaction.query_one("SELECT position FROM head FOR UPDATE", &[])?.try_get(0)?;
        let stored: i64 = transaction
            .query_one("SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM checkpoints)", &[])?
            .try_get(0)?;
        if head != 0 || stored != 0 {
            return Err(ImportError::NotEmpty);
        }
        let mut frontier = Frontier::default();
        loop {
            let chunk = source.read(frontier.size() + 1, 4096).map_err(|e| ImportError::Source(e.to_string()))?;
            let Some(last) = chunk.last() else { break };
            if chunk.iter().zip(frontier.size() + 1..).any(|(record, seq)| record.seq != seq) {
                return Err(ImportError::Source(format!("record {} is missing", frontier.size() + 1)));
            }
            let last = last.seq;
            let nodes = grow(&mut frontier, &chunk);
            for (id, hash) in &nodes {
                let theirs = source.tree_node(*id).map_err(|e| ImportError::Source(e.to_string()))?;
                if theirs != Some(*hash) {
                    return Err(ImportError::Source(format!(
                        "the stored tree node at level {} index {} is not the one its records give",
                        id.level, id.index
                    )));
                }
            }
            insert(&mut transaction, &chunk, &nodes)?;
            debug_assert_eq!(frontier.size(), last);
        }
        transaction.execute("UPDATE head SET position = $1", &[&to_sql(frontier.size())?])?;
        for (size, line) in checkpoints {
            transaction.execute("INSERT INTO checkpoints (size, line) VALUES ($1, $2)", &[&to_sql(*size)?, line])?;
        }
        transaction.execute("SELECT pg_notify($1, $2)", &[&NOTIFY_CHANNEL, &frontier.size().to_string()])?;
        transaction.commit()?;
        writer.frontier = frontier.clone();
        Ok(frontier.size())
    }
}

/// Why [`PostgresLog::import`] copied nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The target database already holds records or checkpoints.
    #[error("the database already holds a log or checkpoints: migrate copies into an empty one only")]
    NotEmpty,
    /// The source log could not be read, or is not whole.
    #[error("the source log: {0}")]
    Source(String),
    /// The target database failed.
    #[error(transparent)]
    Target(#[from] PostgresLogError),
}

impl From<postgres::Error> for ImportError {
    fn from(error: postgres::Error) -> Self {
        ImportError::Target(error.into())
    }
}

/// Inserts records and tree nodes, each kind in one statement.
fn insert(
    transaction: &mut postgres::Transaction<'_>,
    records: &[StoredRecord],
    nodes: &[(NodeId, TreeHash)],
) -> Result<(), PostgresLogError> {
    let seqs = records.iter().map(|record| to_sql(record.seq)).collect::<Result<Vec<i64>, _>>()?;
    let bytes: Vec<&[u8]> = records.iter().map(|record| record.bytes.as_slice()).collect();
    transaction.execute(
        "INSERT INTO records (seq, bytes) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
        &[&seqs, &bytes],
    )?;
    let levels: Vec<i16> = nodes.iter().map(|(id, _)| i16::from(id.level)).collect();
    let indexes = nodes.iter().map(|(id, _)| to_sql(id.index)).collect::<Result<Vec<i64>, _>>()?;
    let hashes: Vec<&[u8]> = nodes.iter().map(|(_, hash)| hash.as_bytes().as_slice()).collect();
    transaction.execute(
        "INSERT INTO tree_nodes (level, node_index, hash) SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])",
        &[&levels, &indexes, &hashes],
    )?;
    Ok(())
}

impl EventLog for PostgresLog {
    type Error = PostgresLogError;

    fn head(&self) -> Result<u64, PostgresLogError> {
        let mut reader = lock(&self.reader);
        let position: i64 = reader.run(|client, prepared| client.query_one(&prepared[0], &[])?.try_get(0))?;
        from_sql(position)
    }

    fn append(&self, expected_head: u64, new: &[StoredRecord]) -> Result<(), AppendError<PostgresLogError>> {
        check_sequence(expected_head, new)?;
        let mut writer = lock(&self.writer);
        let Some(last) = new.last() else {
            let actual = self.head().map_err(AppendError::Storage)?;
            return if actual == expected_head {
                Ok(())
            } else {
                Err(AppendError::Conflict { expected: expected_head, actual })
            };
        };
        if writer.frontier.size() != expected_head {
            // Only after a commit whose outcome was unknown: reload the right edge there.
            if let Ok(frontier) = self.load_frontier(expected_head) {
                writer.frontier = frontier;
            }
        }
        let mut frontier = writer.frontier.clone();
        let nodes = grow(&mut frontier, new);
        let to_sql = |value| to_sql(value).map_err(AppendError::Storage);
        let seqs = new.iter().map(|record| to_sql(record.seq)).collect::<Result<Vec<i64>, _>>()?;
        let bytes: Vec<&[u8]> = new.iter().map(|record| record.bytes.as_slice()).collect();
        let levels: Vec<i16> = nodes.iter().map(|(id, _)| i16::from(id.level)).collect();
        let indexes = nodes.iter().map(|(id, _)| to_sql(id.index)).collect::<Result<Vec<i64>, _>>()?;
        let hashes: Vec<&[u8]> = nodes.iter().map(|(_, hash)| hash.as_bytes().as_slice()).collect();
        let (expected, new_head) = (to_sql(expected_head)?, to_sql(last.seq)?);

        let params: [&(dyn postgres::types::ToSql + Sync); 8] =
            [&expected, &new_head, &seqs, &bytes, &levels, &indexes, &hashes, &NOTIFY_CHANNEL];
        let mut first_attempt = true;
        let outcome = loop {
            let (client, prepared) = writer.connection.client().map_err(AppendError::Storage)?;
            let (append, head) = (prepared[0].clone(), prepared[1].clone());
            let outcome = (|| {
                // BEGIN, then the one statement: nothing is written unless COMMIT succeeds.
                let before = |error| (error, Step::BeforeCommit);
                let mut transaction = client.transaction().map_err(before)?;
                if transaction.query(&append, &params).map_err(before)?.is_empty() {
                    let actual = transaction.query_one(&head, &[]).and_then(|row| row.try_get(0)).map_err(before)?;
                    return Ok(Appended::HeadMoved(actual));
                }
                transaction.commit().map_err(|error| (error, Step::Commit))?;
                Ok(Appended::Committed)
            })();
            match outcome {
                // A session that died while idle (a server restart, a failover, an idle
                // timeout) fails before COMMIT, having written nothing: once more, on a
                // new connection.
                Err((error, Step::BeforeCommit)) if first_attempt && !is_statement_error(&error) => {
                    tracing::info!(error = %describe(&error), "the database connection was lost; reconnecting");
                    writer.connection.client = None;
                    first_attempt = false;
                }
                outcome => break outcome,
            }
        };
        match outcome {
            Ok(Appended::Committed) => {}
            Ok(Appended::HeadMoved(actual)) => {
                return Err(AppendError::Conflict { expected: expected_head, actual: from_sql(actual).unwrap_or(0) });
            }
            // The server refused the COMMIT on a live session: rolled back. Any other
            // failure at COMMIT (a lost connection) leaves its outcome unknown.
            Err((error, Step::Commit)) if !is_statement_error(&error) => {
                writer.connection.client = None;
                return Err(AppendError::Storage(PostgresLogError::CommitUnknown(error)));
            }
            Err((error, _)) => return Err(AppendError::Storage(writer.connection.after_error(error))),
        }
        writer.frontier = frontier;
        Ok(())
    }

    fn read(&self, from_seq: u64, max: usize) -> Result<Vec<StoredRecord>, PostgresLogError> {
        let from = i64::try_from(from_seq).unwrap_or(i64::MAX);
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let mut reader = lock(&self.reader);
        let rows = reader.run(|client, prepared| client.query(&prepared[1], &[&from, &limit]))?;
        rows.iter().map(|row| Ok(StoredRecord { seq: from_sql(row.try_get(0)?)?, bytes: row.try_get(1)? })).collect()
    }

    fn tree_node(&self, id: NodeId) -> Result<Option<TreeHash>, PostgresLogError> {
        let index = to_sql(id.index)?;
        let mut reader = lock(&self.reader);
        let row = reader.run(|client, prepared| client.query_opt(&prepared[2], &[&i16::from(id.level), &index]))?;
        let Some(row) = row else { return Ok(None) };
        let bytes: &[u8] = row.try_get(0)?;
        let hash = <[u8; 32]>::try_from(bytes)
            .map_err(|_| PostgresLogError::CorruptTree(format!("the node at level {} is not 32 bytes", id.level)))?;
        Ok(Some(TreeHash::from_bytes(hash)))
    }

    fn outcome_unknown(&self, error: &PostgresLogError) -> bool {
        matches!(error, PostgresLogError::CommitUnknown(_))
    }
}

/// The channel a node notifies after it applied records it tailed, with its id as the
/// payload: a node waiting for every node to apply a change reads the heartbeats again.
pub const NODES_CHANNEL: &str = "keyledger_nodes";

/// A node's row in the heartbeat table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHeartbeat {
    /// The node's id (`--node-id`).
    pub node_id: String,
    /// The log position the node has applied.
    pub applied: u64,
    /// How long ago, by the database's clock, the node wrote its row.
    pub age: Duration,
}

/// A node's own connection for following the log: `LISTEN` for the appends (and for the
/// other nodes' heartbeats), the head read back, the heartbeat table, and the session
/// advisory lock of the one node that signs checkpoints. A lost connection is opened again
/// by the next call; the lock goes with the session, so whoever holds it learns it lost it.
pub struct PostgresFollower {
    config: Config,
    client: Option<Client>,
    /// Whether this session holds the signer's lock.
    signer: bool,
}

impl std::fmt::Debug for PostgresFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresFollower").field("signer", &self.signer).finish_non_exhaustive()
    }
}

impl PostgresFollower {
    /// A follower of the database `config` names; it connects on its first call.
    pub fn new(config: Config) -> Self {
        Self { config, client: None, signer: false }
    }

    fn client(&mut self) -> Result<&mut Client, PostgresLogError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.signer = false;
            let mut client = self.config.connect(NoTls)?;
            client.batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}; LISTEN {NODES_CHANNEL}"))?;
            self.client = Some(client);
        }
        self.client.as_mut().ok_or_else(|| PostgresLogError::Url("no connection".into()))
    }

    /// Runs `work` on the connection, forgetting the connection (and the lock) on any error
    /// but a statement's.
    fn run<T>(&mut self, work: impl FnOnce(&mut Client) -> Result<T, postgres::Error>) -> Result<T, PostgresLogError> {
        let client = self.client()?;
        work(client).map_err(|error| {
            if !is_statement_error(&error) {
                self.client = None;
                self.signer = false;
            }
            PostgresLogError::Database(error)
        })
    }

    /// Waits up to `timeout` for a notification (an append, or a node's heartbeat), then
    /// reads the log's head. Notifications are only a hint: the head is read either way.
    pub fn wait_for_head(&mut self, timeout: Duration) -> Result<u64, PostgresLogError> {
        use postgres::fallible_iterator::FallibleIterator;
        let position: i64 = self.run(|client| {
            {
                let mut notifications = client.notifications();
                if notifications.is_empty() {
                    notifications.timeout_iter(timeout).next()?;
                }
                // Whatever else came meanwhile is covered by the one read below.
                while notifications.iter().next()?.is_some() {}
            }
            client.query_one(HEAD, &[])?.try_get(0)
        })?;
        from_sql(position)
    }

    /// Writes this node's heartbeat (its applied position, now), notifying the other nodes
    /// when `notify`, and returns every node seen within `live_within`, this one included.
    pub fn heartbeat(
        &mut self,
        node_id: &str,
        applied: u64,
        live_within: Duration,
        notify: bool,
    ) -> Result<Vec<NodeHeartbeat>, PostgresLogError> {
        let applied = to_sql(applied)?;
        let within = live_within.as_secs_f64();
        let rows = self.run(|client| {
            client.execute(
                "INSERT INTO nodes (node_id, applied_position, last_seen) VALUES ($1, $2, now())
                 ON CONFLICT (node_id) DO UPDATE SET applied_position = EXCLUDED.applied_position, last_seen = now()",
                &[&node_id, &applied],
            )?;
            if notify {
                client.execute("SELECT pg_notify($1, $2)", &[&NODES_CHANNEL, &node_id])?;
            }
            client.query(
                "SELECT node_id, applied_position, extract(epoch FROM now() - last_seen)::float8 FROM nodes
                 WHERE last_seen > now() - make_interval(secs => $1) ORDER BY node_id",
                &[&within],
            )
        })?;
        rows.iter()
            .map(|row| {
                let age: f64 = row.try_get(2)?;
                Ok(NodeHeartbeat {
                    node_id: row.try_get(0)?,
                    applied: from_sql(row.try_get(1)?)?,
                    age: Duration::try_from_secs_f64(age.max(0.0)).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Whether this node holds the signer's lock, trying to take it if it does not.
    pub fn hold_signer_lock(&mut self) -> Result<bool, PostgresLogError> {
        if self.signer && self.client.as_ref().is_some_and(|client| !client.is_closed()) {
            return Ok(true);
        }
        let taken: bool =
            self.run(|client| client.query_one("SELECT pg_try_advisory_lock($1)", &[&SIGNER_LOCK])?.try_get(0))?;
        self.signer = taken;
        Ok(taken)
    }

    /// Lets go of the connection, and with it the signer's lock.
    pub fn disconnect(&mut self) {
        self.client = None;
        self.signer = false;
    }
}

/// A database's signed checkpoints: each the exact line `checkpoints.jsonl` would hold,
/// keyed by its size.
pub struct PostgresCheckpoints {
    connection: Mutex<Connection>,
}

impl std::fmt::Debug for PostgresCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresCheckpoints").finish_non_exhaustive()
    }
}

impl PostgresCheckpoints {
    /// Stores a checkpoint line, committed (and so durable) before it returns. Storing
    /// the same line again is a no-op (a retry after a lost connection may find it
    /// stored); another line at the same size is refused: a size is signed once.
    pub fn append(&self, size: u64, line: &str) -> Result<(), PostgresLogError> {
        let size = to_sql(size)?;
        let mut connection = lock(&self.connection);
        let stored: String = connection.run(|client, _| {
            client
                .query_one(
                    "WITH new AS (
                        INSERT INTO checkpoints (size, line) VALUES ($1, $2) ON CONFLICT (size) DO NOTHING RETURNING line
                    )
                    SELECT line FROM new UNION ALL SELECT line FROM checkpoints WHERE size = $1 LIMIT 1",
                    &[&size, &line],
                )?
                .try_get(0)
        })?;
        if stored != line {
            return Err(PostgresLogError::CheckpointConflict(size));
        }
        Ok(())
    }

    /// Every checkpoint line, oldest (smallest) first.
    pub fn lines(&self) -> Result<Vec<String>, PostgresLogError> {
        let mut connection = lock(&self.connection);
        let rows = connection.run(|client, _| client.query("SELECT line FROM checkpoints ORDER BY size", &[]))?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }
}

/// Fresh databases for tests, on the server `KEYLEDGER_TEST_DATABASE_URL` names.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A new, empty database (never migrated) on the test server, or `None` when
    /// `KEYLEDGER_TEST_DATABASE_URL` is not set.
    pub(crate) fn fresh_database() -> Option<Config> {
        let url = std::env::var("KEYLEDGER_TEST_DATABASE_URL").ok()?;
        let mut config = parse_url(&url).expect("KEYLEDGER_TEST_DATABASE_URL parses");
        let mut client = config.connect(NoTls).expect("the test database server answers");
        let name = format!("keyledger_test_{}", uuid::Uuid::new_v4().simple());
        client.batch_execute(&format!("CREATE DATABASE {name}")).expect("a test database is created");
        config.dbname(&name);
        Some(config)
    }

    /// The checkpoint store of a test database, without opening its log.
    pub(crate) fn open_checkpoints(config: &Config) -> PostgresCheckpoints {
        PostgresCheckpoints { connection: Mutex::new(Connection::new(config.clone(), &[])) }
    }

    /// Opens (migrating) the log in a test database.
    pub(crate) fn open(config: &Config) -> PostgresLog {
        PostgresLog::open_config(config.clone(), SchemaPolicy::Migrate).expect("the PostgreSQL log opens")
    }
}
