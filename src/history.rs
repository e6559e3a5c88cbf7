//! The permission view at any point of the log's history, and what changed between two
//! points.
//!
//! Both start from the nearest retained snapshot at or before the point asked
//! ([`crate::snapshot`] keeps them at spaced positions) and replay the records after it
//! through the ledger's [`VerifiedReplay`], verifying the chain as they go, as start-up
//! does (and, like start-up, taking each intact record as written, without judging it
//! against the authority rules: `verify-log` reports those). With no snapshot before the
//! point (or none kept, as for a bundle's records), they replay from the first record. The
//! head needs no replay: [`current`] answers from the view the service holds. The records
//! are read in chunks, so memory stays in proportion to the state, not to the log.
//!
//! What an answer from a snapshot verifies, and what it does not: the snapshot file's
//! checksum and function catalogue, that the log's record at its position has the chain
//! hash it names (so the snapshot is of this log's prefix), and every record after it up to
//! the point, linked to that hash. It does not re-verify the records before the snapshot,
//! nor recompute the snapshot's state from them: that was done when the snapshot was
//! written (from a view itself built by a verified replay), and the full checks stay with
//! `verify-log` and `GET /v1/audit/verify`, which always read the whole log.
//!
//! A time is found through the snapshots' own times: record times never go backwards (the
//! writer stamps each record no earlier than the one before), so the snapshot written last
//! at or before a time holds only records at or before it.

use std::path::Path;

use crate::domain::{Actor, Change, Justification, State, Timestamp};
use crate::ledger::VerifiedReplay;
use crate::ledger::replay::Prepared;
use crate::log::record::Record;
use crate::log::{ChainError, EventLog, Tree};
use crate::merkle::Frontier;
use crate::snapshot;

/// How many records a replay reads at a time.
const CHUNK: usize = 4096;

/// A point of the log's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// Just after the record with this sequence number; 0 is before the first record.
    Position(u64),
    /// Just after the last record written at or before this time.
    Time(Timestamp),
    /// Just after the last record of the log.
    Head,
}

impl At {
    /// The time key states are judged at for this point: the time asked for, the time
    /// the record at the position was written, or `now` for the head.
    pub fn as_of(self, replayed: &Replayed, now: Timestamp) -> Timestamp {
        match self {
            At::Time(time) => time,
            At::Position(_) => replayed.recorded_at.unwrap_or(now),
            At::Head => now,
        }
    }
}

/// Why a point of the history could not be reached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The position is past the last record.
    #[error("position {position} is past the head of the log, {head}")]
    PositionBeyondHead {
        /// The position asked for.
        position: u64,
        /// The last record's position.
        head: u64,
    },
    /// The time is before the first record was written, when there was no ledger yet.
    #[error("{at} is before the first record of the log{}", first.map(|first| format!(", written at {first}")).unwrap_or_default())]
    BeforeFirstRecord {
        /// The time asked for.
        at: Timestamp,
        /// When the first record was written, if there is one.
        first: Option<Timestamp>,
    },
    /// The end of a range is before its start.
    #[error("the end of the range is before its start")]
    ReversedRange,
    /// The storage failed.
    #[error("reading the log failed: {0}")]
    Storage(Box<dyn std::error::Error + Send + Sync>),
    /// The log is not an intact chain.
    #[error("the log does not verify: {0}")]
    Corrupt(#[from] ChainError),
}

/// The state of the permission view at a point of the history.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// The state after the last record replayed.
    pub state: State,
    /// The last record replayed; 0 when none was.
    pub position: u64,
    /// When that record was written; `None` when none was replayed.
    pub recorded_at: Option<Timestamp>,
}

/// Why a permission changed: the record whose event changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The record's sequence number.
    pub seq: u64,
    /// The event's type, such as `FunctionActivated`.
    pub kind: &'static str,
    /// The event's unique id.
    pub id: String,
    /// When it was recorded.
    pub at: Timestamp,
    /// Who made the change.
    pub actor: Actor,
    /// Why, if the change's admin said.
    pub justification: Option<Justification>,
}

/// A permission change and the record that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CausedChange {
    /// What changed, for whom.
    pub change: Change,
    /// The record that changed it.
    pub cause: Cause,
}

/// What changed between two points of the history.
#[derive(Debug, Clone)]
pub struct Diff {
    /// The position the range starts after.
    pub from: u64,
    /// When the record at `from` was written, if there is one.
    pub from_recorded_at: Option<Timestamp>,
    /// The last position of the range.
    pub to: u64,
    /// When the record at `to` was written, if there is one.
    pub to_recorded_at: Option<Timestamp>,
    /// The changes, in log order, then by user id.
    pub changes: Vec<CausedChange>,
}

/// Where the history is read: the log, and the directory of retained snapshots a question
/// may start from, if there is one. A plain log (`&log`) converts into a source without
/// snapshots.
#[derive(Debug)]
pub struct Source<'a, L> {
    log: &'a L,
    snapshots: Option<&'a Path>,
}

impl<L> Clone for Source<'_, L> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<L> Copy for Source<'_, L> {}

impl<'a, L> Source<'a, L> {
    /// The history of `log`, starting from the snapshots in `snapshots` where it can.
    pub fn new(log: &'a L, snapshots: Option<&'a Path>) -> Self {
        Self { log, snapshots }
    }

    /// The log.
    pub fn log(&self) -> &'a L {
        self.log
    }
}

impl<'a, L> From<&'a L> for Source<'a, L> {
    fn from(log: &'a L) -> Self {
        Self { log, snapshots: None }
    }
}

impl<L: EventLog> Source<'_, L> {
    /// The newest retained snapshot within `at` that matches the log, ready to replay
    /// from: its state, and a replay resumed at its position. `None` when there is none,
    /// or it cannot be used (which is logged): the replay then starts from the first record.
    fn snapshot_within(&self, at: At) -> Option<(VerifiedReplay, (u64, Timestamp))> {
        let dir = self.snapshots?;
        let found = snapshot::newest_where(dir, |header| match at {
            At::Position(position) => header.seq <= position,
            At::Time(time) => header.last_at <= time,
            At::Head => true,
        } && snapshot::matches_log(self.log, header.seq, header.head_hash));
        let snapshot = match found {
            Ok(Some(snapshot)) if snapshot.state.head() == snapshot.seq => snapshot,
            Ok(_) => return None,
            Err(error) => {
                tracing::warn!(%error, "cannot read the snapshots; replaying from the first record");
                return None;
            }
        };
        // The tree's right edge at the snapshot: O(log n) stored nodes, checked at the end
        // of every start-up and by `verify`.
        let frontier = match Frontier::load(&Tree(self.log), snapshot.seq) {
            Ok(frontier) => frontier,
            Err(error) => {
                tracing::warn!(%error, seq = snapshot.seq, "cannot resume at a snapshot; replaying from the first record");
                return None;
            }
        };
        let last = (snapshot.seq, snapshot.last_at);
        Some((VerifiedReplay::resume(snapshot.state, snapshot.head_hash, frontier), last))
    }
}

/// Reads records in order from the nearest snapshot or the first record, verifying the
/// chain, one record ahead, and applies those within a point of the history.
struct Replay<'a, L> {
    log: &'a L,
    replay: VerifiedReplay,
    /// Records read but not yet verified, each read ahead ([`Prepared`]).
    chunk: std::vec::IntoIter<(u64, Prepared)>,
    /// The next record, verified but not applied.
    next: Option<Record>,
    done: bool,
    /// The position and time of the last record applied.
    last: Option<(u64, Timestamp)>,
}

impl<'a, L: EventLog> Replay<'a, L> {
    /// A replay ready to run to `at` (or further), from the newest snapshot within it.
    fn towards(source: Source<'a, L>, at: At) -> Self {
        let (replay, last) = match source.snapshot_within(at) {
            Some((replay, last)) => (replay, Some(last)),
            None => (VerifiedReplay::new(), None),
        };
        Replay { log: source.log, replay, chunk: Vec::new().into_iter(), next: None, done: false, last }
    }

    /// The next record, without taking it; `None` at the end of the log.
    fn peek(&mut self) -> Result<Option<&Record>, HistoryError> {
        if self.next.is_none() && !self.done {
            let stored = match self.chunk.next() {
                Some(stored) => Some(stored),
                None => {
                    let from = self.replay.size() + 1;
                    let chunk = self.log.read(from, CHUNK).map_err(|e| HistoryError::Storage(Box::new(e)))?;
                    let prepared = Prepared::chunk(&chunk);
                    self.chunk = chunk.iter().map(|stored| stored.seq).zip(prepared).collect::<Vec<_>>().into_iter();
                    self.chunk.next()
                }
            };
            match stored {
                Some((seq, prepared)) => {
                    self.next = Some(self.replay.verify_prepared_trusting_authority(seq, prepared)?);
                }
                None => self.done = true,
            }
        }
        Ok(self.next.as_ref())
    }

    /// Applies the records within `at` with `apply` (which applies the record it is given
    /// to the replay), then checks that the replay reached `at`.
    fn run_to(&mut self, at: At, mut apply: impl FnMut(&mut VerifiedReplay, Record)) -> Result<(), HistoryError> {
        while let Some(record) = self.peek()? {
            let within = match at {
                At::Position(position) => record.seq <= position,
                At::Time(time) => record.at <= time,
                At::Head => true,
            };
            if !within {
                break;
            }
            if let Some(record) = self.next.take() {
                self.last = Some((record.seq, record.at));
                apply(&mut self.replay, record);
            }
        }
        self.reached(at)
    }

    /// Where the replay stopped, checked against what was asked.
    fn reached(&mut self, at: At) -> Result<(), HistoryError> {
        match at {
            At::Position(position) => {
                let head = self.position();
                if head < position {
                    return Err(HistoryError::PositionBeyondHead { position, head });
                }
            }
            At::Time(time) if self.last.is_none() => {
                let first = self.peek()?.map(|record| record.at);
                return Err(HistoryError::BeforeFirstRecord { at: time, first });
            }
            _ => {}
        }
        Ok(())
    }

    /// The last record applied; 0 when none was.
    fn position(&self) -> u64 {
        self.last.map_or(0, |(seq, _)| seq)
    }

    /// When the last record applied was written; `None` when none was.
    fn recorded_at(&self) -> Option<Timestamp> {
        self.last.map(|(_, at)| at)
    }
}

/// The permission view just after `at`. An empty log has state 0; a time before the first
/// record, or a position past the last, is an error. `source` is a log, or a log and its
/// snapshots ([`crate::ledger::Ledger::history`]).
pub fn state_at<'a, L: EventLog + 'a>(source: impl Into<Source<'a, L>>, at: At) -> Result<Replayed, HistoryError> {
    let mut replay = Replay::towards(source.into(), at);
    replay.run_to(at, |replay, record| replay.apply(&record))?;
    let (position, recorded_at) = (replay.position(), replay.recorded_at());
    Ok(Replayed { state: replay.replay.into_state(), position, recorded_at })
}

/// The head of the history without replaying it: `view`, the state the service holds for
/// the log's head (verified when it was replayed at start, and extended since only by the
/// writer), with the time of its last record read from `log`.
pub fn current<L: EventLog>(view: State, log: &L) -> Result<Replayed, HistoryError> {
    let position = view.head();
    let recorded_at = match position {
        0 => None,
        seq => {
            let stored = log.read(seq, 1).map_err(|e| HistoryError::Storage(Box::new(e)))?;
            let record = stored
                .first()
                .filter(|stored| stored.seq == seq)
                .ok_or(ChainError::Gap { expected: seq, found: stored.first().map_or(0, |stored| stored.seq) })?;
            Some(crate::log::record::decode(&record.bytes).map_err(ChainError::from)?.at)
        }
    };
    Ok(Replayed { state: view, position, recorded_at })
}

/// What changed from just after `from` to just after `to`: every permission an event in
/// between gave or took away, with the record that did it, in log order.
pub fn diff<'a, L: EventLog + 'a>(source: impl Into<Source<'a, L>>, from: At, to: At) -> Result<Diff, HistoryError> {
    let mut replay = Replay::towards(source.into(), from);
    replay.run_to(from, |replay, record| replay.apply(&record))?;
    let start = replay.last;
    let reversed = match (from, to) {
        (_, At::Position(to)) => to < replay.position(),
        (At::Time(from), At::Time(to)) => to < from,
        (_, At::Time(to)) => start.is_some_and(|(_, at)| to < at),
        (_, At::Head) => false,
    };
    if reversed {
        return Err(HistoryError::ReversedRange);
    }
    let mut changes = Vec::new();
    replay.run_to(to, |replay, record| {
        let caused = replay.apply_tracking_changes(&record);
        let cause = Cause {
            seq: record.seq,
            kind: record.event.type_name(),
            id: record.id,
            at: record.at,
            actor: record.actor,
            justification: record.justification,
        };
        changes.extend(caused.into_iter().map(|change| CausedChange { change, cause: cause.clone() }));
    })?;
    Ok(Diff {
        from: start.map_or(0, |(seq, _)| seq),
        from_recorded_at: start.map(|(_, at)| at),
        to: replay.position(),
        to_recorded_at: replay.recorded_at(),
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChangeKind, Event, Fact, FunctionId, RoleId, UserId};
    use crate::log::record::{self, Envelope};
    use crate::log::{ChainHash, MemoryLog};

    fn at(minute: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_800_000_000_000 + minute * 60_000)
    }

    fn user() -> UserId {
        UserId::parse("usr_00000000000000a1").unwrap()
    }

    fn role() -> RoleId {
        RoleId::parse("role_00000000000000a1").unwrap()
    }

    fn reader() -> FunctionId {
        FunctionId::parse("api.events.read").unwrap()
    }

    /// A log of a user holding a role, one record a minute from minute 1, then the role's
    /// function activated at minute 10.
    fn log() -> MemoryLog {
        let events = [
            Event::UserCreated { user_id: user(), name: "App".to_owned(), email: None },
            Event::RoleCreated { role_id: role(), description: "API Access".to_owned() },
            Event::RoleAssigned { user_id: user(), role_id: role() },
            Event::FunctionActivated { role_id: role(), function: reader() },
        ];
        let log = MemoryLog::new();
        let mut prev = ChainHash::GENESIS;
        for (seq, event) in (1..).zip(&events) {
            let minute = if seq == 4 { 10 } else { seq as i64 };
            let envelope = Envelope { seq, at: at(minute), actor: Actor::System, justification: None };
            let (stored, hash) = record::encode(&envelope, event, prev);
            log.append(seq - 1, &[stored]).unwrap();
            prev = hash;
        }
        log
    }

    #[test]
    fn the_state_at_a_position_a_time_or_the_head_holds_the_records_up_to_it() {
        let log = log();
        let replayed = state_at(&log, At::Position(2)).unwrap();
        assert_eq!((replayed.position, replayed.recorded_at), (2, Some(at(2))));
        assert!(replayed.state.role(&role()).is_some_and(|role| role.holders().is_empty()));
        let replayed = state_at(&log, At::Time(at(9))).unwrap();
        assert_eq!((replayed.position, replayed.recorded_at), (3, Some(at(3))));
        assert_eq!(state_at(&log, At::Time(at(10))).unwrap().position, 4);
        assert_eq!(state_at(&log, At::Head).unwrap().position, 4);
        assert_eq!(state_at(&log, At::Position(0)).unwrap().recorded_at, None);
    }

    #[test]
    fn a_position_past_the_head_or_a_time_before_the_first_record_is_an_error() {
        let log = log();
        assert!(matches!(
            state_at(&log, At::Position(5)),
            Err(HistoryError::PositionBeyondHead { position: 5, head: 4 })
        ));
        assert!(matches!(
            state_at(&log, At::Time(at(0))),
            Err(HistoryError::BeforeFirstRecord { first: Some(first), .. }) if first == at(1)
        ));
        assert!(matches!(
            state_at(&MemoryLog::new(), At::Time(at(0))),
            Err(HistoryError::BeforeFirstRecord { first: None, .. })
        ));
    }

    #[test]
    fn a_diff_lists_each_change_with_the_record_that_caused_it() {
        let log = log();
        let diff = diff(&log, At::Position(2), At::Head).unwrap();
        assert_eq!((diff.from, diff.to), (2, 4));
        let listed: Vec<(u64, &str, ChangeKind, &Fact)> = diff
            .changes
            .iter()
            .map(|caused| (caused.cause.seq, caused.cause.kind, caused.change.kind, &caused.change.fact))
            .collect();
        assert_eq!(listed, [(4, "FunctionActivated", ChangeKind::Grant, &Fact::Function(reader()))]);
        let from_time = super::diff(&log, At::Time(at(5)), At::Time(at(10))).unwrap();
        assert_eq!((from_time.from, from_time.to, from_time.changes.len()), (3, 4, 1));
        assert!(super::diff(&log, At::Time(at(5)), At::Time(at(9))).unwrap().changes.is_empty());
    }

    #[test]
    fn the_current_view_answers_for_the_head_as_a_replay_to_it_does() {
        let log = log();
        let replayed = state_at(&log, At::Head).unwrap();
        let now = current(replayed.state.clone(), &log).unwrap();
        assert_eq!((now.position, now.recorded_at), (replayed.position, replayed.recorded_at));
        assert_eq!(now.state.fingerprint(), replayed.state.fingerprint());
        let empty = current(State::default(), &MemoryLog::new()).unwrap();
        assert_eq!((empty.position, empty.recorded_at), (0, None));
    }

    #[test]
    fn a_range_that_ends_before_it_starts_is_an_error() {
        let log = log();
        assert!(matches!(diff(&log, At::Position(3), At::Position(2)), Err(HistoryError::ReversedRange)));
        assert!(matches!(diff(&log, At::Time(at(3)), At::Time(at(2))), Err(HistoryError::ReversedRange)));
        assert!(matches!(diff(&log, At::Position(4), At::Time(at(9))), Err(HistoryError::ReversedRange)));
        assert!(matches!(diff(&log, At::Position(1), At::Position(9)), Err(HistoryError::PositionBeyondHead { .. })));
    }
}
