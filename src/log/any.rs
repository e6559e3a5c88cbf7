//! The log a server runs on: fjall in a data directory (one node, the default) or
//! PostgreSQL (`--database-url`). One type, so the HTTP layer and the command line are
//! written once for both.

use super::{AppendError, EventLog, FjallLog, FjallLogError, PostgresLog, PostgresLogError, StoredRecord};
use crate::merkle::{NodeId, TreeHash};

/// A fjall or a PostgreSQL log.
#[derive(Debug)]
pub enum AnyLog {
    /// The embedded log in a data directory.
    Fjall(FjallLog),
    /// The log in a PostgreSQL database (boxed: its connections' settings are large).
    Postgres(Box<PostgresLog>),
}

/// What either log can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnyLogError {
    /// The fjall log failed.
    #[error(transparent)]
    Fjall(#[from] FjallLogError),
    /// The PostgreSQL log failed.
    #[error(transparent)]
    Postgres(#[from] PostgresLogError),
}

impl From<FjallLog> for AnyLog {
    fn from(log: FjallLog) -> Self {
        AnyLog::Fjall(log)
    }
}

impl From<PostgresLog> for AnyLog {
    fn from(log: PostgresLog) -> Self {
        AnyLog::Postgres(Box::new(log))
    }
}

impl EventLog for AnyLog {
    type Error = AnyLogError;

    fn head(&self) -> Result<u64, AnyLogError> {
        match self {
            AnyLog::Fjall(log) => Ok(log.head()?),
            AnyLog::Postgres(log) => Ok(log.head()?),
        }
    }

    fn append(&self, expected_head: u64, records: &[StoredRecord]) -> Result<(), AppendError<AnyLogError>> {
        match self {
            AnyLog::Fjall(log) => log.append(expected_head, records).map_err(|e| e.map_storage(AnyLogError::Fjall)),
            AnyLog::Postgres(log) => {
                log.append(expected_head, records).map_err(|e| e.map_storage(AnyLogError::Postgres))
            }
        }
    }

    fn read(&self, from_seq: u64, max: usize) -> Result<Vec<StoredRecord>, AnyLogError> {
        match self {
            AnyLog::Fjall(log) => Ok(log.read(from_seq, max)?),
            AnyLog::Postgres(log) => Ok(log.read(from_seq, max)?),
        }
    }

    fn tree_node(&self, id: NodeId) -> Result<Option<TreeHash>, AnyLogError> {
        match self {
            AnyLog::Fjall(log) => Ok(log.tree_node(id)?),
            AnyLog::Postgres(log) => Ok(log.tree_node(id)?),
        }
    }

    fn requires_restart(&self, error: &AnyLogError) -> bool {
        match (self, error) {
            (AnyLog::Fjall(log), AnyLogError::Fjall(error)) => log.requires_restart(error),
            (AnyLog::Postgres(log), AnyLogError::Postgres(error)) => log.requires_restart(error),
            _ => false,
        }
    }

    fn outcome_unknown(&self, error: &AnyLogError) -> bool {
        match (self, error) {
            (AnyLog::Postgres(log), AnyLogError::Postgres(error)) => log.outcome_unknown(error),
            _ => false,
        }
    }
}

impl AnyLog {
    /// A follower of the log, when other processes may append to it (PostgreSQL).
    pub fn follower(&self) -> Option<super::PostgresFollower> {
        match self {
            AnyLog::Fjall(_) => None,
            AnyLog::Postgres(log) => Some(log.follower()),
        }
    }
}
