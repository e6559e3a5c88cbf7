//! Audit bundles: the whole log with its signed checkpoints, in one file a reviewer can
//! verify offline with nothing but the file and a public key.
//!
//! A bundle is JSON lines, each ending with a newline:
//!
//! 1. the public key: `{"kind":"public_key","algorithm":"ed25519","key":"…"}`;
//! 2. every record, in order, exactly as stored (the Merkle leaf bytes), each followed by
//!    the checkpoints made at its size, if any (`{"kind":"checkpoint",…}`);
//! 3. a checkpoint at the bundle's full size, last: every export signs one.
//!
//! [`verify`] checks, from the bytes alone: every record's hash, the `prev_hash` chain,
//! gapless sequence numbers, unique event ids and that every event can be replayed; the
//! authority rules (`domain::authorise`) on every record, so that a verified bundle proves
//! every change was authorised, not only that none was edited afterwards; the
//! Merkle root at every checkpoint, recomputed from the records through every
//! intermediate node; every checkpoint's signature and canonical form, and that sizes
//! grow; that replaying the records gives the view fingerprint each checkpoint signs;
//! that a signed checkpoint covers every record; and, given a checkpoint the reviewer
//! trusts, that the bundle's tree at that size has that root and reaches that size.

use std::io::{BufRead, Write};

use crate::checkpoint::{Checkpoint, PublicKey};
use crate::domain::{Event, FingerprintCache, Position, State, Timestamp, UserId};
use crate::ledger::VerifiedReplay;
use crate::ledger::replay::{Ahead, Prepared};
use crate::log::{EventLog, StoredRecord};
use crate::merkle::{self, TreeHash};

const READ_CHUNK: usize = 4096;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError<E: std::error::Error + 'static> {
    /// Reading the log failed.
    #[error("reading the log failed: {0}")]
    Storage(#[source] E),
    /// The log has fewer records than the checkpoint covers.
    #[error("the log ends at record {0}, before the checkpoint's size")]
    Short(u64),
    /// Writing the bundle failed.
    #[error("writing the bundle failed: {0}")]
    Write(#[from] std::io::Error),
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// How many records.
    pub records: u64,
    /// How many checkpoints, the final one included.
    pub checkpoints: usize,
}

/// Writes a bundle of the log's first `last.size` records, with every checkpoint in
/// `checkpoints` up to that size and `last` (a checkpoint at the size to export) at the end.
pub fn export<L: EventLog, W: Write>(
    log: &L,
    public_key: &PublicKey,
    checkpoints: &[Checkpoint],
    last: &Checkpoint,
    out: &mut W,
) -> Result<Exported, ExportError<L::Error>> {
    writeln!(out, "{}", public_key.to_line())?;
    let mut pending = checkpoints.iter().filter(|checkpoint| checkpoint.size < last.size).peekable();
    let mut written = 0;
    // Checkpoints at size 0 come before any record.
    while let Some(checkpoint) = pending.next_if(|checkpoint| checkpoint.size == 0) {
        writeln!(out, "{}", checkpoint.to_line())?;
        written += 1;
    }
    let mut next = 1;
    while next <= last.size {
        let wanted = usize::try_from(last.size - next + 1).unwrap_or(usize::MAX).min(READ_CHUNK);
        let chunk = log.read(next, wanted).map_err(ExportError::Storage)?;
        if chunk.is_empty() {
            return Err(ExportError::Short(next - 1));
        }
        for record in chunk {
            out.write_all(&record.bytes)?;
            out.write_all(b"\n")?;
            while let Some(checkpoint) = pending.next_if(|checkpoint| checkpoint.size <= record.seq) {
                writeln!(out, "{}", checkpoint.to_line())?;
                written += 1;
            }
            next = record.seq + 1;
        }
    }
    writeln!(out, "{}", last.to_line())?;
    out.flush()?;
    Ok(Exported { records: last.size, checkpoints: written + 1 })
}

/// What a reviewer brings to a verification besides the bundle.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The key the checkpoints must be signed with; without it, the bundle's own key is
    /// used, which proves integrity but not authorship.
    pub public_key: Option<PublicKey>,
    /// A checkpoint kept from earlier or published elsewhere: the bundle must contain the
    /// tree it signs, unchanged.
    pub trusted: Option<Checkpoint>,
}

/// What a verified bundle holds.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The key that signed its checkpoints.
    pub public_key: PublicKey,
    /// How many records.
    pub records: u64,
    /// How many checkpoints.
    pub checkpoints: usize,
    /// The last checkpoint, which covers every record.
    pub last: Checkpoint,
    /// The permission view after the last record.
    pub state: State,
    /// Every `AdministratorRecovered` in the bundle, in log order.
    pub recoveries: Vec<Recovery>,
}

/// An administrator recovered with `keyledger recover-admin`, as a bundle records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The record's sequence number.
    pub seq: u64,
    /// When it was recorded.
    pub at: Timestamp,
    /// The administrator it created.
    pub user_id: UserId,
    /// The operator's reason.
    pub reason: String,
}

/// Where verification failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} ({place}): {reason}")]
pub struct Failure {
    /// The line of the bundle, from 1.
    pub line: usize,
    /// What is on that line: `record 17`, `checkpoint at size 20`, `public key`, `end`.
    pub place: String,
    /// What is wrong.
    pub reason: String,
}

fn fail(line: usize, place: impl Into<String>, reason: impl Into<String>) -> Failure {
    Failure { line, place: place.into(), reason: reason.into() }
}

/// The records of a bundle, as stored, in order: every line but the public key and the
/// checkpoints. It checks nothing; verify the bundle first.
pub fn records(bundle: &[u8]) -> Vec<StoredRecord> {
    bundle
        .split(|&byte| byte == b'\n')
        .skip(1)
        .filter(|line| !line.is_empty() && !line.starts_with(br#"{"kind""#))
        .zip(1..)
        .map(|(line, seq)| StoredRecord { seq, bytes: line.to_vec() })
        .collect()
}

/// Verifies a bundle, stopping at the first failure.
pub fn verify(reader: impl BufRead, options: &VerifyOptions) -> Result<Summary, Failure> {
    verify_until(reader, options, |_, _| false).map(|(summary, _)| summary)
}

/// Verifies a bundle like [`verify`], and returns the view as it was after the last record
/// for which `stop(position, state)` was still false: the view at a point in the past.
pub fn verify_until(
    mut reader: impl BufRead,
    options: &VerifyOptions,
    past: impl FnMut(Position, &State) -> bool,
) -> Result<(Summary, State), Failure> {
    // Decoding and hashing the records run on a thread of their own, a batch ahead.
    std::thread::scope(|scope| {
        let mut line = Vec::new();
        let mut number = 0;
        // The chain, the authority rules, the Merkle frontier and the view, record by record.
        let mut records = RecordRun {
            replay: VerifiedReplay::new(),
            past,
            at_point: None,
            recoveries: Vec::new(),
            trusted: options.trusted.as_ref(),
            pending: Vec::new(),
            lines: Vec::new(),
            ahead: Ahead::spawn(scope, prepare_lines),
        };
        let mut fingerprints = FingerprintCache::default();
        let mut public_key: Option<PublicKey> = None;
        let mut last: Option<Checkpoint> = None;
        let mut checkpoints = 0;

        loop {
            line.clear();
            let read = reader.read_until(b'\n', &mut line);
            // The records read ahead are verified before whatever follows them is looked at,
            // so the first failure in the bundle is the one named.
            let read = match read {
                Ok(read) => read,
                Err(error) => {
                    records.verify_pending()?;
                    return Err(fail(number + 1, "line", error.to_string()));
                }
            };
            if read == 0 {
                break;
            }
            number += 1;
            let Some(content) = line.strip_suffix(b"\n") else {
                records.verify_pending()?;
                return Err(fail(number, "line", "the line has no newline: the bundle was cut short"));
            };
            let Some(key) = public_key else {
                public_key = Some(read_public_key(number, content, options)?);
                continue;
            };
            if !content.starts_with(br#"{"kind":"#) {
                records.read_ahead(number, content)?;
                continue;
            }
            records.verify_pending()?;
            if !content.starts_with(br#"{"kind":"checkpoint""#) {
                return Err(fail(number, "line", "only the first line may be a public key"));
            }
            let replay = &records.replay;
            let size = replay.size();
            let place = format!("checkpoint after record {size}");
            let text = std::str::from_utf8(content).map_err(|_| fail(number, &place, "not UTF-8"))?;
            let checkpoint = Checkpoint::parse_line(text).map_err(|e| fail(number, &place, e.to_string()))?;
            let place = format!("checkpoint at size {}", checkpoint.size);
            let view = TreeHash::from_bytes(replay.state().fingerprint_cached(&mut fingerprints));
            check_checkpoint(&checkpoint, &key, last.as_ref(), replay, &view).map_err(|r| fail(number, &place, r))?;
            last = Some(checkpoint);
            checkpoints += 1;
        }
        records.verify_pending()?;

        let end = |reason: String| fail(number + 1, "end", reason);
        let public_key = public_key.ok_or_else(|| end("the bundle is empty: no public key".into()))?;
        let RecordRun { replay, at_point, recoveries, trusted, .. } = records;
        let records = replay.size();
        let last = last.ok_or_else(|| end("the bundle has no signed checkpoint".into()))?;
        check_end(records, &last, trusted).map_err(end)?;
        let state = replay.into_state();
        let at_point = at_point.unwrap_or_else(|| state.clone());
        Ok((Summary { public_key, records, checkpoints, last, state, recoveries }, at_point))
    })
}

/// How many record lines are read ahead and decoded together, on a thread of their own.
const READ_AHEAD: usize = 4096;

/// A batch of record lines read ahead: the lines one after another, without their
/// newlines, and each line's number in the bundle and where it ends in the bytes.
type Lines = (Vec<u8>, Vec<(usize, usize)>);

/// A batch of record lines, each decoded and hashed ([`Prepared`]).
type PreparedLines = (Lines, Vec<Prepared>);

/// Decodes and hashes each record line of a batch: what each record needs alone.
fn prepare_lines(batch: Lines) -> PreparedLines {
    let (pending, lines) = &batch;
    let mut start = 0;
    let prepared = lines
        .iter()
        .map(|&(_, end)| {
            let prepared = Prepared::of(&pending[start..end]);
            start = end;
            prepared
        })
        .collect();
    (batch, prepared)
}

/// The records of a bundle being verified: the replay, what the caller asked to keep, and
/// the record lines read ahead but not yet verified.
struct RecordRun<'a, P> {
    replay: VerifiedReplay,
    past: P,
    at_point: Option<State>,
    recoveries: Vec<Recovery>,
    trusted: Option<&'a Checkpoint>,
    /// The record lines read ahead, one after another, without their newlines.
    pending: Vec<u8>,
    /// Each line read ahead: its number in the bundle and where it ends in `pending`.
    lines: Vec<(usize, usize)>,
    /// The batches of lines being decoded and hashed on the other thread, in order.
    ahead: Ahead<Lines, PreparedLines>,
}

impl<P: FnMut(Position, &State) -> bool> RecordRun<'_, P> {
    /// Keeps a record line (line `number` of the bundle) to verify with those around it.
    /// A full batch goes to the other thread, and the batch before it is verified here
    /// meanwhile.
    fn read_ahead(&mut self, number: usize, content: &[u8]) -> Result<(), Failure> {
        self.pending.extend_from_slice(content);
        self.lines.push((number, self.pending.len()));
        if self.lines.len() < READ_AHEAD {
            return Ok(());
        }
        self.submit();
        while self.ahead.in_flight() > 1 {
            self.verify_next_batch()?;
        }
        Ok(())
    }

    /// Verifies and applies every record line read ahead, in order, so the first failing
    /// line is the one named.
    fn verify_pending(&mut self) -> Result<(), Failure> {
        self.submit();
        while self.ahead.in_flight() > 0 {
            self.verify_next_batch()?;
        }
        Ok(())
    }

    /// Hands the lines read ahead, if any, to the other thread.
    fn submit(&mut self) {
        if !self.lines.is_empty() {
            let batch = (std::mem::take(&mut self.pending), std::mem::take(&mut self.lines));
            self.ahead.submit(batch);
        }
    }

    /// Checks in turn and applies the oldest batch handed to the other thread.
    fn verify_next_batch(&mut self) -> Result<(), Failure> {
        // `None` only if the other thread panicked, which the scope passes on.
        let Some(((_, lines), prepared)) = self.ahead.next() else { return Ok(()) };
        let RecordRun { replay, past, at_point, recoveries, trusted, .. } = self;
        for (&(number, _), prepared) in lines.iter().zip(prepared) {
            let seq = replay.size() + 1;
            let place = || format!("record {seq}");
            let record = replay.verify_prepared(seq, prepared).map_err(|e| fail(number, place(), e.to_string()))?;
            let position = Position { seq, at: record.at };
            if at_point.is_none() && past(position, replay.state()) {
                *at_point = Some(replay.state().clone());
            }
            replay.apply(&record);
            if let Event::AdministratorRecovered { user_id, reason, .. } = &record.event {
                recoveries.push(Recovery { seq, at: record.at, user_id: user_id.clone(), reason: reason.clone() });
            }
            if let Some(trusted) = trusted.filter(|trusted| trusted.size == seq)
                && replay.root() != trusted.root
            {
                return Err(fail(
                    number,
                    place(),
                    format!(
                        "the bundle's tree at size {seq} is not the one the trusted checkpoint signs: the history was rewritten"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Reads the bundle's first line, its public key, and checks it against what the reviewer
/// trusts.
fn read_public_key(number: usize, content: &[u8], options: &VerifyOptions) -> Result<PublicKey, Failure> {
    let key = std::str::from_utf8(content)
        .ok()
        .and_then(|text| PublicKey::parse_line(text).ok())
        .ok_or_else(|| fail(number, "public key", "a bundle starts with its public key line"))?;
    if options.public_key.is_some_and(|trusted| trusted != key) {
        return Err(fail(number, "public key", "the bundle's public key is not the key given to trust"));
    }
    if let Some(trusted) = &options.trusted
        && !trusted.is_signed_by(&key)
    {
        return Err(fail(number, "public key", "the trusted checkpoint is not signed by the bundle's key"));
    }
    Ok(key)
}

/// Checks, at the end of a bundle of `records` records, that its last checkpoint covers
/// them all and that it holds the whole tree of the trusted checkpoint, if any.
fn check_end(records: u64, last: &Checkpoint, trusted: Option<&Checkpoint>) -> Result<(), String> {
    if last.size != records {
        return Err(format!(
            "records {} to {records} are not covered by a signed checkpoint (the last covers {})",
            last.size + 1,
            last.size
        ));
    }
    if let Some(trusted) = trusted.filter(|trusted| trusted.size > records) {
        return Err(format!(
            "the bundle holds {records} records, fewer than the {} of the trusted checkpoint: the history was cut short",
            trusted.size
        ));
    }
    if let Some(trusted) = trusted.filter(|trusted| trusted.size == 0)
        && trusted.root != merkle::empty_root()
    {
        return Err("the trusted checkpoint's empty tree has a root that is not empty".into());
    }
    Ok(())
}

fn check_checkpoint(
    checkpoint: &Checkpoint,
    key: &PublicKey,
    previous: Option<&Checkpoint>,
    replay: &VerifiedReplay,
    view: &TreeHash,
) -> Result<(), String> {
    if !checkpoint.is_signed_by(key) {
        return Err("the signature does not verify under the bundle's public key".into());
    }
    if checkpoint.origin != key.origin() {
        return Err(format!("it names the log {}, not {}", checkpoint.origin, key.origin()));
    }
    if let Some(previous) = previous {
        if checkpoint.size <= previous.size {
            return Err(format!("checkpoint sizes must grow, and the one before covers {}", previous.size));
        }
        if checkpoint.time < previous.time {
            return Err("it is dated before the checkpoint before it".into());
        }
    }
    if checkpoint.size != replay.size() {
        return Err(format!("it stands after record {}, not after the record at its size", replay.size()));
    }
    if checkpoint.root != replay.root() {
        return Err(format!("the Merkle root of the records is {}, not the {} signed", replay.root(), checkpoint.root));
    }
    if checkpoint.view != *view {
        return Err("replaying the records does not give the permission view it signs".into());
    }
    Ok(())
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
