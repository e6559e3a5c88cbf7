//! `whoAmI` (issue #14, point 6): what a key may do, asked by the key itself, agrees with
//! what `checkKey` answers for it.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// `whoAmI` with this key, all its pages of events gathered: (the first answer, every event).
fn who_am_i(app: &TestApp, key: &str, limit: u32) -> (Value, Vec<String>) {
    let first = app.call("GET", &format!("/v1/whoami?limit={limit}"), Some(key), None);
    first.expect(200);
    let first = first.json();
    let mut events: Vec<String> = Vec::new();
    let mut page = first.clone();
    loop {
        let items = page["events"]["items"].as_array().expect("events.items");
        assert!(items.len() <= limit as usize, "a page holds at most `limit` events: {page}");
        events.extend(items.iter().map(|event| event.as_str().expect("an event id").to_owned()));
        let Some(next) = page["events"]["next"].as_u64() else { break };
        let reply = app.call("GET", &format!("/v1/whoami?limit={limit}&after={next}"), Some(key), None);
        reply.expect(200);
        page = reply.json();
    }
    (first, events)
}

/// Every function of the catalogue: (id, whether it is event-scoped).
fn catalogue(app: &TestApp) -> Vec<(String, bool)> {
    app.list_all("/v1/functions")
        .iter()
        .map(|function| (function["id"].as_str().expect("id").to_owned(), function["scope"] == "event"))
        .collect()
}

#[test]
fn who_am_i_matches_check_key_for_every_function_and_a_sample_of_events() {
    let app = spawn_app();
    let (role, user, key) = app.api_user();
    app.activate(&role, &["api.attendees.write"]);
    // Events reached directly, through a nested group, and ones out of reach.
    let usa = app.list_all("/v1/event-groups").iter().find(|group| group["name"] == "USA").expect("USA")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let boston = app.create_group("Boston", Some(&usa));
    for event in ["summit-boston", "expo-boston", "meetup-boston"] {
        app.add_event(&boston, event);
    }
    let europe = app.create_group("Europe", None);
    app.add_event(&europe, "summit-paris");

    let (me, events) = who_am_i(&app, &key, 2);
    assert_eq!(me["user_id"], user.as_str());
    assert_eq!(me["name"], "Attendance app");
    assert_eq!(me["key_id"], app.check(&key, "api.events.read", Some("summit-nyc"))["key_id"]);
    assert_eq!(me["state"], "active");
    assert_eq!(me["event_access"], json!({ "all_events": false, "groups": [usa] }));
    assert_eq!(events, ["expo-boston", "meetup-boston", "summit-boston", "summit-nyc"], "resolved, sorted, paged");

    let functions: Vec<&str> =
        me["functions"].as_array().expect("functions").iter().filter_map(Value::as_str).collect();
    let sample = ["summit-nyc", "summit-boston", "summit-paris", "never-grouped"];
    for (function, event_scoped) in catalogue(&app) {
        let granted = functions.contains(&function.as_str());
        let without_event = app.check(&key, &function, None);
        assert_eq!(
            without_event["allowed"].as_bool(),
            Some(granted && !event_scoped),
            "{function} without an event: {without_event}"
        );
        for event in sample {
            let reachable = events.iter().any(|listed| listed == event);
            let answer = app.check(&key, &function, Some(event));
            assert_eq!(answer["allowed"].as_bool(), Some(granted && reachable), "{function} on {event}: {answer}");
        }
    }
}

#[test]
fn who_am_i_for_a_user_with_every_event_lists_no_events_and_check_key_passes_any() {
    let app = spawn_app();
    let (user, key) = app.user_with_functions("Everywhere", &["api.events.read", "api.attendees.read"]);
    app.put(&format!("/v1/users/{user}/event-access"), Some(&json!({ "all_events": true }))).expect(200);
    let (me, events) = who_am_i(&app, &key, 100);
    assert_eq!(me["event_access"]["all_events"], true);
    assert!(events.is_empty(), "{me}");
    let functions = me["functions"].as_array().expect("functions").clone();
    for (function, _) in catalogue(&app) {
        let granted = functions.iter().any(|listed| listed == function.as_str());
        let answer = app.check(&key, &function, Some("any-event-at-all"));
        assert_eq!(answer["allowed"].as_bool(), Some(granted), "{function}: {answer}");
    }
}

#[test]
fn who_am_i_shows_the_grace_period_of_a_replaced_key_and_refuses_keys_that_would_not_pass() {
    let app = spawn_app();
    let (_, user, old_key) = app.api_user();
    let new_key = app.generate_key(&user, &json!({ "grace_seconds": 3600, "expires_at": "2099-01-01T00:00:00Z" }));
    let old = app.call("GET", "/v1/whoami", Some(&old_key), None);
    old.expect(200);
    assert_eq!(old.json()["state"], "grace");
    assert!(old.json()["valid_until"].is_string(), "{}", old.body);
    let new = app.call("GET", "/v1/whoami", Some(&new_key), None);
    new.expect(200);
    assert_eq!(new.json()["state"], "active");
    assert_eq!(new.json()["expires_at"], "2099-01-01T00:00:00.000Z");
    assert_ne!(new.json()["key_id"], old.json()["key_id"]);

    app.post_empty(&format!("/v1/users/{user}/disable")).expect(200);
    app.call("GET", "/v1/whoami", Some(&new_key), None).expect_problem(401, "unauthenticated");
    app.post_empty(&format!("/v1/users/{user}/enable")).expect(200);
    app.delete(&format!("/v1/users/{user}/key")).expect(200);
    app.call("GET", "/v1/whoami", Some(&new_key), None).expect_problem(401, "unauthenticated");
    app.call("GET", "/v1/whoami", None, None).expect_problem(401, "unauthenticated");
    app.call("GET", "/v1/whoami", Some("not-a-key"), None).expect_problem(401, "unauthenticated");
    app.call("GET", "/v1/whoami?limit=0", Some(&app.admin_key), None).expect_problem(400, "invalid_query");
    app.call("GET", "/v1/whoami?colour=red", Some(&app.admin_key), None).expect_problem(400, "invalid_query");
}
