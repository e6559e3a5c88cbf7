//! Upgrades lose nothing: a data directory written by an earlier build on main opens,
//! verifies and answers the same. `tests/data/d4b4472-data` was written at d4b4472, before
//! issue #9 (its snapshot is `KLSNAP02`, refused now, so the whole log is replayed);
//! `tests/data/34af2b0-data` at 34af2b0, before issue #14 counted usage per function, and
//! `tests/data/85c86d6-data` at 85c86d6, before issue #11 (one `KeyUsageRecorded` per key,
//! a `KLSNAP05` snapshot). Each fixture's `.md` says how it was made and holds its keys.

use std::path::Path;

use crate::helpers::{TestApp, spawn_app_in};

const ADMIN_KEY: &str = "kl_gv8dLwa0mHfbTQVuybw6g4yTgHhxMX01vXVz";
const APP_KEY: &str = "kl_HCyI0oQouO9bbF39S2NFthuikEyS7h1geqWV";
const APP_USER: &str = "usr_73d6cc286fd5a5b2";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create directory");
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

/// A copy of the fixture `tests/data/{name}` in a temporary directory.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name), dir.path());
    // git keeps no file modes but the executable bit; the service wants its key private.
    let mut permissions = std::fs::metadata(dir.path().join("signing-key")).expect("signing key").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o600);
    std::fs::set_permissions(dir.path().join("signing-key"), permissions).expect("chmod signing key");
    dir
}

/// Serves a copy of the fixture `tests/data/{name}`, administered with `admin_key`.
fn serve_fixture(name: &str, admin_key: &str) -> (tempfile::TempDir, TestApp) {
    let dir = copy_fixture(name);
    let mut app = spawn_app_in(dir.path());
    app.admin_key = admin_key.to_owned();
    (dir, app)
}

/// The checks every fixture's app key was set up for: granted for its role's functions at
/// its event, refused for another event and for a function its role lacks.
fn answers_the_fixture_apps_checks_as_before(app: &TestApp, key: &str) {
    assert_eq!(app.check_reason(key, "api.attendees.read", Some("summit-nyc")), "granted");
    assert_eq!(app.check_reason(key, "api.events.read", None), "granted");
    assert_eq!(app.check_reason(key, "api.attendees.read", Some("gala-paris")), "event_not_accessible");
    assert_eq!(app.check_reason(key, "api.invoices.read", Some("summit-nyc")), "function_not_granted");
}

/// The user's key is still active, with the last use its old usage records gave it.
fn keeps_the_keys_last_use(app: &TestApp, user_id: &str) {
    let user = app.get(&format!("/v1/users/{user_id}"));
    user.expect(200);
    assert_eq!(user.json()["key"]["state"], "active", "{}", user.body);
    assert!(user.json()["key"]["last_used_at"].is_string(), "{}", user.body);
}

#[test]
fn a_data_directory_written_before_issue_9_opens_verifies_and_answers_the_same() {
    let (_dir, app) = serve_fixture("d4b4472-data", ADMIN_KEY);

    let verification = app.get("/v1/audit/verify").json();
    assert_eq!(verification["valid"], true, "{verification}");
    assert_eq!(verification["size"], 24, "{verification}");

    // The app's checks answer as they did when the directory was written.
    answers_the_fixture_apps_checks_as_before(&app, APP_KEY);
    // The one answer issue #9 changed on purpose: an event-scoped function needs an event.
    assert_eq!(app.check_reason(APP_KEY, "api.attendees.read", None), "event_required");

    // The administrator still administers, and the user is as it was left.
    let user = app.get(&format!("/v1/users/{APP_USER}"));
    user.expect(200);
    assert_eq!(user.json()["key"]["state"], "active", "{}", user.body);
    app.post("/v1/roles", &serde_json::json!({ "description": "After the upgrade" })).expect(201);

    // And it restarts from what it wrote itself.
    let app = app.restart();
    assert_eq!(app.check_reason(APP_KEY, "api.attendees.read", Some("summit-nyc")), "granted");
}

#[test]
fn a_data_directory_written_before_issue_11_opens_verifies_and_answers_the_same() {
    const ADMIN_KEY: &str = "kl_DbPtVSlvVJrxsmRYCSrrqboVExh7VC1xGKYc";
    const APP_KEY: &str = "kl_1QfHjtC69THjVNHPNHHB1raaFQDV0R0mVdvz";
    const APP_USER: &str = "usr_20357f8bea5df66f";
    let (_dir, app) = serve_fixture("85c86d6-data", ADMIN_KEY);

    let verification = app.get("/v1/audit/verify").json();
    assert_eq!(verification["valid"], true, "{verification}");
    assert_eq!(verification["size"], 24, "{verification}");

    answers_the_fixture_apps_checks_as_before(&app, APP_KEY);

    // The old per-key usage record still gives the key its last use.
    keeps_the_keys_last_use(&app, APP_USER);
    app.post("/v1/roles", &serde_json::json!({ "description": "After the upgrade" })).expect(201);

    // It restarts from the snapshot it wrote itself, in today's layout.
    let app = app.restart();
    assert_eq!(app.check_reason(APP_KEY, "api.attendees.read", Some("summit-nyc")), "granted");
}

#[test]
fn a_data_directory_written_before_issue_14s_usage_per_function_opens_verifies_and_answers_the_same() {
    const ADMIN_KEY: &str = "kl_q01jqvv6ZNYOzDbZZZoTeGYxXGYQb91kndOc";
    const APP_KEY: &str = "kl_phIKY8NS65mdv5UOFxmMVaEZHQVUs24Vats7";
    const APP_USER: &str = "usr_45dd8e690acb801c";
    let (_dir, app) = serve_fixture("34af2b0-data", ADMIN_KEY);

    let verification = app.get("/v1/audit/verify").json();
    assert_eq!(verification["valid"], true, "{verification}");

    answers_the_fixture_apps_checks_as_before(&app, APP_KEY);

    // Version 1 usage records still give the key its last use, and the unused access
    // report says it cannot know which functions they covered.
    keeps_the_keys_last_use(&app, APP_USER);
    let report = app.get("/v1/audit/access-report").json();
    assert_eq!(report["unused"]["exact"], false, "{report}");
    let usage = app.get("/v1/audit/events?type=KeyUsageIntervalRecorded").json();
    assert!(!usage["items"].as_array().expect("items").is_empty(), "{usage}");
    app.post("/v1/roles", &serde_json::json!({ "description": "After the upgrade" })).expect(201);

    let app = app.restart();
    assert_eq!(app.check_reason(APP_KEY, "api.attendees.read", Some("summit-nyc")), "granted");
}
