//! Every key ever issued, as the log tells it: when it was generated, replaced and
//! revoked, and how much it was used. The permission view forgets keys that no longer
//! matter to a check (a key replaced without grace); the credential report
//! (`getCredentialReport`) and the leaked-key lookup (`lookupKey`) need all of them, so
//! they read the log from its first record and fold it here.
//!
//! The fold knows key ids and hashes, never secrets: the log holds none.

use std::collections::HashMap;

use crate::domain::{Event, KeyHash, KeyId, Timestamp, UserId};
use crate::log::record::{self, Record, RecordError};
use crate::log::{EventLog, StoredRecord};

/// How many records one read of the log takes.
const READ_CHUNK: usize = 1000;

/// One key, from its `KeyGenerated` (or `AdministratorRecovered`) on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedKey {
    /// The key's public id.
    pub key_id: KeyId,
    /// The blake3 hash of its secret.
    pub key_hash: KeyHash,
    /// Its user.
    pub user_id: UserId,
    /// The position of the record that issued it.
    pub issued_seq: u64,
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it expires, if it does.
    pub expires_at: Option<Timestamp>,
    /// When a newer key replaced it, and which.
    pub replaced: Option<(Timestamp, KeyId)>,
    /// For a replaced key, until when it kept working (`None`: it stopped at once).
    pub grace_until: Option<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// The latest recorded use.
    pub last_used_at: Option<Timestamp>,
    /// Recorded checks it passed.
    pub allowed: u64,
    /// Recorded checks it failed while it was known.
    pub refused: u64,
}

/// Every key issued up to a point of the log, in the order they were issued.
#[derive(Debug, Default)]
pub struct KeyHistory {
    keys: Vec<IssuedKey>,
    by_id: HashMap<KeyId, usize>,
    /// How many records were folded.
    size: u64,
}

impl KeyHistory {
    /// Folds one record in.
    pub fn apply(&mut self, record: &Record) {
        self.size = record.seq;
        let at = record.at;
        match &record.event {
            Event::KeyGenerated {
                user_id,
                key_id,
                key_hash,
                expires_at,
                replaced_key_id,
                replaced_key_valid_until,
            } => {
                if let Some(replaced) = replaced_key_id.as_ref().and_then(|id| self.get_mut(id)) {
                    replaced.replaced = Some((at, key_id.clone()));
                    replaced.grace_until = *replaced_key_valid_until;
                }
                self.issue(key_id, *key_hash, user_id, record.seq, at, *expires_at);
            }
            Event::AdministratorRecovered { user_id, key_id, key_hash, .. } => {
                self.issue(key_id, *key_hash, user_id, record.seq, at, None);
            }
            Event::KeyRevoked { key_id, .. } => {
                if let Some(key) = self.get_mut(key_id) {
                    key.revoked_at.get_or_insert(at);
                }
            }
            Event::KeyUsageRecorded { key_id, allowed, refused, last_used_at, .. } => {
                if let Some(key) = self.get_mut(key_id) {
                    key.count(*allowed, *refused, *last_used_at);
                }
            }
            Event::KeyUsageIntervalRecorded { from, keys, .. } => {
                for used in keys {
                    if let Some(key) = self.get_mut(&used.key_id) {
                        key.count(used.allowed, used.refused, used.last_used_at(*from));
                    }
                }
            }
            _ => {}
        }
    }

    fn issue(
        &mut self,
        key_id: &KeyId,
        key_hash: KeyHash,
        user_id: &UserId,
        seq: u64,
        at: Timestamp,
        expires_at: Option<Timestamp>,
    ) {
        self.by_id.insert(key_id.clone(), self.keys.len());
        self.keys.push(IssuedKey {
            key_id: key_id.clone(),
            key_hash,
            user_id: user_id.clone(),
            issued_seq: seq,
            created_at: at,
            expires_at,
            replaced: None,
            grace_until: None,
            revoked_at: None,
            last_used_at: None,
            allowed: 0,
            refused: 0,
        });
    }

    fn get_mut(&mut self, key_id: &KeyId) -> Option<&mut IssuedKey> {
        self.by_id.get(key_id).and_then(|&index| self.keys.get_mut(index))
    }

    /// Every key, in the order issued.
    pub fn keys(&self) -> &[IssuedKey] {
        &self.keys
    }

    /// The key whose secret hashes to `hash`, if one was issued.
    pub fn by_hash(&self, hash: &KeyHash) -> Option<&IssuedKey> {
        self.keys.iter().find(|key| key.key_hash == *hash)
    }

    /// How many records were folded: the log position the history is of.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl IssuedKey {
    fn count(&mut self, allowed: u64, refused: u64, last: Timestamp) {
        self.allowed = self.allowed.saturating_add(allowed);
        self.refused = self.refused.saturating_add(refused);
        if self.last_used_at.is_none_or(|known| known < last) {
            self.last_used_at = Some(last);
        }
    }
}

/// Why the log could not be read to the end.
#[derive(Debug, thiserror::Error)]
pub enum ScanError<E: std::error::Error + 'static> {
    /// The storage failed.
    #[error("reading the log failed: {0}")]
    Storage(#[source] E),
    /// A stored record does not decode.
    #[error("record {seq} does not decode: {error}")]
    Record {
        /// Its position.
        seq: u64,
        /// What is wrong with it.
        error: RecordError,
    },
}

/// Reads every record of the log in order, up to its head when the scan began, and hands
/// each to `visit` with the record as stored.
pub fn scan<L: EventLog>(log: &L, mut visit: impl FnMut(&StoredRecord, &Record)) -> Result<u64, ScanError<L::Error>> {
    let head = log.head().map_err(ScanError::Storage)?;
    let mut next = 1;
    while next <= head {
        let wanted = usize::try_from(head - next + 1).unwrap_or(READ_CHUNK).min(READ_CHUNK);
        let chunk = log.read(next, wanted).map_err(ScanError::Storage)?;
        if chunk.is_empty() {
            break;
        }
        for stored in &chunk {
            let decoded =
                record::decode(&stored.bytes).map_err(|error| ScanError::Record { seq: stored.seq, error })?;
            visit(stored, &decoded);
            next = stored.seq + 1;
        }
    }
    Ok(head)
}

/// The history of every key, read from the whole log.
pub fn read<L: EventLog>(log: &L) -> Result<KeyHistory, ScanError<L::Error>> {
    let mut history = KeyHistory::default();
    scan(log, |_, record| history.apply(record))?;
    Ok(history)
}
