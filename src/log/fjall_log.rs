//! The log users run: records in a fjall keyspace, keyed by big-endian sequence number,
//! and the Merkle tree's complete subtrees in another, keyed by level and index; each
//! append is one atomic batch of both, synced to disk before it returns.
//!
//! The sync is `fdatasync` ([`DURABLE`]): fjall sets each journal file's length ahead
//! of its writes, and `fdatasync` flushes the written bytes and all metadata needed to
//! read them back (the blocks they were given, the length). It skips only what reading
//! does not need, such as the modification time, which `fsync` would also write on every
//! batch.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{AppendError, EventLog, StoredRecord, Tree, check_sequence, grow};
use crate::merkle::{Frontier, NodeId, ProofError, TreeHash};

/// What the fjall log can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FjallLogError {
    /// Another process has the data directory open.
    #[error("the data directory {} is in use by another keyledger process", .0.display())]
    Locked(PathBuf),
    /// fjall could not open (or create) the log at its path.
    #[error("cannot open the log at {}: {}", .path.display(), explain_open_failure(.source))]
    Open {
        /// The log's directory.
        path: PathBuf,
        /// What fjall said.
        source: fjall::Error,
    },
    /// fjall failed; after a failed write fjall refuses further writes until restart.
    #[error("storage error: {}", describe_storage_failure(.0))]
    Storage(#[from] fjall::Error),
    /// A key in the records keyspace is not an 8-byte sequence number.
    #[error("corrupt log: a record key is not a sequence number")]
    CorruptKey,
    /// The Merkle tree's stored nodes do not cover the records.
    #[error("corrupt log: {0}")]
    CorruptTree(String),
}

/// What is wrong with a log fjall could not open, and what to do, in one line: the
/// file-system advice for an I/O error, or fjall's own words for damage it found.
fn explain_open_failure(error: &fjall::Error) -> String {
    match error {
        fjall::Error::Io(io) | fjall::Error::Storage(fjall::LsmError::Io(io)) => crate::io_advice::explain(io),
        other => format!(
            "fjall could not recover it ({other:?}); keep a copy of the data directory as it is, \
             and restore it from a backup or a copy taken before the fault"
        ),
    }
}

/// fjall's failure in plain words: the system's message for an I/O error (such as "No
/// space left on device (os error 28)"), not fjall's debug output; fjall's own variant
/// otherwise.
fn describe_storage_failure(error: &fjall::Error) -> String {
    match error {
        fjall::Error::Io(io) | fjall::Error::Storage(fjall::LsmError::Io(io)) => io.to_string(),
        other => format!("fjall reported {other:?}"),
    }
}

/// How an append is made durable before it returns: `fdatasync` of the journal.
const DURABLE: PersistMode = PersistMode::SyncData;

/// The fjall-backed log.
pub struct FjallLog {
    database: Database,
    records: Keyspace,
    tree: Keyspace,
    /// The head and the tree's right edge, cached; the mutex also serialises appends.
    tip: Mutex<Tip>,
}

struct Tip {
    head: u64,
    frontier: Frontier,
}

impl std::fmt::Debug for FjallLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallLog").finish_non_exhaustive()
    }
}

impl FjallLog {
    /// Opens (creating if needed) the log in `path`. Fails with [`FjallLogError::Locked`]
    /// when another process holds it.
    pub fn open(path: &Path) -> Result<Self, FjallLogError> {
        let opening = |error| match error {
            fjall::Error::Locked => FjallLogError::Locked(path.to_owned()),
            source => FjallLogError::Open { path: path.to_owned(), source },
        };
        let database = Database::builder(path).open().map_err(opening)?;
        let records = database.keyspace("records", KeyspaceCreateOptions::default).map_err(opening)?;
        let tree = database.keyspace("tree", KeyspaceCreateOptions::default).map_err(opening)?;
        let head = match records.last_key_value() {
            Some(guard) => decode_seq(&guard.key()?)?,
            None => 0,
        };
        let log = Self { database, records, tree, tip: Mutex::new(Tip { head, frontier: Frontier::default() }) };
        let frontier = match Frontier::load(&Tree(&log), head) {
            Ok(frontier) => frontier,
            // A log written before the tree was kept: build it once from the records.
            Err(ProofError::MissingNode(_)) if log.tree.is_empty()? => log.build_tree(head)?,
            Err(ProofError::MissingNode(id)) => {
                return Err(FjallLogError::CorruptTree(format!(
                    "the tree node at level {} index {} is missing",
                    id.level, id.index
                )));
            }
            Err(ProofError::Storage(error)) => return Err(error),
            Err(ProofError::OutOfRange(message)) => return Err(FjallLogError::CorruptTree(message)),
        };
        log.tip.lock().unwrap_or_else(PoisonError::into_inner).frontier = frontier;
        Ok(log)
    }

    /// Builds the Merkle tree over the first `head` records, in synced batches.
    fn build_tree(&self, head: u64) -> Result<Frontier, FjallLogError> {
        tracing::info!(records = head, "building the Merkle tree over a log written without one");
        let mut frontier = Frontier::default();
        while frontier.size() < head {
            let chunk = self.read(frontier.size() + 1, 4096)?;
            if chunk.is_empty() {
                return Err(FjallLogError::CorruptTree(format!("record {} is missing", frontier.size() + 1)));
            }
            let mut batch = self.database.batch().durability(Some(DURABLE));
            for (id, hash) in grow(&mut frontier, &chunk) {
                batch.insert(&self.tree, id.to_key(), hash.as_bytes());
            }
            batch.commit()?;
        }
        Ok(frontier)
    }
}

fn decode_seq(key: &[u8]) -> Result<u64, FjallLogError> {
    <[u8; 8]>::try_from(key).map(u64::from_be_bytes).map_err(|_| FjallLogError::CorruptKey)
}

impl EventLog for FjallLog {
    type Error = FjallLogError;

    fn head(&self) -> Result<u64, FjallLogError> {
        Ok(self.tip.lock().unwrap_or_else(PoisonError::into_inner).head)
    }

    fn append(&self, expected_head: u64, new: &[StoredRecord]) -> Result<(), AppendError<FjallLogError>> {
        let mut tip = self.tip.lock().unwrap_or_else(PoisonError::into_inner);
        if tip.head != expected_head {
            return Err(AppendError::Conflict { expected: expected_head, actual: tip.head });
        }
        check_sequence(tip.head, new)?;
        let Some(last) = new.last() else {
            return Ok(());
        };
        let mut frontier = tip.frontier.clone();
        let mut batch = self.database.batch().durability(Some(DURABLE));
        for record in new {
            batch.insert(&self.records, record.seq.to_be_bytes(), record.bytes.as_slice());
        }
        for (id, hash) in grow(&mut frontier, new) {
            batch.insert(&self.tree, id.to_key(), hash.as_bytes());
        }
        batch.commit().map_err(|e| AppendError::Storage(e.into()))?;
        *tip = Tip { head: last.seq, frontier };
        Ok(())
    }

    fn tree_node(&self, id: NodeId) -> Result<Option<TreeHash>, FjallLogError> {
        let Some(value) = self.tree.get(id.to_key())? else { return Ok(None) };
        let bytes = <[u8; 32]>::try_from(&*value)
            .map_err(|_| FjallLogError::CorruptTree(format!("the node at level {} is not 32 bytes", id.level)))?;
        Ok(Some(TreeHash::from_bytes(bytes)))
    }

    fn requires_restart(&self, error: &FjallLogError) -> bool {
        matches!(error, FjallLogError::Storage(_))
    }

    fn read(&self, from_seq: u64, max: usize) -> Result<Vec<StoredRecord>, FjallLogError> {
        let mut out = Vec::with_capacity(max.min(4096));
        for guard in self.records.range(from_seq.to_be_bytes()..).take(max) {
            let (key, value) = guard.into_inner()?;
            out.push(StoredRecord { seq: decode_seq(&key)?, bytes: value.to_vec() });
        }
        Ok(out)
    }
}
