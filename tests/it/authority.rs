//! Least privilege for the admin plane (issue #9): every attack the issue lists, tried with
//! real keys against the real server, now fails, and the refusal is on the record.

use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

/// The Administrator role, which the bootstrap created and the admin key's user holds.
fn administrator_role(app: &TestApp) -> String {
    let roles = app.list_all("/v1/roles");
    let role = roles.iter().find(|role| role["description"] == "Administrator").expect("the Administrator role");
    role["id"].as_str().expect("an id").to_owned()
}

/// The bootstrapped administrator's user id.
fn administrator(app: &TestApp) -> String {
    app.check(&app.admin_key, "security.roles.read", None)["user_id"].as_str().expect("a user id").to_owned()
}

/// Every admin function, as `security.*` ids.
fn every_admin_function(app: &TestApp) -> Vec<String> {
    app.list_all("/v1/functions")
        .iter()
        .filter(|function| function["kind"] == "admin")
        .map(|function| function["id"].as_str().expect("an id").to_owned())
        .collect()
}

#[test]
fn a_role_manager_cannot_give_its_own_role_the_functions_it_lacks() {
    let app = spawn_app();
    let (_, key) = app.user_with_functions("Role manager", &["security.roles.manage"]);
    let role = app.list_all("/v1/roles").into_iter().find(|role| role["description"] == "Role of Role manager");
    let role = role.expect("its role")["id"].as_str().expect("an id").to_owned();
    let before = app.audit_size();
    for function in ["security.users.manage", "security.keys.manage", "security.audit.read"] {
        let body = json!({ "functions": [function] });
        app.call("POST", &format!("/v1/roles/{role}/functions/activate"), Some(&key), Some(&body))
            .expect_problem(403, "insufficient_authority");
    }
    app.call("GET", "/v1/users", Some(&key), None).expect_problem(403, "forbidden");
    app.call("GET", "/v1/audit/export", Some(&key), None).expect_problem(403, "forbidden");
    // The refusals are on the record, and nothing else changed.
    let records = app.wait_for_records(before, |records| records.len() >= 5);
    assert!(records.iter().all(|record| record["type"] == "AdminAccessDenied"), "{records:?}");
    let refused: Vec<&str> = records.iter().filter_map(|record| record["data"]["function"].as_str()).collect();
    for function in ["security.users.manage", "security.keys.manage", "security.audit.read"] {
        assert!(refused.contains(&function), "{function} refused but not recorded: {records:?}");
    }
    let role_now = app.get(&format!("/v1/roles/{role}")).json();
    assert_eq!(role_now["functions"], json!(["security.roles.manage"]), "{role_now}");
}

#[test]
fn a_user_manager_can_neither_make_itself_administrator_nor_disable_or_strip_the_administrator() {
    let app = spawn_app();
    let (climber, climber_key) = app.user_with_functions("Climber", &["security.users.manage"]);
    let (_, other_key) = app.user_with_functions("Other user manager", &["security.users.manage"]);
    let (admin_role, admin) = (administrator_role(&app), administrator(&app));

    app.call("PUT", &format!("/v1/users/{climber}/roles/{admin_role}"), Some(&climber_key), None)
        .expect_problem(403, "insufficient_authority");
    app.call("POST", &format!("/v1/users/{admin}/disable"), Some(&other_key), None)
        .expect_problem(403, "insufficient_authority");
    app.call("DELETE", &format!("/v1/users/{admin}/roles/{admin_role}"), Some(&other_key), None)
        .expect_problem(403, "insufficient_authority");

    // The administrator is untouched and its key still administers.
    let admin_now = app.get(&format!("/v1/users/{admin}")).json();
    assert_eq!(admin_now["enabled"], true, "{admin_now}");
    let climber_now = app.get(&format!("/v1/users/{climber}")).json();
    assert!(!climber_now["roles"].to_string().contains(&admin_role), "{climber_now}");
    // Acting on an API user, who holds no admin function, is still allowed.
    let (_, app_user, _) = app.api_user();
    app.call("POST", &format!("/v1/users/{app_user}/disable"), Some(&other_key), None).expect(200);
}

#[test]
fn a_key_manager_cannot_take_over_the_administrators_key() {
    let app = spawn_app();
    let (_, key) = app.user_with_functions("Key manager", &["security.keys.manage"]);
    let admin = administrator(&app);
    let reply = app.call("POST", &format!("/v1/users/{admin}/key"), Some(&key), Some(&json!({})));
    reply.expect_problem(403, "insufficient_authority");
    assert!(!reply.body.contains("kl_"), "no secret is handed out: {}", reply.body);
    app.call("DELETE", &format!("/v1/users/{admin}/key"), Some(&key), None)
        .expect_problem(403, "insufficient_authority");
    // The real administrator is not cut off.
    assert_eq!(app.check_reason(&app.admin_key, "security.keys.manage", None), "granted");
}

#[test]
fn of_two_administrators_disabling_each_other_at_once_never_both_succeed() {
    let app = spawn_app();
    let functions = every_admin_function(&app);
    let functions: Vec<&str> = functions.iter().map(String::as_str).collect();
    for trial in 0..15 {
        let (first, first_key) = app.user_with_functions(&format!("First {trial}"), &functions);
        let (second, second_key) = app.user_with_functions(&format!("Second {trial}"), &functions);
        let statuses = std::thread::scope(|scope| {
            let one =
                scope.spawn(|| app.call("POST", &format!("/v1/users/{second}/disable"), Some(&first_key), None).status);
            let other =
                scope.spawn(|| app.call("POST", &format!("/v1/users/{first}/disable"), Some(&second_key), None).status);
            [one.join().expect("a thread"), other.join().expect("a thread")]
        });
        let succeeded = statuses.iter().filter(|status| **status == 200).count();
        assert_eq!(succeeded, 1, "trial {trial}: exactly one of the two disables wins: {statuses:?}");
        // The loser is refused: at the door (its key no longer works, 401) or by the
        // writer (its user was disabled by the time its command was applied, 403).
        assert!(statuses.iter().all(|status| [200, 401, 403].contains(status)), "trial {trial}: {statuses:?}");
        let enabled = [&first, &second]
            .iter()
            .filter(|user| app.get(&format!("/v1/users/{user}")).json()["enabled"] == true)
            .count();
        assert_eq!(enabled, 1, "trial {trial}: one of the two is still enabled");
    }
}

#[test]
fn nobody_can_lock_every_administrator_out() {
    let app = spawn_app();
    let functions = every_admin_function(&app);
    let functions: Vec<&str> = functions.iter().map(String::as_str).collect();
    let (deputy, deputy_key) = app.user_with_functions("Deputy", &functions);
    let admin = administrator(&app);

    // The administrator disables its deputy and revokes its key: allowed, it still stands.
    app.post_empty(&format!("/v1/users/{deputy}/disable")).expect(200);
    app.delete(&format!("/v1/users/{deputy}/key")).expect(200);
    assert_eq!(app.check_reason(&deputy_key, "security.roles.read", None), "revoked_key");

    // Then it may not give its own key an expiry: time alone would lock everyone out.
    let expiring = json!({ "expires_at": "2099-01-01T00:00:00Z" });
    app.post(&format!("/v1/users/{admin}/key"), &expiring).expect_problem(409, "last_administrator");
    assert_eq!(app.check_reason(&app.admin_key, "security.roles.read", None), "granted");

    // With a second standing administrator, either may be removed, but not both.
    let (second, second_key) = app.user_with_functions("Second", &functions);
    app.call("POST", &format!("/v1/users/{admin}/disable"), Some(&second_key), None).expect(200);
    let reply = app.call("POST", &format!("/v1/users/{second}/key"), Some(&second_key), Some(&expiring));
    reply.expect_problem(409, "last_administrator");
    assert!(reply.json()["detail"].as_str().is_some_and(|detail| detail.contains("administrator")), "{}", reply.body);
}
