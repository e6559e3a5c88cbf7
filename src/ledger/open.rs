//! What opening the ledger checks before it serves: the records replayed from the newest
//! usable snapshot (or the first record), the Merkle tree stored beside them, and the
//! latest signed checkpoint.

use crate::checkpoint::{Checkpoint, PublicKey};
use crate::domain::{FingerprintCache, State, Timestamp};
use crate::log::{ChainError, ChainHash, EventLog, Tree};
use crate::merkle::{self, Frontier};
use crate::snapshot;

use super::replay::{Prepared, TreeCheckError, TreeError, VerifiedReplay};
use super::{OpenError, REPLAY_CHUNK, SnapshotPolicy};

/// What the checks at open leave the ledger with: the view at the log's head, and what the
/// writer carries on from.
pub(super) struct Opened {
    /// The view after the last record.
    pub state: State,
    /// The chain hash of the last record.
    pub head_hash: ChainHash,
    /// When the last record was written (0 for an empty log).
    pub last_at: Timestamp,
    /// The position of the snapshot replay started from; 0 when it started from the first
    /// record.
    pub from_snapshot: u64,
    /// The view's fingerprint as the checks at open computed it, kept so that the
    /// writer's first checkpoint re-encodes only what changed since (empty when no check
    /// needed it): at 1M users a fingerprint from nothing takes seconds, and the writer
    /// would pause admin writes for it.
    pub fingerprints: FingerprintCache,
}

/// The signed checkpoint a log must still match, and the key it must be signed by.
pub(super) struct Signed<'a> {
    /// The latest checkpoint written.
    pub checkpoint: &'a Checkpoint,
    /// The service's public key.
    pub key: PublicKey,
}

/// Replays the log from the newest usable snapshot (or its first record), verifying each
/// record's chain link and Merkle leaf, then checks the stored tree and, when given, the
/// latest signed checkpoint. The authority rules are not checked: a log written before
/// they existed still opens (see [`super::replay`]).
pub(super) fn replay_and_check<L: EventLog>(
    log: &L,
    snapshots: Option<&SnapshotPolicy>,
    signed: Option<&Signed<'_>>,
) -> Result<Opened, OpenError> {
    let storage = |e: L::Error| OpenError::Storage(Box::new(e));
    let started = std::time::Instant::now();
    let restored = snapshots.and_then(|policy| restore(log, policy));
    let restore_ms = started.elapsed().as_millis();
    let from_snapshot = restored.as_ref().map_or(0, |(state, _, _)| state.head());
    let (state, head_hash, mut last_at) =
        restored.unwrap_or_else(|| (State::default(), ChainHash::GENESIS, Timestamp::from_unix_millis(0)));
    // The tree's right edge where replay starts, grown from the records' own bytes.
    let frontier = Frontier::load(&Tree(log), from_snapshot).map_err(|e| tree_error(from_snapshot, e))?;
    let mut replay = VerifiedReplay::resume(state, head_hash, frontier);
    let latest = signed.map(|signed| signed.checkpoint);
    let mut fingerprints = FingerprintCache::default();
    let mut signed_view_checked = false;
    loop {
        let chunk = log.read(replay.size() + 1, REPLAY_CHUNK).map_err(storage)?;
        if chunk.is_empty() {
            break;
        }
        // Each record is decoded and hashed ahead on every core, then linked and applied
        // in order: the same checks and the same first error as one at a time.
        for (stored, prepared) in chunk.iter().zip(Prepared::chunk(&chunk)) {
            let record = replay.push_prepared_trusting_authority(stored.seq, prepared)?;
            last_at = record.at;
            if let Some(checkpoint) = latest.filter(|checkpoint| checkpoint.size == record.seq) {
                check_replay_against(checkpoint, &replay, &mut fingerprints)?;
                signed_view_checked = true;
            }
        }
    }
    let replay_ms = started.elapsed().as_millis() - restore_ms;
    let head = log.head().map_err(storage)?;
    if head != replay.size() {
        return Err(OpenError::Corrupt(ChainError::Gap { expected: replay.size() + 1, found: head }));
    }
    replay.check_stored_tree(&Tree(log)).map_err(|error| match error {
        TreeCheckError::Storage(error) => storage(error),
        TreeCheckError::Tree(error) => OpenError::Tree(error),
    })?;
    if let Some(Signed { checkpoint, key }) = signed {
        check_log_against(log, checkpoint, key, head)?;
        if !signed_view_checked
            && checkpoint.size == replay.size()
            && checkpoint.view.as_bytes() != &replay.state().fingerprint_cached(&mut fingerprints)
        {
            return Err(OpenError::CheckpointMismatch {
                size: checkpoint.size,
                reason: "the permission view restored from the snapshot is not the one signed".into(),
            });
        }
    }
    // Where start-up time goes: loading the snapshot, replaying the tail, then the checks
    // of the tree and the checkpoint (which recomputes the view's fingerprint when the
    // checkpoint is at the head).
    tracing::info!(
        records = replay.size(),
        from_snapshot,
        replayed = replay.size() - from_snapshot,
        restore_ms,
        replay_ms,
        checks_ms = started.elapsed().as_millis() - restore_ms - replay_ms,
        "opened the log"
    );
    let head_hash = replay.head_hash();
    Ok(Opened { state: replay.into_state(), head_hash, last_at, from_snapshot, fingerprints })
}

fn tree_error<E: std::error::Error + Send + Sync + 'static>(size: u64, error: merkle::ProofError<E>) -> OpenError {
    match TreeError::from_proof(size, error) {
        Ok(tree) => OpenError::Tree(tree),
        Err(storage) => OpenError::Storage(Box::new(storage)),
    }
}

/// Checks a replay that has just applied record `checkpoint.size` against the checkpoint:
/// the root recomputed from the records' bytes, and the view they produced.
fn check_replay_against(
    checkpoint: &Checkpoint,
    replay: &VerifiedReplay,
    fingerprints: &mut FingerprintCache,
) -> Result<(), OpenError> {
    let mismatch = |reason: &str| OpenError::CheckpointMismatch { size: checkpoint.size, reason: reason.to_owned() };
    if replay.root() != checkpoint.root {
        return Err(mismatch("the Merkle root of the records is not the one signed"));
    }
    if checkpoint.view.as_bytes() != &replay.state().fingerprint_cached(fingerprints) {
        return Err(mismatch("replaying the records does not give the permission view signed"));
    }
    Ok(())
}

/// Checks the log against its latest checkpoint: signed by this service's key, no longer
/// than the log, and with the root the stored tree gives at its size.
fn check_log_against<L: EventLog>(
    log: &L,
    checkpoint: &Checkpoint,
    key: &PublicKey,
    head: u64,
) -> Result<(), OpenError> {
    let mismatch = |reason: String| OpenError::CheckpointMismatch { size: checkpoint.size, reason };
    if !checkpoint.is_signed_by(key) {
        return Err(mismatch("the checkpoint is not signed by this service's signing key".into()));
    }
    if checkpoint.size > head {
        return Err(mismatch(format!("the log has only {head} records")));
    }
    let root = merkle::root(&Tree(log), checkpoint.size).map_err(|e| tree_error(checkpoint.size, e))?;
    if root != checkpoint.root {
        return Err(mismatch("the Merkle root of the stored tree is not the one signed".into()));
    }
    Ok(())
}

/// Loads the newest snapshot that matches the log: the record at its position must exist
/// and have the chain hash it names. A snapshot that does not (written past a head that a
/// restore from backup cut back, say) is skipped for an older one. `None` (and a warning)
/// when none can be used. Each candidate costs one record read, whatever the log's size.
fn restore<L: EventLog>(log: &L, policy: &SnapshotPolicy) -> Option<(State, ChainHash, Timestamp)> {
    let found = snapshot::newest_where(&policy.dir, |header| {
        let matches = snapshot::matches_log(log, header.seq, header.head_hash);
        if !matches {
            tracing::warn!(seq = header.seq, "a snapshot does not match the log; trying an older one");
        }
        matches
    });
    match found {
        // The header was read before the checksum was checked: check what was read.
        Ok(Some(snapshot))
            if snapshot.state.head() == snapshot.seq
                && snapshot::matches_log(log, snapshot.seq, snapshot.head_hash) =>
        {
            Some((snapshot.state, snapshot.head_hash, snapshot.last_at))
        }
        Ok(Some(snapshot)) => {
            tracing::warn!(seq = snapshot.seq, "the snapshot does not match the log; replaying the whole log");
            None
        }
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(%error, "cannot read snapshots; replaying the whole log");
            None
        }
    }
}
