//! Bundles: an export verifies, and every kind of tampering the issue names is caught and
//! located, over thousands of random mutations, both of a bundle built here and of one a
//! real server exported after the README's walkthrough (`tests/data/walkthrough-bundle.jsonl`,
//! made by `scripts/walkthrough-bundle.sh`; it must keep verifying, so a change that
//! would break bundles exported by earlier builds fails here).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::checkpoint::{CheckpointStore, Signer};
use crate::domain::{Actor, Command, EventId, FunctionId, GroupId, KeyId, KeySecret, Name, RoleId, UserId};
use crate::ledger::{CheckpointPolicy, Ledger, Policies, Request};
use crate::log::{ChainHash, ChainVerifier, MemoryLog, record};
use crate::merkle::Frontier;

struct Fixture {
    bundle: Vec<u8>,
    key: PublicKey,
    checkpoints: Vec<Checkpoint>,
}

/// The bundle a server exported after the README's walkthrough, with a checkpoint every 8
/// records.
fn walkthrough() -> Fixture {
    let bundle = include_bytes!("../tests/data/walkthrough-bundle.jsonl").to_vec();
    let text = std::str::from_utf8(&bundle).unwrap();
    let key = PublicKey::parse_line(text.lines().next().unwrap()).unwrap();
    let checkpoints = text
        .lines()
        .filter(|line| line.starts_with(r#"{"kind":"checkpoint""#))
        .map(|line| Checkpoint::parse_line(line).unwrap())
        .collect();
    Fixture { bundle, key, checkpoints }
}

/// A bootstrapped ledger over a memory log that signs a checkpoint every `every` records,
/// and the request of its administrator. The signing key lives in `dir`.
struct SignedLedger {
    ledger: Ledger<MemoryLog>,
    key: PublicKey,
    key_path: std::path::PathBuf,
    admin: UserId,
    by_admin: Request,
    dir: tempfile::TempDir,
}

fn signed_ledger(every: u64) -> SignedLedger {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("signing-key");
    let signer = Signer::load_or_create(&key_path).unwrap();
    let key = signer.public_key();
    let store = CheckpointStore::new(dir.path().join("checkpoints.jsonl"));
    let policies = Policies { snapshots: None, checkpoints: Some(CheckpointPolicy { store, signer, every }) };
    let ledger = Ledger::open_with(MemoryLog::new(), policies).unwrap();
    let admin_secret = ledger.bootstrap().unwrap().unwrap();
    let admin = ledger.view().key(&admin_secret.hash()).unwrap().user_id().clone();
    let by_admin =
        Request { actor: Actor::User(admin.clone()), expected_version: None, credential: None, justification: None };
    SignedLedger { ledger, key, key_path, admin, by_admin, dir }
}

/// A command generating a new key, with no expiry, for `user`.
fn new_key(rng: &mut StdRng, user: &UserId, grace_seconds: Option<u64>) -> Command {
    let (key_id, key_hash) = (KeyId::generate(rng), KeySecret::generate(rng).hash());
    Command::GenerateKey { user_id: user.clone(), key_id, key_hash, expires_at: None, grace_seconds }
}

/// A ledger that ran a walkthrough like an admin's (roles, functions, users, event groups,
/// event access, keys, a rotation, a revocation), checkpointed every 7 records, exported.
fn fixture() -> Fixture {
    let SignedLedger { ledger, key, by_admin, dir, .. } = signed_ledger(7);
    let mut rng = StdRng::seed_from_u64(7);
    let role = RoleId::generate(&mut rng);
    let app = UserId::generate(&mut rng);
    let group = GroupId::generate(&mut rng);
    let commands = vec![
        Command::CreateRole { role_id: role.clone(), description: Name::parse("API Access").unwrap() },
        Command::ActivateFunctions {
            role_id: role.clone(),
            functions: ["api.attendees.read", "api.invoices.read"].map(|f| FunctionId::parse(f).unwrap()).into(),
        },
        Command::CreateUser { user_id: app.clone(), name: Name::parse("Booking app").unwrap(), email: None },
        Command::AssignRole { user_id: app.clone(), role_id: role.clone() },
        Command::CreateEventGroup { group_id: group.clone(), name: Name::parse("EMEA").unwrap(), parent_id: None },
        Command::AddEventToGroup { group_id: group.clone(), event_id: EventId::parse("ev-2027-berlin").unwrap() },
        Command::SetUserEventAccess {
            user_id: app.clone(),
            access: crate::domain::EventAccess::Groups([group].into()),
        },
        new_key(&mut rng, &app, None),
        new_key(&mut rng, &app, Some(3600)),
        Command::ActivateFunctions {
            role_id: role.clone(),
            functions: [FunctionId::parse("api.invoices.write").unwrap()].into(),
        },
        Command::DisableUser { user_id: app.clone() },
        Command::EnableUser { user_id: app.clone() },
    ];
    for command in commands {
        ledger.submit_blocking(command, by_admin.clone()).unwrap();
    }
    let last = ledger.checkpoint_blocking().unwrap();
    let checkpoints = ledger.checkpoints().unwrap();
    let mut bundle = Vec::new();
    export(ledger.log(), &key, &checkpoints, &last, &mut bundle).unwrap();
    drop(dir);
    Fixture { bundle, key, checkpoints }
}

fn lines(bundle: &[u8]) -> Vec<Vec<u8>> {
    bundle.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

fn strict(fixture: &Fixture) -> VerifyOptions {
    VerifyOptions { public_key: Some(fixture.key), trusted: fixture.checkpoints.last().cloned() }
}

#[test]
fn the_bundle_a_server_exported_after_the_walkthrough_verifies() {
    let fixture = walkthrough();
    let summary = verify(fixture.bundle.as_slice(), &strict(&fixture)).unwrap();
    assert_eq!(summary.records, 32);
    assert_eq!(summary.checkpoints, fixture.checkpoints.len());
    assert!(summary.checkpoints >= 4);
}

#[test]
fn an_exported_bundle_verifies_and_says_what_it_holds() {
    let fixture = fixture();
    let summary = verify(fixture.bundle.as_slice(), &strict(&fixture)).unwrap();
    assert!(summary.records >= 15, "{}", summary.records);
    assert_eq!(summary.last.size, summary.records);
    assert_eq!(summary.checkpoints, fixture.checkpoints.len());
    assert!(summary.checkpoints >= 3);
    // With no options, the bundle's own key is used.
    assert!(verify(fixture.bundle.as_slice(), &VerifyOptions::default()).is_ok());
    // Every earlier checkpoint is consistent with it, as a trusted one.
    for trusted in &fixture.checkpoints {
        let options = VerifyOptions { public_key: None, trusted: Some(trusted.clone()) };
        assert!(verify(fixture.bundle.as_slice(), &options).is_ok(), "trusted size {}", trusted.size);
    }
    let text = String::from_utf8(fixture.bundle.clone()).unwrap();
    assert!(text.starts_with(r#"{"kind":"public_key","algorithm":"ed25519","key":""#));
    assert!(text.lines().last().unwrap().starts_with(r#"{"kind":"checkpoint""#));
}

#[test]
fn the_view_at_a_past_position_comes_from_the_records_before_it() {
    let fixture = fixture();
    let (_, at_three) =
        verify_until(fixture.bundle.as_slice(), &strict(&fixture), |position, _| position.seq > 3).unwrap();
    assert_eq!(at_three.head(), 3);
}

/// One way of tampering with a bundle, and the line verification must fail on (`None`
/// where the failure can only show further on).
fn mutate(rng: &mut StdRng, fixture: &Fixture) -> (String, Vec<u8>, Option<usize>) {
    let mut lines = lines(&fixture.bundle);
    let records: Vec<usize> = (1..lines.len()).filter(|&i| !lines[i].starts_with(br#"{"kind""#)).collect();
    let checkpoint_lines: Vec<usize> = (1..lines.len()).filter(|&i| lines[i].starts_with(br#"{"kind""#)).collect();
    match rng.random_range(0..7) {
        0 => {
            let mut bytes = fixture.bundle.clone();
            let at = rng.random_range(0..bytes.len());
            let bit = 1u8 << rng.random_range(0..8);
            bytes[at] ^= bit;
            let line = fixture.bundle[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            (format!("flip bit {bit:#x} of byte {at}"), bytes, Some(line))
        }
        1 => {
            let index = records[rng.random_range(0..records.len())];
            lines.remove(index);
            (format!("delete line {}", index + 1), lines.concat(), Some(index + 1))
        }
        2 => {
            let a = records[rng.random_range(0..records.len())];
            let b = loop {
                let b = records[rng.random_range(0..records.len())];
                if b != a {
                    break b;
                }
            };
            lines.swap(a, b);
            (format!("swap lines {} and {}", a + 1, b + 1), lines.concat(), Some(a.min(b) + 1))
        }
        3 => {
            let cut = rng.random_range(0..fixture.bundle.len());
            (format!("truncate to {cut} bytes"), fixture.bundle[..cut].to_vec(), None)
        }
        4 => {
            let index = records[rng.random_range(0..records.len())];
            let name = format!("insert a forged record at line {} and re-chain the rest", index + 1);
            (name, forge(&lines, index), None)
        }
        5 => {
            let index = checkpoint_lines[rng.random_range(0..checkpoint_lines.len())];
            let text = std::str::from_utf8(&lines[index]).unwrap().trim_end();
            let mut checkpoint = Checkpoint::parse_line(text).unwrap();
            match rng.random_range(0..5) {
                0 => checkpoint.size += 1,
                1 => checkpoint.root = merkle::leaf_hash(b"forged"),
                2 => checkpoint.time = crate::domain::Timestamp::from_unix_millis(checkpoint.time.unix_millis() + 1),
                3 => checkpoint.view = merkle::leaf_hash(b"forged"),
                _ => {
                    let mut signature = checkpoint.signature.to_bytes();
                    signature[rng.random_range(0..64)] ^= 1;
                    checkpoint.signature = ed25519_dalek::Signature::from_bytes(&signature);
                }
            }
            lines[index] = format!("{}\n", checkpoint.to_line()).into_bytes();
            (format!("alter the checkpoint at line {}", index + 1), lines.concat(), Some(index + 1))
        }
        _ => {
            // The final checkpoint: without it, records are left uncovered. (Dropping an
            // earlier one leaves a valid bundle with fewer checkpoints: the history is
            // the same, and the final checkpoint still signs all of it.)
            let index = lines.len() - 1;
            lines.remove(index);
            (format!("delete the final checkpoint at line {}", index + 1), lines.concat(), Some(index + 1))
        }
    }
}

/// Inserts a record before line `index` and rewrites every record after it with the next
/// sequence number and a recomputed chain, so that every hash and link is right.
fn forge(lines: &[Vec<u8>], index: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = ChainHash::GENESIS;
    let mut seq = 0;
    for (i, line) in lines.iter().enumerate() {
        let is_record = i > 0 && !line.starts_with(br#"{"kind""#);
        if !is_record {
            out.extend_from_slice(line);
            continue;
        }
        let mut decoded = vec![record::decode(&line[..line.len() - 1]).unwrap()];
        if i == index {
            let mut forged = decoded[0].clone();
            forged.event = crate::domain::Event::UserEnabled { user_id: UserId::generate(&mut rand::rng()) };
            decoded.insert(0, forged);
        }
        for record in decoded {
            seq += 1;
            let envelope = record::Envelope {
                seq,
                at: record.at,
                actor: record.actor.clone(),
                justification: record.justification.clone(),
            };
            let (stored, hash) = record::encode(&envelope, &record.event, prev);
            prev = hash;
            out.extend_from_slice(&stored.bytes);
            out.push(b'\n');
        }
    }
    out
}

#[test]
fn every_mutation_of_a_bundle_is_caught_and_located() {
    assert_every_mutation_is_caught(&fixture(), 2027);
}

#[test]
fn every_mutation_of_the_walkthrough_bundle_is_caught_and_located() {
    assert_every_mutation_is_caught(&walkthrough(), 2028);
}

fn assert_every_mutation_is_caught(fixture: &Fixture, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let cases = std::env::var("KEYLEDGER_BUNDLE_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(3000);
    for case in 0..cases {
        let (mutation, bundle, expected_line) = mutate(&mut rng, fixture);
        if bundle == fixture.bundle {
            continue;
        }
        let failure = match verify(bundle.as_slice(), &strict(fixture)) {
            Ok(_) => panic!("case {case}: `{mutation}` was not caught"),
            Err(failure) => failure,
        };
        assert!(failure.line >= 1 && !failure.place.is_empty() && !failure.reason.is_empty());
        if let Some(line) = expected_line {
            assert_eq!(failure.line, line, "case {case}: `{mutation}` was reported as {failure}");
        }
    }
}

#[test]
fn without_a_trusted_checkpoint_only_a_cut_at_a_checkpoint_passes_and_a_trusted_one_catches_it() {
    let fixture = walkthrough();
    let lines = lines(&fixture.bundle);
    let middle = lines.iter().position(|line| line.starts_with(br#"{"kind":"checkpoint""#)).unwrap();
    let cut = lines[..=middle].concat();
    // A shorter bundle ending at a signed checkpoint is a valid, shorter history...
    assert!(verify(cut.as_slice(), &VerifyOptions { public_key: Some(fixture.key), trusted: None }).is_ok());
    // ...which a checkpoint the reviewer kept from later shows to be cut short.
    let failure = verify(cut.as_slice(), &strict(&fixture)).unwrap_err();
    assert!(failure.reason.contains("cut short"), "{failure}");
}

#[test]
fn a_history_re_signed_with_another_key_fails_against_the_real_key() {
    let fixture = walkthrough();
    let forger = Signer::generate();
    let mut out = format!("{}\n", forger.public_key().to_line()).into_bytes();
    for line in lines(&fixture.bundle).iter().skip(1) {
        if line.starts_with(br#"{"kind":"checkpoint""#) {
            let original = Checkpoint::parse_line(std::str::from_utf8(line).unwrap().trim_end()).unwrap();
            let forged = forger.sign(original.size, original.root, original.time, original.view);
            out.extend_from_slice(format!("{}\n", forged.to_line()).as_bytes());
        } else {
            out.extend_from_slice(line);
        }
    }
    assert!(verify(out.as_slice(), &VerifyOptions::default()).is_ok(), "integrity alone holds");
    let failure = verify(out.as_slice(), &VerifyOptions { public_key: Some(fixture.key), trusted: None }).unwrap_err();
    assert_eq!((failure.line, failure.place.as_str()), (1, "public key"));
}

/// A history in which a user manager assigned itself the Administrator role: every record
/// intact and chained, every checkpoint signed by the service's own key, yet not legitimate.
#[test]
fn a_forged_record_whose_actor_lacked_the_authority_is_named_even_when_signed_by_the_real_key() {
    let SignedLedger { ledger, key, key_path, admin, by_admin, dir: _dir } = signed_ledger(1000);
    let admin_role = ledger.view().user(&admin).unwrap().roles().iter().next().unwrap().clone();
    let mut rng = StdRng::seed_from_u64(9);
    let (deputy, role) = (UserId::generate(&mut rng), RoleId::generate(&mut rng));
    let commands = [
        Command::CreateRole { role_id: role.clone(), description: Name::parse("User managers").unwrap() },
        Command::ActivateFunctions { role_id: role.clone(), functions: [FunctionId::USERS_MANAGE].into() },
        Command::CreateUser { user_id: deputy.clone(), name: Name::parse("Deputy").unwrap(), email: None },
        Command::AssignRole { user_id: deputy.clone(), role_id: role },
        new_key(&mut rng, &deputy, None),
    ];
    for command in commands {
        ledger.submit_blocking(command, by_admin.clone()).unwrap();
    }
    let last = ledger.checkpoint_blocking().unwrap();
    let mut bundle = Vec::new();
    export(ledger.log(), &key, &ledger.checkpoints().unwrap(), &last, &mut bundle).unwrap();
    assert!(verify(bundle.as_slice(), &VerifyOptions { public_key: Some(key), trusted: None }).is_ok());

    // The forger has the data directory, signing key included: it chains a record of the
    // deputy assigning itself the Administrator role, and signs a checkpoint over it.
    let (mut verifier, mut frontier, mut state) = (ChainVerifier::default(), Frontier::default(), State::default());
    let mut prev_hash = ChainHash::GENESIS;
    for stored in ledger.log().read(1, usize::MAX).unwrap() {
        let decoded = verifier.verify_and_decode_next(&stored).unwrap();
        frontier.push(merkle::leaf_hash(&stored.bytes), |_, _| {});
        state.apply(Position { seq: decoded.seq, at: decoded.at }, &decoded.event);
        prev_hash = decoded.hash;
    }
    let seq = state.head() + 1;
    let at = last.time;
    let envelope = record::Envelope { seq, at, actor: Actor::User(deputy.clone()), justification: None };
    let forged_event = crate::domain::Event::RoleAssigned { user_id: deputy, role_id: admin_role };
    let (forged, _) = record::encode(&envelope, &forged_event, prev_hash);
    frontier.push(merkle::leaf_hash(&forged.bytes), |_, _| {});
    state.apply(Position { seq, at }, &forged_event);
    let signer = Signer::load(&key_path).unwrap();
    let checkpoint = signer.sign(seq, frontier.root(), at, TreeHash::from_bytes(state.fingerprint()));
    let forged_line = lines(&bundle).len() + 1;
    bundle.extend_from_slice(&forged.bytes);
    bundle.push(b'\n');
    bundle.extend_from_slice(format!("{}\n", checkpoint.to_line()).as_bytes());

    let failure = verify(bundle.as_slice(), &VerifyOptions { public_key: Some(key), trusted: None }).unwrap_err();
    assert_eq!((failure.line, failure.place.clone()), (forged_line, format!("record {seq}")), "{failure}");
    assert!(failure.reason.contains("RoleAssigned") && failure.reason.contains("not authorised"), "{failure}");
}

/// Records are decoded and hashed a batch ahead on another thread: a record edited at
/// either side of the boundary between two batches, or two edited in different batches,
/// is named at its own line.
#[test]
fn a_record_tampered_with_at_a_read_ahead_boundary_is_named_at_its_line() {
    let size = 2 * READ_AHEAD as u64 + 10;
    let mut prev = ChainHash::GENESIS;
    let records: Vec<StoredRecord> = (1..=size)
        .map(|seq| {
            let at = Timestamp::from_unix_millis(1_800_000_000_000);
            let envelope = record::Envelope { seq, at, actor: Actor::System, justification: None };
            let user_id = UserId::parse(&format!("usr_{seq:016x}")).unwrap();
            let event = crate::domain::Event::UserCreated { user_id, name: format!("User {seq}"), email: None };
            let (stored, hash) = record::encode(&envelope, &event, prev);
            prev = hash;
            stored
        })
        .collect();
    let log = MemoryLog::new();
    log.append(0, &records).unwrap();
    let ledger = Ledger::open(log).unwrap();
    let signer = Signer::generate();
    let root = merkle::root(&crate::log::Tree(ledger.log()), size).unwrap();
    let view = TreeHash::from_bytes(ledger.view().fingerprint());
    let last = signer.sign(size, root, Timestamp::from_unix_millis(1_800_000_000_000), view);
    let options = VerifyOptions { public_key: Some(signer.public_key()), trusted: Some(last.clone()) };
    let mut bundle = Vec::new();
    export(ledger.log(), &signer.public_key(), &[], &last, &mut bundle).unwrap();
    let summary = verify(bundle.as_slice(), &options).unwrap();
    assert_eq!(summary.records, size);

    let chunk = READ_AHEAD as u64;
    for seq in [chunk - 1, chunk, chunk + 1, 2 * chunk, 2 * chunk + 1, size] {
        let mut edited = lines(&bundle);
        // The public key is line 1, so record `seq` is line `seq + 1`.
        for at in [seq, seq + 2, seq + chunk].into_iter().filter(|&at| at <= size) {
            let text = String::from_utf8(edited[at as usize].clone()).unwrap();
            edited[at as usize] = text.replace(&format!("\"User {at}\""), "\"User X\"").into_bytes();
        }
        let failure = verify(edited.concat().as_slice(), &options).unwrap_err();
        assert_eq!((failure.line, failure.place.as_str()), (seq as usize + 1, format!("record {seq}").as_str()));
        assert!(failure.reason.contains("hash does not match"), "{failure}");
    }
}
