//! Issue #14, point 3: unused access. Usage records count every key's passed checks per
//! function, so the access report's unused functions are exactly the granted functions no
//! check used within `unused_days`, over HTTP and offline.

use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{BINARY, TestApp, spawn_app_with};

/// The functions the test's app is granted, in catalogue order.
const GRANTED: [&str; 3] = ["api.events.read", "api.people.read", "api.people.write"];

fn row_of<'a>(report: &'a Value, user: &str) -> &'a Value {
    report["rows"].as_array().expect("rows").iter().find(|row| row["user_id"] == user).expect("the user's row")
}

/// Waits until a usage record holds an entry of `key_id` with `functions` counted.
fn wait_for_usage_of(app: &TestApp, key_id: &str) -> Vec<Value> {
    app.wait_for_records(0, |records| {
        records
            .iter()
            .filter(|record| record["type"] == "KeyUsageIntervalRecorded")
            .any(|record| record["data"]["keys"].as_array().into_iter().flatten().any(|entry| entry[1] == key_id))
    })
}

fn key_id_of(app: &TestApp, user: &str) -> String {
    app.get(&format!("/v1/users/{user}")).json()["key"]["key_id"].as_str().expect("a key").to_owned()
}

#[test]
fn unused_functions_in_the_report_match_exactly_what_the_keys_used() {
    let mut app = spawn_app_with(&["--key-usage-interval-secs", "1"]);
    let (user, key) = app.user_with_functions("Events app", &GRANTED);
    let (idle, _) = app.user_with_functions("Idle app", &["api.events.read"]);
    let (key_id, idle_key_id) = (key_id_of(&app, &user), key_id_of(&app, &idle));

    // Two checks of events.read, one of people.read, one refused (a function not granted).
    for function in ["api.events.read", "api.events.read", "api.people.read"] {
        assert_eq!(app.check(&key, function, None)["allowed"], true, "{function}");
    }
    assert_eq!(app.check(&key, "api.attendees.read", Some("summit-nyc"))["allowed"], false);
    let records = wait_for_usage_of(&app, &key_id);

    // The usage record (schema version 2) counts each passed check against its function.
    let record = records
        .iter()
        .rev()
        .find(|record| {
            record["type"] == "KeyUsageIntervalRecorded"
                && record["data"]["keys"].as_array().unwrap().iter().any(|entry| entry[1] == key_id.as_str())
        })
        .unwrap();
    assert_eq!(record["v"], 2);
    let entry = record["data"]["keys"].as_array().unwrap().iter().find(|entry| entry[1] == key_id.as_str()).unwrap();
    assert_eq!((entry[2].as_u64(), entry[3].as_u64()), (Some(3), Some(1)), "{entry}");
    let counted: Vec<(String, u64)> = entry[6]
        .as_array()
        .expect("functions")
        .iter()
        .map(|function| (function[0].as_str().unwrap().to_owned(), function[1].as_u64().unwrap()))
        .collect();
    assert_eq!(counted, vec![("api.events.read".to_owned(), 2), ("api.people.read".to_owned(), 1)]);

    // The report: exactly the granted function no check used, and the idle key.
    let reply = app.get("/v1/audit/access-report?unused_days=30");
    reply.expect(200);
    let report = reply.json();
    assert_eq!(report["unused"]["days"], 30);
    assert_eq!(report["unused"]["exact"], true);
    let row = row_of(&report, &user);
    assert_eq!(row["unused_functions"], json!(["api.people.write"]));
    assert_eq!(row["unused_keys"], json!([]));
    let idle_row = row_of(&report, &idle);
    assert_eq!(idle_row["unused_functions"], json!(["api.events.read"]));
    assert_eq!(idle_row["unused_keys"], json!([{"key_id": idle_key_id, "last_used_at": null}]));
    // The default window is 90 days; the CSV carries the same findings.
    assert_eq!(app.get("/v1/audit/access-report").json()["unused"]["days"], 90);
    let csv = app.get("/v1/audit/access-report?format=csv&unused_days=30").body;
    let line = csv.lines().find(|line| line.starts_with(user.as_str())).expect("the user's line");
    assert!(line.ends_with(",api.people.write,"), "{line}");
    assert!(csv.lines().next().unwrap().ends_with(",unused_functions,unused_key_ids"));

    for bad in ["0", "366", "x"] {
        app.get(&format!("/v1/audit/access-report?unused_days={bad}")).expect(400);
    }

    // Offline, from the data directory alone, the same findings.
    app.stop();
    let output = Command::new(BINARY)
        .args(["access-report", "--data-dir"])
        .arg(app.data_dir())
        .args(["--format", "json", "--unused-days", "30"])
        .output()
        .expect("run access-report");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let offline: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(row_of(&offline, &user)["unused_functions"], json!(["api.people.write"]));
    assert_eq!(row_of(&offline, &idle)["unused_keys"][0]["key_id"], idle_key_id.as_str());
    assert_eq!(offline["unused"]["days"], 30);
}
