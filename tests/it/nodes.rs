//! Several nodes on one PostgreSQL log (issue #12), through the binary: each node tails
//! the log, answers reads at a position token, acknowledges a removal of access only once
//! every live node applied it, and fails closed when it loses the database. Run when
//! `KEYLEDGER_TEST_DATABASE_URL` names a server (`scripts/with-postgres.sh cargo test
//! --test it nodes::`), each test in a fresh database.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Reply, TestApp, spawn_app_in_with, spawn_app_with};
use crate::postgres::fresh_database;

/// Starts `count` nodes on one fresh database, the first one initialising it, all with
/// the first one's signing key. `None` when no test server is configured.
fn nodes(count: usize, extra_args: &[&str]) -> Option<(String, Vec<TestApp>)> {
    let database = fresh_database()?;
    let mut args = vec!["--database-url", database.as_str(), "--migrate", "--node-id", "node-a"];
    args.extend_from_slice(extra_args);
    let first = spawn_app_with(&args);
    let mut started = vec![first];
    for index in 1..count {
        let id = format!("node-{}", char::from(b'a' + u8::try_from(index).expect("few nodes")));
        let node = join(&database, &started[0], &id, extra_args);
        started.push(node);
    }
    // Every node has written its heartbeat once every node runs.
    for node in &started {
        wait_until(Duration::from_secs(10), || live_nodes(node) == count);
    }
    Some((database, started))
}

/// Starts one more node on `database`, with the first node's signing key and admin key.
fn join(database: &str, first: &TestApp, id: &str, extra_args: &[&str]) -> TestApp {
    let key_file = first.data_dir().join("signing-key");
    let key_file = key_file.to_str().expect("utf-8 path");
    let dir = tempfile::tempdir().expect("temporary directory").keep();
    let mut args = vec!["--database-url", database, "--signing-key", key_file, "--node-id", id];
    args.extend_from_slice(extra_args);
    let mut node = spawn_app_in_with(&dir, &args);
    node.admin_key = first.admin_key.clone();
    node
}

fn live_nodes(node: &TestApp) -> usize {
    let health = node.raw("GET", "/health/live", &[], None).json();
    health["node"]["live_nodes"].as_array().map_or(0, Vec::len)
}

#[track_caller]
fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn position(reply: &Reply) -> String {
    reply.header("keyledger-position").expect("Keyledger-Position").to_owned()
}

#[test]
fn a_write_on_one_node_is_read_on_another_with_its_position_token_every_time() {
    let Some((_database, nodes)) = nodes(2, &[]) else { return };
    let (a, b) = (&nodes[0], &nodes[1]);
    for round in 0..100 {
        let created = a.post("/v1/roles", &json!({ "description": format!("Role {round}") }));
        created.expect(201);
        let role = created.json()["id"].as_str().expect("id").to_owned();
        let token = position(&created);
        let authorization = format!("Bearer {}", b.admin_key);
        let read = b.raw(
            "GET",
            &format!("/v1/roles/{role}"),
            &[("authorization", &authorization), ("keyledger-min-position", &token)],
            None,
        );
        read.expect(200);
    }
    // A key made on A checks on B with the token in the body, the header, or the query.
    let (_, key) = a.user_with_functions("Reader", &["api.events.read"]);
    let token = a.get("/health/live").json()["log_size"].as_u64().expect("log size");
    let body = json!({ "key": key, "function": "api.events.read", "min_position": token });
    let checked = b.call("POST", "/v1/check", None, Some(&body));
    assert_eq!(checked.expect(200).json()["allowed"], true, "{}", checked.body);
    let bearer = format!("Bearer {key}");
    let authorized = b.raw(
        "GET",
        &format!("/v1/authorize?function=api.events.read&min_position={token}"),
        &[("authorization", &bearer)],
        None,
    );
    authorized.expect(200);

    // A position no node has reached: 503 after the wait, with Retry-After; malformed: 400.
    let far = (token + 1_000_000).to_string();
    let authorization = format!("Bearer {}", b.admin_key);
    let started = Instant::now();
    let waited =
        b.raw("GET", "/v1/roles", &[("authorization", &authorization), ("keyledger-min-position", &far)], None);
    waited.expect_problem(503, "position_not_reached");
    assert_eq!(waited.header("retry-after"), Some("1"));
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited --max-position-wait-ms");
    b.raw("GET", "/v1/roles", &[("authorization", &authorization), ("keyledger-min-position", "soon")], None)
        .expect(400);

    // Health and metrics report the node, its applied position and its lag.
    let health = b.raw("GET", "/health/ready", &[], None);
    health.expect(200);
    let node = &health.json()["node"];
    assert_eq!(node["node_id"], "node-b");
    assert_eq!(node["live_nodes"].as_array().map(Vec::len), Some(2), "{node}");
    assert!(node["applied_position"].as_u64() >= Some(token), "{node}");
    let metrics = b.raw("GET", "/metrics", &[], None).body;
    for family in
        ["keyledger_tail_lag_records ", "keyledger_tail_applied_position ", "keyledger_node_heartbeat_age_seconds "]
    {
        assert!(metrics.lines().any(|line| line.starts_with(family)), "{family} in\n{metrics}");
    }
}

#[test]
fn on_a_single_node_a_position_token_is_reached_once_acknowledged() {
    // No database: the fjall node answers a reached position at once, and has no node
    // section in its health.
    let app = spawn_app_with(&["--max-position-wait-ms", "0"]);
    let created = app.post("/v1/roles", &json!({ "description": "Readers" }));
    created.expect(201);
    let token = position(&created);
    let authorization = format!("Bearer {}", app.admin_key);
    let read = |position: &str| {
        app.raw("GET", "/v1/roles", &[("authorization", &authorization), ("keyledger-min-position", position)], None)
    };
    read(&token).expect(200);
    read("0").expect(200);
    read("-1").expect_problem(400, "invalid_header");
    let beyond = (token.parse::<u64>().expect("a position") + 1).to_string();
    read(&beyond).expect_problem(503, "position_not_reached");
    let body = json!({ "key": app.admin_key, "function": "security.roles.read", "min_position": token.parse::<u64>().expect("a position") });
    assert_eq!(app.call("POST", "/v1/check", None, Some(&body)).expect(200).json()["allowed"], true);
    assert!(app.raw("GET", "/health/live", &[], None).json().get("node").is_none());
}

#[test]
fn a_revocation_acknowledged_on_one_node_is_refused_on_every_other_at_once() {
    let Some((_database, nodes)) = nodes(3, &[]) else { return };
    let (a, others) = (&nodes[0], &nodes[1..]);
    let (user, _) = a.user_with_functions("Billing app", &["api.events.read"]);
    for _ in 0..30 {
        let key = a.generate_key(&user, &json!({}));
        // Without a token: the revocation returns only once every live node applied it,
        // and so the key generated before it as well.
        let revoked = a.delete(&format!("/v1/users/{user}/key"));
        revoked.expect(200);
        assert_eq!(revoked.header("keyledger-nodes-pending"), None);
        for node in others {
            assert_eq!(node.check_reason(&key, "api.events.read", None), "revoked_key");
        }
    }
}

#[test]
fn a_node_that_stops_applying_is_named_pending_once_the_node_timeout_runs_out() {
    let Some((_database, mut nodes)) = nodes(2, &["--node-timeout-ms", "1500"]) else { return };
    let (user, key) = nodes[0].user_with_functions("Billing app", &["api.events.read"]);
    let b_pid = nodes[1].pid().to_string();
    // B still heartbeats as live for a moment, but applies nothing while stopped.
    assert!(std::process::Command::new("kill").args(["-STOP", &b_pid]).status().expect("kill").success());
    let started = Instant::now();
    let revoked = nodes[0].delete(&format!("/v1/users/{user}/key"));
    let _ = std::process::Command::new("kill").args(["-CONT", &b_pid]).status();
    revoked.expect(200);
    let waited = started.elapsed();
    assert_eq!(revoked.header("keyledger-nodes-pending"), Some("node-b"), "{waited:?}");
    assert!(waited >= Duration::from_millis(1400), "{waited:?}");
    // Once running again, B fails closed (stale) until it has caught up, then refuses the key.
    let body = json!({ "key": key, "function": "api.events.read" });
    let mut answers = Vec::new();
    wait_until(Duration::from_secs(10), || {
        let reply = nodes[1].call("POST", "/v1/check", None, Some(&body));
        let answer = (
            reply.status,
            if reply.status == 200 { reply.json()["reason"].clone() } else { reply.json()["code"].clone() },
        );
        let done = answer == (200, json!("revoked_key"));
        answers.push(answer);
        done
    });
    assert!(answers.iter().all(|answer| answer.1 != json!("granted")), "{answers:?}");
    // A node that is gone stops counting once its heartbeat is older than the timeout.
    nodes[1].kill();
    std::thread::sleep(Duration::from_millis(1700));
    nodes[0].generate_key(&user, &json!({}));
    let revoked = nodes[0].delete(&format!("/v1/users/{user}/key"));
    revoked.expect(200);
    assert_eq!(revoked.header("keyledger-nodes-pending"), None);
}

#[test]
fn a_node_cut_off_from_the_database_refuses_checks_unless_told_to_serve_stale() {
    let Some((database, nodes)) = nodes(1, &["--node-timeout-ms", "600"]) else { return };
    let a = &nodes[0];
    // B serves stale checks on purpose.
    let b = join(&database, a, "node-b", &["--node-timeout-ms", "600", "--stale-checks", "serve-stale"]);
    let (_, key) = a.user_with_functions("Billing app", &["api.events.read"]);
    wait_until(Duration::from_secs(10), || b.check_reason(&key, "api.events.read", None) == "granted");
    assert_eq!(a.check_reason(&key, "api.events.read", None), "granted");

    let url = std::env::var("KEYLEDGER_TEST_DATABASE_URL").expect("set");
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("the test server answers");
    let name = database.split("dbname=").nth(1).expect("dbname").to_owned();
    let mut cut = |allow: bool| {
        admin.batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}")).expect("alter");
        if !allow {
            admin
                .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", &[&name])
                .expect("terminate");
        }
    };
    cut(false);
    wait_until(Duration::from_secs(10), || {
        a.call("POST", "/v1/check", None, Some(&json!({ "key": key, "function": "api.events.read" }))).status == 503
    });
    let refused = a.call("POST", "/v1/check", None, Some(&json!({ "key": key, "function": "api.events.read" })));
    refused.expect_problem(503, "node_stale");
    let bearer = format!("Bearer {key}");
    a.raw("GET", "/v1/authorize?function=api.events.read", &[("authorization", &bearer)], None)
        .expect_problem(503, "node_stale");
    a.raw("GET", "/health/ready", &[], None).expect(503);
    // B was told to serve what it has, stale as it is.
    wait_until(Duration::from_secs(10), || b.raw("GET", "/health/live", &[], None).json()["node"]["stale"] == true);
    assert_eq!(b.check_reason(&key, "api.events.read", None), "granted");

    cut(true);
    wait_until(Duration::from_secs(10), || a.raw("GET", "/health/ready", &[], None).status == 200);
    assert_eq!(a.check_reason(&key, "api.events.read", None), "granted");
}

#[test]
fn one_node_signs_checkpoints_and_another_takes_over_when_it_stops() {
    let Some((_database, mut nodes)) = nodes(2, &["--node-timeout-ms", "400"]) else { return };
    let signer = |node: &TestApp| node.raw("GET", "/health/live", &[], None).json()["node"]["signer"] == true;
    wait_until(Duration::from_secs(10), || signer(&nodes[0]) || signer(&nodes[1]));
    assert!(!(signer(&nodes[0]) && signer(&nodes[1])), "one signer at a time");
    let which = usize::from(signer(&nodes[1]));
    nodes[which].kill();
    let other = &nodes[1 - which];
    wait_until(Duration::from_secs(10), || signer(other));
    other.create_role("Signed by the other node");
    // The new signer's checkpoints verify with the one key every node shares.
    other.get("/v1/audit/checkpoint").expect(200);
    assert!(other.verified_audit_size() >= 1);
}
