//! The audit vocabulary: every change keyledger can make, as an event.
//!
//! Events are the durable contract. A field is never renamed or removed; a change of
//! shape gets a new schema version and an upcaster in `crate::log::record`, so records
//! already written keep their bytes and their hashes.

use serde::{Deserialize, Serialize};

use super::{EventId, FunctionId, GroupId, KeyHash, KeyId, RoleId, Timestamp, UserId};

/// Something that happened, as recorded in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// A user was created, enabled, with no roles, no event access and no key.
    UserCreated {
        /// The new user.
        user_id: UserId,
        /// The user's display name.
        name: String,
        /// A contact address, if one was given.
        email: Option<String>,
    },
    /// A user was disabled: none of their keys passes a check.
    UserDisabled {
        /// The user.
        user_id: UserId,
    },
    /// A disabled user was enabled again.
    UserEnabled {
        /// The user.
        user_id: UserId,
    },
    /// A role was created with no functions.
    RoleCreated {
        /// The new role.
        role_id: RoleId,
        /// The role's description, unique case-insensitively.
        description: String,
    },
    /// A function was activated on a role.
    FunctionActivated {
        /// The role.
        role_id: RoleId,
        /// The function now active on it.
        function: FunctionId,
    },
    /// A function was deactivated on a role.
    FunctionDeactivated {
        /// The role.
        role_id: RoleId,
        /// The function no longer active on it.
        function: FunctionId,
    },
    /// A role was assigned to a user.
    RoleAssigned {
        /// The user.
        user_id: UserId,
        /// The role they now hold.
        role_id: RoleId,
    },
    /// A role was taken away from a user.
    RoleUnassigned {
        /// The user.
        user_id: UserId,
        /// The role they no longer hold.
        role_id: RoleId,
    },
    /// An event access group was created, empty.
    EventGroupCreated {
        /// The new group.
        group_id: GroupId,
        /// The group's name, unique among its siblings.
        name: String,
        /// The group it sits inside, if any.
        parent_id: Option<GroupId>,
    },
    /// An event was added to a group.
    EventAddedToGroup {
        /// The group.
        group_id: GroupId,
        /// The platform event.
        event_id: EventId,
    },
    /// An event was removed from a group.
    EventRemovedFromGroup {
        /// The group.
        group_id: GroupId,
        /// The platform event.
        event_id: EventId,
    },
    /// A user's event access was replaced.
    EventAccessSet {
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
    KeyGenerated {
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
    KeyRevoked {
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
    AdminAccessDenied {
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
    /// Checks stay in memory; a background task records one of these per key that was
    /// used since the last one. It changes no permission and no version; it sets the key's
    /// last use.
    KeyUsageRecorded {
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
    /// An operator recovered administration of the ledger with `keyledger recover-admin`
    /// on the stopped service: a new user was created with a new role holding every admin
    /// function, and a key. One record, so that the audit trail says "recovery", not a
    /// series of ordinary changes; nothing that existed before is changed.
    ///
    /// Only the system records it (never a user's request).
    AdministratorRecovered {
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
}

impl Event {
    /// Every event type this build knows, as written in records.
    pub const TYPE_NAMES: [&'static str; 17] = [
        "UserCreated",
        "UserDisabled",
        "UserEnabled",
        "RoleCreated",
        "FunctionActivated",
        "FunctionDeactivated",
        "RoleAssigned",
        "RoleUnassigned",
        "EventGroupCreated",
        "EventAddedToGroup",
        "EventRemovedFromGroup",
        "EventAccessSet",
        "KeyGenerated",
        "KeyRevoked",
        "AdminAccessDenied",
        "KeyUsageRecorded",
        "AdministratorRecovered",
    ];

    /// The event's type, as written in the record's `type` field.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::UserCreated { .. } => "UserCreated",
            Event::UserDisabled { .. } => "UserDisabled",
            Event::UserEnabled { .. } => "UserEnabled",
            Event::RoleCreated { .. } => "RoleCreated",
            Event::FunctionActivated { .. } => "FunctionActivated",
            Event::FunctionDeactivated { .. } => "FunctionDeactivated",
            Event::RoleAssigned { .. } => "RoleAssigned",
            Event::RoleUnassigned { .. } => "RoleUnassigned",
            Event::EventGroupCreated { .. } => "EventGroupCreated",
            Event::EventAddedToGroup { .. } => "EventAddedToGroup",
            Event::EventRemovedFromGroup { .. } => "EventRemovedFromGroup",
            Event::EventAccessSet { .. } => "EventAccessSet",
            Event::KeyGenerated { .. } => "KeyGenerated",
            Event::KeyRevoked { .. } => "KeyRevoked",
            Event::AdminAccessDenied { .. } => "AdminAccessDenied",
            Event::KeyUsageRecorded { .. } => "KeyUsageRecorded",
            Event::AdministratorRecovered { .. } => "AdministratorRecovered",
        }
    }

    /// The schema version this build writes for the event's type.
    pub fn schema_version(&self) -> u32 {
        1
    }

    /// The id of the role, user or group the event is about.
    pub fn subject(&self) -> &str {
        match self {
            Event::UserCreated { user_id, .. }
            | Event::UserDisabled { user_id }
            | Event::UserEnabled { user_id }
            | Event::RoleAssigned { user_id, .. }
            | Event::RoleUnassigned { user_id, .. }
            | Event::EventAccessSet { user_id, .. }
            | Event::KeyGenerated { user_id, .. }
            | Event::KeyRevoked { user_id, .. }
            | Event::AdminAccessDenied { user_id, .. }
            | Event::KeyUsageRecorded { user_id, .. }
            | Event::AdministratorRecovered { user_id, .. } => user_id.as_str(),
            Event::RoleCreated { role_id, .. }
            | Event::FunctionActivated { role_id, .. }
            | Event::FunctionDeactivated { role_id, .. } => role_id.as_str(),
            Event::EventGroupCreated { group_id, .. }
            | Event::EventAddedToGroup { group_id, .. }
            | Event::EventRemovedFromGroup { group_id, .. } => group_id.as_str(),
        }
    }
}
