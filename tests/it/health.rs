//! Liveness and readiness (issue #15, item 5), and readiness told to systemd.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{BINARY, spawn_app};

#[test]
fn liveness_and_readiness_answer_without_a_key() {
    let app = spawn_app();
    let live = app.raw("GET", "/health/live", &[], None);
    live.expect(200);
    assert_eq!(live.json()["status"], "ok");
    let ready = app.raw("GET", "/health/ready", &[], None);
    ready.expect(200);
    assert_eq!(ready.json()["status"], "ready");
    assert_eq!(ready.json()["log_size"], live.json()["log_size"]);
    // The old path stays, as liveness.
    assert_eq!(app.raw("GET", "/health", &[], None).expect(200).json()["status"], "ok");
}

#[test]
fn serve_tells_systemd_it_is_ready_once_it_listens() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let mut child = Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start keyledger");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let listening = lines.by_ref().map_while(Result::ok).find(|line| line.starts_with("listening on "));
    let mut buffer = [0u8; 256];
    let received = socket.recv(&mut buffer);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let stopping = socket.recv(&mut [0u8; 256]).map(|_| ());
    let _ = child.wait();
    assert!(listening.is_some(), "the server never listened");
    let received = received.expect("a notification");
    assert_eq!(&buffer[..received], b"READY=1");
    assert!(stopping.is_ok(), "STOPPING=1 at a graceful stop");
}
