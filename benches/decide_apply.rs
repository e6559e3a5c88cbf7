//! Deciding one admin command with `keyledger::domain::decide` and applying its events to
//! the state with `State::apply`, against a state of about 100,000 users with keys: the
//! work the ledger's writer does per command, without encoding and storage.
//!
//! - `decide_apply/create_user`: a new user with a fresh id.
//! - `decide_apply/generate_key`: a key rotation for an existing user (users in turn),
//!   with a one-day grace period for the replaced key.
//!
//! Making the commands (ids, key secrets) is not timed. Created users accumulate, so
//! between samples, once 50,000 users have been created, the state goes back to its first
//! 100,000 users, untimed: `create_user` runs against 100,000 to about 200,000 users.
//!
//! Run with `cargo bench --bench decide_apply`.

mod common;

use std::cell::OnceCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keyledger::domain::{Actor, Command, Context, KeyId, KeySecret, Name, Position, RoleId, State, UserId, decide};
use rand::rngs::StdRng;

const USERS: usize = 100_000;
/// Commands made ahead of each timed stretch.
const CHUNK: u64 = 1_000;
/// Users created after which the state is put back to its first `USERS` users.
const RESET_AFTER: u64 = 50_000;

/// A bootstrapped ledger (its administrator decides the benchmark's commands) and `users`
/// API users with keys.
fn state_with_users(users: usize) -> State {
    let mut state = State::default();
    let mut rng = common::rng(0);
    let bootstrap = Command::Bootstrap {
        user_id: UserId::generate(&mut rng),
        role_id: RoleId::generate(&mut rng),
        key_id: KeyId::generate(&mut rng),
        key_hash: KeySecret::generate(&mut rng).hash(),
    };
    let system = Context { actor: Actor::System, now: common::at(1), expected_version: None, credential: None };
    decide_and_apply(&mut state, &system, bootstrap);
    let mut seq = state.head();
    common::population(users, 0, |event| {
        seq += 1;
        state.apply(Position { seq, at: common::at(seq) }, &event);
    });
    state
}

/// Decides a command and applies its events, as the ledger's writer does.
fn decide_and_apply(state: &mut State, context: &Context, command: Command) {
    let events = decide(state, context, command).expect("the benchmark's commands are allowed");
    for event in &events {
        let position = Position { seq: state.head() + 1, at: context.now };
        state.apply(position, event);
    }
}

/// When a benchmark puts its state back to the base state.
#[derive(Debug, Clone, Copy)]
enum Reset {
    /// Never: the commands keep the state at its size.
    Never,
    /// Before the next sample, once this many commands have been applied since the last reset.
    After(u64),
}

/// The state commands are applied to, carried across criterion's samples.
struct Workbench<'a> {
    base: &'a State,
    state: State,
    reset: Reset,
    since_reset: u64,
    context: Context,
    rng: StdRng,
}

impl<'a> Workbench<'a> {
    fn new(base: &'a State, reset: Reset) -> Self {
        let rng = common::rng(1);
        // The bootstrap's administrator, the first user.
        let admin = base.users_after(0).next().expect("the administrator").id().clone();
        let actor = Actor::User(admin);
        let context = Context { actor, now: common::now(), expected_version: None, credential: None };
        Workbench { base, state: base.clone(), reset, since_reset: 0, context, rng }
    }

    /// Puts the state back to the base state if it is due. This is called between samples,
    /// outside the routine criterion times: cloning a state of 100,000 users takes as long
    /// as tens of thousands of commands, and criterion sizes its samples by wall time.
    fn reset_if_due(&mut self) {
        if let Reset::After(commands) = self.reset
            && self.since_reset >= commands
        {
            self.state = self.base.clone();
            self.since_reset = 0;
        }
    }

    /// Times `iterations` commands made by `make`, in chunks made before they are timed.
    fn time(&mut self, iterations: u64, make: &mut impl FnMut(&mut StdRng) -> Command) -> Duration {
        let mut elapsed = Duration::ZERO;
        let mut done = 0;
        while done < iterations {
            let count = CHUNK.min(iterations - done);
            let commands: Vec<Command> = (0..count).map(|_| make(&mut self.rng)).collect();
            let start = Instant::now();
            for command in commands {
                decide_and_apply(&mut self.state, &self.context, black_box(command));
            }
            elapsed += start.elapsed();
            done += count;
        }
        self.since_reset += iterations;
        elapsed
    }
}

fn decide_apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide_apply");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    // Built when the first benchmark that needs it runs; each benchmark works on its own copy.
    let base = OnceCell::new();

    let mut workbench = None;
    let mut index = 0_u64;
    let mut make = |rng: &mut StdRng| {
        index += 1;
        Command::CreateUser {
            user_id: UserId::generate(rng),
            name: Name::parse(&format!("Benchmark user {index}")).expect("the name is valid"),
            email: None,
        }
    };
    group.bench_function("create_user", |b| {
        let workbench = workbench.get_or_insert_with(|| {
            Workbench::new(base.get_or_init(|| state_with_users(USERS)), Reset::After(RESET_AFTER))
        });
        workbench.reset_if_due();
        b.iter_custom(|iterations| workbench.time(iterations, &mut make));
    });
    drop(workbench);

    let mut workbench = None;
    let mut users = Vec::new();
    let mut next = 0;
    let mut make = |rng: &mut StdRng, users: &[UserId]| {
        let user_id = users[next].clone();
        next = (next + 1) % users.len();
        Command::GenerateKey {
            user_id,
            key_id: KeyId::generate(rng),
            key_hash: KeySecret::generate(rng).hash(),
            expires_at: None,
            grace_seconds: Some(24 * 60 * 60),
        }
    };
    group.bench_function("generate_key", |b| {
        let workbench = workbench.get_or_insert_with(|| {
            let base: &State = base.get_or_init(|| state_with_users(USERS));
            users = base.users_after(0).map(|user| user.id().clone()).collect();
            // A rotation replaces a key, so the state keeps its size.
            Workbench::new(base, Reset::Never)
        });
        b.iter_custom(|iterations| workbench.time(iterations, &mut |rng| make(rng, &users)));
    });
    group.finish();
}

criterion_group!(benches, decide_apply);
criterion_main!(benches);
