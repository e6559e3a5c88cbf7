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

fn is_minted_id(value: &str, prefix: &str) -> bool {
    value.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == RANDOM_HEX_LEN && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

fn mint<R: Rng + ?Sized>(prefix: &str, rng: &mut R) -> String {
    let random: u64 = rng.random();
    format!("{prefix}{random:016x}")
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

macro_rules! minted_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Parses an id, refusing anything that keyledger could not have minted.
            pub fn parse(value: &str) -> Result<Self, InvalidId> {
                if is_minted_id(value, $prefix) {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(InvalidId { kind: $kind, prefix: $prefix })
                }
            }

            /// Mints a fresh random id.
            pub fn generate<R: Rng + ?Sized>(rng: &mut R) -> Self {
                Self(mint($prefix, rng))
            }

            /// A well-formed id for examples and tests: the prefix and `n` as 16
            /// hexadecimal digits, so that it is the same on every run.
            pub fn example(n: u64) -> Self {
                Self(format!("{}{n:016x}", $prefix))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
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
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
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
    pub fn as_str(&self) -> &str {
        match self {
            Actor::System => Self::SYSTEM,
            Actor::User(id) => id.as_str(),
        }
    }
}

text_form!(Actor, InvalidId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_minted_ids_and_refuses_other_kinds() {
        let mut rng = rand::rng();
        let role = RoleId::generate(&mut rng);
        assert_eq!(RoleId::parse(role.as_str()), Ok(role.clone()));
        assert!(UserId::parse(role.as_str()).is_err());
        assert!(RoleId::parse("role_0123456789ABCDEF").is_err());
        assert!(RoleId::parse("role_0123").is_err());
        assert!(RoleId::parse("").is_err());
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
