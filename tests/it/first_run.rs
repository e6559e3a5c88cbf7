//! A first run that cannot go wrong (issue #13, item 6): what a new user meets on the
//! first day, each as the issue found it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::json;

use crate::helpers::{BINARY, spawn_app};

/// Sends a bare `GET path` and returns the answer's head (status line and headers),
/// without following a redirect.
fn head_of(address: &str, path: &str) -> String {
    let host = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer.split("\r\n\r\n").next().unwrap_or_default().to_ascii_lowercase()
}

#[test]
fn docs_without_the_trailing_slash_redirect_to_the_docs() {
    let app = spawn_app();
    let head = head_of(&app.address, "/docs");
    assert!(head.starts_with("http/1.1 308"), "{head}");
    assert!(head.lines().any(|line| line == "location: /docs/"), "{head}");
    // Followed, it is the docs page.
    let followed = app.raw("GET", "/docs", &[], None);
    assert_eq!(followed.status, 200);
    assert!(followed.body.contains("swagger"), "{}", followed.body);
}

/// Runs `keyledger serve` on `data_dir` expecting it to refuse to start; its standard
/// error.
fn refused_start(data_dir: &Path) -> String {
    let output = Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run keyledger");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening on"));
    stderr
}

#[test]
fn a_file_where_a_directory_should_be_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().expect("temporary directory");

    // The log's directory is a file.
    let data = dir.path().join("log-is-a-file");
    std::fs::create_dir(&data).expect("data directory");
    std::fs::write(data.join("log"), b"not a directory").expect("file");
    let stderr = refused_start(&data);
    assert!(stderr.contains(&format!("cannot open the log at {}", data.join("log").display())), "{stderr}");
    assert!(stderr.contains("a file stands where keyledger needs a directory: move the file away"), "{stderr}");
    assert!(!stderr.contains("FjallError") && !stderr.contains("Os {"), "no debug output: {stderr}");

    // The data directory itself is a file.
    let data = dir.path().join("data-is-a-file");
    std::fs::write(&data, b"not a directory").expect("file");
    let stderr = refused_start(&data);
    assert!(stderr.contains(&format!("cannot create the data directory {}", data.display())), "{stderr}");
    assert!(stderr.contains("a file stands where keyledger needs a directory"), "{stderr}");

    // The signing key is a directory.
    let data = dir.path().join("signing-key-is-a-directory");
    std::fs::create_dir_all(data.join("signing-key")).expect("directory");
    let stderr = refused_start(&data);
    assert!(stderr.contains(&data.join("signing-key").display().to_string()), "{stderr}");
    assert!(stderr.contains("a directory stands where keyledger needs a file"), "{stderr}");
}

/// Serves `data_dir` with `rust_log` (none: the default), stops it gracefully once it
/// listens, and returns what it logged.
fn log_of_a_start(data_dir: &Path, rust_log: Option<&str>) -> String {
    let log_file = data_dir.with_extension("log");
    let mut command = Command::new(BINARY);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1", "--data-dir"])
        .arg(data_dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_file).expect("log file"));
    if let Some(filter) = rust_log {
        command.env("RUST_LOG", filter);
    }
    let mut child = command.spawn().expect("start keyledger");
    let stdout = child.stdout.take().expect("stdout");
    let listening = BufReader::new(stdout).lines().map_while(Result::ok).any(|line| line.starts_with("listening on "));
    assert!(listening, "keyledger did not start");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(child.wait().expect("wait").success());
    std::fs::read_to_string(&log_file).expect("log")
}

#[test]
fn a_normal_start_logs_what_an_operator_needs_and_not_the_storage_engines_recovery() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data");
    let initialised = Command::new(BINARY).args(["init", "--data-dir"]).arg(&data).output().expect("init");
    assert!(initialised.status.success());

    let log = log_of_a_start(&data, None);
    let info: Vec<&str> = log.lines().filter(|line| line.contains(" INFO ")).collect();
    assert!(info.iter().any(|line| line.contains("opened the log") && line.contains("records=")), "{log}");
    assert!(
        info.iter().any(|line| line.contains("serving")
            && line.contains("address=127.0.0.1:")
            && line.contains("data_dir=")
            && line.contains("startup_ms=")),
        "{log}"
    );
    assert!(!log.contains("Recovering"), "fjall's recovery lines are not INFO by default: {log}");
    assert!(!log.contains("starting service"), "actix's own start lines are not INFO by default: {log}");

    // An explicit RUST_LOG still wins.
    let log = log_of_a_start(&data, Some("info"));
    assert!(log.contains("Recovering"), "RUST_LOG=info shows fjall's lines: {log}");
}

#[test]
fn a_key_pasted_with_a_trailing_newline_is_the_key() {
    let app = spawn_app();
    let (_, user, key) = app.api_user();
    for pasted in [format!("{key}\n"), format!("{key}\r\n"), format!(" {key} ")] {
        let body = json!({ "key": pasted, "function": "api.events.read" });
        let answer = app.call("POST", "/v1/check", None, Some(&body)).json();
        assert_eq!(answer["reason"], "granted", "{pasted:?}: {answer}");
        assert_eq!(answer["user_id"], user.as_str());
    }
    // A Basic password made with `echo KEY | base64` carries the newline too.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(":{key}\n"));
    let reply =
        app.raw("GET", "/v1/authorize?function=api.events.read", &[("authorization", &format!("Basic {basic}"))], None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Whitespace inside the key is still malformed.
    let (head, tail) = key.split_at(8);
    let body = json!({ "key": format!("{head} {tail}"), "function": "api.events.read" });
    assert_eq!(app.call("POST", "/v1/check", None, Some(&body)).json()["reason"], "malformed_key");
}
