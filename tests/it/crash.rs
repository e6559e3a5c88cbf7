//! The crash test (issue #5, item 1): 32 concurrent admin writers, SIGKILL at a random
//! moment, restart, and check that nothing acknowledged was lost, that the chain verifies,
//! that the view rebuilt after the crash equals a fresh replay of the whole log, and that
//! writes work again. `KEYLEDGER_CRASH_CYCLES` sets the number of cycles (3 by default,
//! 20 in CI; `scripts/crash-test.sh` runs more).
//!
//! The server saves a snapshot every few records (issue #11), so kills land while
//! snapshots are being written and pruned, and the restart starts from a retained one.
//! Point-in-time answers, which start from the retained snapshots, are compared with the
//! same answers from a server that has none and replays the whole log.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_app_with, without_last_use};

const WRITERS: usize = 32;

/// A snapshot every few records: the writer is nearly always saving one, so most kills
/// land during a snapshot write.
const SERVER_ARGS: &[&str] = &["--snapshot-every", "2"];

/// The permission view at a few past positions, each page listing the users created in
/// the records just before it, where the retained snapshots differ most from the head.
fn past_views(app: &crate::helpers::TestApp, size: u64) -> Vec<serde_json::Value> {
    [size / 3, size / 2, size.saturating_sub(7), size]
        .into_iter()
        .map(|position| {
            let after = position.saturating_sub(300);
            let reply = app.get(&format!("/v1/audit/permissions?position={position}&after={after}&limit=1000"));
            assert_eq!(reply.status, 200, "{}", reply.body);
            without_last_use(reply.json())
        })
        .collect()
}

fn snapshot_files(app: &crate::helpers::TestApp) -> Vec<String> {
    std::fs::read_dir(app.data_dir().join("snapshots"))
        .map(|entries| {
            entries.filter_map(Result::ok).map(|entry| entry.file_name().to_string_lossy().into_owned()).collect()
        })
        .unwrap_or_default()
}

fn cycles() -> usize {
    std::env::var("KEYLEDGER_CRASH_CYCLES").ok().and_then(|n| n.parse().ok()).unwrap_or(3)
}

/// A pseudo-random number from the clock: the kill moment only needs to vary.
fn jitter(below: u64) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    u64::from(nanos) % below
}

#[test]
fn no_acknowledged_write_is_lost_across_repeated_crashes() {
    let mut app = spawn_app_with(SERVER_ARGS);
    let mut acknowledged: Vec<(String, u64)> = Vec::new();
    let mut lost = 0;
    let mut killed_while_saving = 0;
    for cycle in 0..cycles() {
        let written = Mutex::new(Vec::new());
        let killed = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for writer in 0..WRITERS {
                let (app, written, killed) = (&app, &written, &killed);
                scope.spawn(move || {
                    let authorization = format!("Bearer {}", app.admin_key);
                    let headers = [("authorization", authorization.as_str()), ("content-type", "application/json")];
                    for n in 0.. {
                        let body =
                            serde_json::to_vec(&json!({ "name": format!("crash {cycle}/{writer}/{n}") })).unwrap();
                        match app.try_raw("POST", "/v1/users", &headers, Some(&body)) {
                            Ok(reply) if reply.status == 201 => {
                                let id = reply.json()["id"].as_str().unwrap().to_owned();
                                let position = reply.header("keyledger-position").unwrap().parse().unwrap();
                                written.lock().unwrap().push((id, position));
                            }
                            Ok(reply) => panic!("cycle {cycle}: unexpected answer {} {}", reply.status, reply.body),
                            // The server was killed: this write was never acknowledged.
                            Err(_) if killed.load(Ordering::SeqCst) => return,
                            Err(error) => panic!("cycle {cycle}: transport error before the kill: {error}"),
                        }
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(100 + jitter(400)));
            killed.store(true, Ordering::SeqCst);
            std::process::Command::new("kill").args(["-KILL", &app.pid().to_string()]).status().unwrap();
        });
        acknowledged.extend(written.into_inner().unwrap());
        app.kill();
        // A temporary file is a snapshot the kill interrupted: it must not be read.
        killed_while_saving += usize::from(snapshot_files(&app).iter().any(|name| name.ends_with(".tmp")));
        app = app.crash_and_restart_with(SERVER_ARGS);

        // Every acknowledged write is there, within the log the server says it has.
        let size = app.verified_audit_size();
        let after_crash = app.list_all("/v1/users");
        let present: std::collections::HashSet<&str> =
            after_crash.iter().filter_map(|user| user["id"].as_str()).collect();
        lost = acknowledged.iter().filter(|(id, position)| !present.contains(id.as_str()) || *position > size).count();
        let past = past_views(&app, size);
        // The view rebuilt after the crash (snapshot and tail) equals a fresh replay.
        app.stop();
        let _ = std::fs::remove_dir_all(app.data_dir().join("snapshots"));
        app = app.restart_with(SERVER_ARGS);
        // (Keys' last use is left out: the graceful stop records the usage of this cycle.)
        assert_eq!(
            without_last_use(app.list_all("/v1/users").into()),
            without_last_use(after_crash.clone().into()),
            "cycle {cycle}: the view differs from a fresh replay"
        );
        // And so do the past views, now replayed from the first record.
        assert!(snapshot_files(&app).is_empty(), "cycle {cycle}: no snapshot yet, history replays the log");
        assert_eq!(past_views(&app, size), past, "cycle {cycle}: a past view from the snapshots differs");
        // And it takes writes again.
        app.create_user(&format!("after crash {cycle}"));
    }
    eprintln!(
        "crash test: {} cycles, {} acknowledged writes, {lost} lost, {killed_while_saving} kills during a snapshot write",
        cycles(),
        acknowledged.len()
    );
    assert!(!acknowledged.is_empty(), "no write was acknowledged: the test tested nothing");
    assert_eq!(lost, 0, "acknowledged writes were lost");
}
