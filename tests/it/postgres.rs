//! The PostgreSQL store (issue #12), through the binary: `keyledger migrate` copies a data
//! directory's fjall log into PostgreSQL, `serve --database-url` answers the same checks
//! from it, and its export verifies with `keyledger verify`. Run when
//! `KEYLEDGER_TEST_DATABASE_URL` names a server (`scripts/with-postgres.sh cargo test
//! --test it postgres`), each test in a fresh database.

use std::process::{Command, Output};

use crate::helpers::{BINARY, spawn_app_in_with};
use crate::upgrade::copy_fixture;

/// A connection string for a new, empty database on the test server, or `None` when
/// `KEYLEDGER_TEST_DATABASE_URL` is not set.
pub(crate) fn fresh_database() -> Option<String> {
    let Ok(url) = std::env::var("KEYLEDGER_TEST_DATABASE_URL") else {
        eprintln!("KEYLEDGER_TEST_DATABASE_URL is not set: the PostgreSQL test did not run");
        return None;
    };
    let config: postgres::Config = url.parse().expect("KEYLEDGER_TEST_DATABASE_URL parses");
    let mut client = config.connect(postgres::NoTls).expect("the test database server answers");
    let name = format!("keyledger_it_{}", uuid::Uuid::new_v4().simple());
    client.batch_execute(&format!("CREATE DATABASE {name}")).expect("a test database is created");
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        other => panic!("KEYLEDGER_TEST_DATABASE_URL names no TCP host: {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    Some(format!("host={host} port={port} user={user} dbname={name}"))
}

fn keyledger(args: &[&str]) -> Output {
    Command::new(BINARY).args(args).output().expect("keyledger runs")
}

#[track_caller]
fn succeeds(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{}\n{stdout}{}", output.status, String::from_utf8_lossy(&output.stderr));
    stdout
}

#[test]
fn a_data_directory_migrated_to_postgres_serves_the_same_checks_and_exports_a_bundle_that_verifies() {
    const ADMIN_KEY: &str = "kl_DbPtVSlvVJrxsmRYCSrrqboVExh7VC1xGKYc";
    const APP_KEY: &str = "kl_1QfHjtC69THjVNHPNHHB1raaFQDV0R0mVdvz";
    let Some(database) = fresh_database() else { return };
    let dir = copy_fixture("85c86d6-data");
    let data_dir = dir.path().to_str().expect("a UTF-8 path");

    let migrated = succeeds(&keyledger(&["migrate", "--data-dir", data_dir, "--database-url", &database]));
    assert!(migrated.starts_with("migrated 24 records and 1 checkpoints"), "{migrated}");
    // A database that holds a log is never a migration's target.
    let again = keyledger(&["migrate", "--data-dir", data_dir, "--database-url", &database]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a log"), "{again:?}");
    // The fjall log is no longer what is served: a server on the database must not read it.
    std::fs::remove_dir_all(dir.path().join("log")).expect("remove the fjall log");

    let mut app = spawn_app_in_with(dir.path(), &["--database-url", &database]);
    app.admin_key = ADMIN_KEY.to_owned();
    let verification = app.get("/v1/audit/verify").json();
    assert_eq!(verification["valid"], true, "{verification}");
    assert_eq!(verification["size"], 24, "{verification}");
    assert_eq!(app.check_reason(APP_KEY, "api.attendees.read", Some("summit-nyc")), "granted");
    assert_eq!(app.check_reason(APP_KEY, "api.attendees.read", Some("gala-paris")), "event_not_accessible");
    assert_eq!(app.check_reason(APP_KEY, "api.invoices.read", Some("summit-nyc")), "function_not_granted");
    // It writes to the database, and restarts from it.
    app.post("/v1/roles", &serde_json::json!({ "description": "Written to PostgreSQL" })).expect(201);
    let mut app = app.restart_with(&["--database-url", &database]);
    assert_eq!(app.check_reason(APP_KEY, "api.attendees.read", Some("summit-nyc")), "granted");
    let descriptions: Vec<_> = app.list_all("/v1/roles").iter().map(|role| role["description"].clone()).collect();
    assert!(descriptions.contains(&"Written to PostgreSQL".into()), "{descriptions:?}");
    app.stop();

    // Offline, from the database: the log verifies, and so does an exported bundle.
    let verified = succeeds(&keyledger(&["verify-log", "--data-dir", data_dir, "--database-url", &database]));
    assert!(verified.starts_with("valid: "), "{verified}");
    let bundle = dir.path().join("bundle.jsonl");
    let bundle = bundle.to_str().expect("a UTF-8 path");
    succeeds(&keyledger(&["export", "--data-dir", data_dir, "--database-url", &database, "--out", bundle]));
    let public_key = succeeds(&keyledger(&["signing-key", "--data-dir", data_dir]));
    let verdict = succeeds(&keyledger(&["verify", bundle, "--public-key", public_key.trim()]));
    assert!(verdict.starts_with("valid: "), "{verdict}");
}

#[test]
fn serve_refuses_an_unmigrated_database_without_migrate_and_survives_a_crash_with_it() {
    let Some(database) = fresh_database() else { return };
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().to_str().expect("a UTF-8 path");
    let refused = keyledger(&["serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0", "--database-url", &database]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("schema is version 0") && stderr.contains("--migrate"), "{stderr}");

    // With --migrate it initialises the database, and prints the key once.
    let app = spawn_app_in_with(dir.path(), &["--database-url", &database, "--migrate"]);
    assert!(app.admin_key.starts_with("kl_"));
    assert!(app.verified_audit_size() >= 1);
    app.get("/v1/users").expect(200);

    // An acknowledged write survives a crash, and the killed process's serving lock goes
    // with its connections, so the restart is not refused.
    let role = app.create_role("Acknowledged before the crash");
    let mut app = app.crash_and_restart_with(&["--database-url", &database]);
    app.get(&format!("/v1/roles/{role}")).expect(200);
    let verification = app.get("/v1/audit/verify").json();
    assert_eq!(verification["valid"], true, "{verification}");
    app.stop();
}
