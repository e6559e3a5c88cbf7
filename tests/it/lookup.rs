//! `lookupKey` (issue #14, point 5): a leaked key finds its id, owner and history, and the
//! secret is never logged, stored or echoed.

use serde_json::{Value, json};
use std::path::Path;

use std::io::Write;
use std::process::{Command, Stdio};

use crate::helpers::{BINARY, Reply, TestApp, spawn_app, spawn_app_logging_to_with};

fn look_up(app: &TestApp, body: &Value) -> Reply {
    app.post("/v1/audit/key-lookup", body)
}

fn types(lookup: &Value) -> Vec<String> {
    lookup["records"].as_array().expect("records").iter().map(|r| r["type"].as_str().unwrap_or("").to_owned()).collect()
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
fn a_leaked_raw_key_finds_its_id_and_history_and_never_appears_in_a_log_line_a_file_or_a_response() {
    let log_dir = tempfile::tempdir().expect("temporary directory");
    let log_file = log_dir.path().join("server.log");
    let mut app = spawn_app_logging_to_with(&log_file, &["--key-usage-interval-secs", "1"]);
    let (_, user, leaked) = app.api_user();
    let mut replies: Vec<Reply> = Vec::new();

    // The key is used: a check it passes, an admin request it is refused.
    let leaked_id = app.check(&leaked, "api.events.read", None)["key_id"].as_str().expect("key id").to_owned();
    app.call("GET", "/v1/users", Some(&leaked), None).expect(403);
    let before = app.audit_size();
    app.wait_for_records(before.saturating_sub(1), |records| {
        records
            .iter()
            .filter(|r| r["type"] == "KeyUsageIntervalRecorded")
            .any(|r| r["data"]["keys"].as_array().is_some_and(|keys| keys.iter().any(|k| k[1] == leaked_id.as_str())))
    });
    // Rotated, with grace: the leaked key still works for an hour.
    let successor = app.generate_key(&user, &json!({ "grace_seconds": 3600 }));

    let found = look_up(&app, &json!({ "key": leaked }));
    found.expect(200);
    let lookup = found.json();
    assert_eq!(lookup["key"]["key_id"], leaked_id.as_str());
    assert_eq!(lookup["key"]["user_id"], user.as_str());
    assert_eq!(lookup["key"]["name"], "Attendance app");
    assert_eq!(lookup["key"]["state"], "grace");
    assert!(lookup["key"]["replaced_by"].is_string(), "{lookup}");
    assert_eq!(types(&lookup), ["KeyGenerated", "AdminAccessDenied", "KeyGenerated"], "{lookup}");
    let usage = lookup["usage"].as_array().expect("usage");
    assert!(!usage.is_empty(), "{lookup}");
    assert!(usage.iter().map(|entry| entry["allowed"].as_u64().unwrap_or(0)).sum::<u64>() >= 1, "{lookup}");
    let hash = lookup["records"][0]["data"]["key_hash"].as_str().expect("the issuing record's hash").to_owned();
    replies.push(found);

    // By its hash, the same key; the first lookup is now on its record, naming the auditor
    // and the key id only.
    let by_hash = look_up(&app, &json!({ "key_hash": hash }));
    by_hash.expect(200);
    let again = by_hash.json();
    assert_eq!(again["key"]["key_id"], leaked_id.as_str());
    assert_eq!(types(&again).last().map(String::as_str), Some("KeyLookedUp"));
    let admin = app.check(&app.admin_key, "security.audit.read", None)["user_id"].clone();
    let recorded = app.list_all("/v1/audit/events?type=KeyLookedUp");
    assert_eq!(recorded.len(), 2);
    for record in &recorded {
        assert_eq!(record["actor"], admin);
        assert_eq!(record["data"], json!({ "user_id": user, "key_id": leaked_id }));
    }
    assert_eq!(recorded[1]["seq"], again["lookup_position"]);
    replies.push(by_hash);

    // Revoked: the lookup says so.
    app.delete(&format!("/v1/users/{user}/key")).expect(200);
    let revoked = look_up(&app, &json!({ "key": leaked }));
    revoked.expect(200);
    assert_eq!(revoked.json()["key"]["state"], "revoked");
    assert!(types(&revoked.json()).contains(&"KeyRevoked".to_owned()));
    let revoked_records = revoked.json()["records"].clone();
    replies.push(revoked);

    // Malformed and unknown keys are refused without quoting them.
    let mut mistyped = leaked.clone();
    let last = mistyped.pop().expect("a character");
    mistyped.push(if last == 'A' { 'B' } else { 'A' });
    for (body, status) in [
        (json!({ "key": mistyped }), 400),
        (json!({ "key": leaked, "key_hash": hash }), 400),
        (json!({}), 400),
        (json!({ "key_hash": "00".repeat(32) }), 404),
        (json!({ "key": successor }), 200),
    ] {
        let reply = look_up(&app, &body);
        assert_eq!(reply.status, status, "{}", reply.body);
        assert!(!reply.body.contains(&mistyped) && !reply.body.contains(&successor), "{}", reply.body);
        replies.push(reply);
    }

    let data_dir = app.data_dir().to_owned();
    app.stop();
    for reply in &replies {
        assert!(!reply.body.contains(&leaked), "a response echoes the key: {}", reply.body);
    }
    let log = std::fs::read_to_string(&log_file).expect("the server's log");
    assert!(log.lines().count() > 10, "the server logged at debug level");
    assert!(!log.contains(&leaked), "the key is in a log line");
    for (path, bytes) in files_below(&data_dir) {
        assert!(!contains(&bytes, &leaked), "the key is in {}", path.display());
    }

    // Offline, from standard input: the same key, and the key printed nowhere.
    let (stdout, stderr) = lookup_offline(&data_dir, &format!("{leaked}\n"));
    assert!(!stdout.contains(&leaked) && !stderr.contains(&leaked), "{stdout}{stderr}");
    let offline: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(offline["key"]["key_id"], leaked_id.as_str());
    assert_eq!(offline["key"]["state"], "revoked");
    // The revoked lookup's own `KeyLookedUp` came after its answer.
    assert_eq!(
        offline["records"].as_array().map(Vec::len),
        revoked_records.as_array().map(|records| records.len() + 1)
    );
    assert_eq!(offline.get("lookup_position"), None, "the offline lookup records nothing");
    let (stdout, stderr) = lookup_offline(&data_dir, &format!("{mistyped}\n"));
    assert!(stdout.is_empty() && stderr.contains("neither a keyledger key"), "{stderr}");
    assert!(!stderr.contains(&mistyped), "{stderr}");
}

/// Runs `keyledger lookup-key` on `data_dir` with `input` on standard input.
fn lookup_offline(data_dir: &Path, input: &str) -> (String, String) {
    let mut child = Command::new(BINARY)
        .args(["lookup-key", "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start keyledger lookup-key");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write the key");
    let output = child.wait_with_output().expect("keyledger lookup-key");
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn key_lookup_refuses_bodies_that_are_not_one_key_or_hash() {
    let app = spawn_app();
    for (body, code) in [
        (json!({ "key_hash": "not hex" }), "invalid_body"),
        (json!({ "key": 42 }), "invalid_body"),
        (json!({ "key": "kl_short", "extra": 1 }), "invalid_body"),
    ] {
        let reply = look_up(&app, &body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert!(reply.json()["code"] == code || reply.json()["code"] == "malformed_json", "{}", reply.body);
    }
    assert_eq!(app.list_all("/v1/audit/events?type=KeyLookedUp").len(), 0, "a refused lookup records nothing");
}
