//! Retrying a mutation with an `Idempotency-Key` is safe: the retry gets the first answer
//! and changes nothing. And every mutation says where in the log it landed.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, spawn_app, spawn_app_with};

/// Sends a request with `key`, an optional `Idempotency-Key` and an optional JSON body.
fn send(
    app: &TestApp,
    key: &str,
    method: &str,
    path: &str,
    idempotency_key: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let authorization = format!("Bearer {key}");
    let mut headers: Vec<(&str, &str)> = vec![("authorization", &authorization)];
    if let Some(idempotency_key) = idempotency_key {
        headers.push(("idempotency-key", idempotency_key));
    }
    let bytes = body.map(|body| serde_json::to_vec(body).expect("json"));
    if bytes.is_some() {
        headers.push(("content-type", "application/json"));
    }
    app.raw(method, path, &headers, bytes.as_deref())
}

/// The `Keyledger-Position` header of a reply.
#[track_caller]
fn position(reply: &Reply) -> u64 {
    reply
        .header("keyledger-position")
        .and_then(|position| position.parse().ok())
        .unwrap_or_else(|| panic!("no Keyledger-Position: {:?}", reply.headers))
}

#[test]
fn a_retried_create_with_the_same_idempotency_key_replays_the_first_answer_and_appends_nothing() {
    let app = spawn_app();
    let key = app.admin_key.clone();
    let creations = [
        ("/v1/roles", json!({ "description": "API Access" }), "description"),
        ("/v1/users", json!({ "name": "Attendance app" }), "name"),
        ("/v1/event-groups", json!({ "name": "Americas" }), "name"),
    ];
    for (list, body, field) in &creations {
        let idempotency_key = format!("create {list}");
        let first = send(&app, &key, "POST", list, Some(&idempotency_key), Some(body));
        first.expect(201);
        assert_eq!(first.header("idempotent-replayed"), None, "{list}: the first answer is not a replay");
        let size = app.audit_size();

        for _ in 0..2 {
            let retry = send(&app, &key, "POST", list, Some(&idempotency_key), Some(body));
            assert_eq!(retry.status, first.status, "{list}");
            assert_eq!(retry.body, first.body, "{list}");
            assert_eq!(retry.header("idempotent-replayed"), Some("true"), "{list}");
            for header in ["keyledger-position", "location", "etag", "content-type"] {
                assert_eq!(retry.header(header), first.header(header), "{list}: {header}");
            }
        }
        assert_eq!(app.audit_size(), size, "{list}: a replay appends nothing");
        let named: Vec<Value> = app.get(list).json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|item| item[field] == body[field])
            .cloned()
            .collect();
        assert_eq!(named.len(), 1, "{list}: exactly one was made");
        assert_eq!(named[0]["id"], first.json()["id"], "{list}");
    }
}

#[test]
fn the_same_idempotency_key_for_a_different_request_is_422_and_appends_nothing() {
    let app = spawn_app();
    let key = app.admin_key.clone();
    send(&app, &key, "POST", "/v1/roles", Some("k-1"), Some(&json!({ "description": "API Access" }))).expect(201);
    let size = app.audit_size();

    let other_body = send(&app, &key, "POST", "/v1/roles", Some("k-1"), Some(&json!({ "description": "Reporting" })));
    other_body.expect_problem(422, "idempotency_key_reused");
    let other_path = send(&app, &key, "POST", "/v1/event-groups", Some("k-1"), Some(&json!({ "name": "API Access" })));
    other_path.expect_problem(422, "idempotency_key_reused");

    assert_eq!(app.audit_size(), size);
    let descriptions: Vec<Value> = app.get("/v1/roles").json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["description"].clone())
        .collect();
    assert_eq!(descriptions, [json!("Administrator"), json!("API Access")]);
    assert_eq!(app.get("/v1/event-groups").json()["items"], json!([]));
    // The first request can still be retried.
    let retry = send(&app, &key, "POST", "/v1/roles", Some("k-1"), Some(&json!({ "description": "API Access" })));
    retry.expect(201);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
}

#[test]
fn different_admin_users_may_use_the_same_idempotency_key_independently() {
    let app = spawn_app();
    let (_, deputy) = app.user_with_functions("Deputy", &["security.users.manage"]);
    let admin = app.admin_key.clone();
    let body = json!({ "name": "Attendance app" });
    // User names are unique by look, so the deputy names its own user; were the key
    // shared, its different body would be refused as a reused key.
    let their_body = json!({ "name": "Invoicing app" });

    let mine = send(&app, &admin, "POST", "/v1/users", Some("shared"), Some(&body));
    mine.expect(201);
    let theirs = send(&app, &deputy, "POST", "/v1/users", Some("shared"), Some(&their_body));
    theirs.expect(201);
    assert_eq!(theirs.header("idempotent-replayed"), None, "another admin's key is not replayed");
    assert_ne!(theirs.json()["id"], mine.json()["id"], "each made their own user");
    let size = app.audit_size();

    // Each replays their own answer.
    let my_retry = send(&app, &admin, "POST", "/v1/users", Some("shared"), Some(&body));
    let their_retry = send(&app, &deputy, "POST", "/v1/users", Some("shared"), Some(&their_body));
    assert_eq!((my_retry.header("idempotent-replayed"), my_retry.body.as_str()), (Some("true"), mine.body.as_str()));
    assert_eq!(
        (their_retry.header("idempotent-replayed"), their_retry.body.as_str()),
        (Some("true"), theirs.body.as_str())
    );
    // And a different body is judged against their own first use only.
    let different = send(&app, &deputy, "POST", "/v1/users", Some("shared"), Some(&json!({ "name": "Other" })));
    different.expect_problem(422, "idempotency_key_reused");
    assert_eq!(app.audit_size(), size);
}

#[test]
fn a_retried_generate_key_returns_the_same_key_id_without_the_secret_and_the_first_key_works() {
    let app = spawn_app();
    let role = app.create_role("API Access");
    app.activate(&role, &["api.events.read"]);
    let user = app.create_user("Attendance app");
    app.assign(&user, &role);
    let path = format!("/v1/users/{user}/key");
    let options = json!({ "grace_seconds": 60 });

    let first = send(&app, &app.admin_key, "POST", &path, Some("rotate-1"), Some(&options));
    first.expect(201);
    let generated = first.json();
    let secret = generated["key"].as_str().expect("the secret is shown once").to_owned();
    let size = app.audit_size();

    let retry = send(&app, &app.admin_key, "POST", &path, Some("rotate-1"), Some(&options));
    retry.expect(201);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.header("keyledger-position"), first.header("keyledger-position"));
    let replayed = retry.json();
    assert!(replayed.get("key").is_none(), "the secret is never shown twice: {replayed}");
    let mut without_secret = generated.clone();
    without_secret.as_object_mut().expect("object").remove("key");
    assert_eq!(replayed, without_secret, "everything but the secret is the same");

    assert_eq!(app.audit_size(), size, "no second key was made");
    assert_eq!(app.get(&format!("/v1/users/{user}")).json()["key"]["key_id"], generated["key_id"]);
    let answer = app.check(&secret, "api.events.read", None);
    assert_eq!(answer["reason"], "granted");
    assert_eq!(answer["key_id"], generated["key_id"]);
}

#[test]
fn a_refused_mutation_retried_with_the_same_key_gets_the_same_refusal_and_appends_nothing() {
    let app = spawn_app();
    let user = app.create_user("Attendance app");
    let path = format!("/v1/users/{user}/key");
    let first = send(&app, &app.admin_key, "DELETE", &path, Some("revoke-1"), None);
    first.expect_problem(404, "no_key");
    let size = app.audit_size();
    let retry = send(&app, &app.admin_key, "DELETE", &path, Some("revoke-1"), None);
    retry.expect_problem(404, "no_key");
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.audit_size(), size);
}

#[test]
fn a_replay_does_not_run_the_mutation_again_even_after_the_state_changed() {
    let app = spawn_app();
    let user = app.create_user("Attendance app");
    let disable = format!("/v1/users/{user}/disable");
    let first = send(&app, &app.admin_key, "POST", &disable, Some("disable-1"), None);
    first.expect(200);
    assert_eq!(first.json()["enabled"], false);
    app.post_empty(&format!("/v1/users/{user}/enable")).expect(200);
    let size = app.audit_size();

    let retry = send(&app, &app.admin_key, "POST", &disable, Some("disable-1"), None);
    retry.expect(200);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body, first.body, "the first answer, as it was");
    assert_eq!(app.audit_size(), size);
    assert_eq!(app.get(&format!("/v1/users/{user}")).json()["enabled"], true, "the user was not disabled again");
}

#[test]
fn an_idempotency_key_must_be_1_to_255_characters() {
    let app = spawn_app();
    let size = app.audit_size();
    let too_long = "k".repeat(256);
    for idempotency_key in ["", too_long.as_str()] {
        let reply = send(
            &app,
            &app.admin_key,
            "POST",
            "/v1/roles",
            Some(idempotency_key),
            Some(&json!({ "description": "API Access" })),
        );
        reply.expect_problem(400, "invalid_header");
    }
    assert_eq!(app.audit_size(), size);
    let longest = "k".repeat(255);
    send(&app, &app.admin_key, "POST", "/v1/roles", Some(&longest), Some(&json!({ "description": "API Access" })))
        .expect(201);
}

/// A mutation to make: (what, method, path, body, status, how many events it appends).
type Mutation = (&'static str, &'static str, String, Option<Value>, u16, u64);

#[test]
fn every_mutation_reports_its_log_position_which_is_the_audit_log_size_right_after() {
    let app = spawn_app();
    let admin = app.admin_key.clone();
    let role = app.create_role("API Access");
    let user = app.create_user("Attendance app");
    let group = app.create_group("Americas", None);
    let read = json!({ "functions": ["api.attendees.read", "api.events.read", "api.people.read"] });
    let mutations: Vec<Mutation> = vec![
        ("createRole", "POST", "/v1/roles".to_owned(), Some(json!({ "description": "Reporting" })), 201, 1),
        ("activateFunctions", "POST", format!("/v1/roles/{role}/functions/activate"), Some(read.clone()), 200, 3),
        ("activateFunctions, all active", "POST", format!("/v1/roles/{role}/functions/activate"), Some(read), 200, 0),
        (
            "deactivateFunctions",
            "POST",
            format!("/v1/roles/{role}/functions/deactivate"),
            Some(json!({ "functions": ["api.people.read"] })),
            200,
            1,
        ),
        ("createUser", "POST", "/v1/users".to_owned(), Some(json!({ "name": "Auditor" })), 201, 1),
        ("assignRole", "PUT", format!("/v1/users/{user}/roles/{role}"), None, 200, 1),
        (
            "setUserEventAccess",
            "PUT",
            format!("/v1/users/{user}/event-access"),
            Some(json!({ "all_events": false, "groups": [group] })),
            200,
            1,
        ),
        (
            "createEventGroup",
            "POST",
            "/v1/event-groups".to_owned(),
            Some(json!({ "name": "USA", "parent_id": group })),
            201,
            1,
        ),
        ("addEventToGroup", "PUT", format!("/v1/event-groups/{group}/events/summit-nyc"), None, 200, 1),
        ("removeEventFromGroup", "DELETE", format!("/v1/event-groups/{group}/events/summit-nyc"), None, 200, 1),
        ("generateKey", "POST", format!("/v1/users/{user}/key"), Some(json!({})), 201, 1),
        ("disableUser", "POST", format!("/v1/users/{user}/disable"), None, 200, 1),
        ("enableUser", "POST", format!("/v1/users/{user}/enable"), None, 200, 1),
        ("revokeKey", "DELETE", format!("/v1/users/{user}/key"), None, 200, 1),
        ("unassignRole", "DELETE", format!("/v1/users/{user}/roles/{role}"), None, 200, 1),
    ];
    for (what, method, path, body, status, appended) in &mutations {
        let before = app.audit_size();
        let reply = send(&app, &admin, method, path, None, body.as_ref());
        reply.expect(*status);
        let after = app.audit_size();
        assert_eq!(after, before + appended, "{what}: events appended");
        assert_eq!(position(&reply), after, "{what}: Keyledger-Position is the log size right after");
        let last = app.get(&format!("/v1/audit/events?after={}", after - 1)).json();
        assert_eq!(last["items"][0]["seq"], after, "{what}: the record at that position exists");
        if *appended > 0 {
            // The changed resource's version is the position of its last change.
            if let Some(etag) = reply.header("etag") {
                assert_eq!(etag, format!("\"{after}\""), "{what}: ETag");
            }
        }
    }
}

/// Sends `POST path` with an `Idempotency-Key` and then abandons it the way a client that
/// times out does: the connection is reset while the request is being carried out. A
/// `GET /health` is pipelined ahead of it; its answer is left unread, so closing the
/// socket resets the connection (no FIN), and actix drops the handler of the POST.
fn abandon_post(app: &TestApp, path: &str, idempotency_key: &str, body: &Value) {
    let body = serde_json::to_vec(body).expect("json");
    let mut request = b"GET /health HTTP/1.1\r\nHost: keyledger\r\n\r\n".to_vec();
    request.extend_from_slice(
        format!(
            "POST {path} HTTP/1.1\r\nHost: keyledger\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nIdempotency-Key: {idempotency_key}\r\nContent-Length: {}\r\n\r\n",
            app.admin_key,
            body.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(&body);
    let mut stream = TcpStream::connect(app.address.trim_start_matches("http://")).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    stream.write_all(&request).expect("send");
    // Wait for the health answer to arrive, so that it is unread when the socket closes.
    stream.peek(&mut [0_u8; 1]).expect("an answer to GET /health");
    drop(stream);
}

// Guards against a bug found while writing these tests (at 2e0b938): when actix dropped
// the handler of a request whose client reset the connection, the idempotency cache
// forgot the key, but the command was already queued and was committed anyway; the retry
// then ran again and made a second user.
#[test]
fn a_request_abandoned_by_its_client_and_retried_with_the_same_key_is_carried_out_once() {
    let app = spawn_app();
    for attempt in 0..3 {
        let name = format!("Attendance app {attempt}");
        let idempotency_key = format!("create-user-{attempt}");
        let body = json!({ "name": name });
        abandon_post(&app, "/v1/users", &idempotency_key, &body);

        // Retry until the first attempt's outcome is known.
        let mut retry = send(&app, &app.admin_key, "POST", "/v1/users", Some(&idempotency_key), Some(&body));
        for _ in 0..1000 {
            if retry.status != 409 {
                break;
            }
            retry.expect_problem(409, "idempotency_key_in_use");
            std::thread::sleep(Duration::from_millis(5));
            retry = send(&app, &app.admin_key, "POST", "/v1/users", Some(&idempotency_key), Some(&body));
        }
        retry.expect(201);
        let made = app.get("/v1/users?limit=1000").json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|user| user["name"] == name.as_str())
            .count();
        assert_eq!(
            made,
            1,
            "attempt {attempt}: users made; the retry's answer was replayed: {:?}",
            retry.header("idempotent-replayed")
        );
    }
}

/// A failed precondition depends on the moment, not on the request: it is not replayed,
/// so the client can read the new version and retry under the same key.
#[test]
fn a_request_refused_by_if_match_can_be_retried_with_the_same_key_and_a_fresh_version() {
    let app = spawn_app();
    let role = app.create_role("Reporting");
    let stale = app.get(&format!("/v1/roles/{role}")).header("etag").expect("etag").to_owned();
    app.activate(&role, &["security.roles.read"]);
    let path = format!("/v1/roles/{role}/functions/activate");
    let body = serde_json::to_vec(&json!({ "functions": ["security.users.read"] })).unwrap();
    let authorization = format!("Bearer {}", app.admin_key);
    let attempt = |etag: &str| {
        let headers = [
            ("authorization", authorization.as_str()),
            ("content-type", "application/json"),
            ("idempotency-key", "activate-users-read"),
            ("if-match", etag),
        ];
        app.raw("POST", &path, &headers, Some(&body))
    };
    attempt(&stale).expect_problem(412, "version_mismatch");
    let fresh = app.get(&format!("/v1/roles/{role}")).header("etag").expect("etag").to_owned();
    let retried = attempt(&fresh);
    retried.expect(200);
    assert_eq!(retried.header("idempotent-replayed"), None);
    assert!(retried.json()["functions"].as_array().unwrap().contains(&json!("security.users.read")));
}

/// Sends a request like [`send`], with an `If-Match` header.
fn send_if_match(app: &TestApp, path: &str, idempotency_key: &str, if_match: &str, body: &Value) -> Reply {
    let authorization = format!("Bearer {}", app.admin_key);
    let headers = [
        ("authorization", authorization.as_str()),
        ("idempotency-key", idempotency_key),
        ("if-match", if_match),
        ("content-type", "application/json"),
    ];
    app.raw("PUT", path, &headers, Some(&serde_json::to_vec(body).expect("json")))
}

#[test]
fn issue_9_the_same_idempotency_key_with_a_different_if_match_is_a_different_request() {
    let app = spawn_app();
    let user = app.create_user("Attendance app");
    let version = app.get(&format!("/v1/users/{user}")).header("etag").expect("etag").to_owned();
    let path = format!("/v1/users/{user}/event-access");
    let body = json!({ "all_events": true });
    send_if_match(&app, &path, "access once", &version, &body).expect(200);
    let size = app.audit_size();

    let stale = send_if_match(&app, &path, "access once", "\"1\"", &body);
    stale.expect_problem(422, "idempotency_key_reused");
    assert_eq!(app.audit_size(), size, "nothing was appended");
    send_if_match(&app, &path, "access once", &version, &body).expect(200);
    assert_eq!(app.audit_size(), size, "the same request is a replay");
}

#[test]
fn issue_9_a_request_refused_for_a_malformed_if_match_is_not_remembered_so_the_corrected_retry_runs() {
    let app = spawn_app();
    let user = app.create_user("Attendance app");
    let version = app.get(&format!("/v1/users/{user}")).header("etag").expect("etag").to_owned();
    let path = format!("/v1/users/{user}/event-access");
    let body = json!({ "all_events": true });
    let size = app.audit_size();
    send_if_match(&app, &path, "access once", "not a version", &body).expect_problem(400, "invalid_header");
    assert_eq!(app.audit_size(), size);

    let corrected = send_if_match(&app, &path, "access once", &version, &body);
    corrected.expect(200);
    assert_eq!(corrected.header("idempotent-replayed"), None);
    assert_eq!(app.get(&format!("/v1/users/{user}")).json()["event_access"]["all_events"], true, "{}", corrected.body);
}

#[test]
fn issue_9_the_idempotency_cache_forgets_its_oldest_answers_past_its_byte_budget() {
    let app = spawn_app_with(&["--idempotency-cache-bytes", "8192"]);
    let key = app.admin_key.clone();
    let body = |n: usize| json!({ "name": format!("User {n}"), "email": format!("{}@example.org", "u".repeat(200)) });
    let first = send(&app, &key, "POST", "/v1/users", Some("create 0"), Some(&body(0)));
    first.expect(201);
    for n in 1..40 {
        send(&app, &key, "POST", "/v1/users", Some(&format!("create {n}")), Some(&body(n))).expect(201);
    }
    // The newest answer is still remembered.
    let newest = send(&app, &key, "POST", "/v1/users", Some("create 39"), Some(&body(39)));
    assert_eq!(newest.header("idempotent-replayed"), Some("true"));
    // The oldest is forgotten: its retry runs again, instead of replaying the first 201,
    // and meets the user it made (user names are unique).
    let size = app.audit_size();
    let retry = send(&app, &key, "POST", "/v1/users", Some("create 0"), Some(&body(0)));
    retry.expect_problem(409, "lookalike_name");
    assert_eq!(retry.header("idempotent-replayed"), None);
    assert!(retry.body.contains(first.json()["id"].as_str().expect("an id")), "{}", retry.body);
    assert_eq!(app.audit_size(), size);
}
