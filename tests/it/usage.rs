//! The audit trail for compliance reviewers (issue #3): refused admin requests are
//! recorded without letting a caller flood the log, key usage is recorded in the
//! background and shown as each key's last use, and the access review report is served
//! over HTTP and printed by the command line, as JSON and CSV.

use std::process::Command;
use std::time::{Duration, Instant};

use keyledger::domain::Timestamp;
use serde_json::{Value, json};

use crate::helpers::{BINARY, TestApp, spawn_app, spawn_app_with};

fn of_type<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|record| record["type"] == kind).collect()
}

fn key_id_of(app: &TestApp, user: &str) -> String {
    app.get(&format!("/v1/users/{user}")).json()["key"]["key_id"].as_str().expect("a key").to_owned()
}

/// One key's entry in a `KeyUsageIntervalRecorded`, with its times made absolute.
#[derive(Debug)]
struct KeyUse {
    user_id: String,
    key_id: String,
    allowed: u64,
    refused: u64,
    first_used_at: Timestamp,
    last_used_at: Timestamp,
}

/// Every key's entry in the usage records, in log order. An entry is the array
/// `[user_id, key_id, allowed, refused, first, last]`, `first` and `last` in milliseconds
/// after the record's `from`.
fn key_uses(records: &[Value]) -> Vec<KeyUse> {
    let mut uses = Vec::new();
    for record in of_type(records, "KeyUsageIntervalRecorded") {
        let from = Timestamp::parse(record["data"]["from"].as_str().expect("from")).expect("an RFC 3339 time");
        let after = |millis: &Value| {
            Timestamp::from_unix_millis(from.unix_millis() + i64::try_from(millis.as_u64().expect("ms")).unwrap())
        };
        for entry in record["data"]["keys"].as_array().expect("keys") {
            uses.push(KeyUse {
                user_id: entry[0].as_str().expect("a user id").to_owned(),
                key_id: entry[1].as_str().expect("a key id").to_owned(),
                allowed: entry[2].as_u64().expect("allowed"),
                refused: entry[3].as_u64().expect("refused"),
                first_used_at: after(&entry[4]),
                last_used_at: after(&entry[5]),
            });
        }
    }
    uses
}

/// (allowed, refused) summed over the usage records of one key.
fn usage_of(records: &[Value], key_id: &str) -> (u64, u64) {
    key_uses(records)
        .into_iter()
        .filter(|used| used.key_id == key_id)
        .fold((0, 0), |(allowed, refused), used| (allowed + used.allowed, refused + used.refused))
}

// ---------------------------------------------------------------------------------------
// Refused admin requests.
// ---------------------------------------------------------------------------------------

#[test]
fn an_admin_request_refused_for_a_missing_function_is_recorded_with_actor_operation_and_target() {
    let app = spawn_app();
    let (reader, key) = app.user_with_functions("Reader", &["security.users.read"]);
    let target = app.create_user("Target");
    let target_version = app.get(&format!("/v1/users/{target}")).json()["version"].clone();
    let before = app.audit_size();

    app.call("POST", &format!("/v1/users/{target}/disable"), Some(&key), None).expect_problem(403, "forbidden");

    let records = app.wait_for_records(before, |records| !records.is_empty());
    assert_eq!(records.len(), 1, "one record and nothing else: {records:?}");
    let record = &records[0];
    assert_eq!(record["type"], "AdminAccessDenied");
    assert_eq!(record["actor"], reader.as_str(), "the refused key's user is the actor");
    assert_eq!(record["subject"], reader.as_str());
    assert_eq!(
        record["data"],
        json!({
            "user_id": reader,
            "key_id": key_id_of(&app, &reader),
            "operation": "disableUser",
            "function": "security.users.manage",
            "target": target,
            "suppressed": 0,
        })
    );
    // Nothing about the target changed, nor about the refused user's permissions.
    assert_eq!(app.get(&format!("/v1/users/{target}")).json()["version"], target_version);
    assert_eq!(app.check_reason(&key, "security.users.manage", None), "function_not_granted");
}

#[test]
fn a_refused_request_without_a_target_in_its_path_records_none() {
    let app = spawn_app();
    let (_, key) = app.user_with_functions("Reader", &["security.users.read"]);
    let before = app.audit_size();
    app.call("POST", "/v1/roles", Some(&key), Some(&json!({ "description": "Escalation" })))
        .expect_problem(403, "forbidden");
    let records = app.wait_for_records(before, |records| !records.is_empty());
    assert_eq!(records[0]["data"]["operation"], "createRole");
    assert_eq!(records[0]["data"]["target"], Value::Null);
}

#[test]
fn requests_with_bad_or_unknown_keys_are_not_recorded() {
    let app = spawn_app();
    let (user, key) = app.user_with_functions("Deputy", &["security.users.read"]);
    app.delete(&format!("/v1/users/{user}/key")).expect(200);
    let before = app.audit_size();
    app.call("GET", "/v1/roles", Some("not-a-key"), None).expect_problem(401, "unauthenticated");
    app.call("GET", "/v1/roles", Some(&key), None).expect_problem(401, "unauthenticated");
    app.call("GET", "/v1/roles", None, None).expect_problem(401, "unauthenticated");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(app.audit_size(), before);
}

#[test]
fn twenty_refusals_in_a_row_record_three_and_the_next_after_the_window_carries_the_rest() {
    const WINDOW: Duration = Duration::from_secs(2);
    let app = spawn_app_with(&["--denial-window-secs", "2"]);
    let (_, key) = app.user_with_functions("Prober", &["security.users.read"]);
    let before = app.audit_size();
    let started = Instant::now();
    for _ in 0..20 {
        app.call("GET", "/v1/roles", Some(&key), None).expect(403);
    }
    let burst_took = started.elapsed();
    let within_the_window = app.wait_for_records(before, |records| records.len() >= 3);
    std::thread::sleep(WINDOW.saturating_sub(started.elapsed()) + Duration::from_millis(200));
    app.call("GET", "/v1/roles", Some(&key), None).expect(403);

    let total = |records: &[Value]| -> u64 {
        of_type(records, "AdminAccessDenied").iter().map(|r| 1 + r["data"]["suppressed"].as_u64().unwrap()).sum()
    };
    let records = app.wait_for_records(before, |records| total(records) >= 21);
    assert_eq!(of_type(&records, "AdminAccessDenied").len(), records.len(), "only refusals: {records:?}");
    assert_eq!(total(&records), 21, "every refusal is recorded or counted: {records:?}");
    if burst_took < WINDOW {
        // The burst fit in one window: three recorded, seventeen counted into the next.
        assert_eq!(within_the_window.len(), 3, "{within_the_window:?}");
        let suppressed: Vec<u64> = records.iter().map(|r| r["data"]["suppressed"].as_u64().unwrap()).collect();
        assert_eq!(suppressed, [0, 0, 0, 17]);
    } else {
        eprintln!("the burst took {burst_took:?}, longer than the window: only the totals were checked");
    }
}

// ---------------------------------------------------------------------------------------
// Key usage.
// ---------------------------------------------------------------------------------------

#[test]
fn checks_are_recorded_as_key_usage_every_interval_and_get_user_shows_the_last_use() {
    let app = spawn_app_with(&["--key-usage-interval-secs", "1"]);
    let (_, user, key) = app.api_user();
    let key_id = key_id_of(&app, &user);
    let before_user = app.get(&format!("/v1/users/{user}"));
    assert_eq!(before_user.json()["key"]["last_used_at"], Value::Null, "never used yet");
    let before = app.audit_size();

    assert_eq!(app.check_reason(&key, "api.attendees.read", Some("summit-nyc")), "granted");
    assert_eq!(app.check_reason(&key, "api.events.read", None), "granted");
    assert_eq!(app.check_reason(&key, "api.invoices.write", None), "function_not_granted");
    app.call("GET", "/v1/authorize?function=api.people.read", Some(&key), None).expect(200);
    app.call("GET", "/v1/authorize?function=api.people.read&event_id=gala-paris", Some(&key), None).expect(403);
    // An admin request the key authenticates is a use too (refused: an API key).
    app.call("GET", "/v1/users", Some(&key), None).expect(403);

    let records = app.wait_for_records(before, |records| usage_of(records, &key_id) == (3, 3));
    assert_eq!(usage_of(&records, &key_id), (3, 3), "{records:?}");
    let recorded = of_type(&records, "KeyUsageIntervalRecorded");
    assert!(recorded.iter().all(|record| record["actor"] == "system" && record["subject"] == "system"), "{records:?}");
    let uses: Vec<KeyUse> = key_uses(&records).into_iter().filter(|used| used.key_id == key_id).collect();
    assert!(uses.iter().all(|used| used.user_id == user && used.first_used_at <= used.last_used_at), "{uses:?}");

    let after_user = app.get(&format!("/v1/users/{user}"));
    let last_recorded = uses.iter().map(|used| used.last_used_at).max().expect("a use");
    assert_eq!(after_user.json()["key"]["last_used_at"].as_str(), Some(last_recorded.to_string().as_str()));
    assert_eq!(after_user.header("etag"), before_user.header("etag"), "using a key does not change its user's version");
    assert_eq!(after_user.json()["version"], before_user.json()["version"]);
}

/// Issue #11: however many keys were used in an interval, it adds one usage record to the
/// log (up to `MAX_KEYS_PER_USAGE_RECORD` keys, 4096, which the domain's tests cover).
#[test]
fn the_keys_used_in_one_interval_are_recorded_in_one_record_whatever_their_number() {
    let mut app = spawn_app();
    let apps: Vec<(String, String)> =
        (0..6).map(|n| app.user_with_functions(&format!("App {n}"), &["api.events.read"])).collect();
    for used in [1, 6] {
        let before = app.audit_size();
        for (_, key) in &apps[..used] {
            app.check(key, "api.events.read", None);
            app.check(key, "api.people.read", None);
        }
        // The default interval is 15 minutes: the graceful stop records this interval.
        app = app.restart();
        let records = app.records_after(before);
        assert_eq!(records.len(), 1, "{used} keys used, one record: {records:?}");
        // The administrator's key, which the test's own requests use, has an entry too.
        let uses: Vec<KeyUse> = key_uses(&records)
            .into_iter()
            .filter(|entry| apps.iter().any(|(user, _)| *user == entry.user_id))
            .collect();
        assert_eq!(uses.len(), used, "{uses:?}");
        for (user, _) in &apps[..used] {
            let used = uses.iter().find(|used| used.user_id == *user).expect("each key used has an entry");
            assert_eq!((used.allowed, used.refused), (1, 1));
        }
    }
}

#[test]
fn last_use_and_the_access_report_are_the_same_after_the_usage_records_are_replayed() {
    let app = spawn_app_with(&["--key-usage-interval-secs", "1"]);
    let (reader, key) = app.user_with_functions("Reader app", &["api.events.read"]);
    let (writer, other_key) = app.user_with_functions("Writer app", &["api.invoices.write"]);
    let before = app.audit_size();
    app.check(&key, "api.events.read", None);
    app.check(&other_key, "api.invoices.write", None);
    let apps_used = |records: &[Value]| {
        key_uses(records).into_iter().filter(|used| [&reader, &writer].contains(&&used.user_id)).count()
    };
    let records = app.wait_for_records(before, |records| apps_used(records) >= 2);
    assert_eq!(apps_used(&records), 2, "{records:?}");
    let last_use =
        |app: &TestApp, user: &str| app.get(&format!("/v1/users/{user}")).json()["key"]["last_used_at"].clone();
    let seen = [last_use(&app, &reader), last_use(&app, &writer)];
    assert!(seen.iter().all(Value::is_string), "{seen:?}");
    let report = app.get("/v1/audit/access-report").json();

    // Killed, it keeps no snapshot of this: the restart replays the usage records.
    let app = app.crash_and_restart();

    assert_eq!([last_use(&app, &reader), last_use(&app, &writer)], seen);
    let replayed = app.get("/v1/audit/access-report").json();
    for user in [&reader, &writer] {
        assert_eq!(row(&replayed, user)["key_last_used_at"], row(&report, user)["key_last_used_at"], "{user}");
    }
    assert_eq!(app.verified_audit_size(), app.audit_size());
}

#[test]
fn a_graceful_stop_records_the_usage_counted_since_the_last_record() {
    let app = spawn_app();
    let (_, user, key) = app.api_user();
    let key_id = key_id_of(&app, &user);
    let before = app.audit_size();
    app.check(&key, "api.attendees.read", Some("summit-nyc"));
    app.check(&key, "api.attendees.read", Some("summit-nyc"));
    app.check(&key, "api.attendees.read", Some("gala-paris"));
    assert_eq!(app.audit_size(), before, "with the default interval nothing is recorded yet");

    let app = app.restart();

    let records = app.records_after(before);
    assert_eq!(usage_of(&records, &key_id), (2, 1), "{records:?}");
    assert!(app.get(&format!("/v1/users/{user}")).json()["key"]["last_used_at"].is_string());
    assert_eq!(app.verified_audit_size(), app.audit_size());
}

// ---------------------------------------------------------------------------------------
// The access review report.
// ---------------------------------------------------------------------------------------

/// Parses RFC 4180 CSV (quoted cells, doubled quotes, CRLF line ends) into rows of cells.
pub(crate) fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(cell.is_empty() && row.is_empty(), "the CSV ends with a line end");
    rows
}

/// A ledger for the report: the walkthrough's read-only API user, an app whose API role
/// writes, a disabled user whose key still works, and a user with a name that needs
/// quoting and neutralising in CSV. Returns their ids in that order, and the API user's key.
fn reviewed_ledger(app: &TestApp) -> ([String; 4], String) {
    let (_, reader, reader_key) = app.api_user();
    let (writer, _) = app.user_with_functions("Invoicing app", &["api.invoices.read", "api.invoices.write"]);
    let (disabled, _) = app.user_with_functions("Former contractor", &["security.users.read"]);
    app.post_empty(&format!("/v1/users/{disabled}/disable")).expect(200);
    let tricky = app.create_user("=HYPERLINK(\"http://x\"), \"Evil\" Co");
    ([reader, writer, disabled, tricky], reader_key)
}

fn row<'a>(report: &'a Value, user: &str) -> &'a Value {
    report["rows"].as_array().expect("rows").iter().find(|row| row["user_id"] == user).expect("a row per user")
}

#[test]
fn the_access_report_has_a_row_per_user_with_roles_functions_key_and_flags_as_json_and_csv() {
    let app = spawn_app();
    let ([reader, writer, disabled, tricky], _) = reviewed_ledger(&app);
    let users = app.list_all("/v1/users");

    let reply = app.get("/v1/audit/access-report");
    reply.expect(200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let report = reply.json();
    assert_eq!(report["rows"].as_array().map(Vec::len), Some(users.len()));
    assert_eq!(report["position"].as_u64(), Some(app.audit_size()));
    assert_eq!(report["review_period_days"], 90);

    let api_row = row(&report, &reader);
    assert_eq!(api_row["name"], "Attendance app");
    assert_eq!(api_row["roles"][0]["description"], "API Access");
    assert_eq!(api_row["functions"].as_array().map(Vec::len), Some(5));
    assert_eq!(api_row["event_access"]["all_events"], false);
    assert_eq!(api_row["event_access"]["groups"].as_array().map(Vec::len), Some(1));
    assert_eq!(api_row["key_id"], key_id_of(&app, &reader).as_str());
    assert_eq!(api_row["key_age_days"], 0);
    assert_eq!(api_row["key_last_used_at"], Value::Null);
    let no_flags = json!({
        "write_on_api_role": false,
        "key_older_than_90_days": false,
        "key_unused_90_days": false,
        "disabled_user_with_active_key": false,
        "recovered_administrator": false,
        "key_blocked_by_policy": false,
        "legacy_key_rotate": false,
    });
    assert_eq!(api_row["flags"], no_flags);
    assert_eq!(row(&report, &writer)["flags"]["write_on_api_role"], true);
    assert_eq!(row(&report, &disabled)["enabled"], false);
    assert_eq!(row(&report, &disabled)["flags"]["disabled_user_with_active_key"], true);
    assert_eq!(row(&report, &tricky)["key_id"], Value::Null);

    for csv in [
        app.get("/v1/audit/access-report?format=csv"),
        app.raw(
            "GET",
            "/v1/audit/access-report",
            &[("authorization", &format!("Bearer {}", app.admin_key)), ("accept", "text/csv")],
            None,
        ),
    ] {
        csv.expect(200);
        assert!(csv.header("content-type").is_some_and(|t| t.starts_with("text/csv")), "{:?}", csv.headers);
        assert!(csv.body.ends_with("\r\n"));
        let rows = parse_csv(&csv.body);
        let header = &rows[0];
        assert_eq!(header[0], "user_id");
        assert_eq!(rows.len(), users.len() + 1);
        let column = |name: &str| header.iter().position(|h| h == name).expect("a column");
        let csv_row = |user: &str| rows.iter().find(|row| row[0] == user).expect("a row").clone();
        assert_eq!(
            csv_row(&tricky)[column("name")],
            "'=HYPERLINK(\"http://x\"), \"Evil\" Co",
            "quoted and neutralised"
        );
        assert_eq!(csv_row(&writer)[column("functions")], "api.invoices.read;api.invoices.write");
        assert_eq!(csv_row(&writer)[column("write_on_api_role")], "true");
        assert_eq!(csv_row(&disabled)[column("disabled_user_with_active_key")], "true");
        assert_eq!(csv_row(&reader)[column("key_id")], key_id_of(&app, &reader));
    }

    app.get("/v1/audit/access-report?format=xml").expect_problem(400, "invalid_query");
    app.get("/v1/audit/access-report?limit=3").expect_problem(400, "invalid_query");
}

#[test]
fn the_command_line_prints_the_access_report_of_a_stopped_servers_data_directory() {
    let mut app = spawn_app();
    let ([reader, writer, disabled, _], reader_key) = reviewed_ledger(&app);
    app.check(&reader_key, "api.attendees.read", None);
    let served = app.get("/v1/audit/access-report").json();
    let data_dir = app.data_dir().to_owned();
    let report_cli = |format: &str| {
        Command::new(BINARY)
            .args(["access-report", "--format", format, "--data-dir"])
            .arg(&data_dir)
            .output()
            .expect("run keyledger access-report")
    };

    let in_use = report_cli("json");
    assert!(!in_use.status.success(), "a data directory in use by a server is refused");

    app.stop();
    let output = report_cli("json");
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let ids = |report: &Value| -> Vec<Value> {
        report["rows"].as_array().unwrap().iter().map(|r| r["user_id"].clone()).collect()
    };
    assert_eq!(ids(&printed), ids(&served));
    for user in [&reader, &writer, &disabled] {
        assert_eq!(row(&printed, user)["flags"], row(&served, user)["flags"], "{user}");
        assert_eq!(row(&printed, user)["roles"], row(&served, user)["roles"], "{user}");
    }
    assert!(row(&printed, &reader)["key_last_used_at"].is_string(), "the usage recorded at the stop shows");

    let csv = report_cli("csv");
    assert!(csv.status.success());
    let rows = parse_csv(&String::from_utf8(csv.stdout).expect("UTF-8"));
    assert_eq!(rows.len(), ids(&served).len() + 1);
}
