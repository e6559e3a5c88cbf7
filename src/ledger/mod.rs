//! The ledger: the event log, the permission view projected from it, and the single
//! writer that turns commands into durable events.
//!
//! Commands go to one writer thread through a queue. The writer takes every command
//! waiting (up to [`MAX_BATCH`]), and, holding the view's write lock, decides each in
//! order and applies its events to the one copy of the state in place (so later commands
//! see earlier ones), under a journal of what the batch replaced. It appends all their
//! events in one synced batch, still holding the lock: a failed append puts back what the
//! journal kept ([`domain::State::rollback_batch`]); a durable one is copied into the
//! check index ([`domain::CheckIndex`]). Then it lets go of the lock and answers every
//! command. This is group commit: concurrent writers share one fsync.
//!
//! So there are two things to read. Key checks (`checkKey`, `authorizeRequest`, the admin
//! guard) read the check index ([`Ledger::checks`]), which holds only durable state and
//! whose lock the writer takes only to install a durable batch's changes: they never see
//! an event that is not durable and never wait on disk. Admin reads take the view's read
//! lock ([`Ledger::view`]) and see only durable state too, but may wait for the batch
//! under way, its fsync included: at most one batch.
//!
//! A mutation's own answer does not read the view: its submitter hands the writer a
//! [`Render`], which the writer calls right after applying the command, and gets what it
//! read back with the acknowledgement ([`Ledger::submit_rendering`]). So the answer shows
//! exactly the state the command left (not a later command's in the same batch), and the
//! task answering it never waits on the lock through the next batch's fsync.
//!
//! The writer also signs checkpoints (every so many records, when asked, and at
//! shutdown): it alone knows the view at exactly the log's head. At open, the log must
//! still match its latest checkpoint, or the ledger refuses to serve.

pub mod feed;
mod open;
pub mod replay;
pub mod tail;
mod verify;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot, watch};

use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore, PublicKey, Signer};
use crate::domain::{self, Actor, CheckIndex, Command, DomainError, Event, Justification, KeyHash, KeySecret, State};
use crate::log::{ChainError, EventLog};
use crate::metrics::{CommandKind, CommandOutcome, WriteMetrics};

pub use feed::{Change, DEFAULT_FEED_CAPACITY};
pub use replay::{ReplayError, TreeError, Unauthorised, VerifiedReplay};
pub use verify::{Verification, VerifyError, verify_log};

/// The most commands decided and synced together.
pub const MAX_BATCH: usize = 512;
const QUEUE_DEPTH: usize = 4096;
const REPLAY_CHUNK: usize = 4096;

/// Where and how often the ledger saves snapshots of the view, so that start-up replays
/// only the records after the newest one, and a question about a past point of the
/// history only the records after the nearest retained one ([`crate::history`]).
#[derive(Debug, Clone)]
pub struct SnapshotPolicy {
    /// The directory holding the snapshot files.
    pub dir: PathBuf,
    /// Save a snapshot once this many records were appended since the last one (and at
    /// shutdown, if any were). Also the spacing of the snapshots retained for history
    /// ([`crate::snapshot::retained`]).
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
    /// The Merkle tree stored beside the records is not whole, or not theirs.
    #[error("the log does not verify: {0}")]
    Tree(#[from] TreeError),
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

/// The log failed a write in a way only a restart recovers from (fjall takes no writes
/// after a failed one until its journal is replayed). The writer has answered the failed
/// batch, refuses every later command, and reports this through [`Ledger::fatal`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the log could not be written ({message})")]
pub struct FatalStorageError {
    message: String,
}

impl FatalStorageError {
    fn new(message: String) -> Self {
        Self { message }
    }

    /// What the storage said.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// What a carried-out command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The log position of the command's last event, or the head if it changed nothing.
    pub position: u64,
    /// The events it appended, in order.
    pub events: Vec<Event>,
}

/// What the submitter of a command reads from the view right after the command is applied:
/// the writer calls it, holding the view, once the command's events are applied (and
/// only for a command that was carried out), and hands back what it returns with the
/// acknowledgement once the batch is durable ([`Ledger::submit_rendering`]). So a
/// mutation's answer shows exactly the state its command left, and the task answering
/// it never takes the view's lock, which the writer holds through the next batch and
/// its fsync.
pub type Render = Box<dyn Fn(&State) -> Option<Rendered> + Send>;

/// What a [`Render`] returned, for the submitter to downcast.
pub type Rendered = Box<dyn std::any::Any + Send>;

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
    /// Why, if the admin said (`Keyledger-Justification`): kept in every record of the
    /// command.
    pub justification: Option<Justification>,
}

// Commands are by far the most common job, so the queue holds them unboxed.
#[allow(clippy::large_enum_variant)]
enum Job {
    Command {
        command: Command,
        request: Request,
        render: Option<Render>,
        reply: oneshot::Sender<Result<(Applied, Option<Rendered>), SubmitError>>,
    },
    Checkpoint {
        reply: oneshot::Sender<Result<Checkpoint, SubmitError>>,
    },
    /// Apply the records other nodes appended ([`tail`]); answered with the head reached.
    CatchUp {
        reply: oneshot::Sender<Result<u64, SubmitError>>,
    },
}

struct Shared<L> {
    log: L,
    /// The one copy of the state. The writer holds the write lock for a whole batch, so
    /// readers see only durable state.
    view: RwLock<State>,
    /// What checks read, as of the last durable batch ([`domain::CheckIndex`]). Never
    /// taken while holding `view`'s lock, nor the other way round: the writer copies a
    /// batch's changes out of the view, lets go of it, then installs them here.
    checks: RwLock<CheckIndex>,
    /// The public half of the signing key, when checkpoints are kept.
    public_key: Option<PublicKey>,
    /// The checkpoint file, when checkpoints are kept.
    checkpoints: Option<CheckpointStore>,
    /// The snapshot directory, when snapshots are kept: history starts from them.
    snapshots: Option<PathBuf>,
    /// Where the writer publishes what it made durable ([`feed`]).
    feed: feed::Feed,
    /// Commands, their latency, the writer's batches and the latest checkpoint's size.
    metrics: WriteMetrics,
    /// The log position the view has applied, published after every change of the view,
    /// for requests that wait for a position ([`Ledger::applied`]).
    applied: watch::Sender<u64>,
    /// Whether this process signs checkpoints: always on one node; on several, only while
    /// it holds the signer's lock ([`tail`]).
    signing: AtomicBool,
}

/// The running ledger. Dropping it lets the writer finish what is queued, then stops it.
pub struct Ledger<L: EventLog> {
    shared: Arc<Shared<L>>,
    /// The writer's queue; `None` once the ledger is closed.
    queue: RwLock<Option<mpsc::Sender<Job>>>,
    writer: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Where the writer reports the storage failure that stopped it.
    fatal: watch::Receiver<Option<FatalStorageError>>,
    /// The thread following the log other nodes append to, once started ([`tail`]).
    tail: std::sync::Mutex<Option<tail::Tail>>,
    /// What the tail knows of this node and the others, once it is started.
    node: OnceLock<Arc<tail::NodeState>>,
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
        let latest = match &checkpoints {
            Some(policy) => policy.store.all()?.pop(),
            None => None,
        };
        let signed = checkpoints
            .as_ref()
            .zip(latest.as_ref())
            .map(|(policy, checkpoint)| open::Signed { checkpoint, key: policy.signer.public_key() });
        let opened = open::replay_and_check(&log, snapshots.as_ref(), signed.as_ref())?;
        let (signer, every, store) = match checkpoints {
            Some(CheckpointPolicy { store, signer, every }) => (Some(signer), every.max(1), Some(store)),
            None => (None, u64::MAX, None),
        };
        let public_key = signer.as_ref().map(Signer::public_key);
        let opened_head = opened.state.head();
        let checks = RwLock::new(CheckIndex::of(&opened.state));
        let shared = Arc::new(Shared {
            log,
            view: RwLock::new(opened.state),
            checks,
            public_key,
            checkpoints: store,
            snapshots: snapshots.as_ref().map(|policy| policy.dir.clone()),
            feed: feed::Feed::new(DEFAULT_FEED_CAPACITY),
            metrics: WriteMetrics::default(),
            applied: watch::channel(opened_head).0,
            signing: AtomicBool::new(true),
        });
        shared.metrics.checkpoint_signed(latest.as_ref().map_or(0, |checkpoint| checkpoint.size));
        let (queue, jobs) = mpsc::channel(QUEUE_DEPTH);
        let (fatal_sender, fatal) = watch::channel(None);
        let writer = writer::Writer {
            shared: Arc::clone(&shared),
            prev_hash: opened.head_hash,
            batch_start: None,
            last_at: opened.last_at,
            last_snapshot: opened.from_snapshot,
            snapshots,
            saving: None,
            signer,
            checkpoint_every: every,
            last_checkpoint: latest,
            fingerprints: opened.fingerprints,
            fatal: fatal_sender,
            stopped: None,
            frontier: None,
        };
        let writer = std::thread::Builder::new()
            .name("keyledger-writer".to_owned())
            .spawn(move || writer.run(jobs))
            .map_err(OpenError::Thread)?;
        Ok(Self {
            shared,
            queue: RwLock::new(Some(queue)),
            writer: std::sync::Mutex::new(Some(writer)),
            fatal,
            tail: std::sync::Mutex::new(None),
            node: OnceLock::new(),
        })
    }

    /// The permission view, for admin reads: only durable state. Taking it may wait for
    /// the batch the writer is deciding and syncing (at most one batch); hold the guard
    /// briefly, the writer waits for it. Key checks read [`Ledger::checks`] instead, and
    /// never take both guards at once.
    pub fn view(&self) -> RwLockReadGuard<'_, State> {
        self.shared.view.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The check index, for key checks: only durable state, and never held by the writer
    /// across a disk write, so a check never waits on disk. Do not take [`Ledger::view`]
    /// while holding it.
    pub fn checks(&self) -> RwLockReadGuard<'_, CheckIndex> {
        self.shared.checks.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Follows the change feed: every batch of records appended and every checkpoint
    /// signed from now on ([`feed`]). Subscribe first, then read the view's head: records
    /// up to it are in the log, later ones will come through the feed.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.shared.feed.subscribe()
    }

    /// The log underneath, for reading records.
    pub fn log(&self) -> &L {
        &self.shared.log
    }

    /// The log's history, for the view at a past point ([`crate::history::state_at`]):
    /// the log, and the retained snapshots a question may start from.
    pub fn history(&self) -> crate::history::Source<'_, L> {
        crate::history::Source::new(&self.shared.log, self.shared.snapshots.as_deref())
    }

    /// Submits a command and waits until its events are durable (or it is refused).
    pub async fn submit(&self, command: Command, request: Request) -> Result<Applied, SubmitError> {
        self.submit_job(command, request, None).await.map(|(applied, _)| applied)
    }

    /// [`Ledger::submit`], also reading the view with `render` right after the command is
    /// applied, in the writer (see [`Render`]): `None` when it returned `None`.
    pub async fn submit_rendering(
        &self,
        command: Command,
        request: Request,
        render: Render,
    ) -> Result<(Applied, Option<Rendered>), SubmitError> {
        self.submit_job(command, request, Some(render)).await
    }

    async fn submit_job(
        &self,
        command: Command,
        request: Request,
        render: Option<Render>,
    ) -> Result<(Applied, Option<Rendered>), SubmitError> {
        let (kind, started) = (CommandKind::of(&command), std::time::Instant::now());
        let (reply, answer) = oneshot::channel();
        let outcome = match self.sender() {
            Ok(queue) => match queue.send(Job::Command { command, request, render, reply }).await {
                Ok(()) => answer.await.unwrap_or(Err(SubmitError::ShuttingDown)),
                Err(_) => Err(SubmitError::ShuttingDown),
            },
            Err(error) => Err(error),
        };
        self.count(kind, &outcome, started);
        outcome
    }

    /// Submits a command from outside an async runtime, blocking the calling thread.
    pub fn submit_blocking(&self, command: Command, request: Request) -> Result<Applied, SubmitError> {
        let (kind, started) = (CommandKind::of(&command), std::time::Instant::now());
        let (reply, answer) = oneshot::channel();
        let outcome = match self.sender() {
            Ok(queue) => match queue.blocking_send(Job::Command { command, request, render: None, reply }) {
                Ok(()) => answer.blocking_recv().unwrap_or(Err(SubmitError::ShuttingDown)),
                Err(_) => Err(SubmitError::ShuttingDown),
            },
            Err(error) => Err(error),
        };
        self.count(kind, &outcome, started);
        outcome.map(|(applied, _)| applied)
    }

    /// Counts a command's outcome and how long it took since `started`.
    fn count<T>(&self, kind: CommandKind, outcome: &Result<T, SubmitError>, started: std::time::Instant) {
        let outcome = match outcome {
            Ok(_) => CommandOutcome::Ok,
            Err(SubmitError::Refused(_)) => CommandOutcome::Refused,
            Err(SubmitError::Storage(_) | SubmitError::ShuttingDown) => CommandOutcome::Failed,
        };
        self.shared.metrics.command(kind, outcome, started.elapsed());
    }

    /// What the ledger counts: commands by kind and outcome, their latency, the writer's
    /// batch sizes and the latest checkpoint's size.
    pub fn metrics(&self) -> &WriteMetrics {
        &self.shared.metrics
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
        match self.submit_blocking(
            command,
            Request { actor: Actor::System, expected_version: None, credential: None, justification: None },
        ) {
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
        self.submit_blocking(
            command,
            Request { actor: Actor::System, expected_version: None, credential: None, justification: None },
        )?;
        Ok((user_id, secret))
    }

    /// The log position the view has applied, as it moves: a request that must see a
    /// position waits on it (no polling).
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.shared.applied.subscribe()
    }

    /// Has the writer apply the records other nodes appended since the view's head, and
    /// waits for it; returns the head reached.
    pub fn catch_up_blocking(&self) -> Result<u64, SubmitError> {
        let (reply, answer) = oneshot::channel();
        let queue = self.sender()?;
        queue.blocking_send(Job::CatchUp { reply }).map_err(|_| SubmitError::ShuttingDown)?;
        answer.blocking_recv().map_err(|_| SubmitError::ShuttingDown)?
    }

    /// Whether this process signs checkpoints (see [`tail`]: one node of several does).
    pub fn is_signing(&self) -> bool {
        self.shared.signing.load(Ordering::Acquire)
    }

    /// Signs checkpoints, or stops signing them (another node holds the signer's lock).
    pub fn set_signing(&self, signing: bool) {
        self.shared.signing.store(signing, Ordering::Release);
    }

    /// What this node knows of itself and the other nodes, when it follows a log others
    /// append to ([`Ledger::follow`]); `None` on a single node.
    pub fn node(&self) -> Option<&Arc<tail::NodeState>> {
        self.node.get()
    }

    /// Starts following a log that other nodes append to: a thread that wakes on their
    /// appends (and polls), has the writer apply them, writes this node's heartbeat, and
    /// holds the signer's lock when it can ([`tail`]). Returns once the node's first
    /// heartbeat is written (or the node timeout ran out). Call once.
    pub fn follow<F: tail::Follower>(&self, follower: F, config: tail::TailConfig) -> std::io::Result<()> {
        let node = Arc::new(tail::NodeState::new(config.clone(), self.view().head()));
        if self.node.set(Arc::clone(&node)).is_err() {
            return Ok(());
        }
        let queue = self.sender().map_err(|error| std::io::Error::other(error.to_string()))?;
        // Until this node holds the lock, another may: sign nothing.
        self.set_signing(false);
        let timeout = config.node_timeout;
        let tail = tail::Tail::start(Arc::clone(&self.shared), queue, follower, config, Arc::clone(&node))?;
        *self.tail.lock().unwrap_or_else(PoisonError::into_inner) = Some(tail);
        // The other nodes wait for this one from its first heartbeat on, and it answers no
        // checks before: start serving once it is written (it fails closed until then).
        if !node.wait_until_heard(timeout) {
            tracing::warn!("no heartbeat written within the node timeout; checks fail closed until one is");
        }
        Ok(())
    }

    /// Stops taking commands, lets the writer finish what is queued (and save its shutdown
    /// snapshot), and waits for it. Submitting afterwards fails with `ShuttingDown`.
    /// Dropping the ledger does the same.
    pub fn close(&self) {
        // The tail first: it hands the writer work.
        if let Some(tail) = self.tail.lock().unwrap_or_else(PoisonError::into_inner).take() {
            tail.stop();
        }
        // Closing the queue lets the writer drain what is queued and stop.
        self.queue.write().unwrap_or_else(PoisonError::into_inner).take();
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(writer) = writer
            && writer.join().is_err()
        {
            tracing::error!("the writer thread panicked");
        }
    }

    /// Resolves with the storage failure that stopped the writer, once one has; with
    /// `None` if the writer stops without one (the ledger was closed). Whoever owns the
    /// ledger decides what to do: the server stops the process so that a restart recovers.
    pub fn fatal(&self) -> impl Future<Output = Option<FatalStorageError>> + Send + 'static {
        let mut fatal = self.fatal.clone();
        async move { fatal.wait_for(Option::is_some).await.ok().and_then(|error| error.clone()) }
    }

    /// Whether the log has failed a write that only a restart recovers from (see
    /// [`Ledger::fatal`]).
    pub fn has_failed(&self) -> bool {
        self.fatal.borrow().is_some()
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

#[cfg(test)]
mod tests;
