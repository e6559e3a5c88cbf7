//! The record format: how an event is written to the log, chained and verified.
//!
//! A record is one compact JSON object:
//!
//! ```text
//! {"seq":1,"type":"UserCreated","v":1,"id":"…","at":"…","actor":"system","subject":"usr_…",
//!  "data":{…},"prev_hash":"…","hash":"…"}
//! ```
//!
//! `hash` is blake3 over the record's *body*: the same bytes with the `hash` member
//! removed, which is always the last member. So the body of a stored record is its bytes
//! up to `,"hash":` plus the closing brace, and verifying a record never re-serialises
//! it. `prev_hash` is the previous record's `hash` (64 zeros for the first record), so the
//! records form a chain in which any edit, removal or reordering shows.
//!
//! Stored bytes are never rewritten. An event whose shape changes gets a new schema
//! version `v`, and [`decode`] upcasts old versions when it reads them.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::domain::{Actor, Event, Timestamp};

/// A blake3 hash in the chain.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct ChainHash([u8; 32]);

impl<'de> Deserialize<'de> for ChainHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Borrowed when the text has no escapes, which hex never has: no allocation.
        let text = <Cow<'de, str>>::deserialize(deserializer)?;
        // One hash, one spelling: lowercase only, so that no byte of a record can change
        // without changing what it says.
        crate::merkle::TreeHash::from_hex(&text)
            .map(|hash| ChainHash(*hash.as_bytes()))
            .ok_or_else(|| serde::de::Error::custom("a hash is 64 lowercase hexadecimal characters"))
    }
}

impl ChainHash {
    /// The `prev_hash` of the first record.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// The hash as 64 lowercase hexadecimal characters.
    pub fn to_hex(self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl From<ChainHash> for String {
    fn from(hash: ChainHash) -> String {
        hash.to_hex()
    }
}

/// Why a record's bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes are not a record: bad JSON, a missing or extra member.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// The `hash` member is not blake3 of the record's body.
    #[error("record {seq}: hash does not match its contents")]
    HashMismatch {
        /// The record's sequence number.
        seq: u64,
    },
    /// The record's type or schema version is unknown to this build.
    #[error("record {seq}: unknown event type {kind} version {version}")]
    UnknownEvent {
        /// The record's sequence number.
        seq: u64,
        /// The type named.
        kind: String,
        /// The version named.
        version: u32,
    },
    /// The `subject` member does not name what the event is about.
    #[error("record {seq}: subject does not match its event")]
    SubjectMismatch {
        /// The record's sequence number.
        seq: u64,
    },
}

/// A record's bytes as stored, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The record's sequence number, gapless from 1.
    pub seq: u64,
    /// The record exactly as written: one compact JSON object, no newline.
    pub bytes: Vec<u8>,
}

/// What a record says, once decoded and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's sequence number.
    pub seq: u64,
    /// A unique id for the event.
    pub id: String,
    /// When it was recorded.
    pub at: Timestamp,
    /// Who made the change.
    pub actor: Actor,
    /// The event, upcast to this build's schema.
    pub event: Event,
    /// The hash of the record before it.
    pub prev_hash: ChainHash,
    /// This record's hash.
    pub hash: ChainHash,
}

/// The envelope of a new record: everything but the event and the chain.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The sequence number it will have.
    pub seq: u64,
    /// When it is recorded.
    pub at: Timestamp,
    /// Who made the change.
    pub actor: Actor,
}

#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    v: u32,
    id: &'a str,
    at: Timestamp,
    actor: &'a Actor,
    subject: &'a str,
    data: serde_json::Value,
    prev_hash: ChainHash,
}

/// A record as stored, parsed without copying: its event data is kept as raw JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw<'a> {
    seq: u64,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    v: u32,
    #[serde(borrow)]
    id: Cow<'a, str>,
    at: Timestamp,
    actor: Actor,
    #[serde(borrow)]
    subject: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
    prev_hash: ChainHash,
    hash: ChainHash,
}

/// What chain verification needs of a record; the rest is skipped unparsed.
#[derive(Deserialize)]
struct Link<'a> {
    seq: u64,
    #[serde(borrow)]
    id: Cow<'a, str>,
    prev_hash: ChainHash,
    hash: ChainHash,
}

const HASH_MEMBER: &[u8] = b",\"hash\":\"";
const HASH_SUFFIX_LEN: usize = HASH_MEMBER.len() + 64 + 2;

/// Encodes an event as a new record chained to `prev_hash`, returning it and its hash.
pub fn encode(envelope: &Envelope, event: &Event, prev_hash: ChainHash) -> (StoredRecord, ChainHash) {
    let id = uuid::Uuid::new_v4().to_string();
    let data = match serde_json::to_value(event) {
        Ok(serde_json::Value::Object(mut tagged)) => tagged.remove("data").unwrap_or(serde_json::Value::Null),
        // Every event is a struct variant, which serde writes as an object.
        _ => serde_json::Value::Null,
    };
    let body = Body {
        seq: envelope.seq,
        kind: event.type_name(),
        v: event.schema_version(),
        id: &id,
        at: envelope.at,
        actor: &envelope.actor,
        subject: event.subject(),
        data,
        prev_hash,
    };
    // Serialising plain data into memory cannot fail.
    let mut bytes = serde_json::to_vec(&body).unwrap_or_default();
    let hash = ChainHash(*blake3::hash(&bytes).as_bytes());
    bytes.pop();
    bytes.extend_from_slice(HASH_MEMBER);
    bytes.extend_from_slice(hash.to_hex().as_bytes());
    bytes.extend_from_slice(b"\"}");
    (StoredRecord { seq: envelope.seq, bytes }, hash)
}

/// The hash a record's bytes should carry: blake3 of the body, recomputed from the bytes
/// as stored. `None` when the bytes do not end with a `hash` member.
fn body_hash(bytes: &[u8]) -> Option<ChainHash> {
    if bytes.len() < HASH_SUFFIX_LEN || !bytes.ends_with(b"\"}") {
        return None;
    }
    let body_end = bytes.len() - HASH_SUFFIX_LEN;
    if &bytes[body_end..body_end + HASH_MEMBER.len()] != HASH_MEMBER {
        return None;
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(&bytes[..body_end]);
    hasher.update(b"}");
    Some(ChainHash(*hasher.finalize().as_bytes()))
}

/// Decodes a record, verifying its own hash and upcasting its event.
pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
    let raw: Raw<'_> = serde_json::from_slice(bytes).map_err(|e| RecordError::Malformed(e.to_string()))?;
    if body_hash(bytes) != Some(raw.hash) {
        return Err(RecordError::HashMismatch { seq: raw.seq });
    }
    let event = upcast(raw.seq, &raw.kind, raw.v, raw.data)?;
    if event.subject() != raw.subject {
        return Err(RecordError::SubjectMismatch { seq: raw.seq });
    }
    Ok(Record {
        seq: raw.seq,
        id: raw.id.into_owned(),
        at: raw.at,
        actor: raw.actor,
        event,
        prev_hash: raw.prev_hash,
        hash: raw.hash,
    })
}

/// Turns a stored event of any known schema version into this build's [`Event`].
///
/// Every type is at version 1 so far. When a type's shape changes, its old versions are
/// rewritten here, in memory, from the `data` as stored.
fn upcast(seq: u64, kind: &str, version: u32, data: &RawValue) -> Result<Event, RecordError> {
    if version != 1 || !Event::TYPE_NAMES.contains(&kind) {
        return Err(RecordError::UnknownEvent { seq, kind: kind.to_owned(), version });
    }
    // `kind` is one of the known names, so it needs no escaping.
    let data = data.get();
    let mut tagged = String::with_capacity(data.len() + kind.len() + 20);
    tagged.push_str("{\"type\":\"");
    tagged.push_str(kind);
    tagged.push_str("\",\"data\":");
    tagged.push_str(data);
    tagged.push('}');
    serde_json::from_str(&tagged).map_err(|e| RecordError::Malformed(format!("record {seq}: {e}")))
}

/// Why a sequence of records is not an intact chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// A record is not valid on its own.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A sequence number is missing or out of place.
    #[error("expected record {expected}, found {found}")]
    Gap {
        /// The number expected.
        expected: u64,
        /// The number found.
        found: u64,
    },
    /// A record's `prev_hash` is not its predecessor's hash.
    #[error("record {seq}: prev_hash does not match the hash of record {}", seq - 1)]
    Broken {
        /// The record whose link is broken.
        seq: u64,
    },
    /// Two records share an event id.
    #[error("record {seq}: event id {id} was already used")]
    DuplicateId {
        /// The record.
        seq: u64,
        /// The repeated id.
        id: String,
    },
}

/// Verifies records one at a time, in order, from the start of the log: each record's
/// hash, its link to the one before, gapless sequence numbers and unique event ids.
#[derive(Debug)]
pub struct ChainVerifier {
    next_seq: u64,
    prev_hash: ChainHash,
    ids: std::collections::HashSet<u128>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self { next_seq: 1, prev_hash: ChainHash::GENESIS, ids: Default::default() }
    }
}

impl ChainVerifier {
    /// A verifier that continues a chain already verified up to record `size`, whose hash
    /// is `head_hash`. Event ids are checked for uniqueness from there on only.
    pub fn resume(size: u64, head_hash: ChainHash) -> Self {
        Self { next_seq: size + 1, prev_hash: head_hash, ids: Default::default() }
    }

    /// Checks the next record's place in the chain, without decoding its event.
    pub fn verify_next(&mut self, stored: &StoredRecord) -> Result<(), ChainError> {
        let link: Link<'_> =
            serde_json::from_slice(&stored.bytes).map_err(|e| RecordError::Malformed(e.to_string()))?;
        if body_hash(&stored.bytes) != Some(link.hash) {
            return Err(RecordError::HashMismatch { seq: link.seq }.into());
        }
        self.link(stored.seq, link.seq, &link.id, link.prev_hash, link.hash)
    }

    /// Checks the next record's place in the chain and decodes it, for replay.
    pub fn verify_and_decode_next(&mut self, stored: &StoredRecord) -> Result<Record, ChainError> {
        let record = decode(&stored.bytes)?;
        self.link(stored.seq, record.seq, &record.id, record.prev_hash, record.hash)?;
        Ok(record)
    }

    fn link(
        &mut self,
        stored_seq: u64,
        seq: u64,
        id: &str,
        prev_hash: ChainHash,
        hash: ChainHash,
    ) -> Result<(), ChainError> {
        if seq != self.next_seq || stored_seq != self.next_seq {
            return Err(ChainError::Gap { expected: self.next_seq, found: seq });
        }
        if prev_hash != self.prev_hash {
            return Err(ChainError::Broken { seq });
        }
        let id_number = uuid::Uuid::parse_str(id)
            .map_err(|_| RecordError::Malformed(format!("record {seq}: the event id is not a UUID")))?
            .as_u128();
        if !self.ids.insert(id_number) {
            return Err(ChainError::DuplicateId { seq, id: id.to_owned() });
        }
        self.next_seq += 1;
        self.prev_hash = hash;
        Ok(())
    }

    /// How many records have been verified.
    pub fn size(&self) -> u64 {
        self.next_seq - 1
    }

    /// The hash of the last verified record.
    pub fn head_hash(&self) -> ChainHash {
        self.prev_hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RoleId, UserId};

    fn sample(seq: u64, prev: ChainHash) -> (StoredRecord, ChainHash) {
        let envelope = Envelope {
            seq,
            at: Timestamp::from_unix_millis(1_800_000_000_000),
            actor: Actor::User(UserId::parse("usr_00000000000000aa").unwrap()),
        };
        let event = Event::RoleCreated {
            role_id: RoleId::parse(&format!("role_{seq:016x}")).unwrap(),
            description: format!("Role {seq}"),
        };
        encode(&envelope, &event, prev)
    }

    fn chain(n: u64) -> Vec<StoredRecord> {
        let mut prev = ChainHash::GENESIS;
        (1..=n)
            .map(|seq| {
                let (record, hash) = sample(seq, prev);
                prev = hash;
                record
            })
            .collect()
    }

    fn verify(records: &[StoredRecord]) -> Result<u64, ChainError> {
        let mut verifier = ChainVerifier::default();
        for record in records {
            verifier.verify_next(record)?;
        }
        Ok(verifier.size())
    }

    #[test]
    fn a_record_is_one_compact_json_object_with_the_audit_fields_in_order() {
        let (record, hash) = sample(1, ChainHash::GENESIS);
        let text = String::from_utf8(record.bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"seq":1,"type":"RoleCreated","v":1,"id":""#), "{text}");
        assert!(text.contains(r#""actor":"usr_00000000000000aa","subject":"role_0000000000000001","data":{"#));
        assert!(text.ends_with(&format!(r#""hash":"{hash}"}}"#)));
        assert!(!text.contains('\n'));
        let decoded = decode(&record.bytes).unwrap();
        assert_eq!(decoded.hash, hash);
        assert_eq!(decoded.prev_hash, ChainHash::GENESIS);
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
    }

    #[test]
    fn editing_a_byte_of_a_record_is_detected() {
        let mut records = chain(3);
        let text = String::from_utf8(records[1].bytes.clone()).unwrap().replace("Role 2", "Role X");
        records[1].bytes = text.into_bytes();
        assert_eq!(verify(&records), Err(ChainError::Record(RecordError::HashMismatch { seq: 2 })));
    }

    #[test]
    fn removing_a_record_is_detected() {
        let mut records = chain(3);
        records.remove(1);
        assert!(matches!(verify(&records), Err(ChainError::Gap { expected: 2, found: 3 })));
    }

    #[test]
    fn a_record_rewritten_with_a_fresh_hash_breaks_the_link_to_its_successor() {
        let mut records = chain(3);
        let (forged, _) = sample(2, decode(&records[0].bytes).unwrap().hash);
        records[1] = forged;
        assert_eq!(verify(&records), Err(ChainError::Broken { seq: 3 }));
    }

    #[test]
    fn unknown_event_types_and_versions_are_refused() {
        let (record, _) = sample(1, ChainHash::GENESIS);
        let text = String::from_utf8(record.bytes).unwrap();
        for (from, to) in [(r#""type":"RoleCreated""#, r#""type":"RoleExploded""#), (r#""v":1"#, r#""v":9"#)] {
            let edited = text.replace(from, to);
            // The edit breaks the hash, so re-seal the body to reach the upcaster.
            let body_end = edited.len() - HASH_SUFFIX_LEN;
            let body = format!("{}}}", &edited[..body_end]);
            let resealed =
                format!(r#"{},"hash":"{}"}}"#, &body[..body.len() - 1], blake3::hash(body.as_bytes()).to_hex());
            assert!(matches!(decode(resealed.as_bytes()), Err(RecordError::UnknownEvent { .. })), "{to}");
        }
    }

    #[test]
    fn every_event_type_round_trips_through_a_record_and_the_verifier() {
        let mut verifier = ChainVerifier::default();
        let mut prev = ChainHash::GENESIS;
        for (event, seq) in Event::examples().into_iter().zip(1..) {
            let envelope = Envelope { seq, at: Timestamp::from_unix_millis(1_800_000_000_000), actor: Actor::System };
            let (stored, hash) = encode(&envelope, &event, prev);
            let record =
                verifier.verify_and_decode_next(&stored).unwrap_or_else(|e| panic!("{}: {e}", event.type_name()));
            assert_eq!(record.event, event);
            assert_eq!((record.seq, record.prev_hash, record.hash), (seq, prev, hash));
            prev = hash;
        }
        assert_eq!(verifier.size(), Event::TYPE_NAMES.len() as u64);
    }

    #[test]
    fn every_event_type_name_is_distinct_and_known_to_the_decoder() {
        let names: std::collections::BTreeSet<&str> = Event::TYPE_NAMES.into_iter().collect();
        assert_eq!(names.len(), Event::TYPE_NAMES.len(), "two event types share a name");
        let data = RawValue::from_string("{}".to_owned()).unwrap();
        for name in Event::TYPE_NAMES {
            // An empty `data` is malformed for every type; an unknown type would be refused
            // before its data is read.
            assert!(matches!(upcast(1, name, 1, &data), Err(RecordError::Malformed(_))), "{name}");
        }
    }

    /// The record decoder's fuzz seeds: one record of each event type in a file of its
    /// own, named `NN-Type` after its sequence number, and all of them chained in one log.
    const RECORD_SEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/record_decoder");
    const SEED_LOG: &str = "log-of-every-event-type";

    /// Fails when the fuzz seeds lack a record of some event type, so that the fuzzer
    /// starts from every type's decoder. With `KEYLEDGER_UPDATE_SEEDS=1` it writes the
    /// missing records instead, from [`Event::examples`], chained onto the seed log.
    #[test]
    fn the_fuzz_seeds_hold_a_record_of_every_event_type() {
        let dir = std::path::Path::new(RECORD_SEEDS);
        let log_text = std::fs::read_to_string(dir.join(SEED_LOG)).unwrap();
        let mut verifier = ChainVerifier::default();
        let mut last_at = Timestamp::from_unix_millis(0);
        for (line, seq) in log_text.split('\n').zip(1..) {
            let record = verifier.verify_and_decode_next(&StoredRecord { seq, bytes: line.as_bytes().to_vec() });
            let record = record.unwrap_or_else(|e| panic!("{SEED_LOG} line {seq}: {e}"));
            let own_file = dir.join(format!("{seq:02}-{}", record.event.type_name()));
            assert_eq!(
                std::fs::read_to_string(&own_file).unwrap(),
                line,
                "{} differs from the log",
                own_file.display()
            );
            last_at = record.at;
        }
        let seeded: std::collections::BTreeSet<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter_map(|name| name.split_once('-').map(|(_, kind)| kind.to_owned()))
            .collect();
        let missing: Vec<Event> =
            Event::examples().into_iter().filter(|event| !seeded.contains(event.type_name())).collect();
        if missing.is_empty() {
            return;
        }
        let names: Vec<&str> = missing.iter().map(Event::type_name).collect();
        assert!(
            std::env::var_os("KEYLEDGER_UPDATE_SEEDS").is_some(),
            "fuzz/seeds/record_decoder has no record of {names:?}: run \
             `KEYLEDGER_UPDATE_SEEDS=1 cargo test --lib the_fuzz_seeds` and commit the new seeds"
        );
        let mut log = log_text;
        let mut prev = verifier.head_hash();
        for (event, seq) in missing.iter().zip(verifier.size() + 1..) {
            last_at = last_at.plus_seconds(1);
            let (stored, hash) = encode(&Envelope { seq, at: last_at, actor: Actor::System }, event, prev);
            let text = String::from_utf8(stored.bytes).unwrap();
            std::fs::write(dir.join(format!("{seq:02}-{}", event.type_name())), &text).unwrap();
            log.push('\n');
            log.push_str(&text);
            prev = hash;
        }
        std::fs::write(dir.join(SEED_LOG), log).unwrap();
    }

    #[test]
    fn junk_is_malformed_not_a_panic() {
        for junk in [&b""[..], b"{}", b"null", b"{\"seq\":1", &[0xff, 0xfe]] {
            assert!(decode(junk).is_err());
        }
    }
}
