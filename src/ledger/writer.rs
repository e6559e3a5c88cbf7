//! The single writer thread: group commit of commands, then checkpoints and snapshots.
//!
//! The writer takes every command waiting (up to [`MAX_BATCH`]) and, holding the view's
//! write lock, decides each in order and applies its events to the one copy of the state
//! in place, under the state's journal ([`State::begin_batch`]). It appends all their
//! events in one synced batch, still holding the lock; then it copies what the batch
//! touched into the check index, lets go of the view and answers every command (with
//! what each command's [`super::Render`] read right after it was applied). A failed
//! append puts the state back from the journal ([`Writer::discard_batch`]) before anyone
//! can read it. It alone has the view at exactly the log's head, so it also signs
//! checkpoints and saves snapshots. When the log
//! fails a write that only a restart can recover from, the writer answers that batch and
//! every later command with a storage error and reports the failure to the ledger's owner
//! ([`super::Ledger::fatal`]), which decides to stop the process.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot, watch};

use crate::checkpoint::{Checkpoint, Signer};
use crate::domain::{self, CheckUpdate, Command, Context, Event, FingerprintCache, Position, State, Timestamp};
use crate::log::record::{self, Envelope};
use crate::log::{AppendError, ChainHash, ChainVerifier, EventLog, StoredRecord, Tree};
use crate::merkle::{self, Frontier, TreeHash};
use crate::{history, snapshot};

use super::{
    Applied, FatalStorageError, Job, MAX_BATCH, Render, Rendered, Request, Shared, SnapshotPolicy, SubmitError,
};

/// Saves a snapshot, then thins the retained ones ([`snapshot::retained`]), spaced by the
/// snapshot interval.
fn save_snapshot(policy: &SnapshotPolicy, seq: u64, head_hash: ChainHash, last_at: Timestamp, state: &State) {
    let saved = snapshot::write(&policy.dir, seq, head_hash, last_at, state)
        .and_then(|path| snapshot::prune(&policy.dir, policy.every).map(|()| path));
    match saved {
        Ok(path) => tracing::info!(seq, path = %path.display(), "saved a snapshot"),
        Err(error) => tracing::warn!(%error, "saving a snapshot failed"),
    }
}

type CommandReply = oneshot::Sender<Result<(Applied, Option<Rendered>), SubmitError>>;

type CommandJob = (Command, Request, Option<Render>, CommandReply);

/// A command's answer as decided, sent once its batch is durable.
type Answer = (CommandReply, Result<(Applied, Option<Rendered>), domain::DomainError>);

type CheckpointReply = oneshot::Sender<Result<Checkpoint, SubmitError>>;

/// How many times a batch is decided again on a head another node moved before it is
/// answered 503.
const MAX_CONFLICT_RETRIES: usize = 8;
/// How many records a catch-up reads at a time.
const CATCH_UP_CHUNK: usize = 1024;

/// The writer thread's own state; [`Writer::run`] is the thread.
pub(super) struct Writer<L> {
    pub(super) shared: Arc<Shared<L>>,
    pub(super) snapshots: Option<SnapshotPolicy>,
    /// The thread saving a snapshot, if one is under way.
    pub(super) saving: Option<JoinHandle<()>>,
    /// The position of the newest snapshot saved or loaded.
    pub(super) last_snapshot: u64,
    /// The chain hash of the last record applied to the view (durable, or of the batch
    /// under way).
    pub(super) prev_hash: ChainHash,
    /// The time of the last record applied to the view.
    pub(super) last_at: Timestamp,
    /// `prev_hash` and `last_at` as they were when the batch under way began, to go back
    /// to if it is discarded; `None` between batches.
    pub(super) batch_start: Option<(ChainHash, Timestamp)>,
    /// The signing key, when checkpoints are kept.
    pub(super) signer: Option<Signer>,
    pub(super) checkpoint_every: u64,
    /// The newest checkpoint written or loaded.
    pub(super) last_checkpoint: Option<Checkpoint>,
    /// The digests of the view's entities as of the last checkpoint, so that the next one
    /// re-encodes only what changed. Belongs to the view's line of states: reset when a
    /// batch is discarded.
    pub(super) fingerprints: FingerprintCache,
    /// Where the writer reports a storage failure that stops it.
    pub(super) fatal: watch::Sender<Option<FatalStorageError>>,
    /// The failure that stopped the writer, if one did: every later job is refused with it.
    pub(super) stopped: Option<FatalStorageError>,
    /// The Merkle tree's right edge at the state's head, once a catch-up has loaded it
    /// (`None` before, and whenever it may be wrong): records tailed from other nodes grow
    /// it, and each checkpoint compares its root with the stored tree's.
    pub(super) frontier: Option<Frontier>,
}

impl<L: EventLog> Writer<L> {
    /// Serves the queue until it is closed and drained, then signs a last checkpoint and
    /// saves a last snapshot (unless a storage failure stopped the writer).
    pub(super) fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        // The first checkpoint re-encodes only what changed since this fingerprint, so the
        // walk over every entity is paid here, while commands wait in the queue, rather
        // than in the middle of a stream of writes. Open usually computed it already.
        if self.signer.is_some() && self.fingerprints.is_empty() {
            let view = self.shared.view.read().unwrap_or_else(PoisonError::into_inner);
            let _ = view.fingerprint_cached(&mut self.fingerprints);
        }
        while let Some(first) = jobs.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let mut commands = Vec::with_capacity(batch.len());
            let mut checkpoint_requests = Vec::new();
            let mut catch_ups = Vec::new();
            for job in batch {
                match job {
                    Job::Command { command, request, render, reply } => {
                        commands.push((command, request, render, reply))
                    }
                    Job::Checkpoint { reply } => checkpoint_requests.push(reply),
                    Job::CatchUp { reply } => catch_ups.push(reply),
                }
            }
            if let Some(stopped) = &self.stopped {
                refuse(stopped, commands, checkpoint_requests);
                for reply in catch_ups {
                    let _ = reply.send(Err(SubmitError::Storage(stopped.message().to_owned())));
                }
                continue;
            }
            if !catch_ups.is_empty() {
                // Records other nodes appended first, so the commands decide on them.
                let caught_up = self.catch_up();
                for reply in catch_ups {
                    let _ = reply.send(caught_up.clone());
                }
            }
            self.commit(commands);
            if let Some(stopped) = &self.stopped {
                refuse(stopped, Vec::new(), checkpoint_requests);
            } else if !checkpoint_requests.is_empty() {
                let checkpoint = self.checkpoint();
                for reply in checkpoint_requests {
                    let _ = reply.send(checkpoint.clone());
                }
            } else if self.since_checkpoint() >= self.checkpoint_every {
                let _ = self.checkpoint();
            }
            self.snapshot_if_due(false);
        }
        if self.stopped.is_some() {
            // The log takes no more writes: sign and save nothing more. A snapshot already
            // being written was taken before the failure, from durable state.
            if let Some(saving) = self.saving.take() {
                let _ = saving.join();
            }
            return;
        }
        if self.since_checkpoint() > 0 {
            let _ = self.checkpoint();
        }
        self.snapshot_if_due(true);
    }

    /// The view's head. Only the writer changes the view, so between batches this is the
    /// log's head.
    fn head(&self) -> u64 {
        self.shared.view.read().unwrap_or_else(PoisonError::into_inner).head()
    }

    fn since_checkpoint(&self) -> u64 {
        // Saturating: on several nodes the signer's latest checkpoint may be ahead of this
        // node's view.
        self.head().saturating_sub(self.last_checkpoint.as_ref().map_or(0, |checkpoint| checkpoint.size))
    }

    /// A checkpoint at the head: the latest, if it is there already, or a new one signed
    /// over the stored tree's root and the view's fingerprint, and synced.
    fn checkpoint(&mut self) -> Result<Checkpoint, SubmitError> {
        let head = self.head();
        if let Some(latest) = self.last_checkpoint.as_ref().filter(|latest| latest.size == head) {
            return Ok(latest.clone());
        }
        let (Some(signer), Some(store)) = (&self.signer, &self.shared.checkpoints) else {
            return Err(SubmitError::Storage("this ledger keeps no checkpoints".into()));
        };
        let failed = |error: String| {
            tracing::warn!(%error, head, "signing a checkpoint failed");
            SubmitError::Storage(error)
        };
        let root = merkle::root(&Tree(&self.shared.log), head).map_err(|e| failed(e.to_string()))?;
        if let Some(frontier) = self.frontier.as_ref().filter(|frontier| frontier.size() == head)
            && frontier.root() != root
        {
            // The stored tree is not the tree of the records this node verified and applied.
            return Err(failed(format!("the stored Merkle tree at {head} is not the tree of the records")));
        }
        if !self.shared.signing.load(Ordering::Acquire) {
            return self.follow_signer(head);
        }
        let view = {
            let state = self.shared.view.read().unwrap_or_else(PoisonError::into_inner);
            TreeHash::from_bytes(state.fingerprint_cached(&mut self.fingerprints))
        };
        // A checkpoint is never older than the records it covers.
        let time = Timestamp::now().max(self.last_at);
        let checkpoint = signer.sign(head, root, time, view);
        store.append(&checkpoint).map_err(|e| failed(e.to_string()))?;
        tracing::info!(size = head, root = %root, "signed a checkpoint");
        self.shared.feed.publish_checkpoint(&checkpoint);
        self.shared.metrics.checkpoint_signed(head);
        self.last_checkpoint = Some(checkpoint.clone());
        Ok(checkpoint)
    }

    /// Saves a snapshot of the state at the head when enough records were appended since
    /// the last one (or any, at shutdown). While serving, a thread of its own rebuilds that
    /// state from the log and writes it, so admin writes never pause for it; at shutdown
    /// the writer writes its own state before it stops. A failure only costs start-up
    /// time later, so it is logged, not fatal.
    fn snapshot_if_due(&mut self, shutting_down: bool) {
        let Some(policy) = self.snapshots.clone() else { return };
        if let Some(saving) = self.saving.take_if(|saving| shutting_down || saving.is_finished()) {
            let _ = saving.join();
        }
        let since = self.head() - self.last_snapshot;
        if since == 0 || (!shutting_down && (since < policy.every || self.saving.is_some())) {
            return;
        }
        let (seq, head_hash, last_at) = (self.head(), self.prev_hash, self.last_at);
        self.last_snapshot = seq;
        if shutting_down {
            let state = self.shared.view.read().unwrap_or_else(PoisonError::into_inner);
            save_snapshot(&policy, seq, head_hash, last_at, &state);
            return;
        }
        // While serving, the snapshot is rebuilt from the durable log on a thread of its
        // own: the newest retained snapshot before `seq` and the records after it, read and
        // chain-checked as history reads them. The writer used to copy its state here, and
        // every admin write waited behind the copy (about half a second at 250k users: the
        // p99 spikes of bench-writes.sh). The replay applies the same records with the same
        // `State::apply`, so the snapshot is the state the writer had at `seq`.
        let shared = Arc::clone(&self.shared);
        let saving = std::thread::Builder::new().name("keyledger-snapshot".to_owned()).spawn(move || {
            match history::state_at(history::Source::new(&shared.log, Some(&policy.dir)), history::At::Position(seq)) {
                Ok(replayed) if replayed.state.head() == seq => {
                    save_snapshot(&policy, seq, head_hash, last_at, &replayed.state);
                }
                Ok(replayed) => {
                    tracing::warn!(
                        seq,
                        reached = replayed.state.head(),
                        "rebuilding a snapshot stopped short; none saved"
                    );
                }
                Err(error) => tracing::warn!(%error, seq, "rebuilding a snapshot from the log failed; none saved"),
            }
        });
        match saving {
            Ok(saving) => self.saving = Some(saving),
            Err(error) => tracing::warn!(%error, "cannot start the snapshot thread"),
        }
    }

    /// Decides, appends and applies a batch of commands, and answers each. When another
    /// node appended first (a conflict on the head), the batch is forgotten, the writer
    /// catches up with the log, and the same commands are decided again on the new head, a
    /// bounded number of times.
    fn commit(&mut self, batch: Vec<CommandJob>) {
        if batch.is_empty() {
            return;
        }
        self.shared.metrics.batch(batch.len());
        let mut batch = batch;
        for attempt in 0.. {
            let Some(again) = self.commit_once(batch) else { return };
            let caught_up = if attempt < MAX_CONFLICT_RETRIES {
                self.catch_up().map(|_| ())
            } else {
                Err(SubmitError::Storage(format!(
                    "other nodes moved the log's head {MAX_CONFLICT_RETRIES} times while this batch was decided"
                )))
            };
            if let Err(error) = caught_up {
                for (_, _, _, reply) in again {
                    let _ = reply.send(Err(error.clone()));
                }
                return;
            }
            batch = again;
        }
    }

    /// [`Writer::commit`]'s one attempt. Returns the batch, unanswered, when the log's head
    /// had moved (another node appended): nothing of it was written or applied.
    fn commit_once(&mut self, batch: Vec<CommandJob>) -> Option<Vec<CommandJob>> {
        // The view stays locked until the batch is durable or forgotten: admin reads wait
        // for at most this batch, and never see it before it is durable. Checks read the
        // check index, which this lock does not cover.
        let shared = Arc::clone(&self.shared);
        let mut state = shared.view.write().unwrap_or_else(PoisonError::into_inner);
        let head = state.head();
        state.begin_batch();
        self.batch_start = Some((self.prev_hash, self.last_at));
        let mut records: Vec<StoredRecord> = Vec::new();
        let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());
        // Kept for deciding again should another node move the head first.
        let mut retry = Vec::with_capacity(batch.len());
        let mut retry_renders = Vec::with_capacity(batch.len());
        for (command, request, render, reply) in batch {
            retry.push((command.clone(), request.clone()));
            // Record times never go backwards, even if the system clock does.
            let now = Timestamp::now().max(self.last_at);
            let justification = request.justification;
            let context = Context {
                actor: request.actor,
                now,
                expected_version: request.expected_version,
                credential: request.credential,
            };
            let outcome = domain::decide(&state, &context, command).map(|events| {
                for event in &events {
                    let envelope = Envelope {
                        seq: state.head() + 1,
                        at: now,
                        actor: context.actor.clone(),
                        justification: justification.clone(),
                    };
                    let (stored, hash) = record::encode(&envelope, event, self.prev_hash);
                    let position = Position { seq: envelope.seq, at: now };
                    state.apply(position, event);
                    self.prev_hash = hash;
                    self.last_at = now;
                    records.push(stored);
                }
                Applied { position: state.head(), events }
            });
            // The submitter's reading of the state this command left (its answer), taken
            // now, while the writer holds the view: sent only if the batch is durable. It
            // only reads the state, so a panic in it costs that answer (`None`), never the
            // writer.
            let outcome = outcome.map(|applied| {
                let rendered = render.as_ref().and_then(|render| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| render(&state))).ok().flatten()
                });
                (applied, rendered)
            });
            answers.push((reply, outcome));
            retry_renders.push(render);
        }

        // A batch of refusals and no-ops has nothing to write.
        let appended = if records.is_empty() { Ok(()) } else { self.shared.log.append(head, &records) };
        if let Err(AppendError::Conflict { expected, actual }) = &appended {
            tracing::debug!(expected, actual, "another node appended first; deciding the batch again");
            self.forget_batch(&mut state);
            drop(state);
            let replies = answers.into_iter().map(|(reply, _)| reply);
            return Some(
                retry
                    .into_iter()
                    .zip(retry_renders)
                    .zip(replies)
                    .map(|(((command, request), render), reply)| (command, request, render, reply))
                    .collect(),
            );
        }
        if let Err(AppendError::Storage(storage)) = &appended
            && self.shared.log.outcome_unknown(storage)
        {
            tracing::warn!(error = %storage, "the outcome of an append is unknown; reading the log back");
            self.forget_batch(&mut state);
            drop(state);
            self.resolve_unknown(head, &records, answers);
            return None;
        }
        if let Err(error) = appended {
            let fatal = matches!(&error, AppendError::Storage(storage) if self.shared.log.requires_restart(storage));
            let message = match error {
                AppendError::Storage(storage) => storage.to_string(),
                other => other.to_string(),
            };
            tracing::error!(error = %message, "appending a batch failed; nothing of it was applied");
            // Forget the batch before anyone can read it: back to the durable state.
            self.forget_batch(&mut state);
            drop(state);
            // Every command of the batch was decided against events that were never
            // written, refusals included, so none of those answers stands.
            for (reply, _) in answers {
                let _ = reply.send(Err(SubmitError::Storage(message.clone())));
            }
            if fatal {
                // The storage takes no more writes until a restart replays its journal.
                // Nothing acknowledged is lost (every acknowledged batch was synced) and the
                // failed batch was answered 503. The owner decides to stop the process.
                tracing::error!(error = %message, "the log cannot be written; the writer takes no more commands");
                let stopped = FatalStorageError::new(message);
                self.stopped = Some(stopped.clone());
                self.fatal.send_replace(Some(stopped));
            }
            return None;
        }

        // Durable: the batch stays in the view, and what it touched goes to the checks.
        let update = state.commit_batch();
        self.batch_start = None;
        let applied_head = state.head();
        drop(state);
        if !records.is_empty() {
            self.install(update);
        }
        if let Some(frontier) = self.frontier.as_mut() {
            for record in &records {
                frontier.push(merkle::leaf_hash(&record.bytes), |_, _| {});
            }
        }
        self.shared.applied.send_replace(applied_head);
        // Durable and in the view: followers may have them now. Never waits.
        self.shared.feed.publish_records(records);
        for (reply, outcome) in answers {
            // A caller that went away no longer needs its answer; its events are durable.
            let _ = reply.send(outcome.map_err(SubmitError::Refused));
        }
        None
    }

    /// Reads the records other nodes appended after the state's head, verifies each (its
    /// link in the hash chain and its decoding, as replay does; its Merkle leaf grows the
    /// tree's right edge, whose root each checkpoint compares with the stored tree's),
    /// applies them ([`Writer::apply_durable`]) and publishes them to the feed. Returns
    /// the head reached. A record that does not verify stops the writer: the log is not
    /// the one this node replayed.
    pub(super) fn catch_up(&mut self) -> Result<u64, SubmitError> {
        let storage = |error: String| {
            tracing::warn!(%error, "reading the log to catch up failed");
            SubmitError::Storage(error)
        };
        loop {
            let head = self.head();
            let stored = self.shared.log.read(head + 1, CATCH_UP_CHUNK).map_err(|e| storage(e.to_string()))?;
            if stored.is_empty() {
                return Ok(head);
            }
            let mut frontier = match self.frontier.take() {
                Some(frontier) if frontier.size() == head => frontier,
                _ => Frontier::load(&Tree(&self.shared.log), head).map_err(|e| storage(e.to_string()))?,
            };
            let mut chain = ChainVerifier::resume(head, self.prev_hash);
            let mut events = Vec::with_capacity(stored.len());
            for record in &stored {
                let linked = chain.link_decoded(record.seq, record::decode(&record.bytes));
                let record = match linked {
                    Ok(record) => record,
                    Err(error) => {
                        let message = format!("a record tailed from the log does not verify: {error}");
                        tracing::error!(%message, "the writer takes no more commands");
                        let stopped = FatalStorageError::new(message.clone());
                        self.stopped = Some(stopped.clone());
                        self.fatal.send_replace(Some(stopped));
                        return Err(SubmitError::Storage(message));
                    }
                };
                self.prev_hash = record.hash;
                self.last_at = self.last_at.max(record.at);
                events.push((Position { seq: record.seq, at: record.at }, record.event));
            }
            for record in &stored {
                frontier.push(merkle::leaf_hash(&record.bytes), |_, _| {});
            }
            self.frontier = Some(frontier);
            self.apply_durable(&events);
            tracing::debug!(from = head + 1, to = self.head(), "applied records other nodes appended");
            self.shared.feed.publish_records(stored);
        }
    }

    /// Answers a batch whose append lost its connection while it committed: catches up
    /// with the log and compares what it holds at the batch's positions with the batch.
    /// The same bytes: the batch was written (and is now applied), and its answers stand.
    /// Otherwise it was not, and every command is answered 503.
    fn resolve_unknown(&mut self, head: u64, records: &[StoredRecord], answers: Vec<Answer>) {
        let mut written = None;
        for _ in 0..20 {
            match self.shared.log.read(head + 1, records.len()) {
                Ok(stored) => {
                    written = Some(stored.len() == records.len() && stored.iter().zip(records).all(|(a, b)| a == b));
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "reading the log back after an unknown commit failed; trying again");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
        let caught_up = self.catch_up();
        for (reply, outcome) in answers {
            let answer = match (written, &caught_up) {
                (Some(true), Ok(_)) => outcome.map_err(SubmitError::Refused),
                (Some(true), Err(error)) => Err(error.clone()),
                _ => Err(SubmitError::Storage("the append was not written (its connection was lost)".into())),
            };
            let _ = reply.send(answer);
        }
    }

    /// A node that does not sign (another holds the signer's lock) answers with the newest
    /// checkpoint the signer stored, having computed the same root and fingerprint as the
    /// signer: if the signer's checkpoint is at this head, both must match.
    fn follow_signer(&mut self, head: u64) -> Result<Checkpoint, SubmitError> {
        let Some(store) = &self.shared.checkpoints else {
            return Err(SubmitError::Storage("this ledger keeps no checkpoints".into()));
        };
        let latest = store.all().map_err(|e| SubmitError::Storage(e.to_string()))?.pop();
        if let Some(latest) = latest.as_ref().filter(|latest| latest.size == head) {
            let view = {
                let state = self.shared.view.read().unwrap_or_else(PoisonError::into_inner);
                TreeHash::from_bytes(state.fingerprint_cached(&mut self.fingerprints))
            };
            if latest.view != view {
                tracing::error!(size = head, "the signer's checkpoint names another view than this node's");
            }
        }
        match latest {
            Some(latest) => {
                self.last_checkpoint = Some(latest.clone());
                Ok(latest)
            }
            None => Err(SubmitError::Storage("no checkpoint signed yet; another node signs them".into())),
        }
    }
}

impl<L> Writer<L> {
    /// Forgets the batch under way, if there is one, and restores the durable state: the
    /// view as it was before the batch (from the state's journal,
    /// [`State::rollback_batch`]), and the chain hash and time of the last durable record.
    /// The check index never saw the batch, so it has nothing to forget.
    ///
    /// [`Writer::commit`] already does this, under the lock it holds for the batch, when an
    /// append fails; so after a failed commit this finds nothing under way and does
    /// nothing. It is the seam for a caller that stops a batch some other way.
    // The seam for the PostgreSQL tail (issue #12), which calls it from the writer loop.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) fn discard_batch(&mut self) {
        let shared = Arc::clone(&self.shared);
        let mut state = shared.view.write().unwrap_or_else(PoisonError::into_inner);
        self.forget_batch(&mut state);
    }

    /// Applies records this writer did not decide (another node appended them, and they
    /// were read back from the shared log) to the view and to the check index, as one
    /// durable batch. A batch of this writer's still under way is discarded first: its
    /// positions are these records'. Does not publish them on the feed, and leaves
    /// `prev_hash` to the caller, who read the records and knows the last one's chain hash.
    // The seam for the PostgreSQL tail (issue #12), which calls it from the writer loop.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) fn apply_durable(&mut self, records: &[(Position, Event)]) {
        if records.is_empty() {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let mut state = shared.view.write().unwrap_or_else(PoisonError::into_inner);
        self.forget_batch(&mut state);
        state.begin_batch();
        for (position, event) in records {
            state.apply(*position, event);
            self.last_at = self.last_at.max(position.at);
        }
        let update = state.commit_batch();
        let applied_head = state.head();
        drop(state);
        self.install(update);
        self.shared.applied.send_replace(applied_head);
    }

    /// Forgets the batch under way in `state`, which the caller holds locked; does nothing
    /// when there is none.
    fn forget_batch(&mut self, state: &mut State) {
        if !state.in_batch() {
            return;
        }
        state.rollback_batch();
        if let Some((prev_hash, last_at)) = self.batch_start.take() {
            self.prev_hash = prev_hash;
            self.last_at = last_at;
        }
        // The batch's positions will be used again, so digests cached by them (and the
        // Merkle frontier grown by them) may no longer be right.
        self.fingerprints = FingerprintCache::default();
        self.frontier = None;
    }

    /// Installs a durable batch's changes in the check index. Called with the view's lock
    /// let go, so no lock is ever taken while holding the other.
    /// A batch that would fill the index's table past its load installs into a bigger copy
    /// built beside it first ([`CheckIndex::grown_for`]), and the old table is freed after
    /// the lock is let go: checks wait only for the swap and the update.
    fn install(&self, update: CheckUpdate) {
        let grown = self.shared.checks.read().unwrap_or_else(PoisonError::into_inner).grown_for(&update);
        let mut checks = self.shared.checks.write().unwrap_or_else(PoisonError::into_inner);
        let replaced = grown.map(|grown| std::mem::replace(&mut *checks, grown));
        checks.update(update);
        drop(checks);
        drop(replaced);
    }
}

/// Answers every job with the storage failure that stopped the writer.
fn refuse(stopped: &FatalStorageError, commands: Vec<CommandJob>, checkpoints: Vec<CheckpointReply>) {
    let refusal = || SubmitError::Storage(stopped.message().to_owned());
    for (_, _, _, reply) in commands {
        let _ = reply.send(Err(refusal()));
    }
    for reply in checkpoints {
        let _ = reply.send(Err(refusal()));
    }
}
