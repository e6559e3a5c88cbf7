//! The admin workflow of the README, end to end, as issue #2's "Done when" states it.

use serde_json::json;

use crate::helpers::{spawn_app, without_last_use};

#[test]
fn the_api_user_walkthrough_grants_exactly_what_was_set_up() {
    let app = spawn_app();
    let (role, user, key) = app.api_user();

    // Allowed a read function on an event in its group.
    let allowed = app.check(&key, "api.attendees.read", Some("summit-nyc"));
    assert_eq!(allowed["allowed"], true);
    assert_eq!(allowed["reason"], "granted");
    assert_eq!(allowed["user_id"], user.as_str());
    // Refused a write function it was not given.
    assert_eq!(app.check_reason(&key, "api.attendees.write", Some("summit-nyc")), "function_not_granted");
    // Refused an event outside its groups.
    assert_eq!(app.check_reason(&key, "api.attendees.read", Some("gala-paris")), "event_not_accessible");
    // An event-scoped function needs an event, as its access is limited to groups; an
    // account-wide one does not.
    assert_eq!(app.check_reason(&key, "api.attendees.read", None), "event_required");
    assert_eq!(app.check_reason(&key, "api.events.read", None), "granted");

    // Assigning a second role to the API user is refused, and changes nothing.
    let other = app.create_role("Reporting");
    app.put(&format!("/v1/users/{user}/roles/{other}"), None).expect_problem(409, "standalone_api_role");
    let roles = app.get(&format!("/v1/users/{user}")).json()["roles"].clone();
    assert_eq!(roles, json!([role]));
}

#[test]
fn regenerating_a_key_retires_the_old_one_at_once_or_after_the_grace_period() {
    let app = spawn_app();
    let (_, user, first) = app.api_user();

    let second = app.generate_key(&user, &json!({}));
    assert_eq!(app.check_reason(&first, "api.events.read", None), "unknown_key");
    assert_eq!(app.check_reason(&second, "api.events.read", None), "granted");

    let third = app.generate_key(&user, &json!({ "grace_seconds": 3600 }));
    assert_eq!(app.check_reason(&second, "api.events.read", None), "granted", "still in its grace period");
    assert_eq!(app.check_reason(&third, "api.events.read", None), "granted");
}

#[test]
fn a_revoked_key_is_refused() {
    let app = spawn_app();
    let (_, user, key) = app.api_user();
    app.delete(&format!("/v1/users/{user}/key")).expect(200);
    let answer = app.check(&key, "api.attendees.read", Some("summit-nyc"));
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["reason"], "revoked_key");
}

#[test]
fn after_a_restart_every_answer_is_the_same_and_the_audit_log_verifies() {
    let app = spawn_app();
    let (role, user, key) = app.api_user();
    let before_user = app.get(&format!("/v1/users/{user}")).json();
    let before_role = app.get(&format!("/v1/roles/{role}")).json();
    let before_groups = app.get("/v1/event-groups").json();
    let questions = [
        ("api.attendees.read", Some("summit-nyc")),
        ("api.attendees.write", Some("summit-nyc")),
        ("api.attendees.read", Some("gala-paris")),
    ];
    let before: Vec<_> = questions.iter().map(|(f, e)| app.check(&key, f, *e)).collect();

    let app = app.restart();

    // The same user, except that the key's use (the checks above) was recorded at the stop.
    let after_user = app.get(&format!("/v1/users/{user}")).json();
    assert!(after_user["key"]["last_used_at"].is_string(), "{after_user}");
    assert_eq!(without_last_use(after_user), without_last_use(before_user));
    assert_eq!(app.get(&format!("/v1/roles/{role}")).json(), before_role);
    assert_eq!(app.get("/v1/event-groups").json(), before_groups);
    let after: Vec<_> = questions.iter().map(|(f, e)| app.check(&key, f, *e)).collect();
    assert_eq!(after, before);
    let verification = app.get("/v1/audit/verify").json();
    assert_eq!(verification["valid"], true);
    assert!(verification["size"].as_u64().unwrap() > 10);
}

#[test]
fn a_disabled_users_key_passes_no_check_until_the_user_is_enabled_again() {
    let app = spawn_app();
    let (_, user, key) = app.api_user();
    app.post_empty(&format!("/v1/users/{user}/disable")).expect(200);
    assert_eq!(app.check_reason(&key, "api.attendees.read", Some("summit-nyc")), "user_disabled");
    app.post_empty(&format!("/v1/users/{user}/enable")).expect(200);
    assert_eq!(app.check_reason(&key, "api.attendees.read", Some("summit-nyc")), "granted");
}

#[test]
fn a_key_stops_working_at_its_expiry_time() {
    let app = spawn_app();
    let (_, user, _) = app.api_user();
    let in_a_moment = (time_now_millis() + 1500) as f64 / 1000.0;
    let expires_at = rfc3339(in_a_moment);
    let key = app.generate_key(&user, &json!({ "expires_at": expires_at }));
    assert_eq!(app.check_reason(&key, "api.events.read", None), "granted");
    std::thread::sleep(std::time::Duration::from_millis(1700));
    assert_eq!(app.check_reason(&key, "api.events.read", None), "expired_key");
}

/// The wall clock, in milliseconds since the epoch.
pub(crate) fn time_now_millis() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
}

/// Formats seconds since the epoch as RFC 3339 UTC, without a date library.
pub(crate) fn rfc3339(seconds: f64) -> String {
    let whole = seconds.floor() as i64;
    let millis = ((seconds - whole as f64) * 1000.0).round() as i64;
    let (days, rest) = (whole.div_euclid(86_400), whole.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rest / 3600, (rest % 3600) / 60, rest % 60)
}

#[test]
fn a_roles_version_changes_when_its_holders_do_and_a_groups_when_its_children_do() {
    let app = spawn_app();
    let role = app.create_role("Reporting");
    let version = |path: &str| app.get(path).json()["version"].as_u64().unwrap();
    let role_path = format!("/v1/roles/{role}");
    let before = version(&role_path);
    let user = app.create_user("Analyst");
    app.assign(&user, &role);
    assert!(version(&role_path) > before, "the role's users changed, so must its version");

    let parent = app.create_group("Americas", None);
    let group_path = format!("/v1/event-groups/{parent}");
    let before = version(&group_path);
    app.create_group("USA", Some(&parent));
    assert!(version(&group_path) > before, "the group's children changed, so must its version");
}
