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
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|column| *column == name).expect(name);
    // No cell of this report holds a comma, so splitting on commas finds the columns.
    let cells: Vec<&str> = line.split(',').collect();
    assert_eq!(cells.len(), header.len(), "{line}");
    assert_eq!(cells[column("unused_functions")], "api.people.write", "{line}");
    assert_eq!(cells[column("unused_key_ids")], "", "{line}");

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

/// A data directory written before functions were counted (issue #11's fixture, whose
/// `KeyUsageRecorded` says the app's key passed 1 check, not of which function): it opens
/// and verifies, the key counts as used, and the report says its function findings are not
/// exact for a window reaching back before that use. Checks made after the upgrade are
/// counted per function.
#[test]
fn usage_recorded_before_functions_were_counted_is_known_per_key_and_flagged_inexact_per_function() {
    const ADMIN_KEY: &str = "kl_DbPtVSlvVJrxsmRYCSrrqboVExh7VC1xGKYc";
    const APP_KEY: &str = "kl_1QfHjtC69THjVNHPNHHB1raaFQDV0R0mVdvz";
    const APP_USER: &str = "usr_20357f8bea5df66f";
    let dir = crate::upgrade::copy_fixture("85c86d6-data");
    let mut app = crate::helpers::spawn_app_in_with(dir.path(), &["--key-usage-interval-secs", "1"]);
    app.admin_key = ADMIN_KEY.to_owned();
    assert_eq!(app.get("/v1/audit/verify").json()["valid"], true);

    let report = app.get("/v1/audit/access-report?unused_days=365").json();
    let old_use = report["unused"]["exact_since"].as_str().expect("usage recorded without functions").to_owned();
    assert_eq!(report["unused"]["exact"], false);
    let row = row_of(&report, APP_USER);
    assert_eq!(row["unused_keys"], json!([]), "the old record says the key was used");
    // Which functions the old checks were of is not known: none counts as used.
    assert_eq!(row["unused_functions"], row["functions"]);
    assert_eq!(row["functions"].as_array().map(Vec::len), Some(2));

    // After the upgrade, a check is counted against its function.
    let key_id = key_id_of(&app, APP_USER);
    assert_eq!(app.check(APP_KEY, "api.events.read", None)["allowed"], true);
    wait_for_usage_of(&app, &key_id);
    let report = app.get("/v1/audit/access-report?unused_days=365").json();
    assert_eq!(report["unused"]["exact_since"], old_use.as_str(), "a new record moves nothing");
    let unused: Vec<&str> =
        row_of(&report, APP_USER)["unused_functions"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert_eq!(unused, vec!["api.attendees.read"]);
}
