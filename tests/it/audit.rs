//! The audit trail as an auditor sees it over HTTP: a gapless, paginated, hash-chained
//! listing whose hashes a client can recompute from the bytes served, with the right
//! actor and subject on every record, and no key secret anywhere.

use std::collections::HashSet;
use std::path::Path;

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// The `prev_hash` of the first record.
const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The members every record has, in the order they are written.
const RECORD_MEMBERS: [&str; 10] = ["seq", "type", "v", "id", "at", "actor", "subject", "data", "prev_hash", "hash"];

/// One record of the listing: its exact text as served, and that text parsed.
#[derive(Debug, Clone)]
struct ServedRecord {
    text: String,
    json: Value,
}

impl ServedRecord {
    fn seq(&self) -> u64 {
        self.json["seq"].as_u64().unwrap_or_else(|| panic!("no seq: {}", self.text))
    }

    fn kind(&self) -> &str {
        self.json["type"].as_str().unwrap_or_else(|| panic!("no type: {}", self.text))
    }

    fn str_member(&self, name: &str) -> &str {
        self.json[name].as_str().unwrap_or_else(|| panic!("no string {name}: {}", self.text))
    }
}

/// Splits the `items` array of a listing body into the exact text of each record, by
/// scanning for balanced braces outside strings. Re-serialising the parsed JSON would not
/// do: it changes the order of members, and so the bytes the hash covers.
fn record_texts(body: &str) -> Vec<String> {
    let start = body.find("\"items\":[").unwrap_or_else(|| panic!("no items array: {body}")) + "\"items\":[".len();
    let bytes = body.as_bytes();
    let mut texts = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut record_start = None;
    for (offset, &byte) in bytes[start..].iter().enumerate() {
        let index = start + offset;
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' => {
                if depth == 0 {
                    record_start = Some(index);
                }
                depth += 1;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    let from = record_start.take().expect("a record starts before it ends");
                    texts.push(body[from..=index].to_owned());
                }
            }
            b']' if depth == 0 => return texts,
            _ => {}
        }
    }
    panic!("the items array is not closed: {body}");
}

/// Fetches one page of the listing as the Administrator: the records and `next`.
fn audit_page(app: &TestApp, limit: u32, after: u64) -> (Vec<ServedRecord>, Option<u64>) {
    let reply = app.get(&format!("/v1/audit/events?limit={limit}&after={after}"));
    reply.expect(200);
    let parsed = reply.json();
    let records: Vec<ServedRecord> = record_texts(&reply.body)
        .into_iter()
        .map(|text| {
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("record is not JSON ({e}): {text}"));
            ServedRecord { text, json }
        })
        .collect();
    assert_eq!(
        Some(records.iter().map(|r| r.json.clone()).collect::<Vec<_>>()).as_ref(),
        parsed["items"].as_array(),
        "the scanned records are the listing's items"
    );
    let next = match &parsed["next"] {
        Value::Null => None,
        next => Some(next.as_u64().unwrap_or_else(|| panic!("next is not a number: {}", reply.body))),
    };
    (records, next)
}

/// The whole listing, page by page, checking that each `next` is the last `seq` of its
/// page and that only the last page has a null `next`.
fn audit_listing(app: &TestApp, limit: u32) -> Vec<ServedRecord> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let (page, next) = audit_page(app, limit, after);
        assert!(page.len() <= limit as usize, "a page holds at most `limit` records");
        match next {
            Some(next) => {
                assert_eq!(page.len(), limit as usize, "a page with a next page is full");
                assert_eq!(Some(next), page.last().map(ServedRecord::seq), "next is the last seq of the page");
                all.extend(page);
                after = next;
            }
            None => {
                all.extend(page);
                return all;
            }
        }
    }
}

/// The Administrator's user id, as the key check names it.
fn admin_user_id(app: &TestApp) -> String {
    let answer = app.check(&app.admin_key, "security.audit.read", None);
    assert_eq!(answer["allowed"], true, "{answer}");
    answer["user_id"].as_str().expect("user_id").to_owned()
}

/// blake3 of a record's text with its trailing `,"hash":"<64 hex>"}` replaced by `}`.
fn recomputed_hash(text: &str) -> String {
    let suffix_len = ",\"hash\":\"".len() + 64 + "\"}".len();
    assert!(text.len() > suffix_len, "record too short: {text}");
    let (body, suffix) = text.split_at(text.len() - suffix_len);
    assert!(suffix.starts_with(",\"hash\":\"") && suffix.ends_with("\"}"), "the hash member is not last: {text}");
    blake3::hash(format!("{body}}}").as_bytes()).to_hex().to_string()
}

/// Reads every file under `dir`, recursively, into (path, contents as text). Invalid
/// UTF-8 becomes replacement characters, which never turn into or break up ASCII, so an
/// ASCII secret is found in the text exactly when it is in the bytes; and std's
/// optimised substring search keeps a scan of fjall's preallocated journal fast.
fn every_file(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                files.push((path.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
    }
    files
}

#[test]
fn the_audit_listing_pages_through_every_record_in_order_with_gapless_seq_from_one() {
    let app = spawn_app();
    app.api_user();
    let size = app.verified_audit_size();

    let paged = audit_listing(&app, 4);
    let seqs: Vec<u64> = paged.iter().map(ServedRecord::seq).collect();
    assert_eq!(seqs, (1..=size).collect::<Vec<_>>());

    // One big page gives the same bytes as many small ones.
    let whole = audit_listing(&app, 1000);
    assert_eq!(
        whole.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
        paged.iter().map(|r| r.text.as_str()).collect::<Vec<_>>()
    );
    // Record times never go backwards (the fixed-width RFC 3339 form sorts as text).
    let times: Vec<&str> = paged.iter().map(|r| r.str_member("at")).collect();
    assert!(times.is_sorted(), "{times:?}");
    // Page sizes outside 1..=1000 are refused.
    app.get("/v1/audit/events?limit=0").expect_problem(400, "invalid_query");
    app.get("/v1/audit/events?limit=1001").expect_problem(400, "invalid_query");
    // A page after the head is empty and the last one.
    let (beyond, next) = audit_page(&app, 10, size);
    assert!(beyond.is_empty());
    assert_eq!(next, None);
}

#[test]
fn every_record_has_the_audit_members_in_order() {
    let app = spawn_app();
    app.api_user();
    for record in audit_listing(&app, 100) {
        let object = record.json.as_object().expect("a record is an object");
        let mut names: Vec<&str> = object.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut expected = RECORD_MEMBERS.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected, "{}", record.text);
        // The members are written in a fixed order, `hash` last, which is what lets a
        // client find the hashed body in the bytes.
        let positions: Vec<usize> = RECORD_MEMBERS
            .iter()
            .map(|name| record.text.find(&format!("\"{name}\":")).unwrap_or_else(|| panic!("{name}: {}", record.text)))
            .collect();
        assert!(positions.is_sorted(), "members out of order: {}", record.text);
        assert!(record.json["data"].is_object(), "{}", record.text);
        assert_eq!(record.json["v"], 1, "{}", record.text);
    }
}

#[test]
fn every_hash_is_recomputable_from_the_served_bytes_and_each_record_links_to_the_previous() {
    let app = spawn_app();
    app.api_user();
    let records = audit_listing(&app, 5);
    assert!(records.len() > 10);
    let mut previous_hash = GENESIS_HASH.to_owned();
    for record in &records {
        assert_eq!(record.str_member("prev_hash"), previous_hash, "seq {}", record.seq());
        let hash = record.str_member("hash");
        assert_eq!(hash.len(), 64);
        assert_eq!(recomputed_hash(&record.text), hash, "seq {}: {}", record.seq(), record.text);
        previous_hash = hash.to_owned();
    }
    let verification = app.get("/v1/audit/verify").json();
    assert_eq!(verification["head_hash"], previous_hash.as_str());
}

#[test]
fn bootstrap_records_are_by_system_and_admin_changes_carry_the_admin_as_actor_and_the_right_subject() {
    let app = spawn_app();
    let bootstrap = audit_listing(&app, 100);
    assert!(!bootstrap.is_empty());
    for record in &bootstrap {
        assert_eq!(record.str_member("actor"), "system", "{}", record.text);
    }
    let admin = admin_user_id(&app);
    // The bootstrap created the Administrator and gave it a key.
    assert!(bootstrap.iter().any(|r| r.kind() == "UserCreated" && r.str_member("subject") == admin));
    assert!(bootstrap.iter().any(|r| r.kind() == "KeyGenerated" && r.str_member("subject") == admin));

    let (role, user, _key) = app.api_user();
    let records = audit_listing(&app, 100);
    let admin_records = &records[bootstrap.len()..];
    assert!(admin_records.len() >= 10);
    for record in admin_records {
        assert_eq!(record.str_member("actor"), admin, "{}", record.text);
        // Every event is about the role, user or group its data names.
        let data = &record.json["data"];
        let about = match record.kind() {
            "RoleCreated" | "FunctionActivated" | "FunctionDeactivated" => &data["role_id"],
            "EventGroupCreated" | "EventAddedToGroup" | "EventRemovedFromGroup" => &data["group_id"],
            _ => &data["user_id"],
        };
        assert_eq!(record.str_member("subject"), about.as_str().expect("an id"), "{}", record.text);
    }
    let of_kind = |kind: &'static str| admin_records.iter().filter(move |r| r.kind() == kind);
    let role_created: Vec<_> = of_kind("RoleCreated").collect();
    assert_eq!(role_created.len(), 1);
    assert_eq!(role_created[0].str_member("subject"), role);
    let assigned: Vec<_> = of_kind("RoleAssigned").collect();
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0].str_member("subject"), user, "a RoleAssigned record is about the user");
    assert_eq!(assigned[0].json["data"]["role_id"], role.as_str());
    assert_eq!(of_kind("FunctionActivated").filter(|r| r.str_member("subject") == role).count(), 5);
}

#[test]
fn event_ids_are_unique_across_the_trail() {
    let app = spawn_app();
    app.api_user();
    for index in 0..20 {
        app.create_user(&format!("user {index}"));
    }
    let records = audit_listing(&app, 7);
    let ids: HashSet<&str> = records.iter().map(|r| r.str_member("id")).collect();
    assert_eq!(ids.len(), records.len());
    assert!(ids.iter().all(|id| !id.is_empty()));
}

#[test]
fn a_key_generated_record_holds_the_key_id_and_its_hash_but_never_the_secret() {
    let app = spawn_app();
    let user = app.create_user("Reporting app");
    let reply = app.post(&format!("/v1/users/{user}/key"), &json!({}));
    reply.expect(201);
    let generated = reply.json();
    let secret = generated["key"].as_str().expect("key");
    let position: u64 = reply.header("keyledger-position").expect("position").parse().expect("a number");

    let (page, _) = audit_page(&app, 1, position - 1);
    let record = &page[0];
    assert_eq!(record.kind(), "KeyGenerated");
    assert_eq!(record.str_member("subject"), user);
    let data = &record.json["data"];
    assert_eq!(data["key_id"], generated["key_id"]);
    assert_eq!(data["key_hash"], blake3::hash(secret.as_bytes()).to_hex().as_str());
    assert!(!record.text.contains(secret), "{}", record.text);
}

#[test]
fn no_key_secret_appears_in_the_audit_listing_or_in_the_data_directory_after_a_graceful_stop() {
    let mut app = spawn_app();
    let (_, user, first) = app.api_user();
    let second = app.generate_key(&user, &json!({ "grace_seconds": 600 }));
    let other = app.create_user("Second app");
    let third = app.generate_key(&other, &json!({}));
    app.delete(&format!("/v1/users/{other}/key")).expect(200);
    let secrets = [app.admin_key.clone(), first, second, third];

    let mut listing = String::new();
    let mut after = 0;
    loop {
        let reply = app.get(&format!("/v1/audit/events?limit=3&after={after}"));
        reply.expect(200);
        listing.push_str(&reply.body);
        match reply.json()["next"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    for secret in &secrets {
        assert!(!listing.contains(secret.as_str()), "a secret is in the audit listing");
    }

    // The search finds what the log does hold: the key hashes, as text.
    let hashes: Vec<String> =
        secrets.iter().map(|secret| blake3::hash(secret.as_bytes()).to_hex().to_string()).collect();
    for hash in &hashes {
        assert!(listing.contains(hash.as_str()), "the listing holds the key hash {hash}");
    }

    app.stop();
    let files = every_file(app.data_dir());
    for hash in &hashes {
        assert!(
            files.iter().any(|(_, text)| text.contains(hash.as_str())),
            "the data directory holds the key hash {hash}"
        );
    }
    for (path, text) in &files {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "a key secret is stored in {path}");
        }
    }
}

#[test]
fn activating_three_functions_appends_exactly_three_records_at_the_returned_position() {
    let app = spawn_app();
    let role = app.create_role("Readers");
    let before = app.verified_audit_size();

    let functions = ["api.events.read", "api.people.read", "api.sessions.read"];
    let reply = app.post(&format!("/v1/roles/{role}/functions/activate"), &json!({ "functions": functions }));
    reply.expect(200);
    let position: u64 = reply.header("keyledger-position").expect("position").parse().expect("a number");

    let after = app.verified_audit_size();
    assert_eq!(after, before + 3);
    assert_eq!(position, after, "the position is the command's last record");
    let (records, next) = audit_page(&app, 100, before);
    assert_eq!(next, None);
    assert_eq!(records.iter().map(ServedRecord::seq).collect::<Vec<_>>(), vec![before + 1, before + 2, before + 3]);
    let activated: HashSet<&str> = records
        .iter()
        .map(|record| {
            assert_eq!(record.kind(), "FunctionActivated", "{}", record.text);
            assert_eq!(record.str_member("subject"), role);
            record.json["data"]["function"].as_str().expect("function")
        })
        .collect();
    assert_eq!(activated, functions.into_iter().collect());

    // Activating the same functions again changes nothing and appends nothing.
    let again = app.post(&format!("/v1/roles/{role}/functions/activate"), &json!({ "functions": functions }));
    again.expect(200);
    assert_eq!(app.verified_audit_size(), after);
}

#[test]
fn refused_commands_append_nothing() {
    let app = spawn_app();
    let (api_role, api_user, api_key) = app.api_user();
    let admin_role = app.create_role("Auditors");
    app.activate(&admin_role, &["security.audit.read"]);
    let size = app.verified_audit_size();

    let refusals = [
        app.post("/v1/roles", &json!({ "description": "API Access" })),
        app.post(&format!("/v1/roles/{api_role}/functions/activate"), &json!({ "functions": ["security.users.read"] })),
        app.put(&format!("/v1/users/{api_user}/roles/{admin_role}"), None),
        app.post(&format!("/v1/roles/{api_role}/functions/activate"), &json!({ "functions": ["api.nothing.read"] })),
        app.post("/v1/users", &json!({ "name": "" })),
        app.delete(&format!("/v1/users/{}/key", admin_user_id(&app))),
        app.delete(&format!("/v1/users/{api_user}/roles/{admin_role}")),
        app.call("POST", "/v1/users", Some(&api_key), Some(&json!({ "name": "Intruder" }))),
        app.call("POST", "/v1/users", None, Some(&json!({ "name": "Anonymous" }))),
    ];
    for refusal in &refusals {
        assert!(refusal.status >= 400, "expected a refusal: {} {}", refusal.status, refusal.body);
        assert_eq!(refusal.header("keyledger-position"), None, "{}", refusal.body);
    }
    // Only the API key's 403 is recorded, as a refused admin request; no refusal changed
    // anything.
    let records = app.wait_for_records(size, |records| !records.is_empty());
    let types: Vec<&str> = records.iter().filter_map(|record| record["type"].as_str()).collect();
    assert_eq!(types, ["AdminAccessDenied"], "{records:?}");
    assert_eq!(records[0]["data"]["operation"], "createUser");
    assert_eq!(app.verified_audit_size(), size + 1);
}

#[test]
fn reading_the_audit_trail_needs_a_key_holding_audit_read() {
    let app = spawn_app();
    let (_, _, api_key) = app.api_user();
    app.call("GET", "/v1/audit/events", None, None).expect_problem(401, "unauthenticated");
    app.call("GET", "/v1/audit/events", Some(&api_key), None).expect_problem(403, "forbidden");
    app.call("GET", "/v1/audit/verify", Some(&api_key), None).expect_problem(403, "forbidden");
}
