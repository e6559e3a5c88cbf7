//! The ledger's scenarios. Each is one generic function, run against every log by
//! [`against_both_logs!`]: a [`MemoryLog`], a [`FjallLog`] over a temporary directory, and
//! a [`PostgresLog`] in a fresh database when `KEYLEDGER_TEST_DATABASE_URL` names a server.
//!
//! A scenario receives `open`, which opens the *same* log each time it is called, as a
//! restart of the service would. Scenarios that need to make storage fail, or to hold the
//! writer inside an append, wrap the log in a [`FailingLog`].

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::task::Waker;
use std::time::Duration;

use super::*;
use crate::domain::{
    CheckRequest, Context, FunctionId, FunctionSet, KeyId, Name, Position, Reason, Resource, RoleId, Timestamp, UserId,
};
use crate::log::record::{self, Envelope};
use crate::log::{AppendError, ChainHash, FjallLog, MemoryLog, PostgresLog, Record, StoredRecord};
use crate::merkle::{NodeId, TreeHash};

/// Generates, for every scenario named, one test over a [`MemoryLog`] (in the module
/// `memory_log`) and one over a [`FjallLog`] (in the module `fjall_log`).
macro_rules! against_both_logs {
    ($($scenario:ident),+ $(,)?) => {
        mod memory_log {
            $(#[test] fn $scenario() { super::$scenario(super::memory()); })+
        }
        mod fjall_log {
            $(#[test] fn $scenario() { super::$scenario(super::fjall()); })+
        }
        /// Run when `KEYLEDGER_TEST_DATABASE_URL` names a PostgreSQL server.
        mod postgres_log {
            $(#[test] fn $scenario() {
                match super::postgres() {
                    Some(open) => super::$scenario(open),
                    None => eprintln!("KEYLEDGER_TEST_DATABASE_URL is not set: the PostgreSQL scenario did not run"),
                }
            })+
        }
    };
}

against_both_logs!(
    bootstrap_returns_a_key_holding_every_admin_function_and_only_once,
    commands_are_applied_at_the_position_of_their_last_event,
    refused_and_empty_commands_append_nothing,
    a_reopened_ledger_answers_as_before_and_continues_the_chain,
    concurrent_submitters_all_succeed_at_distinct_positions_of_a_gapless_verified_chain,
    commands_decided_in_one_batch_see_each_other,
    a_rendered_answer_shows_the_state_its_own_command_left_read_before_the_append,
    a_render_that_panics_costs_its_answer_not_the_writer,
    a_failed_append_is_answered_as_a_storage_error_and_forgotten_by_the_writer,
    a_refusal_caused_by_a_command_whose_append_failed_is_not_reported_as_a_refusal,
    open_refuses_a_log_whose_chain_was_tampered_with,
    a_failed_append_that_needs_a_restart_stops_the_writer_and_is_reported_to_the_owner,
    verification_reports_a_record_its_actor_was_not_allowed_to_make_and_open_still_serves_it,
    open_refuses_a_log_whose_stored_tree_is_not_the_tree_of_its_records,
    record_times_never_go_backwards_even_when_the_clock_does,
    checks_never_see_a_batch_before_it_is_durable_and_admin_reads_wait_for_it,
    records_applied_from_elsewhere_reach_the_view_and_the_checks_and_a_discarded_batch_leaves_nothing,
    racing_commands_leave_the_state_a_serial_replay_of_the_acknowledged_ones_gives,
    a_commit_whose_outcome_is_unknown_is_answered_by_what_the_log_holds,
);

/// Generates, for every scenario named, one test over a shared [`MemoryLog`] and one over
/// PostgreSQL (when `KEYLEDGER_TEST_DATABASE_URL` names a server): the logs that two
/// ledgers can append to at once, as the nodes of issue #12 do.
macro_rules! against_shared_logs {
    ($($scenario:ident),+ $(,)?) => {
        mod shared_memory_log {
            $(#[test] fn $scenario() { super::$scenario(super::memory()); })+
        }
        mod shared_postgres_log {
            $(#[test] fn $scenario() {
                match super::postgres() {
                    Some(open) => super::$scenario(open),
                    None => eprintln!("KEYLEDGER_TEST_DATABASE_URL is not set: the PostgreSQL scenario did not run"),
                }
            })+
        }
    };
}

against_shared_logs!(
    a_node_whose_head_another_moved_catches_up_and_decides_its_commands_again,
    a_node_catching_up_sees_a_revocation_another_node_appended,
    a_command_decided_again_after_a_conflict_sees_what_the_other_node_did,
);

// ---------------------------------------------------------------------------------------
// Opening the same log again, for both kinds of log.
// ---------------------------------------------------------------------------------------

/// A handle on an in-memory log that outlives the ledgers opened over it, so that a
/// scenario can drop a ledger and "reopen" the log.
struct SharedMemoryLog(Arc<MemoryLog>);

impl EventLog for SharedMemoryLog {
    type Error = std::convert::Infallible;

    fn head(&self) -> Result<u64, Self::Error> {
        self.0.head()
    }

    fn append(&self, expected_head: u64, records: &[StoredRecord]) -> Result<(), AppendError<Self::Error>> {
        self.0.append(expected_head, records)
    }

    fn read(&self, from_seq: u64, max: usize) -> Result<Vec<StoredRecord>, Self::Error> {
        self.0.read(from_seq, max)
    }

    fn tree_node(&self, id: NodeId) -> Result<Option<TreeHash>, Self::Error> {
        self.0.tree_node(id)
    }
}

/// Opens the same in-memory log each time it is called.
fn memory() -> impl Fn() -> SharedMemoryLog {
    let log = Arc::new(MemoryLog::new());
    move || SharedMemoryLog(Arc::clone(&log))
}

/// Opens the same fjall log, in a fresh temporary directory that lives as long as the
/// returned function, each time it is called.
fn fjall() -> impl Fn() -> FjallLog {
    let directory = tempfile::tempdir().expect("a temporary directory is created");
    move || FjallLog::open(directory.path()).expect("the fjall log opens")
}

/// Opens the same PostgreSQL log, in a fresh database, each time it is called; `None` when
/// `KEYLEDGER_TEST_DATABASE_URL` is not set.
fn postgres() -> Option<impl Fn() -> PostgresLog> {
    let database = crate::log::postgres::testing::fresh_database()?;
    Some(move || crate::log::postgres::testing::open(&database))
}

// ---------------------------------------------------------------------------------------
// A log that fails, or pauses, on demand.
// ---------------------------------------------------------------------------------------

/// A log that delegates to another, except that the test can make its appends fail, as a
/// full disk would, and can hold the writer inside its next append until released.
struct FailingLog<L> {
    inner: L,
    failing: AtomicBool,
    /// Whether a failed append leaves the log unwritable until a restart, as fjall's does.
    needs_restart: AtomicBool,
    /// A tree node read back with another hash, standing for a tree edited on disk.
    forged_node: Mutex<Option<NodeId>>,
    pause: Mutex<Option<(SyncSender<()>, Receiver<()>)>>,
    /// How many records each append was asked to write, failed appends included.
    append_sizes: Mutex<Vec<usize>>,
    /// When set, the next append loses its connection at COMMIT: it writes (`true`) or
    /// not (`false`), and fails with [`FailingLogError::ConnectionLost`] either way.
    lose_commit: Mutex<Option<bool>>,
}

/// What a [`FailingLog`] fails with.
#[derive(Debug, thiserror::Error)]
enum FailingLogError<E: std::error::Error + 'static> {
    /// The failure the test switched on.
    #[error("the disk is full")]
    DiskFull,
    /// The connection was lost at COMMIT: whether the append was written is unknown.
    #[error("the connection was lost while the append committed")]
    ConnectionLost,
    /// A failure of the log underneath.
    #[error(transparent)]
    Inner(E),
}

/// The writer held inside an append by [`FailingLog::pause_next_append`].
struct PausedAppend {
    entered: Receiver<()>,
    release: SyncSender<()>,
}

impl PausedAppend {
    /// Waits until the writer is inside the paused append. The timeout only keeps a broken
    /// ledger from hanging the test run; it asserts nothing about speed.
    fn wait_until_entered(&self) {
        self.entered.recv_timeout(Duration::from_secs(60)).expect("the writer reaches the paused append");
    }

    /// Lets the paused append go on.
    fn release(self) {
        // The writer may already have gone on because the sender was dropped; either way it runs.
        let _ = self.release.send(());
    }
}

impl<L: EventLog> FailingLog<L> {
    fn new(inner: L) -> Self {
        Self {
            inner,
            failing: AtomicBool::new(false),
            needs_restart: AtomicBool::new(false),
            forged_node: Mutex::new(None),
            pause: Mutex::new(None),
            append_sizes: Mutex::new(Vec::new()),
            lose_commit: Mutex::new(None),
        }
    }

    /// Makes the next append lose its connection at COMMIT, having written or not.
    fn lose_next_commit(&self, written: bool) {
        *self.lose_commit.lock().unwrap_or_else(PoisonError::into_inner) = Some(written);
    }

    /// While set, a failed append needs a restart before the log takes writes again.
    fn set_needs_restart(&self, needs_restart: bool) {
        self.needs_restart.store(needs_restart, Ordering::SeqCst);
    }

    /// Makes the stored tree node `id` read back with a hash that is not the one stored.
    fn forge_tree_node(&self, id: NodeId) {
        *self.forged_node.lock().unwrap_or_else(PoisonError::into_inner) = Some(id);
    }

    /// While `failing`, every append fails with [`FailingLogError::DiskFull`] and writes nothing.
    fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Makes the next append wait, before it writes or fails, until the pause is released.
    fn pause_next_append(&self) -> PausedAppend {
        let (entered_sender, entered) = sync_channel(1);
        let (release, release_receiver) = sync_channel(1);
        *self.pause.lock().unwrap_or_else(PoisonError::into_inner) = Some((entered_sender, release_receiver));
        PausedAppend { entered, release }
    }

    fn append_sizes(&self) -> Vec<usize> {
        self.append_sizes.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl<L: EventLog> EventLog for FailingLog<L> {
    type Error = FailingLogError<L::Error>;

    fn head(&self) -> Result<u64, Self::Error> {
        self.inner.head().map_err(FailingLogError::Inner)
    }

    fn append(&self, expected_head: u64, records: &[StoredRecord]) -> Result<(), AppendError<Self::Error>> {
        self.append_sizes.lock().unwrap_or_else(PoisonError::into_inner).push(records.len());
        let pause = self.pause.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some((entered, release)) = pause {
            let _ = entered.send(());
            // A dropped `PausedAppend` releases too, so that a failing test cannot hang the writer.
            let _ = release.recv();
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(AppendError::Storage(FailingLogError::DiskFull));
        }
        if let Some(written) = self.lose_commit.lock().unwrap_or_else(PoisonError::into_inner).take() {
            if written {
                self.inner
                    .append(expected_head, records)
                    .map_err(|_| AppendError::Storage(FailingLogError::DiskFull))?;
            }
            return Err(AppendError::Storage(FailingLogError::ConnectionLost));
        }
        self.inner.append(expected_head, records).map_err(|error| match error {
            AppendError::Conflict { expected, actual } => AppendError::Conflict { expected, actual },
            AppendError::OutOfSequence { first_expected } => AppendError::OutOfSequence { first_expected },
            AppendError::Storage(error) => AppendError::Storage(FailingLogError::Inner(error)),
        })
    }

    fn read(&self, from_seq: u64, max: usize) -> Result<Vec<StoredRecord>, Self::Error> {
        self.inner.read(from_seq, max).map_err(FailingLogError::Inner)
    }

    fn tree_node(&self, id: NodeId) -> Result<Option<TreeHash>, Self::Error> {
        let node = self.inner.tree_node(id).map_err(FailingLogError::Inner)?;
        let forged = *self.forged_node.lock().unwrap_or_else(PoisonError::into_inner) == Some(id);
        Ok(node.map(|hash| if forged { crate::merkle::leaf_hash(hash.as_bytes()) } else { hash }))
    }

    fn requires_restart(&self, error: &Self::Error) -> bool {
        matches!(error, FailingLogError::DiskFull) && self.needs_restart.load(Ordering::SeqCst)
    }

    fn outcome_unknown(&self, error: &Self::Error) -> bool {
        matches!(error, FailingLogError::ConnectionLost)
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------

fn open_ledger<L: EventLog>(log: L) -> Ledger<L> {
    Ledger::open(log).expect("the ledger opens")
}

fn system() -> Request {
    Request { actor: Actor::System, expected_version: None, credential: None, justification: None }
}

fn by(user_id: &UserId) -> Request {
    Request { actor: Actor::User(user_id.clone()), expected_version: None, credential: None, justification: None }
}

/// Asks as whoever may: the ledger's standing administrator once there is one, keyledger
/// itself before (the system only acts on a ledger nobody can administer).
fn as_administrator<L: EventLog>(ledger: &Ledger<L>) -> Request {
    let view = ledger.view();
    let admin = view.users_after(0).find(|user| domain::is_standing_administrator(&view, user.id()));
    admin.map_or_else(system, |admin| by(admin.id()))
}

fn submit<L: EventLog>(ledger: &Ledger<L>, command: Command) -> Applied {
    ledger.submit_blocking(command, as_administrator(ledger)).expect("the command is applied")
}

fn new_role_id() -> RoleId {
    RoleId::generate(&mut rand::rng())
}

fn new_user_id() -> UserId {
    UserId::generate(&mut rand::rng())
}

fn function(id: &str) -> FunctionId {
    FunctionId::parse(id).expect("the function is in the catalogue")
}

fn create_role(role_id: &RoleId, description: &str) -> Command {
    Command::CreateRole {
        role_id: role_id.clone(),
        description: Name::parse(description).expect("a valid description"),
    }
}

fn activate(role_id: &RoleId, functions: &[&str]) -> Command {
    Command::ActivateFunctions {
        role_id: role_id.clone(),
        functions: functions.iter().map(|id| function(id)).collect(),
    }
}

fn create_user(user_id: &UserId, name: &str) -> Command {
    Command::CreateUser { user_id: user_id.clone(), name: Name::parse(name).expect("a valid name"), email: None }
}

fn assign(user_id: &UserId, role_id: &RoleId) -> Command {
    Command::AssignRole { user_id: user_id.clone(), role_id: role_id.clone() }
}

fn generate_key(user_id: &UserId, secret: &KeySecret) -> Command {
    Command::GenerateKey {
        user_id: user_id.clone(),
        key_id: KeyId::generate(&mut rand::rng()),
        key_hash: secret.hash(),
        expires_at: None,
        grace_seconds: None,
    }
}

/// What a key check for `function` answers, now.
fn check_reason(view: &State, key: &KeySecret, function: &str) -> Reason {
    domain::check(view, CheckRequest { key: key.expose(), function, event_id: None }, Timestamp::now()).reason
}

/// What a key check for `function` answers now, against the check index the service's
/// checks read.
fn check_reason_in_index(index: &CheckIndex, key: &KeySecret, function: &str) -> Reason {
    domain::check(index, CheckRequest { key: key.expose(), function, event_id: None }, Timestamp::now()).reason
}

/// Everything the view holds of roles, users and groups, in creation order, to compare
/// two views. Keys are compared through checks.
fn snapshot(view: &State) -> String {
    format!(
        "head {}\nroles {:?}\nusers {:?}\ngroups {:?}",
        view.head(),
        view.roles_after(0).collect::<Vec<_>>(),
        view.users_after(0).collect::<Vec<_>>(),
        view.groups_after(0).collect::<Vec<_>>()
    )
}

/// Every record of the log, decoded.
fn records_of<L: EventLog>(log: &L) -> Vec<Record> {
    let stored = log.read(1, usize::MAX).expect("the log reads");
    stored.iter().map(|stored| record::decode(&stored.bytes).expect("the record decodes")).collect()
}

fn head_of<L: EventLog>(ledger: &Ledger<L>) -> u64 {
    ledger.log().head().expect("the log has a head")
}

/// Polls a submission once, which puts its command in the writer's queue without waiting
/// for the answer, and checks that it is now waiting for the answer.
fn queue<F: Future>(submission: Pin<&mut F>) {
    let mut context = std::task::Context::from_waker(Waker::noop());
    assert!(submission.poll(&mut context).is_pending(), "the command was answered while the writer was paused");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("a runtime starts")
}

/// An API user holding an API role with one read function, and its key.
struct ApiUser {
    role_id: RoleId,
    user_id: UserId,
    key: KeySecret,
}

fn create_api_user<L: EventLog>(ledger: &Ledger<L>) -> ApiUser {
    let (role_id, user_id, key) = (new_role_id(), new_user_id(), KeySecret::generate(&mut rand::rng()));
    submit(ledger, create_role(&role_id, "API Access"));
    submit(ledger, activate(&role_id, &["api.attendees.read"]));
    submit(ledger, create_user(&user_id, "Billing app"));
    submit(ledger, assign(&user_id, &role_id));
    submit(ledger, generate_key(&user_id, &key));
    ApiUser { role_id, user_id, key }
}

// ---------------------------------------------------------------------------------------
// Scenarios.
// ---------------------------------------------------------------------------------------

fn a_commit_whose_outcome_is_unknown_is_answered_by_what_the_log_holds<L: EventLog>(open: impl Fn() -> L) {
    // Issue #12: a connection lost at COMMIT leaves the append's outcome unknown; the
    // writer reads the log back rather than stop.
    let ledger = open_ledger(FailingLog::new(open()));
    ledger.bootstrap().expect("bootstrap").expect("empty");
    let head = head_of(&ledger);
    ledger.log().lose_next_commit(true);
    let written = new_role_id();
    let applied = submit(&ledger, create_role(&written, "Written before the connection was lost"));
    assert_eq!(applied.position, head + 1);
    assert!(ledger.view().role(&written).is_some(), "the written batch is applied");
    ledger.log().lose_next_commit(false);
    let lost = new_role_id();
    let refused = ledger.submit_blocking(create_role(&lost, "Never written"), as_administrator(&ledger));
    assert!(matches!(refused, Err(SubmitError::Storage(_))), "{refused:?}");
    assert!(ledger.view().role(&lost).is_none());
    assert!(!ledger.has_failed(), "the writer goes on");
    let next = submit(&ledger, create_role(&new_role_id(), "After"));
    assert_eq!(next.position, head + 2);
    assert!(ledger.verify().expect("verifies").is_valid());
}

// Several nodes on one log (issue #12): two ledgers over the same log, as two processes.

fn a_node_whose_head_another_moved_catches_up_and_decides_its_commands_again<L: EventLog>(open: impl Fn() -> L) {
    let a = open_ledger(open());
    a.bootstrap().expect("bootstrap").expect("empty");
    let b = open_ledger(open());
    let mut applied = b.applied();
    let role_on_a = new_role_id();
    submit(&a, create_role(&role_on_a, "Made on A"));
    // B has not seen A's role; its append conflicts on the head, it catches up and decides
    // the command again on the new head.
    let role_on_b = new_role_id();
    let after_a = a.log().head().expect("head");
    let on_b = submit(&b, create_role(&role_on_b, "Made on B"));
    assert_eq!(on_b.position, after_a + 1, "B appended after A's record");
    assert!(b.view().role(&role_on_a).is_some(), "B applied A's record while catching up");
    assert_eq!(*applied.borrow_and_update(), on_b.position, "B published its applied position");
    assert_eq!(a.catch_up_blocking().expect("A catches up"), on_b.position);
    assert_eq!(snapshot(&a.view()), snapshot(&b.view()), "both views are the log's");
    // Both chains verify, and the log is one chain.
    assert!(a.verify().expect("verifies").is_valid());
    assert_eq!(records_of(a.log()).len() as u64, on_b.position);
}

fn a_node_catching_up_sees_a_revocation_another_node_appended<L: EventLog>(open: impl Fn() -> L) {
    let a = open_ledger(open());
    a.bootstrap().expect("bootstrap").expect("empty");
    let user = create_api_user(&a);
    let b = open_ledger(open());
    // The function is event-scoped: the working key is told to name an event.
    let working = check_reason(&a.view(), &user.key, "api.attendees.read");
    assert_eq!(check_reason(&b.view(), &user.key, "api.attendees.read"), working);
    assert_ne!(working, Reason::RevokedKey);
    let mut feed = b.subscribe();
    let revoked = submit(&a, Command::RevokeKey { user_id: user.user_id.clone() });
    assert_eq!(check_reason(&b.view(), &user.key, "api.attendees.read"), working, "not tailed yet");
    assert_eq!(b.catch_up_blocking().expect("B catches up"), revoked.position);
    assert_eq!(check_reason(&b.view(), &user.key, "api.attendees.read"), Reason::RevokedKey);
    // What B applied went to its followers too, exactly as stored.
    match feed.try_recv().expect("B published the records it tailed") {
        Change::Records(records) => {
            assert_eq!(records.last().map(|record| record.seq), Some(revoked.position));
            assert_eq!(records.to_vec(), a.log().read(records[0].seq, records.len()).expect("read"));
        }
        other => panic!("expected records, got {other:?}"),
    }
}

fn a_command_decided_again_after_a_conflict_sees_what_the_other_node_did<L: EventLog>(open: impl Fn() -> L) {
    let a = open_ledger(open());
    a.bootstrap().expect("bootstrap").expect("empty");
    let b = open_ledger(open());
    submit(&a, create_user(&new_user_id(), "Billing app"));
    // Decided on B's old state, the same name was free; decided again after catching up,
    // it is a lookalike of A's user and refused, and nothing of it is written.
    let head = head_of(&a);
    let refused = b.submit_blocking(create_user(&new_user_id(), "Billing app"), as_administrator(&b));
    assert!(matches!(refused, Err(SubmitError::Refused(DomainError::LookalikeName { .. }))), "{refused:?}");
    assert_eq!(a.log().head().expect("head"), head);
    assert_eq!(head_of(&b), head);
}

fn bootstrap_returns_a_key_holding_every_admin_function_and_only_once<L: EventLog>(open: impl Fn() -> L) {
    let ledger = open_ledger(open());
    let secret = ledger.bootstrap().expect("bootstrap is written").expect("an empty ledger bootstraps");
    let head = head_of(&ledger);
    assert!(head > 0);
    {
        let view = ledger.view();
        assert_eq!(view.head(), head, "the view is at the log's head");
        let key = view.key(&secret.hash()).expect("the secret's hash is a key");
        let admin = view.user(key.user_id()).expect("the key's user exists");
        assert_eq!(admin.name(), "Administrator");
        assert_eq!(view.functions_of(admin), FunctionSet::all_admin());
        for function in FunctionSet::all_admin().iter() {
            assert_eq!(check_reason(&view, &secret, function.as_str()), Reason::Granted, "{function}");
        }
        assert_eq!(check_reason(&view, &secret, "api.attendees.read"), Reason::FunctionNotGranted);
    }

    assert!(ledger.bootstrap().expect("a second bootstrap is answered").is_none());
    assert_eq!(head_of(&ledger), head, "a second bootstrap appends nothing");
    assert_eq!(ledger.view().head(), head);
}

fn commands_are_applied_at_the_position_of_their_last_event<L: EventLog>(open: impl Fn() -> L) {
    let ledger = open_ledger(open());
    let (role_id, user_id) = (new_role_id(), new_user_id());
    let mut answered = Vec::new();

    let applied = submit(&ledger, create_role(&role_id, "API Access"));
    let created = Event::RoleCreated { role_id: role_id.clone(), description: "API Access".to_owned() };
    assert_eq!(applied, Applied { position: 1, events: vec![created] });
    answered.extend(applied.events);

    let applied = submit(&ledger, activate(&role_id, &["api.events.read", "api.attendees.read"]));
    let activated = |id| Event::FunctionActivated { role_id: role_id.clone(), function: function(id) };
    // Functions are activated in catalogue order, whatever order they were asked in.
    assert_eq!(
        applied,
        Applied { position: 3, events: vec![activated("api.attendees.read"), activated("api.events.read")] }
    );
    answered.extend(applied.events);

    let applied = submit(&ledger, create_user(&user_id, "Billing app"));
    let created = Event::UserCreated { user_id: user_id.clone(), name: "Billing app".to_owned(), email: None };
    assert_eq!(applied, Applied { position: 4, events: vec![created] });
    answered.extend(applied.events);

    let applied = submit(&ledger, assign(&user_id, &role_id));
    let assigned = Event::RoleAssigned { user_id: user_id.clone(), role_id: role_id.clone() };
    assert_eq!(applied, Applied { position: 5, events: vec![assigned] });
    answered.extend(applied.events);

    let key = KeySecret::generate(&mut rand::rng());
    let applied = submit(&ledger, generate_key(&user_id, &key));
    assert_eq!(applied.position, 6);
    assert!(
        matches!(
            applied.events.as_slice(),
            [Event::KeyGenerated { user_id: owner, key_hash, replaced_key_id: None, .. }]
                if *owner == user_id && *key_hash == key.hash()
        ),
        "{:?}",
        applied.events
    );
    answered.extend(applied.events);

    assert_eq!(head_of(&ledger), 6);
    {
        let view = ledger.view();
        assert_eq!(view.head(), 6);
        // Granted, but the user has no event access, so an event-scoped function needs an event.
        assert_eq!(check_reason(&view, &key, "api.attendees.read"), Reason::EventRequired);
        assert_eq!(check_reason(&view, &key, "api.events.read"), Reason::Granted);
        assert_eq!(check_reason(&view, &key, "api.invoices.read"), Reason::FunctionNotGranted);
    }

    // The log holds exactly the events that were answered, recorded for whoever asked: here
    // keyledger itself, since the ledger has no administrator.
    let records = records_of(ledger.log());
    assert_eq!(records.iter().map(|record| record.event.clone()).collect::<Vec<_>>(), answered);
    assert_eq!(records.iter().map(|record| record.seq).collect::<Vec<_>>(), (1..=6).collect::<Vec<_>>());
    assert!(records.iter().all(|record| record.actor == Actor::System));
}

fn refused_and_empty_commands_append_nothing<L: EventLog>(open: impl Fn() -> L) {
    let ledger = open_ledger(open());
    let role_id = new_role_id();
    submit(&ledger, create_role(&role_id, "API Access"));
    submit(&ledger, activate(&role_id, &["api.attendees.read"]));
    let before = snapshot(&ledger.view());

    // Descriptions are unique case-insensitively.
    match ledger.submit_blocking(create_role(&new_role_id(), "api access"), as_administrator(&ledger)) {
        Err(SubmitError::Refused(DomainError::DuplicateRoleDescription { existing, .. })) => {
            assert_eq!(existing, role_id);
        }
        other => panic!("expected a duplicate description, got {other:?}"),
    }
    match ledger.submit_blocking(activate(&new_role_id(), &["api.events.read"]), as_administrator(&ledger)) {
        Err(SubmitError::Refused(DomainError::NotFound { resource: Resource::Role, .. })) => {}
        other => panic!("expected an unknown role, got {other:?}"),
    }
    assert_eq!(head_of(&ledger), 2, "a refused command appends nothing");
    assert_eq!(snapshot(&ledger.view()), before, "a refused command changes nothing");

    // Activating an active function changes nothing: it is applied, at the head, with no events.
    let applied = submit(&ledger, activate(&role_id, &["api.attendees.read"]));
    assert_eq!(applied, Applied { position: 2, events: vec![] });
    assert_eq!(head_of(&ledger), 2);
    assert_eq!(snapshot(&ledger.view()), before);
}

fn a_reopened_ledger_answers_as_before_and_continues_the_chain<L: EventLog>(open: impl Fn() -> L) {
    let (admin_key, api_user, head, before) = {
        let ledger = open_ledger(open());
        let admin_key = ledger.bootstrap().expect("bootstrap is written").expect("an empty ledger bootstraps");
        let api_user = create_api_user(&ledger);
        let before = snapshot(&ledger.view());
        (admin_key, api_user, head_of(&ledger), before)
    };

    let ledger = open_ledger(open());
    {
        let view = ledger.view();
        assert_eq!(view.head(), head);
        assert_eq!(snapshot(&view), before, "replay rebuilds the same roles, users and groups");
        let role = view.role(&api_user.role_id).expect("the role is still there");
        assert_eq!(role.description(), "API Access");
        assert_eq!(role.functions().iter().collect::<Vec<_>>(), vec![function("api.attendees.read")]);
        let user = view.user(&api_user.user_id).expect("the user is still there");
        assert_eq!(user.roles().iter().collect::<Vec<_>>(), vec![&api_user.role_id]);
        // Granted, but the user has no event access, so an event-scoped function needs an event.
        assert_eq!(check_reason(&view, &api_user.key, "api.attendees.read"), Reason::EventRequired);
        assert_eq!(check_reason(&view, &api_user.key, "security.roles.read"), Reason::FunctionNotGranted);
        assert_eq!(check_reason(&view, &admin_key, "security.roles.manage"), Reason::Granted);
    }
    assert!(ledger.bootstrap().expect("bootstrap is answered").is_none(), "a reopened ledger is initialised");

    // The new writer continues the chain where the old one left it.
    let applied = submit(&ledger, create_user(&new_user_id(), "After the restart"));
    assert_eq!(applied.position, head + 1);
    let verification = ledger.verify().expect("the log reads");
    assert_eq!((verification.verified, verification.error), (head + 1, None));
}

fn concurrent_submitters_all_succeed_at_distinct_positions_of_a_gapless_verified_chain<L: EventLog>(
    open: impl Fn() -> L,
) {
    const THREADS: usize = 8;
    const COMMANDS_PER_THREAD: usize = 50;
    let total = (THREADS * COMMANDS_PER_THREAD) as u64;
    let ledger = Arc::new(open_ledger(open()));

    let submitters: Vec<_> = (0..THREADS)
        .map(|thread| {
            let ledger = Arc::clone(&ledger);
            std::thread::spawn(move || {
                (0..COMMANDS_PER_THREAD)
                    .map(|index| {
                        let command = if index % 2 == 0 {
                            create_role(&new_role_id(), &format!("Role {thread}-{index}"))
                        } else {
                            create_user(&new_user_id(), &format!("User {thread}-{index}"))
                        };
                        ledger.submit_blocking(command, as_administrator(&ledger))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut positions = Vec::new();
    for submitter in submitters {
        for outcome in submitter.join().expect("the submitting thread finishes") {
            let applied = outcome.expect("every command is applied");
            assert_eq!(applied.events.len(), 1);
            positions.push(applied.position);
        }
    }
    positions.sort_unstable();
    assert_eq!(positions, (1..=total).collect::<Vec<_>>(), "every command has its own position, without gaps");

    let stored = ledger.log().read(1, usize::MAX).expect("the log reads");
    assert_eq!(stored.iter().map(|record| record.seq).collect::<Vec<_>>(), (1..=total).collect::<Vec<_>>());
    let records = records_of(ledger.log());
    let last_hash = records.last().expect("the log is not empty").hash;
    let verification = ledger.verify().expect("the log reads");
    assert_eq!(
        verification,
        Verification { size: total, verified: total, head_hash: last_hash, checkpoints: 0, error: None }
    );
    for pair in records.windows(2) {
        assert!(pair[1].at >= pair[0].at, "record {} is dated before record {}", pair[1].seq, pair[0].seq);
    }

    let view = ledger.view();
    assert_eq!(view.head(), total);
    assert_eq!(view.roles_after(0).count(), THREADS * COMMANDS_PER_THREAD / 2);
    assert_eq!(view.users_after(0).count(), THREADS * COMMANDS_PER_THREAD / 2);
}

fn commands_decided_in_one_batch_see_each_other<L: EventLog>(open: impl Fn() -> L) {
    let ledger = open_ledger(FailingLog::new(open()));
    let role_id = new_role_id();

    // Hold the writer inside the first batch's append, so that the two commands queued
    // meanwhile, without waiting for each other, are taken together as the next batch.
    // Who asks is read from the view before the writer is paused: admin reads wait for a
    // batch under way, so reading it during the pause would wait for the release.
    let admin = as_administrator(&ledger);
    let paused = ledger.log().pause_next_append();
    let mut blocker = pin!(ledger.submit(create_user(&new_user_id(), "Blocker"), admin.clone()));
    queue(blocker.as_mut());
    paused.wait_until_entered();
    let mut created = pin!(ledger.submit(create_role(&role_id, "API Access"), admin.clone()));
    let mut activated = pin!(ledger.submit(activate(&role_id, &["api.attendees.read"]), admin.clone()));
    queue(created.as_mut());
    queue(activated.as_mut());
    paused.release();

    let (blocker, created, activated) = runtime().block_on(async { (blocker.await, created.await, activated.await) });
    assert_eq!(blocker.expect("the first batch is applied").position, 1);
    assert_eq!(created.expect("the role is created").position, 2);
    let activated = activated.expect("the activation sees the role created earlier in its batch");
    assert_eq!(activated.position, 3);
    assert_eq!(ledger.log().append_sizes(), vec![1, 2], "the role's two commands were appended as one batch");

    assert!(ledger.view().role(&role_id).is_some_and(|role| role.functions().contains(function("api.attendees.read"))));
    let verification = ledger.verify().expect("the log reads");
    assert_eq!((verification.verified, verification.error), (3, None));
}

/// What a test's [`Render`] reads: the head, and the role's version and functions.
type RoleSeen = (u64, Option<(u64, usize)>);

fn render_role(role_id: &RoleId, renders: &Arc<std::sync::atomic::AtomicUsize>) -> Render {
    let (role_id, renders) = (role_id.clone(), Arc::clone(renders));
    Box::new(move |view: &State| {
        renders.fetch_add(1, Ordering::SeqCst);
        let role = view.role(&role_id).map(|role| (role.version(), role.functions().iter().count()));
        Some(Box::new((view.head(), role)) as Rendered)
    })
}

fn a_rendered_answer_shows_the_state_its_own_command_left_read_before_the_append<L: EventLog>(open: impl Fn() -> L) {
    let ledger = open_ledger(FailingLog::new(open()));
    let role_id = new_role_id();
    let admin = as_administrator(&ledger);
    let renders = Arc::new(std::sync::atomic::AtomicUsize::new(0));

    // Three commands on one role and one refused, decided as one batch while the first
    // batch is held inside its append. Each answer must show the role as its own command
    // left it, not as the batch (or a later one) left it.
    let paused = ledger.log().pause_next_append();
    let mut blocker = pin!(ledger.submit(create_user(&new_user_id(), "Blocker"), admin.clone()));
    queue(blocker.as_mut());
    paused.wait_until_entered();
    let submit = |command| ledger.submit_rendering(command, admin.clone(), render_role(&role_id, &renders));
    let mut created = pin!(submit(create_role(&role_id, "API Access")));
    let mut first = pin!(submit(activate(&role_id, &["api.attendees.read"])));
    let mut refused = pin!(submit(activate(&new_role_id(), &["api.events.read"])));
    let mut second = pin!(submit(activate(&role_id, &["api.events.read"])));
    queue(created.as_mut());
    queue(first.as_mut());
    queue(refused.as_mut());
    queue(second.as_mut());
    // Hold the second batch in its append too: the writer read every answer while it held
    // the view, before the batch was durable, and sends none of them before it is.
    let second_batch = ledger.log().pause_next_append();
    paused.release();
    second_batch.wait_until_entered();
    assert_eq!(renders.load(Ordering::SeqCst), 3, "rendered for each command carried out, before the append");
    queue(created.as_mut());
    second_batch.release();

    let rt = runtime();
    let (blocker, created, first, refused, second) =
        rt.block_on(async { (blocker.await, created.await, first.await, refused.await, second.await) });
    assert_eq!(blocker.expect("the first batch is applied").position, 1);
    let seen = |outcome: Result<(Applied, Option<Rendered>), SubmitError>| {
        let (applied, rendered) = outcome.expect("the command is applied");
        let seen = *rendered.expect("rendered").downcast::<RoleSeen>().expect("what render_role returns");
        (applied.position, seen)
    };
    let (created, first, second) = (seen(created), seen(first), seen(second));
    assert!(matches!(refused, Err(SubmitError::Refused(DomainError::NotFound { .. }))), "{refused:?}");
    assert_eq!(ledger.log().append_sizes(), vec![1, 3], "the role's three commands were appended as one batch");
    assert_eq!(created.0, 2);
    assert_eq!(created.1.0, 2, "rendered right after its own command");
    assert_eq!(created.1.1.map(|(_, functions)| functions), Some(0));
    assert_eq!((first.0, first.1.0), (3, 3));
    assert_eq!(first.1.1.map(|(_, functions)| functions), Some(1));
    assert_eq!((second.0, second.1.0), (4, 4));
    assert_eq!(second.1.1.map(|(_, functions)| functions), Some(2));
    let versions = [created, first, second].map(|(_, (_, role))| role.expect("the role exists").0);
    assert!(versions.is_sorted() && versions[0] < versions[2], "{versions:?}");
    assert_eq!(ledger.view().role(&role_id).map(|role| role.version()), Some(versions[2]));
}

fn a_render_that_panics_costs_its_answer_not_the_writer<L: EventLog>(open: impl Fn() -> L) {
    let ledger = open_ledger(open());
    let role_id = new_role_id();
    let render: Render = Box::new(|_: &State| panic!("a broken render"));
    let submitted = ledger.submit_rendering(create_role(&role_id, "API Access"), as_administrator(&ledger), render);
    let (applied, rendered) = runtime().block_on(submitted).expect("the command is applied all the same");
    assert_eq!((applied.position, rendered.is_none()), (1, true));
    // The writer goes on.
    assert_eq!(submit(&ledger, activate(&role_id, &["api.attendees.read"])).position, 2);
}

fn a_failed_append_is_answered_as_a_storage_error_and_forgotten_by_the_writer<L: EventLog>(open: impl Fn() -> L) {
    let ledger = open_ledger(FailingLog::new(open()));
    ledger.bootstrap().expect("bootstrap is written").expect("an empty ledger bootstraps");
    let head = head_of(&ledger);
    let before = snapshot(&ledger.view());
    let role_id = new_role_id();

    ledger.log().set_failing(true);
    match ledger.submit_blocking(create_role(&role_id, "Operations"), as_administrator(&ledger)) {
        Err(SubmitError::Storage(message)) => assert_eq!(message, "the disk is full"),
        other => panic!("expected a storage error, got {other:?}"),
    }
    // The writer forgot the role it could not write: a command on that role is refused
    // because the role does not exist, not failed because it would have to be written.
    match ledger.submit_blocking(activate(&role_id, &["security.roles.read"]), as_administrator(&ledger)) {
        Err(SubmitError::Refused(DomainError::NotFound { resource: Resource::Role, .. })) => {}
        other => panic!("expected an unknown role, got {other:?}"),
    }
    let outcome = ledger.submit_blocking(create_user(&new_user_id(), "Someone"), as_administrator(&ledger));
    assert!(matches!(outcome, Err(SubmitError::Storage(_))), "{outcome:?}");
    assert_eq!(head_of(&ledger), head, "a failed append appends nothing");
    assert_eq!(snapshot(&ledger.view()), before, "a failed append changes nothing in the view");
    assert!(ledger.checks().matches(&ledger.view()), "the checks never saw the failed batch");

    // Once storage recovers, the same command succeeds at the next position (so the writer
    // forgot the failed batch's state and positions) and the chain verifies (so it forgot
    // the failed batch's hashes).
    ledger.log().set_failing(false);
    let applied = submit(&ledger, create_role(&role_id, "Operations"));
    assert_eq!(applied.position, head + 1);
    assert_eq!(head_of(&ledger), head + 1);
    assert_eq!(ledger.view().head(), head + 1);
    let verification = ledger.verify().expect("the log reads");
    assert_eq!((verification.verified, verification.error), (head + 1, None));
    let records = records_of(ledger.log());
    assert_eq!(records[records.len() - 1].prev_hash, records[records.len() - 2].hash);
}

fn a_refusal_caused_by_a_command_whose_append_failed_is_not_reported_as_a_refusal<L: EventLog>(open: impl Fn() -> L) {
    let ledger = open_ledger(FailingLog::new(open()));

    // Two roles with the same description are queued into one batch, whose append fails.
    // Who asks is read from the view before the writer is paused: admin reads wait for a
    // batch under way, so reading it during the pause would wait for the release.
    let admin = as_administrator(&ledger);
    let paused = ledger.log().pause_next_append();
    let mut blocker = pin!(ledger.submit(create_user(&new_user_id(), "Blocker"), admin.clone()));
    queue(blocker.as_mut());
    paused.wait_until_entered();
    let mut first = pin!(ledger.submit(create_role(&new_role_id(), "Operations"), admin.clone()));
    let mut second = pin!(ledger.submit(create_role(&new_role_id(), "operations"), admin.clone()));
    queue(first.as_mut());
    queue(second.as_mut());
    ledger.log().set_failing(true);
    paused.release();

    let (blocker, first, second) = runtime().block_on(async { (blocker.await, first.await, second.await) });
    assert!(matches!(blocker, Err(SubmitError::Storage(_))), "{blocker:?}");
    assert!(matches!(first, Err(SubmitError::Storage(_))), "{first:?}");
    assert_eq!(ledger.log().append_sizes(), vec![1, 1], "the two roles were decided in one batch");
    assert_eq!(head_of(&ledger), 0);
    assert!(ledger.view().role_by_description("operations").is_none());

    // No role is described "operations": once storage recovers, one can be created.
    ledger.log().set_failing(false);
    submit(&ledger, create_role(&new_role_id(), "operations"));

    assert!(
        matches!(second, Err(SubmitError::Storage(_))),
        "refused because of a role that was never written: {second:?}"
    );
}

fn open_refuses_a_log_whose_chain_was_tampered_with<L: EventLog>(open: impl Fn() -> L) {
    let head = {
        let ledger = open_ledger(open());
        ledger.bootstrap().expect("bootstrap is written").expect("an empty ledger bootstraps");
        head_of(&ledger)
    };
    {
        // A well-formed record whose `prev_hash` does not link it to the record before it.
        let log = open();
        let envelope = Envelope { seq: head + 1, at: Timestamp::now(), actor: Actor::System, justification: None };
        let event = Event::UserCreated { user_id: new_user_id(), name: "Intruder".to_owned(), email: None };
        let (forged, _) = record::encode(&envelope, &event, ChainHash::GENESIS);
        log.append(head, &[forged]).expect("the log appends the forged record");
    }

    match Ledger::open(open()) {
        Err(OpenError::Corrupt(ChainError::Broken { seq })) => assert_eq!(seq, head + 1),
        Err(other) => panic!("expected a broken chain at record {}, got {other:?}", head + 1),
        Ok(_) => panic!("a ledger opened over a tampered log"),
    }
    let verification = verify_log(&open(), &[], None).expect("the log reads");
    assert_eq!(
        (verification.verified, verification.error),
        (head, Some(VerifyError::Chain(ChainError::Broken { seq: head + 1 })))
    );
}

/// A storage failure that only a restart recovers from (issue #10): the batch is answered
/// with a storage error, the owner hears of it (the server then exits 74), and every later
/// command is refused with the same error, even once the disk would take writes again,
/// because the log underneath needs its restart first.
fn a_failed_append_that_needs_a_restart_stops_the_writer_and_is_reported_to_the_owner<L: EventLog>(
    open: impl Fn() -> L,
) {
    let ledger = open_ledger(FailingLog::new(open()));
    ledger.bootstrap().expect("bootstrap is written").expect("an empty ledger bootstraps");
    let head = head_of(&ledger);
    let fatal = ledger.fatal();

    ledger.log().set_needs_restart(true);
    ledger.log().set_failing(true);
    let outcome = ledger.submit_blocking(create_role(&new_role_id(), "Operations"), as_administrator(&ledger));
    assert!(matches!(&outcome, Err(SubmitError::Storage(message)) if message == "the disk is full"), "{outcome:?}");
    let reported = runtime().block_on(fatal).expect("the owner hears of the failure");
    assert_eq!(reported.to_string(), "the log could not be written (the disk is full)");

    ledger.log().set_failing(false);
    let later = ledger.submit_blocking(create_role(&new_role_id(), "Later"), as_administrator(&ledger));
    assert!(matches!(&later, Err(SubmitError::Storage(message)) if message == "the disk is full"), "{later:?}");
    assert_eq!(head_of(&ledger), head, "nothing is appended once the writer stopped");
    assert!(runtime().block_on(ledger.fatal()).is_some(), "asking again still reports the failure");
}

/// A record intact in the chain but made by an actor the authority rules refuse (here
/// keyledger itself creating a user on a ledger that has an administrator, as a log
/// written before the rules existed may hold): `verify-log` reports it at its record,
/// while the ledger still opens over it and serves what the log says.
fn verification_reports_a_record_its_actor_was_not_allowed_to_make_and_open_still_serves_it<L: EventLog>(
    open: impl Fn() -> L,
) {
    let user_id = new_user_id();
    let (head, head_hash) = {
        let ledger = open_ledger(open());
        ledger.bootstrap().expect("bootstrap is written").expect("an empty ledger bootstraps");
        let verification = ledger.verify().expect("the log reads");
        (verification.verified, verification.head_hash)
    };
    {
        let log = open();
        let envelope = Envelope { seq: head + 1, at: Timestamp::now(), actor: Actor::System, justification: None };
        let event = Event::UserCreated { user_id: user_id.clone(), name: "Unauthorised".to_owned(), email: None };
        let (stored, _) = record::encode(&envelope, &event, head_hash);
        log.append(head, &[stored]).expect("the log appends the record");
    }

    let verification = verify_log(&open(), &[], None).expect("the log reads");
    assert!(!verification.is_valid());
    assert_eq!(verification.verified, head, "the records before it verified");
    match verification.error {
        Some(VerifyError::Unauthorised(unauthorised)) => {
            assert_eq!((unauthorised.seq, unauthorised.kind), (head + 1, "UserCreated"));
            assert_eq!(unauthorised.shortfall, domain::Shortfall::NotForTheSystem);
        }
        other => panic!("expected an unauthorised record, got {other:?}"),
    }
    let ledger = open_ledger(open());
    assert!(ledger.view().user(&user_id).is_some(), "open serves the record as written");
}

/// A stored Merkle tree whose node no longer hashes the records (edited on disk) stops
/// the ledger from opening, with the sizes and roots compared.
fn open_refuses_a_log_whose_stored_tree_is_not_the_tree_of_its_records<L: EventLog>(open: impl Fn() -> L) {
    let head = {
        let ledger = open_ledger(open());
        ledger.bootstrap().expect("bootstrap is written").expect("an empty ledger bootstraps");
        head_of(&ledger)
    };
    // The leftmost complete subtree under the root: every root of the log's size reads it.
    let top = NodeId { level: (63 - head.leading_zeros()) as u8, index: 0 };
    let forged = || {
        let log = FailingLog::new(open());
        log.forge_tree_node(top);
        log
    };
    match Ledger::open(forged()) {
        Err(OpenError::Tree(TreeError::Mismatch { size, stored, replayed })) => {
            assert_eq!(size, head);
            assert_ne!(stored, replayed);
        }
        Err(other) => panic!("expected a tree that does not match, got {other:?}"),
        Ok(_) => panic!("a ledger opened over a forged tree"),
    }
    let verification = verify_log(&forged(), &[], None).expect("the log reads");
    assert_eq!(verification.error, Some(VerifyError::Tree { size: head }));
}

fn record_times_never_go_backwards_even_when_the_clock_does<L: EventLog>(open: impl Fn() -> L) {
    {
        let ledger = open_ledger(open());
        ledger.bootstrap().expect("bootstrap is written").expect("an empty ledger bootstraps");
    }
    // A record dated far ahead stands for a system clock that was set back after writing it.
    let future = Timestamp::parse("2999-01-01T00:00:00Z").expect("a valid timestamp");
    let future_seq = {
        let log = open();
        let chain = verify_log(&log, &[], None).expect("the log reads");
        let envelope = Envelope { seq: chain.verified + 1, at: future, actor: Actor::System, justification: None };
        let event = Event::UserCreated { user_id: new_user_id(), name: "Time traveller".to_owned(), email: None };
        let (stored, _) = record::encode(&envelope, &event, chain.head_hash);
        log.append(chain.verified, &[stored]).expect("the log appends the record");
        envelope.seq
    };

    let ledger = open_ledger(open());
    for index in 0..5 {
        submit(&ledger, create_role(&new_role_id(), &format!("Role {index}")));
    }
    let records = records_of(ledger.log());
    assert_eq!(records.len() as u64, future_seq + 5);
    for pair in records.windows(2) {
        assert!(pair[1].at >= pair[0].at, "record {} is dated before record {}", pair[1].seq, pair[0].seq);
    }
}

// ---------------------------------------------------------------------------------------
// Races (issue #5, item 7).
// ---------------------------------------------------------------------------------------

/// Conflicting commands from many threads (two roles, one an API role, assigned to the same
/// user; key rotations racing revocations) leave exactly the state that replaying the
/// acknowledged commands one at a time, in log order, produces: each acknowledged command
/// decides to the same events, and the final users, roles and key checks are the same.
fn racing_commands_leave_the_state_a_serial_replay_of_the_acknowledged_ones_gives<L: EventLog>(open: impl Fn() -> L) {
    let ledger = open_ledger(open());
    let admin_secret = ledger.bootstrap().expect("bootstrap").expect("a first key");
    let admin = ledger.view().key(&admin_secret.hash()).expect("the admin key").user_id().clone();
    let (api_role, other_role) = (new_role_id(), new_role_id());
    let mut setup = vec![
        create_role(&api_role, "API Access"),
        activate(&api_role, &["api.attendees.read"]),
        create_role(&other_role, "Auditors"),
        activate(&other_role, &["security.audit.read"]),
    ];
    let users: Vec<UserId> = (0..40).map(|_| new_user_id()).collect();
    setup.extend(users.iter().enumerate().map(|(n, user)| create_user(user, &format!("user {n}"))));
    for command in &setup {
        submit(&ledger, command.clone());
    }
    let setup_head = head_of(&ledger);

    // Five conflicting commands per user, spread over four threads.
    let mut secrets = Vec::new();
    let mut racing: Vec<Vec<Command>> = vec![Vec::new(); 4];
    for (n, user) in users.iter().enumerate() {
        let (first, second) = (KeySecret::generate(&mut rand::rng()), KeySecret::generate(&mut rand::rng()));
        let commands = [
            assign(user, &api_role),
            assign(user, &other_role),
            generate_key(user, &first),
            Command::RevokeKey { user_id: user.clone() },
            generate_key(user, &second),
        ];
        for (i, command) in commands.into_iter().enumerate() {
            racing[(n + i) % 4].push(command);
        }
        secrets.extend([first, second]);
    }
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for commands in racing {
            let (ledger, outcomes, admin) = (&ledger, &outcomes, &admin);
            scope.spawn(move || {
                for command in commands {
                    let outcome = ledger.submit_blocking(command.clone(), by(admin));
                    outcomes.lock().expect("outcomes").push((command, outcome));
                }
            });
        }
    });

    // The serial replay: bootstrap and setup, then the acknowledged racing commands in log order (a
    // command that appended nothing goes after the one whose position it saw).
    let mut acknowledged: Vec<(Command, Applied)> = outcomes
        .into_inner()
        .expect("outcomes")
        .into_iter()
        .filter_map(|(command, outcome)| outcome.ok().map(|applied| (command, applied)))
        .collect();
    acknowledged.sort_by_key(|(_, applied)| (applied.position, applied.events.is_empty()));
    assert!(acknowledged.len() > users.len() * 2, "the races acknowledged too little to mean anything");
    let mut replayed = State::default();
    let context = |actor: Actor| Context { actor, now: Timestamp::now(), expected_version: None, credential: None };
    let play = |state: &mut State, actor: Actor, command: Command| -> Vec<Event> {
        let events = domain::decide(state, &context(actor), command).expect("the serial replay accepts it");
        for event in &events {
            state.apply(Position { seq: state.head() + 1, at: Timestamp::now() }, event);
        }
        events
    };
    // Bootstrap and setup came before any race.
    for record in records_of(ledger.log()).into_iter().take_while(|record| record.seq <= setup_head) {
        replayed.apply(Position { seq: record.seq, at: record.at }, &record.event);
    }
    for (command, applied) in acknowledged {
        let events = play(&mut replayed, Actor::User(admin.clone()), command.clone());
        assert_eq!(events, applied.events, "{command:?} decides differently in the serial replay");
        assert_eq!(replayed.head(), applied.position, "{command:?}");
    }

    let view = ledger.view();
    assert_eq!(replayed.head(), view.head());
    for user in &users {
        let (live, serial) = (view.user(user).expect("user"), replayed.user(user).expect("user"));
        assert_eq!(live.roles(), serial.roles(), "{user}");
        let holds_api_role = live.roles().contains(&api_role);
        assert!(!holds_api_role || live.roles().len() == 1, "{user} holds an API role beside another");
    }
    for secret in &secrets {
        for function in ["api.attendees.read", "security.audit.read"] {
            assert_eq!(check_reason(&view, secret, function), check_reason(&replayed, secret, function));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Checkpoints.
// ---------------------------------------------------------------------------------------

mod checkpoints {
    use super::*;
    use crate::checkpoint::{CheckpointStore, Signer};
    use crate::ledger::{CheckpointPolicy, OpenError, Policies};
    use crate::log::Tree;
    use crate::merkle;

    /// A signing key and a checkpoint file in a temporary directory, reusable across opens.
    struct Keeper {
        dir: tempfile::TempDir,
    }

    impl Keeper {
        fn new() -> Self {
            let keeper = Self { dir: tempfile::tempdir().unwrap() };
            Signer::load_or_create(&keeper.dir.path().join("signing-key")).unwrap();
            keeper
        }

        fn policies(&self, every: u64) -> Policies {
            Policies {
                snapshots: None,
                checkpoints: Some(CheckpointPolicy {
                    store: self.store(),
                    signer: Signer::load(&self.dir.path().join("signing-key")).unwrap(),
                    every,
                }),
            }
        }

        fn store(&self) -> CheckpointStore {
            CheckpointStore::new(self.dir.path().join("checkpoints.jsonl"))
        }
    }

    fn populate<L: EventLog>(ledger: &Ledger<L>, roles: usize) {
        for _ in 0..roles {
            let role_id = new_role_id();
            submit(ledger, create_role(&role_id, &format!("Role {role_id}")));
        }
    }

    #[test]
    fn checkpoints_are_signed_every_n_records_on_request_and_at_shutdown() {
        let keeper = Keeper::new();
        let log = memory();
        let ledger = Ledger::open_with(log(), keeper.policies(5)).unwrap();
        let key = ledger.public_key().unwrap();
        populate(&ledger, 12);
        let on_request = ledger.checkpoint_blocking().unwrap();
        assert_eq!(on_request.size, 12);
        // Asking again with nothing new gives the same checkpoint, not a new one.
        assert_eq!(ledger.checkpoint_blocking().unwrap(), on_request);
        populate(&ledger, 1);
        drop(ledger);
        let checkpoints = keeper.store().all().unwrap();
        let sizes: Vec<u64> = checkpoints.iter().map(|checkpoint| checkpoint.size).collect();
        assert_eq!(sizes, [5, 10, 12, 13]);
        let reopened = Ledger::open_with(log(), keeper.policies(5)).unwrap();
        for checkpoint in &checkpoints {
            assert!(checkpoint.is_signed_by(&key));
            assert_eq!(checkpoint.root, merkle::root(&Tree(reopened.log()), checkpoint.size).unwrap());
        }
        assert_eq!(checkpoints[3].view.as_bytes(), &reopened.view().fingerprint());
    }

    /// The fingerprint computed by the checks at open is handed to the writer, whose first
    /// checkpoint then re-encodes only what changed since: it must still sign the view.
    #[test]
    fn the_first_checkpoint_after_a_restart_signs_the_view() {
        for (checkpoint_every, tail) in [(5, 0), (5, 3)] {
            let keeper = Keeper::new();
            let log = memory();
            let ledger = Ledger::open_with(log(), keeper.policies(checkpoint_every)).unwrap();
            populate(&ledger, 10 + tail);
            drop(ledger);
            // Open checks the checkpoint at the head (signed at shutdown).
            let reopened = Ledger::open_with(log(), keeper.policies(checkpoint_every)).unwrap();
            populate(&reopened, 2);
            let user_id = new_user_id();
            submit(&reopened, create_user(&user_id, "After the restart"));
            submit(&reopened, Command::DisableUser { user_id });
            let checkpoint = reopened.checkpoint_blocking().unwrap();
            assert_eq!(checkpoint.size, head_of(&reopened));
            assert_eq!(checkpoint.view.as_bytes(), &reopened.view().fingerprint(), "tail {tail}");
        }
    }

    #[test]
    fn verification_checks_the_records_against_every_signed_checkpoint() {
        let keeper = Keeper::new();
        let ledger = Ledger::open_with(MemoryLog::new(), keeper.policies(4)).unwrap();
        populate(&ledger, 9);
        let verification = ledger.verify().unwrap();
        assert!(verification.is_valid(), "{verification:?}");
        assert_eq!(verification.checkpoints, 2, "the checkpoints at 4 and 8");

        // A checkpoint whose root is not the records', or signed by another key, is named.
        let mut checkpoints = ledger.checkpoints().unwrap();
        checkpoints[1].root = merkle::leaf_hash(b"forged");
        let key = ledger.public_key().unwrap();
        let forged = verify_log(ledger.log(), &checkpoints, Some(&key)).unwrap();
        assert!(matches!(forged.error, Some(VerifyError::Checkpoint { size: 8, .. })), "{forged:?}");
        assert_eq!(forged.checkpoints, 1);
        let other = Signer::generate().public_key();
        let unsigned = verify_log(ledger.log(), &ledger.checkpoints().unwrap(), Some(&other)).unwrap();
        assert!(matches!(unsigned.error, Some(VerifyError::Checkpoint { size: 4, .. })), "{unsigned:?}");
    }

    #[test]
    fn a_log_cut_short_after_its_checkpoint_is_refused() {
        let keeper = Keeper::new();
        let original = memory();
        let ledger = Ledger::open_with(original(), keeper.policies(1000)).unwrap();
        populate(&ledger, 6);
        drop(ledger);
        // The same history, without its last two records: as if restored from an old backup.
        let records = original().read(1, 100).unwrap();
        let truncated = MemoryLog::new();
        truncated.append(0, &records[..4]).unwrap();
        match Ledger::open_with(truncated, keeper.policies(1000)) {
            Err(OpenError::CheckpointMismatch { size: 6, reason }) => {
                assert!(reason.contains("only 4 records"), "{reason}")
            }
            other => panic!("expected a checkpoint mismatch, got {:?}", other.err()),
        }
    }

    #[test]
    fn a_log_rewritten_with_a_fresh_chain_is_refused() {
        let keeper = Keeper::new();
        let original = memory();
        let ledger = Ledger::open_with(original(), keeper.policies(1000)).unwrap();
        populate(&ledger, 4);
        drop(ledger);
        // Rewrite record 2 and re-chain everything after it: the chain verifies, but the
        // history is not the one signed.
        let mut records: Vec<Record> =
            original().read(1, 100).unwrap().iter().map(|stored| record::decode(&stored.bytes).unwrap()).collect();
        records[1].event = Event::RoleCreated { role_id: new_role_id(), description: "Forged".into() };
        let rewritten = MemoryLog::new();
        let mut prev = crate::log::ChainHash::GENESIS;
        for record in &records {
            let envelope = record::Envelope {
                seq: record.seq,
                at: record.at,
                actor: record.actor.clone(),
                justification: record.justification.clone(),
            };
            let (stored, hash) = record::encode(&envelope, &record.event, prev);
            rewritten.append(record.seq - 1, &[stored]).unwrap();
            prev = hash;
        }
        match Ledger::open_with(rewritten, keeper.policies(1000)) {
            Err(OpenError::CheckpointMismatch { size: 4, reason }) => {
                assert!(reason.contains("Merkle root"), "{reason}")
            }
            other => panic!("expected a checkpoint mismatch, got {:?}", other.err()),
        }
    }

    #[test]
    fn a_checkpoint_signed_by_another_key_is_refused() {
        let keeper = Keeper::new();
        let log = memory();
        let ledger = Ledger::open_with(log(), keeper.policies(1000)).unwrap();
        populate(&ledger, 2);
        drop(ledger);
        // Someone replaced the signing key file.
        std::fs::remove_file(keeper.dir.path().join("signing-key")).unwrap();
        Signer::load_or_create(&keeper.dir.path().join("signing-key")).unwrap();
        match Ledger::open_with(log(), keeper.policies(1000)) {
            Err(OpenError::CheckpointMismatch { reason, .. }) => assert!(reason.contains("not signed"), "{reason}"),
            other => panic!("expected a checkpoint mismatch, got {:?}", other.err()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The history from retained snapshots.
// ---------------------------------------------------------------------------------------

mod history_from_snapshots {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::*;
    use crate::history::{self, At};
    use crate::ledger::Policies;
    use crate::snapshot;

    const SEEDS: std::ops::Range<u64> = 0..4;

    fn user_id(n: usize) -> UserId {
        UserId::parse(&format!("usr_00000000000000{n:02x}")).unwrap()
    }

    fn role_id(n: usize) -> RoleId {
        RoleId::parse(&format!("role_00000000000000{n:02x}")).unwrap()
    }

    /// A random command over six users and four roles; many are refused, which appends
    /// nothing and is part of what is exercised.
    fn random_command(rng: &mut StdRng) -> Command {
        let (n, r) = (rng.random_range(0..6), rng.random_range(0..4));
        let functions = ["api.attendees.read", "api.invoices.write", "api.events.read"];
        let some_functions = &functions[..rng.random_range(1..=functions.len())];
        match rng.random_range(0..9) {
            0 => create_user(&user_id(n), &format!("User {n}")),
            1 => create_role(&role_id(r), &format!("Role {r}")),
            2 | 3 => assign(&user_id(n), &role_id(r)),
            4 => Command::UnassignRole { user_id: user_id(n), role_id: role_id(r) },
            5 => activate(&role_id(r), some_functions),
            6 => Command::DeactivateFunctions {
                role_id: role_id(r),
                functions: some_functions.iter().map(|id| function(id)).collect(),
            },
            7 if rng.random_bool(0.5) => Command::DisableUser { user_id: user_id(n) },
            7 => Command::EnableUser { user_id: user_id(n) },
            _ => generate_key(&user_id(n), &KeySecret::generate(rng)),
        }
    }

    /// What a point-in-time answer shows: the point reached and everything in the view.
    fn answer(replayed: &history::Replayed) -> (u64, Option<Timestamp>, String, [u8; 32]) {
        (replayed.position, replayed.recorded_at, snapshot(&replayed.state), replayed.state.fingerprint())
    }

    fn files_in(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| entries.count())
    }

    /// The property: the view at a random point, and the changes between two, are
    /// the same from the retained snapshots as from a full replay of the log; also after the
    /// newest snapshots were corrupted, which makes the history start from older ones.
    #[test]
    fn point_in_time_answers_from_retained_snapshots_equal_a_full_replay_at_random_points() {
        for seed in SEEDS {
            let mut rng = StdRng::seed_from_u64(seed);
            let dir = tempfile::tempdir().unwrap();
            let every = rng.random_range(2..8);
            let policy = SnapshotPolicy { dir: dir.path().to_owned(), every };
            let log = memory();
            let open = || {
                let policies = Policies { snapshots: Some(policy.clone()), checkpoints: None };
                Ledger::open_with(log(), policies).unwrap()
            };
            // The writer saves snapshots on a thread of its own, skipping one due while the
            // last is being written; closing the ledger saves one at the head, so the
            // history is written in stretches, each ended by a restart (from the newest).
            for _ in 0..rng.random_range(20..40) {
                let ledger = open();
                ledger.bootstrap().unwrap();
                for _ in 0..rng.random_range(1..3 * every) {
                    let _ = ledger.submit_blocking(random_command(&mut rng), as_administrator(&ledger));
                }
            }
            let ledger = open();
            let head = head_of(&ledger);
            let times: Vec<Timestamp> = records_of(ledger.log()).iter().map(|record| record.at).collect();
            let kept = files_in(dir.path());
            assert!(kept > snapshot::RECENT, "seed {seed}: spaced snapshots are retained ({kept} files)");
            assert!(kept <= snapshot::RECENT + snapshot::SPACED as usize + 1, "seed {seed}: {kept} files");

            let compare = |rng: &mut StdRng, round: &str| {
                for _ in 0..40 {
                    let (a, b) = (rng.random_range(0..=head), rng.random_range(0..=head));
                    let (from, to) = (a.min(b), a.max(b));
                    let from_snapshots = history::state_at(ledger.history(), At::Position(to)).unwrap();
                    let full = history::state_at(ledger.log(), At::Position(to)).unwrap();
                    assert_eq!(answer(&from_snapshots), answer(&full), "seed {seed}, {round}: position {to}");

                    let time = times[rng.random_range(0..times.len())];
                    let from_snapshots = history::state_at(ledger.history(), At::Time(time)).unwrap();
                    let full = history::state_at(ledger.log(), At::Time(time)).unwrap();
                    assert_eq!(answer(&from_snapshots), answer(&full), "seed {seed}, {round}: time {time}");

                    let (from, to) = (At::Position(from), At::Position(to));
                    let from_snapshots = history::diff(ledger.history(), from, to).unwrap();
                    let full = history::diff(ledger.log(), from, to).unwrap();
                    assert_eq!(
                        (from_snapshots.from, from_snapshots.to, &from_snapshots.changes),
                        (full.from, full.to, &full.changes),
                        "seed {seed}, {round}: diff {from:?}..{to:?}"
                    );
                }
                let head_answer = history::state_at(ledger.history(), At::Head).unwrap();
                assert_eq!(answer(&head_answer), answer(&history::state_at(ledger.log(), At::Head).unwrap()));
            };
            compare(&mut rng, "intact");

            // Corrupt the newest half of the snapshots: each is skipped for an older one.
            let mut files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|entry| entry.unwrap().path()).collect();
            files.sort();
            for path in files.iter().skip(files.len() / 2) {
                let mut bytes = std::fs::read(path).unwrap();
                let last = bytes.len() - 1;
                bytes[last] ^= 0x55;
                std::fs::write(path, bytes).unwrap();
            }
            compare(&mut rng, "newest snapshots corrupt");
        }
    }

    /// A snapshot that is intact but not of this log (the record at its position has
    /// another hash) is never started from.
    #[test]
    fn a_snapshot_of_another_log_is_not_used_for_history() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open_ledger(memory()());
        ledger.bootstrap().unwrap();
        create_api_user(&ledger);
        let head = head_of(&ledger);
        // A state that claims to be this log's at its head, over another chain.
        let empty_at_head = history::state_at(ledger.log(), At::Position(1)).unwrap().state;
        let forged_head = ChainHash::GENESIS;
        let at = records_of(ledger.log()).last().unwrap().at;
        snapshot::write(dir.path(), 1, forged_head, at, &empty_at_head).unwrap();
        let source = history::Source::new(ledger.log(), Some(dir.path()));
        let from_snapshot = history::state_at(source, At::Position(head)).unwrap();
        let full = history::state_at(ledger.log(), At::Position(head)).unwrap();
        assert_eq!(answer(&from_snapshot), answer(&full));
    }
}

// ---------------------------------------------------------------------------------------
// The change feed (issue #13, item 1).
// ---------------------------------------------------------------------------------------

#[test]
fn a_follower_receives_every_batch_exactly_as_stored_in_order() {
    let ledger = Ledger::open(MemoryLog::new()).unwrap();
    let mut follower = ledger.subscribe();
    ledger.bootstrap().unwrap();
    let role = new_role_id();
    submit(&ledger, create_role(&role, "Readers"));
    submit(&ledger, activate(&role, &["api.events.read", "api.people.read"]));
    let mut received = Vec::new();
    while let Ok(change) = follower.try_recv() {
        match change {
            Change::Records(batch) => received.extend(batch.iter().cloned()),
            Change::Checkpoint(_) => panic!("this ledger keeps no checkpoints"),
        }
    }
    let head = ledger.view().head();
    assert_eq!(received, ledger.log().read(1, usize::MAX).unwrap());
    assert_eq!(received.last().map(|record| record.seq), Some(head));
}

#[test]
fn the_writer_never_waits_for_a_follower_that_reads_nothing_and_the_follower_learns_it_fell_behind() {
    let ledger = Ledger::open(MemoryLog::new()).unwrap();
    ledger.bootstrap().unwrap();
    let mut stalled = ledger.subscribe();
    let before = ledger.view().head();
    // One command at a time: each is a batch of its own, so a message of the feed.
    let commands = DEFAULT_FEED_CAPACITY as u64 + 10;
    for index in 0..commands {
        submit(&ledger, create_role(&new_role_id(), &format!("Role {index}")));
    }
    assert_eq!(ledger.view().head(), before + commands, "every command was applied");
    // The ring kept the newest messages; the follower learns how many it missed, then
    // reads on from the oldest kept, up to the last record.
    assert_eq!(stalled.try_recv().err(), Some(tokio::sync::broadcast::error::TryRecvError::Lagged(10)));
    let mut kept = Vec::new();
    while let Ok(Change::Records(batch)) = stalled.try_recv() {
        kept.extend(batch.iter().map(|record| record.seq));
    }
    assert_eq!(kept, (before + 11..=before + commands).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------
// One copy of the state (issue #11).
// ---------------------------------------------------------------------------------------

/// What a check of the API user's event-scoped function without an event answers for a
/// key that works: the key passed, the request lacks an event.
const WORKS: Reason = Reason::EventRequired;

fn checks_never_see_a_batch_before_it_is_durable_and_admin_reads_wait_for_it<L: EventLog>(open: impl Fn() -> L) {
    let ledger = open_ledger(FailingLog::new(open()));
    ledger.bootstrap().expect("bootstrap is written").expect("an empty ledger bootstraps");
    let app = create_api_user(&ledger);
    let rotated = KeySecret::generate(&mut rand::rng());

    // Hold the writer inside the append of a rotation without a grace period: the new key
    // is decided and applied to the one copy of the state, but not durable.
    let admin = as_administrator(&ledger);
    let paused = ledger.log().pause_next_append();
    let mut rotation = pin!(ledger.submit(generate_key(&app.user_id, &rotated), admin));
    queue(rotation.as_mut());
    paused.wait_until_entered();
    // Checks answer at once, from durable state: the old key works, the new one is unknown.
    let index = ledger.checks();
    assert_eq!(check_reason_in_index(&index, &app.key, "api.attendees.read"), WORKS);
    assert_eq!(check_reason_in_index(&index, &rotated, "api.attendees.read"), Reason::UnknownKey);
    drop(index);
    // Admin reads wait for the batch rather than see it.
    assert!(
        matches!(ledger.shared.view.try_read(), Err(std::sync::TryLockError::WouldBlock)),
        "the view can be read while a batch that is not durable is in it"
    );
    paused.release();

    runtime().block_on(rotation).expect("the rotation is applied");
    let index = ledger.checks();
    assert_eq!(check_reason_in_index(&index, &app.key, "api.attendees.read"), Reason::UnknownKey);
    assert_eq!(check_reason_in_index(&index, &rotated, "api.attendees.read"), WORKS);
    drop(index);
    assert!(ledger.checks().matches(&ledger.view()), "the check index holds the durable batch");
}

/// A writer over `ledger`'s view and check index, outside the writer thread, for the seams
/// a node tailing a shared log calls: `apply_durable` and `discard_batch`.
fn writer_of<L: EventLog>(ledger: &Ledger<L>) -> writer::Writer<L> {
    let (fatal, _) = watch::channel(None);
    writer::Writer {
        shared: Arc::clone(&ledger.shared),
        snapshots: None,
        saving: None,
        last_snapshot: 0,
        prev_hash: ChainHash::GENESIS,
        last_at: Timestamp::from_unix_millis(0),
        batch_start: None,
        signer: None,
        checkpoint_every: u64::MAX,
        last_checkpoint: None,
        fingerprints: domain::FingerprintCache::default(),
        fatal,
        stopped: None,
        frontier: None,
    }
}

fn records_applied_from_elsewhere_reach_the_view_and_the_checks_and_a_discarded_batch_leaves_nothing<L: EventLog>(
    open: impl Fn() -> L,
) {
    // Another node's ledger decides and appends; this one only receives its records.
    let elsewhere = open_ledger(open());
    elsewhere.bootstrap().expect("bootstrap is written").expect("an empty ledger bootstraps");
    let app = create_api_user(&elsewhere);
    let records: Vec<(Position, Event)> = records_of(elsewhere.log())
        .into_iter()
        .map(|record| (Position { seq: record.seq, at: record.at }, record.event))
        .collect();

    let here = open_ledger(MemoryLog::new());
    let mut writer = writer_of(&here);
    writer.apply_durable(&records[..2]);
    writer.apply_durable(&records[2..]);
    assert_eq!(snapshot(&here.view()), snapshot(&elsewhere.view()));
    assert_eq!(check_reason_in_index(&here.checks(), &app.key, "api.attendees.read"), WORKS);
    assert!(here.checks().matches(&here.view()));

    // A batch under way in the view (as the writer leaves it while it appends) is forgotten
    // exactly, in the view and the checks.
    let before = snapshot(&here.view());
    {
        let mut state = here.shared.view.write().unwrap_or_else(PoisonError::into_inner);
        state.begin_batch();
        let position = Position { seq: state.head() + 1, at: Timestamp::now() };
        state.apply(position, &Event::UserDisabled { user_id: app.user_id.clone() });
    }
    writer.batch_start = Some((ChainHash::GENESIS, Timestamp::from_unix_millis(0)));
    writer.discard_batch();
    assert_eq!(snapshot(&here.view()), before);
    assert_eq!(check_reason_in_index(&here.checks(), &app.key, "api.attendees.read"), WORKS);
    assert!(here.checks().matches(&here.view()));
    // With nothing under way, discarding does nothing.
    writer.discard_batch();
    assert_eq!(snapshot(&here.view()), before);
}
