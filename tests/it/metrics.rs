//! `getMetrics` (issue #13, item 2): the scrape parses as Prometheus text, its counters
//! move with checks and writes, and `--metrics-listen` moves it to an address of its own.

use std::time::Duration;

use prometheus_parse::{LineInfo, Scrape, Value};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// A parsed scrape, with its text kept for the messages.
struct Metrics {
    scrape: Scrape,
    text: String,
}

impl Metrics {
    /// Parses a scrape, insisting that every line is a comment, a type, help or a sample
    /// (the parser skips what it cannot read, and would hide a malformed line).
    fn parse(text: &str) -> Metrics {
        for line in text.lines() {
            assert_ne!(LineInfo::parse(line), LineInfo::Ignored, "not exposition format: {line:?}");
            if let LineInfo::Sample { value, .. } = LineInfo::parse(line) {
                assert!(value.parse::<f64>().is_ok(), "not a number: {line:?}");
            }
        }
        let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("parses");
        Metrics { scrape, text: text.to_owned() }
    }

    /// The value of the sample of `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let sample = self
            .scrape
            .samples
            .iter()
            .find(|sample| sample.metric == name && labels.iter().all(|(k, v)| sample.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{}", self.text));
        match &sample.value {
            Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => *value,
            other => panic!("{name} is not a single value: {other:?}"),
        }
    }

    /// The cumulative count of a histogram's `+Inf` bucket, checked against its `_count`.
    fn histogram_count(&self, name: &str) -> f64 {
        let sample = self.scrape.samples.iter().find(|sample| sample.metric == name).expect(name);
        let Value::Histogram(buckets) = &sample.value else { panic!("{name} is not a histogram") };
        assert!(buckets.windows(2).all(|pair| pair[0].less_than < pair[1].less_than && pair[0].count <= pair[1].count));
        let all = buckets.last().expect("buckets");
        assert!(all.less_than.is_infinite(), "{name} has no +Inf bucket");
        assert_eq!(all.count, self.value(&format!("{name}_count"), &[]), "{name}: +Inf and _count differ");
        all.count
    }

    /// The declared type of a family.
    fn kind(&self, family: &str) -> Option<&str> {
        self.text.lines().find_map(|line| line.strip_prefix(&format!("# TYPE {family} ")))
    }
}

fn scrape(app: &TestApp) -> Metrics {
    let reply = app.raw("GET", "/metrics", &[], None);
    reply.expect(200);
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    Metrics::parse(&reply.body)
}

fn check(app: &TestApp, key: &str, function: &str) -> String {
    let answer = app.call("POST", "/v1/check", None, Some(&json!({"key": key, "function": function})));
    answer.expect(200);
    answer.json()["reason"].as_str().unwrap().to_owned()
}

fn authorize(app: &TestApp, key: &str, function: &str) -> u16 {
    app.call("GET", &format!("/v1/authorize?function={function}"), Some(key), None).status
}

#[test]
fn checks_and_commands_move_their_counters_by_reason_and_outcome() {
    let app = spawn_app();
    let before = scrape(&app);

    // Checks: the Administrator holds admin functions and may hold no API function.
    assert_eq!(check(&app, &app.admin_key, "security.users.read"), "granted");
    assert_eq!(check(&app, &app.admin_key, "security.users.read"), "granted");
    assert_eq!(check(&app, "kl_not-a-key", "security.users.read"), "malformed_key");
    assert_eq!(authorize(&app, &app.admin_key, "api.events.read"), 403);
    assert_eq!(authorize(&app, "kl_not-a-key", "api.events.read"), 401);
    // Commands: one carried out, one refused by the rules.
    app.post("/v1/roles", &json!({"description": "Metrics readers"})).expect(201);
    app.post("/v1/roles", &json!({"description": "Metrics readers"})).expect(409);

    let after = scrape(&app);
    let moved = |name: &str, labels: &[(&str, &str)]| after.value(name, labels) - before.value(name, labels);
    let checks = "keyledger_checks_total";
    assert_eq!(moved(checks, &[("endpoint", "checkKey"), ("reason", "granted")]), 2.0);
    assert_eq!(moved(checks, &[("endpoint", "checkKey"), ("reason", "malformed_key")]), 1.0);
    assert_eq!(moved(checks, &[("endpoint", "authorizeRequest"), ("reason", "function_not_granted")]), 1.0);
    assert_eq!(moved(checks, &[("endpoint", "authorizeRequest"), ("reason", "malformed_key")]), 1.0);
    assert_eq!(moved(checks, &[("endpoint", "authorizeRequest"), ("reason", "granted")]), 0.0);
    let commands = "keyledger_admin_commands_total";
    assert_eq!(moved(commands, &[("operation", "createRole"), ("outcome", "ok")]), 1.0);
    assert_eq!(moved(commands, &[("operation", "createRole"), ("outcome", "refused")]), 1.0);
    assert_eq!(moved(commands, &[("operation", "createRole"), ("outcome", "failed")]), 0.0);
    assert_eq!(before.value(commands, &[("operation", "bootstrap"), ("outcome", "ok")]), 1.0);

    // Both commands went through the writer: each was timed, and each batch counted.
    let latency = "keyledger_write_latency_seconds";
    assert!(after.histogram_count(latency) >= before.histogram_count(latency) + 2.0);
    let batches = "keyledger_write_batch_size";
    assert!(after.histogram_count(batches) >= before.histogram_count(batches) + 2.0);

    let head = app.raw("GET", "/health", &[], None).json()["log_size"].as_f64().unwrap();
    assert_eq!(after.value("keyledger_log_head", &[]), head);
    assert_eq!(after.value("keyledger_throttled_clients", &[]), 0.0);

    for (family, kind) in [
        (checks, "counter"),
        (commands, "counter"),
        (latency, "histogram"),
        (batches, "histogram"),
        ("keyledger_log_head", "gauge"),
        ("keyledger_checkpoint_size", "gauge"),
        ("keyledger_throttled_clients", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_open_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        assert_eq!(after.kind(family), Some(kind), "TYPE of {family}");
        assert!(after.scrape.docs.contains_key(family), "no HELP for {family}");
    }
    assert!(after.value("process_resident_memory_bytes", &[]) > 1_000_000.0);
    assert!(after.value("process_open_fds", &[]) >= 3.0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let started = after.value("process_start_time_seconds", &[]);
    assert!(started <= now + 1.0 && started > now - 3600.0, "started {started}, now {now}");
}

#[test]
fn the_checkpoint_size_follows_the_latest_signed_checkpoint() {
    let app = spawn_app();
    app.post("/v1/roles", &json!({"description": "Checkpointed"})).expect(201);
    // getCheckpoint signs one at the head when the latest does not cover it.
    let size = app.get("/v1/audit/checkpoint").expect(200).json()["size"].as_f64().unwrap();
    let metrics = scrape(&app);
    assert_eq!(metrics.value("keyledger_checkpoint_size", &[]), size);
    assert_eq!(metrics.value("keyledger_log_head", &[]), size);

    // After a restart it is read back from the checkpoint file. A graceful stop records
    // the key usage and signs a last checkpoint over it, so that one covers the head.
    let app = app.restart();
    let metrics = scrape(&app);
    assert!(metrics.value("keyledger_checkpoint_size", &[]) > size);
    assert_eq!(metrics.value("keyledger_checkpoint_size", &[]), metrics.value("keyledger_log_head", &[]));
}

#[test]
fn throttled_checks_are_counted_and_so_are_the_throttled_clients() {
    let app = spawn_app_with(&["--failed-check-burst", "1", "--failed-checks-per-minute", "1"]);
    assert_eq!(check(&app, "kl_not-a-key", "api.events.read"), "malformed_key");
    app.call("POST", "/v1/check", None, Some(&json!({"key": "kl_x", "function": "api.events.read"}))).expect(429);
    assert_eq!(authorize(&app, "kl_not-a-key", "api.events.read"), 429);
    let metrics = scrape(&app);
    let checks = "keyledger_checks_total";
    assert_eq!(metrics.value(checks, &[("endpoint", "checkKey"), ("reason", "throttled")]), 1.0);
    assert_eq!(metrics.value(checks, &[("endpoint", "authorizeRequest"), ("reason", "throttled")]), 1.0);
    assert_eq!(metrics.value("keyledger_throttled_clients", &[]), 1.0);
}

#[test]
fn metrics_listen_serves_metrics_on_its_own_address_and_the_main_one_answers_404() {
    let app = spawn_app_with(&["--metrics-listen", "127.0.0.1:0"]);
    let url = app
        .printed
        .iter()
        .find_map(|line| line.strip_prefix("metrics on "))
        .unwrap_or_else(|| panic!("no metrics address printed: {:?}", app.printed))
        .to_owned();
    assert!(url.ends_with("/metrics"), "{url}");

    let main = app.raw("GET", "/metrics", &[], None);
    main.expect(404);
    assert_eq!(main.header("content-type"), Some("application/problem+json"));
    assert_eq!(check(&app, &app.admin_key, "security.users.read"), "granted");

    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    let mut response = agent.get(&url).call().expect("scrape the metrics address");
    assert_eq!(response.status(), 200);
    let metrics = Metrics::parse(&response.body_mut().read_to_string().unwrap());
    // The same counters as the main address counts.
    assert_eq!(metrics.value("keyledger_checks_total", &[("endpoint", "checkKey"), ("reason", "granted")]), 1.0);

    // The metrics address serves nothing else.
    let health = url.replace("/metrics", "/health");
    assert_eq!(agent.get(&health).call().expect("ask the metrics address for /health").status(), 404);
}
