//! Online backup and restore (issue #15, item 3): a bundle exported while writers append
//! restores into a data directory whose service verifies the same, has the same Merkle
//! root at the bundle's size, and answers every check of a sample the same.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use crate::helpers::{BINARY, TestApp, spawn_app, spawn_app_in};

const WRITERS: usize = 8;

fn restore(bundle: &Path, data_dir: &Path, signing_key: &Path, pin: &[&str]) -> Output {
    Command::new(BINARY)
        .arg("restore")
        .arg("--from")
        .arg(bundle)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--signing-key")
        .arg(signing_key)
        .args(pin)
        .output()
        .expect("run keyledger restore")
}

/// The answers to a sample of checks: every key against a few functions and events.
fn answers(app: &TestApp, keys: &[String]) -> Vec<Value> {
    let mut answers = Vec::new();
    for key in keys {
        for function in ["api.events.read", "api.people.read", "security.audit.read"] {
            for event in [None, Some("summit-nyc"), Some("elsewhere")] {
                let mut answer = app.check(key, function, event);
                // When the answer was computed is not part of it.
                if let Some(members) = answer.as_object_mut() {
                    members.retain(|name, _| !name.contains("_at") && name != "position");
                }
                answers.push(answer);
            }
        }
    }
    answers
}

#[test]
fn a_backup_taken_while_8_writers_append_restores_to_a_service_that_answers_the_same() {
    let app = spawn_app();
    let (_, _, api_key) = app.api_user();
    let (_, reader_key) = app.user_with_functions("Auditor", &["security.audit.read"]);
    let (_, nothing_key) = app.user_with_functions("Nobody", &[]);
    let revoked_user = app.create_user("Revoked");
    let revoked_key = app.generate_key(&revoked_user, &json!({}));
    app.delete(&format!("/v1/users/{revoked_user}/key")).expect(200);
    let keys = vec![api_key, reader_key, nothing_key, revoked_key, "kl_nosuchkeynosuchkeynosuchkeynosuc".to_owned()];
    let public_key = app.get("/v1/audit/signing-key").expect(200).json()["public_key"].as_str().unwrap().to_owned();

    let stop = AtomicBool::new(false);
    let bundle = std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let (app, stop) = (&app, &stop);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    app.post("/v1/roles", &json!({ "description": format!("writer {writer} role {n}") })).expect(201);
                    n += 1;
                }
            });
        }
        // Let the writers get going, then back up while they append.
        while app.audit_size() < 40 {
            std::thread::yield_now();
        }
        let bundle = app.get("/v1/audit/export");
        stop.store(true, Ordering::Relaxed);
        bundle
    });
    bundle.expect(200);
    let expected_answers = answers(&app, &keys);

    let dir = tempfile::tempdir().expect("temporary directory");
    let bundle_file = dir.path().join("backup.jsonl");
    std::fs::write(&bundle_file, &bundle.body).expect("write the bundle");
    let last: Value = serde_json::from_str(bundle.body.lines().last().expect("a last line")).expect("a checkpoint");
    let size = last["size"].as_u64().expect("size");
    assert!(size < app.audit_size(), "the writers appended after the backup");

    let restored_dir = dir.path().join("restored");
    let signing_key = app.data_dir().join("signing-key");
    let output = restore(&bundle_file, &restored_dir, &signing_key, &["--public-key", &public_key]);
    assert!(output.status.success(), "restore failed: {}", String::from_utf8_lossy(&output.stderr));

    let mut restored = spawn_app_in(&restored_dir);
    restored.admin_key = app.admin_key.clone();
    let verdict = restored.get("/v1/audit/verify").expect(200).json();
    assert_eq!(verdict["valid"], true, "{verdict}");
    assert_eq!(verdict["size"].as_u64(), Some(size), "{verdict}");
    // The same Merkle root at the bundle's size: the checkpoint there, byte for byte.
    let at_size = format!("/v1/audit/checkpoint?size={size}");
    assert_eq!(restored.get(&at_size).expect(200).body, app.get(&at_size).expect(200).body);
    assert_eq!(last["root"], restored.get(&at_size).json()["root"]);
    // Every record byte for byte.
    let original: Vec<&str> = bundle.body.lines().collect();
    let again = restored.get("/v1/audit/export").expect(200).body.clone();
    let again: Vec<&str> = again.lines().collect();
    assert_eq!(
        original[..original.len() - 1],
        again[..original.len() - 1],
        "records and checkpoints restored as they were"
    );
    assert_eq!(answers(&restored, &keys), expected_answers, "the restored service answers every check the same");
    restored.stop();

    // Not into a directory that holds something.
    let output = restore(&bundle_file, &restored_dir, &signing_key, &["--public-key", &public_key]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not empty"));
}

#[test]
fn restoring_a_tampered_or_unpinned_backup_is_refused() {
    let app = spawn_app();
    app.user_with_functions("Auditor", &["security.audit.read"]);
    let public_key = app.get("/v1/audit/signing-key").expect(200).json()["public_key"].as_str().unwrap().to_owned();
    let bundle = app.get("/v1/audit/export").expect(200).body.clone();
    let dir = tempfile::tempdir().expect("temporary directory");
    let signing_key = app.data_dir().join("signing-key");

    let unpinned = dir.path().join("unpinned.jsonl");
    std::fs::write(&unpinned, &bundle).expect("write");
    let target = dir.path().join("from-unpinned");
    let output = restore(&unpinned, &target, &signing_key, &["--trust-bundle-key"]);
    assert_eq!(output.status.code(), Some(3), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!target.exists(), "nothing is written for an unpinned backup");

    let tampered = dir.path().join("tampered.jsonl");
    std::fs::write(&tampered, bundle.replacen("Auditor", "Auditer", 1)).expect("write");
    let target = dir.path().join("from-tampered");
    let output = restore(&tampered, &target, &signing_key, &["--public-key", &public_key]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not verify"));
    assert!(!target.exists(), "nothing is written for a tampered backup");

    let other_key = dir.path().join("other-key");
    std::fs::write(&other_key, format!("{}\n", "7".repeat(64))).expect("write");
    let target = dir.path().join("with-another-key");
    let output = restore(&unpinned, &target, &other_key, &["--public-key", &public_key]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not the bundle's signer"));
    assert!(!target.exists());
}
