//! The credential report (issue #14, point 4): one row per key ever issued, as JSON and CSV.

use serde_json::{Value, json};

use crate::helpers::spawn_app_with;
use crate::usage::parse_csv;

fn row_of<'a>(report: &'a Value, key_id: &str) -> &'a Value {
    report["rows"].as_array().expect("rows").iter().find(|row| row["key_id"] == key_id).expect("a row per key")
}

#[test]
fn the_credential_report_has_a_row_per_key_ever_issued_with_its_rotations_revocation_and_use() {
    let app = spawn_app_with(&["--key-usage-interval-secs", "1"]);
    let (_, user, first) = app.api_user();
    let key_id = |key: &str| app.check(key, "api.events.read", None)["key_id"].as_str().expect("key id").to_owned();
    let first_id = key_id(&first);
    // Rotated with grace, then again without: the first two keys are gone from the view.
    let second = app.generate_key(&user, &json!({ "grace_seconds": 3600 }));
    let second_id = key_id(&second);
    let third = app.generate_key(&user, &json!({ "expires_at": "2099-01-01T00:00:00Z" }));
    let third_id = key_id(&third);
    let (revoked_user, revoked) = app.user_with_functions("Old integration", &["api.people.read"]);
    let revoked_id = key_id(&revoked);
    app.delete(&format!("/v1/users/{revoked_user}/key")).expect(200);
    let tricky = app.create_user("=HYPERLINK(\"http://x\"), \"Evil\" Co");
    let tricky_key = app.generate_key(&tricky, &json!({}));
    let tricky_id = key_id(&tricky_key);
    // Uses of the current key (one more than the check that read its id), recorded
    // within a second: the refused check is the last, so once it is recorded all are.
    let before = app.audit_size();
    assert_eq!(app.check_reason(&third, "api.attendees.read", Some("summit-nyc")), "granted");
    assert_eq!(app.check_reason(&third, "api.invoices.write", None), "function_not_granted");
    app.wait_for_records(before, |records| {
        records.iter().filter(|r| r["type"] == "KeyUsageIntervalRecorded").any(|r| {
            r["data"]["keys"].as_array().is_some_and(|keys| keys.iter().any(|k| k[1] == third_id.as_str() && k[3] == 1))
        })
    });

    let reply = app.get("/v1/audit/credential-report");
    reply.expect(200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let report = reply.json();
    let generated = app.list_all("/v1/audit/events?type=KeyGenerated").len();
    assert_eq!(report["rows"].as_array().map(Vec::len), Some(generated), "one row per key ever issued: {report}");

    let first_row = row_of(&report, &first_id);
    assert_eq!(first_row["user_id"], user.as_str());
    assert_eq!(first_row["state"], "replaced");
    assert_eq!(first_row["replaced_by"], second_id.as_str());
    assert!(first_row["replaced_at"].is_string() && first_row["valid_until"].is_string(), "{first_row}");
    assert_eq!(first_row["functions"], json!([]), "a replaced key carries nothing");
    assert_eq!(first_row["event_access"], Value::Null);
    let second_row = row_of(&report, &second_id);
    assert_eq!(second_row["state"], "replaced");
    assert_eq!(second_row["replaced_by"], third_id.as_str());
    assert_eq!(second_row["valid_until"], Value::Null, "replaced without grace");

    let third_row = row_of(&report, &third_id);
    assert_eq!(third_row["state"], "active");
    assert_eq!(third_row["expires_at"], "2099-01-01T00:00:00.000Z");
    assert_eq!(third_row["replaced_at"], Value::Null);
    assert_eq!((third_row["checks_allowed"].as_u64(), third_row["checks_refused"].as_u64()), (Some(2), Some(1)));
    assert!(third_row["last_used_at"].is_string(), "{third_row}");
    assert_eq!(
        third_row["functions"],
        json!(["api.attendees.read", "api.events.read", "api.invoices.read", "api.people.read", "api.sessions.read"])
    );
    assert_eq!(third_row["event_access"]["all_events"], false);

    let revoked_row = row_of(&report, &revoked_id);
    assert_eq!(revoked_row["state"], "revoked");
    assert!(revoked_row["revoked_at"].is_string(), "{revoked_row}");
    assert_eq!(revoked_row["functions"], json!([]));

    // CSV, asked for either way: the same rows, the typed name neutralised.
    let csv = app.call("GET", "/v1/audit/credential-report?format=csv", Some(&app.admin_key), None);
    csv.expect(200);
    assert!(csv.header("content-type").is_some_and(|kind| kind.starts_with("text/csv")));
    let by_accept = app.raw(
        "GET",
        "/v1/audit/credential-report",
        &[("authorization", &format!("Bearer {}", app.admin_key)), ("accept", "text/csv")],
        None,
    );
    by_accept.expect(200);
    assert!(by_accept.header("content-type").is_some_and(|kind| kind.starts_with("text/csv")));
    let rows = parse_csv(&csv.body);
    assert_eq!(rows[0][..4], ["user_id", "name", "key_id", "state"]);
    assert_eq!(rows.len(), generated + 1);
    let tricky_row = rows.iter().find(|row| row[2] == tricky_id).expect("the tricky key's row");
    assert_eq!(tricky_row[1], "'=HYPERLINK(\"http://x\"), \"Evil\" Co");
    let third_csv = rows.iter().find(|row| row[2] == third_id).expect("the third key's row");
    assert_eq!(third_csv[3], "active");
    assert_eq!(third_csv[13], "api.attendees.read;api.events.read;api.invoices.read;api.people.read;api.sessions.read");

    app.call("GET", "/v1/audit/credential-report?format=xml", Some(&app.admin_key), None)
        .expect_problem(400, "invalid_query");
}
