//! An in-memory log, for tests of the logic. Never what users run.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Mutex, PoisonError};

use super::{AppendError, EventLog, StoredRecord, check_sequence, grow};
use crate::merkle::{Frontier, NodeId, TreeHash};

/// A log held in a vector.
#[derive(Debug, Default)]
pub struct MemoryLog {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    records: Vec<StoredRecord>,
    nodes: HashMap<NodeId, TreeHash>,
    frontier: Frontier,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl EventLog for MemoryLog {
    type Error = Infallible;

    fn head(&self) -> Result<u64, Infallible> {
        Ok(self.lock().records.len() as u64)
    }

    fn append(&self, expected_head: u64, new: &[StoredRecord]) -> Result<(), AppendError<Infallible>> {
        let mut inner = self.lock();
        let actual = inner.records.len() as u64;
        if actual != expected_head {
            return Err(AppendError::Conflict { expected: expected_head, actual });
        }
        check_sequence(actual, new)?;
        let created = grow(&mut inner.frontier, new);
        inner.nodes.extend(created);
        inner.records.extend_from_slice(new);
        Ok(())
    }

    fn read(&self, from_seq: u64, max: usize) -> Result<Vec<StoredRecord>, Infallible> {
        let inner = self.lock();
        let start = usize::try_from(from_seq.saturating_sub(1)).unwrap_or(usize::MAX).min(inner.records.len());
        Ok(inner.records[start..].iter().take(max).cloned().collect())
    }

    fn tree_node(&self, id: NodeId) -> Result<Option<TreeHash>, Infallible> {
        Ok(self.lock().nodes.get(&id).copied())
    }
}
