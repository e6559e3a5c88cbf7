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
    /// Whether it was imported (`KeyImported`) rather than issued by keyledger.
    pub legacy: bool,
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
            }
            | Event::KeyImported { user_id, key_id, key_hash, expires_at, replaced_key_id, replaced_key_valid_until } =>
            {
                if let Some(replaced) = replaced_key_id.as_ref().and_then(|id| self.get_mut(id)) {
                    replaced.replaced = Some((at, key_id.clone()));
                    replaced.grace_until = *replaced_key_valid_until;
                }
                self.issue(key_id, *key_hash, user_id, record.seq, at, *expires_at);
                if let (Event::KeyImported { .. }, Some(imported)) = (&record.event, self.keys.last_mut()) {
                    imported.legacy = true;
                }
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
            legacy: false,
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

/// A key's entry in one usage record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEntry {
    /// The usage record's position.
    pub seq: u64,
    /// Checks the key passed.
    pub allowed: u64,
    /// Checks the key failed while it was known.
    pub refused: u64,
    /// The first of those checks.
    pub first_used_at: Timestamp,
    /// The last of those checks.
    pub last_used_at: Timestamp,
}

/// What the log says about one key, found by the hash of its secret.
#[derive(Debug)]
pub struct Lookup {
    /// Every key, folded from the whole log (the found one is `history.by_hash`).
    pub history: KeyHistory,
    /// The records about the key, as stored: the one that issued it, the one that replaced
    /// it, its revocation, refused admin requests it made, and earlier lookups of it.
    pub records: Vec<StoredRecord>,
    /// Its entry in every usage record that counts it (usage records are about many keys,
    /// so they are searched inside rather than listed whole).
    pub usage: Vec<UsageEntry>,
}

impl Lookup {
    /// The key found.
    pub fn key(&self, hash: &KeyHash) -> Option<&IssuedKey> {
        self.history.by_hash(hash)
    }
}

/// Whether a record is about the key `key_id` (usage records aside).
fn is_about(event: &Event, key_id: &KeyId) -> bool {
    match event {
        Event::KeyGenerated { key_id: id, replaced_key_id, .. }
        | Event::KeyImported { key_id: id, replaced_key_id, .. } => {
            id == key_id || replaced_key_id.as_ref() == Some(key_id)
        }
        Event::KeyRevoked { key_id: id, .. }
        | Event::AdminAccessDenied { key_id: id, .. }
        | Event::AdministratorRecovered { key_id: id, .. }
        | Event::KeyLookedUp { key_id: id, .. } => id == key_id,
        _ => false,
    }
}

/// The key's entries in a usage record.
fn usage_of(record: &Record, key_id: &KeyId) -> Option<UsageEntry> {
    match &record.event {
        Event::KeyUsageRecorded { key_id: id, allowed, refused, first_used_at, last_used_at, .. } if id == key_id => {
            Some(UsageEntry {
                seq: record.seq,
                allowed: *allowed,
                refused: *refused,
                first_used_at: *first_used_at,
                last_used_at: *last_used_at,
            })
        }
        Event::KeyUsageIntervalRecorded { from, keys, .. } => {
            keys.iter().find(|used| used.key_id == *key_id).map(|used| UsageEntry {
                seq: record.seq,
                allowed: used.allowed,
                refused: used.refused,
                first_used_at: used.first_used_at(*from),
                last_used_at: used.last_used_at(*from),
            })
        }
        _ => None,
    }
}

/// Looks a key up by the hash of its secret, in one read of the whole log; `None` if no
/// key with that hash was ever issued.
pub fn look_up<L: EventLog>(log: &L, hash: &KeyHash) -> Result<Option<Lookup>, ScanError<L::Error>> {
    let mut history = KeyHistory::default();
    let (mut found, mut records, mut usage) = (None::<KeyId>, Vec::new(), Vec::new());
    scan(log, |stored, record| {
        history.apply(record);
        if found.is_none() {
            found = match &record.event {
                Event::KeyGenerated { key_id, key_hash, .. }
                | Event::KeyImported { key_id, key_hash, .. }
                | Event::AdministratorRecovered { key_id, key_hash, .. }
                    if key_hash == hash =>
                {
                    Some(key_id.clone())
                }
                _ => None,
            };
        }
        let Some(key_id) = &found else { return };
        if is_about(&record.event, key_id) {
            records.push(stored.clone());
        } else if let Some(entry) = usage_of(record, key_id) {
            usage.push(entry);
        }
    })?;
    Ok(found.map(|_| Lookup { history, records, usage }))
}
