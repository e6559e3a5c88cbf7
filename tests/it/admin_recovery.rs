//! `keyledger recover-admin` (issue #9): on a stopped service, one `AdministratorRecovered`
//! record by the system creates a new full administrator and prints its key once, like
//! `init`; the audit trail, `verify` and the access report show it as a recovery.

use std::path::Path;
use std::process::{Command, Output};

use crate::helpers::{BINARY, spawn_app, spawn_app_in};

fn run(args: &[&str]) -> Output {
    Command::new(BINARY).args(args).output().expect("run keyledger")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn recover(data_dir: &Path, reason: &str) -> Output {
    run(&["recover-admin", "--data-dir", data_dir.to_str().expect("a UTF-8 path"), "--reason", reason])
}

#[test]
fn recover_admin_on_a_stopped_service_prints_a_key_that_administers_and_the_trail_says_recovery() {
    let mut app = spawn_app();
    let data_dir = app.data_dir().to_owned();
    let old_key = app.admin_key.clone();

    // A running service keeps its directory: recovery refuses it, clearly.
    let refused = recover(&data_dir, "while running");
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("in use"), "{}", text(&refused));
    app.stop();

    // --reason is required.
    let missing = run(&["recover-admin", "--data-dir", data_dir.to_str().unwrap()]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--reason"), "{}", text(&missing));
    let empty = recover(&data_dir, "  ");
    assert!(!empty.status.success(), "{}", text(&empty));

    let reason = "the only administrator key was lost (ticket OPS-42)";
    let output = recover(&data_dir, reason);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{}", text(&output));
    let key = stdout.lines().last().expect("it prints something");
    assert!(key.starts_with("kl_") && !key.contains(' '), "the key is alone on the last line: {stdout:?}");

    let mut app = spawn_app_in(&data_dir);
    app.admin_key = key.to_owned();
    // The printed key administers: it lists users and creates a role.
    let users = app.list_all("/v1/users");
    assert_eq!(users.len(), 2, "the Administrator and the recovered one: {users:?}");
    app.create_role("Created by the recovered administrator");
    // The old key still works as before: nothing existing was changed.
    app.call("GET", "/v1/users", Some(&old_key), None).expect(200);

    let recoveries = app.get("/v1/audit/events?type=AdministratorRecovered");
    recoveries.expect(200);
    let items = recoveries.json()["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["actor"], "system");
    assert_eq!(items[0]["data"]["reason"], reason);
    let recovered_user = items[0]["data"]["user_id"].as_str().expect("user_id").to_owned();
    let seq = items[0]["seq"].as_u64().expect("seq");

    // The access report flags the recovered administrator, and nobody else.
    let report = app.get("/v1/audit/access-report");
    report.expect(200);
    let flagged: Vec<String> = report.json()["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|row| row["flags"]["recovered_administrator"] == true)
        .map(|row| row["user_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(flagged, vec![recovered_user.clone()]);

    // `verify`, pinned to the service's key, lists the recovery with its reason.
    let public_key = app.raw("GET", "/v1/audit/signing-key", &[], None).json()["public_key"]
        .as_str()
        .expect("public_key")
        .to_owned();
    let bundle = app.get("/v1/audit/export");
    bundle.expect(200);
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("bundle.jsonl");
    std::fs::write(&file, &bundle.body).expect("write the bundle");
    let verified = run(&["verify", file.to_str().unwrap(), "--public-key", &public_key]);
    let verdict = text(&verified);
    assert!(verified.status.success(), "{verdict}");
    assert!(
        verdict.contains(&format!("administrator recovered (keyledger recover-admin) at record {seq}"))
            && verdict.contains(&recovered_user)
            && verdict.contains(reason),
        "{verdict}"
    );
}

#[test]
fn recover_admin_on_a_directory_that_was_never_initialised_fails_and_creates_nothing() {
    let parent = tempfile::tempdir().expect("temporary directory");
    let missing = parent.path().join("data");
    let output = recover(&missing, "no such ledger");
    assert!(!output.status.success(), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no initialised keyledger data directory"));
    assert!(!missing.exists(), "recover-admin created {}", missing.display());
}
