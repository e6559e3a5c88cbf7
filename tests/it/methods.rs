//! Methods (issue #13, item 3): a known path asked with a method it does not serve is a
//! 405 problem with `Allow`, `OPTIONS` on a known path is 204 with `Allow`, `HEAD` is
//! answered wherever `GET` is, and an unknown path stays 404.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::{Reply, TestApp, spawn_app};

/// Sends `method` to `path` as the Administrator, with no body.
fn ask(app: &TestApp, method: &str, path: &str) -> Reply {
    let authorization = format!("Bearer {}", app.admin_key);
    app.raw(method, path, &[("authorization", &authorization)], None)
}

/// The methods of an `Allow` header, as a set.
fn allow_of(reply: &Reply) -> BTreeSet<String> {
    reply.header("allow").unwrap_or_default().split(',').map(|method| method.trim().to_owned()).collect()
}

fn set(methods: &[&str]) -> BTreeSet<String> {
    methods.iter().map(|method| (*method).to_owned()).collect()
}

/// Asserts a 405 problem whose `Allow` lists exactly `allowed`.
#[track_caller]
fn expect_405(reply: &Reply, allowed: &[&str], what: &str) {
    assert_eq!(reply.status, 405, "{what}: {} {}", reply.status, reply.body);
    reply.expect_problem(405, "method_not_allowed");
    let problem = reply.json();
    assert_eq!(problem["type"], "urn:keyledger:problem:method_not_allowed", "{what}");
    assert_eq!(problem["title"], "Method not allowed", "{what}");
    assert_eq!(allow_of(reply), set(allowed), "{what}: Allow was {:?}", reply.header("allow"));
}

#[test]
fn a_known_path_asked_with_a_method_it_does_not_serve_is_405_with_allow() {
    let app = spawn_app();
    let role = app.create_role("Target role");
    let user = app.create_user("Target user");
    let before = app.audit_size();
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("GET", "/v1/check".to_owned(), &["POST", "OPTIONS"]),
        ("PUT", "/v1/check".to_owned(), &["POST", "OPTIONS"]),
        ("POST", format!("/v1/roles/{role}"), &["GET", "HEAD", "OPTIONS"]),
        ("DELETE", format!("/v1/roles/{role}"), &["GET", "HEAD", "OPTIONS"]),
        // The path is known whatever the id: a role that does not exist still has no POST.
        ("POST", "/v1/roles/role_0000000000000000".to_owned(), &["GET", "HEAD", "OPTIONS"]),
        ("DELETE", "/v1/roles".to_owned(), &["GET", "HEAD", "POST", "OPTIONS"]),
        ("PATCH", format!("/v1/users/{user}"), &["GET", "HEAD", "OPTIONS"]),
        ("GET", format!("/v1/users/{user}/roles/{role}"), &["PUT", "DELETE", "OPTIONS"]),
        ("GET", format!("/v1/users/{user}/key"), &["POST", "DELETE", "OPTIONS"]),
        ("POST", "/v1/authorize".to_owned(), &["GET", "HEAD", "OPTIONS"]),
        ("TRACE", "/health".to_owned(), &["GET", "HEAD", "OPTIONS"]),
        ("POST", "/openapi.json".to_owned(), &["GET", "HEAD", "OPTIONS"]),
    ];
    for (method, path, allowed) in &cases {
        let reply = ask(&app, method, path);
        expect_405(&reply, allowed, &format!("{method} {path}"));
        let detail = reply.json()["detail"].as_str().unwrap_or_default().to_owned();
        assert!(detail.contains(method) && detail.contains(path.as_str()), "{method} {path}: {detail}");
    }
    // Without a key too: a 405 says nothing about any resource.
    expect_405(&app.raw("GET", "/v1/check", &[], None), &["POST", "OPTIONS"], "GET /v1/check without a key");
    assert_eq!(app.audit_size(), before, "a 405 changes nothing");
}

/// A value for a path parameter: an id of the right shape for its name.
fn sample(parameter: &str) -> &'static str {
    match parameter {
        "role_id" => "role_0000000000000000",
        "user_id" => "usr_0000000000000000",
        "group_id" => "grp_0000000000000000",
        _ => "summit-nyc",
    }
}

/// The path with every `{parameter}` replaced by a sample value.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment.strip_prefix('{').and_then(|rest| rest.strip_suffix('}')) {
            Some(parameter) => sample(parameter),
            None => segment,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_path_of_the_spec_refuses_every_method_it_does_not_declare_with_405() {
    let app = spawn_app();
    let spec = app.raw("GET", "/openapi.json", &[], None).json();
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.len() > 20, "the spec lists the API's paths");
    let before = app.audit_size();
    for (template, item) in paths {
        let declared: Vec<String> = item
            .as_object()
            .expect("path item")
            .keys()
            .filter(|key| ["get", "put", "post", "delete", "patch"].contains(&key.as_str()))
            .map(|method| method.to_uppercase())
            .collect();
        let mut allowed: Vec<&str> = declared.iter().map(String::as_str).collect();
        if allowed.contains(&"GET") {
            allowed.push("HEAD");
        }
        allowed.push("OPTIONS");
        let path = concrete(template);
        for method in ["GET", "PUT", "POST", "DELETE", "PATCH", "TRACE"] {
            if declared.iter().any(|declared| declared == method) {
                continue;
            }
            expect_405(&ask(&app, method, &path), &allowed, &format!("{method} {path} ({template})"));
        }
        let options = ask(&app, "OPTIONS", &path);
        assert_eq!(options.status, 204, "OPTIONS {path}: {}", options.body);
        assert_eq!(allow_of(&options), set(&allowed), "OPTIONS {path}");
    }
    assert_eq!(app.audit_size(), before, "no method probe changed anything");
}

#[test]
fn options_is_204_with_allow_and_no_body_and_needs_no_key() {
    let app = spawn_app();
    for (path, allowed) in [
        ("/v1/roles", &["GET", "HEAD", "POST", "OPTIONS"][..]),
        ("/v1/check", &["POST", "OPTIONS"][..]),
        ("/v1/users/usr_0000000000000000/roles/role_0000000000000000", &["PUT", "DELETE", "OPTIONS"][..]),
        ("/health", &["GET", "HEAD", "OPTIONS"][..]),
    ] {
        let reply = app.raw("OPTIONS", path, &[], None);
        assert_eq!(reply.status, 204, "OPTIONS {path}: {}", reply.body);
        assert_eq!(allow_of(&reply), set(allowed), "OPTIONS {path}");
        assert!(reply.body.is_empty(), "OPTIONS {path}: {}", reply.body);
    }
    let unknown = app.raw("OPTIONS", "/v1/nothing", &[], None);
    unknown.expect_problem(404, "not_found");
}

#[test]
fn head_is_answered_as_get_without_the_body() {
    let app = spawn_app();
    let role = app.create_role("Target role");
    for path in ["/health", "/v1/roles", &format!("/v1/roles/{role}"), "/openapi.json"] {
        let get = ask(&app, "GET", path);
        let head = ask(&app, "HEAD", path);
        assert_eq!(head.status, get.status, "HEAD {path}");
        assert_eq!(head.status, 200, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} sent a body: {}", head.body);
        assert_eq!(head.header("content-type"), get.header("content-type"), "HEAD {path}");
        assert_eq!(head.header("etag"), get.header("etag"), "HEAD {path}");
    }
    // HEAD goes through the admin guard as GET does.
    let anonymous = app.raw("HEAD", "/v1/roles", &[], None);
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.body.is_empty());
    // HEAD on a path with no GET is a 405 like any other method.
    let head = ask(&app, "HEAD", "/v1/check");
    assert_eq!(head.status, 405);
    assert_eq!(allow_of(&head), set(&["POST", "OPTIONS"]));
    let get = ask(&app, "GET", "/v1/check");
    assert_eq!(get.status, 405, "HEAD did not leave the method GET behind");
}

#[test]
fn an_unknown_path_stays_404_whatever_the_method() {
    let app = spawn_app();
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] {
        for path in ["/", "/v1", "/v1/nothing", "/v1/roles/", "/v1/check/extra", "/v2/roles", "/docsx"] {
            let reply = ask(&app, method, path);
            reply.expect_problem(404, "not_found");
            assert_eq!(reply.header("allow"), None, "{method} {path}");
            let detail: Value = reply.json()["detail"].clone();
            assert!(detail.as_str().is_some_and(|detail| detail.contains("/openapi.json")), "{detail}");
        }
    }
}
