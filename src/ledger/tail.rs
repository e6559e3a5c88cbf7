//! Following a log that other nodes append to (issue #12: several nodes on one
//! PostgreSQL log).
//!
//! Every node serves checks from its own view. A tail thread per node waits for a wake-up
//! (`LISTEN`: a hint only, lost across reconnects) or for its poll interval, reads the
//! log's head, and when the head is past the view's, has the writer apply the records in
//! between (`Job::CatchUp`: the writer verifies each record's chain link, applies it and
//! publishes it to the feed; it alone changes the view). The same thread writes this
//! node's heartbeat (its applied position) every quarter of the node timeout and right
//! after each catch-up, reads every live node's, and holds the session advisory lock of
//! the one node that signs checkpoints when it can take it.
//!
//! What the HTTP layer reads of it is [`NodeState`]: whether the node has lost the
//! database for longer than its timeout (its checks then fail closed), the log's head as
//! last read (the lag), and the live nodes, which a mutation that removes access waits on
//! ([`NodeState::wait_for_nodes`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use super::{Job, Shared, SubmitError};
use crate::log::{EventLog, NodeHeartbeat, PostgresFollower, PostgresLogError};

/// The connection a tail follows the log through: PostgreSQL's, or a test's.
pub trait Follower: Send + 'static {
    /// What the connection can fail with.
    type Error: std::fmt::Display;

    /// Waits up to `timeout` for a wake-up, then reads the log's head.
    fn wait_for_head(&mut self, timeout: Duration) -> Result<u64, Self::Error>;

    /// Writes this node's heartbeat (notifying the others when `notify`) and returns
    /// every node seen within `live_within`.
    fn heartbeat(
        &mut self,
        node_id: &str,
        applied: u64,
        live_within: Duration,
        notify: bool,
    ) -> Result<Vec<NodeHeartbeat>, Self::Error>;

    /// Whether this node holds the signer's lock, taking it if it is free.
    fn hold_signer_lock(&mut self) -> Result<bool, Self::Error>;

    /// Lets go of the connection (and the signer's lock).
    fn disconnect(&mut self);
}

impl Follower for PostgresFollower {
    type Error = PostgresLogError;

    fn wait_for_head(&mut self, timeout: Duration) -> Result<u64, PostgresLogError> {
        PostgresFollower::wait_for_head(self, timeout)
    }

    fn heartbeat(
        &mut self,
        node_id: &str,
        applied: u64,
        live_within: Duration,
        notify: bool,
    ) -> Result<Vec<NodeHeartbeat>, PostgresLogError> {
        PostgresFollower::heartbeat(self, node_id, applied, live_within, notify)
    }

    fn hold_signer_lock(&mut self) -> Result<bool, PostgresLogError> {
        PostgresFollower::hold_signer_lock(self)
    }

    fn disconnect(&mut self) {
        PostgresFollower::disconnect(self);
    }
}

/// What a node does with checks once it has lost the database for longer than its
/// timeout (`--stale-checks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleChecks {
    /// Refuse every check (503 `node_stale`): a revocation may have been acknowledged
    /// elsewhere that this node has not seen. The default.
    FailClosed,
    /// Answer from the view as it stands, however old.
    ServeStale,
}

/// How a node follows the log.
#[derive(Debug, Clone)]
pub struct TailConfig {
    /// This node's id in the heartbeat table (`--node-id`).
    pub node_id: String,
    /// A node whose heartbeat is older is not live; a node that has not reached the
    /// database for longer is stale (`--node-timeout-ms`).
    pub node_timeout: Duration,
    /// How often the tail reads the head when no notification wakes it.
    pub poll_interval: Duration,
    /// What a stale node does with checks.
    pub stale_checks: StaleChecks,
}

/// The default node timeout: 3 s.
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(3);
/// The default poll interval: 50 ms.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How often the tail reads the heartbeats while a request waits for the other nodes.
const WAITING_POLL: Duration = Duration::from_millis(5);

/// What a node knows of itself and of the other nodes: written by its tail thread, read by
/// requests.
#[derive(Debug)]
pub struct NodeState {
    config: TailConfig,
    started: Instant,
    /// Milliseconds from `started` to the sending of the last heartbeat that succeeded (the
    /// node had applied the head it had just read): the node is stale once this is older
    /// than the node timeout, no later than the other nodes stop counting it live.
    last_contact_ms: AtomicU64,
    /// Milliseconds from `started` to the last heartbeat written.
    last_heartbeat_ms: AtomicU64,
    /// Whether the node has written a heartbeat since it started: until then the other
    /// nodes do not wait for it, so it answers no checks (under fail-closed).
    heard: AtomicBool,
    /// The log's head as the tail last read it.
    log_head: AtomicU64,
    /// How many requests wait for the other nodes: the tail reads the heartbeats often
    /// while there are any.
    waiting: AtomicUsize,
    /// The live nodes, as of the last heartbeat.
    nodes: watch::Sender<Vec<NodeHeartbeat>>,
}

impl NodeState {
    pub(super) fn new(config: TailConfig, head: u64) -> Self {
        Self {
            config,
            started: Instant::now(),
            last_contact_ms: AtomicU64::new(0),
            last_heartbeat_ms: AtomicU64::new(0),
            heard: AtomicBool::new(false),
            log_head: AtomicU64::new(head),
            waiting: AtomicUsize::new(0),
            nodes: watch::channel(Vec::new()).0,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn contact_at(&self, at: Instant) {
        let ms = u64::try_from(at.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX);
        self.last_contact_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Waits (blocking) up to `timeout` for the node's first heartbeat; whether it came.
    pub(super) fn wait_until_heard(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.heard.load(Ordering::Relaxed) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// The node timeout.
    pub fn node_timeout(&self) -> Duration {
        self.config.node_timeout
    }

    /// How long since the node last wrote its heartbeat, having applied the head it read.
    pub fn since_contact(&self) -> Duration {
        Duration::from_millis(self.now_ms().saturating_sub(self.last_contact_ms.load(Ordering::Relaxed)))
    }

    /// How long since the node last wrote its heartbeat.
    pub fn heartbeat_age(&self) -> Duration {
        Duration::from_millis(self.now_ms().saturating_sub(self.last_heartbeat_ms.load(Ordering::Relaxed)))
    }

    /// Whether checks must be refused: the node has not reached the database for longer
    /// than its timeout, and is configured to fail closed.
    pub fn refuses_checks(&self) -> bool {
        self.config.stale_checks == StaleChecks::FailClosed && self.is_stale()
    }

    /// Whether the node has not written its heartbeat (having applied the head it read)
    /// for longer than its timeout, or not yet since it started.
    pub fn is_stale(&self) -> bool {
        !self.heard.load(Ordering::Relaxed) || self.since_contact() > self.config.node_timeout
    }

    /// The log's head as last read from the database.
    pub fn log_head(&self) -> u64 {
        self.log_head.load(Ordering::Relaxed)
    }

    /// The live nodes as of the last heartbeat read.
    pub fn nodes(&self) -> Vec<NodeHeartbeat> {
        self.nodes.borrow().clone()
    }

    /// Waits until every other live node has applied `position`, for at most the node
    /// timeout. Returns the ids of those that had not by then (none: all had). A node
    /// counts from the first heartbeat list read after the wait starts, or from its first
    /// heartbeat if it joins meanwhile (it answers checks only once it has written one);
    /// a node that stops writing its heartbeat stays pending: nobody knows it applied the
    /// change (it fails closed once it is stale).
    pub async fn wait_for_nodes(&self, position: u64) -> Vec<String> {
        let mut nodes = self.nodes.subscribe();
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        let deadline = tokio::time::Instant::now() + self.config.node_timeout;
        // A list read before this request asked may miss a node that just started: wait
        // for one read after it (the tail reads every few milliseconds while one waits).
        nodes.mark_unchanged();
        let mut pending: Vec<String> = Vec::new();
        let mut applied: Vec<String> = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, nodes.changed()).await {
                Ok(Ok(())) => {}
                _ => return pending,
            }
            for node in nodes.borrow_and_update().iter().filter(|node| node.node_id != self.config.node_id) {
                if node.applied >= position {
                    pending.retain(|id| *id != node.node_id);
                    if !applied.contains(&node.node_id) {
                        applied.push(node.node_id.clone());
                    }
                } else if !pending.contains(&node.node_id) && !applied.contains(&node.node_id) {
                    pending.push(node.node_id.clone());
                }
            }
            if pending.is_empty() {
                return pending;
            }
        }
    }
}

/// Counts a waiting request out again, however its future ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The running tail thread.
pub(super) struct Tail {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Tail {
    /// Starts the tail thread of a ledger.
    pub(super) fn start<L: EventLog, F: Follower>(
        shared: Arc<Shared<L>>,
        queue: mpsc::Sender<Job>,
        follower: F,
        config: TailConfig,
        node: Arc<NodeState>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("keyledger-tail".to_owned())
            .spawn(move || run(&shared, &queue, follower, &config, &node, &stopping))?;
        Ok(Self { stop, thread })
    }

    /// Stops the thread (within a poll interval) and waits for it; the signer's lock goes
    /// with its connection.
    pub(super) fn stop(self) {
        self.stop.store(true, Ordering::Release);
        if self.thread.join().is_err() {
            tracing::error!("the tail thread panicked");
        }
    }
}

fn run<L: EventLog, F: Follower>(
    shared: &Shared<L>,
    queue: &mpsc::Sender<Job>,
    mut follower: F,
    config: &TailConfig,
    node: &NodeState,
    stop: &AtomicBool,
) {
    let heartbeat_every = (config.node_timeout / 4).max(Duration::from_millis(10));
    let mut last_heartbeat: Option<Instant> = None;
    // Timed apart from the heartbeat: while other nodes write, every catch-up sends a
    // heartbeat, so the heartbeat is never "due", and a node that lost the signer's lock
    // (a failover ends every session) must still ask for it again.
    let mut last_lock_check: Option<Instant> = None;
    let mut failing = false;
    while !stop.load(Ordering::Acquire) {
        let waiting = node.waiting.load(Ordering::Acquire) > 0;
        let timeout = if waiting { WAITING_POLL } else { config.poll_interval };
        let head = match follower.wait_for_head(timeout) {
            Ok(head) => head,
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "the tail cannot read the log; trying again");
                    failing = true;
                }
                shared.signing.store(false, Ordering::Release);
                std::thread::sleep(config.poll_interval);
                continue;
            }
        };
        if failing {
            tracing::info!("the tail reads the log again");
            failing = false;
        }
        node.log_head.store(head, Ordering::Relaxed);
        let mut caught_up = false;
        if head > *shared.applied.borrow() {
            let (reply, answer) = oneshot::channel();
            if queue.blocking_send(Job::CatchUp { reply }).is_err() {
                break;
            }
            match answer.blocking_recv() {
                Ok(Ok(_)) => caught_up = true,
                Ok(Err(SubmitError::ShuttingDown)) | Err(_) => break,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "catching up with the log failed");
                    continue;
                }
            }
        }
        let due = last_heartbeat.is_none_or(|at| at.elapsed() >= heartbeat_every);
        let lock_due = last_lock_check.is_none_or(|at| at.elapsed() >= heartbeat_every);
        if !(caught_up || due || waiting || lock_due) {
            continue;
        }
        let applied = *shared.applied.borrow();
        // Taken before the heartbeat is sent, so before the database's `now()` that it
        // records: this node counts itself stale no later than the others stop counting it
        // live, and it has applied the head it just read.
        let sent = Instant::now();
        match follower.heartbeat(&config.node_id, applied, config.node_timeout, caught_up) {
            Ok(nodes) => {
                node.contact_at(sent);
                node.heard.store(true, Ordering::Relaxed);
                node.last_heartbeat_ms.store(node.now_ms(), Ordering::Relaxed);
                node.nodes.send_replace(nodes);
                last_heartbeat = Some(Instant::now());
            }
            Err(error) => tracing::warn!(%error, "writing the heartbeat failed"),
        }
        if lock_due {
            last_lock_check = Some(Instant::now());
            let held = follower.hold_signer_lock().unwrap_or_else(|error| {
                tracing::warn!(%error, "asking for the signer's lock failed");
                false
            });
            if shared.signing.swap(held, Ordering::AcqRel) != held {
                tracing::info!(node = %config.node_id, signing = held, "this node {} checkpoints", if held { "signs" } else { "no longer signs" });
            }
        }
    }
    shared.signing.store(false, Ordering::Release);
    follower.disconnect();
}
