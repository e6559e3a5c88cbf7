//! The command line for people and for scripts (issue #13, item 5): `replay`,
//! `access-report`, `verify` and `verify-log` print readable tables on a terminal, the
//! same JSON as before when piped, CSV that parses, and nothing on standard error but
//! their own messages when it is not a terminal (no progress bar).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::helpers::{BINARY, TestApp, spawn_app};

fn run(args: &[&str]) -> Output {
    Command::new(BINARY).args(args).output().expect("run keyledger")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("standard output is UTF-8")
}

/// Fails unless the command exited 0 and wrote nothing to standard error.
fn quietly(args: &[&str]) -> String {
    let output = run(args);
    assert!(output.status.success(), "{args:?}: {output:?}");
    assert!(output.stderr.is_empty(), "{args:?} wrote to standard error: {}", String::from_utf8_lossy(&output.stderr));
    stdout(&output)
}

/// RFC 4180 records, strictly: quoted cells may hold commas, quotes (doubled) and line
/// breaks; every record ends in CRLF. Panics on anything else.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut cell) = (Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') if cell.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut cell)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "a CR not followed by LF");
                record.push(std::mem::take(&mut cell));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => {
                assert!(c != '"' && c != '\n', "a bare {c:?} in an unquoted cell");
                cell.push(c);
            }
        }
    }
    assert!(!quoted && cell.is_empty() && record.is_empty(), "the CSV does not end with CRLF");
    records
}

/// A server after the walkthrough, with a name that needs CSV quoting, its exported
/// bundle in `dir` and its public key; the server is stopped so its directory can be read.
fn walked_through(dir: &Path) -> (TestApp, String, String, String) {
    let mut app = spawn_app();
    let (_, user, _) = app.api_user();
    let other = app.create_user("Reporting, \"nightly\"");
    app.grant_groups(&other, &[]);
    let bundle = app.get("/v1/audit/export");
    bundle.expect(200);
    let file = dir.join("bundle.jsonl");
    std::fs::write(&file, &bundle.body).unwrap();
    let public_key =
        app.raw("GET", "/v1/audit/signing-key", &[], None).json()["public_key"].as_str().unwrap().to_owned();
    app.stop();
    (app, user, file.to_str().unwrap().to_owned(), public_key)
}

#[test]
fn replay_prints_the_same_json_when_piped_and_tables_or_csv_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (_app, user, bundle, public_key) = walked_through(dir.path());
    // At the head's position, so that key states are judged at its time, not now.
    let head: Value =
        serde_json::from_str(&quietly(&["replay", &bundle, "--public-key", &public_key, "--format", "json"])).unwrap();
    let head = head["position"].to_string();
    let replay = |extra: &[&str]| {
        let mut args = vec!["replay", bundle.as_str(), "--public-key", public_key.as_str(), "--at", head.as_str()];
        args.extend_from_slice(extra);
        quietly(&args)
    };

    let piped = replay(&[]);
    assert_eq!(piped, replay(&["--format", "json"]), "piped output is the JSON, byte for byte");
    let json: Value = serde_json::from_str(&piped).expect("JSON");
    assert_eq!(json["position"].to_string(), head);
    assert!(piped.starts_with("{\n  \""), "indented as before: {piped}");

    let text = replay(&["--format", "text"]);
    for heading in [
        "Permission view at log position ",
        "Users (",
        "USER  ",
        "EVENT ACCESS",
        "Roles (",
        "HOLDERS",
        "Event groups (",
    ] {
        assert!(text.contains(heading), "no {heading:?} in:\n{text}");
    }
    let users = json["users"].as_array().unwrap();
    for listed in users {
        assert!(text.contains(listed["id"].as_str().unwrap()), "{listed} missing from:\n{text}");
    }

    let csv = parse_csv(&replay(&["--format", "csv"]));
    assert_eq!(
        csv[0],
        ["user_id", "name", "enabled", "role_ids", "role_descriptions", "functions", "event_access", "keys"]
    );
    assert_eq!(csv.len() - 1, users.len(), "one row per user");
    let row = csv.iter().find(|row| row[0] == user).expect("the API user has a row");
    assert_eq!(row[1], "Attendance app");
    assert!(row[5].split(';').any(|function| function == "api.attendees.read"), "{row:?}");
    assert!(row[7].ends_with(":active"), "{row:?}");
}

#[test]
fn access_report_prints_the_same_json_when_piped_and_a_table_or_csv_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (app, user, _, _) = walked_through(dir.path());
    let data_dir = app.data_dir().to_str().unwrap().to_owned();
    let report = |extra: &[&str]| {
        let mut args = vec!["access-report", "--data-dir", data_dir.as_str()];
        args.extend_from_slice(extra);
        quietly(&args)
    };
    // The report's time is now, so two runs differ there only.
    let without_time = |text: &str| {
        let mut json: Value = serde_json::from_str(text).expect("JSON");
        json.as_object_mut().unwrap().remove("generated_at");
        // The unused access window ends now too.
        json["unused"].as_object_mut().unwrap().remove("since");
        json
    };
    let piped = report(&[]);
    assert_eq!(without_time(&piped), without_time(&report(&["--format", "json"])));
    assert!(piped.ends_with("}\n"));

    let text = report(&["--format", "text"]);
    for heading in ["Access review at", "USER  ", "NAME", "ROLES", "KEY STATE", "LAST USED", "FLAGS"] {
        assert!(text.contains(heading), "no {heading:?} in:\n{text}");
    }
    let line = text.lines().find(|line| line.starts_with(&user)).expect("a line for the API user");
    assert!(line.contains("Attendance app") && line.contains("active"), "{line}");

    let csv = parse_csv(&report(&["--format", "csv"]));
    assert_eq!(csv[0][0], "user_id");
    assert!(csv.iter().any(|row| row[1] == "Reporting, \"nightly\""), "a quoted name reads back: {csv:?}");
}

#[test]
fn verify_and_verify_log_keep_their_text_and_say_the_same_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _, bundle, public_key) = walked_through(dir.path());
    let data_dir = app.data_dir().to_str().unwrap().to_owned();

    let text = quietly(&["verify-log", "--data-dir", &data_dir]);
    assert!(text.starts_with("valid: "), "{text}");
    let json: Value =
        serde_json::from_str(&quietly(&["verify-log", "--data-dir", &data_dir, "--format", "json"])).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["verified"], json["size"]);
    assert!(text.contains(&format!("valid: {} records, head {}", json["size"], json["head_hash"].as_str().unwrap())));

    let text = quietly(&["verify", &bundle, "--public-key", &public_key]);
    assert!(text.starts_with("valid: "), "{text}");
    let json: Value =
        serde_json::from_str(&quietly(&["verify", &bundle, "--public-key", &public_key, "--format", "json"])).unwrap();
    assert_eq!(json["verdict"], "valid");
    assert_eq!(json["public_key"], public_key.as_str());
    assert!(text.contains(&format!("valid: {} records", json["records"])), "{text}");

    // Unpinned: exit 3 in either format.
    let output = run(&["verify", &bundle, "--format", "json"]);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(serde_json::from_str::<Value>(&stdout(&output)).unwrap()["verdict"], "unpinned");

    // Invalid: exit 1, with the line named.
    let mut lines: Vec<String> = std::fs::read_to_string(&bundle).unwrap().lines().map(str::to_owned).collect();
    lines[3] = lines[3].replacen("\"v\":1", "\"v\":2", 1);
    let tampered = dir.path().join("tampered.jsonl");
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let output = run(&["verify", tampered.to_str().unwrap(), "--public-key", &public_key, "--format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let json: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["verdict"], "invalid");
    assert_eq!(json["failure"]["line"], 4);
}

#[test]
fn on_a_terminal_replay_prints_tables_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (_app, _, bundle, public_key) = walked_through(dir.path());
    // `script` (util-linux) runs the command on a pseudo-terminal.
    let command = format!("{BINARY} replay {bundle} --public-key {public_key}");
    let output = Command::new("script").args(["-qefc", &command, "/dev/null"]).output().expect("run script");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Users (") && text.contains("USER  "), "tables on a terminal:\n{text}");
    assert!(!text.contains("\"users\""), "not JSON on a terminal:\n{text}");
}
