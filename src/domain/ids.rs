//! Identifiers: newtypes that can only hold a well-formed value.
//!
//! Every identifier keyledger mints has a short type prefix (`role_`, `usr_`, …) and
//! sixteen lowercase hexadecimal characters of randomness, so an id of the wrong kind
//! is refused by `parse` before any lookup.

use std::fmt;

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

/// The reason a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must look like `{prefix}` followed by 16 lowercase hex characters")]
pub struct InvalidId {
    kind: &'static str,
    prefix: &'static str,
}

const RANDOM_HEX_LEN: usize = 16;

/// The random part of a minted id, if `value` is `prefix` followed by 16 lowercase
/// hexadecimal characters (the only shape keyledger has ever accepted).
fn minted_number(value: &str, prefix: &str) -> Option<u64> {
    let rest = value.strip_prefix(prefix)?;
    let well_formed = rest.len() == RANDOM_HEX_LEN && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if well_formed { u64::from_str_radix(rest, 16).ok() } else { None }
}

/// The text of an id, built on the stack: the prefix and 16 hexadecimal digits, or a
/// fixed word such as `system`. It reads as a `&str` (`Deref`), so that ids, which are
/// stored as numbers, can be written without a heap allocation.
#[derive(Clone, Copy)]
pub struct IdText {
    bytes: [u8; IdText::CAPACITY],
    len: u8,
}

impl IdText {
    /// The longest text it holds: the longest prefix (`role_`) and 16 digits, with room.
    pub(super) const CAPACITY: usize = 24;

    /// The text of a minted id: `prefix` and `number` as 16 lowercase hexadecimal digits.
    fn minted(prefix: &str, number: u64) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = IdText { bytes: [0; Self::CAPACITY], len: 0 };
        let prefix = &prefix.as_bytes()[..prefix.len().min(Self::CAPACITY - RANDOM_HEX_LEN)];
        text.bytes[..prefix.len()].copy_from_slice(prefix);
        for (index, byte) in text.bytes[prefix.len()..prefix.len() + RANDOM_HEX_LEN].iter_mut().enumerate() {
            let shift = 4 * (RANDOM_HEX_LEN - 1 - index);
            *byte = HEX[((number >> shift) & 0xf) as usize];
        }
        text.len = (prefix.len() + RANDOM_HEX_LEN) as u8;
        text
    }

    /// A fixed word, such as `system`, cut to the capacity if it were longer.
    pub(super) fn fixed(word: &str) -> Self {
        let mut text = IdText { bytes: [0; Self::CAPACITY], len: 0 };
        let mut len = word.len().min(Self::CAPACITY);
        while !word.is_char_boundary(len) {
            len -= 1;
        }
        text.bytes[..len].copy_from_slice(&word.as_bytes()[..len]);
        text.len = len as u8;
        text
    }
}

impl std::ops::Deref for IdText {
    type Target = str;
    fn deref(&self) -> &str {
        // Only whole UTF-8 strings are copied in: ASCII digits and prefixes, or a word
        // cut at a character boundary.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl AsRef<str> for IdText {
    fn as_ref(&self) -> &str {
        self
    }
}

impl fmt::Display for IdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl fmt::Debug for IdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq for IdText {
    fn eq(&self, other: &IdText) -> bool {
        **self == **other
    }
}

impl Eq for IdText {}

impl PartialEq<str> for IdText {
    fn eq(&self, other: &str) -> bool {
        &**self == other
    }
}

impl PartialEq<&str> for IdText {
    fn eq(&self, other: &&str) -> bool {
        &**self == *other
    }
}

impl Serialize for IdText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self)
    }
}

/// The text form of a type that has `parse` and `as_str`: what serde reads
/// (`try_from = "String"`) and writes (`into = "String"`), and what it displays.
macro_rules! text_form {
    ($name:ty, $error:ty) => {
        impl TryFrom<String> for $name {
            type Error = $error;
            fn try_from(value: String) -> Result<Self, $error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_owned()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(super) use text_form;

/// Reads an id from a string without first copying it into a `String` of its own (a
/// snapshot or a record holds millions of them), with the errors serde's
/// `try_from = "String"` gave: "invalid type: …, expected a string" and the parse error.
struct MintedIdVisitor<T>(std::marker::PhantomData<T>);

impl<T: MintedId> serde::de::Visitor<'_> for MintedIdVisitor<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<T, E> {
        T::parse_minted(value).map_err(E::custom)
    }

    fn visit_bytes<E: serde::de::Error>(self, value: &[u8]) -> Result<T, E> {
        match std::str::from_utf8(value) {
            Ok(text) => self.visit_str(text),
            Err(_) => Err(E::invalid_value(serde::de::Unexpected::Bytes(value), &self)),
        }
    }
}

/// What the visitor needs of an id type.
trait MintedId: Sized {
    fn parse_minted(value: &str) -> Result<Self, InvalidId>;
}

macro_rules! minted_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        ///
        /// It is held as the 64-bit number of its 16 hexadecimal digits (the prefix is the
        /// type), 8 bytes and no allocation; its text, order, JSON and display are those
        /// of the string `prefix` + 16 lowercase hexadecimal digits: the digits have a
        /// fixed width, so the numbers sort as the strings do.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u64);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Parses an id, refusing anything that keyledger could not have minted.
            pub fn parse(value: &str) -> Result<Self, InvalidId> {
                minted_number(value, $prefix).map(Self).ok_or(InvalidId { kind: $kind, prefix: $prefix })
            }

            /// Mints a fresh random id.
            pub fn generate<R: Rng + ?Sized>(rng: &mut R) -> Self {
                Self(rng.random())
            }

            /// A well-formed id for examples and tests: the prefix and `n` as 16
            /// hexadecimal digits, so that it is the same on every run.
            pub fn example(n: u64) -> Self {
                Self(n)
            }

            /// The id's text, `prefix` and 16 lowercase hexadecimal digits, on the stack.
            pub fn text(&self) -> IdText {
                IdText::minted($prefix, self.0)
            }
        }

        impl MintedId for $name {
            fn parse_minted(value: &str) -> Result<Self, InvalidId> {
                Self::parse(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, InvalidId> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.text().to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.text())
            }
        }

        /// In JSON (records, the API) its text; in binary formats (the snapshot) the 8
        /// big-endian bytes of its number, which sort as the text does.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.serialize_str(&self.text())
                } else {
                    self.0.to_be_bytes().serialize(serializer)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                if deserializer.is_human_readable() {
                    deserializer.deserialize_str(MintedIdVisitor(std::marker::PhantomData))
                } else {
                    <[u8; 8]>::deserialize(deserializer).map(|bytes| Self(u64::from_be_bytes(bytes)))
                }
            }
        }
    };
}

minted_id!(
    /// Identifies a role, such as "API Access".
    RoleId, "role_", "a role id"
);
minted_id!(
    /// Identifies a user: a person or a standalone API user.
    UserId, "usr_", "a user id"
);
minted_id!(
    /// Identifies an event access group.
    GroupId, "grp_", "an event group id"
);
minted_id!(
    /// The public identifier of an API key, shown in listings; it reveals nothing of the secret.
    KeyId, "key_", "a key id"
);

/// The reason a string is not a valid platform event id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event id is 1 to {max} characters from A-Z, a-z, 0-9 and . _ ~ : -", max = EventId::MAX_LEN)]
pub struct InvalidEventId;

/// The id of an event on the platform (a conference, a webinar): an opaque string chosen
/// by the platform, not by keyledger. It is limited to characters that are safe in a URL
/// path segment so that it can be named in paths without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

impl EventId {
    /// The longest event id accepted.
    pub const MAX_LEN: usize = 128;

    /// Parses a platform event id.
    pub fn parse(value: &str) -> Result<Self, InvalidEventId> {
        let well_formed = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b':' | b'-'));
        if well_formed { Ok(Self(value.to_owned())) } else { Err(InvalidEventId) }
    }

    /// A well-formed event id for examples and tests: `event-` and `n`.
    pub fn example(n: u64) -> Self {
        Self(format!("event-{n}"))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventId {
    type Error = InvalidEventId;
    fn try_from(value: String) -> Result<Self, InvalidEventId> {
        Self::parse(&value)
    }
}

impl From<EventId> for String {
    fn from(id: EventId) -> String {
        id.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for EventId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Who made a change: a user, through their key, or keyledger itself at bootstrap.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Actor {
    /// keyledger itself, when it initialises an empty data directory.
    System,
    /// The user whose key authenticated the request.
    User(UserId),
}

impl Actor {
    const SYSTEM: &'static str = "system";

    /// Parses an actor as it is written in records: `system` or a user id.
    pub fn parse(value: &str) -> Result<Self, InvalidId> {
        if value == Self::SYSTEM { Ok(Actor::System) } else { UserId::parse(value).map(Actor::User) }
    }

    /// The actor as it is written in records: `system` or a user id.
    pub fn text(&self) -> IdText {
        match self {
            Actor::System => IdText::fixed(Self::SYSTEM),
            Actor::User(id) => id.text(),
        }
    }
}

impl TryFrom<String> for Actor {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, InvalidId> {
        Self::parse(&value)
    }
}

impl From<Actor> for String {
    fn from(actor: Actor) -> String {
        actor.text().to_string()
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_minted_ids_and_refuses_other_kinds() {
        let mut rng = rand::rng();
        let role = RoleId::generate(&mut rng);
        assert_eq!(RoleId::parse(&role.text()), Ok(role.clone()));
        assert!(UserId::parse(&role.text()).is_err());
        assert!(RoleId::parse("role_0123456789ABCDEF").is_err());
        assert!(RoleId::parse("role_0123").is_err());
        assert!(RoleId::parse("").is_err());
    }

    /// Issue #11: ids are held as numbers, but every form of them that people or records
    /// see (text, JSON, order in sorted sets) is the string's; snapshots (postcard) hold
    /// the 8 bytes of the number.
    #[test]
    fn an_id_held_as_a_number_keeps_the_text_order_and_serde_forms_of_its_string() {
        let mut numbers = vec![0, 1, 0xf, 0x10, 0xa0, 0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000, u64::MAX];
        let mut rng = rand::rng();
        numbers.extend((0..64).map(|_| rng.random::<u64>()));
        let mut ids: Vec<RoleId> = Vec::new();
        for &n in &numbers {
            let text = format!("role_{n:016x}");
            let id = RoleId::parse(&text).unwrap();
            assert_eq!(
                (id.to_string(), &*id.text(), String::from(id.clone())),
                (text.clone(), text.as_str(), text.clone())
            );
            assert_eq!(serde_json::to_string(&id).unwrap(), serde_json::to_string(&text).unwrap());
            assert_eq!(serde_json::from_str::<RoleId>(&serde_json::to_string(&text).unwrap()).unwrap(), id);
            assert_eq!(postcard::to_stdvec(&id).unwrap(), n.to_be_bytes());
            assert_eq!(postcard::from_bytes::<RoleId>(&n.to_be_bytes()).unwrap(), id);
            ids.push(id);
        }
        let mut by_number = ids.clone();
        by_number.sort();
        ids.sort_by_key(|id| id.to_string());
        assert_eq!(by_number, ids);
        let user = UserId::example(0xab);
        assert_eq!(Actor::User(user.clone()).to_string(), "usr_00000000000000ab");
        assert_eq!(serde_json::to_string(&Actor::User(user)).unwrap(), "\"usr_00000000000000ab\"");
        assert_eq!(serde_json::to_string(&Actor::System).unwrap(), "\"system\"");
    }

    #[test]
    fn a_bad_id_in_json_is_refused_with_the_messages_of_a_string_field() {
        let as_string = |json: &str| serde_json::from_str::<String>(json).unwrap_err().to_string();
        assert_eq!(serde_json::from_str::<KeyId>("5").unwrap_err().to_string(), as_string("5"));
        assert_eq!(serde_json::from_str::<KeyId>("null").unwrap_err().to_string(), as_string("null"));
        let wrong = serde_json::from_str::<KeyId>("\"usr_00000000000000ab\"").unwrap_err().to_string();
        assert!(wrong.starts_with("a key id must look like `key_`"), "{wrong}");
        assert!(serde_json::from_str::<KeyId>("\"key_00000000000000\\u0061b\"").is_ok(), "an escaped id parses");
    }

    #[test]
    fn event_ids_are_limited_to_url_safe_characters() {
        assert!(EventId::parse("conf-2027.emea:day_1~a").is_ok());
        assert!(EventId::parse("").is_err());
        assert!(EventId::parse("a/b").is_err());
        assert!(EventId::parse("a b").is_err());
        assert!(EventId::parse(&"x".repeat(EventId::MAX_LEN + 1)).is_err());
    }

    #[test]
    fn actor_round_trips_through_its_string_form() {
        let user = UserId::parse("usr_00000000000000aa").unwrap();
        assert_eq!(Actor::try_from("system".to_owned()), Ok(Actor::System));
        assert_eq!(Actor::try_from(user.to_string()), Ok(Actor::User(user)));
        assert!(Actor::try_from("root".to_owned()).is_err());
    }
}
