//! The console's reviewer screens, black-box (issue #16): each needs `security.audit.read`
//! (403 otherwise, and not in the navigation), a malformed query is answered with a 4xx
//! page naming the problem (never a 500), the trail's download is the filtered set, and the
//! bundle downloaded from the integrity screen verifies with the command the screen shows.
//! The screens are driven in a browser by `scripts/console-test.sh` (review.mjs,
//! readonly.mjs).

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

/// One raw HTTP/1.1 answer: status, headers (every one kept) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(found, _)| found.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(header, _)| header.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, value)| value.split(';').next())
            .find(|pair| pair.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("a CSRF field") + marker.len();
        self.body[start..].split('"').next().expect("the token").to_owned()
    }
}

/// Sends one request without following redirects (a chunked body is read whole).
fn send(app: &TestApp, method: &str, path: &str, cookie: &str, body: &str) -> Answer {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect");
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {address}\r\n");
    if !cookie.is_empty() {
        request.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if method == "POST" {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let split = raw.windows(4).position(|window| window == b"\r\n\r\n").expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_vec() };
    let body = String::from_utf8(body).expect("a UTF-8 body");
    let mut lines = head.lines();
    let status = lines.next().and_then(|line| line.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Answer { status, headers, body }
}

/// The body of a chunked answer: each chunk's size line and trailing line end taken away.
fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(end) = chunked.windows(2).position(|window| window == b"\r\n") {
        let size = std::str::from_utf8(&chunked[..end]).expect("a size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        let rest = &chunked[end + 2..];
        body.extend_from_slice(&rest[..size]);
        chunked = &rest[size + 2..];
    }
    body
}

/// Signs in with `key`; the session's cookie.
fn sign_in(app: &TestApp, key: &str) -> String {
    let page = send(app, "GET", "/console/sign-in", "", "");
    let form_cookie = page.cookie("kl_console_signin").or_else(|| {
        page.headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
            .and_then(|(_, value)| value.split(';').next().map(str::to_owned))
    });
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("csrf", page.csrf().as_str()), ("key", key)])
        .finish();
    let answer = send(app, "POST", "/console/sign-in", form_cookie.as_deref().unwrap_or_default(), &body);
    assert_eq!(answer.status, 303, "sign-in: {}", answer.body);
    answer.cookie("kl_console").expect("a session cookie")
}

/// A user holding a role with `functions`, and its key.
fn admin_with(app: &TestApp, name: &str, functions: &[&str]) -> String {
    let role = app.post("/v1/roles", &json!({"description": format!("{name} role")})).json()["id"]
        .as_str()
        .expect("role id")
        .to_owned();
    app.post(&format!("/v1/roles/{role}/functions/activate"), &json!({"functions": functions})).expect(200);
    let user = app.post("/v1/users", &json!({"name": name})).json()["id"].as_str().expect("user id").to_owned();
    app.put(&format!("/v1/users/{user}/roles/{role}"), None).expect(200);
    app.post_empty(&format!("/v1/users/{user}/key")).json()["key"].as_str().expect("key").to_owned()
}

const SCREENS: [&str; 4] = ["/console/audit", "/console/integrity", "/console/point-in-time", "/console/access-review"];

#[test]
fn the_reviewer_screens_need_security_audit_read_and_offer_no_change() {
    let app = spawn_app();
    let reviewer = sign_in(&app, &admin_with(&app, "Reviewer", &["security.audit.read"]));
    let reader = sign_in(&app, &admin_with(&app, "Reader", &["security.users.read"]));
    for screen in SCREENS {
        let seen = send(&app, "GET", screen, &reviewer, "");
        assert_eq!(seen.status, 200, "{screen}: {}", seen.body);
        assert!(seen.body.contains(&format!("href=\"{screen}\" aria-current=\"page\"")), "{screen} in the navigation");
        assert!(only_sign_out(&seen.body), "{screen} offers no form that posts but sign-out");
        let refused = send(&app, "GET", screen, &reader, "");
        assert_eq!(refused.status, 403, "{screen} for a reader: {}", refused.body);
        assert!(refused.body.contains("security.audit.read"), "the 403 page names the function");
        let users = send(&app, "GET", "/console/users", &reader, "");
        assert!(!users.body.contains(&format!("href=\"{screen}\"")), "{screen} is not offered to a reader");
    }
    for download in
        ["/console/audit/download?format=csv", "/console/integrity/bundle", "/console/access-review/report.csv"]
    {
        assert_eq!(send(&app, "GET", download, &reader, "").status, 403, "{download} for a reader");
    }
}

fn only_sign_out(body: &str) -> bool {
    body.matches("method=\"post\"").count() == 1 && body.contains("method=\"post\" action=\"/console/sign-out\"")
}

#[test]
fn malformed_queries_get_a_4xx_page_that_names_the_problem_never_a_500() {
    let app = spawn_app();
    let reviewer = sign_in(&app, &admin_with(&app, "Reviewer", &["security.audit.read"]));
    let cases: [(&str, u16, &str); 14] = [
        ("/console/audit?type=NoSuchEvent", 400, "there is no event type “NoSuchEvent”"),
        ("/console/audit?actor=grp_0000000000000001", 400, "is not a user id or “system”"),
        ("/console/audit?subject=%00%FF", 400, "is not a role, user or group id"),
        ("/console/audit?from=yesterday", 400, "“yesterday” is not a time"),
        ("/console/audit?from=2027-02-01T00:00&to=2027-01-01T00:00", 400, "“to” is before “from”"),
        ("/console/audit?before=99999999999999999999999", 400, "is not a record number"),
        ("/console/audit/download?format=xml", 400, "“xml” is not a download format"),
        ("/console/point-in-time?position=-1", 400, "is not a log position"),
        ("/console/point-in-time?position=1&at=2027-01-01T00:00", 400, "give a position or a time, not both"),
        ("/console/point-in-time?position=99999999", 422, "past the head of the log"),
        ("/console/point-in-time?at=1999-01-01T00:00", 422, "before the first record"),
        ("/console/point-in-time?at=2999-01-01T00:00", 422, "is in the future"),
        ("/console/point-in-time?from_position=9&to_position=2", 422, "before its start"),
        ("/console/integrity/checkpoint?size=abc", 400, "“abc” is not a number of records"),
    ];
    for (path, status, words) in cases {
        let answer = send(&app, "GET", path, &reviewer, "");
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        assert!(
            answer.header("content-type").is_some_and(|kind| kind.starts_with("text/html")),
            "{path}: an HTML page"
        );
        assert!(answer.body.contains(words), "{path} says {words:?}: {}", answer.body);
        assert!(answer.body.contains("class=\"error\""), "{path}: shown as an error");
    }
    let missing = send(&app, "GET", "/console/integrity/bundle?size=3", &reviewer, "");
    assert_eq!(missing.status, 404, "no checkpoint at 3 records: {}", missing.body);
}

#[test]
fn the_trail_downloads_its_filtered_set_and_the_shown_command_verifies_the_downloaded_bundle() {
    let app = spawn_app();
    let user = app.post("/v1/users", &json!({"name": "=1+1 app"})).json()["id"].as_str().expect("id").to_owned();
    app.post_empty(&format!("/v1/users/{user}/key")).expect(201);
    let reviewer = sign_in(&app, &admin_with(&app, "Reviewer", &["security.audit.read"]));

    let csv = send(&app, "GET", &format!("/console/audit/download?format=csv&subject={user}"), &reviewer, "");
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-disposition").is_some_and(|value| value.contains("audit-trail.csv")));
    let rows: Vec<&str> = csv.body.trim_end().split("\r\n").collect();
    assert_eq!(rows[0], "seq,at,type,actor,subject,id,data,prev_hash,hash");
    let types: Vec<&str> = rows[1..].iter().map(|row| row.split(',').nth(2).expect("type")).collect();
    assert_eq!(types, ["UserCreated", "KeyGenerated"], "the user's records, oldest first");
    let json = send(&app, "GET", &format!("/console/audit/download?format=json&subject={user}"), &reviewer, "");
    let records: Vec<serde_json::Value> = serde_json::from_str(&json.body).expect("a JSON array");
    assert_eq!(records.len(), 2);
    // The records exactly as stored: the API's listing splices the stored bytes too.
    let listed = app.get(&format!("/v1/audit/events?subject={user}")).body;
    let stored = listed.trim_start_matches("{\"items\":[").split("],\"next\":").next().expect("items");
    assert_eq!(json.body.replace('\n', ""), format!("[{stored}]"));
    let page = send(&app, "GET", "/console/audit", &reviewer, "");
    assert!(page.body.contains("=1+1 app"), "names shown as text");

    let integrity = send(&app, "GET", "/console/integrity", &reviewer, "");
    assert_eq!(integrity.status, 200, "{}", integrity.body);
    let between = |after: &str, before: &str| -> String {
        let start = integrity.body.find(after).expect(after) + after.len();
        integrity.body[start..].split(before).next().expect(before).to_owned()
    };
    let size: u64 = between("id=\"checkpoint-size\">", "<").parse().expect("the size");
    let command = between("id=\"verify-command\">", "<");
    // Records added after the page was made do not change what its download holds.
    app.post("/v1/users", &json!({"name": "Later"})).expect(201);
    let bundle = send(&app, "GET", &format!("/console/integrity/bundle?size={size}"), &reviewer, "");
    assert_eq!(bundle.status, 200);
    let file_name = command.split(' ').nth(2).expect("the file").to_owned();
    assert!(bundle.header("content-disposition").is_some_and(|value| value.contains(&file_name)), "{file_name}");
    let directory = tempfile::tempdir().expect("a directory");
    std::fs::write(directory.path().join(&file_name), &bundle.body).expect("saved");
    let arguments: Vec<&str> = command.split(' ').skip(1).collect();
    let verified = std::process::Command::new(env!("CARGO_BIN_EXE_keyledger"))
        .args(&arguments)
        .current_dir(directory.path())
        .output()
        .expect("keyledger verify runs");
    let output = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{command}: {output} {}", String::from_utf8_lossy(&verified.stderr));
    assert!(output.contains(&format!("{size} records")), "{output}");
}
