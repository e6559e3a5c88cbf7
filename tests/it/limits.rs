//! Limits (issue #5, item 8): bodies, slow clients, and hostile JSON are bounded and
//! refused without holding anything a writer needs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::spawn_app_with;

#[test]
fn a_body_over_the_configured_limit_is_413_and_appends_nothing() {
    let app = spawn_app_with(&["--max-body-bytes", "1000"]);
    let before = app.audit_size();
    let body = serde_json::to_vec(&json!({ "name": "x".repeat(2000) })).unwrap();
    let authorization = format!("Bearer {}", app.admin_key);
    let headers = [("authorization", authorization.as_str()), ("content-type", "application/json")];
    let reply = app.raw("POST", "/v1/users", &headers, Some(&body));
    reply.expect_problem(413, "payload_too_large");
    assert!(reply.json()["detail"].as_str().unwrap().contains("1000"), "{}", reply.body);
    assert_eq!(app.audit_size(), before);
}

#[test]
fn a_slow_client_is_cut_off_and_holds_up_no_writer() {
    let app = spawn_app_with(&["--request-timeout-ms", "300"]);
    let mut slow = TcpStream::connect(app.address.trim_start_matches("http://")).unwrap();
    // Half a request head, then nothing.
    slow.write_all(b"POST /v1/users HTTP/1.1\r\nHost: keyledger\r\nContent-Type: application/json\r\n").unwrap();

    // Meanwhile other admins write as usual.
    let started = Instant::now();
    app.create_user("not held up");
    assert!(started.elapsed() < Duration::from_secs(5));

    // The slow client is answered 408 (or simply closed) once its time is up.
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[test]
fn issue_9_a_body_that_trickles_in_is_cut_off_by_the_request_timeout() {
    let app = spawn_app_with(&["--request-timeout-ms", "500"]);
    let before = app.audit_size();
    let body = br#"{"name":"trickled in one byte at a time"}"#;
    let mut slow = TcpStream::connect(app.address.trim_start_matches("http://")).unwrap();
    let head = format!(
        "POST /v1/users HTTP/1.1\r\nHost: keyledger\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.admin_key,
        body.len()
    );
    slow.write_all(head.as_bytes()).unwrap();
    // One byte every 300 ms: the whole body would take about 12 s. The upper bound only
    // keeps the test from hanging if the server never cuts the client off.
    let started = Instant::now();
    let mut sent = 0;
    for byte in body {
        if started.elapsed() > Duration::from_secs(60) || slow.write_all(&[*byte]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(300));
        if app_answered(&slow) {
            break;
        }
    }
    assert!(sent < body.len(), "the server read the whole trickled body");
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    if !answer.is_empty() {
        assert!(answer.contains("application/problem+json") && answer.contains("request_timeout"), "{answer}");
    }
    assert_eq!(app.audit_size(), before, "the cut-off request changed nothing");
}

/// Whether the server has answered (or closed) the connection, without waiting.
fn app_answered(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0; 1];
    let answered = match stream.peek(&mut byte) {
        Ok(_) => true,
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).unwrap();
    answered
}

#[test]
fn deeply_nested_json_is_refused_as_malformed() {
    let app = spawn_app_with(&[]);
    let nested = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let authorization = format!("Bearer {}", app.admin_key);
    let headers = [("authorization", authorization.as_str()), ("content-type", "application/json")];
    app.raw("POST", "/v1/roles", &headers, Some(nested.as_bytes())).expect_problem(413, "payload_too_large");
    let nested = format!("{{\"description\":{}{}}}", "[".repeat(1_000), "]".repeat(1_000));
    let reply = app.raw("POST", "/v1/roles", &headers, Some(nested.as_bytes()));
    assert!(reply.status == 400, "{} {}", reply.status, reply.body);
    app.get("/health").expect(200);
}

#[test]
fn issue_9_a_group_nested_deeper_than_32_levels_is_409_group_too_deep() {
    let app = spawn_app_with(&[]);
    let mut parent = app.create_group("Level 1", None);
    for level in 2..=32 {
        parent = app.create_group(&format!("Level {level}"), Some(&parent));
    }
    let before = app.audit_size();
    let reply = app.post("/v1/event-groups", &json!({ "name": "Level 33", "parent_id": parent }));
    reply.expect_problem(409, "group_too_deep");
    assert!(reply.json()["detail"].as_str().unwrap().contains("32"), "{}", reply.body);
    assert_eq!(app.audit_size(), before);
}
