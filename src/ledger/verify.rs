//! Log verification (`keyledger verify-log`, `verifyAuditLog`): the whole log, from
//! storage, against its Merkle tree and every signed checkpoint.

use crate::checkpoint::{Checkpoint, PublicKey};
use crate::log::{ChainError, ChainHash, EventLog, Tree};

use super::REPLAY_CHUNK;
use super::replay::{Ahead, Prepared, ReplayError, Unauthorised, VerifiedReplay};

/// The outcome of verifying a log: its chain, its Merkle tree and its checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The log's head when verification started: the records it covers.
    pub size: u64,
    /// How many records verified, from the first, before any failure.
    pub verified: u64,
    /// The hash of the last verified record.
    pub head_hash: ChainHash,
    /// How many signed checkpoints the records were found to match.
    pub checkpoints: u64,
    /// The first failure, if any.
    pub error: Option<VerifyError>,
}

impl Verification {
    /// Whether every record up to the head verified.
    pub fn is_valid(&self) -> bool {
        self.error.is_none() && self.verified == self.size
    }
}

/// Why a log did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A record, or the chain between records, is broken.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A record is intact, but its actor was not allowed to make it: the authority rules
    /// refuse it in the state just before it.
    #[error("record {seq}: {unauthorised}", seq = .0.seq, unauthorised = .0)]
    Unauthorised(Unauthorised),
    /// The Merkle tree stored beside the records is not the tree of the records.
    #[error("the Merkle tree stored for the first {size} records does not match them")]
    Tree {
        /// How many records were compared.
        size: u64,
    },
    /// A signed checkpoint does not match the records.
    #[error("the checkpoint at size {size} does not match the log: {reason}")]
    Checkpoint {
        /// The checkpoint's size.
        size: u64,
        /// What does not match.
        reason: String,
    },
}

impl From<ReplayError> for VerifyError {
    fn from(error: ReplayError) -> Self {
        match error {
            ReplayError::Chain(error) => VerifyError::Chain(error),
            ReplayError::Unauthorised(error) => VerifyError::Unauthorised(error),
        }
    }
}

/// Verifies every record of a log, in order: hashes, links, sequence and unique ids, that
/// every record decodes into an event this build can replay, and that its actor was
/// allowed to make it (the authority rules, in the state just before it); that the Merkle
/// tree stored beside the records is theirs; and that every checkpoint in `checkpoints` is
/// signed by `key` (when given) and signs the root of the records at its size. The log's
/// head is read first and the records up to it are verified, so writes landing meanwhile
/// neither fail nor extend the verification.
pub fn verify_log<L: EventLog>(
    log: &L,
    checkpoints: &[Checkpoint],
    key: Option<&PublicKey>,
) -> Result<Verification, L::Error> {
    let head = log.head()?;
    let mut replay = VerifiedReplay::new();
    let mut checked = CheckpointsDue { pending: checkpoints.iter().filter(|c| c.size <= head).peekable(), matched: 0 };
    let outcome = |replay: &VerifiedReplay, matched: u64, error: Option<VerifyError>| Verification {
        size: head,
        verified: replay.size(),
        head_hash: replay.head_hash(),
        checkpoints: matched,
        error,
    };
    // Checkpoints at size 0 are checked before any record.
    if let Err(error) = checked.check_up_to(&replay, key) {
        return Ok(outcome(&replay, checked.matched, Some(error)));
    }
    // Reading, decoding and hashing the records (what each needs alone) run on a thread
    // of their own, up to two chunks ahead; the chain links, the authority rules, the
    // Merkle frontier and the state are checked and applied in order on this one.
    let stopped = std::thread::scope(|scope| -> Result<Option<VerifyError>, L::Error> {
        let mut ahead = Ahead::spawn(scope, |(from, wanted): (u64, usize)| {
            let chunk = log.read(from, wanted)?;
            let prepared: Vec<Prepared> = chunk.iter().map(|stored| Prepared::of(&stored.bytes)).collect();
            Ok::<_, L::Error>((wanted, chunk, prepared))
        });
        let mut next_from = replay.size() + 1;
        while replay.size() < head {
            while ahead.in_flight() < 2 && next_from <= head {
                let wanted = usize::try_from(head - next_from + 1).unwrap_or(usize::MAX).min(REPLAY_CHUNK);
                ahead.submit((next_from, wanted));
                next_from += wanted as u64;
            }
            // `None` only if the thread panicked, which the scope passes on.
            let Some(read) = ahead.next() else { break };
            let (wanted, chunk, prepared) = read?;
            if chunk.is_empty() {
                return Ok(Some(ChainError::Gap { expected: replay.size() + 1, found: head }.into()));
            }
            for (stored, prepared) in chunk.iter().zip(prepared) {
                // Every checkpoint at the size reached is checked before going on.
                let accepted = replay
                    .push_prepared(stored.seq, prepared)
                    .map_err(VerifyError::from)
                    .and_then(|_| checked.check_up_to(&replay, key));
                if let Err(error) = accepted {
                    return Ok(Some(error));
                }
            }
            // A short read: the chunks asked for ahead start in the wrong place.
            if chunk.len() < wanted {
                while ahead.next().is_some() {}
                next_from = replay.size() + 1;
            }
        }
        Ok(None)
    })?;
    if let Some(error) = stopped {
        return Ok(outcome(&replay, checked.matched, Some(error)));
    }
    let error = replay.check_stored_tree(&Tree(log)).is_err().then_some(VerifyError::Tree { size: head });
    Ok(outcome(&replay, checked.matched, error))
}

/// The checkpoints still to be checked, in order of size, and how many matched so far.
struct CheckpointsDue<'a, I: Iterator<Item = &'a Checkpoint>> {
    pending: std::iter::Peekable<I>,
    matched: u64,
}

impl<'a, I: Iterator<Item = &'a Checkpoint>> CheckpointsDue<'a, I> {
    /// Checks every pending checkpoint no larger than the size the replay reached: signed
    /// by `key` (when given), at that size, over the root of the records.
    fn check_up_to(&mut self, replay: &VerifiedReplay, key: Option<&PublicKey>) -> Result<(), VerifyError> {
        while let Some(checkpoint) = self.pending.next_if(|checkpoint| checkpoint.size <= replay.size()) {
            let mismatch = |reason: &str| VerifyError::Checkpoint { size: checkpoint.size, reason: reason.into() };
            if key.is_some_and(|key| !checkpoint.is_signed_by(key)) {
                return Err(mismatch("it is not signed by this service's key"));
            }
            if checkpoint.size != replay.size() || checkpoint.root != replay.root() {
                return Err(mismatch("the Merkle root of the records is not the one signed"));
            }
            self.matched += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Actor, Event, Timestamp, UserId};
    use crate::log::record::{self, Envelope, RecordError, StoredRecord};
    use crate::log::{AppendError, MemoryLog};
    use crate::merkle::{NodeId, TreeHash};

    /// A record creating a user named `name`, made by keyledger itself (allowed while the
    /// log holds no administrator), chained from `prev`.
    fn user_created(seq: u64, id: u64, name: &str, prev: ChainHash) -> (StoredRecord, ChainHash) {
        let envelope = Envelope {
            seq,
            at: Timestamp::from_unix_millis(1_800_000_000_000),
            actor: Actor::System,
            justification: None,
        };
        let event = Event::UserCreated {
            user_id: UserId::parse(&format!("usr_{id:016x}")).unwrap(),
            name: name.to_owned(),
            email: None,
        };
        record::encode(&envelope, &event, prev)
    }

    /// `n` records creating users "User 1" to "User n", chained from the first.
    fn users(n: u64) -> Vec<StoredRecord> {
        let mut prev = ChainHash::GENESIS;
        (1..=n)
            .map(|seq| {
                let (stored, hash) = user_created(seq, seq, &format!("User {seq}"), prev);
                prev = hash;
                stored
            })
            .collect()
    }

    fn log_of(records: &[StoredRecord]) -> MemoryLog {
        let log = MemoryLog::new();
        log.append(0, records).unwrap();
        log
    }

    /// `records` with the description of record `seq` edited: its hash no longer matches.
    fn tamper(records: &mut [StoredRecord], seq: u64) {
        let text = String::from_utf8(records[seq as usize - 1].bytes.clone()).unwrap();
        let edited = text.replace(&format!("\"User {seq}\""), "\"User X\"");
        assert_ne!(edited, text);
        records[seq as usize - 1].bytes = edited.into_bytes();
    }

    /// The chunks read ahead on the other thread meet in the middle of the log: a record
    /// edited at the last place of a chunk, or the first of the next, or two records
    /// edited in different chunks, is named exactly as verifying one record at a time
    /// names it, with every record before it verified.
    #[test]
    fn a_record_tampered_with_at_a_chunk_boundary_is_named_by_the_read_ahead_path() {
        let chunk = REPLAY_CHUNK as u64;
        let size = 2 * chunk + 10;
        let intact = users(size);
        let verification = verify_log(&log_of(&intact), &[], None).unwrap();
        assert!(verification.is_valid(), "{verification:?}");
        assert_eq!(verification.head_hash, record::decode(&intact.last().unwrap().bytes).unwrap().hash);

        for seq in [chunk - 1, chunk, chunk + 1, 2 * chunk, 2 * chunk + 1, size] {
            let mut records = intact.clone();
            tamper(&mut records, seq);
            // A later edit, in the same chunk or the next, must not be the one named.
            for later in [seq + 2, seq + chunk] {
                if later <= size {
                    tamper(&mut records, later);
                }
            }
            let verification = verify_log(&log_of(&records), &[], None).unwrap();
            assert_eq!(
                (verification.verified, verification.error),
                (seq - 1, Some(VerifyError::Chain(ChainError::Record(RecordError::HashMismatch { seq })))),
                "record {seq} edited"
            );
            assert_eq!(verification.head_hash, record::decode(&intact[seq as usize - 2].bytes).unwrap().hash);
        }

        // A record re-sealed with a fresh hash of its own at the first place of a chunk: its
        // link to the record before, the last of the chunk before, is broken.
        let mut records = intact.clone();
        let seq = chunk + 1;
        records[seq as usize - 1] = user_created(seq, 0xff, "F", ChainHash::GENESIS).0;
        let verification = verify_log(&log_of(&records), &[], None).unwrap();
        assert_eq!(
            (verification.verified, verification.error),
            (chunk, Some(VerifyError::Chain(ChainError::Broken { seq })))
        );
    }

    /// A log whose reads answer fewer records than asked, as a store may at any size.
    struct ShortReads(MemoryLog);

    impl EventLog for ShortReads {
        type Error = <MemoryLog as EventLog>::Error;

        fn head(&self) -> Result<u64, Self::Error> {
            self.0.head()
        }

        fn append(&self, expected_head: u64, records: &[StoredRecord]) -> Result<(), AppendError<Self::Error>> {
            self.0.append(expected_head, records)
        }

        fn read(&self, from_seq: u64, max: usize) -> Result<Vec<StoredRecord>, Self::Error> {
            self.0.read(from_seq, max.min(1000 + (from_seq as usize % 7)))
        }

        fn tree_node(&self, id: NodeId) -> Result<Option<TreeHash>, Self::Error> {
            self.0.tree_node(id)
        }
    }

    #[test]
    fn a_log_that_reads_fewer_records_than_asked_verifies_whole_and_names_the_same_failure() {
        let size = 3 * REPLAY_CHUNK as u64;
        let mut records = users(size);
        let verification = verify_log(&ShortReads(log_of(&records)), &[], None).unwrap();
        assert!(verification.is_valid(), "{verification:?}");
        assert_eq!(verification.verified, size);

        let seq = REPLAY_CHUNK as u64 + 500;
        tamper(&mut records, seq);
        let verification = verify_log(&ShortReads(log_of(&records)), &[], None).unwrap();
        assert_eq!(
            (verification.verified, verification.error),
            (seq - 1, Some(VerifyError::Chain(ChainError::Record(RecordError::HashMismatch { seq }))))
        );
    }
}
