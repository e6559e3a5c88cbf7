//! `importKey` (issue #14, point 8): an existing platform key (32 hexadecimal characters,
//! sent as the Basic password with an empty user name) or only its SHA-256 passes checks
//! like a generated key until rotated or revoked, is marked legacy in every view, and is
//! never stored, logged or echoed.

use std::path::Path;

use base64::Engine;
use serde_json::{Value, json};
use sha2::Digest;

use crate::helpers::{Reply, TestApp, spawn_app, spawn_app_logging_to, spawn_app_with};

/// A platform key as apps hold them today.
const LEGACY_KEY: &str = "3f2a9c4e7b1d08f56a2e4c9b7d1f3a5e";

fn import(app: &TestApp, user_id: &str, body: &Value) -> Reply {
    app.post(&format!("/v1/users/{user_id}/key/import"), body)
}

fn basic(key: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!(":{key}")))
}

/// `authorizeRequest` with the key as the Basic password, as the platform's apps send it.
fn authorize_basic(app: &TestApp, key: &str) -> Reply {
    app.raw("GET", "/v1/authorize?function=api.events.read", &[("authorization", &basic(key))], None)
}

fn authorize_bearer(app: &TestApp, key: &str) -> Reply {
    app.raw("GET", "/v1/authorize?function=api.events.read", &[("authorization", &format!("Bearer {key}"))], None)
}

fn sha256_hex(key: &str) -> String {
    sha2::Sha256::digest(key.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// An API user holding `api.events.read` on every event, with no key.
fn api_user_without_key(app: &TestApp, name: &str) -> String {
    let role = app.create_role(&format!("Role of {name}"));
    app.activate(&role, &["api.events.read"]);
    let user = app.create_user(name);
    app.assign(&user, &role);
    app.put(&format!("/v1/users/{user}/event-access"), Some(&json!({ "all_events": true, "groups": [] }))).expect(200);
    user
}

#[test]
fn an_imported_key_passes_basic_and_bearer_checks_and_is_legacy_in_every_view() {
    let app = spawn_app();
    let user = api_user_without_key(&app, "Legacy app");
    assert_eq!(authorize_basic(&app, LEGACY_KEY).status, 401, "unknown before the import");
    let imported = import(&app, &user, &json!({ "key": LEGACY_KEY }));
    imported.expect(201);
    let imported = imported.json();
    assert_eq!((&imported["legacy"], &imported["user_id"]), (&json!(true), &json!(user)));
    let key_id = imported["key_id"].as_str().expect("key id").to_owned();

    let basic = authorize_basic(&app, LEGACY_KEY);
    assert_eq!((basic.status, basic.header("keyledger-key-id")), (200, Some(key_id.as_str())), "{}", basic.body);
    assert_eq!(authorize_bearer(&app, LEGACY_KEY).status, 200);
    let checked = app.check(LEGACY_KEY, "api.events.read", None);
    assert_eq!((&checked["reason"], &checked["key_id"]), (&json!("granted"), &json!(key_id)));
    assert_eq!(app.check_reason(LEGACY_KEY, "api.attendees.read", None), "function_not_granted");

    let shown = app.get(&format!("/v1/users/{user}")).json();
    assert_eq!((&shown["key"]["key_id"], &shown["key"]["legacy"]), (&json!(key_id), &json!(true)), "{shown}");
    let whoami = app.raw("GET", "/v1/whoami", &[("authorization", &self::basic(LEGACY_KEY))], None);
    whoami.expect(200);
    assert_eq!((&whoami.json()["key_id"], &whoami.json()["legacy"]), (&json!(key_id), &json!(true)));
    let credentials = app.get("/v1/audit/credential-report").json();
    let row = credentials["rows"].as_array().expect("rows").iter().find(|row| row["key_id"] == key_id.as_str());
    assert_eq!(row.map(|row| row["legacy"].clone()), Some(json!(true)), "{credentials}");
    let report = app.get("/v1/audit/access-report").json();
    let row = report["rows"].as_array().expect("rows").iter().find(|row| row["user_id"] == user.as_str());
    let row = row.expect("the user's row");
    assert_eq!((&row["key_legacy"], &row["flags"]["legacy_key_rotate"]), (&json!(true), &json!(true)), "{row}");
    let found = app.post("/v1/audit/key-lookup", &json!({ "key": LEGACY_KEY }));
    found.expect(200);
    assert_eq!((&found.json()["key"]["key_id"], &found.json()["key"]["legacy"]), (&json!(key_id), &json!(true)));
    assert_eq!(found.json()["records"][0]["type"], "KeyImported");

    // Once known, the same key cannot be imported again, for this user or another.
    let other = api_user_without_key(&app, "Other app");
    let again = import(&app, &other, &json!({ "key_sha256": sha256_hex(LEGACY_KEY) }));
    again.expect_problem(409, "key_already_known");
    assert!(!again.body.contains(LEGACY_KEY));
    // Revoked, it passes no check.
    app.delete(&format!("/v1/users/{user}/key")).expect(200);
    assert_eq!(app.check_reason(LEGACY_KEY, "api.events.read", None), "revoked_key");
    app.verified_audit_size();
}

#[test]
fn a_key_imported_by_its_sha256_alone_passes_checks_by_the_key() {
    let app = spawn_app();
    let user = api_user_without_key(&app, "Hashed app");
    let key = "AB12cd34EF56ab78CD90ef12AB34cd56";
    import(&app, &user, &json!({ "key_sha256": sha256_hex(key).to_uppercase() })).expect(201);
    assert_eq!(authorize_basic(&app, key).status, 200);
    assert_eq!(app.check_reason(key, "api.events.read", None), "granted");
    // The key is its 32 characters as sent: another case is another key.
    assert_eq!(app.check_reason(&key.to_lowercase(), "api.events.read", None), "unknown_key");
}

#[test]
fn rotating_an_imported_key_issues_a_kl_key_and_the_imported_one_works_through_the_grace_window() {
    let app = spawn_app();
    let user = api_user_without_key(&app, "Rotating app");
    import(&app, &user, &json!({ "key": LEGACY_KEY })).expect(201);
    let rotated = app.post(&format!("/v1/users/{user}/key"), &json!({ "grace_seconds": 3 }));
    rotated.expect(201);
    let successor = rotated.json()["key"].as_str().expect("key").to_owned();
    assert!(successor.starts_with("kl_"), "{successor}");
    assert_eq!(authorize_basic(&app, LEGACY_KEY).status, 200, "in its grace period");
    assert_eq!(app.check_reason(&successor, "api.events.read", None), "granted");
    let shown = app.get(&format!("/v1/users/{user}")).json();
    assert_eq!((&shown["key"]["legacy"], &shown["previous_key"]["legacy"]), (&json!(false), &json!(true)));
    assert_eq!(shown["previous_key"]["state"], "grace", "{shown}");
    // After the grace period the imported key is gone; the successor still works.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while authorize_basic(&app, LEGACY_KEY).status == 200 {
        assert!(std::time::Instant::now() < deadline, "the grace period never ended");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(app.check_reason(LEGACY_KEY, "api.events.read", None), "unknown_key");
    assert_eq!(app.check_reason(&successor, "api.events.read", None), "granted");
}

#[test]
fn malformed_imports_are_refused_precisely_and_append_nothing() {
    let app = spawn_app();
    let user = api_user_without_key(&app, "Careless app");
    let before = app.audit_size();
    for (body, status, code) in [
        (json!({ "key": "3f2a9c4e7b1d08f5" }), 422, "invalid_value"),
        (json!({ "key": "zz2a9c4e7b1d08f56a2e4c9b7d1f3a5e" }), 422, "invalid_value"),
        (json!({ "key_sha256": "abc" }), 422, "invalid_value"),
        (json!({ "key": LEGACY_KEY, "key_sha256": sha256_hex(LEGACY_KEY) }), 400, "invalid_body"),
        (json!({}), 400, "invalid_body"),
        (json!({ "key": LEGACY_KEY, "expires_at": "2001-01-01T00:00:00Z" }), 422, "expiry_in_the_past"),
        (json!({ "key": LEGACY_KEY, "grace_seconds": 99_999_999 }), 422, "invalid_value"),
    ] {
        let reply = import(&app, &user, &body);
        assert_eq!((reply.status, reply.json()["code"].as_str()), (status, Some(code)), "{body}: {}", reply.body);
        assert!(!reply.body.contains(LEGACY_KEY) && !reply.body.contains("3f2a9c4e7b1d08f5"), "{}", reply.body);
    }
    import(&app, "usr_0000000000000000", &json!({ "key": LEGACY_KEY })).expect(404);
    assert_eq!(app.audit_size(), before);
}

#[test]
fn wrong_legacy_keys_count_against_the_client_like_wrong_kl_keys() {
    let app = spawn_app_with(&["--failed-check-burst", "2", "--failed-checks-per-minute", "1"]);
    for guess in ["00000000000000000000000000000001", "00000000000000000000000000000002"] {
        assert_eq!(authorize_basic(&app, guess).status, 401);
    }
    assert_eq!(authorize_basic(&app, "00000000000000000000000000000003").status, 429);
}

/// Every file below `dir`, read whole.
fn files_below(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).expect("read dir").map(|entry| entry.expect("entry").path()));
        } else if let Ok(bytes) = std::fs::read(&path) {
            files.push((path, bytes));
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[test]
fn the_raw_key_and_its_sha256_never_appear_in_the_log_files_responses_or_export() {
    let log_dir = tempfile::tempdir().expect("temporary directory");
    let log_file = log_dir.path().join("server.log");
    let mut app = spawn_app_logging_to(&log_file);
    let user = api_user_without_key(&app, "Secret app");
    let by_hash = api_user_without_key(&app, "Secret app by hash");
    let hashed_key = "0f0e0d0c0b0a09080706050403020100";
    let secrets = [LEGACY_KEY.to_owned(), sha256_hex(LEGACY_KEY), hashed_key.to_owned(), sha256_hex(hashed_key)];
    let mut replies = vec![
        import(&app, &user, &json!({ "key": LEGACY_KEY })),
        import(&app, &by_hash, &json!({ "key_sha256": sha256_hex(hashed_key) })),
        import(&app, &user, &json!({ "key": LEGACY_KEY })),
        authorize_basic(&app, LEGACY_KEY),
        authorize_bearer(&app, hashed_key),
        app.raw("GET", "/v1/whoami", &[("authorization", &basic(LEGACY_KEY))], None),
        app.post("/v1/audit/key-lookup", &json!({ "key": hashed_key })),
        app.get(&format!("/v1/users/{user}")),
        app.get("/v1/audit/events"),
        app.get("/v1/audit/credential-report"),
        app.get("/v1/audit/access-report?format=csv"),
    ];
    replies.push(app.get("/v1/audit/export"));
    assert_eq!(replies[0].status, 201);
    assert_eq!(replies[2].status, 409);
    assert_eq!((replies[3].status, replies[4].status, replies[5].status), (200, 200, 200));
    let data_dir = app.data_dir().to_owned();
    app.stop();
    let log = std::fs::read_to_string(&log_file).expect("the server's log");
    assert!(log.lines().count() > 10, "the server logged at debug level");
    for secret in &secrets {
        for reply in &replies {
            assert!(!reply.body.to_lowercase().contains(secret), "a response holds {secret}: {}", reply.body);
        }
        assert!(!log.to_lowercase().contains(secret), "a log line holds {secret}");
        for (path, bytes) in files_below(&data_dir) {
            assert!(!contains(&bytes, secret), "{} holds {secret}", path.display());
        }
    }
}
