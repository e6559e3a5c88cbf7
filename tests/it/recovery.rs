//! Recovery and the command line: every acknowledged change survives a crash (also one
//! in the middle of concurrent writes), a data directory serves one process at a time,
//! and `init` and `verify-log` work on a directory as the operator would use them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{BINARY, TestApp, spawn_app};

/// How many threads write concurrently while the server is killed.
const WRITERS: usize = 8;
/// How many acknowledged writes to wait for before killing the server.
const ACKNOWLEDGED_BEFORE_KILL: usize = 150;

/// The `Keyledger-Position` of an acknowledged write.
fn position_of(reply: &crate::helpers::Reply) -> u64 {
    reply.header("keyledger-position").expect("an acknowledged write has a position").parse().expect("a number")
}

/// Waits for a child to exit, killing it if it has not exited after a generous while (so
/// that a server that wrongly keeps running fails the test instead of hanging it).
fn wait_for_exit(mut child: Child) -> Output {
    for _ in 0..300 {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("output");
    panic!(
        "the process kept running; stdout: {} stderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run_cli(args: &[&str], data_dir: &Path) -> Output {
    let child = Command::new(BINARY)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start keyledger");
    wait_for_exit(child)
}

/// A server started by hand on an existing data directory, for the `init` scenario,
/// which the shared harness does not cover.
struct HandStartedServer {
    child: Child,
    address: String,
    printed: Vec<String>,
}

impl HandStartedServer {
    fn start(data_dir: &Path) -> Self {
        let mut child = Command::new(BINARY)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--workers", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start keyledger");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut printed = Vec::new();
        let address = loop {
            let Some(Ok(line)) = lines.next() else {
                let status = child.wait().expect("wait");
                panic!("keyledger exited before listening: {status}; it printed {printed:?}");
            };
            printed.push(line.clone());
            if let Some(address) = line.strip_prefix("listening on ") {
                break address.to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self { child, address, printed }
    }

    fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        let mut response = agent
            .get(format!("{}{path}", self.address))
            .header("authorization", format!("Bearer {key}"))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().expect("body");
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Drop for HandStartedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn every_acknowledged_change_survives_a_crash_and_the_server_accepts_writes_again() {
    let app = spawn_app();
    let (api_role, api_user, api_key) = app.api_user();
    let mut roles = vec![api_role];
    let mut users = vec![api_user.clone()];
    let mut keys = vec![api_key.clone()];
    for index in 0..15 {
        let role = app.create_role(&format!("Support desk {index}"));
        app.activate(&role, &["security.users.read"]);
        let user = app.create_user(&format!("Agent {index}"));
        app.assign(&user, &role);
        keys.push(app.generate_key(&user, &json!({})));
        roles.push(role);
        users.push(user);
    }
    // A rotation with grace and a revocation, whose outcomes must survive too.
    let rotated = app.generate_key(&api_user, &json!({ "grace_seconds": 3600 }));
    keys.push(rotated);
    app.delete(&format!("/v1/users/{}/key", users[1])).expect(200);

    let before_roles: Vec<Value> = roles.iter().map(|r| app.get(&format!("/v1/roles/{r}")).json()).collect();
    let before_users: Vec<Value> = users.iter().map(|u| app.get(&format!("/v1/users/{u}")).json()).collect();
    let questions =
        [("api.attendees.read", Some("summit-nyc")), ("security.users.read", None), ("api.events.read", None)];
    let ask = |app: &TestApp| -> Vec<Value> {
        keys.iter().flat_map(|key| questions.iter().map(|(function, event)| app.check(key, function, *event))).collect()
    };
    let before_checks = ask(&app);
    let before_size = app.verified_audit_size();
    let before_lists = (app.list_all("/v1/users"), app.list_all("/v1/roles"), app.list_all("/v1/event-groups"));

    let app = app.crash_and_restart();

    let after_lists = (app.list_all("/v1/users"), app.list_all("/v1/roles"), app.list_all("/v1/event-groups"));
    assert_eq!(after_lists, before_lists);

    let after_roles: Vec<Value> = roles.iter().map(|r| app.get(&format!("/v1/roles/{r}")).json()).collect();
    let after_users: Vec<Value> = users.iter().map(|u| app.get(&format!("/v1/users/{u}")).json()).collect();
    assert_eq!(after_roles, before_roles);
    assert_eq!(after_users, before_users);
    assert_eq!(ask(&app), before_checks);
    assert_eq!(app.verified_audit_size(), before_size);

    let reply = app.post("/v1/roles", &json!({ "description": "After the crash" }));
    reply.expect(201);
    assert_eq!(position_of(&reply), before_size + 1);
    assert_eq!(app.verified_audit_size(), before_size + 1);
}

#[test]
fn the_bootstrap_survives_a_crash_right_after_the_admin_key_is_printed() {
    let app = spawn_app();
    let app = app.crash_and_restart();
    let size = app.verified_audit_size();
    assert!(size > 0);
    assert_eq!(app.check_reason(&app.admin_key, "security.users.manage", None), "granted");
    app.create_user("First user");
    assert_eq!(app.verified_audit_size(), size + 1);
}

/// A write the server acknowledged while it was being killed.
#[derive(Debug)]
enum Acknowledged {
    Role { id: String, description: String, position: u64 },
    User { id: String, name: String, position: u64 },
}

#[test]
fn every_write_acknowledged_before_a_crash_amid_concurrent_writers_is_recovered() {
    let mut app = spawn_app();
    let address = app.address.clone();
    let admin_key = app.admin_key.clone();
    let acknowledged = Mutex::new(Vec::<Acknowledged>::new());
    let count = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);

    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let (address, admin_key, acknowledged, count, killed) =
                (&address, &admin_key, &acknowledged, &count, &killed);
            scope.spawn(move || {
                let agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(30)))
                    .build()
                    .new_agent();
                let mut index = 0;
                while !killed.load(Ordering::SeqCst) {
                    index += 1;
                    let (path, body) = if index % 2 == 0 {
                        ("/v1/roles", json!({ "description": format!("Role {writer}-{index}") }))
                    } else {
                        ("/v1/users", json!({ "name": format!("User {writer}-{index}") }))
                    };
                    let sent = agent
                        .post(format!("{address}{path}"))
                        .header("authorization", format!("Bearer {admin_key}"))
                        .send_json(&body);
                    // A request cut off by the kill is not acknowledged, and may or may
                    // not have been applied.
                    let Ok(mut response) = sent else { continue };
                    let status = response.status().as_u16();
                    let position =
                        response.headers().get("keyledger-position").and_then(|v| v.to_str().ok()?.parse().ok());
                    let Ok(text) = response.body_mut().read_to_string() else { continue };
                    let (true, Some(position)) = ((200..300).contains(&status), position) else { continue };
                    let Ok(created) = serde_json::from_str::<Value>(&text) else { continue };
                    let id = created["id"].as_str().expect("id").to_owned();
                    let record = if index % 2 == 0 {
                        Acknowledged::Role {
                            id,
                            description: body["description"].as_str().expect("text").to_owned(),
                            position,
                        }
                    } else {
                        Acknowledged::User { id, name: body["name"].as_str().expect("text").to_owned(), position }
                    };
                    acknowledged.lock().expect("lock").push(record);
                    count.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        while count.load(Ordering::SeqCst) < ACKNOWLEDGED_BEFORE_KILL {
            std::thread::sleep(Duration::from_millis(2));
        }
        app.kill();
        killed.store(true, Ordering::SeqCst);
    });

    let app = app.crash_and_restart();
    let acknowledged = acknowledged.into_inner().expect("lock");
    assert!(acknowledged.len() >= ACKNOWLEDGED_BEFORE_KILL);
    let size = app.verified_audit_size();
    let mut positions = std::collections::HashSet::new();
    for write in &acknowledged {
        match write {
            Acknowledged::Role { id, description, position } => {
                let reply = app.get(&format!("/v1/roles/{id}"));
                reply.expect(200);
                assert_eq!(reply.json()["description"], description.as_str());
                assert!(*position <= size, "acknowledged at {position}, but the log ends at {size}");
                assert!(positions.insert(*position));
            }
            Acknowledged::User { id, name, position } => {
                let reply = app.get(&format!("/v1/users/{id}"));
                reply.expect(200);
                assert_eq!(reply.json()["name"], name.as_str());
                assert!(*position <= size, "acknowledged at {position}, but the log ends at {size}");
                assert!(positions.insert(*position));
            }
        }
    }
    app.post("/v1/roles", &json!({ "description": "After the crash" })).expect(201);
    assert_eq!(app.verified_audit_size(), size + 1);
}

#[test]
fn a_second_server_on_the_same_data_directory_exits_with_an_error_naming_the_directory_in_use() {
    let app = spawn_app();
    let second = Command::new(BINARY)
        .arg("serve")
        .arg("--data-dir")
        .arg(app.data_dir())
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start keyledger");
    let output = wait_for_exit(second);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the second server must fail; stderr: {stderr}");
    assert!(stderr.contains("in use"), "stderr: {stderr}");
    assert!(stderr.contains(&app.data_dir().display().to_string()), "stderr: {stderr}");
    // The offline commands refuse the live directory the same way.
    for command in ["init", "verify-log"] {
        let output = run_cli(&[command], app.data_dir());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command} on a live directory must fail; stderr: {stderr}");
        assert!(stderr.contains("in use"), "{command}: {stderr}");
    }
    // The first server is unharmed.
    assert_eq!(app.get("/v1/audit/verify").json()["valid"], true);
}

#[test]
fn init_prints_the_admin_key_last_and_serve_then_accepts_it_without_printing_a_key() {
    let parent = tempfile::tempdir().expect("temporary directory");
    let data_dir = parent.path().join("data");

    let output = run_cli(&["init"], &data_dir);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "stdout: {stdout} stderr: {}", String::from_utf8_lossy(&output.stderr));
    let last_line = stdout.lines().last().expect("init prints something");
    let key = last_line.trim();
    assert_eq!(key, last_line, "the key is alone on its line");
    assert!(key.starts_with("kl_") && !key.contains(' '), "the last line is the key: {stdout:?}");

    let mut server = HandStartedServer::start(&data_dir);
    assert!(
        !server.printed.iter().any(|line| line.starts_with("admin key:")),
        "an initialised directory prints no key: {:?}",
        server.printed
    );
    let (status, verification) = server.get("/v1/audit/verify", key);
    assert_eq!(status, 200, "{verification}");
    assert_eq!(verification["valid"], true);
    let (status, users) = server.get("/v1/users", key);
    assert_eq!(status, 200, "{users}");
    assert_eq!(users["items"].as_array().map(Vec::len), Some(1), "only the Administrator: {users}");
    server.stop();
}

#[test]
fn init_on_an_initialised_directory_fails_saying_it_is_already_initialised() {
    let parent = tempfile::tempdir().expect("temporary directory");
    let data_dir = parent.path().join("data");
    assert!(run_cli(&["init"], &data_dir).status.success());
    let head_before = run_cli(&["verify-log"], &data_dir);

    let again = run_cli(&["init"], &data_dir);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(stderr.contains("already initialised"), "stderr: {stderr}");
    assert!(!String::from_utf8_lossy(&again.stdout).contains("kl_"), "no new key is printed");
    // Nothing was appended.
    assert_eq!(run_cli(&["verify-log"], &data_dir).stdout, head_before.stdout);

    // A directory a server bootstrapped is initialised too.
    let mut app = spawn_app();
    app.stop();
    let again = run_cli(&["init"], app.data_dir());
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already initialised"));
}

#[test]
fn verify_log_on_a_stopped_servers_directory_prints_valid_and_exits_zero() {
    let mut app = spawn_app();
    app.api_user();
    app.stop();

    let output = run_cli(&["verify-log"], app.data_dir());
    // The log as the server sees it after a restart (the stop appended the key usage it
    // had counted, so the size is read afterwards).
    let app = app.restart();
    let size = app.verified_audit_size();
    let head_hash = app.get("/v1/audit/verify").json()["head_hash"].as_str().expect("head_hash").to_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "stdout: {stdout} stderr: {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("valid"), "{stdout}");
    assert!(stdout.contains(&format!("{size} records")), "{stdout}");
    assert!(stdout.contains(&head_hash), "{stdout}");
}

#[test]
fn verify_log_after_a_crash_prints_valid_and_exits_zero() {
    let mut app = spawn_app();
    app.api_user();
    let size = app.verified_audit_size();
    app.kill();

    let output = run_cli(&["verify-log"], app.data_dir());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "stdout: {stdout} stderr: {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(&format!("valid: {size} records")), "{stdout}");
}

#[test]
fn verify_log_on_a_missing_directory_fails_and_creates_nothing() {
    let parent = tempfile::tempdir().expect("temporary directory");
    let missing = parent.path().join("mistyped");

    let output = run_cli(&["verify-log"], &missing);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!missing.exists(), "verify-log created {}", missing.display());
    assert!(!output.status.success(), "verify-log on a missing directory succeeded; stdout: {stdout} stderr: {stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "the error names the directory: {stderr}");
}

/// Issue #9: a first start on a port already in use initialised the directory, then
/// failed to listen, so the Administrator's key was never shown and every later start
/// printed only `listening on`.
#[test]
fn a_first_start_on_a_taken_port_initialises_nothing_and_the_next_start_hands_over_a_working_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let address = taken.local_addr().expect("its address").to_string();
    let parent = tempfile::tempdir().expect("temporary directory");
    let data_dir = parent.path().join("data");

    let refused = Command::new(BINARY)
        .arg("serve")
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--listen", &address])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start keyledger");
    let output = wait_for_exit(refused);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "serve on a taken port must fail; stdout: {stdout} stderr: {stderr}");
    assert!(stderr.contains(&format!("cannot listen on {address}")), "it names the address: {stderr}");
    assert!(stderr.contains("nothing was initialised"), "it says nothing was initialised: {stderr}");
    assert!(!stdout.contains("admin key"), "no key is shown for a start that failed: {stdout}");
    drop(taken);

    let mut server = HandStartedServer::start(&data_dir);
    let key = server
        .printed
        .iter()
        .find_map(|line| line.strip_prefix("admin key: "))
        .unwrap_or_else(|| panic!("the next start bootstraps and prints the key: {:?}", server.printed))
        .to_owned();
    let (status, users) = server.get("/v1/users", &key);
    assert_eq!(status, 200, "the printed key administers: {users}");
    assert_eq!(users["items"].as_array().map(Vec::len), Some(1), "one Administrator, bootstrapped once: {users}");
    server.stop();
}
