//! Fuzzes everything that parses a string a client sends: the presented API key, the
//! identifiers in paths and bodies, timestamps, function ids and free-text values.
//!
//! None of them may panic on any UTF-8 input. Beyond that, each parser is held to the
//! promise its type makes: what it accepts is exactly what it gives back, and a timestamp
//! written the way records write it reads back as the same instant.

#![no_main]

use keyledger::domain::{
    Email, EventId, FunctionId, GroupId, KEY_LEN, KeyHash, KeyId, Name, RoleId, Timestamp, UserId,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    presented_key(text);
    minted_ids(text);
    event_id(text);
    timestamp(text);
    function_id(text);
    free_text(text);
});

/// The first step of every key check: shape, checksum, then the hash that is looked up.
/// Surrounding ASCII white space is ignored (a pasted key often carries some). Two shapes
/// are accepted: a keyledger key (`kl_`, base62, checksum), hashed with blake3 as
/// presented, and a legacy key imported from the platform (32 hexadecimal characters,
/// issue #14), hashed through its SHA-256.
fn presented_key(text: &str) {
    if let Ok(hash) = KeyHash::of_presented(text) {
        let key = text.trim_ascii();
        if key.starts_with("kl_") && key.len() == KEY_LEN {
            assert!(key[3..].bytes().all(|b| b.is_ascii_alphanumeric()), "accepted a key outside base62: {text:?}");
            // The hash looked up is the blake3 hash of exactly the presented bytes.
            assert_eq!(hash.to_hex(), blake3::hash(key.as_bytes()).to_hex().to_string());
        } else {
            assert_eq!(key.len(), 32, "accepted a key of the wrong length: {text:?}");
            assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "accepted a legacy key outside hex: {text:?}");
            assert_eq!(Some(hash), KeyHash::of_legacy_key(key), "a legacy key is hashed through its SHA-256");
            assert_ne!(hash.to_hex(), blake3::hash(key.as_bytes()).to_hex().to_string());
        }
    }
}

/// Ids keyledger mints: accepted ones are kept verbatim.
fn minted_ids(text: &str) {
    let accepted = [
        RoleId::parse(text).map(|id| id.to_string()),
        UserId::parse(text).map(|id| id.to_string()),
        GroupId::parse(text).map(|id| id.to_string()),
        KeyId::parse(text).map(|id| id.to_string()),
    ];
    for id in accepted.iter().flatten() {
        assert_eq!(id, text);
    }
}

/// Platform event ids: accepted ones are kept verbatim and fit in a URL path segment.
fn event_id(text: &str) {
    if let Ok(id) = EventId::parse(text) {
        assert_eq!(id.as_str(), text);
        assert!(!text.is_empty() && text.len() <= EventId::MAX_LEN);
    }
}

/// Timestamps: records and responses write them with `Display` and read them back with
/// `parse`, so every accepted timestamp must survive that round trip, or a record that
/// holds it could not be replayed.
fn timestamp(text: &str) {
    if let Ok(at) = Timestamp::parse(text) {
        let written = at.to_string();
        assert_eq!(Timestamp::parse(&written), Ok(at), "{text:?} was written as {written:?}, which does not read back");
    }
}

/// Function ids: only catalogue entries are accepted, by their exact id.
fn function_id(text: &str) {
    if let Ok(function) = FunctionId::parse(text) {
        assert_eq!(function.as_str(), text);
    }
}

/// Names and emails: parsing is idempotent, so a stored value parses back to itself.
fn free_text(text: &str) {
    if let Ok(name) = Name::parse(text) {
        assert_eq!(Name::parse(name.as_str()), Ok(name.clone()));
        let _ = name.folded();
    }
    if let Ok(email) = Email::parse(text) {
        assert_eq!(Email::parse(email.as_str()), Ok(email));
    }
}
