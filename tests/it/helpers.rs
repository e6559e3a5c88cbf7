//! Starting, stopping and talking to a real keyledger process.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The path of the binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_keyledger");

/// A running server over a data directory.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The Administrator's key, printed when the directory was bootstrapped.
    pub admin_key: String,
    /// What the server printed on standard output before `listening on`.
    pub printed: Vec<String>,
    child: Child,
    data: DataDir,
    agent: ureq::Agent,
}

enum DataDir {
    Owned(tempfile::TempDir),
    Borrowed(PathBuf),
}

impl DataDir {
    fn path(&self) -> &Path {
        match self {
            DataDir::Owned(dir) => dir.path(),
            DataDir::Borrowed(path) => path,
        }
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case.
    pub headers: HashMap<String, String>,
    /// The body as text.
    pub body: String,
}

impl Reply {
    /// The body parsed as JSON (panics with the body if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        self
    }

    /// Asserts a problem document with this status and code.
    #[track_caller]
    pub fn expect_problem(&self, status: u16, code: &str) -> &Self {
        self.expect(status);
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "body: {}", self.body);
        let problem = self.json();
        assert_eq!(problem["status"], status, "body: {}", self.body);
        assert_eq!(problem["code"], code, "body: {}", self.body);
        assert!(problem["title"].is_string() && problem["detail"].is_string(), "body: {}", self.body);
        self
    }
}

/// The value with every `last_used_at` member removed: a key's last use moves whenever
/// it is used and is recorded at a graceful stop, so views compared across a restart
/// leave it out.
pub fn without_last_use(mut value: Value) -> Value {
    match &mut value {
        Value::Object(members) => {
            members.remove("last_used_at");
            for member in members.values_mut() {
                *member = without_last_use(member.take());
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                *item = without_last_use(item.take());
            }
        }
        _ => {}
    }
    value
}

/// Starts a server over a fresh temporary data directory.
pub fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    start(DataDir::Owned(dir), &[])
}

/// Starts a server over a fresh temporary data directory with extra `serve` arguments.
pub fn spawn_app_with(extra_args: &[&str]) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    start(DataDir::Owned(dir), extra_args)
}

/// Starts a server over an existing data directory that the caller owns.
pub fn spawn_app_in(data_dir: &Path) -> TestApp {
    start(DataDir::Borrowed(data_dir.to_owned()), &[])
}

/// Starts a server over an existing data directory that the caller owns, with extra
/// `serve` arguments.
pub fn spawn_app_in_with(data_dir: &Path, extra_args: &[&str]) -> TestApp {
    start(DataDir::Borrowed(data_dir.to_owned()), extra_args)
}

/// Starts a server that logs at debug level into `log_file`.
pub fn spawn_app_logging_to(log_file: &Path) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    start_logging(DataDir::Owned(dir), &[], Some(log_file))
}

/// Starts a server that logs at debug level into `log_file`, with extra `serve` arguments.
pub fn spawn_app_logging_to_with(log_file: &Path, extra_args: &[&str]) -> TestApp {
    spawn_app_logging_with(extra_args, log_file)
}

/// Starts a server with extra `serve` arguments that logs at debug level into `log_file`.
pub fn spawn_app_logging_with(extra_args: &[&str], log_file: &Path) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    start_logging(DataDir::Owned(dir), extra_args, Some(log_file))
}

fn start(data: DataDir, extra_args: &[&str]) -> TestApp {
    start_logging(data, extra_args, None)
}

fn start_logging(data: DataDir, extra_args: &[&str], log_file: Option<&Path>) -> TestApp {
    let mut command = Command::new(BINARY);
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(data.path())
        .args(["--listen", "127.0.0.1:0", "--workers", "2"])
        // Many tests present wrong keys on purpose; the brute-force limit has tests of its own.
        .args(if extra_args.contains(&"--failed-check-burst") { &[][..] } else { &["--failed-check-burst", "0"][..] })
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() });
    if let Some(log_file) = log_file {
        command.env("RUST_LOG", "debug").stderr(std::fs::File::create(log_file).expect("log file"));
    }
    let mut child = command.spawn().expect("start keyledger");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut admin_key = String::new();
    let mut printed = Vec::new();
    let address = loop {
        let line = match lines.next() {
            Some(Ok(line)) => line,
            _ => {
                let status = child.wait().expect("wait");
                panic!("keyledger exited before listening: {status}");
            }
        };
        if let Some(key) = line.strip_prefix("admin key: ") {
            admin_key = key.to_owned();
        }
        if let Some(address) = line.strip_prefix("listening on ") {
            break address.to_owned();
        }
        printed.push(line);
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    TestApp { address, admin_key, printed, child, data, agent }
}

impl TestApp {
    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Stops the server with SIGTERM (a graceful shutdown) and waits for it.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the server to exit by itself; its status if it did.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server gracefully and starts a new one on the same data directory.
    /// The admin key stays the one from the first start.
    pub fn restart(mut self) -> TestApp {
        self.stop();
        self.start_again()
    }

    /// Kills the server and starts a new one on the same data directory.
    pub fn crash_and_restart(mut self) -> TestApp {
        self.kill();
        self.start_again()
    }

    /// Kills the server and starts a new one on the same data directory with extra `serve`
    /// arguments.
    pub fn crash_and_restart_with(mut self, extra_args: &[&str]) -> TestApp {
        self.kill();
        self.start_again_with(extra_args)
    }

    /// Stops the server gracefully and starts a new one on the same data directory with
    /// extra `serve` arguments.
    pub fn restart_with(mut self, extra_args: &[&str]) -> TestApp {
        self.stop();
        self.start_again_with(extra_args)
    }

    fn start_again(self) -> TestApp {
        self.start_again_with(&[])
    }

    fn start_again_with(mut self, extra_args: &[&str]) -> TestApp {
        let data = std::mem::replace(&mut self.data, DataDir::Borrowed(PathBuf::new()));
        let admin_key = self.admin_key.clone();
        let mut next = start(data, extra_args);
        assert!(next.admin_key.is_empty(), "a restart must not bootstrap again");
        next.admin_key = admin_key;
        next
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a request with any method, headers and raw body.
    pub fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
        self.try_raw(method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Like [`TestApp::raw`], but a transport failure (the server is gone) is an `Err`.
    pub fn try_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Reply, ureq::Error> {
        let url = format!("{}{}", self.address, path);
        let mut builder = ureq::http::Request::builder().method(method).uri(&url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(body.map(<[u8]>::to_vec).unwrap_or_default()).expect("request");
        let mut response = self.agent.run(request)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_ascii_lowercase(), value.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = response.body_mut().read_to_string()?;
        Ok(Reply { status, headers, body })
    }

    /// Sends a request with a key (if any) and a JSON body (if any).
    pub fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<&Value>) -> Reply {
        let authorization = key.map(|key| format!("Bearer {key}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(authorization) = &authorization {
            headers.push(("authorization", authorization));
        }
        let bytes = body.map(|body| serde_json::to_vec(body).expect("json"));
        if bytes.is_some() {
            headers.push(("content-type", "application/json"));
        }
        self.raw(method, path, &headers, bytes.as_deref())
    }

    /// GET as the Administrator.
    pub fn get(&self, path: &str) -> Reply {
        self.call("GET", path, Some(&self.admin_key), None)
    }

    /// POST JSON as the Administrator.
    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.call("POST", path, Some(&self.admin_key), Some(body))
    }

    /// POST with no body as the Administrator.
    pub fn post_empty(&self, path: &str) -> Reply {
        self.call("POST", path, Some(&self.admin_key), None)
    }

    /// PUT as the Administrator, with an optional JSON body.
    pub fn put(&self, path: &str, body: Option<&Value>) -> Reply {
        self.call("PUT", path, Some(&self.admin_key), body)
    }

    /// DELETE as the Administrator.
    pub fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, Some(&self.admin_key), None)
    }

    /// Every item of a paginated list (`path` without a query), following `next`.
    pub fn list_all(&self, path: &str) -> Vec<Value> {
        self.list_pages(path, 100)
    }

    /// Every item of a paginated list, `limit` a page, following `next`; `path` may carry a
    /// query of its own.
    pub fn list_pages(&self, path: &str, limit: u32) -> Vec<Value> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut after = 0;
        loop {
            let reply = self.get(&format!("{path}{separator}limit={limit}&after={after}"));
            reply.expect(200);
            let page = reply.json();
            items.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next"].as_u64() {
                Some(next) => after = next,
                None => return items,
            }
        }
    }

    /// The audit records after position `after`, in log order.
    pub fn records_after(&self, after: u64) -> Vec<Value> {
        let mut records = Vec::new();
        let mut after = after;
        loop {
            let reply = self.get(&format!("/v1/audit/events?limit=1000&after={after}"));
            reply.expect(200);
            let page = reply.json();
            records.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next"].as_u64() {
                Some(next) => after = next,
                None => return records,
            }
        }
    }

    /// Waits up to ten seconds for the audit records after `after` to satisfy `done`, and
    /// returns them (satisfying it or not, for the caller to assert on): refused admin
    /// requests and key usage are recorded in the background, a moment after the request.
    pub fn wait_for_records(&self, after: u64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let records = self.records_after(after);
            if done(&records) || std::time::Instant::now() > deadline {
                return records;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many records the audit log holds (from `verifyAuditLog`).
    pub fn audit_size(&self) -> u64 {
        let reply = self.get("/v1/audit/verify");
        reply.expect(200);
        reply.json()["size"].as_u64().expect("size")
    }

    /// How many records the audit log holds, after asserting that all of them verify.
    pub fn verified_audit_size(&self) -> u64 {
        let verification = self.get("/v1/audit/verify");
        verification.expect(200);
        let verification = verification.json();
        assert_eq!(verification["valid"], true, "{verification}");
        assert_eq!(verification["verified"], verification["size"], "{verification}");
        verification["size"].as_u64().expect("size")
    }

    /// Checks a key through `checkKey`, returning the JSON answer.
    pub fn check(&self, key: &str, function: &str, event_id: Option<&str>) -> Value {
        let mut body = serde_json::json!({ "key": key, "function": function });
        if let Some(event_id) = event_id {
            body["event_id"] = Value::from(event_id);
        }
        let reply = self.call("POST", "/v1/check", None, Some(&body));
        reply.expect(200);
        reply.json()
    }

    /// The reason `checkKey` gives.
    pub fn check_reason(&self, key: &str, function: &str, event_id: Option<&str>) -> String {
        self.check(key, function, event_id)["reason"].as_str().unwrap_or_default().to_owned()
    }

    /// Creates a role and returns its id.
    pub fn create_role(&self, description: &str) -> String {
        let reply = self.post("/v1/roles", &serde_json::json!({ "description": description }));
        reply.expect(201);
        reply.json()["id"].as_str().expect("id").to_owned()
    }

    /// Activates functions on a role.
    pub fn activate(&self, role_id: &str, functions: &[&str]) {
        self.post(&format!("/v1/roles/{role_id}/functions/activate"), &serde_json::json!({ "functions": functions }))
            .expect(200);
    }

    /// Creates a user and returns its id.
    pub fn create_user(&self, name: &str) -> String {
        let reply = self.post("/v1/users", &serde_json::json!({ "name": name }));
        reply.expect(201);
        reply.json()["id"].as_str().expect("id").to_owned()
    }

    /// Assigns a role to a user.
    pub fn assign(&self, user_id: &str, role_id: &str) {
        self.put(&format!("/v1/users/{user_id}/roles/{role_id}"), None).expect(200);
    }

    /// Creates an event group (optionally nested) and returns its id.
    pub fn create_group(&self, name: &str, parent_id: Option<&str>) -> String {
        let reply = self.post("/v1/event-groups", &serde_json::json!({ "name": name, "parent_id": parent_id }));
        reply.expect(201);
        reply.json()["id"].as_str().expect("id").to_owned()
    }

    /// Adds an event to a group.
    pub fn add_event(&self, group_id: &str, event_id: &str) {
        self.put(&format!("/v1/event-groups/{group_id}/events/{event_id}"), None).expect(200);
    }

    /// Sets a user's event access to a list of groups.
    pub fn grant_groups(&self, user_id: &str, groups: &[&str]) {
        self.put(
            &format!("/v1/users/{user_id}/event-access"),
            Some(&serde_json::json!({ "all_events": false, "groups": groups })),
        )
        .expect(200);
    }

    /// Generates a key for a user and returns the secret.
    pub fn generate_key(&self, user_id: &str, options: &Value) -> String {
        let reply = self.post(&format!("/v1/users/{user_id}/key"), options);
        reply.expect(201);
        reply.json()["key"].as_str().expect("key").to_owned()
    }

    /// A role named after `label` holding `functions`, a user holding only that role, and a
    /// key for the user. Returns (user_id, key).
    pub fn user_with_functions(&self, label: &str, functions: &[&str]) -> (String, String) {
        let role = self.create_role(&format!("Role of {label}"));
        if !functions.is_empty() {
            self.activate(&role, functions);
        }
        let user = self.create_user(label);
        self.assign(&user, &role);
        let key = self.generate_key(&user, &serde_json::json!({}));
        (user, key)
    }

    /// The walkthrough's API user: role "API Access" with the five read functions, a
    /// user holding it, access to group "USA" (inside "Americas") holding event
    /// `summit-nyc`, and a key. Returns (role_id, user_id, key).
    pub fn api_user(&self) -> (String, String, String) {
        let role = self.create_role("API Access");
        self.activate(
            &role,
            &["api.attendees.read", "api.events.read", "api.invoices.read", "api.people.read", "api.sessions.read"],
        );
        let user = self.create_user("Attendance app");
        self.assign(&user, &role);
        let americas = self.create_group("Americas", None);
        let usa = self.create_group("USA", Some(&americas));
        self.add_event(&usa, "summit-nyc");
        self.grant_groups(&user, &[&usa]);
        let key = self.generate_key(&user, &serde_json::json!({}));
        (role, user, key)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
