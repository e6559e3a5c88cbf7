//! Provable history over the real API: signed checkpoints, inclusion and consistency
//! proofs checked by a second, minimal RFC 6962 implementation written here from §2.1
//! alone (with blake3), bundles exported over HTTP and by the CLI verified offline, and a
//! service that refuses to start on a log cut short behind its checkpoints.

use std::path::Path;
use std::process::Command;

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::Value;

use crate::helpers::{BINARY, TestApp, spawn_app, spawn_app_with};

// ---------------------------------------------------------------------------------------
// RFC 6962 §2.1, with blake3: the test's own implementation.
// ---------------------------------------------------------------------------------------

type Hash = [u8; 32];

fn leaf(bytes: &[u8]) -> Hash {
    let mut input = vec![0u8];
    input.extend_from_slice(bytes);
    *blake3::hash(&input).as_bytes()
}

fn node(left: &Hash, right: &Hash) -> Hash {
    let mut input = vec![1u8];
    input.extend_from_slice(left);
    input.extend_from_slice(right);
    *blake3::hash(&input).as_bytes()
}

/// k: the largest power of two smaller than n.
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]).
fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => *blake3::hash(b"").as_bytes(),
        1 => leaves[0],
        n => node(&mth(&leaves[..split(n)]), &mth(&leaves[split(n)..])),
    }
}

/// PATH(m, D[n]).
fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return vec![];
    }
    let k = split(n);
    let (mut sub, sibling) =
        if m < k { (path(m, &leaves[..k]), mth(&leaves[k..])) } else { (path(m - k, &leaves[k..]), mth(&leaves[..k])) };
    sub.push(sibling);
    sub
}

/// SUBPROOF(m, D[n], b).
fn subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if b { vec![] } else { vec![mth(leaves)] };
    }
    let k = split(n);
    let (mut sub, other) = if m <= k {
        (subproof(m, &leaves[..k], b), mth(&leaves[k..]))
    } else {
        (subproof(m - k, &leaves[k..], false), mth(&leaves[..k]))
    };
    sub.push(other);
    sub
}

/// The root an audit path leads to, folding it the way PATH was built.
fn root_from_path(m: usize, n: usize, leaf: Hash, proof: &[Hash]) -> Option<Hash> {
    if n == 1 {
        return proof.is_empty().then_some(leaf);
    }
    let (sibling, rest) = proof.split_last()?;
    let k = split(n);
    Some(if m < k {
        node(&root_from_path(m, k, leaf, rest)?, sibling)
    } else {
        node(sibling, &root_from_path(m - k, n - k, leaf, rest)?)
    })
}

fn unhex<const N: usize>(text: &str) -> [u8; N] {
    let bytes: Vec<u8> = (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect();
    bytes.try_into().unwrap_or_else(|_| panic!("{text} is not {N} bytes of hex"))
}

fn hashes(value: &Value) -> Vec<Hash> {
    value.as_array().expect("an array of hashes").iter().map(|h| unhex(h.as_str().unwrap())).collect()
}

/// Checks a checkpoint's signature from its documented message, with the public key.
fn assert_signed(checkpoint: &Value, public_key: &str) {
    let key = VerifyingKey::from_bytes(&unhex(public_key)).unwrap();
    let message = format!(
        "keyledger checkpoint v1\n{}\n{}\n{}\n{}\n{}\n",
        checkpoint["origin"].as_str().unwrap(),
        checkpoint["size"],
        checkpoint["root"].as_str().unwrap(),
        checkpoint["time"].as_str().unwrap(),
        checkpoint["view"].as_str().unwrap()
    );
    let signature = Signature::from_bytes(&unhex(checkpoint["signature"].as_str().unwrap()));
    key.verify(message.as_bytes(), &signature).expect("the checkpoint's signature verifies");
}

// ---------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------

/// The leaves of a bundle's records: every line that is not a public key or checkpoint.
fn record_leaves(bundle: &str) -> Vec<Hash> {
    bundle.lines().filter(|line| !line.starts_with(r#"{"kind""#)).map(|line| leaf(line.as_bytes())).collect()
}

fn signing_key(app: &TestApp) -> String {
    // Public: no key needed.
    let reply = app.raw("GET", "/v1/audit/signing-key", &[], None);
    reply.expect(200);
    assert_eq!(reply.json()["algorithm"], "ed25519");
    reply.json()["public_key"].as_str().unwrap().to_owned()
}

fn run(args: &[&str]) -> (bool, String) {
    let output = Command::new(BINARY).args(args).output().expect("run keyledger");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------

#[test]
fn inclusion_and_consistency_proofs_verify_against_signed_checkpoints_by_an_independent_implementation() {
    let app = spawn_app();
    let public_key = signing_key(&app);
    let (role, user, _) = app.api_user();
    let old = app.get("/v1/audit/checkpoint");
    old.expect(200);
    let old = old.json();
    assert_signed(&old, &public_key);
    // More history: a role change, a rotation and an access change.
    app.activate(&role, &["api.invoices.write"]);
    app.generate_key(&user, &serde_json::json!({"grace_seconds": 60}));
    let emea = app.create_group("EMEA", None);
    app.grant_groups(&user, &[&emea]);
    let new = app.get("/v1/audit/checkpoint");
    new.expect(200);
    let new = new.json();
    assert_signed(&new, &public_key);
    let (m, n) = (old["size"].as_u64().unwrap() as usize, new["size"].as_u64().unwrap() as usize);
    assert!(m < n);

    // The records as stored, from the export, give the signed roots.
    let bundle = app.get("/v1/audit/export");
    bundle.expect(200);
    let leaves = record_leaves(&bundle.body);
    assert_eq!(leaves.len(), n);
    assert_eq!(mth(&leaves[..m]), unhex::<32>(old["root"].as_str().unwrap()));
    assert_eq!(mth(&leaves), unhex::<32>(new["root"].as_str().unwrap()));

    for seq in [1, 2, m / 2 + 1, m, m + 1, n - 1, n] {
        let proof = app.get(&format!("/v1/audit/proofs/inclusion?seq={seq}&size={n}"));
        proof.expect(200);
        let proof = proof.json();
        assert_eq!(proof["leaf_index"], seq - 1);
        assert_eq!(unhex::<32>(proof["leaf_hash"].as_str().unwrap()), leaves[seq - 1]);
        let audit_path = hashes(&proof["proof"]);
        assert_eq!(audit_path, path(seq - 1, &leaves), "PATH({}, D[{n}])", seq - 1);
        let root = root_from_path(seq - 1, n, leaves[seq - 1], &audit_path).expect("the path has the right length");
        assert_eq!(root, unhex::<32>(new["root"].as_str().unwrap()), "record {seq} leads to the signed root");
    }

    let proof = app.get(&format!("/v1/audit/proofs/consistency?from={m}&to={n}"));
    proof.expect(200);
    let proof = proof.json();
    assert_eq!(proof["from_root"], old["root"]);
    assert_eq!(proof["to_root"], new["root"]);
    assert_eq!(hashes(&proof["proof"]), subproof(m, &leaves, true), "PROOF({m}, D[{n}])");
}

#[test]
fn a_bundle_exported_after_the_walkthrough_verifies_offline_and_a_changed_byte_is_named() {
    let mut app = spawn_app();
    let (_, user, _) = app.api_user();
    let dir = tempfile::tempdir().unwrap();
    let trusted = app.get("/v1/audit/checkpoint");
    trusted.expect(200);
    let trusted_file = write(dir.path(), "trusted.json", &trusted.body);
    app.generate_key(&user, &serde_json::json!({}));
    let public_key = signing_key(&app);
    let over_http = app.get("/v1/audit/export");
    over_http.expect(200);
    assert_eq!(over_http.header("content-type"), Some("application/x-ndjson"));
    let bundle = write(dir.path(), "bundle.jsonl", &over_http.body);

    let (ok, output) = run(&["verify", &bundle, "--public-key", &public_key, "--trusted-checkpoint", &trusted_file]);
    assert!(ok, "{output}");
    assert!(output.contains("valid:"), "{output}");

    // One changed character in record 3 (line 4): named, and the exit status says so.
    let mut lines: Vec<String> = over_http.body.lines().map(str::to_owned).collect();
    lines[3] = lines[3].replacen("\"v\":1", "\"v\":2", 1);
    let tampered = write(dir.path(), "tampered.jsonl", &(lines.join("\n") + "\n"));
    let (ok, output) = run(&["verify", &tampered, "--public-key", &public_key]);
    assert!(!ok, "{output}");
    assert!(output.contains("line 4 (record 3)"), "{output}");

    // Another key: integrity holds, authorship does not.
    let other_key: String = ed25519_dalek::SigningKey::from_bytes(&[7; 32])
        .verifying_key()
        .as_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let (ok, output) = run(&["verify", &bundle, "--public-key", &other_key]);
    assert!(!ok && output.contains("public key"), "{output}");

    // The CLI exports the same records from the stopped service's data directory.
    app.stop();
    let data_dir = app.data_dir().to_str().unwrap().to_owned();
    let offline = dir.path().join("offline.jsonl");
    let (ok, output) = run(&["export", "--data-dir", &data_dir, "--out", offline.to_str().unwrap()]);
    assert!(ok, "{output}");
    let (ok, output) =
        run(&["verify", offline.to_str().unwrap(), "--public-key", &public_key, "--trusted-checkpoint", &trusted_file]);
    assert!(ok, "{output}");
    let records = |text: &str| -> Vec<String> {
        text.lines().filter(|line| !line.starts_with(r#"{"kind""#)).map(str::to_owned).collect()
    };
    // The same history, and what the graceful stop appended after it (the key usage).
    let (offline_records, http_records) =
        (records(&std::fs::read_to_string(&offline).unwrap()), records(&over_http.body));
    assert!(offline_records.starts_with(&http_records), "the offline export extends the one over HTTP");
    let (ok, printed) = run(&["signing-key", "--data-dir", &data_dir]);
    assert!(ok && printed.trim() == public_key, "{printed}");
}

#[test]
fn proofs_and_checkpoints_that_do_not_exist_are_clear_4xx() {
    let app = spawn_app();
    let size = app.get("/v1/audit/checkpoint").json()["size"].as_u64().unwrap();
    for path in [
        "/v1/audit/proofs/inclusion?seq=0".to_owned(),
        format!("/v1/audit/proofs/inclusion?seq={}", size + 1),
        format!("/v1/audit/proofs/inclusion?seq=1&size={}", size + 1),
        "/v1/audit/proofs/inclusion?seq=3&size=2".to_owned(),
        "/v1/audit/proofs/consistency?from=0".to_owned(),
        "/v1/audit/proofs/consistency?from=3&to=2".to_owned(),
        format!("/v1/audit/proofs/consistency?from=1&to={}", size + 1),
    ] {
        app.get(&path).expect_problem(404, "not_in_log");
    }
    app.get("/v1/audit/checkpoint?size=99999").expect_problem(404, "checkpoint_not_found");
    for path in [
        "/v1/audit/proofs/inclusion",
        "/v1/audit/proofs/inclusion?seq=abc",
        "/v1/audit/proofs/inclusion?seq=-1",
        "/v1/audit/proofs/consistency?from=1&to=18446744073709551616",
        "/v1/audit/checkpoint?size=1&extra=1",
    ] {
        app.get(path).expect_problem(400, "invalid_query");
    }
}

#[test]
fn checkpoints_are_signed_as_records_accumulate_and_listed_in_order() {
    let app = spawn_app_with(&["--checkpoint-every", "5"]);
    app.api_user();
    let listed = app.list_all("/v1/audit/checkpoints");
    let sizes: Vec<u64> = listed.iter().map(|checkpoint| checkpoint["size"].as_u64().unwrap()).collect();
    assert!(sizes.len() >= 3, "{sizes:?}");
    assert!(sizes.windows(2).all(|pair| pair[0] < pair[1]), "{sizes:?}");
    let public_key = signing_key(&app);
    for checkpoint in &listed {
        assert_signed(checkpoint, &public_key);
        let size = checkpoint["size"].as_u64().unwrap();
        let exact = app.get(&format!("/v1/audit/checkpoint?size={size}"));
        exact.expect(200);
        assert_eq!(&exact.json(), checkpoint);
    }
    // The online verification checks the records against every one of them.
    let verification = app.get("/v1/audit/verify");
    verification.expect(200);
    assert_eq!(verification.json()["valid"], true);
    assert_eq!(verification.json()["checkpoints"].as_u64(), Some(listed.len() as u64));
}

#[test]
fn a_service_whose_log_was_cut_short_behind_its_checkpoint_refuses_to_start() {
    let mut app = spawn_app();
    app.stop();
    // A copy of the data directory as it was: a backup.
    let backup = tempfile::tempdir().unwrap();
    copy_dir(app.data_dir(), backup.path());
    let mut app = app.restart();
    app.api_user();
    app.stop();
    // The backup's log with the later checkpoints: a history rolled back behind them.
    std::fs::copy(app.data_dir().join("checkpoints.jsonl"), backup.path().join("checkpoints.jsonl")).unwrap();
    let output = Command::new(BINARY)
        .args(["serve", "--data-dir", backup.path().to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not match its latest signed checkpoint"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn replaying_a_bundle_offline_gives_the_view_the_service_gives_at_every_position() {
    let app = spawn_app();
    let (role, user, _) = app.api_user();
    app.activate(&role, &["api.invoices.write"]);
    app.generate_key(&user, &serde_json::json!({"grace_seconds": 3600}));
    let dir = tempfile::tempdir().unwrap();
    let bundle = app.get("/v1/audit/export");
    bundle.expect(200);
    let file = write(dir.path(), "bundle.jsonl", &bundle.body);
    let size = record_leaves(&bundle.body).len();
    let public_key = signing_key(&app);
    for position in [1, size / 2, size - 1, size] {
        let online = app.get(&format!("/v1/audit/permissions?position={position}"));
        online.expect(200);
        let (ok, offline) = run(&["replay", &file, "--at", &position.to_string(), "--public-key", &public_key]);
        assert!(ok, "{offline}");
        let offline: Value = serde_json::from_str(&offline).expect("replay prints JSON");
        assert_eq!(offline, online.json(), "the view at position {position}");
    }
    let (ok, output) = run(&["replay", &file, "--at", "yesterday"]);
    assert!(!ok && output.contains("neither a position nor an RFC 3339 time"), "{output}");
}

/// Issue #9: `verify` without `--public-key` answered "valid", exit 0, for a history
/// signed by a key that was not the service's. Here the forged history is the attacker's
/// own keyledger's: its records say what the attacker wants (a backdoor administrator),
/// and its checkpoints verify under the key the bundle carries.
#[test]
fn an_unpinned_verify_exits_3_and_a_history_signed_by_another_key_fails_against_the_pinned_one() {
    let real = spawn_app();
    real.api_user();
    let real_key = signing_key(&real);
    let forger = spawn_app();
    forger.api_user();
    forger.user_with_functions("Backdoor", &["security.users.manage"]);
    let dir = tempfile::tempdir().unwrap();
    let real_bundle = real.get("/v1/audit/export");
    real_bundle.expect(200);
    let real_bundle = write(dir.path(), "real.jsonl", &real_bundle.body);
    let forged = forger.get("/v1/audit/export");
    forged.expect(200);
    let forged = write(dir.path(), "forged.jsonl", &forged.body);

    // Unpinned: intact, but not "valid", and the exit status says so.
    for bundle in [&real_bundle, &forged] {
        let output = Command::new(BINARY).args(["verify", bundle]).output().expect("run keyledger");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(3), "{stdout}");
        assert!(!stdout.contains("valid:"), "{stdout}");
        assert!(stdout.contains("not pinned") && stdout.contains("--public-key"), "{stdout}");
        let output = Command::new(BINARY).args(["replay", bundle]).output().expect("run keyledger");
        assert_eq!(output.status.code(), Some(3), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(output.stdout.is_empty(), "nothing is replayed: {}", String::from_utf8_lossy(&output.stdout));
    }

    // Accepting the bundle's key knowingly: exit 0, and the verdict says the signer came
    // from the bundle itself.
    let (ok, output) = run(&["verify", &forged, "--trust-bundle-key"]);
    assert!(ok, "{output}");
    assert!(output.contains("valid:") && output.contains("taken from the bundle itself"), "{output}");
    let (ok, output) = run(&["replay", &forged, "--trust-bundle-key"]);
    assert!(ok && output.contains("Backdoor") && output.contains("taken from the bundle itself"), "{output}");

    // Pinned to the real service's key: the forged history is invalid, the real one valid.
    let (ok, output) = run(&["verify", &forged, "--public-key", &real_key]);
    assert!(!ok && output.contains("INVALID") && output.contains("public key"), "{output}");
    let (ok, output) = run(&["replay", &forged, "--public-key", &real_key]);
    assert!(!ok && !output.contains("Backdoor"), "{output}");
    let (ok, output) = run(&["verify", &real_bundle, "--public-key", &real_key]);
    assert!(ok && output.contains("valid:") && !output.contains("not pinned"), "{output}");
}
