//! Every way a request can be refused: the status, the problem document's `code`, and
//! that a refused request appended nothing to the log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, spawn_app};

/// A role id that is well formed but names nothing.
const UNKNOWN_ROLE: &str = "role_0000000000000000";
/// A user id that is well formed but names nothing.
const UNKNOWN_USER: &str = "usr_0000000000000000";
/// A group id that is well formed but names nothing.
const UNKNOWN_GROUP: &str = "grp_0000000000000000";

/// Sends a request as the Administrator with an optional content type and raw body.
fn send(app: &TestApp, method: &str, path: &str, content_type: Option<&str>, body: Option<&[u8]>) -> Reply {
    send_with(app, method, path, &[], content_type, body)
}

/// Like [`send`], with extra headers.
fn send_with(
    app: &TestApp,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> Reply {
    let authorization = format!("Bearer {}", app.admin_key);
    let mut headers: Vec<(&str, &str)> = vec![("authorization", &authorization)];
    headers.extend_from_slice(extra);
    if let Some(content_type) = content_type {
        headers.push(("content-type", content_type));
    }
    app.raw(method, path, &headers, body)
}

/// Sends a JSON body given as text, as the Administrator.
fn send_json(app: &TestApp, method: &str, path: &str, body: &str) -> Reply {
    send(app, method, path, Some("application/json"), Some(body.as_bytes()))
}

/// Asserts that `reply` is the problem `status`/`code`, naming `what` on failure.
#[track_caller]
fn expect_problem(reply: &Reply, status: u16, code: &str, what: &str) {
    let problem: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
    assert!(
        reply.status == status && problem["code"] == code,
        "{what}: expected {status} {code}, got {} {}",
        reply.status,
        reply.body
    );
    reply.expect_problem(status, code);
}

/// Writes raw bytes to the server and returns the status of its answer.
fn raw_status(app: &TestApp, request: &[u8]) -> u16 {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    // The server may answer and close before reading everything; that is its right.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let status_line = answer.lines().next().unwrap_or_default();
    status_line
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {status_line:?}"))
}

/// The Administrator's user id and its one role.
fn administrator(app: &TestApp) -> (String, String) {
    let user = app.check(&app.admin_key, "security.users.read", None)["user_id"].as_str().expect("user").to_owned();
    let role = app.get(&format!("/v1/users/{user}")).json()["roles"][0].as_str().expect("role").to_owned();
    (user, role)
}

/// A role with API functions, and a role with an admin function.
fn api_and_admin_roles(app: &TestApp) -> (String, String) {
    let api = app.create_role("API Access");
    app.activate(&api, &["api.events.read"]);
    let admin = app.create_role("Role readers");
    app.activate(&admin, &["security.roles.read"]);
    (api, admin)
}

/// The operations that take a JSON body, as (what, method, path).
fn body_operations(app: &TestApp) -> Vec<(&'static str, &'static str, String)> {
    let role = app.create_role("Target role");
    let user = app.create_user("Target user");
    vec![
        ("createRole", "POST", "/v1/roles".to_owned()),
        ("activateFunctions", "POST", format!("/v1/roles/{role}/functions/activate")),
        ("deactivateFunctions", "POST", format!("/v1/roles/{role}/functions/deactivate")),
        ("createUser", "POST", "/v1/users".to_owned()),
        ("setUserEventAccess", "PUT", format!("/v1/users/{user}/event-access")),
        ("createEventGroup", "POST", "/v1/event-groups".to_owned()),
        ("generateKey", "POST", format!("/v1/users/{user}/key")),
        ("checkKey", "POST", "/v1/check".to_owned()),
    ]
}

#[test]
fn a_body_that_is_not_json_is_400_malformed_json_on_every_operation_that_takes_one() {
    let app = spawn_app();
    let operations = body_operations(&app);
    let before = app.audit_size();
    // Each breaks the syntax before any field is read, so no shape error can come first.
    let junk = ["{", r#"{""#, "[", "{,}", "nope", "tru", "{'name':'x'}", "\u{0}"];
    for (what, method, path) in &operations {
        for body in junk {
            expect_problem(&send_json(&app, method, path, body), 400, "malformed_json", &format!("{what} {body:?}"));
        }
    }
    assert_eq!(app.audit_size(), before);
}

#[test]
fn generate_key_takes_no_body_or_null_as_the_spec_declares_it_optional() {
    let app = spawn_app();
    let user = app.create_user("Target user");
    send(&app, "POST", &format!("/v1/users/{user}/key"), None, None).expect(201);
    send_json(&app, "POST", &format!("/v1/users/{user}/key"), "null").expect(201);
    send_json(&app, "POST", &format!("/v1/users/{user}/key"), " null\n").expect(201);
    // Another operation's body is not optional: null is not an object.
    expect_problem(&send_json(&app, "POST", "/v1/roles", "null"), 400, "invalid_body", "createRole null");
}

#[test]
fn grace_seconds_may_be_a_whole_float_as_json_schema_integers_are_but_not_a_fraction() {
    let app = spawn_app();
    let user = app.create_user("Target user");
    app.generate_key(&user, &json!({}));
    let reply = send_json(&app, "POST", &format!("/v1/users/{user}/key"), r#"{"grace_seconds": 3600.0}"#);
    reply.expect(201);
    assert!(reply.json()["replaced_key_valid_until"].is_string(), "{}", reply.body);
    for body in [
        r#"{"grace_seconds": 1.5}"#,
        r#"{"grace_seconds": -1}"#,
        r#"{"grace_seconds": -1.0}"#,
        r#"{"grace_seconds": 1e300}"#,
    ] {
        expect_problem(&send_json(&app, "POST", &format!("/v1/users/{user}/key"), body), 400, "invalid_body", body);
    }
}

#[test]
fn a_body_that_is_an_array_of_the_fields_is_400_invalid_body() {
    // serde fills a struct from an array of its fields in order; schemathesis found
    // generateKey accepting `[null, null]` as `{}`.
    let app = spawn_app();
    let user = app.create_user("Target user");
    let before = app.audit_size();
    for (method, path, body) in [
        ("POST", format!("/v1/users/{user}/key"), "[null, null]"),
        ("POST", "/v1/roles".to_owned(), r#"["API Access"]"#),
        ("POST", "/v1/check".to_owned(), r#"[null, "api.events.read", null]"#),
    ] {
        expect_problem(&send_json(&app, method, &path, body), 400, "invalid_body", &format!("{method} {path} {body}"));
    }
    assert_eq!(app.audit_size(), before);
}

#[test]
fn wrong_types_missing_fields_and_unknown_fields_are_400_invalid_body() {
    let app = spawn_app();
    let role = app.create_role("Target role");
    let user = app.create_user("Target user");
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "POST",
            "/v1/roles".to_owned(),
            &[r#"{"description":42}"#, "{}", r#"{"description":"x","colour":"red"}"#, "[]", "null", r#""API""#],
        ),
        (
            "POST",
            format!("/v1/roles/{role}/functions/activate"),
            &[
                r#"{"functions":"api.events.read"}"#,
                r#"{"functions":[1]}"#,
                "{}",
                r#"{"functions":["api.events.read"],"all":true}"#,
            ],
        ),
        (
            "POST",
            format!("/v1/roles/{role}/functions/deactivate"),
            &[r#"{"functions":{"api.events.read":true}}"#, "{}", r#"{"functions":["api.events.read"],"x":1}"#],
        ),
        (
            "POST",
            "/v1/users".to_owned(),
            &[r#"{"name":null}"#, r#"{"email":"a@example.com"}"#, r#"{"name":"x","role":"admin"}"#],
        ),
        (
            "PUT",
            format!("/v1/users/{user}/event-access"),
            &[
                r#"{"all_events":"yes"}"#,
                r#"{"groups":[]}"#,
                r#"{"all_events":false,"groups":"grp"}"#,
                r#"{"all_events":true,"x":1}"#,
            ],
        ),
        ("POST", "/v1/event-groups".to_owned(), &[r#"{"name":["x"]}"#, "{}", r#"{"name":"x","parent":"y"}"#]),
        (
            "POST",
            format!("/v1/users/{user}/key"),
            &[
                r#"{"grace_seconds":"3600"}"#,
                r#"{"grace_seconds":-1}"#,
                r#"{"grace_seconds":1.5}"#,
                r#"{"expires_at":5}"#,
                r#"{"ttl":3}"#,
            ],
        ),
        ("POST", "/v1/check".to_owned(), &[r#"{"key":"x"}"#, r#"{"function":5}"#, r#"{"function":"x","user":"y"}"#]),
    ];
    let before = app.audit_size();
    for (method, path, bodies) in &cases {
        for body in *bodies {
            expect_problem(
                &send_json(&app, method, path, body),
                400,
                "invalid_body",
                &format!("{method} {path} {body}"),
            );
        }
    }
    assert_eq!(app.audit_size(), before);
}

#[test]
fn unknown_and_malformed_ids_in_paths_are_404_not_found() {
    let app = spawn_app();
    let role = app.create_role("Target role");
    let user = app.create_user("Target user");
    let group = app.create_group("Target group", None);
    let access = r#"{"all_events":true}"#;
    let functions = r#"{"functions":["api.events.read"]}"#;
    let mut cases: Vec<(&str, String, Option<&str>)> = Vec::new();
    // Each id in turn is well formed but unknown, malformed, or an id of another kind.
    let bad_roles = [UNKNOWN_ROLE, "nope", user.as_str(), "role_0000000000000000x", "ROLE_0000000000000000"];
    let bad_users = [UNKNOWN_USER, "nope", role.as_str(), "usr_", "usr_000000000000000g"];
    let bad_groups = [UNKNOWN_GROUP, "nope", role.as_str(), "grp_00000000000000000"];
    for bad in bad_roles {
        cases.push(("GET", format!("/v1/roles/{bad}"), None));
        cases.push(("POST", format!("/v1/roles/{bad}/functions/activate"), Some(functions)));
        cases.push(("POST", format!("/v1/roles/{bad}/functions/deactivate"), Some(functions)));
        cases.push(("PUT", format!("/v1/users/{user}/roles/{bad}"), None));
        cases.push(("DELETE", format!("/v1/users/{user}/roles/{bad}"), None));
    }
    for bad in bad_users {
        cases.push(("GET", format!("/v1/users/{bad}"), None));
        cases.push(("POST", format!("/v1/users/{bad}/disable"), None));
        cases.push(("POST", format!("/v1/users/{bad}/enable"), None));
        cases.push(("PUT", format!("/v1/users/{bad}/roles/{role}"), None));
        cases.push(("DELETE", format!("/v1/users/{bad}/roles/{role}"), None));
        cases.push(("PUT", format!("/v1/users/{bad}/event-access"), Some(access)));
        cases.push(("POST", format!("/v1/users/{bad}/key"), Some("{}")));
        cases.push(("DELETE", format!("/v1/users/{bad}/key"), None));
    }
    for bad in bad_groups {
        cases.push(("GET", format!("/v1/event-groups/{bad}"), None));
        cases.push(("PUT", format!("/v1/event-groups/{bad}/events/summit-nyc"), None));
        cases.push(("DELETE", format!("/v1/event-groups/{bad}/events/summit-nyc"), None));
    }
    let before = app.audit_size();
    for (method, path, body) in &cases {
        let reply = send(&app, method, path, body.map(|_| "application/json"), body.map(str::as_bytes));
        expect_problem(&reply, 404, "not_found", &format!("{method} {path}"));
    }
    assert_eq!(app.audit_size(), before);
    // The targets themselves were found all along.
    app.get(&format!("/v1/event-groups/{group}")).expect(200);
}

#[test]
fn unknown_ids_in_bodies_are_404_not_found_and_change_nothing() {
    let app = spawn_app();
    let user = app.create_user("Target user");
    let known = app.create_group("Americas", None);
    let before = app.audit_size();
    for parent in [UNKNOWN_GROUP, "nope", user.as_str()] {
        let reply = app.post("/v1/event-groups", &json!({ "name": "USA", "parent_id": parent }));
        expect_problem(&reply, 404, "not_found", &format!("parent_id {parent}"));
    }
    for groups in [json!([UNKNOWN_GROUP]), json!(["nope"]), json!([known, UNKNOWN_GROUP])] {
        let reply =
            app.put(&format!("/v1/users/{user}/event-access"), Some(&json!({ "all_events": false, "groups": groups })));
        expect_problem(&reply, 404, "not_found", &format!("groups {groups}"));
    }
    assert_eq!(app.audit_size(), before);
    assert_eq!(app.get(&format!("/v1/users/{user}")).json()["event_access"]["groups"], json!([]));
}

#[test]
fn function_ids_not_in_the_catalogue_are_422_unknown_function_and_activate_nothing() {
    let app = spawn_app();
    let role = app.create_role("Target role");
    let before = app.audit_size();
    for functions in [
        json!(["api.events.write"]),
        json!(["API.EVENTS.READ"]),
        json!([""]),
        json!(["api.events.read", "api.nothing.read"]),
    ] {
        for action in ["activate", "deactivate"] {
            let reply = app.post(&format!("/v1/roles/{role}/functions/{action}"), &json!({ "functions": functions }));
            expect_problem(&reply, 422, "unknown_function", &format!("{action} {functions}"));
        }
    }
    assert_eq!(app.audit_size(), before);
    assert_eq!(app.get(&format!("/v1/roles/{role}")).json()["functions"], json!([]));
}

#[test]
fn an_empty_function_list_is_422() {
    let app = spawn_app();
    let role = app.create_role("Target role");
    let before = app.audit_size();
    for action in ["activate", "deactivate"] {
        let reply = app.post(&format!("/v1/roles/{role}/functions/{action}"), &json!({ "functions": [] }));
        expect_problem(&reply, 422, "invalid_value", action);
    }
    assert_eq!(app.audit_size(), before);
}

#[test]
fn empty_blank_oversized_and_multiline_names_are_422_and_200_characters_are_accepted() {
    let app = spawn_app();
    let too_long = "é".repeat(201);
    let bad = ["", "   ", too_long.as_str(), "two\nlines", "tab\there"];
    let before = app.audit_size();
    for name in bad {
        for (path, field) in [("/v1/roles", "description"), ("/v1/users", "name"), ("/v1/event-groups", "name")] {
            let reply = app.post(path, &json!({ field: name }));
            expect_problem(&reply, 422, "invalid_value", &format!("{path} {field} {name:?}"));
        }
    }
    assert_eq!(app.audit_size(), before);
    let longest = "é".repeat(200);
    for (path, field) in [("/v1/roles", "description"), ("/v1/users", "name"), ("/v1/event-groups", "name")] {
        app.post(path, &json!({ field: longest })).expect(201);
    }
}

#[test]
fn a_malformed_email_is_422() {
    let app = spawn_app();
    let before = app.audit_size();
    for email in ["api", "@example.com", "api@example", "api@@example.com", "a pi@example.com", "api@.com", ""] {
        let reply = app.post("/v1/users", &json!({ "name": "Attendance app", "email": email }));
        expect_problem(&reply, 422, "invalid_value", email);
    }
    assert_eq!(app.audit_size(), before);
    let created = app.post("/v1/users", &json!({ "name": "Attendance app", "email": "api@example.com" }));
    created.expect(201);
    assert_eq!(created.json()["email"], "api@example.com");
}

#[test]
fn bad_or_past_expiry_and_too_long_grace_periods_are_422() {
    let app = spawn_app();
    let user = app.create_user("Attendance app");
    let path = format!("/v1/users/{user}/key");
    let before = app.audit_size();
    for expires_at in ["tomorrow", "2030-13-01T00:00:00Z", "2030-01-01", "", "2030-01-01T00:00:00"] {
        let reply = app.post(&path, &json!({ "expires_at": expires_at }));
        expect_problem(&reply, 422, "invalid_value", &format!("expires_at {expires_at:?}"));
    }
    for expires_at in ["2020-01-01T00:00:00Z", "1970-01-01T00:00:00Z"] {
        let reply = app.post(&path, &json!({ "expires_at": expires_at }));
        expect_problem(&reply, 422, "expiry_in_the_past", &format!("expires_at {expires_at:?}"));
    }
    for grace in [2_592_001_u64, u64::MAX] {
        let reply = app.post(&path, &json!({ "grace_seconds": grace }));
        expect_problem(&reply, 422, "invalid_value", &format!("grace_seconds {grace}"));
    }
    assert_eq!(app.audit_size(), before);
    assert_eq!(app.get(&format!("/v1/users/{user}")).json()["key"], Value::Null, "no key was made");

    // Thirty days exactly is allowed.
    app.generate_key(&user, &json!({}));
    app.post(&path, &json!({ "grace_seconds": 2_592_000, "expires_at": "2999-01-01T00:00:00Z" })).expect(201);
}

#[test]
fn all_events_together_with_groups_is_422() {
    let app = spawn_app();
    let user = app.create_user("Attendance app");
    let group = app.create_group("Americas", None);
    let before = app.audit_size();
    let reply =
        app.put(&format!("/v1/users/{user}/event-access"), Some(&json!({ "all_events": true, "groups": [group] })));
    expect_problem(&reply, 422, "invalid_value", "all_events with groups");
    assert_eq!(app.audit_size(), before);
}

#[test]
fn a_malformed_event_id_in_a_path_is_422() {
    let app = spawn_app();
    let group = app.create_group("Americas", None);
    let too_long = "e".repeat(129);
    let before = app.audit_size();
    for event in ["summit!nyc", "summit%20nyc", too_long.as_str(), "caf%C3%A9"] {
        for method in ["PUT", "DELETE"] {
            let reply = send(&app, method, &format!("/v1/event-groups/{group}/events/{event}"), None, None);
            expect_problem(&reply, 422, "invalid_value", &format!("{method} {event}"));
        }
    }
    assert_eq!(app.audit_size(), before);
    app.add_event(&group, &"e".repeat(128));
}

#[test]
fn a_duplicate_role_description_is_409_whatever_its_case_and_surrounding_space() {
    let app = spawn_app();
    app.create_role("API Access");
    let before = app.audit_size();
    for description in ["API Access", "api access", "  API ACCESS  ", "administrator"] {
        let reply = app.post("/v1/roles", &json!({ "description": description }));
        expect_problem(&reply, 409, "duplicate_description", description);
    }
    assert_eq!(app.audit_size(), before);
    assert_eq!(app.get("/v1/roles").json()["items"].as_array().map(Vec::len), Some(2));
}

#[test]
fn a_duplicate_sibling_group_name_is_409_but_the_same_name_elsewhere_is_fine() {
    let app = spawn_app();
    let americas = app.create_group("Americas", None);
    let europe = app.create_group("Europe", None);
    app.create_group("USA", Some(&americas));
    let before = app.audit_size();
    for (name, parent) in [("AMERICAS", None), (" americas ", None), ("usa", Some(&americas)), ("USA", Some(&americas))]
    {
        let reply = app.post("/v1/event-groups", &json!({ "name": name, "parent_id": parent }));
        expect_problem(&reply, 409, "duplicate_group_name", &format!("{name:?} in {parent:?}"));
    }
    assert_eq!(app.audit_size(), before);
    app.create_group("USA", Some(&europe));
    app.create_group("USA", None);
}

#[test]
fn mixing_api_and_admin_functions_on_a_role_is_409_mixed_role_either_way() {
    let app = spawn_app();
    let (api, admin) = api_and_admin_roles(&app);
    let empty = app.create_role("Empty");
    let before = app.audit_size();
    let cases = [
        (&api, json!(["security.roles.read"]), "an admin function on an API role"),
        (&admin, json!(["api.events.read"]), "an API function on an admin role"),
        (&empty, json!(["api.events.read", "security.roles.read"]), "both at once on an empty role"),
    ];
    for (role, functions, what) in &cases {
        let reply = app.post(&format!("/v1/roles/{role}/functions/activate"), &json!({ "functions": functions }));
        expect_problem(&reply, 409, "mixed_role", what);
    }
    assert_eq!(app.audit_size(), before);
    assert_eq!(app.get(&format!("/v1/roles/{api}")).json()["functions"], json!(["api.events.read"]));
    assert_eq!(app.get(&format!("/v1/roles/{admin}")).json()["functions"], json!(["security.roles.read"]));
    assert_eq!(app.get(&format!("/v1/roles/{empty}")).json()["functions"], json!([]));
}

#[test]
fn an_api_role_is_standalone_so_combining_it_with_another_role_is_409() {
    let app = spawn_app();
    let (api, admin) = api_and_admin_roles(&app);
    let api_user = app.create_user("Attendance app");
    app.assign(&api_user, &api);
    let person = app.create_user("Auditor");
    app.assign(&person, &admin);
    // A role with no functions yet, held by someone who also holds an admin role.
    let future_api = app.create_role("Future API role");
    app.assign(&person, &future_api);
    let before = app.audit_size();

    let reply = app.put(&format!("/v1/users/{person}/roles/{api}"), None);
    expect_problem(&reply, 409, "standalone_api_role", "an API role for a user holding another role");
    let reply = app.put(&format!("/v1/users/{api_user}/roles/{admin}"), None);
    expect_problem(&reply, 409, "standalone_api_role", "another role for a user holding an API role");
    let reply =
        app.post(&format!("/v1/roles/{future_api}/functions/activate"), &json!({ "functions": ["api.events.read"] }));
    expect_problem(&reply, 409, "standalone_api_role", "an API function on a role whose holder holds another role");
    // The detail says how to fix it (issue #13): separate users, or unassign first.
    let detail = reply.json()["detail"].as_str().unwrap_or_default().to_owned();
    assert!(detail.contains("createUser") && detail.contains("unassignRole"), "{detail}");

    assert_eq!(app.audit_size(), before);
    assert_eq!(app.get(&format!("/v1/users/{api_user}")).json()["roles"], json!([api]));
    assert_eq!(app.get(&format!("/v1/roles/{future_api}")).json()["functions"], json!([]));
}

#[test]
fn locking_yourself_out_is_409_self_lockout() {
    let app = spawn_app();
    let (me, my_role) = administrator(&app);
    let before = app.audit_size();
    let attempts = [
        ("POST", format!("/v1/users/{me}/disable"), "disabling yourself"),
        ("DELETE", format!("/v1/users/{me}/key"), "revoking your own key"),
        ("DELETE", format!("/v1/users/{me}/roles/{my_role}"), "unassigning your own role"),
    ];
    for (method, path, what) in &attempts {
        expect_problem(&send(&app, method, path, None, None), 409, "self_lockout", what);
    }
    assert_eq!(app.audit_size(), before);
    app.get("/v1/roles").expect(200);
}

#[test]
fn unassigning_a_role_not_held_is_404_role_not_assigned() {
    let app = spawn_app();
    let role = app.create_role("Reporting");
    let user = app.create_user("Auditor");
    let before = app.audit_size();
    expect_problem(&app.delete(&format!("/v1/users/{user}/roles/{role}")), 404, "role_not_assigned", "never held");
    assert_eq!(app.audit_size(), before);
    app.assign(&user, &role);
    app.delete(&format!("/v1/users/{user}/roles/{role}")).expect(200);
    let before = app.audit_size();
    expect_problem(&app.delete(&format!("/v1/users/{user}/roles/{role}")), 404, "role_not_assigned", "no longer held");
    assert_eq!(app.audit_size(), before);
}

#[test]
fn removing_an_event_not_in_the_group_is_404_event_not_in_group() {
    let app = spawn_app();
    let americas = app.create_group("Americas", None);
    let usa = app.create_group("USA", Some(&americas));
    app.add_event(&usa, "summit-nyc");
    let before = app.audit_size();
    let reply = app.delete(&format!("/v1/event-groups/{americas}/events/summit-nyc"));
    expect_problem(&reply, 404, "event_not_in_group", "an event of a nested group");
    let reply = app.delete(&format!("/v1/event-groups/{usa}/events/gala-paris"));
    expect_problem(&reply, 404, "event_not_in_group", "an event in no group");
    assert_eq!(app.audit_size(), before);
}

#[test]
fn revoking_when_there_is_no_working_key_is_404_no_key() {
    let app = spawn_app();
    let user = app.create_user("Attendance app");
    let before = app.audit_size();
    expect_problem(&app.delete(&format!("/v1/users/{user}/key")), 404, "no_key", "never had a key");
    assert_eq!(app.audit_size(), before);
    app.generate_key(&user, &json!({}));
    app.delete(&format!("/v1/users/{user}/key")).expect(200);
    let before = app.audit_size();
    expect_problem(&app.delete(&format!("/v1/users/{user}/key")), 404, "no_key", "already revoked");
    assert_eq!(app.audit_size(), before);
}

/// A createRole body of exactly `len` bytes.
fn role_body_of_length(len: usize) -> Vec<u8> {
    let frame = r#"{"description":""}"#.len();
    format!(r#"{{"description":"{}"}}"#, "a".repeat(len - frame)).into_bytes()
}

#[test]
fn a_body_over_64_kib_is_413_and_one_of_exactly_64_kib_is_read() {
    let app = spawn_app();
    let before = app.audit_size();
    let over = role_body_of_length(64 * 1024 + 1);
    expect_problem(
        &send(&app, "POST", "/v1/roles", Some("application/json"), Some(&over)),
        413,
        "payload_too_large",
        "64 KiB + 1",
    );
    // Exactly the limit is read, and judged on its merits: far too long a description.
    let limit = role_body_of_length(64 * 1024);
    expect_problem(
        &send(&app, "POST", "/v1/roles", Some("application/json"), Some(&limit)),
        422,
        "invalid_value",
        "64 KiB",
    );
    assert_eq!(app.audit_size(), before);
}

#[test]
fn a_body_that_is_not_declared_json_is_415() {
    let app = spawn_app();
    let body = br#"{"description":"API Access"}"#;
    let before = app.audit_size();
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("text/json"), None] {
        let reply = send(&app, "POST", "/v1/roles", content_type, Some(body));
        expect_problem(&reply, 415, "unsupported_media_type", &format!("{content_type:?}"));
    }
    assert_eq!(app.audit_size(), before);
    send(&app, "POST", "/v1/roles", Some("application/json; charset=utf-8"), Some(body)).expect(201);
}

/// The `ETag` of a resource, and its `version` field.
fn etag_and_version(app: &TestApp, path: &str) -> (String, u64) {
    let reply = app.get(path);
    reply.expect(200);
    let etag = reply.header("etag").expect("ETag").to_owned();
    let version = reply.json()["version"].as_u64().expect("version");
    assert_eq!(etag, format!("\"{version}\""), "{path}: the ETag is the version");
    (etag, version)
}

#[test]
fn if_match_with_a_stale_version_is_412_and_appends_nothing_and_the_current_one_passes() {
    let app = spawn_app();
    let role = app.create_role("Target role");
    let user = app.create_user("Target user");
    let group = app.create_group("Target group", None);
    // For each kind of resource: where to read it, a change that moves its version, and
    // the guarded change.
    let cases = [
        (
            format!("/v1/roles/{role}"),
            ("POST", format!("/v1/roles/{role}/functions/activate"), Some(r#"{"functions":["api.events.read"]}"#)),
            ("POST", format!("/v1/roles/{role}/functions/activate"), Some(r#"{"functions":["api.people.read"]}"#)),
        ),
        (
            format!("/v1/users/{user}"),
            ("POST", format!("/v1/users/{user}/disable"), None),
            ("POST", format!("/v1/users/{user}/enable"), None),
        ),
        (
            format!("/v1/event-groups/{group}"),
            ("PUT", format!("/v1/event-groups/{group}/events/summit-nyc"), None),
            ("PUT", format!("/v1/event-groups/{group}/events/gala-paris"), None),
        ),
        (
            format!("/v1/users/{user}"),
            ("PUT", format!("/v1/users/{user}/event-access"), Some(r#"{"all_events":true}"#)),
            ("POST", format!("/v1/users/{user}/key"), Some("{}")),
        ),
    ];
    let with = |(method, path, body): &(&str, String, Option<&str>), if_match: Option<&str>| {
        let extra: Vec<(&str, &str)> = if_match.map(|value| ("if-match", value)).into_iter().collect();
        send_with(&app, method, path, &extra, body.map(|_| "application/json"), body.map(str::as_bytes))
    };
    for (resource, bump, guarded) in &cases {
        let (stale_etag, stale_version) = etag_and_version(&app, resource);
        with(bump, None).expect(200);
        let current = app.get(resource).json();
        let before = app.audit_size();
        for stale in [stale_etag.clone(), stale_version.to_string(), format!("W/{stale_etag}")] {
            let reply = with(guarded, Some(&stale));
            expect_problem(&reply, 412, "version_mismatch", &format!("{} with If-Match {stale}", guarded.1));
        }
        assert_eq!(app.audit_size(), before, "{resource}");
        assert_eq!(app.get(resource).json(), current, "{resource} changed");

        let (etag, _) = etag_and_version(&app, resource);
        let reply = with(guarded, Some(&etag));
        assert!(reply.status == 200 || reply.status == 201, "{}: {} {}", guarded.1, reply.status, reply.body);
        let (_, version) = etag_and_version(&app, resource);
        with(guarded, Some(&version.to_string())).expect(if guarded.1.ends_with("/key") { 201 } else { 200 });
        with(guarded, Some("*")).expect(if guarded.1.ends_with("/key") { 201 } else { 200 });
    }
}

#[test]
fn a_malformed_if_match_is_400_and_appends_nothing() {
    let app = spawn_app();
    let user = app.create_user("Target user");
    let before = app.audit_size();
    for value in ["abc", "\"12", "-1", "\"\"", "1.0", "99999999999999999999999", "\"1\", \"2\""] {
        let reply = send_with(&app, "POST", &format!("/v1/users/{user}/disable"), &[("if-match", value)], None, None);
        expect_problem(&reply, 400, "invalid_header", value);
    }
    assert_eq!(app.audit_size(), before);
    assert_eq!(app.get(&format!("/v1/users/{user}")).json()["enabled"], true);
}

#[test]
fn an_unknown_route_is_a_404_problem() {
    let app = spawn_app();
    let role = app.create_role("Target role");
    let before = app.audit_size();
    for (method, path) in [
        ("GET", "/".to_owned()),
        ("GET", "/v1".to_owned()),
        ("GET", "/v1/nothing".to_owned()),
        ("GET", "/v2/roles".to_owned()),
        ("GET", format!("/v1/roles/{role}/nothing")),
        ("POST", "/v1/roles/".to_owned()),
    ] {
        expect_problem(&send(&app, method, &path, None, None), 404, "not_found", &format!("{method} {path}"));
    }
    // A known path with a method it does not support is a 405 problem (tests/it/methods.rs
    // has the rest).
    for (method, path) in [
        ("PATCH", format!("/v1/roles/{role}")),
        ("DELETE", "/v1/roles".to_owned()),
        ("POST", "/v1/functions".to_owned()),
    ] {
        expect_problem(&send(&app, method, &path, None, None), 405, "method_not_allowed", &format!("{method} {path}"));
    }
    assert_eq!(app.audit_size(), before);
}

const LISTS: [&str; 5] = ["/v1/functions", "/v1/roles", "/v1/users", "/v1/event-groups", "/v1/audit/events"];

#[test]
fn a_bad_limit_or_paging_parameter_is_400_invalid_query_on_every_list() {
    let app = spawn_app();
    for list in LISTS {
        for query in [
            "limit=0",
            "limit=5000",
            "limit=1001",
            "limit=abc",
            "limit=",
            "limit=-1",
            "after=abc",
            "after=-1",
            "page=2",
        ] {
            let path = format!("{list}?{query}");
            expect_problem(&app.get(&path), 400, "invalid_query", &path);
        }
        for query in ["limit=1", "limit=1000", "after=0", "after=999999"] {
            app.get(&format!("{list}?{query}")).expect(200);
        }
    }
}

/// Every item of a list, read page by page through `next`, and how many pages it took.
fn walk(app: &TestApp, list: &str, limit: u32) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut path = format!("{list}?limit={limit}");
    loop {
        let reply = app.get(&path);
        reply.expect(200);
        let page = reply.json();
        let page_items = page["items"].as_array().expect("items");
        assert!(page_items.len() <= limit as usize, "{path}: page larger than the limit");
        assert!(!page_items.is_empty(), "{path}: an empty page");
        items.extend(page_items.iter().cloned());
        pages += 1;
        assert!(pages <= 1000, "{list}: the pages never end");
        match &page["next"] {
            Value::Null => break,
            next => path = format!("{list}?limit={limit}&after={}", next.as_u64().expect("next is a number")),
        }
    }
    (items, pages)
}

#[test]
fn paging_through_next_yields_every_item_exactly_once_in_creation_order() {
    let app = spawn_app();
    let mut roles = vec!["Administrator".to_owned()];
    for n in 1..=5 {
        let description = format!("Role {n}");
        app.create_role(&description);
        roles.push(description);
        app.create_user(&format!("User {n}"));
        app.create_group(&format!("Group {n}"), None);
    }

    let (items, pages) = walk(&app, "/v1/roles", 2);
    let descriptions: Vec<&str> = items.iter().map(|role| role["description"].as_str().expect("description")).collect();
    assert_eq!(descriptions, roles);
    assert_eq!(pages, 3, "six roles in pages of two, with no empty last page");

    for (list, limit) in [
        ("/v1/roles", 4),
        ("/v1/users", 2),
        ("/v1/users", 5),
        ("/v1/event-groups", 2),
        ("/v1/functions", 5),
        ("/v1/audit/events", 7),
    ] {
        let everything = app.get(&format!("{list}?limit=1000")).json()["items"].clone();
        let total = everything.as_array().map(Vec::len).expect("items");
        let (items, pages) = walk(&app, list, limit);
        assert_eq!(Value::from(items), everything, "{list} in pages of {limit}");
        assert_eq!(pages, total.div_ceil(limit as usize), "{list} in pages of {limit}");
    }
}

#[test]
fn hostile_input_is_refused_with_a_4xx_problem_and_the_server_keeps_answering() {
    let app = spawn_app();
    let user = app.create_user("Target user");
    let group = app.create_group("Target group", None);
    let before = app.audit_size();

    let deep_arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    let deep_in_field = format!(r#"{{"description":{}"x"{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
    let mut bodies: Vec<(&str, Vec<u8>)> = vec![
        ("10000 nested arrays", deep_arrays.into_bytes()),
        ("10000 nested objects", deep_objects.into_bytes()),
        ("10000 nested arrays in a field", deep_in_field.into_bytes()),
        ("a huge float", br#"{"description":1e400}"#.to_vec()),
        ("a huge integer", format!(r#"{{"description":{}}}"#, "9".repeat(5000)).into_bytes()),
        ("raw null bytes", b"\0\0\0\0".to_vec()),
        ("a raw null byte in a string", b"{\"description\":\"a\0b\"}".to_vec()),
        ("an escaped null byte in a string", br#"{"description":"a\u0000b"}"#.to_vec()),
        ("invalid UTF-8 in a string", b"{\"description\":\"\xff\xfe\xfd\"}".to_vec()),
        ("invalid UTF-8 outside strings", b"\xc3\x28{}".to_vec()),
        ("a lone surrogate", br#"{"description":"\ud800"}"#.to_vec()),
        ("a duplicate field", br#"{"description":"a","description":"b"}"#.to_vec()),
        ("a byte order mark", b"\xef\xbb\xbf{\"description\":\"x\"}".to_vec()),
    ];
    bodies.push(("60000 spaces then junk", [vec![b' '; 60_000], b"x".to_vec()].concat()));
    let mut refused: Vec<(String, Reply)> = Vec::new();
    for path in ["/v1/roles", "/v1/users", "/v1/event-groups", "/v1/check"] {
        for (what, body) in &bodies {
            let reply = send(&app, "POST", path, Some("application/json"), Some(body));
            refused.push((format!("POST {path} with {what}"), reply));
        }
    }
    for (what, body) in [
        ("a grace period beyond u64", r#"{"grace_seconds":18446744073709551616}"#),
        ("a huge float grace period", r#"{"grace_seconds":1e400}"#),
        ("a year beyond 9999", r#"{"expires_at":"+99999-01-01T00:00:00Z"}"#),
        ("a negative year", r#"{"expires_at":"-0001-01-01T00:00:00Z"}"#),
    ] {
        let reply = send_json(&app, "POST", &format!("/v1/users/{user}/key"), body);
        refused.push((format!("generateKey with {what}"), reply));
    }
    let long_segment = "a".repeat(40_000);
    for path in [
        format!("/v1/roles/{}", "x".repeat(10_000)),
        format!("/v1/users/{long_segment}"),
        format!("/v1/users/{long_segment}/disable"),
        format!("/v1/event-groups/{group}/events/{}", "e".repeat(10_000)),
        "/v1/roles/%00".to_owned(),
        "/v1/users/%FF%FE".to_owned(),
        "/v1/event-groups/%C0%AF".to_owned(),
        format!("/v1/roles?limit={}", "9".repeat(1000)),
        "/v1/roles?after=1e999".to_owned(),
        "/v1/roles?limit=1&limit=2".to_owned(),
    ] {
        let method = if path.ends_with("/disable") {
            "POST"
        } else if path.contains("/events/") {
            "PUT"
        } else {
            "GET"
        };
        let reply = send(&app, method, &path, None, None);
        refused.push((format!("{method} {}", &path[..path.len().min(60)]), reply));
    }
    let long_header = "k".repeat(10_000);
    for (name, value) in
        [("idempotency-key", long_header.as_str()), ("if-match", long_header.as_str()), ("idempotency-key", "")]
    {
        let reply = send_with(&app, "POST", &format!("/v1/users/{user}/disable"), &[(name, value)], None, None);
        refused.push((format!("a {} byte {name}", value.len()), reply));
    }
    let junk_key = format!("Bearer {}", "k".repeat(10_000));
    refused.push(("a 10000 byte key".to_owned(), app.raw("GET", "/v1/roles", &[("authorization", &junk_key)], None)));

    for (what, reply) in &refused {
        assert!((400..500).contains(&reply.status), "{what}: {} {}", reply.status, reply.body);
        assert_eq!(reply.header("content-type"), Some("application/problem+json"), "{what}: {}", reply.body);
        assert_eq!(reply.json()["status"], reply.status, "{what}");
    }

    // A request head beyond what the HTTP layer reads is cut off there, before any
    // handler, so its answer is a bare 4xx rather than a problem; never a 5xx.
    let long_path =
        format!("GET /v1/roles/{} HTTP/1.1\r\nHost: keyledger\r\nConnection: close\r\n\r\n", "x".repeat(200_000));
    let many_headers = format!(
        "GET /v1/roles HTTP/1.1\r\nHost: keyledger\r\n{}Connection: close\r\n\r\n",
        (0..500).map(|n| format!("X-Junk-{n}: {n}\r\n")).collect::<String>()
    );
    for (what, request) in [
        ("a 200 KB request line", long_path.as_bytes()),
        ("500 headers", many_headers.as_bytes()),
        ("a request line that is not HTTP", b"GARBAGE\r\n\r\n".as_slice()),
    ] {
        let status = raw_status(&app, request);
        assert!((400..500).contains(&status), "{what}: {status}");
    }

    let health = app.raw("GET", "/health", &[], None);
    health.expect(200);
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(app.audit_size(), before);
    assert_eq!(app.get("/v1/audit/verify").json()["valid"], true);
}

// Guards against a bug found while writing these tests (at 2e0b938): verifyAuditLog read
// the log's size, then walked the chain to the end of the log as it was by then, and
// required `verified == size`; a record appended between the two reads gave `valid:
// false` with `error: null`, a false report of tampering.
#[test]
fn the_audit_log_verifies_as_valid_while_it_is_being_written() {
    let app = spawn_app();
    let writing = std::sync::atomic::AtomicBool::new(true);
    let false_alarms = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..2)
            .map(|writer| {
                let app = &app;
                scope.spawn(move || {
                    for n in 0..150 {
                        app.post("/v1/users", &json!({ "name": format!("Load {writer}.{n}") })).expect(201);
                    }
                })
            })
            .collect();
        let verifier = scope.spawn(|| {
            let mut false_alarms = Vec::new();
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                let verification = app.get("/v1/audit/verify").json();
                if verification["valid"] != true {
                    false_alarms.push(verification);
                }
            }
            false_alarms
        });
        for writer in writers {
            writer.join().expect("writer");
        }
        writing.store(false, std::sync::atomic::Ordering::Relaxed);
        verifier.join().expect("verifier")
    });
    assert_eq!(app.get("/v1/audit/verify").json()["valid"], true, "the log is intact");
    assert!(
        false_alarms.is_empty(),
        "an intact log was reported invalid {} times, first: {:?}",
        false_alarms.len(),
        false_alarms.first()
    );
}

/// Found by fuzzing: an expiry after year 9999 in UTC was accepted and written in a form
/// replay could not read back, so the server could not restart.
#[test]
fn an_expiry_past_year_9999_in_utc_is_422_and_the_server_still_restarts() {
    let app = crate::helpers::spawn_app();
    let (_, user, _) = app.api_user();
    let before = app.audit_size();
    app.post(&format!("/v1/users/{user}/key"), &serde_json::json!({ "expires_at": "9999-12-31T23:59:59-01:00" }))
        .expect_problem(422, "invalid_value");
    assert_eq!(app.audit_size(), before);
    let app = app.restart();
    app.get("/health").expect(200);
}
