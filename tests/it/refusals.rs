//! Why was I refused? (issue #14, point 7): `listKeyRefusals` and `whoAmI?refusals=true`
//! show the most recent refused checks of known keys, bounded per key.

use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[test]
fn refused_checks_of_a_users_keys_are_listed_most_recent_first_and_the_key_sees_its_own() {
    let app = spawn_app();
    let (_, user, key) = app.api_user();
    let (other, other_key) = app.user_with_functions("Other app", &["api.people.read"]);
    let key_id = app.check(&key, "api.events.read", None)["key_id"].as_str().expect("key id").to_owned();

    assert_eq!(app.check_reason(&key, "api.attendees.read", Some("summit-nyc")), "granted");
    assert_eq!(app.check_reason(&key, "api.invoices.write", None), "function_not_granted");
    app.call("GET", "/v1/authorize?function=api.people.read&event_id=gala-paris", Some(&key), None).expect(403);
    assert_eq!(app.check_reason(&key, "api.attendees.read", None), "event_required");
    assert_eq!(app.check_reason(&other_key, "api.invoices.read", None), "function_not_granted");

    let listed = app.list_all(&format!("/v1/users/{user}/refusals"));
    let summary: Vec<(&str, &str, Value)> = listed
        .iter()
        .map(|r| (r["reason"].as_str().unwrap_or(""), r["function"].as_str().unwrap_or(""), r["event_id"].clone()))
        .collect();
    assert_eq!(
        summary,
        [
            ("event_required", "api.attendees.read", Value::Null),
            ("event_not_accessible", "api.people.read", json!("gala-paris")),
            ("function_not_granted", "api.invoices.write", Value::Null),
        ],
        "granted checks are not kept, and another user's refusals are not listed: {listed:?}"
    );
    assert!(listed.iter().all(|r| r["key_id"] == key_id.as_str() && r["client_address"] == "127.0.0.1"), "{listed:?}");
    assert!(listed.iter().all(|r| r["at"].is_string()));
    assert_eq!(app.list_all(&format!("/v1/users/{other}/refusals")).len(), 1);

    let mine = app.call("GET", "/v1/whoami?refusals=true", Some(&key), None);
    mine.expect(200);
    assert_eq!(mine.json()["refusals"].as_array().map(Vec::len), Some(3), "{}", mine.body);
    assert_eq!(mine.json()["refusals"][0]["reason"], "event_required");
    let without = app.call("GET", "/v1/whoami", Some(&key), None);
    assert_eq!(without.json().get("refusals"), None, "only when asked");

    // A revoked key's refusals are still its user's.
    app.delete(&format!("/v1/users/{user}/key")).expect(200);
    assert_eq!(app.check_reason(&key, "api.events.read", None), "revoked_key");
    let after = app.list_all(&format!("/v1/users/{user}/refusals"));
    assert_eq!(after[0]["reason"], "revoked_key");
    app.call("GET", "/v1/whoami?refusals=true", Some(&key), None).expect_problem(401, "unauthenticated");

    app.get("/v1/users/usr_00000000000000ff/refusals").expect_problem(404, "not_found");
    app.get("/v1/users/nobody/refusals").expect_problem(404, "not_found");
    app.get(&format!("/v1/users/{user}/refusals?limit=0")).expect_problem(400, "invalid_query");
}

#[test]
fn each_key_keeps_its_last_hundred_refusals_and_pages_follow_them() {
    let app = spawn_app();
    let (user, key) = app.user_with_functions("Busy app", &["api.people.read"]);
    for n in 0..105 {
        let event = format!("event-{n:03}");
        assert_eq!(app.check_reason(&key, "api.people.read", Some(&event)), "event_not_accessible");
    }
    let pages = app.list_pages(&format!("/v1/users/{user}/refusals"), 30);
    assert_eq!(pages.len(), 100);
    assert_eq!(pages[0]["event_id"], "event-104");
    assert_eq!(pages[99]["event_id"], "event-005");
}
