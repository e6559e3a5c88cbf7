//! Several nodes on one PostgreSQL log (issue #12), through the binary: a write made on
//! one node is seen on another that is given its position token, and a revocation
//! acknowledged on one node is refused by every other at once. Run when
//! `KEYLEDGER_TEST_DATABASE_URL` names a server (`scripts/with-postgres.sh cargo test
//! --test it cluster`), each test in a fresh database.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_in_with};
use crate::postgres::fresh_database;

/// How many times each property is tried, as the issue asks.
const ROUNDS: usize = 1000;

/// The nodes of one cluster: the first bootstraps the database, the others join it with
/// the same signing key, each over a data directory of its own.
struct Cluster {
    nodes: Vec<TestApp>,
    _directories: Vec<tempfile::TempDir>,
}

impl Cluster {
    fn start(database: &str, size: usize) -> Cluster {
        let directories: Vec<_> = (0..size).map(|_| tempfile::tempdir().expect("temporary directory")).collect();
        let signing_key = directories[0].path().join("signing-key");
        let signing_key = signing_key.to_str().expect("a UTF-8 path");
        let mut nodes: Vec<TestApp> = Vec::new();
        for (index, directory) in directories.iter().enumerate() {
            let node_id = format!("node-{index}");
            let node = match nodes.first() {
                // The first node bootstraps the database and makes the signing key.
                None => {
                    let node = spawn_app_in_with(
                        directory.path(),
                        &["--database-url", database, "--migrate", "--node-id", &node_id],
                    );
                    assert!(node.admin_key.starts_with("kl_"), "the first node bootstraps the database");
                    node
                }
                Some(first) => {
                    let args = ["--database-url", database, "--signing-key", signing_key, "--node-id", &node_id];
                    let mut node = spawn_app_in_with(directory.path(), &args);
                    assert!(node.admin_key.is_empty(), "a joining node must not bootstrap again");
                    node.admin_key = first.admin_key.clone();
                    node
                }
            };
            nodes.push(node);
        }
        Cluster { nodes, _directories: directories }
    }
}

/// The position a mutation acknowledged.
#[track_caller]
fn position(reply: &crate::helpers::Reply) -> u64 {
    reply.header("keyledger-position").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no position: {reply:?}"))
}

/// `checkKey` on `node`, asking it to answer from at least `min_position`, in one of the
/// three ways a client may: the header, the body, or (for `authorizeRequest`) the query.
fn check_at(node: &TestApp, key: &str, min_position: u64, way: usize) -> Value {
    let position = min_position.to_string();
    match way % 3 {
        0 => {
            let body = serde_json::to_vec(&json!({ "key": key, "function": "api.events.read" })).expect("json");
            let headers = [("content-type", "application/json"), ("keyledger-min-position", position.as_str())];
            let reply = node.raw("POST", "/v1/check", &headers, Some(&body));
            reply.expect(200);
            reply.json()
        }
        1 => {
            let body = json!({ "key": key, "function": "api.events.read", "min_position": min_position });
            let reply = node.call("POST", "/v1/check", None, Some(&body));
            reply.expect(200);
            reply.json()
        }
        _ => {
            let path = format!("/v1/authorize?function=api.events.read&min_position={min_position}");
            let reply = node.call("GET", &path, Some(key), None);
            // authorizeRequest answers a decision by its status: 200 allowed, 401/403 refused.
            json!({ "allowed": reply.status == 200, "status": reply.status, "body": reply.body })
        }
    }
}

#[test]
fn a_write_on_node_a_is_seen_on_node_b_with_its_position_token_every_time() {
    let Some(database) = fresh_database() else { return };
    let cluster = Cluster::start(&database, 2);
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let (user, _) = a.user_with_functions("Read-your-writes app", &["api.events.read"]);

    // Each round makes a key on A that B has never seen: without the token B could answer
    // from before the write and refuse it as unknown; with it, B must grant it.
    for round in 0..ROUNDS {
        let reply = a.post(&format!("/v1/users/{user}/key"), &json!({}));
        reply.expect(201);
        let key = reply.json()["key"].as_str().expect("key").to_owned();
        let answer = check_at(b, &key, position(&reply), round);
        assert_eq!(answer["allowed"], true, "round {round}: node B answered from before the write: {answer}");
    }

    // An admin read on B with the token sees what A made.
    let reply = a.post("/v1/roles", &json!({ "description": "Made on node A" }));
    reply.expect(201);
    let role = reply.json()["id"].as_str().expect("id").to_owned();
    let token = position(&reply).to_string();
    let admin = format!("Bearer {}", b.admin_key);
    let read = b.raw(
        "GET",
        &format!("/v1/roles/{role}"),
        &[("authorization", &admin), ("keyledger-min-position", &token)],
        None,
    );
    read.expect(200);
}

#[test]
fn a_revocation_acknowledged_on_node_a_is_refused_on_nodes_b_and_c_at_once_every_time() {
    let Some(database) = fresh_database() else { return };
    let cluster = Cluster::start(&database, 3);
    let (a, others) = (&cluster.nodes[0], &cluster.nodes[1..]);
    let (user, _) = a.user_with_functions("Revoked app", &["api.events.read"]);

    for round in 0..ROUNDS {
        let reply = a.post(&format!("/v1/users/{user}/key"), &json!({}));
        reply.expect(201);
        let key = reply.json()["key"].as_str().expect("key").to_owned();
        let generated = position(&reply);
        // Before: every node grants the key (so a refusal after is the revocation's doing).
        for (index, node) in others.iter().enumerate() {
            let answer = check_at(node, &key, generated, 0);
            assert_eq!(answer["allowed"], true, "round {round}: node {} refused a new key: {answer}", index + 1);
        }

        let revoked = a.delete(&format!("/v1/users/{user}/key"));
        revoked.expect(200);
        assert_eq!(revoked.header("keyledger-nodes-pending"), None, "round {round}: every node is live: {revoked:?}");
        // After: no token, no wait; every other node refuses the key at once.
        for (index, node) in others.iter().enumerate() {
            let answer = node.check(&key, "api.events.read", None);
            assert_eq!(answer["allowed"], false, "round {round}: node {} allowed a revoked key: {answer}", index + 1);
            assert_eq!(answer["reason"], "revoked_key", "round {round}: node {}: {answer}", index + 1);
        }
    }
}

#[test]
fn access_report_and_lookup_key_read_a_log_kept_in_postgres() {
    let Some(database) = fresh_database() else { return };
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().to_str().expect("a UTF-8 path");
    let run = |args: &[&str], stdin: &str| {
        let mut child = std::process::Command::new(crate::helpers::BINARY)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("keyledger runs");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), stdin.as_bytes()).expect("stdin");
        let output = child.wait_with_output().expect("keyledger ends");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{args:?}: {}\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let initialised = run(&["init", "--data-dir", data_dir, "--database-url", &database, "--migrate"], "");
    let admin_key = initialised.lines().last().expect("the key's line").trim().to_owned();

    let report: Value = serde_json::from_str(&run(
        &["access-report", "--data-dir", data_dir, "--database-url", &database, "--format", "json"],
        "",
    ))
    .expect("the report is JSON");
    let rows = report["rows"].as_array().unwrap_or_else(|| panic!("rows: {report}"));
    assert_eq!(rows.len(), 1, "the Administrator alone: {report}");

    let lookup: Value =
        serde_json::from_str(&run(&["lookup-key", "--data-dir", data_dir, "--database-url", &database], &admin_key))
            .expect("the lookup is JSON");
    assert_eq!(lookup["key"]["key_id"], rows[0]["key_id"], "{lookup}\n{report}");
}
