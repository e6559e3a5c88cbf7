//! Group commit seen from outside: concurrent admin requests are each applied once, in
//! one serial order, with no lost update and no rule broken by a race.

use std::collections::HashSet;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use crate::helpers::{Reply, spawn_app};

const THREADS: usize = 16;
const USERS_PER_THREAD: usize = 20;
/// How many fresh users each race is run on.
const RACES: usize = 30;

/// The `Keyledger-Position` of an acknowledged write.
fn position_of(reply: &Reply) -> u64 {
    reply
        .header("keyledger-position")
        .unwrap_or_else(|| panic!("no position: {} {}", reply.status, reply.body))
        .parse()
        .expect("a number")
}

/// Runs `first` and `second` on two threads released at the same moment.
fn race<A: Send, B: Send>(first: impl FnOnce() -> A + Send, second: impl FnOnce() -> B + Send) -> (A, B) {
    let start = Barrier::new(2);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| {
            start.wait();
            first()
        });
        let second = scope.spawn(|| {
            start.wait();
            second()
        });
        (first.join().expect("first thread"), second.join().expect("second thread"))
    })
}

#[test]
fn concurrent_user_creations_are_each_committed_once_at_a_distinct_position() {
    let app = spawn_app();
    let bootstrap_size = app.verified_audit_size();

    let created: Vec<(String, String, u64)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let app = &app;
                scope.spawn(move || {
                    (0..USERS_PER_THREAD)
                        .map(|index| {
                            let name = format!("User {thread}-{index}");
                            let reply = app.post("/v1/users", &json!({ "name": name }));
                            reply.expect(201);
                            let id = reply.json()["id"].as_str().expect("id").to_owned();
                            (id, name, position_of(&reply))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads.into_iter().flat_map(|thread| thread.join().expect("writer thread")).collect()
    });

    let total = (THREADS * USERS_PER_THREAD) as u64;
    assert_eq!(created.len() as u64, total);
    let positions: HashSet<u64> = created.iter().map(|(_, _, position)| *position).collect();
    assert_eq!(positions.len() as u64, total, "every write has its own position");
    assert_eq!(positions, (bootstrap_size + 1..=bootstrap_size + total).collect(), "positions are gapless");
    assert_eq!(app.verified_audit_size(), bootstrap_size + total);

    let listed = app.list_all("/v1/users");
    let mut listed_ids = HashSet::new();
    for user in &listed {
        assert!(listed_ids.insert(user["id"].as_str().expect("id").to_owned()), "{user} is listed twice");
    }
    assert_eq!(listed.len() as u64, total + 1, "the created users and the Administrator");
    for (id, name, position) in &created {
        let user = listed.iter().find(|user| user["id"] == id.as_str()).unwrap_or_else(|| panic!("{id} is not listed"));
        assert_eq!(user["name"], name.as_str());
        assert_eq!(user["version"], *position, "the user was last changed where it was created");
    }
}

#[test]
fn racing_assignments_of_an_api_role_and_another_role_never_leave_the_api_role_beside_another() {
    let app = spawn_app();
    let api_role = app.create_role("API Access");
    app.activate(&api_role, &["api.attendees.read"]);
    let other_role = app.create_role("Auditors");
    app.activate(&other_role, &["security.audit.read"]);

    let mut api_winners = Vec::new();
    for index in 0..RACES {
        let user = app.create_user(&format!("Contested {index}"));
        let (api, other) = race(
            || app.put(&format!("/v1/users/{user}/roles/{api_role}"), None),
            || app.put(&format!("/v1/users/{user}/roles/{other_role}"), None),
        );
        let roles = app.get(&format!("/v1/users/{user}")).json()["roles"].clone();
        match (api.status, other.status) {
            (200, 409) => {
                api.expect(200);
                other.expect_problem(409, "standalone_api_role");
                assert_eq!(roles, json!([api_role]), "race {index}");
                api_winners.push(user);
            }
            (409, 200) => {
                api.expect_problem(409, "standalone_api_role");
                assert_eq!(roles, json!([other_role]), "race {index}");
            }
            _ => panic!(
                "race {index}: exactly one assignment succeeds, got {} {} and {} {}",
                api.status, api.body, other.status, other.body
            ),
        }
    }
    // The role's holders agree with the users' roles.
    let holders: HashSet<String> = app.get(&format!("/v1/roles/{api_role}")).json()["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|user| user.as_str().expect("id").to_owned())
        .collect();
    assert_eq!(holders, api_winners.into_iter().collect());
    app.verified_audit_size();
}

#[test]
fn racing_creations_of_roles_with_the_same_description_create_exactly_one() {
    let app = spawn_app();
    for index in 0..RACES {
        let description = format!("Contested role {index}");
        let (first, second) = race(
            || app.post("/v1/roles", &json!({ "description": description })),
            || app.post("/v1/roles", &json!({ "description": description.to_uppercase() })),
        );
        let (winner, loser) = match (first.status, second.status) {
            (201, 409) => (first, second),
            (409, 201) => (second, first),
            _ => panic!(
                "race {index}: exactly one creation succeeds, got {} {} and {} {}",
                first.status, first.body, second.status, second.body
            ),
        };
        loser.expect_problem(409, "duplicate_description");
        let roles: Vec<Value> = app.get("/v1/roles?limit=1000").json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|role| role["description"].as_str().is_some_and(|d| d.eq_ignore_ascii_case(&description)))
            .cloned()
            .collect();
        assert_eq!(roles.len(), 1, "race {index}: {roles:?}");
        assert_eq!(roles[0]["id"], winner.json()["id"]);
    }
    app.verified_audit_size();
}

#[test]
fn racing_activation_of_an_api_function_and_assignment_of_a_second_role_keeps_api_roles_standalone() {
    let app = spawn_app();
    let other_role = app.create_role("Auditors");
    app.activate(&other_role, &["security.audit.read"]);

    for index in 0..RACES {
        // A role that is not an API role yet, held by a fresh user.
        let becoming_api = app.create_role(&format!("Future API role {index}"));
        let user = app.create_user(&format!("Contested {index}"));
        app.assign(&user, &becoming_api);
        let (activation, assignment) = race(
            || {
                app.post(
                    &format!("/v1/roles/{becoming_api}/functions/activate"),
                    &json!({ "functions": ["api.events.read"] }),
                )
            },
            || app.put(&format!("/v1/users/{user}/roles/{other_role}"), None),
        );
        let roles = app.get(&format!("/v1/users/{user}")).json()["roles"].as_array().expect("roles").len();
        let is_api_role = app.get(&format!("/v1/roles/{becoming_api}")).json()["api_role"] == true;
        match (activation.status, assignment.status) {
            (200, 409) => assert!(is_api_role && roles == 1, "race {index}"),
            (409, 200) => assert!(!is_api_role && roles == 2, "race {index}"),
            _ => panic!(
                "race {index}: exactly one change succeeds, got {} {} and {} {}",
                activation.status, activation.body, assignment.status, assignment.body
            ),
        }
    }
    app.verified_audit_size();
}

#[test]
fn a_revocation_racing_a_rotation_leaves_the_state_of_one_serial_order() {
    let app = spawn_app();
    let role = app.create_role("API Access");
    app.activate(&role, &["api.events.read"]);

    for index in 0..RACES {
        let user = app.create_user(&format!("Rotating app {index}"));
        app.assign(&user, &role);
        let old_key = app.generate_key(&user, &json!({}));
        let (rotation, revocation) = race(
            || app.post(&format!("/v1/users/{user}/key"), &json!({ "grace_seconds": 3600 })),
            || app.delete(&format!("/v1/users/{user}/key")),
        );
        // Whatever the order, both commands are valid: there is always a key to revoke.
        rotation.expect(201);
        revocation.expect(200);
        let rotated = rotation.json();
        let new_key = rotated["key"].as_str().expect("key");
        let rotated_first = position_of(&rotation) < position_of(&revocation);
        let user_view = app.get(&format!("/v1/users/{user}")).json();
        let old_answer = app.check_reason(&old_key, "api.events.read", None);
        let new_answer = app.check_reason(new_key, "api.events.read", None);
        if rotated_first {
            // The rotation put the old key in grace, then the revocation revoked both.
            assert!(rotated["replaced_key_id"].is_string(), "race {index}: {rotated}");
            assert_eq!(position_of(&revocation), position_of(&rotation) + 2, "race {index}: two keys revoked");
            assert_eq!(user_view["key"], Value::Null, "race {index}: {user_view}");
            assert_eq!(user_view["previous_key"], Value::Null, "race {index}: {user_view}");
            assert_eq!((old_answer.as_str(), new_answer.as_str()), ("revoked_key", "revoked_key"), "race {index}");
        } else {
            // The revocation revoked the old key, then the rotation gave a fresh one.
            assert_eq!(rotated["replaced_key_id"], Value::Null, "race {index}: {rotated}");
            assert_eq!(user_view["key"]["key_id"], rotated["key_id"], "race {index}: {user_view}");
            assert_eq!(user_view["key"]["state"], "active", "race {index}: {user_view}");
            assert_eq!(user_view["previous_key"], Value::Null, "race {index}: {user_view}");
            assert_eq!((old_answer.as_str(), new_answer.as_str()), ("revoked_key", "granted"), "race {index}");
        }
        // Never a revoked key shown as the active one.
        if user_view["key"]["state"] == "active" {
            assert_eq!(new_answer, "granted", "race {index}: {user_view}");
        }
    }
    app.verified_audit_size();
}

#[test]
fn the_audit_log_verifies_while_writes_are_committed_concurrently() {
    let app = spawn_app();
    let writing = AtomicBool::new(true);
    let failures: Vec<Value> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4)
            .map(|thread| {
                let (app, writing) = (&app, &writing);
                scope.spawn(move || {
                    // Bounded, so that the log (which every verification reads whole)
                    // stays small enough for a loaded machine.
                    let mut index = 0;
                    while writing.load(Ordering::SeqCst) && index < 250 {
                        index += 1;
                        app.post("/v1/users", &json!({ "name": format!("Writer {thread}-{index}") })).expect(201);
                    }
                })
            })
            .collect();
        let mut failures = Vec::new();
        for _ in 0..100 {
            let verification = app.get("/v1/audit/verify");
            verification.expect(200);
            let verification = verification.json();
            if verification["valid"] != true {
                failures.push(verification);
            }
        }
        writing.store(false, Ordering::SeqCst);
        for writer in writers {
            writer.join().expect("writer thread");
        }
        failures
    });
    assert!(
        failures.is_empty(),
        "{} of 100 verifications failed on an intact log, such as {}",
        failures.len(),
        failures[0]
    );
}
