//! The key policy (issue #14, point 2): `max_lifetime_days` (`key_too_old`, blocked not
//! revoked), `require_expiry` (422 `expiry_required`, administrators exempt) and
//! `max_unused_days` (`key_dormant` until rotated), through the API.
//!
//! A key days old cannot be made by waiting, so the ledgers these tests serve are written
//! first, as `examples/populate.rs` writes one: the same `decide`, `apply` and `encode` as
//! the server's, with every record dated `DAYS_AGO` days back.

use std::path::Path;

use serde_json::{Value, json};

use keyledger::domain::{
    Actor, Command, Context, EventAccess, FunctionId, KeyId, KeySecret, Name, Position, RoleId, State, Timestamp,
    UserId, decide,
};
use keyledger::log::record::{self, Envelope};
use keyledger::log::{ChainHash, EventLog, FjallLog};

use crate::helpers::{TestApp, spawn_app, spawn_app_in};

/// How old the written ledger's records are.
const DAYS_AGO: u64 = 400;

/// What [`write_old_ledger`] made: the administrator's key and an API user with its key,
/// all [`DAYS_AGO`] days old and never used.
struct OldLedger {
    admin_key: String,
    user_id: String,
    api_key: String,
}

/// Writes a ledger into `dir` whose records are all `DAYS_AGO` days old: the bootstrap
/// (administrator and key), a role holding `api.events.read`, a user holding it with
/// access to every event, and the user's key.
fn write_old_ledger(dir: &Path) -> OldLedger {
    let log = FjallLog::open(&dir.join("log")).expect("open the log");
    let at = Timestamp::from_unix_millis(Timestamp::now().unix_millis() - (DAYS_AGO as i64) * 24 * 60 * 60 * 1000);
    let mut state = State::default();
    let mut prev_hash = ChainHash::GENESIS;
    let mut stored = Vec::new();
    let mut run = |actor: &Actor, command: Command| {
        let context = Context { actor: actor.clone(), now: at, expected_version: None, credential: None };
        for event in decide(&state, &context, command).expect("decided") {
            let seq = state.head() + 1;
            let (record, hash) =
                record::encode(&Envelope { seq, at, actor: actor.clone(), justification: None }, &event, prev_hash);
            state.apply(Position { seq, at }, &event);
            prev_hash = hash;
            stored.push(record);
        }
    };
    let mut rng = rand::rng();
    let (admin_secret, api_secret) = (KeySecret::generate(&mut rng), KeySecret::generate(&mut rng));
    let admin = UserId::generate(&mut rng);
    run(
        &Actor::System,
        Command::Bootstrap {
            user_id: admin.clone(),
            role_id: RoleId::generate(&mut rng),
            key_id: KeyId::generate(&mut rng),
            key_hash: admin_secret.hash(),
        },
    );
    let actor = Actor::User(admin);
    let role = RoleId::generate(&mut rng);
    run(&actor, Command::CreateRole { role_id: role.clone(), description: Name::parse("API Access").expect("name") });
    let functions = [FunctionId::parse("api.events.read").expect("function")].into_iter().collect();
    run(&actor, Command::ActivateFunctions { role_id: role.clone(), functions });
    let user = UserId::generate(&mut rng);
    run(
        &actor,
        Command::CreateUser { user_id: user.clone(), name: Name::parse("Old app").expect("name"), email: None },
    );
    run(&actor, Command::AssignRole { user_id: user.clone(), role_id: role });
    run(&actor, Command::SetUserEventAccess { user_id: user.clone(), access: EventAccess::AllEvents });
    run(
        &actor,
        Command::GenerateKey {
            user_id: user.clone(),
            key_id: KeyId::generate(&mut rng),
            key_hash: api_secret.hash(),
            expires_at: None,
            grace_seconds: None,
        },
    );
    log.append(0, &stored).expect("append");
    drop(log);
    OldLedger {
        admin_key: admin_secret.expose().to_owned(),
        user_id: user.to_string(),
        api_key: api_secret.expose().to_owned(),
    }
}

/// Serves a ledger written by [`write_old_ledger`] in `dir`.
fn serve_old_ledger(dir: &Path) -> (TestApp, OldLedger) {
    let old = write_old_ledger(dir);
    let mut app = spawn_app_in(dir);
    app.admin_key = old.admin_key.clone();
    (app, old)
}

fn set_policy(app: &TestApp, policy: &Value) -> Value {
    let reply = app.put("/v1/policies/keys", Some(policy));
    reply.expect(200);
    assert!(reply.header("keyledger-position").is_some(), "{}", reply.body);
    reply.json()
}

fn authorize(app: &TestApp, key: &str) -> (u16, Option<String>) {
    let reply =
        app.raw("GET", "/v1/authorize?function=api.events.read", &[("authorization", &format!("Bearer {key}"))], None);
    (reply.status, reply.header("keyledger-reason").map(str::to_owned))
}

fn report_row(app: &TestApp, user_id: &str) -> Value {
    let report = app.get("/v1/audit/access-report");
    report.expect(200);
    let report = report.json();
    assert_eq!(report["policy_warning_days"], 14, "{report}");
    report["rows"].as_array().expect("rows").iter().find(|row| row["user_id"] == user_id).expect("the row").clone()
}

#[test]
fn a_key_past_max_lifetime_days_is_refused_as_key_too_old_and_works_again_when_the_limit_is_raised() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (app, old) = serve_old_ledger(dir.path());
    assert_eq!(app.check_reason(&old.api_key, "api.events.read", None), "granted");
    let policy = app.get("/v1/policies/keys");
    policy.expect(200);
    assert_eq!(policy.json()["max_lifetime_days"], Value::Null);

    let set = set_policy(&app, &json!({ "max_lifetime_days": 365 }));
    assert_eq!((set["max_lifetime_days"].as_u64(), &set["require_expiry"]), (Some(365), &json!(false)));
    let refused = app.check(&old.api_key, "api.events.read", None);
    assert_eq!((&refused["allowed"], &refused["reason"]), (&json!(false), &json!("key_too_old")), "{refused}");
    assert_eq!(authorize(&app, &old.api_key), (401, Some("key_too_old".to_owned())));
    app.call("GET", "/v1/whoami", Some(&old.api_key), None).expect(401);
    let user = app.get(&format!("/v1/users/{}", old.user_id));
    assert_eq!(user.json()["key"]["state"], "too_old", "{}", user.body);
    let row = report_row(&app, &old.user_id);
    assert_eq!((&row["key_state"], &row["key_blocked_reason"]), (&json!("too_old"), &json!("key_too_old")), "{row}");
    assert_eq!(row["flags"]["key_blocked_by_policy"], true, "{row}");
    // Blocked, not revoked: nothing about the key was appended, and raising the limit
    // brings it back. The administrator's key, as old, was never blocked: it is exempt.
    let raised = set_policy(&app, &json!({ "max_lifetime_days": 500 }));
    assert_eq!(raised["max_lifetime_days"], 500);
    assert_eq!(app.check_reason(&old.api_key, "api.events.read", None), "granted");
    assert_eq!(authorize(&app, &old.api_key), (200, Some("granted".to_owned())));
    let row = report_row(&app, &old.user_id);
    assert_eq!((&row["key_state"], &row["flags"]["key_blocked_by_policy"]), (&json!("active"), &json!(false)));
    // Within 14 days of the limit, the report warns while the key still works.
    set_policy(&app, &json!({ "max_lifetime_days": DAYS_AGO + 10 }));
    let row = report_row(&app, &old.user_id);
    assert_eq!((&row["key_state"], &row["flags"]["key_blocked_by_policy"]), (&json!("active"), &json!(true)), "{row}");
    let whoami = app.call("GET", "/v1/whoami", Some(&old.api_key), None);
    whoami.expect(200);
    let limits = &whoami.json()["policy"];
    assert_eq!((&limits["exempt"], &limits["blocked_reason"]), (&json!(false), &json!("key_too_old")), "{limits}");
    assert_eq!(limits["max_lifetime_days"], DAYS_AGO + 10);
    let admin = app.get("/v1/whoami");
    assert_eq!(admin.json()["policy"]["exempt"], true, "{}", admin.body);
    assert_eq!(admin.json()["policy"]["blocked_from"], Value::Null, "{}", admin.body);
    // The changes are on the record, and the log verifies.
    let records = app.list_all("/v1/audit/events?type=KeyPolicySet");
    assert_eq!(records.len(), 3, "{records:?}");
    assert_eq!(records[0]["data"]["max_lifetime_days"], 365);
    app.verified_audit_size();
}

#[test]
fn a_key_unused_for_max_unused_days_is_dormant_until_rotated_and_trying_it_does_not_wake_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (app, old) = serve_old_ledger(dir.path());
    let (_, fresh) = app.user_with_functions("Fresh app", &["api.events.read"]);
    set_policy(&app, &json!({ "max_unused_days": 30 }));
    assert_eq!(app.check_reason(&old.api_key, "api.events.read", None), "key_dormant");
    assert_eq!(authorize(&app, &old.api_key), (401, Some("key_dormant".to_owned())));
    assert_eq!(app.check_reason(&fresh, "api.events.read", None), "granted", "a new key is not dormant");
    assert_eq!(app.get(&format!("/v1/users/{}", old.user_id)).json()["key"]["state"], "dormant");
    // A graceful stop records the usage counted in memory: the refused attempts of the
    // dormant key are not counted as use, so it is still dormant after it.
    let app = app.restart();
    assert_eq!(app.check_reason(&old.api_key, "api.events.read", None), "key_dormant");
    let user = app.get(&format!("/v1/users/{}", old.user_id)).json();
    assert_eq!(user["key"]["last_used_at"], Value::Null, "{user}");
    // Rotated, the user works again with the new key.
    let rotated = app.generate_key(&old.user_id, &json!({}));
    assert_eq!(app.check_reason(&rotated, "api.events.read", None), "granted");
    let whoami = app.call("GET", "/v1/whoami", Some(&rotated), None).json();
    assert_eq!(whoami["policy"]["max_unused_days"], 30, "{whoami}");
    assert_eq!(whoami["policy"]["blocked_reason"], "key_dormant", "{whoami}");
    assert!(whoami["policy"]["dormant_from"].is_string(), "{whoami}");
}

#[test]
fn require_expiry_refuses_keys_without_expires_at_except_an_administrators() {
    let mut app = spawn_app();
    let user = app.create_user("Expiring app");
    set_policy(&app, &json!({ "require_expiry": true }));
    assert_eq!(app.get("/v1/policies/keys").json()["require_expiry"], true);
    let before = app.audit_size();
    app.post(&format!("/v1/users/{user}/key"), &json!({})).expect_problem(422, "expiry_required");
    app.post(&format!("/v1/users/{user}/key/import"), &json!({ "key": "00112233445566778899aabbccddeeff" }))
        .expect_problem(422, "expiry_required");
    assert_eq!(app.audit_size(), before, "a refused key appends nothing");
    app.post(&format!("/v1/users/{user}/key"), &json!({ "expires_at": "2099-01-01T00:00:00Z" })).expect(201);
    // The administrator's key must never expire (the lockout rule counts only
    // administrators whose key does not), so its rotation needs no expiry.
    let me = app.get("/v1/whoami").json()["user_id"].as_str().expect("user id").to_owned();
    app.admin_key = app.generate_key(&me, &json!({}));
    app.get("/v1/policies/keys").expect(200);
    // Out of range limits are refused before anything is appended.
    for bad in [json!({ "max_lifetime_days": 0 }), json!({ "max_unused_days": 3651 })] {
        app.put("/v1/policies/keys", Some(&bad)).expect_problem(422, "invalid_value");
    }
    app.put("/v1/policies/keys", Some(&json!({ "max_days": 3 }))).expect(400);
    app.put("/v1/policies/keys", None).expect_problem(400, "invalid_body");
}
