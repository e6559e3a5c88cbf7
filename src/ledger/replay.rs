//! The one verified replay: stored records in, a verified permission view out.
//!
//! Opening the ledger, `verify-log`, the view at a point of the history and bundle
//! verification all read records the same way, through [`VerifiedReplay`]: each record's
//! place in the hash chain and its decoding ([`ChainVerifier`]), then, when asked, the
//! authority rules against the state just before it (`domain::authorise`), then its
//! Merkle leaf (the tree's right edge, [`Frontier`]), then the event applied to the
//! state. Each caller keeps only what is its own: checkpoints, snapshots, where to stop,
//! the lines of a bundle.
//!
//! Who checks the authority rules, and why:
//!
//! * bundles and `verify-log` ([`VerifiedReplay::verify`]) report a record whose actor did
//!   not hold what the rules demand: a verified history is one whose every change was
//!   authorised, not only one that nobody edited afterwards;
//! * opening the ledger and the views of the history
//!   ([`VerifiedReplay::verify_trusting_authority`]) do not: a log
//!   written before the authority rules existed may hold such a record, and refusing to
//!   start (or to answer what the log says) would not make it any less written.
//!   `verify-log` is where an operator learns of it.

use crate::domain::{self, Actor, Change, Position, Shortfall, State};
use crate::log::record::{self, Record, RecordError};
use crate::log::{ChainError, ChainHash, ChainVerifier, StoredRecord};
use crate::merkle::{self, Frontier, NodeId, Nodes, ProofError, TreeHash};

/// A record that is intact but that its actor was not allowed to make.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} by {actor} was not authorised: {shortfall}")]
pub struct Unauthorised {
    /// The record's sequence number.
    pub seq: u64,
    /// The event's type, such as `RoleAssigned`.
    pub kind: &'static str,
    /// Who the record says made the change.
    pub actor: Actor,
    /// What the actor lacked.
    pub shortfall: Shortfall,
}

/// Why a replay stopped at a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The record, or its link to the one before, is broken.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The record is intact, but its actor was not allowed to make it.
    #[error(transparent)]
    Unauthorised(#[from] Unauthorised),
}

/// Why the Merkle tree stored beside the records is not theirs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// A node the tree over the first `size` records should hold is not stored.
    #[error(
        "the Merkle tree over the first {size} records cannot be read: the tree node at level {} index {} is missing",
        node.level,
        node.index
    )]
    MissingNode {
        /// How many records the tree was read over.
        size: u64,
        /// The node that is missing.
        node: NodeId,
    },
    /// The tree could not be read over the first `size` records for another reason.
    #[error("the Merkle tree over the first {size} records cannot be read: {reason}")]
    Unreadable {
        /// How many records the tree was read over.
        size: u64,
        /// What the tree said.
        reason: String,
    },
    /// The stored tree's root is not the root recomputed from the records' bytes.
    #[error("the Merkle tree stored for the log's {size} records does not match the records")]
    Mismatch {
        /// How many records were compared.
        size: u64,
        /// The root of the stored tree.
        stored: TreeHash,
        /// The root recomputed from the records.
        replayed: TreeHash,
    },
}

impl TreeError {
    /// Sorts a failure to read the tree over the first `size` records into the storage
    /// error underneath (`Err`) and a tree that is not whole (`Ok`).
    pub fn from_proof<E>(size: u64, error: ProofError<E>) -> Result<Self, E> {
        match error {
            ProofError::Storage(error) => Err(error),
            ProofError::MissingNode(node) => Ok(TreeError::MissingNode { size, node }),
            ProofError::OutOfRange(reason) => Ok(TreeError::Unreadable { size, reason }),
        }
    }
}

/// Why the stored tree could not be checked against the records.
#[derive(Debug)]
pub enum TreeCheckError<E> {
    /// Reading the stored tree failed.
    Storage(E),
    /// The stored tree is not the records' tree.
    Tree(TreeError),
}

impl<E> TreeCheckError<E> {
    fn of(size: u64, error: ProofError<E>) -> Self {
        match TreeError::from_proof(size, error) {
            Ok(tree) => TreeCheckError::Tree(tree),
            Err(storage) => TreeCheckError::Storage(storage),
        }
    }
}

/// A stored record read ahead of its turn in a replay: decoded, its own hash checked, its
/// Merkle leaf hashed. What each record needs alone, and so what [`Prepared::chunk`] does on
/// every core; its place in the chain and its authority are checked in turn, by
/// [`VerifiedReplay::verify_prepared`].
#[derive(Debug)]
pub struct Prepared {
    decoded: Result<Record, RecordError>,
    leaf: TreeHash,
}

impl Prepared {
    /// Reads one record's bytes ahead.
    pub fn of(bytes: &[u8]) -> Self {
        Prepared { decoded: record::decode(bytes), leaf: merkle::leaf_hash(bytes) }
    }

    /// Reads a chunk of records ahead, on every core, in order.
    pub fn chunk<B: AsRef<[u8]> + Sync>(records: &[B]) -> Vec<Self> {
        record::map_on_all_cores(records, |bytes| Prepared::of(bytes.as_ref()))
    }
}

/// Replays stored records one at a time, verifying each before it changes the state.
///
/// [`VerifiedReplay::push`] verifies and applies a record; a caller that must look at a
/// verified record before applying it (to stop at a time, or to capture the state just
/// before it) calls [`VerifiedReplay::verify`] and then [`VerifiedReplay::apply`] (or
/// [`VerifiedReplay::apply_tracking_changes`]), before verifying the next.
///
/// A caller holding a chunk of records reads them ahead on every core with
/// [`Prepared::chunk`] and hands each to [`VerifiedReplay::verify_prepared`] (or
/// [`VerifiedReplay::push_prepared`]) in turn: the same checks, the same first error.
#[derive(Debug)]
pub struct VerifiedReplay {
    chain: ChainVerifier,
    frontier: Frontier,
    state: State,
    /// The hash of the last record accepted: verified and, when asked, authorised.
    head_hash: ChainHash,
}

impl VerifiedReplay {
    /// A replay from the first record of a log.
    pub fn new() -> Self {
        Self {
            chain: ChainVerifier::default(),
            frontier: Frontier::default(),
            state: State::default(),
            head_hash: ChainHash::GENESIS,
        }
    }

    /// A replay that carries on from a state already verified up to its head (a
    /// snapshot): `head_hash` is the chain hash of the record at that position and
    /// `frontier` the tree's right edge there. Event ids are checked for uniqueness from
    /// there on only.
    pub fn resume(state: State, head_hash: ChainHash, frontier: Frontier) -> Self {
        debug_assert_eq!(state.head(), frontier.size(), "the frontier stands where the state does");
        let chain = ChainVerifier::resume(state.head(), head_hash);
        Self { chain, frontier, state, head_hash }
    }

    /// Verifies the next record: its place in the chain, that it decodes, and that its
    /// actor may make it in the state so far (the authority rules). Grows the Merkle
    /// frontier by its leaf. The record is not applied: call [`VerifiedReplay::apply`]
    /// before verifying the next one. After an error the replay is done with.
    pub fn verify(&mut self, stored: &StoredRecord) -> Result<Record, ReplayError> {
        self.verify_prepared(stored.seq, Prepared::of(&stored.bytes))
    }

    /// [`VerifiedReplay::verify`] of the record stored at `stored_seq`, read ahead.
    pub fn verify_prepared(&mut self, stored_seq: u64, prepared: Prepared) -> Result<Record, ReplayError> {
        let record = self.link_next(stored_seq, prepared.decoded)?;
        // The record is legitimate, not only intact: its actor held what the authority
        // rules demand, in the state just before it.
        domain::authorise(&self.state, &record.actor, record.at, &record.event).map_err(|shortfall| Unauthorised {
            seq: record.seq,
            kind: record.event.type_name(),
            actor: record.actor.clone(),
            shortfall,
        })?;
        self.accept(prepared.leaf, &record);
        Ok(record)
    }

    /// [`VerifiedReplay::verify`] without the authority rules: the record need only be
    /// intact. For replays that serve what the log says (see the module's documentation).
    pub fn verify_trusting_authority(&mut self, stored: &StoredRecord) -> Result<Record, ChainError> {
        self.verify_prepared_trusting_authority(stored.seq, Prepared::of(&stored.bytes))
    }

    /// [`VerifiedReplay::verify_trusting_authority`] of the record stored at `stored_seq`,
    /// read ahead.
    pub fn verify_prepared_trusting_authority(
        &mut self,
        stored_seq: u64,
        prepared: Prepared,
    ) -> Result<Record, ChainError> {
        let record = self.link_next(stored_seq, prepared.decoded)?;
        self.accept(prepared.leaf, &record);
        Ok(record)
    }

    fn link_next(&mut self, stored_seq: u64, decoded: Result<Record, RecordError>) -> Result<Record, ChainError> {
        debug_assert_eq!(self.state.head(), self.frontier.size(), "every record verified was applied");
        self.chain.link_decoded(stored_seq, decoded)
    }

    fn accept(&mut self, leaf: TreeHash, record: &Record) {
        self.frontier.push(leaf, |_, _| {});
        self.head_hash = record.hash;
    }

    /// Applies a record [`VerifiedReplay::verify`] has just returned.
    pub fn apply(&mut self, record: &Record) {
        self.state.apply(position_of(record), &record.event);
    }

    /// Applies a record [`VerifiedReplay::verify`] has just returned, and says which
    /// permissions it gave or took away.
    pub fn apply_tracking_changes(&mut self, record: &Record) -> Vec<Change> {
        domain::apply_tracking_changes(&mut self.state, position_of(record), &record.event)
    }

    /// Verifies the next record ([`VerifiedReplay::verify`]) and applies it.
    pub fn push(&mut self, stored: &StoredRecord) -> Result<Record, ReplayError> {
        let record = self.verify(stored)?;
        self.apply(&record);
        Ok(record)
    }

    /// Verifies the next record, read ahead ([`VerifiedReplay::verify_prepared`]), and
    /// applies it.
    pub fn push_prepared(&mut self, stored_seq: u64, prepared: Prepared) -> Result<Record, ReplayError> {
        let record = self.verify_prepared(stored_seq, prepared)?;
        self.apply(&record);
        Ok(record)
    }

    /// Verifies the next record, read ahead, without the authority rules
    /// ([`VerifiedReplay::verify_prepared_trusting_authority`]), and applies it.
    pub fn push_prepared_trusting_authority(
        &mut self,
        stored_seq: u64,
        prepared: Prepared,
    ) -> Result<Record, ChainError> {
        let record = self.verify_prepared_trusting_authority(stored_seq, prepared)?;
        self.apply(&record);
        Ok(record)
    }

    /// Verifies the next record without the authority rules
    /// ([`VerifiedReplay::verify_trusting_authority`]) and applies it.
    pub fn push_trusting_authority(&mut self, stored: &StoredRecord) -> Result<Record, ChainError> {
        let record = self.verify_trusting_authority(stored)?;
        self.apply(&record);
        Ok(record)
    }

    /// How many records were accepted, from the first: the position reached.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The chain hash of the last record accepted.
    pub fn head_hash(&self) -> ChainHash {
        self.head_hash
    }

    /// The Merkle root of the records accepted, recomputed from their bytes.
    pub fn root(&self) -> TreeHash {
        self.frontier.root()
    }

    /// The state after the last record applied.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The state after the last record applied, for keeping.
    pub fn into_state(self) -> State {
        self.state
    }

    /// Checks that the tree stored beside the records has, at the size reached, the root
    /// recomputed from the records.
    pub fn check_stored_tree<N: Nodes>(&self, nodes: &N) -> Result<(), TreeCheckError<N::Error>> {
        let size = self.size();
        let stored = merkle::root(nodes, size).map_err(|error| TreeCheckError::of(size, error))?;
        let replayed = self.root();
        if stored != replayed {
            return Err(TreeCheckError::Tree(TreeError::Mismatch { size, stored, replayed }));
        }
        Ok(())
    }
}

impl Default for VerifiedReplay {
    fn default() -> Self {
        Self::new()
    }
}

fn position_of(record: &Record) -> Position {
    Position { seq: record.seq, at: record.at }
}

/// Work on batches of records done on a thread of its own, while the caller's thread
/// handles the batch before: reading, decoding and hashing records (what each record
/// needs alone) overlap the checks that must go in order and the applying of events.
///
/// Batches come back in the order they were submitted. The thread lives inside the
/// caller's [`std::thread::scope`] and ends when the `Ahead` is dropped.
pub(crate) struct Ahead<B, O> {
    to: Option<std::sync::mpsc::SyncSender<B>>,
    from: std::sync::mpsc::Receiver<O>,
    in_flight: usize,
}

impl<B: Send, O: Send> Ahead<B, O> {
    /// Starts the thread, which maps each batch submitted through `work`.
    pub(crate) fn spawn<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        work: impl Fn(B) -> O + Send + 'scope,
    ) -> Self
    where
        B: 'scope,
        O: 'scope,
    {
        // One batch queued behind the one at work: enough to keep the thread busy, and a
        // bound on the memory read ahead.
        let (to, inbox) = std::sync::mpsc::sync_channel::<B>(1);
        let (outbox, from) = std::sync::mpsc::channel::<O>();
        scope.spawn(move || {
            for batch in inbox {
                if outbox.send(work(batch)).is_err() {
                    return;
                }
            }
        });
        Ahead { to: Some(to), from, in_flight: 0 }
    }

    /// Hands a batch to the thread.
    pub(crate) fn submit(&mut self, batch: B) {
        let sent = self.to.as_ref().map(|to| to.send(batch));
        // The thread stops only when the receiving end is dropped, or when `work`
        // panicked, which the scope passes on when it ends.
        if let Some(Ok(())) = sent {
            self.in_flight += 1;
        }
    }

    /// The oldest batch submitted and not yet taken back, once the thread is done with
    /// it; `None` when none is in flight (or the thread panicked).
    pub(crate) fn next(&mut self) -> Option<O> {
        if self.in_flight == 0 {
            return None;
        }
        self.in_flight -= 1;
        self.from.recv().ok()
    }

    /// How many batches were submitted and not yet taken back.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }
}

impl<B, O> Drop for Ahead<B, O> {
    fn drop(&mut self) {
        // Closing the inbox ends the thread's loop.
        self.to.take();
    }
}
