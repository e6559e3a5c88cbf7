//! What the benchmark binaries share: a population of API users, produced as the events
//! that create it, so that each benchmark can apply them to a `State` or encode them as
//! records.
//!
//! Every benchmark binary compiles this module and uses only part of it.
#![allow(dead_code)]

use keyledger::domain::{Event, EventId, FunctionId, GroupId, KeyId, KeySecret, RoleId, Timestamp, UserId};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The platform event every check names. It sits in a group nested inside the group the
/// users are granted, so a granted check reaches it through nesting.
pub const EVENT: &str = "conf-2027.emea";

/// The function every check names: one of the functions active on the users' role.
pub const FUNCTION: &str = "api.attendees.read";

/// The functions active on the population's one API role.
const ROLE_FUNCTIONS: [&str; 4] = [FUNCTION, "api.events.read", "api.sessions.read", "api.people.read"];

/// How many events come before the first user: the role, its functions, two groups and
/// the event in the inner group.
pub const SETUP_EVENTS: usize = 1 + ROLE_FUNCTIONS.len() + 3;

/// How many events create one user: the user, the role assignment, the event access and
/// the key.
pub const EVENTS_PER_USER: usize = 4;

const BASE_MILLIS: i64 = 1_800_000_000_000;

/// The time of the event at log position `seq`: one millisecond apart.
pub fn at(seq: u64) -> Timestamp {
    Timestamp::from_unix_millis(BASE_MILLIS + i64::try_from(seq).expect("a benchmark log fits in an i64"))
}

/// The time checks and commands are decided at: after every event of any population.
pub fn now() -> Timestamp {
    at(u64::from(u32::MAX))
}

/// A seeded generator, so that every run benchmarks the same population.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Produces the events that create one API role holding [`ROLE_FUNCTIONS`], a group
/// holding a nested group that holds [`EVENT`], and `users` users, each holding the role
/// (alone, as an API role must be held), granted the outer group, and with one key.
///
/// Returns the secrets of up to `secrets_to_keep` of the users' keys, spread evenly over
/// the population, for checks to present. One role serves every user, so that building a
/// million users takes seconds.
pub fn population(users: usize, secrets_to_keep: usize, mut sink: impl FnMut(Event)) -> Vec<KeySecret> {
    let mut rng = rng(users as u64);
    let role_id = RoleId::generate(&mut rng);
    let outer_group = GroupId::generate(&mut rng);
    let inner_group = GroupId::generate(&mut rng);

    sink(Event::RoleCreated { role_id: role_id.clone(), description: "API access".to_owned() });
    for function in ROLE_FUNCTIONS {
        let function = FunctionId::parse(function).expect("the function is in the catalogue");
        sink(Event::FunctionActivated { role_id: role_id.clone(), function });
    }
    sink(Event::EventGroupCreated { group_id: outer_group.clone(), name: "EMEA".to_owned(), parent_id: None });
    sink(Event::EventGroupCreated {
        group_id: inner_group.clone(),
        name: "Conferences 2027".to_owned(),
        parent_id: Some(outer_group.clone()),
    });
    sink(Event::EventAddedToGroup {
        group_id: inner_group,
        event_id: EventId::parse(EVENT).expect("the event id is well formed"),
    });

    let keep_every = if secrets_to_keep == 0 { usize::MAX } else { users.div_ceil(secrets_to_keep).max(1) };
    let mut kept = Vec::with_capacity(secrets_to_keep.min(users));
    for index in 0..users {
        let user_id = UserId::generate(&mut rng);
        let secret = KeySecret::generate(&mut rng);
        sink(Event::UserCreated { user_id: user_id.clone(), name: format!("API user {index}"), email: None });
        sink(Event::RoleAssigned { user_id: user_id.clone(), role_id: role_id.clone() });
        sink(Event::EventAccessSet { user_id: user_id.clone(), all_events: false, groups: vec![outer_group.clone()] });
        sink(Event::KeyGenerated {
            user_id,
            key_id: KeyId::generate(&mut rng),
            key_hash: secret.hash(),
            expires_at: None,
            replaced_key_id: None,
            replaced_key_valid_until: None,
        });
        if index % keep_every == 0 {
            kept.push(secret);
        }
    }
    kept
}
