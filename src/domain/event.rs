//! The audit vocabulary: every change keyledger can make, as an event.
//!
//! Events are the durable contract. A field is never renamed or removed; a change of
//! shape gets a new schema version and an upcaster in `crate::log::record`, so records
//! already written keep their bytes and their hashes.

use serde::{Deserialize, Serialize};

use super::{EventId, FunctionId, GroupId, IdText, KeyHash, KeyId, RoleId, Timestamp, UserId};

/// Declares [`Event`] from one list of its variants, and with it what must stay in step
/// with that list: [`Event::TYPE_NAMES`], [`Event::type_name`] and [`Event::subject`].
///
/// Each variant is written as `Name about field { fields }`, where `field` is the id of
/// the role, user or group the event is about: its record's `subject`; a record about no
/// single role, user or group names a fixed subject instead, as `Name about "text"`. The
/// type name is the variant's name, which is also the `type` serde writes, so a record's
/// `type` and [`Event::type_name`] cannot disagree.
macro_rules! event_types {
    ($(
        $(#[$variant_doc:meta])*
        $variant:ident about $subject:tt {
            $( $(#[$field_doc:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    ),* $(,)?) => {
        /// Something that happened, as recorded in the log.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "type", content = "data")]
        pub enum Event {
            $(
                $(#[$variant_doc])*
                $variant {
                    $( $(#[$field_doc])* $field: $ty, )*
                },
            )*
        }

        impl Event {
            /// Every event type this build knows, as written in records, in the order
            /// they are declared.
            pub const TYPE_NAMES: [&'static str; [$(stringify!($variant)),*].len()] = [$(stringify!($variant)),*];

            /// The event's type, as written in the record's `type` field.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $( Event::$variant { .. } => stringify!($variant), )*
                }
            }

            /// The id of the role, user or group the event is about (`system` for a record
            /// about many).
            pub fn subject(&self) -> IdText {
                match self {
                    $( subject_pattern!($variant, $subject) => subject_value!($subject), )*
                }
            }
        }
    };
}

/// The pattern of [`Event::subject`]'s arm for one variant: binding its subject field, or
/// nothing when the subject is fixed.
macro_rules! subject_pattern {
    ($variant:ident, $field:ident) => {
        Event::$variant { $field, .. }
    };
    ($variant:ident, $fixed:literal) => {
        Event::$variant { .. }
    };
}

/// The value of [`Event::subject`]'s arm for one variant.
macro_rules! subject_value {
    ($field:ident) => {
        $field.text()
    };
    ($fixed:literal) => {{
        const _: () = assert!($fixed.len() <= IdText::CAPACITY, "a fixed subject must fit in an IdText");
        IdText::fixed($fixed)
    }};
}

/// The most keys one `KeyUsageIntervalRecorded` holds. An interval in which more keys were
/// used is recorded as several, each of at most this many keys, so that a record stays
/// under about half a MiB even with the largest counts (a key's entry is at most about
/// 130 bytes; 70 for a typical one), and an audit page, an export line or a replay step
/// stays bounded whatever the number of keys.
pub const MAX_KEYS_PER_USAGE_RECORD: usize = 4096;

/// One key's checks in a `KeyUsageIntervalRecorded`. It is written as the JSON array
/// `[user_id, key_id, allowed, refused, first, last, functions]`, `first` and `last` in
/// milliseconds after the record's `from`, `functions` the checks passed per function
/// (each `[function, allowed, last]`, in catalogue order): a fifth of the bytes of a record
/// per key, and about 30 more per function used.
///
/// Version 1 of the record (before issue #14) wrote the first six members only; such an
/// entry reads with `functions` `None`: which functions its passed checks were of is not
/// known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    /// The key's user.
    pub user_id: UserId,
    /// The key.
    pub key_id: KeyId,
    /// Checks the key passed.
    pub allowed: u64,
    /// Checks the key failed while it was known.
    pub refused: u64,
    /// The first of those checks, in milliseconds after the record's `from`.
    pub first_after: u64,
    /// The last of those checks, in milliseconds after the record's `from`.
    pub last_after: u64,
    /// The passed checks per function, one entry per function used, in catalogue order;
    /// `None` in a record of version 1, which did not count them.
    pub functions: Option<Vec<FunctionUse>>,
}

/// The checks one key passed for one function in a `KeyUsageIntervalRecorded`, written as
/// `[function, allowed, last]`, `last` in milliseconds after the record's `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionUse(
    /// The function.
    pub FunctionId,
    /// Checks of it the key passed.
    pub u64,
    /// The last of them, in milliseconds after the record's `from`.
    pub u64,
);

impl Serialize for KeyUse {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut row = serializer.serialize_tuple(if self.functions.is_some() { 7 } else { 6 })?;
        row.serialize_element(&self.user_id)?;
        row.serialize_element(&self.key_id)?;
        row.serialize_element(&self.allowed)?;
        row.serialize_element(&self.refused)?;
        row.serialize_element(&self.first_after)?;
        row.serialize_element(&self.last_after)?;
        if let Some(functions) = &self.functions {
            row.serialize_element(functions)?;
        }
        row.end()
    }
}

impl<'de> Deserialize<'de> for KeyUse {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(KeyUseVisitor)
    }
}

/// Reads a [`KeyUse`] row: six members (version 1) or seven, in one pass.
struct KeyUseVisitor;

impl<'de> serde::de::Visitor<'de> for KeyUseVisitor {
    type Value = KeyUse;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("[user_id, key_id, allowed, refused, first, last] or with [functions] after them")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut row: A) -> Result<KeyUse, A::Error> {
        let missing = |at: usize| serde::de::Error::invalid_length(at, &self);
        let user_id = row.next_element()?.ok_or_else(|| missing(0))?;
        let key_id = row.next_element()?.ok_or_else(|| missing(1))?;
        let allowed = row.next_element()?.ok_or_else(|| missing(2))?;
        let refused = row.next_element()?.ok_or_else(|| missing(3))?;
        let first_after = row.next_element()?.ok_or_else(|| missing(4))?;
        let last_after = row.next_element()?.ok_or_else(|| missing(5))?;
        let functions = row.next_element()?;
        if row.next_element::<serde::de::IgnoredAny>()?.is_some() {
            return Err(serde::de::Error::invalid_length(8, &self));
        }
        Ok(KeyUse { user_id, key_id, allowed, refused, first_after, last_after, functions })
    }
}

impl KeyUse {
    /// The first check, given the record's `from`.
    pub fn first_used_at(&self, from: Timestamp) -> Timestamp {
        after(from, self.first_after)
    }

    /// The last check, given the record's `from`.
    pub fn last_used_at(&self, from: Timestamp) -> Timestamp {
        after(from, self.last_after)
    }
}

impl FunctionUse {
    /// The last check of the function, given the record's `from`.
    pub fn last_used_at(&self, from: Timestamp) -> Timestamp {
        after(from, self.2)
    }
}

/// `millis` after `from`, saturating: a record's numbers are never trusted not to overflow.
fn after(from: Timestamp, millis: u64) -> Timestamp {
    Timestamp::from_unix_millis(from.unix_millis().saturating_add(i64::try_from(millis).unwrap_or(i64::MAX)))
}

event_types! {
    /// A user was created, enabled, with no roles, no event access and no key.
    UserCreated about user_id {
        /// The new user.
        user_id: UserId,
        /// The user's display name.
        name: String,
        /// A contact address, if one was given.
        email: Option<String>,
    },
    /// A user was disabled: none of their keys passes a check.
    UserDisabled about user_id {
        /// The user.
        user_id: UserId,
    },
    /// A disabled user was enabled again.
    UserEnabled about user_id {
        /// The user.
        user_id: UserId,
    },
    /// A role was created with no functions.
    RoleCreated about role_id {
        /// The new role.
        role_id: RoleId,
        /// The role's description, unique case-insensitively.
        description: String,
    },
    /// A function was activated on a role.
    FunctionActivated about role_id {
        /// The role.
        role_id: RoleId,
        /// The function now active on it.
        function: FunctionId,
    },
    /// A function was deactivated on a role.
    FunctionDeactivated about role_id {
        /// The role.
        role_id: RoleId,
        /// The function no longer active on it.
        function: FunctionId,
    },
    /// A role was assigned to a user.
    RoleAssigned about user_id {
        /// The user.
        user_id: UserId,
        /// The role they now hold.
        role_id: RoleId,
    },
    /// A role was taken away from a user.
    RoleUnassigned about user_id {
        /// The user.
        user_id: UserId,
        /// The role they no longer hold.
        role_id: RoleId,
    },
    /// An event access group was created, empty.
    EventGroupCreated about group_id {
        /// The new group.
        group_id: GroupId,
        /// The group's name, unique among its siblings.
        name: String,
        /// The group it sits inside, if any.
        parent_id: Option<GroupId>,
    },
    /// An event was added to a group.
    EventAddedToGroup about group_id {
        /// The group.
        group_id: GroupId,
        /// The platform event.
        event_id: EventId,
    },
    /// An event was removed from a group.
    EventRemovedFromGroup about group_id {
        /// The group.
        group_id: GroupId,
        /// The platform event.
        event_id: EventId,
    },
    /// A user's event access was replaced.
    EventAccessSet about user_id {
        /// The user.
        user_id: UserId,
        /// Whether the user may access every event.
        all_events: bool,
        /// The groups whose events (and whose descendants' events) the user may access.
        groups: Vec<GroupId>,
    },
    /// A key was generated for a user, replacing their previous key.
    ///
    /// It holds the key's hash, never its secret.
    KeyGenerated about user_id {
        /// The user the key authenticates.
        user_id: UserId,
        /// The key's public id.
        key_id: KeyId,
        /// The blake3 hash of the secret.
        key_hash: KeyHash,
        /// When the key stops working, if it expires.
        expires_at: Option<Timestamp>,
        /// The key this one replaces, if the user had one.
        replaced_key_id: Option<KeyId>,
        /// Until when the replaced key still works; `None` means it stopped at once.
        replaced_key_valid_until: Option<Timestamp>,
    },
    /// A key was revoked: it passes no check from now on.
    KeyRevoked about user_id {
        /// The user the key belonged to.
        user_id: UserId,
        /// The revoked key.
        key_id: KeyId,
    },
    /// A working key was refused an admin operation because none of its user's roles has
    /// the admin function the operation needs (an HTTP 403).
    ///
    /// It changes no permission and no version. Refusals are recorded at most a few per
    /// key per window; the ones left out are counted in `suppressed` of the next one
    /// recorded for the same key, so the trail shows escalation attempts without letting
    /// a caller flood it.
    AdminAccessDenied about user_id {
        /// The user whose key was refused; also the record's actor.
        user_id: UserId,
        /// The key that was refused.
        key_id: KeyId,
        /// The OpenAPI operationId of the refused request, such as `createRole`.
        operation: String,
        /// The admin function the operation needs and the user's roles lack.
        function: FunctionId,
        /// The role, user or group id in the request's path, if it names one (as sent, at
        /// most 64 characters).
        target: Option<String>,
        /// How many refusals of this key were left unrecorded since the previous
        /// `AdminAccessDenied` of this key (by the per-key limit).
        suppressed: u32,
    },
    /// A key was used during an interval: how many checks it passed and failed.
    ///
    /// Written by builds before `KeyUsageIntervalRecorded`, one per key used in each
    /// interval, and read forever. It changes no permission and no version; it sets the
    /// key's last use.
    KeyUsageRecorded about user_id {
        /// The key's user.
        user_id: UserId,
        /// The key.
        key_id: KeyId,
        /// Checks the key passed (key checks, gateway checks and admin requests).
        allowed: u64,
        /// Checks the key failed while it was known: a function or event it may not use,
        /// or the key revoked, expired or its user disabled.
        refused: u64,
        /// The first of those checks.
        first_used_at: Timestamp,
        /// The last of those checks.
        last_used_at: Timestamp,
    },
    /// The keys used during an interval: for each, how many checks it passed and failed,
    /// and when the first and last were made.
    ///
    /// Checks stay in memory; a background task records what was counted since the last
    /// record in one of these (several when more than [`MAX_KEYS_PER_USAGE_RECORD`] keys
    /// were used), so the log grows by a bounded number of records per interval whatever
    /// the number of keys. It is about no single user, so its subject is `system`. It
    /// changes no permission and no version; it sets each key's last use.
    KeyUsageIntervalRecorded about "system" {
        /// The first check counted in the record.
        from: Timestamp,
        /// The last check counted in the record.
        to: Timestamp,
        /// Each key used, sorted by user and key id.
        keys: Vec<KeyUse>,
    },
    /// An operator recovered administration of the ledger with `keyledger recover-admin`
    /// on the stopped service: a new user was created with a new role holding every admin
    /// function, and a key. One record, so that the audit trail says "recovery", not a
    /// series of ordinary changes; nothing that existed before is changed.
    ///
    /// Only the system records it (never a user's request).
    AdministratorRecovered about user_id {
        /// The new administrator.
        user_id: UserId,
        /// Its display name.
        name: String,
        /// The new role, holding every admin function.
        role_id: RoleId,
        /// The role's description, unique case-insensitively.
        role_description: String,
        /// The new key's public id.
        key_id: KeyId,
        /// The blake3 hash of the new key's secret.
        key_hash: KeyHash,
        /// Why the operator recovered administration, as they gave it.
        reason: String,
    },
    /// An auditor looked a key up by its secret or its hash (`lookupKey`), typically a
    /// key found where it should not be. The actor is the auditor; it records which key was
    /// found, never what was presented. It changes no permission and no version.
    KeyLookedUp about user_id {
        /// The user the key was issued to.
        user_id: UserId,
        /// The key found.
        key_id: KeyId,
    },
    /// The key policy was set (`setKeyPolicy`), replacing the previous one whole. It changes
    /// no entity and no version; the check judges every key by it from then on.
    KeyPolicySet about "system" {
        /// A key this many days after its creation is refused as `key_too_old`; `None`:
        /// no limit.
        max_lifetime_days: Option<u32>,
        /// Whether a new key must have an expiry (administrators' keys excepted).
        require_expiry: bool,
        /// A key with no recorded use for this many days is refused as `key_dormant`;
        /// `None`: no limit.
        max_unused_days: Option<u32>,
    },
    /// An existing key (one of the platform's 32-hexadecimal-character keys, or only its
    /// SHA-256) was imported for a user, replacing their previous key, as `KeyGenerated`
    /// does. The key is marked legacy.
    ///
    /// It holds a hash derived from the key's SHA-256 (`KeyHash::of_legacy_sha256`), never
    /// the key.
    KeyImported about user_id {
        /// The user the key authenticates.
        user_id: UserId,
        /// The key's public id, minted by keyledger.
        key_id: KeyId,
        /// The hash the check looks the key up by: blake3, keyed for legacy keys, of the
        /// key's SHA-256.
        key_hash: KeyHash,
        /// When the key stops working, if it expires.
        expires_at: Option<Timestamp>,
        /// The key this one replaces, if the user had one.
        replaced_key_id: Option<KeyId>,
        /// Until when the replaced key still works; `None` means it stopped at once.
        replaced_key_valid_until: Option<Timestamp>,
    },
}

impl Event {
    /// The schema version this build writes for the event: 1, but 2 for a
    /// `KeyUsageIntervalRecorded`, whose entries count the checks passed per function since
    /// issue #14 (`crate::log::record` upcasts version 1). One read from a version 1
    /// record (its entries' `functions` unknown) is written as version 1 again, so that
    /// encoding any decoded event gives a record that decodes to it.
    pub fn schema_version(&self) -> u32 {
        match self {
            Event::KeyUsageIntervalRecorded { keys, .. } if keys.iter().any(|used| used.functions.is_none()) => 1,
            _ => Self::current_version(self.type_name()),
        }
    }

    /// Whether the event has the shape its type has at schema `version`: a
    /// `KeyUsageIntervalRecorded` of version 1 counts no function, one of version 2 counts
    /// them for every key; every other type has one shape.
    pub fn has_shape_of_version(&self, version: u32) -> bool {
        match self {
            Event::KeyUsageIntervalRecorded { keys, .. } => {
                keys.iter().all(|used| used.functions.is_some() == (version >= 2))
            }
            _ => true,
        }
    }

    /// The schema version this build writes for events of type `kind`.
    pub fn current_version(kind: &str) -> u32 {
        if kind == "KeyUsageIntervalRecorded" { 2 } else { 1 }
    }

    /// One example of every event type, in the order of [`Event::TYPE_NAMES`], with the
    /// same ids and times on every run.
    ///
    /// Applied in order to an empty state they are a coherent history: a user disabled
    /// and enabled again, a role given a function and assigned, a group with an event, a
    /// key generated, used and revoked, and an administrator recovered. The record
    /// round-trip test, the fuzz seeds and the snapshot layout test are all made from
    /// them, so a new event type is covered by all three once it has its example here
    /// (a test fails until it has).
    pub fn examples() -> Vec<Event> {
        let user_id = UserId::example(1);
        let role_id = RoleId::example(1);
        let group_id = GroupId::example(1);
        let key_id = KeyId::example(1);
        let at = Timestamp::from_unix_millis(1_800_000_000_000);
        vec![
            Event::UserCreated {
                user_id: user_id.clone(),
                name: "Ticket shop \"EU\" é".to_owned(),
                email: Some("api@example.com".to_owned()),
            },
            Event::UserDisabled { user_id: user_id.clone() },
            Event::UserEnabled { user_id: user_id.clone() },
            Event::RoleCreated { role_id: role_id.clone(), description: "API Access".to_owned() },
            Event::FunctionActivated { role_id: role_id.clone(), function: FunctionId::USERS_READ },
            Event::FunctionDeactivated { role_id: role_id.clone(), function: FunctionId::ROLES_READ },
            Event::RoleAssigned { user_id: user_id.clone(), role_id: role_id.clone() },
            Event::RoleUnassigned { user_id: user_id.clone(), role_id: role_id.clone() },
            Event::EventGroupCreated { group_id: group_id.clone(), name: "Europe".to_owned(), parent_id: None },
            Event::EventAddedToGroup { group_id: group_id.clone(), event_id: EventId::example(1) },
            Event::EventRemovedFromGroup { group_id: group_id.clone(), event_id: EventId::example(1) },
            Event::EventAccessSet { user_id: user_id.clone(), all_events: false, groups: vec![group_id] },
            Event::KeyGenerated {
                user_id: user_id.clone(),
                key_id: key_id.clone(),
                key_hash: KeyHash::example(1),
                expires_at: Some(at.plus_seconds(86_400)),
                replaced_key_id: None,
                replaced_key_valid_until: None,
            },
            Event::KeyRevoked { user_id: user_id.clone(), key_id: key_id.clone() },
            Event::AdminAccessDenied {
                user_id: user_id.clone(),
                key_id: key_id.clone(),
                operation: "createRole".to_owned(),
                function: FunctionId::ROLES_MANAGE,
                target: Some(RoleId::example(1).to_string()),
                suppressed: 2,
            },
            Event::KeyUsageRecorded {
                user_id: user_id.clone(),
                key_id: key_id.clone(),
                allowed: 7,
                refused: 1,
                first_used_at: at,
                last_used_at: at.plus_seconds(60),
            },
            Event::KeyUsageIntervalRecorded {
                from: at,
                to: at.plus_seconds(120),
                keys: vec![KeyUse {
                    user_id,
                    key_id,
                    allowed: 3,
                    refused: 0,
                    first_after: 60_000,
                    last_after: 120_000,
                    functions: Some(vec![FunctionUse(FunctionId::USERS_READ, 3, 120_000)]),
                }],
            },
            Event::AdministratorRecovered {
                user_id: UserId::example(2),
                name: "Recovered admin".to_owned(),
                role_id: RoleId::example(2),
                role_description: "Recovered administration".to_owned(),
                key_id: KeyId::example(2),
                key_hash: KeyHash::example(2),
                reason: "The last administrator left".to_owned(),
            },
            Event::KeyLookedUp { user_id: UserId::example(1), key_id: KeyId::example(1) },
            Event::KeyPolicySet { max_lifetime_days: Some(365), require_expiry: true, max_unused_days: Some(90) },
            Event::KeyImported {
                user_id: UserId::example(1),
                key_id: KeyId::example(3),
                key_hash: KeyHash::example(3),
                expires_at: Some(at.plus_seconds(86_400 * 30)),
                replaced_key_id: None,
                replaced_key_valid_until: None,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_one_example_in_declaration_order() {
        let names: Vec<&str> = Event::examples().iter().map(Event::type_name).collect();
        assert_eq!(names, Event::TYPE_NAMES, "Event::examples() needs one example of each type, in order");
    }

    #[test]
    fn every_example_names_its_subject_and_serialises_with_its_type_as_the_tag() {
        for event in Event::examples() {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], event.type_name());
            let names_it = json["data"].as_object().unwrap().values().any(|value| *value == *event.subject());
            assert!(names_it || event.subject() == "system", "{json}");
        }
    }
}
