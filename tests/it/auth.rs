//! Who may call what: the admin guard of every admin operation, the ways a key can be
//! sent, and the two key checks (`checkKey` for apps, `authorizeRequest` for gateways).
//!
//! The admin operations are one table; each guard test walks all of it, so a new
//! operation is covered by adding one row (and a test fails until it is added: the table
//! is compared with the served OpenAPI document).

use std::collections::BTreeSet;

use base64::Engine;
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, spawn_app};

/// One admin operation: how to call it, and the admin function it needs.
struct AdminOperation {
    /// The OpenAPI operation id.
    name: &'static str,
    method: &'static str,
    /// The path, with `{role_id}`, `{user_id}`, `{group_id}` and `{event_id}` to fill in,
    /// and the query a successful call needs, if any.
    path: &'static str,
    /// A JSON body with the same placeholders, for operations that take one.
    body: Option<&'static str>,
    /// The admin function the operation needs.
    function: &'static str,
    /// The status it answers when allowed, called in table order on the fixture.
    success: u16,
}

const fn operation(
    name: &'static str,
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    function: &'static str,
    success: u16,
) -> AdminOperation {
    AdminOperation { name, method, path, body, function, success }
}

/// Every admin operation. Called in this order on a fresh [`Fixture`], each succeeds:
/// activate comes before deactivate, assign before unassign, add before remove and
/// generate before revoke.
const ADMIN_OPERATIONS: &[AdminOperation] = &[
    operation("listFunctions", "GET", "/v1/functions", None, "security.functions.read", 200),
    operation(
        "createRole",
        "POST",
        "/v1/roles",
        Some(r#"{"description":"Made by the table"}"#),
        "security.roles.manage",
        201,
    ),
    operation("listRoles", "GET", "/v1/roles", None, "security.roles.read", 200),
    operation("getRole", "GET", "/v1/roles/{role_id}", None, "security.roles.read", 200),
    operation(
        "activateFunctions",
        "POST",
        "/v1/roles/{role_id}/functions/activate",
        Some(r#"{"functions":["api.attendees.read"]}"#),
        "security.roles.manage",
        200,
    ),
    operation(
        "deactivateFunctions",
        "POST",
        "/v1/roles/{role_id}/functions/deactivate",
        Some(r#"{"functions":["api.attendees.read"]}"#),
        "security.roles.manage",
        200,
    ),
    operation("createUser", "POST", "/v1/users", Some(r#"{"name":"Made by the table"}"#), "security.users.manage", 201),
    operation("listUsers", "GET", "/v1/users", None, "security.users.read", 200),
    operation("getUser", "GET", "/v1/users/{user_id}", None, "security.users.read", 200),
    operation("listKeyRefusals", "GET", "/v1/users/{user_id}/refusals", None, "security.users.read", 200),
    operation("disableUser", "POST", "/v1/users/{user_id}/disable", None, "security.users.manage", 200),
    operation("enableUser", "POST", "/v1/users/{user_id}/enable", None, "security.users.manage", 200),
    operation("assignRole", "PUT", "/v1/users/{user_id}/roles/{role_id}", None, "security.users.manage", 200),
    operation("unassignRole", "DELETE", "/v1/users/{user_id}/roles/{role_id}", None, "security.users.manage", 200),
    operation(
        "setUserEventAccess",
        "PUT",
        "/v1/users/{user_id}/event-access",
        Some(r#"{"all_events":false,"groups":["{group_id}"]}"#),
        "security.event_access.manage",
        200,
    ),
    operation(
        "createEventGroup",
        "POST",
        "/v1/event-groups",
        Some(r#"{"name":"Made by the table"}"#),
        "security.event_access.manage",
        201,
    ),
    operation("listEventGroups", "GET", "/v1/event-groups", None, "security.event_access.read", 200),
    operation("getEventGroup", "GET", "/v1/event-groups/{group_id}", None, "security.event_access.read", 200),
    operation(
        "addEventToGroup",
        "PUT",
        "/v1/event-groups/{group_id}/events/{event_id}",
        None,
        "security.event_access.manage",
        200,
    ),
    operation(
        "removeEventFromGroup",
        "DELETE",
        "/v1/event-groups/{group_id}/events/{event_id}",
        None,
        "security.event_access.manage",
        200,
    ),
    operation("generateKey", "POST", "/v1/users/{user_id}/key", Some("{}"), "security.keys.manage", 201),
    operation("revokeKey", "DELETE", "/v1/users/{user_id}/key", None, "security.keys.manage", 200),
    operation(
        "importKey",
        "POST",
        "/v1/users/{user_id}/key/import",
        Some(r#"{"key":"0123456789abcdef0123456789abcdef"}"#),
        "security.keys.manage",
        201,
    ),
    operation("getKeyPolicy", "GET", "/v1/policies/keys", None, "security.users.read", 200),
    operation(
        "setKeyPolicy",
        "PUT",
        "/v1/policies/keys",
        Some(r#"{"max_unused_days":3650}"#),
        "security.keys.manage",
        200,
    ),
    operation("listAuditEvents", "GET", "/v1/audit/events", None, "security.audit.read", 200),
    // `until` ends the stream, so that the call returns.
    operation("watchAuditEvents", "GET", "/v1/audit/watch?until=1", None, "security.audit.read", 200),
    operation("verifyAuditLog", "GET", "/v1/audit/verify", None, "security.audit.read", 200),
    operation("getCheckpoint", "GET", "/v1/audit/checkpoint", None, "security.audit.read", 200),
    operation("listCheckpoints", "GET", "/v1/audit/checkpoints", None, "security.audit.read", 200),
    operation("getInclusionProof", "GET", "/v1/audit/proofs/inclusion?seq=1", None, "security.audit.read", 200),
    operation("getConsistencyProof", "GET", "/v1/audit/proofs/consistency?from=1", None, "security.audit.read", 200),
    operation("exportAuditBundle", "GET", "/v1/audit/export", None, "security.audit.read", 200),
    operation("accessReport", "GET", "/v1/audit/access-report", None, "security.audit.read", 200),
    operation("getCredentialReport", "GET", "/v1/audit/credential-report", None, "security.audit.read", 200),
    operation(
        "lookupKey",
        "POST",
        "/v1/audit/key-lookup",
        Some(r#"{"key_hash":"{key_hash}"}"#),
        "security.audit.read",
        200,
    ),
    operation("getPermissionsAt", "GET", "/v1/audit/permissions", None, "security.audit.read", 200),
    operation("whoCan", "GET", "/v1/audit/who-can?function=api.events.read", None, "security.audit.read", 200),
    operation("diffPermissions", "GET", "/v1/audit/diff?from_position=0", None, "security.audit.read", 200),
];

/// Every admin function of the catalogue.
const ADMIN_FUNCTIONS: [&str; 9] = [
    "security.functions.read",
    "security.roles.read",
    "security.roles.manage",
    "security.users.read",
    "security.users.manage",
    "security.keys.manage",
    "security.event_access.read",
    "security.event_access.manage",
    "security.audit.read",
];

/// The things the table's paths and bodies name, made by the Administrator.
struct Fixture {
    role_id: String,
    user_id: String,
    group_id: String,
    event_id: &'static str,
    /// The hash of a key that was issued (the Administrator's), for `lookupKey`.
    key_hash: String,
}

impl Fixture {
    fn new(app: &TestApp) -> Self {
        Fixture {
            role_id: app.create_role("Target role"),
            user_id: app.create_user("Target user"),
            group_id: app.create_group("Target group", None),
            event_id: "summit-nyc",
            key_hash: app.list_all("/v1/audit/events?type=KeyGenerated")[0]["data"]["key_hash"]
                .as_str()
                .expect("a key hash")
                .to_owned(),
        }
    }

    fn fill(&self, template: &str) -> String {
        template
            .replace("{role_id}", &self.role_id)
            .replace("{user_id}", &self.user_id)
            .replace("{group_id}", &self.group_id)
            .replace("{event_id}", self.event_id)
            .replace("{key_hash}", &self.key_hash)
    }
}

impl AdminOperation {
    /// Calls the operation on the fixture with these extra headers.
    fn call(&self, app: &TestApp, fixture: &Fixture, headers: &[(&str, &str)]) -> Reply {
        let path = fixture.fill(self.path);
        let body = self.body.map(|body| fixture.fill(body));
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if body.is_some() {
            all.push(("content-type", "application/json"));
        }
        app.raw(self.method, &path, &all, body.as_deref().map(str::as_bytes))
    }

    /// Calls the operation with `Authorization: Bearer <key>`.
    fn call_with_key(&self, app: &TestApp, fixture: &Fixture, key: &str) -> Reply {
        let authorization = format!("Bearer {key}");
        self.call(app, fixture, &[("authorization", &authorization)])
    }
}

/// A key with a valid prefix, length, alphabet and checksum that was never issued.
fn unknown_well_formed_key() -> String {
    const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut key = format!("kl_{}", "Q7".repeat(15));
    let mut checksum = crc32fast::hash(key.as_bytes());
    let mut digits = [b'0'; 6];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(checksum % 62) as usize];
        checksum /= 62;
    }
    key.extend(digits.iter().map(|&b| char::from(b)));
    key
}

/// `Authorization: Basic` with an empty user name and the key as the password.
fn basic(key: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!(":{key}")))
}

#[track_caller]
fn expect_unauthenticated(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: body {}", reply.body);
    reply.expect_problem(401, "unauthenticated");
    let challenge = reply.header("www-authenticate").unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
    assert!(challenge.contains("Bearer") && challenge.contains("Basic"), "{what}: challenge {challenge:?}");
}

#[test]
fn the_forged_unknown_key_is_well_formed_so_it_tests_the_lookup_not_the_format() {
    let app = spawn_app();
    assert_eq!(app.check_reason(&unknown_well_formed_key(), "security.roles.read", None), "unknown_key");
}

#[test]
fn the_table_names_every_admin_operation_of_the_openapi_document_with_its_function() {
    let app = spawn_app();
    let spec = app.raw("GET", "/openapi.json", &[], None);
    spec.expect(200);
    let spec = spec.json();
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let Some(forbidden) = operation["responses"]["403"]["description"].as_str() else { continue };
            // Admin operations say which function the key lacks; the gateway check does not.
            let Some(lacking) = forbidden.strip_prefix("The key lacks ") else { continue };
            // A mutation's 403 goes on to say its user may lack the authority for the change.
            let function = lacking.split(',').next().unwrap_or(lacking);
            let name = operation["operationId"].as_str().expect("operationId").to_owned();
            documented.insert((name, method.to_ascii_uppercase(), path.clone(), function.to_owned()));
        }
    }
    let tabled: BTreeSet<_> = ADMIN_OPERATIONS
        .iter()
        .map(|op| {
            // A row's path may carry the query its operation needs; the document's does not.
            let path = op.path.split('?').next().unwrap_or(op.path);
            (op.name.to_owned(), op.method.to_owned(), path.to_owned(), op.function.to_owned())
        })
        .collect();
    assert_eq!(tabled, documented);
}

#[test]
fn every_admin_operation_without_a_key_is_refused_with_401_and_a_challenge_and_appends_nothing() {
    let app = spawn_app();
    let fixture = Fixture::new(&app);
    let before = app.audit_size();
    for op in ADMIN_OPERATIONS {
        expect_unauthenticated(&op.call(&app, &fixture, &[]), op.name);
    }
    assert_eq!(app.audit_size(), before);
}

#[test]
fn every_admin_operation_refuses_a_malformed_or_unknown_key_with_401_and_appends_nothing() {
    let app = spawn_app();
    let fixture = Fixture::new(&app);
    let unknown = format!("Bearer {}", unknown_well_formed_key());
    let unknown_as_basic = basic(&unknown_well_formed_key());
    let malformed_basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("no colon here"));
    let wrong_checksum = {
        let mut key = app.admin_key.clone();
        let last = if key.ends_with('A') { 'B' } else { 'A' };
        key.pop();
        key.push(last);
        format!("Bearer {key}")
    };
    let refused: [(&str, &str); 8] = [
        ("a malformed Bearer key", "Bearer not-a-key"),
        ("an empty Bearer key", "Bearer "),
        ("a key with a wrong checksum", &wrong_checksum),
        ("a well-formed unknown Bearer key", &unknown),
        ("a well-formed unknown Basic password", &unknown_as_basic),
        ("Basic credentials without a colon", &malformed_basic),
        ("Basic credentials that are not base64", "Basic %%%"),
        ("an unsupported scheme", "Token abc"),
    ];
    let before = app.audit_size();
    for op in ADMIN_OPERATIONS {
        for (what, authorization) in refused {
            let reply = op.call(&app, &fixture, &[("authorization", authorization)]);
            expect_unauthenticated(&reply, &format!("{} with {what}", op.name));
        }
    }
    assert_eq!(app.audit_size(), before);
}

#[test]
fn every_admin_operation_refuses_a_key_whose_roles_lack_its_function_with_403_and_records_only_the_refusal() {
    let app = spawn_app();
    let fixture = Fixture::new(&app);
    // For each function, a user whose role holds every other admin function: the one
    // function the operation needs is all that is missing.
    let lacking: Vec<(&str, String)> = ADMIN_FUNCTIONS
        .iter()
        .map(|&missing| {
            let others: Vec<&str> = ADMIN_FUNCTIONS.iter().copied().filter(|f| *f != missing).collect();
            (missing, app.user_with_functions(&format!("All but {missing}"), &others).1)
        })
        .collect();
    let before = app.audit_size();
    for op in ADMIN_OPERATIONS {
        let (_, key) =
            lacking.iter().find(|(missing, _)| *missing == op.function).expect("a user lacking the function");
        let reply = op.call_with_key(&app, &fixture, key);
        assert_eq!(reply.status, 403, "{}: body {}", op.name, reply.body);
        reply.expect_problem(403, "forbidden");
        assert!(
            reply.json()["detail"].as_str().unwrap_or_default().contains(op.function),
            "{}: {}",
            op.name,
            reply.body
        );
        assert_eq!(reply.header("www-authenticate"), None, "{}: a 403 is not a challenge", op.name);
    }
    // Each refusal is recorded as an AdminAccessDenied naming the operation and the
    // function, up to three per key per minute (issue #3): each key here lacks one
    // function, so the first three operations needing it are recorded.
    let mut expected: Vec<(String, String)> = Vec::new();
    for function in ADMIN_FUNCTIONS {
        let needing = ADMIN_OPERATIONS.iter().filter(|op| op.function == function).take(3);
        expected.extend(needing.map(|op| (op.name.to_owned(), function.to_owned())));
    }
    expected.sort();
    let records = app.wait_for_records(before, |records| records.len() >= expected.len());
    let mut recorded: Vec<(String, String)> = records
        .iter()
        .map(|record| {
            assert_eq!(record["type"], "AdminAccessDenied", "nothing else is appended: {record}");
            let data = &record["data"];
            (
                data["operation"].as_str().unwrap_or_default().to_owned(),
                data["function"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    recorded.sort();
    assert_eq!(recorded, expected);
}

#[test]
fn the_function_each_admin_operation_needs_is_enough_on_its_own() {
    let app = spawn_app();
    let fixture = Fixture::new(&app);
    let holding: Vec<(&str, String)> = ADMIN_FUNCTIONS
        .iter()
        .map(|&function| (function, app.user_with_functions(&format!("Only {function}"), &[function]).1))
        .collect();
    for op in ADMIN_OPERATIONS {
        let (_, key) = holding.iter().find(|(function, _)| *function == op.function).expect("a holder");
        let reply = op.call_with_key(&app, &fixture, key);
        assert_eq!(reply.status, op.success, "{}: body {}", op.name, reply.body);
    }
}

#[test]
fn an_api_users_key_cannot_use_the_admin_api() {
    let app = spawn_app();
    let (_, _, key) = app.api_user();
    let before = app.audit_size();
    app.call("GET", "/v1/roles", Some(&key), None).expect_problem(403, "forbidden");
    app.call("POST", "/v1/roles", Some(&key), Some(&json!({ "description": "Escalation" })))
        .expect_problem(403, "forbidden");
    // Both attempts are on the record, and nothing else changed.
    let records = app.wait_for_records(before, |records| records.len() >= 2);
    let mut attempts: Vec<&str> = records.iter().filter_map(|record| record["data"]["operation"].as_str()).collect();
    attempts.sort_unstable();
    assert_eq!(attempts, ["createRole", "listRoles"], "{records:?}");
    assert!(records.iter().all(|record| record["type"] == "AdminAccessDenied"), "{records:?}");
}

#[test]
fn a_key_sent_as_the_basic_password_with_an_empty_user_name_works_for_reads_and_changes() {
    let app = spawn_app();
    let authorization = basic(&app.admin_key);
    let headers = [("authorization", authorization.as_str())];
    let roles = app.raw("GET", "/v1/roles", &headers, None);
    roles.expect(200);
    assert_eq!(roles.json()["items"][0]["description"], "Administrator");

    let with_body = [("authorization", authorization.as_str()), ("content-type", "application/json")];
    let created = app.raw("POST", "/v1/roles", &with_body, Some(br#"{"description":"Made over Basic"}"#));
    created.expect(201);
    let admin = app.check(&app.admin_key, "security.roles.read", None)["user_id"].clone();
    let records = app.get("/v1/audit/events").json();
    let last = records["items"].as_array().and_then(|items| items.last()).cloned().expect("a record");
    assert_eq!(last["type"], "RoleCreated");
    assert_eq!(last["actor"], admin, "the change is recorded as the key's user's");
}

#[test]
fn a_disabled_admin_users_key_is_refused_with_401_until_they_are_enabled_again() {
    let app = spawn_app();
    let (deputy, key) = app.user_with_functions("Deputy", &ADMIN_FUNCTIONS);
    app.call("GET", "/v1/roles", Some(&key), None).expect(200);

    app.post_empty(&format!("/v1/users/{deputy}/disable")).expect(200);
    let before = app.audit_size();
    expect_unauthenticated(&app.call("GET", "/v1/roles", Some(&key), None), "disabled, reading");
    expect_unauthenticated(
        &app.call("POST", "/v1/roles", Some(&key), Some(&json!({ "description": "While disabled" }))),
        "disabled, changing",
    );
    expect_unauthenticated(
        &app.call("POST", &format!("/v1/users/{deputy}/enable"), Some(&key), None),
        "enabling oneself",
    );
    assert_eq!(app.audit_size(), before);

    app.post_empty(&format!("/v1/users/{deputy}/enable")).expect(200);
    app.call("GET", "/v1/roles", Some(&key), None).expect(200);
}

#[test]
fn a_revoked_admin_key_is_refused_with_401_and_a_replaced_one_without_grace_too() {
    let app = spawn_app();
    let (deputy, key) = app.user_with_functions("Deputy", &ADMIN_FUNCTIONS);
    app.delete(&format!("/v1/users/{deputy}/key")).expect(200);
    let before = app.audit_size();
    expect_unauthenticated(&app.call("GET", "/v1/users", Some(&key), None), "revoked key");
    expect_unauthenticated(&app.call("POST", "/v1/users", Some(&key), Some(&json!({ "name": "x" }))), "revoked key");
    assert_eq!(app.audit_size(), before);

    let second = app.generate_key(&deputy, &json!({}));
    let third = app.generate_key(&deputy, &json!({}));
    expect_unauthenticated(&app.call("GET", "/v1/users", Some(&second), None), "replaced key");
    app.call("GET", "/v1/users", Some(&third), None).expect(200);
}

#[test]
fn check_key_needs_no_admin_key_and_takes_the_key_from_the_body_or_the_authorization_header() {
    let app = spawn_app();
    let (_, user, key) = app.api_user();
    let question = json!({ "function": "api.attendees.read", "event_id": "summit-nyc" });
    let granted = |reply: Reply, how: &str| {
        assert_eq!(reply.status, 200, "{how}: {}", reply.body);
        let answer = reply.json();
        assert_eq!(answer["allowed"], true, "{how}: {answer}");
        assert_eq!(answer["reason"], "granted", "{how}: {answer}");
        assert_eq!(answer["user_id"], user.as_str(), "{how}: {answer}");
        assert!(answer["key_id"].as_str().is_some_and(|id| id.starts_with("key_")), "{how}: {answer}");
    };

    // In the body, with no Authorization header at all.
    let mut in_body = question.clone();
    in_body["key"] = Value::from(key.as_str());
    granted(app.call("POST", "/v1/check", None, Some(&in_body)), "key in the body");
    // As a Bearer token.
    granted(app.call("POST", "/v1/check", Some(&key), Some(&question)), "Bearer header");
    // As the Basic password.
    let authorization = basic(&key);
    let bytes = serde_json::to_vec(&question).expect("json");
    let reply = app.raw(
        "POST",
        "/v1/check",
        &[("authorization", &authorization), ("content-type", "application/json")],
        Some(&bytes),
    );
    granted(reply, "Basic header");

    // Refusals are answers, not errors.
    let refused = app.call("POST", "/v1/check", None, Some(&question));
    refused.expect(200);
    assert_eq!(refused.json()["allowed"], false);
    assert_eq!(refused.json()["reason"], "malformed_key");
    let mut unknown = question.clone();
    unknown["key"] = Value::from(unknown_well_formed_key());
    assert_eq!(app.call("POST", "/v1/check", None, Some(&unknown)).json()["reason"], "unknown_key");
}

#[test]
fn authorize_request_allows_with_an_empty_body_and_names_the_user_and_key_for_the_upstream() {
    let app = spawn_app();
    let (_, user, key) = app.api_user();
    let key_id = app.get(&format!("/v1/users/{user}")).json()["key"]["key_id"].clone();
    let before = app.audit_size();
    for authorization in [format!("Bearer {key}"), basic(&key)] {
        let reply = app.raw(
            "GET",
            "/v1/authorize?function=api.attendees.read&event_id=summit-nyc",
            &[("authorization", &authorization)],
            None,
        );
        reply.expect(200);
        assert_eq!(reply.body, "", "an allowed answer has an empty body");
        assert_eq!(reply.header("keyledger-user-id"), Some(user.as_str()));
        assert_eq!(reply.header("keyledger-key-id"), key_id.as_str());
        assert_eq!(reply.header("keyledger-reason"), Some("granted"));
    }
    // An account-wide function needs no event.
    app.call("GET", "/v1/authorize?function=api.events.read", Some(&key), None).expect(200);
    assert_eq!(app.audit_size(), before, "checks append nothing");
}

#[test]
fn authorize_request_refuses_a_missing_or_bad_key_with_401_a_challenge_and_the_reason() {
    let app = spawn_app();
    let (_, user, key) = app.api_user();
    let path = "/v1/authorize?function=api.attendees.read&event_id=summit-nyc";
    let missing = app.raw("GET", path, &[], None);
    expect_unauthenticated(&missing, "no key");
    assert!(missing.header("keyledger-reason").is_some(), "no key: no Keyledger-Reason");

    let unknown = format!("Bearer {}", unknown_well_formed_key());
    for (authorization, reason) in [("Bearer not-a-key", "malformed_key"), (unknown.as_str(), "unknown_key")] {
        let reply = app.raw("GET", path, &[("authorization", authorization)], None);
        expect_unauthenticated(&reply, reason);
        assert_eq!(reply.header("keyledger-reason"), Some(reason));
        assert_eq!(reply.header("keyledger-user-id"), None);
    }

    app.post_empty(&format!("/v1/users/{user}/disable")).expect(200);
    let disabled = app.call("GET", path, Some(&key), None);
    expect_unauthenticated(&disabled, "disabled user");
    assert_eq!(disabled.header("keyledger-reason"), Some("user_disabled"));

    app.post_empty(&format!("/v1/users/{user}/enable")).expect(200);
    app.delete(&format!("/v1/users/{user}/key")).expect(200);
    let revoked = app.call("GET", path, Some(&key), None);
    expect_unauthenticated(&revoked, "revoked key");
    assert_eq!(revoked.header("keyledger-reason"), Some("revoked_key"));
}

#[test]
fn authorize_request_refuses_what_the_key_may_not_do_with_403_and_the_reason() {
    let app = spawn_app();
    let (_, _, key) = app.api_user();
    let refusals = [
        ("/v1/authorize?function=api.attendees.write&event_id=summit-nyc", "function_not_granted"),
        ("/v1/authorize?function=api.attendees.read&event_id=gala-paris", "event_not_accessible"),
    ];
    for (path, reason) in refusals {
        let reply = app.call("GET", path, Some(&key), None);
        reply.expect_problem(403, "forbidden");
        assert_eq!(reply.header("keyledger-reason"), Some(reason), "{path}");
        assert_eq!(reply.header("www-authenticate"), None, "{path}: a 403 is not a challenge");
        assert_eq!(reply.header("keyledger-user-id"), None, "{path}: a refusal names no user upstream");
    }
}

#[test]
fn authorize_request_without_a_function_is_a_400_problem() {
    let app = spawn_app();
    let (_, _, key) = app.api_user();
    app.call("GET", "/v1/authorize", Some(&key), None).expect_problem(400, "invalid_query");
    app.call("GET", "/v1/authorize?event_id=summit-nyc", Some(&key), None).expect_problem(400, "invalid_query");
}

/// `whoAmI` needs no admin function, so it is not in the table; it refuses what the admin
/// guard refuses, with the same 401 and challenge, and appends nothing.
#[test]
fn who_am_i_needs_only_a_working_key_and_refuses_any_other_with_401_like_the_admin_guard() {
    let app = spawn_app();
    let (_, _, api_key) = app.api_user();
    app.call("GET", "/v1/whoami", Some(&api_key), None).expect(200);
    let before = app.audit_size();
    expect_unauthenticated(&app.raw("GET", "/v1/whoami", &[], None), "no key");
    let unknown = format!("Bearer {}", unknown_well_formed_key());
    let unknown_as_basic = basic(&unknown_well_formed_key());
    for (what, authorization) in [
        ("a malformed Bearer key", "Bearer not-a-key"),
        ("a well-formed unknown Bearer key", unknown.as_str()),
        ("a well-formed unknown Basic password", unknown_as_basic.as_str()),
        ("Basic credentials that are not base64", "Basic %%%"),
        ("an unsupported scheme", "Token abc"),
    ] {
        expect_unauthenticated(&app.raw("GET", "/v1/whoami", &[("authorization", authorization)], None), what);
    }
    let basic_api_key = basic(&api_key);
    app.raw("GET", "/v1/whoami", &[("authorization", &basic_api_key)], None).expect(200);
    assert_eq!(app.audit_size(), before);
}
