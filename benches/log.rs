//! Reading the log back: a million records, encoded once, chained, with `record::encode`.
//! The records create about 250,000 users, each with the one API role, event access
//! through a group, and a key (four records per user).
//!
//! - `replay/1M_events`: `Ledger::open` over a `MemoryLog` holding the records: read in
//!   chunks, decode, verify the chain and apply every event to the state, then start the
//!   writer. Filling the log before each run and dropping the ledger after it are not
//!   timed.
//! - `replay/1M_events_on_all_cores`: what `Ledger::open` does, driven by hand through
//!   `VerifiedReplay` over chunks of 4096 records: each chunk decoded and hashed ahead on
//!   every core (`Prepared::chunk`), then linked and applied in turn on one.
//! - `verify_chain/1M_records`: `ChainVerifier::verify_next` over the records: parse what
//!   the chain needs, recompute each hash and check the links, sequence and unique ids, on
//!   one thread.
//! - `verify_chain/1M_records_and_leaves`: the same plus every record's Merkle leaf into
//!   the tree's frontier: what `verify-log` checks of the bytes, before decoding events.
//! - `verify_chain/1M_records_on_all_cores`: `ChainVerifier::verify_chunk` over chunks of
//!   4096 records, parsing and hashing on every core.
//!
//! - `merkle/append_1M_leaves`: hash every record as a Merkle leaf and grow the tree from
//!   its frontier, collecting every complete subtree it creates, as each append does.
//! - `merkle/inclusion_proof_1M`: an audit path in the tree of a million records, from
//!   its stored complete subtrees (held in a hash map here, in fjall in the service).
//! - `fingerprint/250k_users`: the view's fingerprint, which every checkpoint signs, at
//!   the state the million records build, from scratch; `250k_users_cached`: the same
//!   from a cache that saw this very state (nothing changed since).
//! - `fingerprint_incremental/250k_users_one_change`: one user disabled or enabled, then
//!   the cached fingerprint, as a checkpoint right after that write computes it;
//!   `250k_users_one_new_role`: the same after a new role, which moves every user's digest
//!   in the hashed message (see `domain::fingerprint`).
//! - `verify_bundle/1M_records`: `bundle::verify` of an export of the million records
//!   with a checkpoint at the end: chain, Merkle tree, replay, authority rules,
//!   fingerprint, signature. Its records are made by the system, which the authority
//!   rules allow in a log without an administrator.
//!
//! All report records (or users) per second, proofs per second for the proof. Run with
//! `cargo bench --bench log`, or one of them with `cargo bench --bench log -- replay`.

mod common;

use std::cell::OnceCell;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use keyledger::bundle::{self, VerifyOptions};
use keyledger::checkpoint::Signer;
use keyledger::domain::{Actor, Event, FingerprintCache, Position, RoleId, State, Timestamp, UserId};
use keyledger::ledger::Ledger;
use keyledger::ledger::VerifiedReplay;
use keyledger::ledger::replay::Prepared;
use keyledger::log::record::{self, Envelope};
use keyledger::log::{ChainHash, ChainVerifier, EventLog, MemoryLog, StoredRecord};
use keyledger::merkle::{self, Frontier, NodeId, TreeHash};

const RECORDS: usize = 1_000_000;

/// How many records the chunked benchmarks hand over at once, as the ledger reads them.
const CHUNK: usize = 4096;

/// The chained records of a log that creates `(RECORDS - SETUP_EVENTS) / 4` users, all
/// made by one user that is not in the log.
fn encoded_log() -> Vec<StoredRecord> {
    encoded_log_by(Actor::User(UserId::generate(&mut common::rng(0))))
}

/// The same log made by `actor`.
fn encoded_log_by(actor: Actor) -> Vec<StoredRecord> {
    let users = (RECORDS - common::SETUP_EVENTS) / common::EVENTS_PER_USER;
    let mut records = Vec::with_capacity(RECORDS);
    let mut prev_hash = ChainHash::GENESIS;
    common::population(users, 0, |event| {
        let seq = records.len() as u64 + 1;
        let envelope = Envelope { seq, at: common::at(seq), actor: actor.clone(), justification: None };
        let (stored, hash) = record::encode(&envelope, &event, prev_hash);
        prev_hash = hash;
        records.push(stored);
    });
    records
}

/// A copy of `view` with its fingerprint cached, and a step that applies one more event
/// (made from its position) and takes the cached fingerprint.
fn changing(view: &State, mut new_event: impl FnMut(u64) -> Event) -> impl FnMut() -> [u8; 32] {
    let mut view = view.clone();
    let mut cache = FingerprintCache::default();
    view.fingerprint_cached(&mut cache);
    move || {
        let seq = view.head() + 1;
        view.apply(Position { seq, at: common::at(seq) }, &new_event(seq));
        view.fingerprint_cached(&mut cache)
    }
}

fn memory_log(records: &[StoredRecord]) -> MemoryLog {
    let log = MemoryLog::new();
    log.append(0, records).expect("the records continue an empty log");
    log
}

/// Settings for benchmarks whose one iteration takes about a second: one warm-up run,
/// then ten timed runs (more if they are faster than expected).
fn configure_long(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, elements: usize) {
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(elements as u64));
}

fn log(c: &mut Criterion) {
    // Encoded when the first benchmark that needs them runs.
    let records = OnceCell::new();

    let mut group = c.benchmark_group("replay");
    configure_long(&mut group, RECORDS);
    group.bench_function("1M_events", |b| {
        let records: &Vec<StoredRecord> = records.get_or_init(encoded_log);
        b.iter_batched(
            || memory_log(records),
            |log| {
                let ledger = Ledger::open(log).expect("the log verifies");
                assert_eq!(ledger.view().head(), records.len() as u64);
                ledger
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("1M_events_on_all_cores", |b| {
        let records: &Vec<StoredRecord> = records.get_or_init(encoded_log);
        b.iter_batched(
            VerifiedReplay::new,
            |mut replay| {
                for chunk in records.chunks(CHUNK) {
                    for (stored, prepared) in chunk.iter().zip(Prepared::chunk(black_box(chunk))) {
                        replay.push_prepared_trusting_authority(stored.seq, prepared).expect("the log verifies");
                    }
                }
                assert_eq!(replay.size(), records.len() as u64);
                replay
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();

    let mut group = c.benchmark_group("verify_chain");
    configure_long(&mut group, RECORDS);
    group.bench_function("1M_records", |b| {
        let records: &Vec<StoredRecord> = records.get_or_init(encoded_log);
        b.iter_batched(
            ChainVerifier::default,
            |mut verifier| {
                for stored in records {
                    verifier.verify_next(black_box(stored)).expect("the chain is intact");
                }
                assert_eq!(verifier.size(), records.len() as u64);
                verifier
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("1M_records_and_leaves", |b| {
        let records: &Vec<StoredRecord> = records.get_or_init(encoded_log);
        b.iter_batched(
            || (ChainVerifier::default(), Frontier::default()),
            |(mut verifier, mut frontier)| {
                for stored in records {
                    verifier.verify_next(black_box(stored)).expect("the chain is intact");
                    frontier.push(merkle::leaf_hash(&stored.bytes), |_, _| {});
                }
                assert_eq!(verifier.size(), records.len() as u64);
                (verifier, frontier.root())
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("1M_records_on_all_cores", |b| {
        let records: &Vec<StoredRecord> = records.get_or_init(encoded_log);
        b.iter_batched(
            ChainVerifier::default,
            |mut verifier| {
                for chunk in records.chunks(CHUNK) {
                    verifier.verify_chunk(black_box(chunk)).expect("the chain is intact");
                }
                assert_eq!(verifier.size(), records.len() as u64);
                verifier
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();

    let mut group = c.benchmark_group("merkle");
    configure_long(&mut group, RECORDS);
    group.bench_function("append_1M_leaves", |b| {
        let records: &Vec<StoredRecord> = records.get_or_init(encoded_log);
        b.iter(|| {
            let mut frontier = Frontier::default();
            let mut created = Vec::with_capacity(2 * RECORDS);
            for stored in records {
                frontier.push(merkle::leaf_hash(black_box(&stored.bytes)), |id, hash| created.push((id, hash)));
            }
            (frontier.root(), created.len())
        });
    });
    let nodes: std::collections::HashMap<NodeId, TreeHash> = {
        let records: &Vec<StoredRecord> = records.get_or_init(encoded_log);
        let mut nodes = std::collections::HashMap::with_capacity(2 * RECORDS);
        let mut frontier = Frontier::default();
        for stored in records {
            frontier.push(merkle::leaf_hash(&stored.bytes), |id, hash| {
                nodes.insert(id, hash);
            });
        }
        nodes
    };
    group.throughput(Throughput::Elements(1)).sample_size(100).measurement_time(Duration::from_secs(5));
    let mut leaf = 0u64;
    group.bench_function("inclusion_proof_1M", |b| {
        b.iter(|| {
            leaf = (leaf + 7_919) % RECORDS as u64;
            merkle::inclusion_proof(&nodes, black_box(leaf), RECORDS as u64).expect("the leaf is in the tree")
        });
    });
    group.finish();
    drop(nodes);

    let state = OnceCell::new();
    let mut group = c.benchmark_group("fingerprint");
    configure_long(&mut group, (RECORDS - common::SETUP_EVENTS) / common::EVENTS_PER_USER);
    group.bench_function("250k_users", |b| {
        let records: &Vec<StoredRecord> = records.get_or_init(encoded_log);
        let ledger = state.get_or_init(|| Ledger::open(memory_log(records)).expect("the log verifies"));
        let view = ledger.view();
        b.iter(|| view.fingerprint());
    });
    group.bench_function("250k_users_cached", |b| {
        let records: &Vec<StoredRecord> = records.get_or_init(encoded_log);
        let ledger = state.get_or_init(|| Ledger::open(memory_log(records)).expect("the log verifies"));
        let view = ledger.view();
        let mut cache = FingerprintCache::default();
        view.fingerprint_cached(&mut cache);
        b.iter(|| view.fingerprint_cached(&mut cache));
    });
    group.finish();

    let mut group = c.benchmark_group("fingerprint_incremental");
    group.throughput(Throughput::Elements(1)).sample_size(50).measurement_time(Duration::from_secs(5));
    group.bench_function("250k_users_one_change", |b| {
        let records: &Vec<StoredRecord> = records.get_or_init(encoded_log);
        let ledger = state.get_or_init(|| Ledger::open(memory_log(records)).expect("the log verifies"));
        let user_id = ledger.view().users_after(0).nth(1_000).expect("users").id().clone();
        b.iter(changing(&ledger.view(), |seq| match seq % 2 {
            0 => Event::UserDisabled { user_id: user_id.clone() },
            _ => Event::UserEnabled { user_id: user_id.clone() },
        }));
    });
    group.bench_function("250k_users_one_new_role", |b| {
        let records: &Vec<StoredRecord> = records.get_or_init(encoded_log);
        let ledger = state.get_or_init(|| Ledger::open(memory_log(records)).expect("the log verifies"));
        b.iter(changing(&ledger.view(), |seq| Event::RoleCreated {
            role_id: RoleId::parse(&format!("role_{seq:016x}")).expect("a role id"),
            description: format!("Role {seq}"),
        }));
    });
    group.finish();

    let mut group = c.benchmark_group("verify_bundle");
    configure_long(&mut group, RECORDS);
    group.bench_function("1M_records", |b| {
        // Bundle verification checks the authority rules, which refuse changes by a user
        // that is not in the log; the system may make them all while the log holds no
        // administrator.
        let records = encoded_log_by(Actor::System);
        let ledger = Ledger::open(memory_log(&records)).expect("the log verifies");
        drop(records);
        let signer = Signer::generate();
        let root = merkle::root(&keyledger::log::Tree(ledger.log()), RECORDS as u64).expect("the tree is whole");
        let view = TreeHash::from_bytes(ledger.view().fingerprint());
        let last = signer.sign(RECORDS as u64, root, Timestamp::now(), view);
        let mut bytes = Vec::new();
        bundle::export(ledger.log(), &signer.public_key(), &[], &last, &mut bytes).expect("the export is written");
        let options = VerifyOptions { public_key: Some(signer.public_key()), trusted: None };
        b.iter(|| {
            let summary = bundle::verify(black_box(bytes.as_slice()), &options).expect("the bundle verifies");
            assert_eq!(summary.records, RECORDS as u64);
        });
    });
    group.finish();
}

criterion_group!(benches, log);
criterion_main!(benches);
