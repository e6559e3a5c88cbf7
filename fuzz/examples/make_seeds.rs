//! Writes the seed inputs under fuzz/seeds/, which are checked in:
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --target-dir fuzz/target/seeds --example make_seeds
//! ```
//!
//! The record seeds are real records made by `keyledger::log::record::encode`: one of each
//! event type, chained, each in a file of its own and all together as a log of one record
//! a line. Event ids and keys are random, so every run writes different (equally valid)
//! seeds. The key-parser seeds are one well-formed example of each thing it parses.

use std::fs;
use std::path::Path;

use keyledger::domain::{Actor, Event, EventId, FunctionId, GroupId, KeyId, KeySecret, RoleId, Timestamp, UserId};
use keyledger::log::record::{self, ChainHash, Envelope};

fn main() -> std::io::Result<()> {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    write_record_seeds(&seeds.join("record_decoder"))?;
    write_key_parser_seeds(&seeds.join("key_parser"))?;
    println!("seeds written under {}", seeds.display());
    Ok(())
}

fn write_record_seeds(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut rng = rand::rng();
    let admin = UserId::generate(&mut rng);
    let user = UserId::generate(&mut rng);
    let role = RoleId::generate(&mut rng);
    let parent = GroupId::generate(&mut rng);
    let group = GroupId::generate(&mut rng);
    let event = EventId::parse("conf-2027.berlin:day_1~a").map_err(std::io::Error::other)?;
    let (old_key, new_key) = (KeyId::generate(&mut rng), KeyId::generate(&mut rng));
    let at = Timestamp::from_unix_millis(1_800_000_000_000);

    let events = [
        Event::UserCreated { user_id: admin.clone(), name: "Admin".into(), email: None },
        Event::RoleCreated { role_id: role.clone(), description: "API Access \"quoted\" é".into() },
        Event::FunctionActivated { role_id: role.clone(), function: FunctionId::USERS_READ },
        Event::FunctionDeactivated { role_id: role.clone(), function: FunctionId::USERS_READ },
        Event::UserCreated { user_id: user.clone(), name: "Ticket shop".into(), email: Some("api@example.com".into()) },
        Event::RoleAssigned { user_id: user.clone(), role_id: role.clone() },
        Event::RoleUnassigned { user_id: user.clone(), role_id: role.clone() },
        Event::EventGroupCreated { group_id: parent.clone(), name: "Europe".into(), parent_id: None },
        Event::EventGroupCreated { group_id: group.clone(), name: "Germany".into(), parent_id: Some(parent.clone()) },
        Event::EventAddedToGroup { group_id: group.clone(), event_id: event.clone() },
        Event::EventRemovedFromGroup { group_id: group.clone(), event_id: event },
        Event::EventAccessSet { user_id: user.clone(), all_events: false, groups: vec![parent, group] },
        Event::KeyGenerated {
            user_id: user.clone(),
            key_id: old_key.clone(),
            key_hash: KeySecret::generate(&mut rng).hash(),
            expires_at: None,
            replaced_key_id: None,
            replaced_key_valid_until: None,
        },
        Event::KeyGenerated {
            user_id: user.clone(),
            key_id: new_key.clone(),
            key_hash: KeySecret::generate(&mut rng).hash(),
            expires_at: Some(at.plus_seconds(86_400)),
            replaced_key_id: Some(old_key),
            replaced_key_valid_until: Some(at.plus_seconds(3_600)),
        },
        Event::KeyRevoked { user_id: user.clone(), key_id: new_key },
        Event::UserDisabled { user_id: user.clone() },
        Event::UserEnabled { user_id: user },
    ];

    let mut prev_hash = ChainHash::GENESIS;
    let mut log = Vec::new();
    for (event, seq) in events.iter().zip(1..) {
        let actor = if seq == 1 { Actor::System } else { Actor::User(admin.clone()) };
        let envelope = Envelope { seq, at: Timestamp::from_unix_millis(at.unix_millis() + 1000 * seq as i64), actor };
        let (stored, hash) = record::encode(&envelope, event, prev_hash);
        prev_hash = hash;
        fs::write(dir.join(format!("{seq:02}-{}", event.type_name())), &stored.bytes)?;
        log.extend_from_slice(&stored.bytes);
        log.push(b'\n');
    }
    log.pop();
    fs::write(dir.join("log-of-every-event-type"), log)
}

fn write_key_parser_seeds(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut rng = rand::rng();
    let samples: [(&str, String); 12] = [
        ("key", KeySecret::generate(&mut rng).expose().to_owned()),
        ("role-id", RoleId::generate(&mut rng).to_string()),
        ("user-id", UserId::generate(&mut rng).to_string()),
        ("group-id", GroupId::generate(&mut rng).to_string()),
        ("key-id", KeyId::generate(&mut rng).to_string()),
        ("event-id", "conf-2027.berlin:day_1~a".to_owned()),
        ("timestamp-utc", "2027-01-31T17:00:00.250Z".to_owned()),
        ("timestamp-offset", "2027-03-01T09:30:15+01:00".to_owned()),
        ("function-id", FunctionId::KEYS_MANAGE.as_str().to_owned()),
        ("api-function-id", "api.attendees.read".to_owned()),
        ("name", "  Ticket shop (EU) ".to_owned()),
        ("email", "api@example.com".to_owned()),
    ];
    for (name, text) in samples {
        fs::write(dir.join(name), text)?;
    }
    Ok(())
}
