//! Projection snapshots: start-up from a snapshot gives the same answers as a full replay,
//! and a snapshot that cannot be trusted is ignored.

use serde_json::Value;

use crate::helpers::{TestApp, spawn_app_with, without_last_use};

fn snapshot_files(app: &TestApp) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(app.data_dir().join("snapshots"))
        .map(|entries| entries.filter_map(Result::ok).map(|entry| entry.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Everything a restart must preserve, as the API shows it. Keys' last use is left out:
/// it moves with every use and is recorded at a graceful stop.
fn observed(app: &TestApp, key: &str) -> Vec<Value> {
    let observed = vec![
        app.get("/v1/users?limit=1000").json(),
        app.get("/v1/roles?limit=1000").json(),
        app.get("/v1/event-groups?limit=1000").json(),
        app.check(key, "api.attendees.read", Some("summit-nyc")),
        app.check(key, "api.attendees.read", Some("gala-paris")),
        app.check(key, "api.invoices.write", None),
    ];
    observed.into_iter().map(without_last_use).collect()
}

#[test]
fn a_server_restarted_from_a_snapshot_answers_as_before_and_replays_only_the_tail() {
    let app = spawn_app_with(&["--snapshot-every", "5"]);
    let (_, _, key) = app.api_user();
    // Snapshots are written by a thread of their own; give it a moment.
    for _ in 0..100 {
        if !snapshot_files(&app).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!snapshot_files(&app).is_empty(), "a snapshot is written every 5 records");
    for n in 0..3 {
        app.create_user(&format!("after the snapshot {n}"));
    }
    let before = observed(&app, &key);

    // A crash leaves an older snapshot and a tail to replay.
    let app = app.crash_and_restart();
    assert_eq!(observed(&app, &key), before);
    // A graceful stop saves a snapshot of everything, including the key usage it records.
    let app = app.restart_with(&["--snapshot-every", "5"]);
    let size = app.get("/v1/audit/verify").json()["size"].clone();
    assert_eq!(observed(&app, &key), before);
    let newest = snapshot_files(&app).pop().expect("a snapshot");
    assert!(newest.to_string_lossy().contains(&format!("{:020}", size.as_u64().unwrap())), "{newest:?}");
    assert_eq!(app.get("/v1/audit/verify").json()["valid"], true);
}

#[test]
fn a_corrupt_snapshot_is_ignored_and_the_log_is_replayed() {
    let app = spawn_app_with(&["--snapshot-every", "1"]);
    let (_, _, key) = app.api_user();
    let before = observed(&app, &key);
    let mut app = app;
    app.stop();
    for file in snapshot_files(&app) {
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x5a;
        std::fs::write(&file, bytes).unwrap();
    }
    let app = app.restart();
    assert_eq!(observed(&app, &key), before);
}

#[test]
fn a_snapshot_from_another_history_is_ignored() {
    // Two ledgers whose logs differ: the snapshot of one must not be used for the other.
    let first = spawn_app_with(&["--snapshot-every", "1"]);
    let (_, _, first_key) = first.api_user();
    let mut second = spawn_app_with(&["--snapshot-every", "1000000"]);
    let (_, _, second_key) = second.api_user();
    let before = observed(&second, &second_key);
    second.stop();
    let target = second.data_dir().join("snapshots");
    let _ = std::fs::remove_dir_all(&target);
    std::fs::create_dir_all(&target).unwrap();
    for file in snapshot_files(&first) {
        std::fs::copy(&file, target.join(file.file_name().unwrap())).unwrap();
    }
    let second = second.restart();
    assert_eq!(observed(&second, &second_key), before);
    assert_eq!(second.check_reason(&first_key, "api.attendees.read", None), "unknown_key");
}

#[test]
fn sigterm_right_after_listening_is_a_graceful_stop_that_saves_a_snapshot() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let mut server = Command::new(crate::helpers::BINARY)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let listening = BufReader::new(stdout).lines().map_while(Result::ok).any(|line| line.starts_with("listening on "));
    assert!(listening);
    Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    let status = server.wait().unwrap();
    assert!(status.success(), "SIGTERM must stop keyledger gracefully, not kill it: {status}");
    assert!(std::fs::read_dir(dir.path().join("snapshots")).unwrap().next().is_some(), "no snapshot at shutdown");
}
