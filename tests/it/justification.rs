//! Issue #14, point 1: why, on every change. A `Keyledger-Justification` header is kept in
//! every record of the change and shown by the trail, the diff, whoCan and the exported
//! bundle; `--require-justification` refuses a grant without one, never a removal.

use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, spawn_app, spawn_app_with};

/// Sends a request as the Administrator with a JSON body (if any) and a justification (if any).
fn send(app: &TestApp, method: &str, path: &str, body: Option<&Value>, why: Option<&str>) -> Reply {
    let authorization = format!("Bearer {}", app.admin_key);
    let mut headers: Vec<(&str, &str)> = vec![("authorization", &authorization)];
    let bytes = body.map(|body| serde_json::to_vec(body).expect("json"));
    if bytes.is_some() {
        headers.push(("content-type", "application/json"));
    }
    if let Some(why) = why {
        headers.push(("keyledger-justification", why));
    }
    app.raw(method, path, &headers, bytes.as_deref())
}

/// The records of the whole trail.
fn trail(app: &TestApp) -> Vec<Value> {
    app.records_after(0)
}

#[test]
fn a_justification_shows_in_the_trail_the_diff_who_can_and_the_exported_bundle() {
    let app = spawn_app();
    let head = app.audit_size();
    let role = send(&app, "POST", "/v1/roles", Some(&json!({"description": "Attendance"})), None).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    send(
        &app,
        "POST",
        &format!("/v1/roles/{role}/functions/activate"),
        Some(&json!({"functions": ["api.attendees.read", "api.events.read"]})),
        Some("OPS-1: the attendance app reads attendees"),
    )
    .expect(200);
    let user = app.create_user("Attendance app");
    send(&app, "PUT", &format!("/v1/users/{user}/roles/{role}"), None, Some("OPS-2 café \"quoted\"")).expect(200);
    send(&app, "POST", &format!("/v1/users/{user}/key"), Some(&json!({})), Some("  OPS-3  ")).expect(201);

    // The trail: every record of a justified change carries it, trimmed; the others none.
    let records = trail(&app);
    let why_of = |kind: &str| -> Vec<Value> {
        records
            .iter()
            .filter(|record| record["seq"].as_u64().unwrap() > head && record["type"] == kind)
            .map(|record| record.get("justification").cloned().unwrap_or(Value::Null))
            .collect()
    };
    let activated = json!("OPS-1: the attendance app reads attendees");
    assert_eq!(why_of("FunctionActivated"), vec![activated.clone(), activated.clone()]);
    assert_eq!(why_of("RoleAssigned"), vec![json!("OPS-2 café \"quoted\"")]);
    assert_eq!(why_of("KeyGenerated"), vec![json!("OPS-3")]);
    assert_eq!(why_of("RoleCreated"), vec![Value::Null]);
    assert_eq!(why_of("UserCreated"), vec![Value::Null]);

    // The diff: each change names its cause's justification.
    let diff = app.get(&format!("/v1/audit/diff?from_position={head}"));
    diff.expect(200);
    let causes: Vec<(String, Value)> = diff.json()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| (change["cause"]["type"].as_str().unwrap().to_owned(), change["cause"]["justification"].clone()))
        .collect();
    assert!(causes.contains(&("KeyGenerated".to_owned(), json!("OPS-3"))), "{causes:?}");
    assert!(causes.contains(&("RoleAssigned".to_owned(), json!("OPS-2 café \"quoted\""))), "{causes:?}");
    // (The functions were active before the user held the role, so the diff, which is per
    // user, names the assignment as the cause of both.)

    // whoCan: who granted each part of the answer, when and why.
    let who = app.get("/v1/audit/who-can?function=api.events.read");
    who.expect(200);
    let answer = who.json();
    let listed = answer["users"].as_array().unwrap().iter().find(|listed| listed["user_id"] == user.as_str());
    let granted_by = listed.expect("the user is listed")["granted_by"].as_array().expect("granted_by").clone();
    let by_type = |kind: &str| granted_by.iter().find(|grant| grant["cause"]["type"] == kind).cloned();
    let assigned = by_type("RoleAssigned").expect("the assignment");
    assert_eq!(assigned["cause"]["justification"], "OPS-2 café \"quoted\"");
    let explained = assigned["explanation"].as_str().unwrap();
    let admin = records.iter().find(|r| r["type"] == "RoleAssigned" && r["subject"] == user.as_str()).unwrap();
    assert_eq!(
        explained,
        format!(
            "granted by {} at {}: OPS-2 café \"quoted\"",
            admin["actor"].as_str().unwrap(),
            admin["at"].as_str().unwrap()
        )
    );
    assert_eq!(by_type("FunctionActivated").unwrap()["cause"]["justification"], activated);
    assert_eq!(by_type("KeyGenerated").unwrap()["cause"]["justification"], "OPS-3");

    // The exported bundle holds the records as stored, justification included, and verifies.
    let bundle = app.get("/v1/audit/export");
    bundle.expect(200);
    let lines: Vec<Value> = bundle.body.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let exported = |kind: &str| {
        lines.iter().filter(|line| line["type"] == kind).filter_map(|line| line.get("justification")).count()
    };
    assert_eq!((exported("FunctionActivated"), exported("RoleAssigned"), exported("KeyGenerated")), (2, 1, 1));
    assert!(bundle.body.contains(r#""justification":"OPS-3","subject":"#));
    assert_eq!(app.verified_audit_size(), app.audit_size());
}

#[test]
fn a_malformed_justification_is_a_400_naming_the_rule_and_appends_nothing() {
    let app = spawn_app();
    let role = app.create_role("Readers");
    let path = format!("/v1/roles/{role}/functions/activate");
    let body = json!({"functions": ["api.events.read"]});
    let head = app.audit_size();
    for (why, says) in
        [("x".repeat(501), "at most 500"), ("OPS\u{202E}1".to_owned(), "U+202E"), ("OPS\t1".to_owned(), "U+0009")]
    {
        let reply = send(&app, "POST", &path, Some(&body), Some(&why));
        reply.expect_problem(400, "invalid_justification");
        assert!(reply.json()["detail"].as_str().unwrap().contains(says), "{}", reply.body);
    }
    assert_eq!(app.audit_size(), head);
    // Five hundred characters are fine, UTF-8 included.
    send(&app, "POST", &path, Some(&body), Some(&"é".repeat(500))).expect(200);
}

#[test]
fn require_justification_refuses_a_grant_without_one_and_accepts_a_removal() {
    let app = spawn_app_with(&["--require-justification"]);
    // Creating an empty role or user grants nothing.
    let role = app.create_role("Writers");
    let user = app.create_user("Writer app");
    let head = app.audit_size();
    let grants: [(&str, String, Option<Value>); 4] = [
        ("POST", format!("/v1/roles/{role}/functions/activate"), Some(json!({"functions": ["api.people.write"]}))),
        ("PUT", format!("/v1/users/{user}/roles/{role}"), None),
        ("PUT", format!("/v1/users/{user}/event-access"), Some(json!({"all_events": true, "groups": []}))),
        ("POST", format!("/v1/users/{user}/key"), Some(json!({}))),
    ];
    for (method, path, body) in &grants {
        send(&app, method, path, body.as_ref(), None).expect_problem(422, "justification_required");
    }
    assert_eq!(app.audit_size(), head, "a refused grant appends nothing");
    for (method, path, body) in &grants {
        let reply = send(&app, method, path, body.as_ref(), Some("OPS-7"));
        assert!(reply.status == 200 || reply.status == 201, "{method} {path}: {}", reply.body);
    }
    // Removals never need one.
    app.delete(&format!("/v1/users/{user}/key")).expect(200);
    app.delete(&format!("/v1/users/{user}/roles/{role}")).expect(200);
    app.post(&format!("/v1/roles/{role}/functions/deactivate"), &json!({"functions": ["api.people.write"]}))
        .expect(200);
    app.post_empty(&format!("/v1/users/{user}/disable")).expect(200);
    // Enabling the user again grants access.
    send(&app, "POST", &format!("/v1/users/{user}/enable"), None, None).expect_problem(422, "justification_required");
}

#[test]
fn every_mutation_in_the_spec_takes_the_justification_header() {
    let app = spawn_app();
    let spec = app.raw("GET", "/openapi.json", &[], None).json();
    let mut mutations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let is_mutation = ["post", "put", "delete", "patch"].contains(&method.as_str())
                && !path.starts_with("/v1/check")
                && !path.starts_with("/v1/authorize");
            if !is_mutation {
                continue;
            }
            mutations += 1;
            let takes_it = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|parameter| parameter["name"] == "Keyledger-Justification" && parameter["in"] == "header");
            assert!(takes_it, "{} {path} does not document Keyledger-Justification", method.to_uppercase());
        }
    }
    assert!(mutations >= 14, "{mutations}");
}

#[test]
fn an_idempotent_retry_must_give_the_same_justification() {
    let app = spawn_app();
    let role = app.create_role("Retried");
    let path = format!("/v1/roles/{role}/functions/activate");
    let body = serde_json::to_vec(&json!({"functions": ["api.events.read"]})).unwrap();
    let authorization = format!("Bearer {}", app.admin_key);
    let send = |why: &str| {
        let headers = [
            ("authorization", authorization.as_str()),
            ("content-type", "application/json"),
            ("idempotency-key", "retry-1"),
            ("keyledger-justification", why),
        ];
        app.raw("POST", &path, &headers, Some(&body))
    };
    send("OPS-1").expect(200);
    let replayed = send("OPS-1");
    replayed.expect(200);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    // Another reason is another request: the records would say something else.
    send("OPS-2").expect_problem(422, "idempotency_key_reused");
}

#[test]
fn who_can_names_the_records_that_gave_access_to_the_event_and_forgets_what_was_taken_away() {
    let app = spawn_app();
    let (user, _key) = app.user_with_functions("Attendance app", &["api.attendees.read"]);
    let group = app.create_group("USA", None);
    let path = format!("/v1/event-groups/{group}/events/summit-nyc");
    send(&app, "PUT", &path, None, Some("OPS-5 the summit joins USA")).expect(200);
    let access = json!({"all_events": false, "groups": [group]});
    send(&app, "PUT", &format!("/v1/users/{user}/event-access"), Some(&access), Some("OPS-6")).expect(200);

    let granted_by = |query: &str| -> Vec<(String, Value)> {
        let answer = app.get(&format!("/v1/audit/who-can?{query}")).json();
        let listed = answer["users"].as_array().unwrap().iter().find(|listed| listed["user_id"] == user.as_str());
        listed.expect("the user is listed")["granted_by"]
            .as_array()
            .unwrap()
            .iter()
            .map(|grant| (grant["cause"]["type"].as_str().unwrap().to_owned(), grant["cause"]["justification"].clone()))
            .collect()
    };
    let answer = granted_by("function=api.attendees.read&event_id=summit-nyc");
    assert!(answer.contains(&("EventAddedToGroup".to_owned(), json!("OPS-5 the summit joins USA"))), "{answer:?}");
    assert!(answer.contains(&("EventAccessSet".to_owned(), json!("OPS-6"))), "{answer:?}");
    let kinds: Vec<&str> = answer.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["FunctionActivated", "RoleAssigned", "KeyGenerated", "EventAddedToGroup", "EventAccessSet"],
        "in log order"
    );

    // The event leaves the group and comes back without a reason: the record named is the
    // one that made the fact as it stands.
    app.delete(&path).expect(200);
    app.put(&path, None).expect(200);
    let answer = granted_by("function=api.attendees.read&event_id=summit-nyc");
    assert!(answer.contains(&("EventAddedToGroup".to_owned(), Value::Null)), "{answer:?}");
}
