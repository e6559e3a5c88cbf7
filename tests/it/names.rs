//! Names that look alike are refused (issue #9, item 9): role descriptions, user names and
//! group names are NFC-normalised, may hold no control or format character, and may not
//! look like an existing one, so a reviewer never sees two entities that read the same.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// "Administrator" with a Cyrillic capital A (U+0410) for the Latin one.
const CYRILLIC_ADMINISTRATOR: &str = "\u{410}dministrator";

/// The id of the role described exactly as `description`.
fn role_described(app: &TestApp, description: &str) -> String {
    let roles = app.list_all("/v1/roles");
    let role = roles.iter().find(|role| role["description"] == description).expect("the role exists");
    role["id"].as_str().expect("id").to_owned()
}

fn detail(problem: &Value) -> &str {
    problem["detail"].as_str().expect("a detail")
}

#[test]
fn a_role_described_with_a_cyrillic_a_is_409_naming_the_administrator_role_even_after_a_restart() {
    let app = spawn_app();
    let administrator = role_described(&app, "Administrator");
    let before = app.audit_size();

    let reply = app.post("/v1/roles", &json!({ "description": CYRILLIC_ADMINISTRATOR }));
    reply.expect_problem(409, "lookalike_name");
    assert!(detail(&reply.json()).contains(&administrator), "the refusal names the role: {}", reply.body);
    let reply = app.post("/v1/roles", &json!({ "description": "ADMlNISTRATOR" }));
    reply.expect_problem(409, "lookalike_name");
    assert_eq!(app.audit_size(), before, "a refusal appends nothing");

    // The index is rebuilt from the snapshot or the log after a restart.
    let app = app.restart();
    let reply = app.post("/v1/roles", &json!({ "description": CYRILLIC_ADMINISTRATOR }));
    reply.expect_problem(409, "lookalike_name");
    assert!(detail(&reply.json()).contains(&administrator), "{}", reply.body);
    assert_eq!(app.list_all("/v1/roles").len(), 1, "no second Administrator role");
}

#[test]
fn a_decomposed_description_is_the_same_role_as_its_composed_form() {
    let app = spawn_app();
    let cafe = app.create_role("Caf\u{e9}");
    let before = app.audit_size();

    let reply = app.post("/v1/roles", &json!({ "description": "Cafe\u{301}" }));
    reply.expect_problem(409, "duplicate_description");
    assert!(detail(&reply.json()).contains(&cafe), "{}", reply.body);
    assert_eq!(app.audit_size(), before, "a refusal appends nothing");
}

#[test]
fn names_are_stored_composed() {
    let app = spawn_app();
    let user = app.post("/v1/users", &json!({ "name": "Zoe\u{308} app" }));
    user.expect(201);
    assert_eq!(user.json()["name"], "Zo\u{eb} app");
    let group = app.post("/v1/event-groups", &json!({ "name": "Re\u{301}union" }));
    group.expect(201);
    assert_eq!(group.json()["name"], "R\u{e9}union");
}

#[test]
fn a_bidi_override_or_a_zero_width_character_in_a_name_is_422_naming_the_code_point() {
    let app = spawn_app();
    let before = app.audit_size();
    let cases = [
        ("/v1/users", "name", "Booking\u{202E}ppa", "name contains U+202E, a control or format character"),
        ("/v1/users", "name", "Booking\u{2066}app", "name contains U+2066, a control or format character"),
        (
            "/v1/roles",
            "description",
            "Admin\u{200B}istrator",
            "description contains U+200B, a control or format character",
        ),
        ("/v1/event-groups", "name", "EM\u{200D}EA", "name contains U+200D, a control or format character"),
        ("/v1/event-groups", "name", "\u{FEFF}EMEA", "name contains U+FEFF, a control or format character"),
    ];
    for (path, field, value, message) in cases {
        let reply = app.post(path, &json!({ field: value }));
        reply.expect_problem(422, "invalid_value");
        assert_eq!(detail(&reply.json()), message, "{path} {value:?}");
    }
    assert_eq!(app.audit_size(), before, "a refusal appends nothing");
    assert_eq!(app.list_all("/v1/users").len(), 1, "only the Administrator");
}

#[test]
fn a_user_named_like_another_user_is_409_naming_that_user() {
    let app = spawn_app();
    let booking = app.create_user("Booking app");
    let before = app.audit_size();
    // The same name, the same but for case, and one with Cyrillic o's.
    for name in ["Booking app", "BOOKING APP", "B\u{43E}\u{43E}king app"] {
        let reply = app.post("/v1/users", &json!({ "name": name }));
        reply.expect_problem(409, "lookalike_name");
        assert!(detail(&reply.json()).contains(&booking), "{name:?}: {}", reply.body);
    }
    assert_eq!(app.audit_size(), before, "a refusal appends nothing");
    app.create_user("Booking app 2");
}

#[test]
fn a_group_named_like_a_sibling_is_409_naming_it_and_allowed_elsewhere() {
    let app = spawn_app();
    let americas = app.create_group("Americas", None);
    let emea = app.create_group("EMEA", None);
    let before = app.audit_size();
    // "ЕМЕА" in Cyrillic capitals.
    let reply = app.post("/v1/event-groups", &json!({ "name": "\u{415}\u{41C}\u{415}\u{410}" }));
    reply.expect_problem(409, "lookalike_name");
    assert!(detail(&reply.json()).contains(&emea), "{}", reply.body);
    assert_eq!(app.audit_size(), before, "a refusal appends nothing");
    app.create_group("\u{415}\u{41C}\u{415}\u{410}", Some(&americas));
}
