//! Issue #3's point-in-time answers, as a compliance reviewer asks them over HTTP: the
//! permission view and "who can" before and after a role change, a key rotation and an
//! event-access change, by position and by time; the diff between the first and the last
//! position; and the filters of the audit listing.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, spawn_app};

/// The log position a mutation reports.
fn position(reply: &Reply) -> u64 {
    reply.header("keyledger-position").expect("Keyledger-Position").parse().expect("a number")
}

/// Waits long enough that the next record is written at a later millisecond, so that
/// asking by the time of a record reaches exactly that record.
fn tick() {
    std::thread::sleep(Duration::from_millis(15));
}

fn permissions(app: &TestApp, query: &str) -> Value {
    let reply = app.get(&format!("/v1/audit/permissions?{query}"));
    reply.expect(200);
    reply.json()
}

fn who_can(app: &TestApp, query: &str) -> Value {
    let reply = app.get(&format!("/v1/audit/who-can?{query}"));
    reply.expect(200);
    reply.json()
}

/// The ids of the users `whoCan` names, each with its key ids.
fn who(answer: &Value) -> Vec<(String, Vec<String>)> {
    answer["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|user| {
            let keys = user["key_ids"].as_array().expect("key_ids").iter().map(|k| k.as_str().unwrap().to_owned());
            (user["user_id"].as_str().unwrap().to_owned(), keys.collect())
        })
        .collect()
}

/// The user's entry in a `getPermissionsAt` answer.
fn user_in(view: &Value, user: &str) -> Value {
    view["users"].as_array().expect("users").iter().find(|u| u["id"] == user).cloned().expect("the user is listed")
}

fn functions_of(view: &Value, user: &str) -> Vec<String> {
    user_in(view, user)["functions"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_owned()).collect()
}

fn key_states(view: &Value, user: &str) -> BTreeSet<(String, String)> {
    user_in(view, user)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| (key["key_id"].as_str().unwrap().to_owned(), key["state"].as_str().unwrap().to_owned()))
        .collect()
}

/// A change of a diff: the cause's seq and type, grant or revoke, the kind of permission,
/// its id, and `until` as JSON text.
type ListedChange = (u64, String, String, String, String, String);

/// A time as a query value.
fn encoded(at: &Value) -> String {
    at.as_str().expect("a time").replace('+', "%2B")
}

#[test]
fn who_can_get_permissions_at_and_diff_permissions_answer_before_and_after_each_change() {
    let app = spawn_app();
    let (role, user, _key) = app.api_user();
    let first_key = app.get(&format!("/v1/users/{user}")).json()["key"]["key_id"].as_str().unwrap().to_owned();
    let start = app.audit_size();
    tick();

    // (a) A role change.
    let activated =
        app.post(&format!("/v1/roles/{role}/functions/activate"), &json!({ "functions": ["api.attendees.write"] }));
    activated.expect(200);
    let role_changed = position(&activated);
    tick();
    // (b) A key rotation, keeping the old key for an hour.
    let rotated = app.post(&format!("/v1/users/{user}/key"), &json!({ "grace_seconds": 3600 }));
    rotated.expect(201);
    let rotated_at = position(&rotated);
    let second_key = rotated.json()["key_id"].as_str().unwrap().to_owned();
    let valid_until = rotated.json()["replaced_key_valid_until"].clone();
    tick();
    // A group the user does not hold changes no one's permissions…
    let emea = app.create_group("EMEA", None);
    app.add_event(&emea, "gala-paris");
    let usa = app.get(&format!("/v1/users/{user}")).json()["event_access"]["groups"][0].as_str().unwrap().to_owned();
    tick();
    // (c) …until an event-access change grants it.
    let granted = app
        .put(&format!("/v1/users/{user}/event-access"), Some(&json!({ "all_events": false, "groups": [usa, emea] })));
    granted.expect(200);
    let access_changed = position(&granted);
    tick();

    let times: Vec<Value> = [start, role_changed, rotated_at, access_changed]
        .iter()
        .map(|position| permissions(&app, &format!("position={position}"))["recorded_at"].clone())
        .collect();
    let by_position_and_time = |index: usize| {
        let positions = [start, role_changed, rotated_at, access_changed];
        [format!("position={}", positions[index]), format!("at={}", encoded(&times[index]))]
    };

    for (index, expected_write) in [(0, false), (1, true)] {
        for point in by_position_and_time(index) {
            let view = permissions(&app, &point);
            assert_eq!(
                functions_of(&view, &user).contains(&"api.attendees.write".to_owned()),
                expected_write,
                "{point}"
            );
            let writers = who(&who_can(&app, &format!("function=api.attendees.write&event_id=summit-nyc&{point}")));
            let expected = if expected_write { vec![(user.clone(), vec![first_key.clone()])] } else { vec![] };
            assert_eq!(writers, expected, "{point}");
        }
    }
    let answer = who_can(&app, &format!("function=api.attendees.write&event_id=summit-nyc&position={role_changed}"));
    assert_eq!(answer["users"][0]["via_roles"][0]["id"], role.as_str());
    assert_eq!(answer["position"], role_changed);

    for point in by_position_and_time(1) {
        let view = permissions(&app, &point);
        assert_eq!(key_states(&view, &user), BTreeSet::from([(first_key.clone(), "active".to_owned())]), "{point}");
    }
    for point in by_position_and_time(2) {
        let view = permissions(&app, &point);
        let expected =
            BTreeSet::from([(first_key.clone(), "grace".to_owned()), (second_key.clone(), "active".to_owned())]);
        assert_eq!(key_states(&view, &user), expected, "{point}");
        let readers = who(&who_can(&app, &format!("function=api.attendees.read&event_id=summit-nyc&{point}")));
        assert_eq!(readers.len(), 1, "{point}");
        let keys: BTreeSet<&String> = readers[0].1.iter().collect();
        assert_eq!(keys, BTreeSet::from([&first_key, &second_key]), "{point}");
    }

    for point in by_position_and_time(2) {
        assert_eq!(who(&who_can(&app, &format!("function=api.attendees.read&event_id=gala-paris&{point}"))), []);
    }
    for point in by_position_and_time(3) {
        let answer = who_can(&app, &format!("function=api.attendees.read&event_id=gala-paris&{point}"));
        assert_eq!(answer["users"].as_array().unwrap().len(), 1, "{point}: {answer}");
        assert_eq!(answer["users"][0]["event_access"], json!({ "all_events": false, "group_chains": [[emea]] }));
        let view = permissions(&app, &point);
        assert_eq!(user_in(&view, &user)["event_access"]["groups"].as_array().unwrap().len(), 2);
    }
    // A nested group explains itself with the whole chain.
    let answer = who_can(&app, "function=api.attendees.read&event_id=summit-nyc");
    assert_eq!(answer["users"][0]["event_access"]["group_chains"], json!([[usa]]));

    // The diff lists exactly the three changes, and nothing for the group it did not hold.
    let expected: BTreeSet<ListedChange> = [
        (role_changed, "FunctionActivated", "grant", "function", "api.attendees.write", Value::Null),
        (rotated_at, "KeyGenerated", "revoke", "key", first_key.as_str(), valid_until),
        (rotated_at, "KeyGenerated", "grant", "key", second_key.as_str(), Value::Null),
        (access_changed, "EventAccessSet", "grant", "event_group", emea.as_str(), Value::Null),
        (access_changed, "EventAccessSet", "grant", "event", "gala-paris", Value::Null),
    ]
    .into_iter()
    .map(|(seq, kind, change, what, id, until)| {
        (seq, kind.to_owned(), change.to_owned(), what.to_owned(), id.to_owned(), until.to_string())
    })
    .collect();
    let diff_of = |query: &str| -> (Value, BTreeSet<ListedChange>) {
        let reply = app.get(&format!("/v1/audit/diff?{query}"));
        reply.expect(200);
        let diff = reply.json();
        let changes = diff["changes"].as_array().expect("changes");
        let listed: BTreeSet<_> = changes
            .iter()
            .map(|change| {
                assert_eq!(change["user_id"], user.as_str(), "{change}");
                assert!(change["cause"]["id"].is_string() && change["cause"]["actor"].is_string(), "{change}");
                let what = &change["what"];
                let kind = what["kind"].as_str().unwrap().to_owned();
                let id = what.as_object().unwrap().iter().find(|(name, _)| *name != "kind").map(|(_, v)| v.clone());
                (
                    change["cause"]["seq"].as_u64().unwrap(),
                    change["cause"]["type"].as_str().unwrap().to_owned(),
                    change["change"].as_str().unwrap().to_owned(),
                    kind,
                    id.and_then(|id| id.as_str().map(str::to_owned)).unwrap_or_default(),
                    change["until"].to_string(),
                )
            })
            .collect();
        assert_eq!(listed.len(), changes.len(), "no change is listed twice");
        let seqs: Vec<u64> = changes.iter().map(|c| c["cause"]["seq"].as_u64().unwrap()).collect();
        assert!(seqs.is_sorted(), "changes are in log order: {seqs:?}");
        (diff, listed)
    };
    let (diff, listed) = diff_of(&format!("from_position={start}&to_position={access_changed}"));
    assert_eq!(listed, expected);
    assert_eq!(diff["from"]["position"], start);
    assert_eq!(diff["to"]["position"], access_changed);
    let (_, by_time) = diff_of(&format!("from={}&to={}", encoded(&times[0]), encoded(&times[3])));
    assert_eq!(by_time, expected);
    let (_, to_head) = diff_of(&format!("from_position={start}"));
    assert_eq!(to_head, expected, "to defaults to the head");
    let (_, one_step) = diff_of(&format!("from_position={start}&to_position={role_changed}"));
    assert_eq!(one_step.len(), 1);
}

#[test]
fn point_in_time_questions_refuse_bad_points_with_a_precise_problem() {
    let app = spawn_app();
    let head = app.audit_size();
    let past = head + 1;
    for path in [
        format!("/v1/audit/permissions?position={past}"),
        format!("/v1/audit/who-can?function=api.events.read&position={past}"),
        format!("/v1/audit/diff?from_position={past}"),
        format!("/v1/audit/diff?from_position=0&to_position={past}"),
    ] {
        app.get(&path).expect_problem(422, "position_beyond_head");
    }
    for path in [
        "/v1/audit/permissions?at=yesterday",
        "/v1/audit/who-can?function=api.events.read&at=2027-02-30T00:00:00Z",
        "/v1/audit/diff?from=1700000000",
        "/v1/audit/permissions?position=-1",
        "/v1/audit/permissions?position=9223372036854775808",
        "/v1/audit/permissions?since=1",
        "/v1/audit/who-can",
        "/v1/audit/who-can?function=api.events.read&event_id=a%2Fb",
        "/v1/audit/diff",
        "/v1/audit/diff?to_position=1",
    ] {
        app.get(path).expect_problem(400, "invalid_query");
    }
    for path in [
        "/v1/audit/permissions?position=1&at=2027-01-01T00:00:00Z",
        "/v1/audit/who-can?function=api.events.read&position=1&at=2027-01-01T00:00:00Z",
        "/v1/audit/diff?from_position=1&from=2027-01-01T00:00:00Z",
        "/v1/audit/diff?from_position=1&to_position=2&to=2027-01-01T00:00:00Z",
    ] {
        app.get(path).expect_problem(400, "conflicting_parameters");
    }
    app.get("/v1/audit/permissions?at=2000-01-01T00:00:00Z").expect_problem(422, "before_first_record");
    app.get("/v1/audit/diff?from=2000-01-01T00:00:00Z").expect_problem(422, "before_first_record");
    app.get("/v1/audit/permissions?at=9999-01-01T00:00:00Z").expect_problem(422, "time_in_the_future");
    app.get("/v1/audit/who-can?function=api.nothing.read").expect_problem(422, "unknown_function");
    app.get(&format!("/v1/audit/diff?from_position={head}&to_position=1")).expect_problem(422, "reversed_range");
    // Position 0 is before the first record: an empty view, and a diff from the beginning.
    let empty = permissions(&app, "position=0");
    assert_eq!((empty["users"].as_array().unwrap().len(), &empty["recorded_at"]), (0, &Value::Null));
    app.get("/v1/audit/diff?from_position=0").expect(200);
}

/// Every record of the listing with this query (without `limit` and `after`), page by page.
fn listed(app: &TestApp, query: &str, limit: u32) -> Vec<Value> {
    app.list_pages(&format!("/v1/audit/events?{query}"), limit)
}

fn seqs(records: &[Value]) -> Vec<u64> {
    records.iter().map(|record| record["seq"].as_u64().unwrap()).collect()
}

#[test]
fn the_audit_listing_filters_by_type_actor_subject_and_time() {
    let app = spawn_app();
    let (_, user, _) = app.api_user();
    app.generate_key(&user, &json!({}));
    let all = app.list_all("/v1/audit/events");
    let matching = |keep: &dyn Fn(&Value) -> bool| seqs(&all.iter().filter(|r| keep(r)).cloned().collect::<Vec<_>>());

    let keys = listed(&app, "type=KeyGenerated", 1);
    assert_eq!(seqs(&keys), matching(&|r| r["type"] == "KeyGenerated"));
    assert_eq!(keys.len(), 3, "the bootstrap key and two for the app");
    let either = listed(&app, "type=RoleCreated,%20EventGroupCreated", 2);
    assert_eq!(seqs(&either), matching(&|r| r["type"] == "RoleCreated" || r["type"] == "EventGroupCreated"));
    assert_eq!(
        listed(&app, "actor=system", 100),
        all.iter().filter(|r| r["actor"] == "system").cloned().collect::<Vec<_>>()
    );
    let admin = all.last().unwrap()["actor"].as_str().unwrap().to_owned();
    assert_eq!(seqs(&listed(&app, &format!("actor={admin}"), 3)), matching(&|r| r["actor"] == admin.as_str()));
    let about_user = listed(&app, &format!("subject={user}&type=KeyGenerated"), 100);
    assert_eq!(seqs(&about_user), matching(&|r| r["subject"] == user.as_str() && r["type"] == "KeyGenerated"));
    assert_eq!(about_user.len(), 2);

    // `from` is inclusive and `to` exclusive.
    let (from, to) = (all[3]["at"].clone(), all[all.len() - 2]["at"].clone());
    let in_range = listed(&app, &format!("from={}&to={}", encoded(&from), encoded(&to)), 2);
    let (from_text, to_text) = (from.as_str().unwrap(), to.as_str().unwrap());
    let expected = matching(&|r| {
        let at = r["at"].as_str().unwrap();
        at >= from_text && at < to_text
    });
    assert_eq!(seqs(&in_range), expected);
    assert!(!expected.is_empty());

    app.get("/v1/audit/events?type=KeyExploded").expect_problem(400, "unknown_event_type");
    app.get("/v1/audit/events?type=").expect_problem(400, "unknown_event_type");
    app.get("/v1/audit/events?actor=root").expect_problem(400, "invalid_query");
    app.get("/v1/audit/events?from=yesterday").expect_problem(400, "invalid_query");
    app.get("/v1/audit/events?colour=red").expect_problem(400, "invalid_query");
    app.get(&format!("/v1/audit/events?from={}&to={}", encoded(&to), encoded(&from)))
        .expect_problem(422, "reversed_range");
}

#[test]
fn filtered_pages_are_stable_while_records_are_appended() {
    let app = std::sync::Arc::new(spawn_app());
    app.create_user("Before");
    let writer = {
        let app = std::sync::Arc::clone(&app);
        std::thread::spawn(move || {
            for index in 0..30 {
                app.create_role(&format!("Role {index}"));
                app.create_user(&format!("User {index}"));
            }
        })
    };
    let mut seen = Vec::new();
    let mut after = 0;
    let mut finished = false;
    loop {
        let reply = app.get(&format!("/v1/audit/events?type=UserCreated&limit=2&after={after}"));
        reply.expect(200);
        let page = reply.json();
        let items = page["items"].as_array().unwrap().clone();
        after = items.last().and_then(|r| r["seq"].as_u64()).or(page["next"].as_u64()).unwrap_or(after);
        seen.extend(items);
        if page["next"].is_null() {
            // Caught up with the writer: wait for it once, then read what it added.
            if finished {
                break;
            }
            if writer.is_finished() {
                finished = true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    writer.join().unwrap();
    let every: Vec<Value> =
        app.list_all("/v1/audit/events").into_iter().filter(|r| r["type"] == "UserCreated").collect();
    assert_eq!(seqs(&seen), seqs(&every), "each record once, in order, none missed");
    assert_eq!(every.len(), 32, "the Administrator, Before and thirty more");
}

#[test]
fn the_point_in_time_questions_need_audit_read() {
    let app = spawn_app();
    let (_, _, api_key) = app.api_user();
    for path in
        ["/v1/audit/permissions", "/v1/audit/who-can?function=api.events.read", "/v1/audit/diff?from_position=0"]
    {
        app.call("GET", path, None, None).expect_problem(401, "unauthenticated");
        app.call("GET", path, Some(&api_key), None).expect_problem(403, "forbidden");
    }
}

/// Follows `next` from the first page of `path` (whose query ends with `&`), `limit` at a
/// time, at the first page's position; gives every page.
fn pages(app: &TestApp, path: &str, limit: u32) -> Vec<Value> {
    let first = app.get(&format!("{path}limit={limit}"));
    first.expect(200);
    let first = first.json();
    let position = first["position"].as_u64().expect("position");
    let mut pages = vec![first];
    while let Some(after) = pages.last().and_then(|page| page["next"].as_u64()) {
        let reply = app.get(&format!("{path}limit={limit}&after={after}&position={position}"));
        reply.expect(200);
        pages.push(reply.json());
        assert!(pages.len() < 100, "paging never ends");
    }
    pages
}

fn ids(pages: &[Value], list: &str, id: &str) -> Vec<String> {
    pages
        .iter()
        .flat_map(|page| page[list].as_array().expect("a list").clone())
        .map(|item| item[id].as_str().expect("an id").to_owned())
        .collect()
}

#[test]
fn issue_9_who_can_and_get_permissions_at_are_paged() {
    let app = spawn_app();
    let role = app.create_role("Events readers");
    app.activate(&role, &["api.events.read"]);
    for n in 0..5 {
        let user = app.create_user(&format!("Reader {n}"));
        app.assign(&user, &role);
        app.generate_key(&user, &json!({}));
    }
    app.create_group("Americas", None);

    let whole = who_can(&app, "function=api.events.read&limit=1000");
    assert_eq!(whole["next"], Value::Null);
    let paged = pages(&app, "/v1/audit/who-can?function=api.events.read&", 2);
    assert_eq!(paged.len(), 3, "5 users, 2 a page");
    assert_eq!(paged[0]["users"].as_array().unwrap().len(), 2);
    assert_eq!(ids(&paged, "users", "user_id"), ids(&[whole], "users", "user_id"));

    let whole = permissions(&app, "limit=1000");
    assert_eq!(whole["next"], Value::Null);
    let paged = pages(&app, "/v1/audit/permissions?", 3);
    let whole = [whole];
    for list in ["users", "roles", "event_groups"] {
        assert_eq!(ids(&paged, list, "id"), ids(&whole, list, "id"), "{list}");
    }
    let on_first_page = ["users", "roles", "event_groups"].map(|list| paged[0][list].as_array().unwrap().len());
    assert_eq!(on_first_page.iter().sum::<usize>(), 3, "{on_first_page:?}");

    for query in ["limit=0", "limit=1001", "after=-1", "after=9223372036854775808"] {
        app.get(&format!("/v1/audit/permissions?{query}")).expect_problem(400, "invalid_query");
        app.get(&format!("/v1/audit/who-can?function=api.events.read&{query}")).expect_problem(400, "invalid_query");
    }
}
