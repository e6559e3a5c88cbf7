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

fn authorize_with(app: &TestApp, key: Option<&str>, forwarded_for: Option<&str>) -> Reply {
    let authorization = key.map(|key| format!("Bearer {key}"));
    let mut headers = Vec::new();
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization.as_str()));
    }
    if let Some(forwarded_for) = forwarded_for {
        headers.push(("x-forwarded-for", forwarded_for));
    }
    app.raw("GET", "/v1/authorize?function=api.events.read", &headers, None)
}

/// Issue 9: `authorizeRequest` answered 300 bad keys with 300 × 401 and never 429.
#[test]
fn the_gateway_path_answers_429_with_retry_after_to_a_client_guessing_keys_even_for_a_valid_key() {
    let app = spawn_app_with(&["--failed-check-burst", "3", "--failed-checks-per-minute", "1"]);
    let (_, _, key) = app.api_user();
    authorize_with(&app, Some(&key), None).expect(200);
    for guess in ["kl_guess", UNKNOWN_KEY, "kl_guess"] {
        authorize_with(&app, Some(guess), None).expect_problem(401, "unauthenticated");
    }
    let limited = authorize_with(&app, Some(&key), None);
    limited.expect_problem(429, "too_many_failed_checks");
    let retry_after: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    authorize_with(&app, Some(UNKNOWN_KEY), None).expect_problem(429, "too_many_failed_checks");
    // The limit is the client's, whichever operation it guessed on.
    check_with(&app, &key, None).expect_problem(429, "too_many_failed_checks");
}

#[test]
fn the_gateway_path_counts_no_request_that_sends_no_key() {
    let app = spawn_app_with(&["--failed-check-burst", "2", "--failed-checks-per-minute", "1"]);
    let (_, _, key) = app.api_user();
    for _ in 0..10 {
        let anonymous = authorize_with(&app, None, None);
        anonymous.expect_problem(401, "unauthenticated");
        assert_eq!(anonymous.header("keyledger-reason"), Some("malformed_key"));
    }
    authorize_with(&app, Some(&key), None).expect(200);
}

#[test]
fn behind_a_trusted_proxy_the_gateway_path_limits_each_real_client_whatever_port_its_hop_carries() {
    let app = spawn_app_with(&[
        "--failed-check-burst",
        "2",
        "--failed-checks-per-minute",
        "1",
        "--trusted-proxy",
        "127.0.0.1",
    ]);
    let (_, _, key) = app.api_user();
    // The proxy names the client with a port, a new one each connection.
    authorize_with(&app, Some(UNKNOWN_KEY), Some("203.0.113.7:50001")).expect_problem(401, "unauthenticated");
    authorize_with(&app, Some(UNKNOWN_KEY), Some("203.0.113.7:50002")).expect_problem(401, "unauthenticated");
    authorize_with(&app, Some(&key), Some("203.0.113.7:50003")).expect_problem(429, "too_many_failed_checks");
    authorize_with(&app, Some(&key), Some("203.0.113.7")).expect_problem(429, "too_many_failed_checks");
    // Another client behind the same proxy is not slowed.
    authorize_with(&app, Some(&key), Some("203.0.113.8:50004")).expect(200);
    // IPv6 clients are told apart by their /64, with or without a port.
    authorize_with(&app, Some(UNKNOWN_KEY), Some("[2001:db8:1:2::1]:443")).expect_problem(401, "unauthenticated");
    authorize_with(&app, Some(UNKNOWN_KEY), Some("2001:db8:1:2::2")).expect_problem(401, "unauthenticated");
    authorize_with(&app, Some(&key), Some("[2001:db8:1:2:ffff::9]:443")).expect_problem(429, "too_many_failed_checks");
    authorize_with(&app, Some(&key), Some("[2001:db8:1:3::1]:443")).expect(200);
}
