//! An in-memory log, for tests of the logic. Never what users run.

use std::convert::Infallible;
use std::sync::{Mutex, PoisonError};

use super::{AppendError, EventLog, StoredRecord, check_sequence};

/// A log held in a vector.
#[derive(Debug, Default)]
pub struct MemoryLog {
    records: Mutex<Vec<StoredRecord>>,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }
}

impl EventLog for MemoryLog {
    type Error = Infallible;

    fn head(&self) -> Result<u64, Infallible> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(records.len() as u64)
    }

    fn append(&self, expected_head: u64, new: &[StoredRecord]) -> Result<(), AppendError<Infallible>> {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let actual = records.len() as u64;
        if actual != expected_head {
            return Err(AppendError::Conflict { expected: expected_head, actual });
        }
        check_sequence(actual, new)?;
        records.extend_from_slice(new);
        Ok(())
    }

    fn read(&self, from_seq: u64, max: usize) -> Result<Vec<StoredRecord>, Infallible> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let start = usize::try_from(from_seq.saturating_sub(1)).unwrap_or(usize::MAX).min(records.len());
        Ok(records[start..].iter().take(max).cloned().collect())
    }
}
