//! Brute-force protection: checks refused for their key are limited per client address.

use serde_json::json;

use crate::helpers::{Reply, TestApp, spawn_app_with};

const UNKNOWN_KEY: &str = "kl_000000000000000000000000000000000000";

fn check_with(app: &TestApp, key: &str, forwarded_for: Option<&str>) -> Reply {
    let body = serde_json::to_vec(&json!({ "key": key, "function": "api.events.read" })).unwrap();
    let mut headers = vec![("content-type", "application/json")];
    if let Some(forwarded_for) = forwarded_for {
        headers.push(("x-forwarded-for", forwarded_for));
    }
    app.raw("POST", "/v1/check", &headers, Some(&body))
}

#[test]
fn a_client_guessing_keys_gets_429_with_retry_after_even_for_a_valid_key_and_on_admin_operations() {
    let app = spawn_app_with(&["--failed-check-burst", "3", "--failed-checks-per-minute", "1"]);
    let (_, _, key) = app.api_user();
    for _ in 0..3 {
        let refused = check_with(&app, "kl_guess", None);
        refused.expect(200);
        assert_eq!(refused.json()["reason"], "malformed_key");
    }
    let limited = check_with(&app, &key, None);
    limited.expect_problem(429, "too_many_failed_checks");
    let retry_after: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    app.raw("GET", "/v1/authorize?function=api.attendees.read", &[("authorization", &format!("Bearer {key}"))], None)
        .expect_problem(429, "too_many_failed_checks");
    app.get("/v1/roles").expect_problem(429, "too_many_failed_checks");
}

#[test]
fn valid_keys_and_authorisation_refusals_spend_nothing() {
    let app = spawn_app_with(&["--failed-check-burst", "2"]);
    let (_, _, key) = app.api_user();
    for _ in 0..20 {
        assert_eq!(app.check_reason(&key, "api.attendees.read", Some("summit-nyc")), "granted");
        assert_eq!(app.check_reason(&key, "api.invoices.write", None), "function_not_granted");
        assert_eq!(app.check_reason(&key, "api.attendees.read", None), "event_required");
    }
    app.get("/v1/roles").expect(200);
}

#[test]
fn x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    let app = spawn_app_with(&["--failed-check-burst", "2", "--failed-checks-per-minute", "1"]);
    check_with(&app, UNKNOWN_KEY, Some("198.51.100.1")).expect(200);
    check_with(&app, UNKNOWN_KEY, Some("198.51.100.2")).expect(200);
    // A guesser cannot escape the limit by naming another address.
    check_with(&app, UNKNOWN_KEY, Some("198.51.100.3")).expect_problem(429, "too_many_failed_checks");
}

#[test]
fn behind_a_trusted_proxy_clients_are_told_apart_by_x_forwarded_for() {
    let app = spawn_app_with(&[
        "--failed-check-burst",
        "2",
        "--failed-checks-per-minute",
        "1",
        "--trusted-proxy",
        "127.0.0.1",
    ]);
    let (_, _, key) = app.api_user();
    for _ in 0..2 {
        check_with(&app, UNKNOWN_KEY, Some("203.0.113.7")).expect(200);
    }
    check_with(&app, UNKNOWN_KEY, Some("203.0.113.7")).expect_problem(429, "too_many_failed_checks");
    // Another client behind the same proxy is not slowed.
    let other = check_with(&app, &key, Some("203.0.113.8"));
    other.expect(200);
    assert_eq!(other.json()["reason"], "granted");
    // The right-most untrusted hop is the client: a spoofed left-most entry changes nothing.
    check_with(&app, UNKNOWN_KEY, Some("192.0.2.1, 203.0.113.7")).expect_problem(429, "too_many_failed_checks");
}
