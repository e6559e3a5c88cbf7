//! Writes the key-parser seed inputs under fuzz/seeds/key_parser, which are checked in:
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --target-dir fuzz/target/seeds --example make_seeds
//! ```
//!
//! They are one well-formed example of each thing the parser reads; ids and keys are
//! random, so every run writes different (equally valid) seeds.
//!
//! The record decoder's seeds (fuzz/seeds/record_decoder) are kept by a test of the main
//! crate instead, from `Event::examples()`, so that a new event type cannot be left out:
//! `KEYLEDGER_UPDATE_SEEDS=1 cargo test --lib the_fuzz_seeds` adds the missing ones.

use std::fs;
use std::path::Path;

use keyledger::domain::{FunctionId, GroupId, KeyId, KeySecret, RoleId, UserId};

fn main() -> std::io::Result<()> {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    write_key_parser_seeds(&seeds.join("key_parser"))?;
    println!("seeds written under {}", seeds.display());
    Ok(())
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
