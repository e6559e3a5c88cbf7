//! The change feed, `watchAuditEvents` (issue #13, item 1): every record exactly once, in
//! order and byte for byte as stored, across reconnections; writers that never wait for a
//! stalled follower; the listing's filters; the admin guard.

use std::io::{BufRead, BufReader, Read};
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};

/// A heartbeat this short lets a follower notice quickly that it has everything.
const FAST_HEARTBEAT: [&str; 2] = ["--watch-heartbeat-ms", "100"];

/// One thing a stream sent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    /// An event: its `id` (if any), its name and its data (data lines joined by `\n`).
    Event { id: Option<u64>, name: String, data: String },
    /// A comment line, such as `: keepalive`.
    Comment(String),
}

/// An open stream, read event by event as the client receives it.
struct Stream {
    lines: std::io::Lines<BufReader<Box<dyn Read + Send>>>,
}

impl Stream {
    /// The next event or comment; `None` when the stream ended.
    fn next(&mut self) -> Option<Sent> {
        let (mut id, mut name, mut data): (Option<u64>, Option<String>, Vec<String>) = (None, None, Vec::new());
        loop {
            let line = match self.lines.next() {
                Some(Ok(line)) => line,
                _ => return None,
            };
            if line.is_empty() {
                if name.is_some() || !data.is_empty() {
                    return Some(Sent::Event {
                        id,
                        name: name.unwrap_or_else(|| "message".into()),
                        data: data.join("\n"),
                    });
                }
                continue;
            }
            if let Some(comment) = line.strip_prefix(':') {
                return Some(Sent::Comment(comment.trim().to_owned()));
            }
            let (field, value) = line.split_once(": ").unwrap_or((&line, ""));
            match field {
                "id" => id = Some(value.parse().expect("a numeric id")),
                "event" => name = Some(value.to_owned()),
                "data" => data.push(value.to_owned()),
                other => panic!("unexpected field {other:?} in {line:?}"),
            }
        }
    }
}

/// The answer to opening a stream: its status and, for a 200, the stream.
fn open(app: &TestApp, query: &str, key: Option<&str>, last_event_id: Option<u64>) -> Result<Stream, (u16, Value)> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .new_agent();
    let mut request = ureq::http::Request::builder().uri(format!("{}/v1/audit/watch{query}", app.address));
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    let response = agent.run(request.body(()).expect("request")).expect("the server answers");
    let status = response.status().as_u16();
    if status != 200 {
        let mut body = response.into_body();
        let text = body.read_to_string().expect("body");
        return Err((status, serde_json::from_str(&text).unwrap_or(Value::String(text))));
    }
    assert_eq!(
        response.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/event-stream"),
        "a stream is text/event-stream"
    );
    let reader: Box<dyn Read + Send> = Box::new(response.into_body().into_reader());
    Ok(Stream { lines: BufReader::new(reader).lines() })
}

#[track_caller]
fn open_ok(app: &TestApp, query: &str, last_event_id: Option<u64>) -> Stream {
    open(app, query, Some(&app.admin_key), last_event_id).unwrap_or_else(|(status, body)| panic!("{status}: {body}"))
}

/// The records of the export bundle: each line exactly as stored.
fn exported_records(app: &TestApp) -> Vec<String> {
    let bundle = app.get("/v1/audit/export");
    bundle.expect(200);
    bundle.body.lines().filter(|line| !line.starts_with(r#"{"kind""#)).map(str::to_owned).collect()
}

/// A record event as (seq, name, data), checking that its id is its seq and its name its type.
#[track_caller]
fn record_of(sent: &Sent) -> Option<(u64, String, String)> {
    let Sent::Event { id, name, data } = sent else { return None };
    if name == "checkpoint" || name == "lagged" {
        return None;
    }
    let record: Value = serde_json::from_str(data).expect("a record is JSON");
    assert_eq!(Some(record["seq"].as_u64().expect("seq")), *id, "the id is the seq: {data}");
    assert_eq!(record["type"].as_str(), Some(name.as_str()), "the event is named for the type: {data}");
    Some((id.expect("id"), name.clone(), data.clone()))
}

/// Follows a stream, collecting its records, until it has the record at `target` (set by
/// another thread once known) or it ends. Returns the records and how the stream ended.
fn follow_until(stream: &mut Stream, records: &mut Vec<(u64, String, String)>, target: &AtomicU64) -> Option<Sent> {
    loop {
        if records.last().is_some_and(|(seq, _, _)| *seq >= target.load(Ordering::SeqCst)) {
            return None;
        }
        let sent = stream.next()?;
        match record_of(&sent) {
            Some(record) => records.push(record),
            None if matches!(&sent, Sent::Event { name, .. } if name == "lagged") => return Some(sent),
            None => {}
        }
    }
}

#[test]
fn a_follower_from_zero_that_reconnects_with_last_event_id_gets_every_record_once_in_order_as_exported() {
    let app = spawn_app_with(&FAST_HEARTBEAT);
    let target = AtomicU64::new(u64::MAX);
    let start = Barrier::new(9);
    let received = std::thread::scope(|scope| {
        let follower = scope.spawn(|| {
            let mut records = Vec::new();
            let mut stream = open_ok(&app, "?after=0", None);
            start.wait();
            // Read part of it, then drop the connection while the writers write.
            while records.len() < 40 {
                let sent = stream.next().expect("the stream goes on");
                records.extend(record_of(&sent));
            }
            drop(stream);
            // Reconnect as an EventSource does: the same URL, with Last-Event-ID, which wins
            // over `after=0`.
            let last = records.last().map(|(seq, _, _)| *seq);
            let mut stream = open_ok(&app, "?after=0", last);
            let ended = follow_until(&mut stream, &mut records, &target);
            assert_eq!(ended, None, "a follower that keeps up is not cut off");
            records
        });
        let writers: Vec<_> = (0..8)
            .map(|writer| {
                let (app, start) = (&app, &start);
                scope.spawn(move || {
                    start.wait();
                    for role in 0..12 {
                        app.create_role(&format!("Writer {writer} role {role}"));
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("writer");
        }
        target.store(app.verified_audit_size(), Ordering::SeqCst);
        follower.join().expect("follower")
    });
    let size = target.load(Ordering::SeqCst);

    let exported = exported_records(&app);
    assert_eq!(exported.len() as u64, size);
    let seqs: Vec<u64> = received.iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!(seqs, (1..=size).collect::<Vec<_>>(), "every record exactly once, in order");
    for ((seq, _, data), stored) in received.iter().zip(&exported) {
        assert_eq!(data, stored, "record {seq} is byte for byte the stored record");
    }
}

#[test]
fn a_stalled_follower_does_not_hold_up_writers_and_is_either_served_in_order_or_cut_off_to_resume() {
    let app = spawn_app_with(&FAST_HEARTBEAT);
    let before = app.audit_size();
    // Opened, then never read while the writers write.
    let mut stalled = open_ok(&app, "", None);
    let written: usize = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..8)
            .map(|writer| {
                let app = &app;
                scope.spawn(move || {
                    (0..40).map(|role| app.create_role(&format!("Stalled {writer} role {role}"))).count()
                })
            })
            .collect();
        writers.into_iter().map(|writer| writer.join().expect("writer")).sum()
    });
    assert_eq!(written, 320, "every write completed while the follower read nothing");
    let size = app.verified_audit_size();
    assert_eq!(size, before + 320);

    // Now it reads: what it gets has no gap and no duplicate, up to the head or up to an
    // `event: lagged` that says where to resume. Resuming from there completes it.
    let target = AtomicU64::new(size);
    let mut records = Vec::new();
    if let Some(Sent::Event { data, .. }) = follow_until(&mut stalled, &mut records, &target) {
        let resume = serde_json::from_str::<Value>(&data).expect("lagged data")["after"].as_u64().expect("after");
        assert_eq!(resume, records.last().map_or(0, |(seq, _, _)| *seq));
        let mut resumed = open_ok(&app, "", Some(resume));
        assert_eq!(follow_until(&mut resumed, &mut records, &target), None);
    }
    let seqs: Vec<u64> = records.iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!(seqs, (1..=size).collect::<Vec<_>>());
}

#[test]
fn the_stream_filters_by_type_actor_and_subject_like_the_listing_and_ends_at_until() {
    let app = spawn_app_with(&FAST_HEARTBEAT);
    let (user, key) = app.user_with_functions("Role maker", &["security.roles.manage"]);
    let reader = app.create_role("Made by the Administrator");
    let by_user = {
        let reply = app.call("POST", "/v1/roles", Some(&key), Some(&json!({ "description": "Made by the user" })));
        reply.expect(201);
        reply.json()["id"].as_str().expect("id").to_owned()
    };
    app.activate(&reader, &["api.events.read"]);
    let head = app.verified_audit_size();
    let listed = |query: &str| -> Vec<u64> {
        let reply = app.get(&format!("/v1/audit/events?limit=1000&{query}"));
        reply.expect(200);
        reply.json()["items"].as_array().expect("items").iter().map(|r| r["seq"].as_u64().expect("seq")).collect()
    };
    for query in [
        "type=RoleCreated".to_owned(),
        "type=RoleCreated,FunctionActivated".to_owned(),
        format!("actor={user}"),
        format!("subject={reader}"),
        format!("subject={by_user}&type=RoleCreated"),
    ] {
        let mut stream = open_ok(&app, &format!("?{query}&until={head}"), None);
        let mut streamed = Vec::new();
        while let Some(sent) = stream.next() {
            streamed.extend(record_of(&sent).map(|(seq, _, _)| seq));
        }
        let expected = listed(&query);
        assert!(!expected.is_empty(), "{query}: the fixture has records to find");
        assert_eq!(streamed, expected, "{query}: the stream sends what the listing lists, then ends at until");
    }
    // Bad filters are refused as the listing refuses them.
    let refused = |query: &str| open(&app, query, Some(&app.admin_key), None).err().expect("refused");
    let (status, problem) = refused("?type=NoSuchType");
    assert_eq!((status, problem["code"].as_str()), (400, Some("unknown_event_type")));
    let (status, problem) = refused("?actor=nobody");
    assert_eq!((status, problem["code"].as_str()), (400, Some("invalid_query")));
}

#[test]
fn an_idle_stream_sends_keepalive_comments_and_a_checkpoint_event_when_one_is_signed() {
    let app = spawn_app_with(&FAST_HEARTBEAT);
    let head = app.audit_size();
    let mut stream = open_ok(&app, &format!("?after={head}"), None);
    assert_eq!(stream.next(), Some(Sent::Comment("keepalive".into())), "nothing to send: a heartbeat");
    app.create_role("After the stream opened");
    let checkpoint = app.get("/v1/audit/checkpoint");
    checkpoint.expect(200);
    let mut sent = Vec::new();
    while sent.len() < 2 {
        match stream.next().expect("the stream goes on") {
            Sent::Comment(_) => {}
            event => sent.push(event),
        }
    }
    assert!(matches!(&sent[0], Sent::Event { id: Some(id), name, .. } if *id == head + 1 && name == "RoleCreated"));
    assert_eq!(
        sent[1],
        Sent::Event { id: None, name: "checkpoint".into(), data: checkpoint.body.clone() },
        "the checkpoint as getCheckpoint serves it"
    );
}

#[test]
fn a_start_that_is_not_a_position_of_the_log_is_refused_with_a_problem() {
    let app = spawn_app_with(&FAST_HEARTBEAT);
    let head = app.audit_size();
    let refused = |query: &str, last_event_id: Option<&str>| -> (u16, String) {
        let mut headers = vec![("authorization", format!("Bearer {}", app.admin_key))];
        if let Some(id) = last_event_id {
            headers.push(("last-event-id", id.to_owned()));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let reply = app.raw("GET", &format!("/v1/audit/watch{query}"), &headers, None);
        assert_eq!(reply.header("content-type"), Some("application/problem+json"), "{query}: {}", reply.body);
        (reply.status, reply.json()["code"].as_str().unwrap_or_default().to_owned())
    };
    let past = format!("?after={}", head + 1);
    assert_eq!(refused(&past, None), (422, "position_beyond_head".to_owned()));
    assert_eq!(refused("", Some(&(head + 1).to_string())), (422, "position_beyond_head".to_owned()));
    assert_eq!(refused("?after=-1", None), (400, "invalid_query".to_owned()));
    assert_eq!(refused("?after=ten", None), (400, "invalid_query".to_owned()));
    assert_eq!(refused("?after=9223372036854775808", None), (400, "invalid_query".to_owned()));
    assert_eq!(refused("?after=2&until=2", None), (400, "invalid_query".to_owned()));
    assert_eq!(refused("?until=9223372036854775808", None), (400, "invalid_query".to_owned()));
    assert_eq!(refused("", Some("9223372036854775808")), (400, "invalid_header".to_owned()));
    assert_eq!(refused("", Some("")), (400, "invalid_header".to_owned()));
    assert_eq!(refused("", Some("-3")), (400, "invalid_header".to_owned()));
    assert_eq!(refused("", Some("abc")), (400, "invalid_header".to_owned()));
    // The header wins over the query, even when the query alone would be refused.
    let mut stream = open_ok(&app, &format!("{past}&until={head}"), Some(head - 1));
    assert_eq!(record_of(&stream.next().expect("a record")).map(|(seq, _, _)| seq), Some(head));
    assert_eq!(stream.next(), None, "the stream ends at until");
}

#[test]
fn the_stream_needs_a_key_holding_audit_read() {
    let app = spawn_app_with(&FAST_HEARTBEAT);
    let (status, problem) = open(&app, "", None, None).err().expect("refused");
    assert_eq!((status, problem["code"].as_str()), (401, Some("unauthenticated")));
    let (status, problem) = open(&app, "", Some("kl_not_a_key"), None).err().expect("refused");
    assert_eq!((status, problem["code"].as_str()), (401, Some("unauthenticated")));
    let (_, key) = app.user_with_functions("No auditor", &["security.roles.read"]);
    let (status, problem) = open(&app, "", Some(&key), None).err().expect("refused");
    assert_eq!((status, problem["code"].as_str()), (403, Some("forbidden")));
    let (_, auditor) = app.user_with_functions("Auditor", &["security.audit.read"]);
    let mut stream =
        open(&app, "?until=1", Some(&auditor), None).unwrap_or_else(|(status, body)| panic!("{status}: {body}"));
    assert_eq!(record_of(&stream.next().expect("a record")).map(|(seq, _, _)| seq), Some(1));
}

#[test]
fn a_stream_ends_once_its_key_is_revoked_or_its_user_disabled_and_sends_nothing_after() {
    let app = spawn_app_with(&FAST_HEARTBEAT);
    for cut_off in ["revoke the key", "disable the user"] {
        let (auditor, key) = app.user_with_functions(&format!("Auditor until we {cut_off}"), &["security.audit.read"]);
        let head = app.audit_size();
        let mut stream = open(&app, &format!("?after={head}"), Some(&key), None)
            .unwrap_or_else(|(status, body)| panic!("{status}: {body}"));
        let role = app.create_role(&format!("Seen before we {cut_off}"));
        let seen = loop {
            if let Some(record) = record_of(&stream.next().expect("the stream goes on")) {
                break record;
            }
        };
        assert!(seen.2.contains(&role), "{}", seen.2);
        match cut_off {
            "revoke the key" => app.delete(&format!("/v1/users/{auditor}/key")).expect(200),
            _ => app.post_empty(&format!("/v1/users/{auditor}/disable")).expect(200),
        };
        app.create_role(&format!("Made after we {cut_off}"));
        // The stream ends at its next send (a record or a heartbeat), and sends no record.
        while let Some(sent) = stream.next() {
            assert_eq!(record_of(&sent), None, "{cut_off}: nothing after, got {sent:?}");
        }
    }
}
