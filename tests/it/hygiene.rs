//! Secret hygiene (issue #5, item 5): after generating, rotating, checking and revoking
//! many keys, no secret appears in the data directory or in the server's debug logs.

use base64::Engine;
use serde_json::json;

use crate::helpers::spawn_app_logging_to;

/// Whether `needle` (ASCII) occurs in `haystack`; invalid UTF-8 around it does not hide it.
fn contains(haystack: &str, needle: &[u8]) -> bool {
    std::str::from_utf8(needle).is_ok_and(|needle| haystack.contains(needle))
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() { files.extend(files_under(&path)) } else { files.push(path) }
    }
    files
}

#[test]
fn no_secret_reaches_the_data_directory_or_the_debug_logs() {
    let logs = tempfile::tempdir().unwrap();
    let log_file = logs.path().join("server.log");
    let mut app = spawn_app_logging_to(&log_file);
    let (_, user, first) = app.api_user();
    let mut secrets = vec![app.admin_key.clone(), first];
    for round in 0..20 {
        let grace = if round % 2 == 0 { json!({ "grace_seconds": 60 }) } else { json!({}) };
        let key = app.generate_key(&user, &grace);
        // Checked every way a key can be presented, allowed and refused.
        app.check(&key, "api.attendees.read", Some("summit-nyc"));
        app.check(&key, "api.invoices.write", None);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(":{key}"));
        app.raw("GET", "/v1/authorize?function=api.events.read", &[("authorization", &format!("Basic {basic}"))], None);
        app.raw("GET", "/v1/roles", &[("authorization", &format!("Bearer {key}"))], None);
        secrets.push(key);
    }
    app.delete(&format!("/v1/users/{user}/key")).expect(200);
    let listing = app.get("/v1/audit/events?limit=1000").body;
    app.stop();

    let lossy = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    let log = lossy(std::fs::read(&log_file).unwrap());
    assert!(contains(&log, b"DEBUG"), "the server logged nothing at debug level: the test tests nothing");
    let mut places: Vec<(String, String)> = vec![("the audit listing".to_owned(), listing)];
    places.push(("the debug log".to_owned(), log));
    for file in files_under(app.data_dir()) {
        places.push((file.display().to_string(), lossy(std::fs::read(&file).unwrap())));
    }
    assert!(places.len() > 3, "no data files were read");
    for secret in &secrets {
        for (place, bytes) in &places {
            assert!(!contains(bytes, secret.as_bytes()), "a secret appears in {place}");
            // Nor its random part alone, in case something trimmed the prefix.
            assert!(!contains(bytes, &secret.as_bytes()[3..33]), "part of a secret appears in {place}");
        }
    }
}
