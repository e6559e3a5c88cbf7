//! The log users run: records in a fjall keyspace, keyed by big-endian sequence number,
//! each append one atomic batch synced to disk before it returns.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{AppendError, EventLog, StoredRecord, check_sequence};

/// What the fjall log can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FjallLogError {
    /// Another process has the data directory open.
    #[error("the data directory {} is in use by another keyledger process", .0.display())]
    Locked(PathBuf),
    /// fjall failed; after a failed write fjall refuses further writes until restart.
    #[error("storage error: {0}")]
    Storage(#[from] fjall::Error),
    /// A key in the records keyspace is not an 8-byte sequence number.
    #[error("corrupt log: a record key is not a sequence number")]
    CorruptKey,
}

/// The fjall-backed log.
pub struct FjallLog {
    database: Database,
    records: Keyspace,
    /// The head, cached; the mutex also serialises appends.
    head: Mutex<u64>,
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
        let database = Database::builder(path).open().map_err(|e| match e {
            fjall::Error::Locked => FjallLogError::Locked(path.to_owned()),
            other => FjallLogError::Storage(other),
        })?;
        let records = database.keyspace("records", KeyspaceCreateOptions::default)?;
        let head = match records.last_key_value() {
            Some(guard) => decode_seq(&guard.key()?)?,
            None => 0,
        };
        Ok(Self { database, records, head: Mutex::new(head) })
    }
}

fn decode_seq(key: &[u8]) -> Result<u64, FjallLogError> {
    <[u8; 8]>::try_from(key).map(u64::from_be_bytes).map_err(|_| FjallLogError::CorruptKey)
}

impl EventLog for FjallLog {
    type Error = FjallLogError;

    fn head(&self) -> Result<u64, FjallLogError> {
        Ok(*self.head.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn append(&self, expected_head: u64, new: &[StoredRecord]) -> Result<(), AppendError<FjallLogError>> {
        let mut head = self.head.lock().unwrap_or_else(PoisonError::into_inner);
        if *head != expected_head {
            return Err(AppendError::Conflict { expected: expected_head, actual: *head });
        }
        check_sequence(*head, new)?;
        let Some(last) = new.last() else {
            return Ok(());
        };
        let mut batch = self.database.batch().durability(Some(PersistMode::SyncAll));
        for record in new {
            batch.insert(&self.records, record.seq.to_be_bytes(), record.bytes.as_slice());
        }
        batch.commit().map_err(|e| AppendError::Storage(e.into()))?;
        *head = last.seq;
        Ok(())
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
