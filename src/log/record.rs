//! The record format: how an event is written to the log, chained and verified.
//!
//! A record is one compact JSON object:
//!
//! ```text
//! {"seq":1,"type":"UserCreated","v":1,"id":"…","at":"…","actor":"system","subject":"usr_…",
//!  "data":{…},"prev_hash":"…","hash":"…"}
//! ```
//!
//! A record of a change whose admin gave a reason (`Keyledger-Justification`) carries it
//! beside the actor, as `"actor":"usr_…","justification":"OPS-1234","subject":…`; every
//! record of that change carries it. The member is optional and absent otherwise, so the
//! records written before it existed keep their bytes, decode as they did (with no
//! justification) and verify; `null` is refused, so a record has one spelling. It is part
//! of the envelope, not of `data`, so no event type's schema version moved.
//!
//! `hash` is blake3 over the record's *body*: the same bytes with the `hash` member
//! removed, which is always the last member. So the body of a stored record is its bytes
//! up to `,"hash":` plus the closing brace, and verifying a record never re-serialises
//! it. `prev_hash` is the previous record's `hash` (64 zeros for the first record), so the
//! records form a chain in which any edit, removal or reordering shows.
//!
//! Stored bytes are never rewritten. An event whose shape changes gets a new schema
//! version `v`, and [`decode`] upcasts old versions when it reads them.
//!
//! Reading is fast for the records [`encode`] writes: [`Layout`] finds the members at
//! their known places (the two hashes at fixed offsets from the end) without allocating,
//! and checks that the bytes are exactly such a record. Anything else (other spacing,
//! escapes, another member order, junk) is read by the general JSON path, so every
//! malformed record is refused with the same error either way; the fast path only ever
//! accepts what the general path accepts, with the same result.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::domain::{Actor, Event, Justification, Timestamp};

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

    /// Parses 64 lowercase hexadecimal characters, as the record's own deserialiser does
    /// (through [`crate::merkle::TreeHash::from_hex`]), without its checks' second pass.
    fn from_hex_bytes(hex: &[u8]) -> Option<Self> {
        /// Each byte's value as a lowercase hexadecimal digit; 0xff for every other byte.
        const NIBBLE: [u8; 256] = {
            let mut table = [0xff; 256];
            let mut digit = 0;
            while digit < 16 {
                table[b"0123456789abcdef"[digit] as usize] = digit as u8;
                digit += 1;
            }
            table
        };
        let hex: &[u8; 64] = hex.try_into().ok()?;
        let mut bytes = [0; 32];
        // Every pair is decoded, then the invalid digits found at once: no branch per digit.
        let mut invalid = 0;
        for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            let (high, low) = (NIBBLE[usize::from(pair[0])], NIBBLE[usize::from(pair[1])]);
            invalid |= high | low;
            *byte = (high << 4) | (low & 0x0f);
        }
        (invalid & 0xf0 == 0).then_some(ChainHash(bytes))
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

impl AsRef<[u8]> for StoredRecord {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
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
    /// Why, if the change's admin said (`Keyledger-Justification`).
    pub justification: Option<Justification>,
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
    /// Why, if the change's admin said: written beside the actor, left out when `None`.
    pub justification: Option<Justification>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    justification: Option<&'a Justification>,
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
    #[serde(default, deserialize_with = "present")]
    justification: Option<Justification>,
    #[serde(borrow)]
    subject: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
    prev_hash: ChainHash,
    hash: ChainHash,
}

/// An optional member that, when present, holds a value: `null` is refused, so that a
/// record without a justification has one spelling (the member left out).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
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

/// Where `prev_hash` starts in a record laid out as [`encode`] writes it, counted back from
/// the end: `,"prev_hash":"<64 hex>"` then the `hash` member and the closing brace.
const PREV_HASH_MEMBER: &[u8] = b",\"prev_hash\":\"";
const CHAIN_SUFFIX_LEN: usize = PREV_HASH_MEMBER.len() + 64 + 1 + HASH_SUFFIX_LEN;

/// How deeply `data` may nest (counting every `[` and `{`, quoted ones included) and still
/// take the fast path: well inside serde_json's recursion limit, which the general path
/// meets one level deeper than the fast one would.
const FAST_PATH_MAX_NESTING: usize = 64;

/// A record's members, found at the places [`encode`] writes them and borrowed from its
/// bytes. A `Layout` exists only for bytes that are a JSON object with exactly the record's
/// members, in order, whose strings have no escapes: the general path reads such bytes to
/// the same values. `data` is checked to be one JSON value by whoever reads it.
struct Layout<'a> {
    seq: u64,
    kind: &'a str,
    v: u32,
    id: &'a str,
    at: &'a str,
    actor: &'a str,
    justification: Option<&'a str>,
    subject: &'a str,
    data: &'a str,
    prev_hash: ChainHash,
    hash: ChainHash,
}

impl<'a> Layout<'a> {
    /// Finds the members of a record written by [`encode`]; `None` for anything else.
    fn find(bytes: &'a [u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let suffix_start = text.len().checked_sub(CHAIN_SUFFIX_LEN)?;
        let suffix = &bytes[suffix_start..];
        let hash_at = PREV_HASH_MEMBER.len() + 64 + 1;
        if !suffix.starts_with(PREV_HASH_MEMBER)
            || suffix[hash_at - 1] != b'"'
            || !suffix[hash_at..].starts_with(HASH_MEMBER)
            || !suffix.ends_with(b"\"}")
        {
            return None;
        }
        let prev_hash = ChainHash::from_hex_bytes(&suffix[PREV_HASH_MEMBER.len()..hash_at - 1])?;
        let hash = ChainHash::from_hex_bytes(&suffix[hash_at + HASH_MEMBER.len()..suffix.len() - 2])?;

        let mut cursor = Cursor { text: text.get(..suffix_start)?, at: 0 };
        cursor.literal("{\"seq\":")?;
        let seq = cursor.number()?;
        cursor.literal(",\"type\":")?;
        let kind = cursor.string()?;
        cursor.literal(",\"v\":")?;
        let v = u32::try_from(cursor.number()?).ok()?;
        cursor.literal(",\"id\":")?;
        let id = cursor.string()?;
        cursor.literal(",\"at\":")?;
        let at = cursor.string()?;
        cursor.literal(",\"actor\":")?;
        let actor = cursor.string()?;
        let justification = match cursor.literal(",\"justification\":") {
            Some(()) => Some(cursor.string()?),
            None => None,
        };
        cursor.literal(",\"subject\":")?;
        let subject = cursor.string()?;
        cursor.literal(",\"data\":")?;
        let data = cursor.rest();
        let nesting = data.bytes().filter(|&b| b == b'{' || b == b'[').count();
        if data.is_empty() || nesting > FAST_PATH_MAX_NESTING {
            return None;
        }
        Some(Layout { seq, kind, v, id, at, actor, justification, subject, data, prev_hash, hash })
    }
}

/// Reads the fixed parts of a record left to right.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn literal(&mut self, literal: &str) -> Option<()> {
        self.text[self.at..].starts_with(literal).then(|| self.at += literal.len())
    }

    /// A JSON number as serde_json reads a `u64` from it: digits, no leading zero, no
    /// fraction or exponent (the caller expects a `,` next), no overflow.
    fn number(&mut self) -> Option<u64> {
        let digits = self.text[self.at..].bytes().take_while(u8::is_ascii_digit).count();
        let text = &self.text[self.at..self.at + digits];
        if digits == 0 || (digits > 1 && text.starts_with('0')) {
            return None;
        }
        self.at += digits;
        text.bytes().try_fold(0u64, |n, digit| n.checked_mul(10)?.checked_add(u64::from(digit - b'0')))
    }

    /// A JSON string with no escapes and no control characters, without its quotes.
    fn string(&mut self) -> Option<&'a str> {
        self.literal("\"")?;
        let length = self.text[self.at..].bytes().position(|b| b == b'"' || b == b'\\' || b < 0x20)?;
        let text = &self.text[self.at..self.at + length];
        self.at += length;
        self.literal("\"")?;
        Some(text)
    }

    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }
}

/// Deserialises an [`Event`] from its type name and its `data` as stored, as if from
/// `{"type":…,"data":…}` but without building that text, and refuses anything after the
/// one value in `data`.
fn event_from_parts(kind: &str, data: &str) -> Result<Event, serde_json::Error> {
    let mut content = serde_json::Deserializer::from_str(data);
    let event = Event::deserialize(Tagged { kind, content: &mut content })?;
    content.end()?;
    Ok(event)
}

/// An adjacently tagged event: the `type` member, then `data` read from its own text.
struct Tagged<'a, 'de> {
    kind: &'de str,
    content: &'a mut serde_json::Deserializer<serde_json::de::StrRead<'de>>,
}

impl<'de> serde::Deserializer<'de> for Tagged<'_, 'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(TaggedMembers { tagged: self, members_read: 0 })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct TaggedMembers<'a, 'de> {
    tagged: Tagged<'a, 'de>,
    members_read: u8,
}

impl<'de> serde::de::MapAccess<'de> for TaggedMembers<'_, 'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        let key = match self.members_read {
            0 => "type",
            1 => "data",
            _ => return Ok(None),
        };
        seed.deserialize(serde::de::value::BorrowedStrDeserializer::new(key)).map(Some)
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        self.members_read += 1;
        if self.members_read == 1 {
            seed.deserialize(serde::de::value::BorrowedStrDeserializer::new(self.tagged.kind))
        } else {
            seed.deserialize(&mut *self.tagged.content)
        }
    }
}

/// What chain verification needs of a record, borrowed from its bytes.
struct LinkFields<'a> {
    seq: u64,
    id: Cow<'a, str>,
    prev_hash: ChainHash,
    hash: ChainHash,
}

/// Reads what chain verification needs of a record and checks its own hash.
fn link_fields(bytes: &[u8]) -> Result<LinkFields<'_>, RecordError> {
    link_fields_fast(bytes).map_or_else(|| link_fields_general(bytes), Ok)
}

/// [`link_fields`] for a record laid out as [`encode`] writes it; `None` for any other
/// bytes, or any failure, which the general path then names.
fn link_fields_fast(bytes: &[u8]) -> Option<LinkFields<'_>> {
    let layout = Layout::find(bytes)?;
    // The general path reads the whole object, so `data` must be one JSON value.
    serde_json::from_str::<serde::de::IgnoredAny>(layout.data).ok()?;
    (body_hash(bytes)? == layout.hash).then_some(LinkFields {
        seq: layout.seq,
        id: Cow::Borrowed(layout.id),
        prev_hash: layout.prev_hash,
        hash: layout.hash,
    })
}

fn link_fields_general(bytes: &[u8]) -> Result<LinkFields<'_>, RecordError> {
    let link: Link<'_> = serde_json::from_slice(bytes).map_err(|e| RecordError::Malformed(e.to_string()))?;
    if body_hash(bytes) != Some(link.hash) {
        return Err(RecordError::HashMismatch { seq: link.seq });
    }
    Ok(LinkFields { seq: link.seq, id: link.id, prev_hash: link.prev_hash, hash: link.hash })
}

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
        justification: envelope.justification.as_ref(),
        subject: &event.subject(),
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
    decode_fast(bytes).map_or_else(|| decode_general(bytes), Ok)
}

/// [`decode`] for a record laid out as [`encode`] writes it: no JSON parse of the envelope
/// and no copy of `data`. `None` for any other bytes, or any failure, which the general
/// path then names.
fn decode_fast(bytes: &[u8]) -> Option<Record> {
    let layout = Layout::find(bytes)?;
    // An unknown type fails to deserialise below, and the general path names it.
    if body_hash(bytes)? != layout.hash || layout.v != Event::current_version(layout.kind) {
        return None;
    }
    let at = Timestamp::parse(layout.at).ok()?;
    let actor = Actor::try_from(layout.actor.to_owned()).ok()?;
    let justification = match layout.justification {
        Some(text) => Some(Justification::parse(text).ok()?),
        None => None,
    };
    let event = event_from_parts(layout.kind, layout.data).ok()?;
    (event.subject() == layout.subject && event.has_shape_of_version(layout.v)).then(|| Record {
        seq: layout.seq,
        id: layout.id.to_owned(),
        at,
        actor,
        justification,
        event,
        prev_hash: layout.prev_hash,
        hash: layout.hash,
    })
}

/// [`decode`] for any bytes, through serde_json: names what is wrong with a record.
fn decode_general(bytes: &[u8]) -> Result<Record, RecordError> {
    let raw: Raw<'_> = serde_json::from_slice(bytes).map_err(|e| RecordError::Malformed(e.to_string()))?;
    if body_hash(bytes) != Some(raw.hash) {
        return Err(RecordError::HashMismatch { seq: raw.seq });
    }
    let event = upcast(raw.seq, &raw.kind, raw.v, raw.data)?;
    if *event.subject() != *raw.subject {
        return Err(RecordError::SubjectMismatch { seq: raw.seq });
    }
    Ok(Record {
        seq: raw.seq,
        id: raw.id.into_owned(),
        at: raw.at,
        actor: raw.actor,
        justification: raw.justification,
        event,
        prev_hash: raw.prev_hash,
        hash: raw.hash,
    })
}

/// Turns a stored event of any known schema version into this build's [`Event`].
///
/// Every type is at version 1 but `KeyUsageIntervalRecorded`, at version 2 since issue
/// #14: each key's entry gained a seventh member, its passed checks per function. Its
/// version 1 is upcast by reading each six-member entry with `functions` `None` (which
/// functions were used is not known); a version 1 record holding a seventh member, or a
/// version 2 record lacking one, is malformed. When a type's shape changes, its old
/// versions are rewritten here, in memory, from the `data` as stored.
fn upcast(seq: u64, kind: &str, version: u32, data: &RawValue) -> Result<Event, RecordError> {
    if version == 0 || !Event::TYPE_NAMES.contains(&kind) || version > Event::current_version(kind) {
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
    let event: Event =
        serde_json::from_str(&tagged).map_err(|e| RecordError::Malformed(format!("record {seq}: {e}")))?;
    if !event.has_shape_of_version(version) {
        return Err(RecordError::Malformed(format!(
            "record {seq}: a {kind} of version {version} counts checks per function {}",
            if version >= 2 { "for every key" } else { "for no key" }
        )));
    }
    Ok(event)
}

/// The fewest items worth a thread of their own in [`map_on_all_cores`]: below this,
/// starting the thread costs more than the work it takes over.
const MIN_ITEMS_PER_THREAD: usize = 64;

/// `items.iter().map(work).collect()`, with the items split into one contiguous run per
/// core and each run mapped on its own thread (the caller's thread takes the first). The
/// results are in the order of the items.
pub(crate) fn map_on_all_cores<'a, T: Sync, R: Send>(items: &'a [T], work: impl Fn(&'a T) -> R + Sync) -> Vec<R> {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let threads = cores.min(items.len() / MIN_ITEMS_PER_THREAD).max(1);
    if threads == 1 {
        return items.iter().map(work).collect();
    }
    let per_thread = items.len().div_ceil(threads);
    let (first, rest) = items.split_at(per_thread);
    std::thread::scope(|scope| {
        let work = &work;
        let others: Vec<_> =
            rest.chunks(per_thread).map(|run| scope.spawn(move || run.iter().map(work).collect::<Vec<R>>())).collect();
        let mut results = Vec::with_capacity(items.len());
        results.extend(first.iter().map(work));
        for other in others {
            results.extend(other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        results
    })
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
        let link = link_fields(&stored.bytes)?;
        self.link(stored.seq, link.seq, &link.id, link.prev_hash, link.hash)
    }

    /// Checks the next records' places in the chain, as [`ChainVerifier::verify_next`] on
    /// each in order would, with the work each record needs alone (parsing, its hash) spread
    /// over the machine's cores. The error names the first failing record in the chunk,
    /// whatever the order in which the threads met failures.
    pub fn verify_chunk(&mut self, chunk: &[StoredRecord]) -> Result<(), ChainError> {
        let links = map_on_all_cores(chunk, |stored| link_fields(&stored.bytes));
        for (stored, link) in chunk.iter().zip(links) {
            let link = link?;
            self.link(stored.seq, link.seq, &link.id, link.prev_hash, link.hash)?;
        }
        Ok(())
    }

    /// Checks the next record's place in the chain and decodes it, for replay.
    pub fn verify_and_decode_next(&mut self, stored: &StoredRecord) -> Result<Record, ChainError> {
        self.link_decoded(stored.seq, decode(&stored.bytes))
    }

    /// Checks the place in the chain of the next record, stored at `stored_seq`, which
    /// [`decode`] has already read (perhaps on another thread): the second half of
    /// [`ChainVerifier::verify_and_decode_next`].
    pub fn link_decoded(
        &mut self,
        stored_seq: u64,
        decoded: Result<Record, RecordError>,
    ) -> Result<Record, ChainError> {
        let record = decoded?;
        self.link(stored_seq, record.seq, &record.id, record.prev_hash, record.hash)?;
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
            justification: None,
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
    fn a_justification_is_kept_beside_the_actor_and_a_record_without_one_keeps_its_old_bytes() {
        let (plain, _) = sample(1, ChainHash::GENESIS);
        let plain_text = String::from_utf8(plain.bytes.clone()).unwrap();
        assert!(!plain_text.contains("justification"), "{plain_text}");
        assert_eq!(decode(&plain.bytes).unwrap().justification, None);

        for why in ["OPS-1234", "ticket \"OPS-9\" \\ café"] {
            let envelope = Envelope {
                seq: 1,
                at: Timestamp::from_unix_millis(1_800_000_000_000),
                actor: Actor::System,
                justification: Some(Justification::parse(why).unwrap()),
            };
            let event = Event::RoleCreated {
                role_id: RoleId::parse("role_0000000000000001").unwrap(),
                description: "R".into(),
            };
            let (stored, hash) = encode(&envelope, &event, ChainHash::GENESIS);
            let text = String::from_utf8(stored.bytes.clone()).unwrap();
            assert!(text.contains(r#""actor":"system","justification":"#), "{text}");
            let record = decode(&stored.bytes).unwrap();
            assert_eq!(record.justification.as_ref().map(Justification::as_str), Some(why));
            assert_eq!(record.hash, hash);
            assert_eq!(decode_general(&stored.bytes), Ok(record));
            assert_fast_paths_agree(&stored.bytes);
            // The justification is covered by the hash.
            let edited = text.replace("OPS", "XYZ").replace("ticket", "tacket");
            assert!(matches!(decode(edited.as_bytes()), Err(RecordError::HashMismatch { .. })));
        }
        // One spelling: a null justification is refused, even resealed.
        let null = plain_text
            .replace(r#""actor":"usr_00000000000000aa","#, r#""actor":"usr_00000000000000aa","justification":null,"#);
        assert!(matches!(decode(&reseal(null.as_bytes())), Err(RecordError::Malformed(_))));
    }

    /// A usage record as a build before issue #14 wrote it (the fuzz seed committed with
    /// `KeyUsageIntervalRecorded`, commit cebddcc): version 1, six members per key.
    const USAGE_RECORD_V1: &str = include_str!("../../fuzz/seeds/record_decoder/21-KeyUsageIntervalRecorded");

    #[test]
    fn a_usage_record_of_version_1_is_upcast_with_its_functions_unknown_and_encodes_back_as_version_1() {
        let record = decode(USAGE_RECORD_V1.as_bytes()).unwrap();
        let Event::KeyUsageIntervalRecorded { keys, .. } = &record.event else { panic!("{:?}", record.event) };
        assert_eq!((keys.len(), keys[0].allowed, keys[0].functions.as_ref()), (1, 3, None));
        assert_eq!(decode_general(USAGE_RECORD_V1.as_bytes()), Ok(record.clone()));
        assert!(decode_fast(USAGE_RECORD_V1.as_bytes()).is_none(), "an old version takes the upcaster");
        // Encoding what was read gives a version 1 record again, which reads the same.
        assert_eq!(record.event.schema_version(), 1);
        let envelope = Envelope { seq: 1, at: record.at, actor: Actor::System, justification: None };
        let (stored, _) = encode(&envelope, &record.event, ChainHash::GENESIS);
        assert!(String::from_utf8_lossy(&stored.bytes).contains(r#""v":1,"#));
        assert_eq!(decode(&stored.bytes).unwrap().event, record.event);

        // Each version has its one shape: functions in a version 1 record, or none in a
        // version 2 one, are malformed, and there is no version 3.
        let with_functions = USAGE_RECORD_V1.replace("60000,120000]", r#"60000,120000,[["api.events.read",3,0]]]"#);
        let as_version = |text: &str, version: &str| reseal(text.replacen(r#""v":1"#, version, 1).as_bytes());
        for (bytes, malformed) in [
            (reseal(with_functions.as_bytes()), true),
            (as_version(USAGE_RECORD_V1, r#""v":2"#), true),
            (as_version(&with_functions, r#""v":2"#), false),
        ] {
            let decoded = decode(&bytes);
            assert_eq!(matches!(decoded, Err(RecordError::Malformed(_))), malformed, "{decoded:?}");
            assert_fast_paths_agree(&bytes);
        }
        assert!(matches!(
            decode(&as_version(&with_functions, r#""v":3"#)),
            Err(RecordError::UnknownEvent { version: 3, .. })
        ));
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
            let envelope = Envelope {
                seq,
                at: Timestamp::from_unix_millis(1_800_000_000_000),
                actor: Actor::System,
                justification: None,
            };
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
            let (stored, hash) =
                encode(&Envelope { seq, at: last_at, actor: Actor::System, justification: None }, event, prev);
            let text = String::from_utf8(stored.bytes).unwrap();
            std::fs::write(dir.join(format!("{seq:02}-{}", event.type_name())), &text).unwrap();
            log.push('\n');
            log.push_str(&text);
            prev = hash;
        }
        std::fs::write(dir.join(SEED_LOG), log).unwrap();
    }

    /// `text` with its `hash` member replaced by the true hash of its body, so that an edit
    /// reaches the checks behind the hash; unchanged when it has no `hash` member.
    fn reseal(text: &[u8]) -> Vec<u8> {
        let Some(body_end) = text.len().checked_sub(HASH_SUFFIX_LEN) else { return text.to_vec() };
        if !text[body_end..].starts_with(HASH_MEMBER) {
            return text.to_vec();
        }
        let mut body = text[..body_end].to_vec();
        body.push(b'}');
        let hash = blake3::hash(&body);
        body.pop();
        body.extend_from_slice(HASH_MEMBER);
        body.extend_from_slice(hash.to_hex().as_bytes());
        body.extend_from_slice(b"\"}");
        body
    }

    /// Holds the fast paths to their promise: whatever they accept, the general path
    /// accepts too, with the same result; whatever they do not, the general path names.
    fn assert_fast_paths_agree(bytes: &[u8]) {
        if let Some(fast) = decode_fast(bytes) {
            assert_eq!(Ok(fast), decode_general(bytes), "{}", String::from_utf8_lossy(bytes));
        }
        if let Some(fast) = link_fields_fast(bytes) {
            let general =
                link_fields_general(bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)));
            assert_eq!(
                (fast.seq, fast.id, fast.prev_hash, fast.hash),
                (general.seq, general.id, general.prev_hash, general.hash)
            );
        }
        assert_eq!(decode(bytes), decode_general(bytes));
    }

    fn examples() -> Vec<StoredRecord> {
        let mut prev = ChainHash::GENESIS;
        Event::examples()
            .into_iter()
            .zip(1..)
            .map(|(event, seq)| {
                let envelope = Envelope {
                    seq,
                    at: Timestamp::from_unix_millis(1_800_000_000_000),
                    actor: Actor::System,
                    justification: None,
                };
                let (stored, hash) = encode(&envelope, &event, prev);
                prev = hash;
                stored
            })
            .collect()
    }

    #[test]
    fn every_record_encode_writes_takes_the_fast_path() {
        for stored in examples().iter().chain(&chain(3)) {
            let text = String::from_utf8_lossy(&stored.bytes);
            let fast = decode_fast(&stored.bytes).unwrap_or_else(|| panic!("the fast path refused {text}"));
            assert_eq!(Ok(fast), decode_general(&stored.bytes));
            assert!(link_fields_fast(&stored.bytes).is_some(), "the light fast path refused {text}");
        }
    }

    #[test]
    fn the_fast_paths_accept_only_what_the_general_path_accepts_and_read_it_the_same() {
        let records = examples();
        // Every byte of a few records replaced, deleted or doubled, then resealed.
        for stored in records.iter().step_by(5) {
            let bytes = &stored.bytes;
            for at in 0..bytes.len() {
                for replacement in [b'"', b'\\', b'{', b'}', b',', b' ', b'0', b'9', b'A'] {
                    let mut edited = bytes.clone();
                    edited[at] = replacement;
                    assert_fast_paths_agree(&reseal(&edited));
                }
                let mut deleted = bytes.clone();
                deleted.remove(at);
                assert_fast_paths_agree(&reseal(&deleted));
                let mut doubled = bytes.clone();
                doubled.insert(at, bytes[at]);
                assert_fast_paths_agree(&reseal(&doubled));
            }
        }
        // Edits that keep the layout's landmarks in place.
        let text = String::from_utf8(records[0].bytes.clone()).unwrap();
        let data_start = text.find(",\"data\":").unwrap() + ",\"data\":".len();
        let data_end = text.find(",\"prev_hash\":").unwrap();
        let data = &text[data_start..data_end];
        let deep = format!("{}{}", "[".repeat(130), "]".repeat(130));
        let edits = [
            format!("{data},\"extra\":{{}}"),
            format!("{data},\"data\":{data}"),
            format!("{data} "),
            format!(" {data}"),
            format!("{data}{data}"),
            format!("{},\"deep\":{deep}}}", &data[..data.len() - 1]),
            format!("{},\"escaped\":\"\\u0041\"}}", &data[..data.len() - 1]),
            "null".to_owned(),
            String::new(),
        ];
        for edit in edits {
            let edited = format!("{}{edit}{}", &text[..data_start], &text[data_end..]);
            assert_fast_paths_agree(&reseal(edited.as_bytes()));
        }
        for (from, to) in [
            ("{\"seq\":1,", "{\"seq\":01,"),
            ("{\"seq\":1,", "{\"seq\":1.0,"),
            ("{\"seq\":1,", "{\"seq\":18446744073709551616,"),
            ("\"v\":1,", "\"v\":4294967297,"),
            ("\"actor\":\"system\"", "\"actor\":\"sys\\u0074em\""),
            ("{\"seq\":1,", "{\"seq\":1 ,"),
        ] {
            assert_fast_paths_agree(&reseal(text.replacen(from, to, 1).as_bytes()));
        }
    }

    #[test]
    fn the_fast_hash_reader_reads_exactly_what_the_deserialiser_reads() {
        let hash = sample(1, ChainHash::GENESIS).1.to_hex();
        let mut spellings = vec![hash.clone(), hash.to_uppercase(), hash[1..].to_owned(), format!("{hash}0")];
        for digit in ['g', 'F', ' ', '/', ':', '`', 'é'] {
            spellings.push(format!("{digit}{}", &hash[digit.len_utf8()..]));
        }
        for text in spellings {
            let general = serde_json::from_value::<ChainHash>(serde_json::Value::String(text.clone())).ok();
            assert_eq!(ChainHash::from_hex_bytes(text.as_bytes()), general, "{text}");
        }
    }

    #[test]
    fn a_chunk_verified_on_all_cores_names_its_first_failing_record() {
        let intact = chain(1000);
        let mut verifier = ChainVerifier::default();
        assert_eq!(verifier.verify_chunk(&intact), Ok(()));
        assert_eq!((verifier.size(), verifier.head_hash()), (1000, decode(&intact[999].bytes).unwrap().hash));

        // A failure early in the chunk is named even though the threads also meet a later one.
        let mut records = intact.clone();
        for broken in [900, 500] {
            let text = String::from_utf8(records[broken - 1].bytes.clone()).unwrap();
            records[broken - 1].bytes = text.replace(&format!("Role {broken}\""), "Role X\"").into_bytes();
        }
        let mut verifier = ChainVerifier::default();
        assert_eq!(verifier.verify_chunk(&records), Err(ChainError::Record(RecordError::HashMismatch { seq: 500 })));
        assert_eq!(verifier.size(), 499);

        // The same error as one record at a time, for every kind of failure.
        let mut records = intact;
        records.remove(700);
        records[300].bytes = b"{\"seq\":301}".to_vec();
        let one_at_a_time = verify(&records).unwrap_err();
        assert_eq!(ChainVerifier::default().verify_chunk(&records), Err(one_at_a_time));
        // And it carries on from where the last chunk ended.
        let mut verifier = ChainVerifier::default();
        verifier.verify_chunk(&records[..150]).unwrap();
        assert_eq!(verifier.verify_chunk(&records[150..]), Err(verify(&records).unwrap_err()));
    }

    #[test]
    fn junk_is_malformed_not_a_panic() {
        for junk in [&b""[..], b"{}", b"null", b"{\"seq\":1", &[0xff, 0xfe]] {
            assert!(decode(junk).is_err());
        }
    }
}
