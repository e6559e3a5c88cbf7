//! The ledger: the event log, the permission view projected from it, and the single
//! writer that turns commands into durable events.
//!
//! Commands go to one writer thread through a queue. The writer takes every command
//! waiting (up to [`MAX_BATCH`]), decides each in order against its own copy of the
//! state (so later commands see earlier ones), appends all their events in one synced
//! batch, then applies them to the shared view under a write lock held only for the
//! apply, and answers every command. This is group commit: concurrent writers share
//! one fsync. Key checks and reads take the view's read lock and never wait on disk.
//!
//! The writer also signs checkpoints (every so many records, when asked, and at
//! shutdown): it alone knows the view at exactly the log's head. At open, the log must
//! still match its latest checkpoint, or the ledger refuses to serve.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore, PublicKey, Signer};
use crate::domain::{
    self, Actor, Command, Context, DomainError, Event, FingerprintCache, KeyHash, KeySecret, Position, State, Timestamp,
};
use crate::log::record::{self, Envelope};
use crate::log::{AppendError, ChainError, ChainHash, ChainVerifier, EventLog, StoredRecord, Tree};
use crate::merkle::{self, Frontier, TreeHash};
use crate::snapshot;

/// The exit status when the log fails a write and the process must restart (EX_IOERR).
pub const EXIT_STORAGE_FAILED: i32 = 74;

/// The most commands decided and synced together.
pub const MAX_BATCH: usize = 512;
const QUEUE_DEPTH: usize = 4096;
const REPLAY_CHUNK: usize = 4096;

/// Where and how often the ledger saves snapshots of the view, so that start-up replays
/// only the records after the newest one.
#[derive(Debug, Clone)]
pub struct SnapshotPolicy {
    /// The directory holding the snapshot files.
    pub dir: PathBuf,
    /// Save a snapshot once this many records were appended since the last one (and at
    /// shutdown, if any were).
    pub every: u64,
}

/// Where checkpoints go, who signs them, and how often the writer makes one unasked.
#[derive(Debug)]
pub struct CheckpointPolicy {
    /// The file of checkpoints.
    pub store: CheckpointStore,
    /// The service's signing key.
    pub signer: Signer,
    /// Sign a checkpoint once this many records were appended since the last one (and at
    /// shutdown, and whenever [`Ledger::checkpoint`] asks, if any were).
    pub every: u64,
}

/// How the ledger keeps snapshots and checkpoints; both are off by default.
#[derive(Debug, Default)]
pub struct Policies {
    /// Snapshots of the view, for fast start-up.
    pub snapshots: Option<SnapshotPolicy>,
    /// Signed checkpoints of the log.
    pub checkpoints: Option<CheckpointPolicy>,
}

/// Why the ledger could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The storage failed while reading the log.
    #[error("reading the log failed: {0}")]
    Storage(Box<dyn std::error::Error + Send + Sync>),
    /// The log is not an intact chain: refuse to serve a history that was altered.
    #[error("the log does not verify: {0}")]
    Corrupt(#[from] ChainError),
    /// The writer thread could not be started.
    #[error("starting the writer thread failed: {0}")]
    Thread(std::io::Error),
    /// The checkpoints could not be read.
    #[error("reading the checkpoints failed: {0}")]
    Checkpoints(#[from] CheckpointError),
    /// The log does not match its latest signed checkpoint: it was truncated, edited or
    /// replaced since. Serving it would serve a history other than the one signed.
    #[error(
        "the log does not match its latest signed checkpoint (size {size}): {reason}; refusing to serve a history that was truncated or edited"
    )]
    CheckpointMismatch {
        /// The size the checkpoint covers.
        size: u64,
        /// What does not match.
        reason: String,
    },
}

/// Why a command was not carried out. In every case nothing was appended.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    /// The rules refused it.
    #[error(transparent)]
    Refused(#[from] DomainError),
    /// The storage failed; the write may be retried once storage recovers.
    #[error("the log could not be written: {0}")]
    Storage(String),
    /// The ledger is shutting down.
    #[error("the ledger is shutting down")]
    ShuttingDown,
}

/// What a carried-out command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The log position of the command's last event, or the head if it changed nothing.
    pub position: u64,
    /// The events it appended, in order.
    pub events: Vec<Event>,
}

/// Who asks for a command, and on what version of its target.
#[derive(Debug, Clone)]
pub struct Request {
    /// Who asks.
    pub actor: Actor,
    /// The `If-Match` version, if any.
    pub expected_version: Option<u64>,
    /// The hash of the key the actor presented, if it presented one: the command is
    /// refused if that key no longer works when the command is applied.
    pub credential: Option<KeyHash>,
}

// Commands are by far the most common job, so the queue holds them unboxed.
#[allow(clippy::large_enum_variant)]
enum Job {
    Command { command: Command, request: Request, reply: oneshot::Sender<Result<Applied, SubmitError>> },
    Checkpoint { reply: oneshot::Sender<Result<Checkpoint, SubmitError>> },
}

struct Shared<L> {
    log: L,
    view: RwLock<State>,
    /// The public half of the signing key, when checkpoints are kept.
    public_key: Option<PublicKey>,
    /// The checkpoint file, when checkpoints are kept.
    checkpoints: Option<CheckpointStore>,
}

/// The running ledger. Dropping it lets the writer finish what is queued, then stops it.
pub struct Ledger<L: EventLog> {
    shared: Arc<Shared<L>>,
    /// The writer's queue; `None` once the ledger is closed.
    queue: RwLock<Option<mpsc::Sender<Job>>>,
    writer: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl<L: EventLog> Ledger<L> {
    /// Opens the ledger over a log: verifies the whole chain while replaying it into the
    /// view, then starts the writer. Saves no snapshots.
    pub fn open(log: L) -> Result<Self, OpenError> {
        Self::open_with(log, Policies::default())
    }

    /// Opens the ledger, starting from the newest usable snapshot if there is one and
    /// replaying (and verifying) only the records after it; with no usable snapshot, the
    /// whole log is replayed and verified. The replayed records' Merkle leaves must match
    /// the stored tree, and the log must match its latest signed checkpoint.
    pub fn open_with(log: L, policies: Policies) -> Result<Self, OpenError> {
        let Policies { snapshots, checkpoints } = policies;
        let storage = |e: L::Error| OpenError::Storage(Box::new(e));
        let latest = match &checkpoints {
            Some(policy) => policy.store.all()?.pop(),
            None => None,
        };
        let restored = snapshots.as_ref().and_then(|policy| restore(&log, policy));
        let from_snapshot = restored.as_ref().map_or(0, |(state, _, _)| state.head());
        let (mut state, mut verifier, mut last_at) =
            restored.unwrap_or_else(|| (State::default(), ChainVerifier::default(), Timestamp::from_unix_millis(0)));
        // The tree's right edge where replay starts, grown from the records' own bytes.
        let mut frontier = Frontier::load(&Tree(&log), from_snapshot).map_err(|e| tree_error(from_snapshot, e))?;
        let mut signed_view_checked = false;
        loop {
            let chunk = log.read(verifier.size() + 1, REPLAY_CHUNK).map_err(storage)?;
            if chunk.is_empty() {
                break;
            }
            for stored in &chunk {
                let record = verifier.verify_and_decode_next(stored)?;
                frontier.push(merkle::leaf_hash(&stored.bytes), |_, _| {});
                last_at = record.at;
                state.apply(Position { seq: record.seq, at: record.at }, &record.event);
                if let Some(checkpoint) = latest.as_ref().filter(|checkpoint| checkpoint.size == record.seq) {
                    check_replay_against(checkpoint, &frontier, &state)?;
                    signed_view_checked = true;
                }
            }
        }
        tracing::info!(
            records = verifier.size(),
            from_snapshot,
            replayed = verifier.size() - from_snapshot,
            "opened the log"
        );
        let head = log.head().map_err(storage)?;
        if head != verifier.size() {
            return Err(OpenError::Corrupt(ChainError::Gap { expected: verifier.size() + 1, found: head }));
        }
        let stored_root = merkle::root(&Tree(&log), head).map_err(|e| tree_error(head, e))?;
        if stored_root != frontier.root() {
            return Err(OpenError::Corrupt(ChainError::Record(record::RecordError::Malformed(format!(
                "the Merkle tree stored for the log's {head} records does not match the records"
            )))));
        }
        let (signer, every, store) = match checkpoints {
            Some(CheckpointPolicy { store, signer, every }) => (Some(signer), every.max(1), Some(store)),
            None => (None, u64::MAX, None),
        };
        if let (Some(checkpoint), Some(signer)) = (&latest, &signer) {
            check_log_against(&log, checkpoint, &signer.public_key(), head)?;
            if !signed_view_checked
                && checkpoint.size == state.head()
                && checkpoint.view.as_bytes() != &state.fingerprint()
            {
                return Err(OpenError::CheckpointMismatch {
                    size: checkpoint.size,
                    reason: "the permission view restored from the snapshot is not the one signed".into(),
                });
            }
        }
        let writer_state = state.clone();
        let public_key = signer.as_ref().map(Signer::public_key);
        let shared = Arc::new(Shared { log, view: RwLock::new(state), public_key, checkpoints: store });
        let (queue, jobs) = mpsc::channel(QUEUE_DEPTH);
        let writer = Writer {
            shared: Arc::clone(&shared),
            state: writer_state,
            prev_hash: verifier.head_hash(),
            last_at,
            last_snapshot: from_snapshot,
            snapshots,
            saving: None,
            signer,
            checkpoint_every: every,
            last_checkpoint: latest,
            fingerprints: FingerprintCache::default(),
        };
        let writer = std::thread::Builder::new()
            .name("keyledger-writer".to_owned())
            .spawn(move || writer.run(jobs))
            .map_err(OpenError::Thread)?;
        Ok(Self { shared, queue: RwLock::new(Some(queue)), writer: std::sync::Mutex::new(Some(writer)) })
    }

    /// The permission view, for reading. Hold the guard briefly: the writer waits for it.
    pub fn view(&self) -> RwLockReadGuard<'_, State> {
        self.shared.view.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The log underneath, for reading records.
    pub fn log(&self) -> &L {
        &self.shared.log
    }

    /// Submits a command and waits until its events are durable (or it is refused).
    pub async fn submit(&self, command: Command, request: Request) -> Result<Applied, SubmitError> {
        let (reply, answer) = oneshot::channel();
        let queue = self.sender()?;
        queue.send(Job::Command { command, request, reply }).await.map_err(|_| SubmitError::ShuttingDown)?;
        answer.await.map_err(|_| SubmitError::ShuttingDown)?
    }

    /// Submits a command from outside an async runtime, blocking the calling thread.
    pub fn submit_blocking(&self, command: Command, request: Request) -> Result<Applied, SubmitError> {
        let (reply, answer) = oneshot::channel();
        let queue = self.sender()?;
        queue.blocking_send(Job::Command { command, request, reply }).map_err(|_| SubmitError::ShuttingDown)?;
        answer.blocking_recv().map_err(|_| SubmitError::ShuttingDown)?
    }

    /// A signed checkpoint covering every record appended before the call: the latest one
    /// if it does, otherwise a new one, signed and synced first. Fails with `Storage` when
    /// the ledger keeps no checkpoints or the new one could not be written.
    pub async fn checkpoint(&self) -> Result<Checkpoint, SubmitError> {
        let (reply, answer) = oneshot::channel();
        let queue = self.sender()?;
        queue.send(Job::Checkpoint { reply }).await.map_err(|_| SubmitError::ShuttingDown)?;
        answer.await.map_err(|_| SubmitError::ShuttingDown)?
    }

    /// [`Ledger::checkpoint`], from outside an async runtime.
    pub fn checkpoint_blocking(&self) -> Result<Checkpoint, SubmitError> {
        let (reply, answer) = oneshot::channel();
        let queue = self.sender()?;
        queue.blocking_send(Job::Checkpoint { reply }).map_err(|_| SubmitError::ShuttingDown)?;
        answer.blocking_recv().map_err(|_| SubmitError::ShuttingDown)?
    }

    /// The public half of the signing key, when checkpoints are kept.
    pub fn public_key(&self) -> Option<PublicKey> {
        self.shared.public_key
    }

    /// Every checkpoint written, oldest first (none when checkpoints are not kept).
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, CheckpointError> {
        match &self.shared.checkpoints {
            Some(store) => store.all(),
            None => Ok(Vec::new()),
        }
    }

    /// Initialises an empty ledger: an Administrator user holding an admin role with every
    /// admin function, and a key for it. Returns the key's secret, to be shown once, or
    /// `None` if the ledger was already initialised.
    pub fn bootstrap(&self) -> Result<Option<KeySecret>, SubmitError> {
        if self.view().head() != 0 {
            return Ok(None);
        }
        let mut rng = rand::rng();
        let secret = KeySecret::generate(&mut rng);
        let command = Command::Bootstrap {
            user_id: domain::UserId::generate(&mut rng),
            role_id: domain::RoleId::generate(&mut rng),
            key_id: domain::KeyId::generate(&mut rng),
            key_hash: secret.hash(),
        };
        match self.submit_blocking(command, Request { actor: Actor::System, expected_version: None, credential: None })
        {
            Ok(_) => Ok(Some(secret)),
            Err(SubmitError::Refused(DomainError::AlreadyInitialised)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Recovers administration of an initialised ledger (`keyledger recover-admin`): one
    /// `AdministratorRecovered` by the system, creating a new user with a new role that
    /// holds every admin function, and a key. Returns the new user and the key's secret,
    /// to be shown once.
    pub fn recover_administrator(
        &self,
        reason: domain::RecoveryReason,
    ) -> Result<(domain::UserId, KeySecret), SubmitError> {
        let mut rng = rand::rng();
        let secret = KeySecret::generate(&mut rng);
        let user_id = domain::UserId::generate(&mut rng);
        let command = Command::RecoverAdministrator {
            user_id: user_id.clone(),
            role_id: domain::RoleId::generate(&mut rng),
            key_id: domain::KeyId::generate(&mut rng),
            key_hash: secret.hash(),
            reason,
        };
        self.submit_blocking(command, Request { actor: Actor::System, expected_version: None, credential: None })?;
        Ok((user_id, secret))
    }

    /// Stops taking commands, lets the writer finish what is queued (and save its shutdown
    /// snapshot), and waits for it. Submitting afterwards fails with `ShuttingDown`.
    /// Dropping the ledger does the same.
    pub fn close(&self) {
        // Closing the queue lets the writer drain what is queued and stop.
        self.queue.write().unwrap_or_else(PoisonError::into_inner).take();
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(writer) = writer
            && writer.join().is_err()
        {
            tracing::error!("the writer thread panicked");
        }
    }

    fn sender(&self) -> Result<mpsc::Sender<Job>, SubmitError> {
        self.queue.read().unwrap_or_else(PoisonError::into_inner).clone().ok_or(SubmitError::ShuttingDown)
    }

    /// Recomputes the hash chain and the Merkle tree over the whole log, from storage, and
    /// checks them against every signed checkpoint.
    pub fn verify(&self) -> Result<Verification, L::Error> {
        // An unreadable checkpoint file shows as no checkpoints; opening the ledger read it.
        let checkpoints = self.checkpoints().unwrap_or_default();
        verify_log(&self.shared.log, &checkpoints, self.shared.public_key.as_ref())
    }
}

impl<L: EventLog> Drop for Ledger<L> {
    fn drop(&mut self) {
        self.close();
    }
}

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

/// Verifies every record of a log, in order: hashes, links, sequence and unique ids, and
/// that every record decodes into an event this build can replay; that the Merkle tree
/// stored beside the records is theirs; and that every checkpoint in `checkpoints` is
/// signed by `key` (when given) and signs the root of the records at its size. The log's
/// head is read first and the records up to it are verified, so writes landing meanwhile
/// neither fail nor extend the verification.
pub fn verify_log<L: EventLog>(
    log: &L,
    checkpoints: &[Checkpoint],
    key: Option<&PublicKey>,
) -> Result<Verification, L::Error> {
    let head = log.head()?;
    let mut verifier = ChainVerifier::default();
    let mut frontier = Frontier::default();
    let mut matched = 0;
    let mut pending = checkpoints.iter().filter(|checkpoint| checkpoint.size <= head).peekable();
    let outcome = |verifier: &ChainVerifier, matched: u64, error: Option<VerifyError>| Verification {
        size: head,
        verified: verifier.size(),
        head_hash: verifier.head_hash(),
        checkpoints: matched,
        error,
    };
    loop {
        // Every checkpoint at the size reached so far is checked before going on.
        while let Some(checkpoint) = pending.next_if(|checkpoint| checkpoint.size <= frontier.size()) {
            let mismatch = |reason: &str| VerifyError::Checkpoint { size: checkpoint.size, reason: reason.into() };
            if key.is_some_and(|key| !checkpoint.is_signed_by(key)) {
                return Ok(outcome(&verifier, matched, Some(mismatch("it is not signed by this service's key"))));
            }
            if checkpoint.size != frontier.size() || checkpoint.root != frontier.root() {
                return Ok(outcome(
                    &verifier,
                    matched,
                    Some(mismatch("the Merkle root of the records is not the one signed")),
                ));
            }
            matched += 1;
        }
        if verifier.size() >= head {
            break;
        }
        let wanted = usize::try_from(head - verifier.size()).unwrap_or(usize::MAX).min(REPLAY_CHUNK);
        let chunk = log.read(verifier.size() + 1, wanted)?;
        if chunk.is_empty() {
            let error = ChainError::Gap { expected: verifier.size() + 1, found: head };
            return Ok(outcome(&verifier, matched, Some(error.into())));
        }
        for stored in &chunk {
            if let Err(error) = verifier.verify_and_decode_next(stored) {
                return Ok(outcome(&verifier, matched, Some(error.into())));
            }
            frontier.push(merkle::leaf_hash(&stored.bytes), |_, _| {});
            if pending.peek().is_some_and(|checkpoint| checkpoint.size == frontier.size()) {
                break;
            }
        }
    }
    let tree_matches = merkle::root(&Tree(log), head).is_ok_and(|root| root == frontier.root());
    let error = (!tree_matches).then_some(VerifyError::Tree { size: head });
    Ok(outcome(&verifier, matched, error))
}

fn tree_error<E: std::error::Error + Send + Sync + 'static>(size: u64, error: merkle::ProofError<E>) -> OpenError {
    match error {
        merkle::ProofError::Storage(error) => OpenError::Storage(Box::new(error)),
        other => OpenError::Corrupt(ChainError::Record(record::RecordError::Malformed(format!(
            "the Merkle tree over the first {size} records cannot be read: {other}"
        )))),
    }
}

/// Checks a replay that has just applied record `checkpoint.size` against the checkpoint:
/// the root recomputed from the records' bytes, and the view they produced.
fn check_replay_against(checkpoint: &Checkpoint, frontier: &Frontier, state: &State) -> Result<(), OpenError> {
    let mismatch = |reason: &str| OpenError::CheckpointMismatch { size: checkpoint.size, reason: reason.to_owned() };
    if frontier.root() != checkpoint.root {
        return Err(mismatch("the Merkle root of the records is not the one signed"));
    }
    if checkpoint.view.as_bytes() != &state.fingerprint() {
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

/// Loads the newest snapshot and checks it against the log: the record at its position must
/// exist and have the chain hash it names. `None` (and a warning) when it cannot be used.
fn restore<L: EventLog>(log: &L, policy: &SnapshotPolicy) -> Option<(State, ChainVerifier, Timestamp)> {
    let snapshot = match snapshot::latest(&policy.dir) {
        Ok(Some(snapshot)) => snapshot,
        Ok(None) => return None,
        Err(error) => {
            tracing::warn!(%error, "cannot read snapshots; replaying the whole log");
            return None;
        }
    };
    let matches_log = log
        .read(snapshot.seq, 1)
        .ok()
        .and_then(|records| records.into_iter().next())
        .filter(|stored| stored.seq == snapshot.seq)
        .and_then(|stored| record::decode(&stored.bytes).ok())
        .is_some_and(|record| record.hash == snapshot.head_hash && snapshot.state.head() == snapshot.seq);
    if !matches_log {
        tracing::warn!(seq = snapshot.seq, "the newest snapshot does not match the log; replaying the whole log");
        return None;
    }
    let verifier = ChainVerifier::resume(snapshot.seq, snapshot.head_hash);
    Some((snapshot.state, verifier, snapshot.last_at))
}

fn save_snapshot(policy: &SnapshotPolicy, seq: u64, head_hash: ChainHash, last_at: Timestamp, state: &State) {
    match snapshot::write(&policy.dir, seq, head_hash, last_at, state) {
        Ok(path) => tracing::info!(seq, path = %path.display(), "saved a snapshot"),
        Err(error) => tracing::warn!(%error, "saving a snapshot failed"),
    }
}

type CommandJob = (Command, Request, oneshot::Sender<Result<Applied, SubmitError>>);

struct Writer<L> {
    shared: Arc<Shared<L>>,
    snapshots: Option<SnapshotPolicy>,
    /// The thread saving a snapshot, if one is under way.
    saving: Option<JoinHandle<()>>,
    /// The position of the newest snapshot saved or loaded.
    last_snapshot: u64,
    /// The writer's own copy of the state: the view plus whatever the current batch has
    /// decided. It equals the view between batches.
    state: State,
    prev_hash: ChainHash,
    last_at: Timestamp,
    /// The signing key, when checkpoints are kept.
    signer: Option<Signer>,
    checkpoint_every: u64,
    /// The newest checkpoint written or loaded.
    last_checkpoint: Option<Checkpoint>,
    /// The digests of the view's entities as of the last checkpoint, so that the next one
    /// re-encodes only what changed. Belongs to `state`: reset with it.
    fingerprints: FingerprintCache,
}

impl<L: EventLog> Writer<L> {
    fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
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
            for job in batch {
                match job {
                    Job::Command { command, request, reply } => commands.push((command, request, reply)),
                    Job::Checkpoint { reply } => checkpoint_requests.push(reply),
                }
            }
            self.commit(commands);
            if !checkpoint_requests.is_empty() {
                let checkpoint = self.checkpoint();
                for reply in checkpoint_requests {
                    let _ = reply.send(checkpoint.clone());
                }
            } else if self.since_checkpoint() >= self.checkpoint_every {
                let _ = self.checkpoint();
            }
            self.snapshot_if_due(false);
        }
        if self.since_checkpoint() > 0 {
            let _ = self.checkpoint();
        }
        self.snapshot_if_due(true);
    }

    fn since_checkpoint(&self) -> u64 {
        self.state.head() - self.last_checkpoint.as_ref().map_or(0, |checkpoint| checkpoint.size)
    }

    /// A checkpoint at the head: the latest, if it is there already, or a new one signed
    /// over the stored tree's root and the view's fingerprint, and synced.
    fn checkpoint(&mut self) -> Result<Checkpoint, SubmitError> {
        let head = self.state.head();
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
        let view = TreeHash::from_bytes(self.state.fingerprint_cached(&mut self.fingerprints));
        // A checkpoint is never older than the records it covers.
        let time = Timestamp::now().max(self.last_at);
        let checkpoint = signer.sign(head, root, time, view);
        store.append(&checkpoint).map_err(|e| failed(e.to_string()))?;
        tracing::info!(size = head, root = %root, "signed a checkpoint");
        self.last_checkpoint = Some(checkpoint.clone());
        Ok(checkpoint)
    }

    /// Saves a snapshot of the writer's state, which equals the view between batches, when
    /// enough records were appended since the last one (or any, at shutdown). While
    /// serving, the state is cloned and written by a thread of its own, so admin writes
    /// pause only for the clone; at shutdown it is written before the writer stops. A
    /// failure only costs start-up time later, so it is logged, not fatal.
    fn snapshot_if_due(&mut self, shutting_down: bool) {
        let Some(policy) = self.snapshots.clone() else { return };
        if let Some(saving) = self.saving.take_if(|saving| shutting_down || saving.is_finished()) {
            let _ = saving.join();
        }
        let since = self.state.head() - self.last_snapshot;
        if since == 0 || (!shutting_down && (since < policy.every || self.saving.is_some())) {
            return;
        }
        let (seq, head_hash, last_at) = (self.state.head(), self.prev_hash, self.last_at);
        self.last_snapshot = seq;
        if shutting_down {
            save_snapshot(&policy, seq, head_hash, last_at, &self.state);
            return;
        }
        let state = self.state.clone();
        let saving = std::thread::Builder::new()
            .name("keyledger-snapshot".to_owned())
            .spawn(move || save_snapshot(&policy, seq, head_hash, last_at, &state));
        match saving {
            Ok(saving) => self.saving = Some(saving),
            Err(error) => tracing::warn!(%error, "cannot start the snapshot thread"),
        }
    }

    fn commit(&mut self, batch: Vec<CommandJob>) {
        let head = self.state.head();
        let (prev_hash, last_at) = (self.prev_hash, self.last_at);
        let mut records: Vec<StoredRecord> = Vec::new();
        let mut applied: Vec<(Position, Event)> = Vec::new();
        let mut answers = Vec::with_capacity(batch.len());
        for (command, request, reply) in batch {
            // Record times never go backwards, even if the system clock does.
            let now = Timestamp::now().max(self.last_at);
            let context = Context {
                actor: request.actor,
                now,
                expected_version: request.expected_version,
                credential: request.credential,
            };
            let outcome = domain::decide(&self.state, &context, command).map(|events| {
                for event in &events {
                    let envelope = Envelope { seq: self.state.head() + 1, at: now, actor: context.actor.clone() };
                    let (stored, hash) = record::encode(&envelope, event, self.prev_hash);
                    let position = Position { seq: envelope.seq, at: now };
                    self.state.apply(position, event);
                    self.prev_hash = hash;
                    self.last_at = now;
                    records.push(stored);
                    applied.push((position, event.clone()));
                }
                Applied { position: self.state.head(), events }
            });
            answers.push((reply, outcome));
        }

        // A batch of refusals and no-ops has nothing to write.
        let appended = if records.is_empty() { Ok(()) } else { self.shared.log.append(head, &records) };
        if let Err(error) = appended {
            let fatal = matches!(&error, AppendError::Storage(storage) if self.shared.log.requires_restart(storage));
            let message = match error {
                AppendError::Storage(storage) => storage.to_string(),
                other => other.to_string(),
            };
            tracing::error!(error = %message, "appending a batch failed; nothing of it was applied");
            // Forget the batch: go back to the durable state. Its positions will be used
            // again, so digests cached by them may no longer be right.
            self.state = self.shared.view.read().unwrap_or_else(PoisonError::into_inner).clone();
            self.fingerprints = FingerprintCache::default();
            self.prev_hash = prev_hash;
            self.last_at = last_at;
            // Every command of the batch was decided against events that were never
            // written, refusals included, so none of those answers stands.
            for (reply, _) in answers {
                let _ = reply.send(Err(SubmitError::Storage(message.clone())));
            }
            if fatal {
                // The storage takes no more writes until a restart replays its journal.
                // Nothing acknowledged is lost (every acknowledged batch was synced) and the
                // failed batch was answered 503. Give the answers a moment to leave.
                tracing::error!(error = %message, "the log cannot be written; stopping so that a restart can recover");
                eprintln!(
                    "keyledger: the log could not be written ({message}); stopping. Free space or fix the disk, then restart: nothing acknowledged was lost."
                );
                std::thread::sleep(std::time::Duration::from_millis(200));
                std::process::exit(EXIT_STORAGE_FAILED);
            }
            return;
        }

        if !applied.is_empty() {
            let mut view = self.shared.view.write().unwrap_or_else(PoisonError::into_inner);
            for (position, event) in &applied {
                view.apply(*position, event);
            }
        }
        for (reply, outcome) in answers {
            // A caller that went away no longer needs its answer; its events are durable.
            let _ = reply.send(outcome.map_err(SubmitError::Refused));
        }
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
