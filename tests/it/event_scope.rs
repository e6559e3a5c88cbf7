//! Event-scoped functions need an event (issue #9, item 7): a check of attendees,
//! sessions or invoices that names no event is refused as `event_required` for a user
//! whose event access is limited to groups, while account-wide functions and users with
//! access to every event need none.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// `authorizeRequest` for `function` (on `event_id`) with `key`.
fn authorize(app: &TestApp, key: &str, function: &str, event_id: Option<&str>) -> crate::helpers::Reply {
    let query = match event_id {
        Some(event_id) => format!("function={function}&event_id={event_id}"),
        None => format!("function={function}"),
    };
    app.call("GET", &format!("/v1/authorize?{query}"), Some(key), None)
}

/// The ids of the users `whoCan` lists for `function`, named with no event.
fn who_can_without_event(app: &TestApp, function: &str) -> Vec<Value> {
    let answer = app.get(&format!("/v1/audit/who-can?function={function}"));
    answer.expect(200);
    answer.json()["users"].as_array().expect("users").iter().map(|user| user["user_id"].clone()).collect()
}

#[test]
fn list_functions_tells_which_functions_need_an_event() {
    let app = spawn_app();
    let scopes: BTreeMap<String, String> = app
        .list_all("/v1/functions")
        .iter()
        .map(|function| (function["id"].as_str().unwrap().to_owned(), function["scope"].as_str().unwrap().to_owned()))
        .collect();
    let event_scoped: Vec<&str> =
        scopes.iter().filter(|(_, scope)| *scope == "event").map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        event_scoped,
        ["api.attendees.read", "api.attendees.write", "api.invoices.read", "api.invoices.write", "api.sessions.read"]
    );
    for (id, scope) in &scopes {
        assert!(scope == "event" || scope == "account", "{id}: {scope}");
    }
    assert_eq!(scopes["api.events.read"], "account");
    assert_eq!(scopes["api.people.read"], "account");
    assert_eq!(scopes["api.people.write"], "account");
    assert_eq!(scopes["security.users.manage"], "account");
}

#[test]
fn check_key_refuses_an_event_scoped_function_without_an_event_for_a_user_limited_to_groups() {
    let app = spawn_app();
    let (_, user, key) = app.api_user();

    let refused = app.check(&key, "api.attendees.read", None);
    assert_eq!(refused["allowed"], false, "{refused}");
    assert_eq!(refused["reason"], "event_required", "{refused}");
    assert_eq!(refused["user_id"], user.as_str(), "the key worked: the answer names its user");
    for function in ["api.sessions.read", "api.invoices.read"] {
        assert_eq!(app.check_reason(&key, function, None), "event_required", "{function}");
    }

    assert_eq!(app.check_reason(&key, "api.attendees.read", Some("summit-nyc")), "granted");
    assert_eq!(app.check_reason(&key, "api.attendees.read", Some("gala-paris")), "event_not_accessible");
    // Account-wide functions need no event.
    assert_eq!(app.check_reason(&key, "api.events.read", None), "granted");
    assert_eq!(app.check_reason(&key, "api.people.read", None), "granted");
}

#[test]
fn authorize_request_answers_403_event_required_for_an_event_scoped_function_without_an_event() {
    let app = spawn_app();
    let (_, _, key) = app.api_user();

    let refused = authorize(&app, &key, "api.attendees.read", None);
    refused.expect_problem(403, "forbidden");
    assert_eq!(refused.header("keyledger-reason"), Some("event_required"));
    assert_eq!(refused.header("www-authenticate"), None, "the key is fine: no challenge");
    assert_eq!(refused.header("keyledger-user-id"), None, "a refusal names no user upstream");

    let granted = authorize(&app, &key, "api.attendees.read", Some("summit-nyc"));
    granted.expect(200);
    assert_eq!(granted.header("keyledger-reason"), Some("granted"));
    authorize(&app, &key, "api.events.read", None).expect(200);
}

#[test]
fn a_user_with_access_to_every_event_needs_no_event_and_who_can_agrees() {
    let app = spawn_app();
    let (_, user, key) = app.api_user();
    assert_eq!(who_can_without_event(&app, "api.attendees.read"), Vec::<Value>::new());
    assert_eq!(who_can_without_event(&app, "api.events.read"), [json!(user)]);

    app.put(&format!("/v1/users/{user}/event-access"), Some(&json!({ "all_events": true, "groups": [] }))).expect(200);
    assert_eq!(app.check_reason(&key, "api.attendees.read", None), "granted");
    assert_eq!(app.check_reason(&key, "api.attendees.read", Some("gala-paris")), "granted");
    authorize(&app, &key, "api.attendees.read", None).expect(200);
    assert_eq!(who_can_without_event(&app, "api.attendees.read"), [json!(user)]);
}
