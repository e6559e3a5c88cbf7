//! The durable, hash-chained event log.
//!
//! [`EventLog`] is the narrow storage trait: append records at an expected position,
//! read from a position, ask for the head. [`FjallLog`] is the one users run on one node,
//! [`PostgresLog`] the one for several (issue #12), [`AnyLog`] either of them as a server
//! runs it; [`MemoryLog`] exists for tests of the logic. The record format and the chain live in
//! [`record`], which does no I/O.
//!
//! The log is also a Merkle tree ([`crate::merkle`]): every append stores, in the same
//! atomic batch as the records, the complete subtrees the new leaves complete, so any
//! root or proof is O(log n) node reads away.

mod any;
mod fjall_log;
mod memory;
pub mod postgres;
pub mod record;

#[cfg(test)]
mod tests;

pub use any::{AnyLog, AnyLogError};
pub use fjall_log::{FjallLog, FjallLogError};
pub use memory::MemoryLog;
pub use postgres::{NodeHeartbeat, PostgresCheckpoints, PostgresFollower, PostgresLog, PostgresLogError, SchemaPolicy};
pub use record::{ChainError, ChainHash, ChainVerifier, Record, RecordError, StoredRecord};

use crate::merkle::{self, Frontier, NodeId, Nodes, TreeHash};

/// Why an append did not happen. A failed append has written nothing.
#[derive(Debug, thiserror::Error)]
pub enum AppendError<E: std::error::Error + 'static> {
    /// The log's head is not where the caller expected: someone else appended.
    #[error("the log is at {actual}, not at the expected {expected}")]
    Conflict {
        /// The head the caller expected.
        expected: u64,
        /// The head the log is at.
        actual: u64,
    },
    /// The records do not continue the log: their sequence numbers are not
    /// `expected + 1, expected + 2, …`.
    #[error("records must be numbered from {first_expected} without gaps")]
    OutOfSequence {
        /// The number the first record should have.
        first_expected: u64,
    },
    /// The storage failed.
    #[error(transparent)]
    Storage(E),
}

impl<E: std::error::Error + 'static> AppendError<E> {
    /// The same refusal, with the storage's error converted by `convert`.
    pub fn map_storage<F: std::error::Error + 'static>(self, convert: impl FnOnce(E) -> F) -> AppendError<F> {
        match self {
            AppendError::Conflict { expected, actual } => AppendError::Conflict { expected, actual },
            AppendError::OutOfSequence { first_expected } => AppendError::OutOfSequence { first_expected },
            AppendError::Storage(error) => AppendError::Storage(convert(error)),
        }
    }
}

/// An append-only log of records, numbered from 1 without gaps.
pub trait EventLog: Send + Sync + 'static {
    /// What the storage can fail with.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The sequence number of the last record; 0 when the log is empty.
    fn head(&self) -> Result<u64, Self::Error>;

    /// Appends records atomically and durably, if the log's head is `expected_head`.
    ///
    /// On `Ok` every record is on stable storage; on `Err` none was appended.
    fn append(&self, expected_head: u64, records: &[StoredRecord]) -> Result<(), AppendError<Self::Error>>;

    /// Reads up to `max` records with sequence numbers from `from_seq` on, in order.
    fn read(&self, from_seq: u64, max: usize) -> Result<Vec<StoredRecord>, Self::Error>;

    /// A complete subtree of the Merkle tree over the records, if the log holds it.
    fn tree_node(&self, id: NodeId) -> Result<Option<TreeHash>, Self::Error>;

    /// Whether the log can take no more appends after this error until the process
    /// restarts (fjall refuses all writes after a failed one: the safe recovery from an
    /// I/O error is a restart, which replays its journal).
    fn requires_restart(&self, _error: &Self::Error) -> bool {
        false
    }

    /// Whether this error leaves unknown whether the append was written (a connection lost
    /// while it committed): the writer reads the log back to learn it.
    fn outcome_unknown(&self, _error: &Self::Error) -> bool {
        false
    }
}

/// The Merkle tree of a log, for computing roots and proofs from its stored nodes.
#[derive(Debug, Clone, Copy)]
pub struct Tree<'a, L>(pub &'a L);

impl<L: EventLog> Nodes for Tree<'_, L> {
    type Error = L::Error;

    fn node(&self, id: NodeId) -> Result<Option<TreeHash>, L::Error> {
        self.0.tree_node(id)
    }
}

/// The tree nodes that appending `records` to a tree with `frontier` creates, in order;
/// `frontier` moves on past them.
fn grow(frontier: &mut Frontier, records: &[StoredRecord]) -> Vec<(NodeId, TreeHash)> {
    let mut created = Vec::with_capacity(records.len() * 2 + 64);
    for record in records {
        frontier.push(merkle::leaf_hash(&record.bytes), |id, hash| created.push((id, hash)));
    }
    created
}

/// Checks that `records` continue a log whose head is `head`.
fn check_sequence<E: std::error::Error>(head: u64, records: &[StoredRecord]) -> Result<(), AppendError<E>> {
    let in_sequence = records.iter().zip(head + 1..).all(|(record, expected)| record.seq == expected);
    if in_sequence { Ok(()) } else { Err(AppendError::OutOfSequence { first_expected: head + 1 }) }
}
