//! The web console's sessions, black-box (issue #16): signing in, cookies, CSRF, a key
//! re-judged on every request, the idle timeout, the brute-force limit, and changes made
//! as events with the signed-in admin as actor. The screens themselves are driven in a
//! browser by `scripts/console-test.sh`.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::helpers::{TestApp, spawn_app, spawn_app_logging_to_with, spawn_app_with};

/// One raw HTTP/1.1 answer, every header kept (a console answer sets two cookies).
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(found, _)| found.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn csrf(&self) -> String {
        let start = self.body.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
        self.body[start..].split('"').next().expect("the token").to_owned()
    }
}

/// Sends one request without following redirects.
fn send(app: &TestApp, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.lines();
    let status = lines.next().and_then(|line| line.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Answer { status, headers, body: body.to_owned() }
}

fn form(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish()
}

/// A browser's worth of console session: its cookie.
struct Console<'a> {
    app: &'a TestApp,
    cookie: String,
}

impl<'a> Console<'a> {
    /// Signs in with `key`; panics unless the console opened a session.
    fn sign_in(app: &'a TestApp, key: &str) -> Console<'a> {
        let answer = try_sign_in(app, key);
        assert_eq!(answer.status, 303, "sign-in: {}", answer.body);
        let cookie = answer
            .set_cookies()
            .into_iter()
            .find(|cookie| cookie.starts_with("kl_console="))
            .expect("a session cookie")
            .split(';')
            .next()
            .expect("name=value")
            .to_owned();
        Console { app, cookie }
    }

    fn get(&self, path: &str) -> Answer {
        send(self.app, "GET", path, &[("Cookie", &self.cookie)], "")
    }

    fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        send(self.app, "POST", path, &[("Cookie", &self.cookie)], &form(fields))
    }

    /// The session's CSRF token, as a page's forms carry it.
    fn csrf(&self) -> String {
        self.get("/console/users").csrf()
    }
}

/// The sign-in form's answer to `key`, with the form's own token and cookie.
fn try_sign_in(app: &TestApp, key: &str) -> Answer {
    try_sign_in_with(app, key, &[])
}

fn try_sign_in_with(app: &TestApp, key: &str, headers: &[(&str, &str)]) -> Answer {
    let page = send(app, "GET", "/console/sign-in", headers, "");
    let cookie = page.set_cookies()[0].split(';').next().expect("name=value").to_owned();
    let mut with_cookie = headers.to_vec();
    with_cookie.push(("Cookie", &cookie));
    send(app, "POST", "/console/sign-in", &with_cookie, &form(&[("csrf", &page.csrf()), ("key", key)]))
}

#[test]
fn signing_in_opens_a_strict_http_only_session_and_pages_carry_a_strict_csp() {
    let app = spawn_app();
    let page = send(&app, "GET", "/console/users", &[], "");
    assert_eq!((page.status, page.header("location")), (303, Some("/console/sign-in")));
    let answer = try_sign_in(&app, &app.admin_key);
    assert_eq!(answer.status, 303);
    let cookies = answer.set_cookies();
    let session = cookies.iter().find(|cookie| cookie.starts_with("kl_console=")).expect("session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict") && session.contains("Path=/console"));
    assert!(!session.contains("Secure"), "plain HTTP from no trusted proxy: {session}");
    assert!(!session.contains(&app.admin_key));
    let console = Console::sign_in(&app, &app.admin_key);
    let roles = console.get("/console/roles");
    assert_eq!(roles.status, 200);
    let csp = roles.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert_eq!(roles.header("cache-control"), Some("no-store"));
    assert!(!roles.body.contains(&app.admin_key), "the key is never on a page");
    let stylesheet = roles.body.split("href=\"").find(|s| s.starts_with("/console/assets/console.css")).expect("css");
    let stylesheet = send(&app, "GET", stylesheet.split('"').next().expect("url"), &[], "");
    assert_eq!(stylesheet.status, 200);
    assert!(stylesheet.header("cache-control").is_some_and(|value| value.contains("max-age=31536000")));
}

#[test]
fn a_console_change_is_an_event_with_the_signed_in_admin_as_actor() {
    let app = spawn_app();
    let admin = app.get("/v1/whoami").json()["user_id"].as_str().expect("user id").to_owned();
    let console = Console::sign_in(&app, &app.admin_key);
    let created = console.post("/console/roles", &[("csrf", &console.csrf()), ("description", "API Access")]);
    assert_eq!(created.status, 303, "{}", created.body);
    let role_id = created.header("location").expect("location").rsplit('/').next().expect("id").to_owned();
    let role = app.get(&format!("/v1/roles/{role_id}"));
    role.expect(200);
    let records = app.list_all("/v1/audit/events?type=RoleCreated");
    let record = records.iter().find(|record| record["subject"] == role_id.as_str()).expect("the record");
    assert_eq!(record["actor"], admin.as_str());
    // A refusal is shown in words next to the field, with the API's status.
    let again = console.post("/console/roles", &[("csrf", &console.csrf()), ("description", "api access")]);
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(again.body.contains("id=\"description-error\""), "{}", again.body);
}

#[test]
fn a_post_without_the_sessions_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app();
    let console = Console::sign_in(&app, &app.admin_key);
    let before = app.audit_size();
    for fields in [vec![("description", "Forged")], vec![("csrf", "wrong"), ("description", "Forged")]] {
        let answer = console.post("/console/roles", &fields);
        assert_eq!(answer.status, 403, "{}", answer.body);
        assert!(answer.header("content-type").is_some_and(|value| value.starts_with("text/html")));
    }
    // Another session's token is no good either.
    let other = Console::sign_in(&app, &app.admin_key);
    let answer = console.post("/console/roles", &[("csrf", &other.csrf()), ("description", "Forged")]);
    assert_eq!(answer.status, 403);
    // Nor is a sign-in form posted without its own cookie.
    let page = send(&app, "GET", "/console/sign-in", &[], "");
    let answer = send(&app, "POST", "/console/sign-in", &[], &form(&[("csrf", &page.csrf()), ("key", &app.admin_key)]));
    assert_eq!(answer.status, 403);
    assert_eq!(app.audit_size(), before, "nothing was appended");
}

#[test]
fn a_session_shrinks_with_its_users_functions_and_ends_when_its_key_is_revoked() {
    let app = spawn_app();
    let (user_id, key) = app.user_with_functions("Helpdesk", &["security.users.read"]);
    let console = Console::sign_in(&app, &key);
    assert_eq!(console.get("/console/users").status, 200);
    let roles = console.get("/console/roles");
    assert_eq!(roles.status, 403, "not offered, and refused anyway");
    let users = console.get("/console/users").body;
    assert!(!users.contains("Create user"), "no change offered");
    assert!(
        users.contains("href=\"/console/users\"") && !users.contains("href=\"/console/roles\""),
        "nav follows functions"
    );
    // A forged POST with the session's valid token is refused by the server, and the
    // refusal is recorded as the API records its 403s.
    let head = app.audit_size();
    let forged = console.post("/console/users", &[("csrf", &console.csrf()), ("name", "Forged")]);
    assert_eq!(forged.status, 403);
    assert!(!app.list_all("/v1/users").iter().any(|user| user["name"] == "Forged"));
    let denied = |records: &[serde_json::Value]| {
        records.iter().any(|record| {
            record["type"] == "AdminAccessDenied"
                && record["actor"] == user_id.as_str()
                && record["data"]["operation"] == "POST /console/users"
                && record["data"]["function"] == "security.users.manage"
        })
    };
    assert!(denied(&app.wait_for_records(head, denied)), "the refusal is in the audit trail");
    // Revoking the key ends the session at the next request.
    app.delete(&format!("/v1/users/{user_id}/key")).expect(200);
    let after = console.get("/console/users");
    assert_eq!((after.status, after.header("location")), (303, Some("/console/sign-in?ended=key-stopped")));
    assert_eq!(console.get("/console/users").header("location"), Some("/console/sign-in?ended=expired"), "gone");
}

#[test]
fn disabling_the_user_ends_its_session() {
    let app = spawn_app();
    let (user_id, key) = app.user_with_functions("Helpdesk", &["security.users.read"]);
    let console = Console::sign_in(&app, &key);
    app.post_empty(&format!("/v1/users/{user_id}/disable")).expect(200);
    assert_eq!(console.get("/console/users").header("location"), Some("/console/sign-in?ended=key-stopped"));
}

#[test]
fn a_key_without_admin_functions_opens_no_session() {
    let app = spawn_app();
    let (_role, _user, key) = app.api_user();
    let answer = try_sign_in(&app, &key);
    assert_eq!(answer.status, 403);
    assert!(answer.body.contains("holds no admin function"), "{}", answer.body);
    assert!(!answer.set_cookies().iter().any(|cookie| cookie.starts_with("kl_console=")));
}

#[test]
fn an_idle_session_ends() {
    let app = spawn_app_with(&["--console-idle-timeout-secs", "1"]);
    let console = Console::sign_in(&app, &app.admin_key);
    assert_eq!(console.get("/console/users").status, 200);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(console.get("/console/users").header("location"), Some("/console/sign-in?ended=expired"));
}

#[test]
fn signing_out_ends_the_session() {
    let app = spawn_app();
    let console = Console::sign_in(&app, &app.admin_key);
    let out = console.post("/console/sign-out", &[("csrf", &console.csrf())]);
    assert_eq!(out.status, 303);
    assert!(out.set_cookies().iter().any(|cookie| cookie.starts_with("kl_console=;") && cookie.contains("Max-Age=0")));
    assert_eq!(console.get("/console/users").status, 303);
}

#[test]
fn failed_sign_ins_count_toward_the_brute_force_limit() {
    let app = spawn_app_with(&["--failed-check-burst", "2", "--failed-checks-per-minute", "1"]);
    for _ in 0..2 {
        assert_eq!(try_sign_in(&app, "kl_000000000000000000000000000000AAAAAA").status, 401);
    }
    let throttled = try_sign_in(&app, &app.admin_key);
    assert_eq!(throttled.status, 429, "{}", throttled.body);
    // The API's checks from the same address are throttled too: one limit.
    let body = serde_json::json!({"key": app.admin_key, "function": "security.users.read"});
    app.call("POST", "/v1/check", None, Some(&body)).expect(429);
}

#[test]
fn cookies_are_secure_behind_a_trusted_proxy_that_says_https() {
    let app = spawn_app_with(&["--trusted-proxy", "127.0.0.1"]);
    let https = try_sign_in_with(&app, &app.admin_key, &[("X-Forwarded-Proto", "https")]);
    assert!(https.set_cookies().iter().all(|cookie| cookie.contains("; Secure")), "{:?}", https.set_cookies());
    let http = try_sign_in_with(&app, &app.admin_key, &[("X-Forwarded-Proto", "http")]);
    assert!(http.set_cookies().iter().all(|cookie| !cookie.contains("Secure")));
    let untrusted = spawn_app();
    let spoofed = try_sign_in_with(&untrusted, &untrusted.admin_key, &[("X-Forwarded-Proto", "https")]);
    assert!(spoofed.set_cookies().iter().all(|cookie| !cookie.contains("Secure")), "only a trusted proxy is believed");
}

#[test]
fn the_key_reaches_no_log() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let log_file = dir.path().join("server.log");
    let mut app = spawn_app_logging_to_with(&log_file, &[]);
    let console = Console::sign_in(&app, &app.admin_key);
    let user = console.post("/console/users", &[("csrf", &console.csrf()), ("name", "App")]);
    let user_page = user.header("location").expect("location").to_owned();
    let generated = console.post(&format!("{user_page}/key"), &[("csrf", &console.csrf()), ("grace", "0")]);
    assert_eq!(generated.status, 201);
    assert_eq!(generated.header("cache-control"), Some("no-store"));
    let start = generated.body.find("kl_").expect("the secret, once");
    let secret = &generated.body[start..start + 39];
    app.stop();
    let log = std::fs::read_to_string(&log_file).expect("the log");
    assert!(log.contains("/console/"), "the log has the console's requests");
    for key in [app.admin_key.as_str(), secret] {
        assert!(!log.contains(key), "a key is in the log");
    }
}

#[test]
fn an_admin_replacing_its_own_key_stays_signed_in_with_the_new_one() {
    let app = spawn_app();
    let admin = app.get("/v1/whoami").json()["user_id"].as_str().expect("user id").to_owned();
    let console = Console::sign_in(&app, &app.admin_key);
    let other = Console::sign_in(&app, &app.admin_key);
    let generated = console.post(&format!("/console/users/{admin}/key"), &[("csrf", &console.csrf()), ("grace", "0")]);
    assert_eq!(generated.status, 201, "{}", generated.body);
    assert_eq!(app.check_reason(&app.admin_key, "security.users.read", None), "unknown_key", "the old key is gone");
    assert_eq!(console.get("/console/users").status, 200, "this session follows the new key");
    assert_eq!(other.get("/console/users").header("location"), Some("/console/sign-in?ended=key-stopped"));
}

#[test]
fn unknown_console_pages_are_html_404s_and_other_methods_405s() {
    let app = spawn_app();
    let console = Console::sign_in(&app, &app.admin_key);
    for path in ["/console/nothing", "/console/users/usr_0123456789abcdef", "/console/roles/not-an-id"] {
        let answer = console.get(path);
        assert_eq!(answer.status, 404, "{path}");
        assert!(answer.header("content-type").is_some_and(|value| value.starts_with("text/html")), "{path}");
    }
    for method in ["PUT", "DELETE", "PATCH"] {
        let answer = send(&app, method, "/console/roles", &[("Cookie", &console.cookie)], "");
        assert_eq!(answer.status, 405, "{method}");
        assert_eq!(answer.header("allow"), Some("GET, HEAD, POST"));
    }
    // A value no parser takes is refused next to its field, never a 500.
    let who = console.get("/console/who-can?function=nope&event=x");
    assert_eq!(who.status, 422);
    assert!(who.body.contains("id=\"function-error\""));
}

#[test]
fn names_are_escaped_on_every_page() {
    let app = spawn_app();
    let role = app.create_role("<script>alert(1)</script> & \"quotes\"");
    let console = Console::sign_in(&app, &app.admin_key);
    for path in ["/console/roles".to_owned(), format!("/console/roles/{role}")] {
        let page = console.get(&path);
        assert_eq!(page.status, 200);
        assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"), "{path}");
        assert!(!page.body.contains("<script>alert"), "{path}");
    }
}
