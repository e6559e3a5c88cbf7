//! The in-process key check, `keyledger::domain::check`: parse the key, verify its
//! checksum, hash it, look up the key and its user, and decide (role functions, then
//! event access through a nested group).
//!
//! Every benchmark checks against the `CheckIndex`, which is what the service checks
//! against; `check/granted_in_state/1M` is the same check against the `State` (which tests,
//! history and the command line check against), for comparison.
//!
//! - `check/granted/{1k,100k,1M}`: a granted check against an index of that many users,
//!   each with the one API role and a key. The checks present up to 65,536 distinct keys
//!   in rotation, so at 1M users the lookups touch more memory than the caches hold, as
//!   traffic from many apps would; a single hot key would be faster.
//! - `check/granted_one_key/1M`: the same check presenting one key over and over, so its
//!   entries stay in the cache. The gap to `check/granted/1M` is the cost of cache misses.
//! - `check/granted_in_state/1M`: `check/granted/1M` against the `State` the index was
//!   copied from.
//! - `check/malformed`: a key whose checksum is wrong (the costliest way to be malformed:
//!   shape and checksum are computed, nothing is hashed or looked up), at 1M users.
//! - `check/unknown_key`: a well-formed key that was never issued, at 1M users.
//! - `check/one_random_line/1M`: no check, only one read of a 64-byte line of a table as
//!   big as the 1M-key index's, at 65,536 places in rotation: what one cache miss costs on
//!   this machine, the floor under `check/granted/1M` beside `check/granted_one_key/1M`.
//!
//! Run with `cargo bench --bench check`, or a subset with `cargo bench --bench check -- granted`.
//! A state is built only when a benchmark that needs it runs.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keyledger::domain::{CheckIndex, CheckRequest, CheckView, KeySecret, Position, Reason, State, check};

/// The most distinct keys the granted checks present in rotation.
const PRESENTED_KEYS: usize = 65_536;

/// A state holding `users` users with keys, its check index, and the secrets of some of
/// those keys.
struct Population {
    state: State,
    index: CheckIndex,
    secrets: Vec<KeySecret>,
}

impl Population {
    fn build(users: usize) -> Self {
        let started = Instant::now();
        let mut state = State::default();
        let mut seq = 0;
        let secrets = common::population(users, PRESENTED_KEYS, |event| {
            seq += 1;
            state.apply(Position { seq, at: common::at(seq) }, &event);
        });
        let built = started.elapsed();
        let index = CheckIndex::of(&state);
        let indexed = started.elapsed() - built;
        let population = Population { state, index, secrets };
        for secret in &population.secrets {
            assert_eq!(population.check(secret.expose()), Reason::Granted, "every kept key passes the check");
            let in_state = check(&population.state, request(secret.expose()), common::now()).reason;
            assert_eq!(in_state, Reason::Granted, "and passes it in the state");
        }
        eprintln!("built a state of {users} users with keys in {built:.1?}, its check index in {indexed:.1?}");
        population
    }

    fn check(&self, key: &str) -> Reason {
        check(&self.index, request(key), common::now()).reason
    }
}

fn request(key: &str) -> CheckRequest<'_> {
    CheckRequest { key, function: common::FUNCTION, event_id: Some(common::EVENT) }
}

/// Times granted checks against `view`, presenting the kept keys in turn.
fn bench_granted(bencher: &mut criterion::Bencher<'_>, population: &Population, view: &impl CheckView) {
    let now = common::now();
    // The presented keys side by side in one buffer, as a server reads them from request
    // buffers that the socket has just filled: the key's own bytes are not a cache miss,
    // whereas the secrets' strings were allocated among a million users' entities.
    let presented: String = population.secrets.iter().map(KeySecret::expose).collect();
    let mut keys: Vec<&str> = Vec::with_capacity(population.secrets.len());
    let mut rest = presented.as_str();
    for secret in &population.secrets {
        let (key, after) = rest.split_at(secret.expose().len());
        keys.push(key);
        rest = after;
    }
    let mut next = 0;
    bencher.iter(|| {
        let key = keys[next];
        next = if next + 1 == keys.len() { 0 } else { next + 1 };
        check(view, black_box(request(key)), now)
    });
}

/// Times checks that all present the same `key`, which must be answered with `reason`.
fn bench_answered(bencher: &mut criterion::Bencher<'_>, population: &Population, key: &str, reason: Reason) {
    assert_eq!(population.check(key), reason);
    let now = common::now();
    bencher.iter(|| check(&population.index, black_box(request(key)), now));
}

/// A key with a valid shape whose last checksum character is wrong.
fn with_wrong_checksum(key: &str) -> String {
    let (body, last) = key.split_at(key.len() - 1);
    let replacement = if last == "0" { '1' } else { '0' };
    format!("{body}{replacement}")
}

fn checks(c: &mut Criterion) {
    let mut group = c.benchmark_group("check");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));

    for (label, users) in [("1k", 1_000), ("100k", 100_000)] {
        let mut population = None;
        group.bench_function(BenchmarkId::new("granted", label), |b| {
            let population = population.get_or_insert_with(|| Population::build(users));
            bench_granted(b, population, &population.index);
        });
    }

    // The benchmarks at a million users share one state.
    let mut million = None;
    group.bench_function(BenchmarkId::new("granted", "1M"), |b| {
        let population = million.get_or_insert_with(|| Population::build(1_000_000));
        bench_granted(b, population, &population.index);
    });
    group.bench_function(BenchmarkId::new("granted_in_state", "1M"), |b| {
        let population = million.get_or_insert_with(|| Population::build(1_000_000));
        bench_granted(b, population, &population.state);
    });
    group.bench_function(BenchmarkId::new("granted_one_key", "1M"), |b| {
        let population = million.get_or_insert_with(|| Population::build(1_000_000));
        let key = population.secrets[0].expose();
        bench_answered(b, population, key, Reason::Granted);
    });
    group.bench_function(BenchmarkId::new("one_random_line", "1M"), |b| {
        // As many lines as the index's slots at 1M keys (a load of 0.75), each written so
        // that it is backed by memory of its own rather than the kernel's zero page. The
        // places form one cycle and each read names the next, so reads cannot overlap: a
        // check's reads do not either, its hashing alone outlasts what the core runs ahead.
        let mut lines: Vec<[u64; 8]> = (0..1_333_334u64).map(|n| [n; 8]).collect();
        let places: Vec<usize> = (0..PRESENTED_KEYS as u64)
            .map(|n| (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as usize % lines.len())
            .collect();
        for (at, then) in places.iter().zip(places.iter().cycle().skip(1)) {
            lines[*at][0] = *then as u64;
        }
        let mut cursor = places[0];
        b.iter(|| {
            cursor = black_box(lines[cursor][0]) as usize;
        });
    });
    group.bench_function("malformed", |b| {
        let population = million.get_or_insert_with(|| Population::build(1_000_000));
        let key = with_wrong_checksum(population.secrets[0].expose());
        bench_answered(b, population, &key, Reason::MalformedKey);
    });
    group.bench_function("unknown_key", |b| {
        let population = million.get_or_insert_with(|| Population::build(1_000_000));
        let never_issued = KeySecret::generate(&mut common::rng(u64::MAX));
        bench_answered(b, population, never_issued.expose(), Reason::UnknownKey);
    });
    group.finish();
}

criterion_group!(benches, checks);
criterion_main!(benches);
