//! Commands, and the pure function that turns a command into events or a refusal.
//!
//! [`decide`] is the wrapper every command goes through: authority first and last (see
//! `authority`), the `If-Match` version, and in between the rules of the command's family,
//! one module each: `bootstrap` (bootstrap and recovery), `roles`, `users`, `groups`,
//! `keys` and `records` (what keys did).

mod bootstrap;
mod groups;
mod keys;
mod policy;
mod records;
mod roles;
mod users;

use std::collections::BTreeSet;

use super::{
    Actor, DomainError, Email, Event, EventAccess, EventId, FunctionId, GroupId, KeyHash, KeyId, KeyPolicy, Name,
    RecoveryReason, Resource, RoleId, State, Timestamp, UserId, authority,
};

/// The longest grace period a rotation may give the replaced key: 30 days.
pub const MAX_GRACE_SECONDS: u64 = 30 * 24 * 60 * 60;

/// The longest path id an `AdminAccessDenied` records as its target, in characters; a
/// longer one is cut, so that a caller cannot write large records by being refused.
pub const MAX_DENIAL_TARGET_CHARS: usize = 64;

/// Something an admin (or bootstrap) asks keyledger to do.
///
/// Ids of new things are minted by the caller and carried in the command, so that
/// deciding stays deterministic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Initialises an empty ledger with an Administrator user, role and key.
    Bootstrap {
        /// The Administrator user to create.
        user_id: UserId,
        /// The Administrator role to create.
        role_id: RoleId,
        /// The first key's public id.
        key_id: KeyId,
        /// The first key's hash.
        key_hash: KeyHash,
    },
    /// Creates a role with no functions.
    CreateRole {
        /// The new role's id.
        role_id: RoleId,
        /// Its description, unique case-insensitively.
        description: Name,
    },
    /// Activates functions on a role.
    ActivateFunctions {
        /// The role.
        role_id: RoleId,
        /// The functions; those already active are left as they are.
        functions: BTreeSet<FunctionId>,
    },
    /// Deactivates functions on a role.
    DeactivateFunctions {
        /// The role.
        role_id: RoleId,
        /// The functions; those not active are left as they are.
        functions: BTreeSet<FunctionId>,
    },
    /// Creates a user.
    CreateUser {
        /// The new user's id.
        user_id: UserId,
        /// The display name.
        name: Name,
        /// A contact address.
        email: Option<Email>,
    },
    /// Disables a user.
    DisableUser {
        /// The user.
        user_id: UserId,
    },
    /// Enables a disabled user.
    EnableUser {
        /// The user.
        user_id: UserId,
    },
    /// Assigns a role to a user.
    AssignRole {
        /// The user.
        user_id: UserId,
        /// The role.
        role_id: RoleId,
    },
    /// Takes a role away from a user.
    UnassignRole {
        /// The user.
        user_id: UserId,
        /// The role.
        role_id: RoleId,
    },
    /// Creates an event access group.
    CreateEventGroup {
        /// The new group's id.
        group_id: GroupId,
        /// Its name, unique among its siblings.
        name: Name,
        /// The group to nest it in.
        parent_id: Option<GroupId>,
    },
    /// Adds a platform event to a group.
    AddEventToGroup {
        /// The group.
        group_id: GroupId,
        /// The event.
        event_id: EventId,
    },
    /// Removes a platform event from a group.
    RemoveEventFromGroup {
        /// The group.
        group_id: GroupId,
        /// The event.
        event_id: EventId,
    },
    /// Replaces a user's event access.
    SetUserEventAccess {
        /// The user.
        user_id: UserId,
        /// The new access.
        access: EventAccess,
    },
    /// Generates a key for a user, replacing their current one.
    GenerateKey {
        /// The user.
        user_id: UserId,
        /// The new key's public id.
        key_id: KeyId,
        /// The new key's hash.
        key_hash: KeyHash,
        /// When the new key expires.
        expires_at: Option<Timestamp>,
        /// How long the replaced key keeps working; `None` or 0 stops it at once.
        grace_seconds: Option<u64>,
    },
    /// Revokes a user's key (and the key it replaced, if that is still in its grace period).
    RevokeKey {
        /// The user.
        user_id: UserId,
    },
    /// Imports an existing (legacy) key for a user, known by a hash derived from its
    /// SHA-256, replacing their current key as `GenerateKey` does.
    ImportKey {
        /// The user.
        user_id: UserId,
        /// The key's public id, minted by keyledger.
        key_id: KeyId,
        /// `KeyHash::of_legacy_sha256` of the key.
        key_hash: KeyHash,
        /// When the key expires.
        expires_at: Option<Timestamp>,
        /// How long the replaced key keeps working; `None` or 0 stops it at once.
        grace_seconds: Option<u64>,
    },
    /// Sets the key policy, replacing the previous one whole.
    SetKeyPolicy {
        /// The new policy.
        policy: KeyPolicy,
    },
    /// Records that a working key was refused an admin operation for lack of a function.
    /// Not an admin change: it ignores `If-Match`, and records nothing for a key that is
    /// no longer known (it may have been replaced since the refusal).
    RecordAdminAccessDenied {
        /// The hash of the refused key.
        key_hash: KeyHash,
        /// The operationId of the refused request.
        operation: String,
        /// The admin function the request needed.
        function: FunctionId,
        /// The role, user or group id in the request's path, if any.
        target: Option<String>,
        /// Refusals of this key left unrecorded since its previous recorded one.
        suppressed: u32,
    },
    /// Records that the actor looked up a key (`lookupKey`): which key was found, never
    /// what was presented. Not a change to a resource: it ignores `If-Match`.
    RecordKeyLookup {
        /// The user the key was issued to.
        user_id: UserId,
        /// The key found.
        key_id: KeyId,
    },
    /// Records how keys were used since the last time. Not an admin change: it ignores
    /// `If-Match`, and skips keys no longer known and entries with no checks.
    RecordKeyUsage {
        /// One entry per key.
        usage: Vec<KeyUsage>,
    },
    /// Recovers administration of the ledger (`keyledger recover-admin`): a new user, a
    /// new role holding every admin function, and a key, in one `AdministratorRecovered`.
    /// Only the system may ask; nothing existing is changed.
    RecoverAdministrator {
        /// The new administrator.
        user_id: UserId,
        /// The new role.
        role_id: RoleId,
        /// The new key's public id.
        key_id: KeyId,
        /// The new key's hash.
        key_hash: KeyHash,
        /// Why, as the operator gave it.
        reason: RecoveryReason,
    },
}

/// How one key was used during an interval, as counted in memory by the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    /// The hash of the key's secret, which the checks have at hand.
    pub key_hash: KeyHash,
    /// Checks it passed.
    pub allowed: u64,
    /// Checks it failed while the key was known.
    pub refused: u64,
    /// When the first of them was made.
    pub first_used_at: Timestamp,
    /// When the last of them was made.
    pub last_used_at: Timestamp,
    /// The passed checks per function, sorted by function: how many, and the last.
    pub functions: Vec<(FunctionId, u64, Timestamp)>,
}

impl KeyUsage {
    /// The usage of one check made at `at`, of no function in particular.
    pub fn of_one_check(key_hash: KeyHash, allowed: bool, at: Timestamp) -> Self {
        KeyUsage {
            key_hash,
            allowed: u64::from(allowed),
            refused: u64::from(!allowed),
            first_used_at: at,
            last_used_at: at,
            functions: Vec::new(),
        }
    }

    /// The usage of one check of `function` made at `at`: a passed check also counts
    /// against its function.
    pub fn of_one_check_of(key_hash: KeyHash, function: FunctionId, allowed: bool, at: Timestamp) -> Self {
        let mut usage = Self::of_one_check(key_hash, allowed, at);
        if allowed {
            usage.functions.push((function, 1, at));
        }
        usage
    }

    /// Adds another count of the same key: the sums of the checks and the widest span, per
    /// key and per function.
    pub fn merge(&mut self, other: &KeyUsage) {
        self.allowed = self.allowed.saturating_add(other.allowed);
        self.refused = self.refused.saturating_add(other.refused);
        self.first_used_at = self.first_used_at.min(other.first_used_at);
        self.last_used_at = self.last_used_at.max(other.last_used_at);
        for &(function, passed, last) in &other.functions {
            match self.functions.binary_search_by_key(&function, |counted| counted.0) {
                Ok(at) => {
                    let counted = &mut self.functions[at];
                    counted.1 = counted.1.saturating_add(passed);
                    counted.2 = counted.2.max(last);
                }
                Err(at) => self.functions.insert(at, (function, passed, last)),
            }
        }
    }
}

/// What a command is decided with besides the state: who asks, when, and on what version.
#[derive(Debug, Clone)]
pub struct Context {
    /// Who asks.
    pub actor: Actor,
    /// The time of the decision.
    pub now: Timestamp,
    /// The version of the command's target the client last read (`If-Match`), if any.
    pub expected_version: Option<u64>,
    /// The hash of the key the actor presented, when the caller knows it: the command is
    /// then refused if that key no longer works when the command is applied.
    pub credential: Option<KeyHash>,
}

/// Decides a command against the state: the events to append, or why not.
///
/// Authority comes first and last (see `authority`): the actor must be able to act and
/// hold the command's function before anything the command names is looked up, and every
/// event it would append must be one the actor may make, leaving somebody able to
/// administer. A command that would change nothing (activating an active function)
/// yields no events.
pub fn decide(state: &State, context: &Context, command: Command) -> Result<Vec<Event>, DomainError> {
    authority::admit(state, context, &command)?;
    check_version(state, context, &command)?;
    let events = decide_unguarded(state, context, command)?;
    authority::authorise_events(state, context, &events)?;
    authority::keeps_an_administrator(state, &events)?;
    Ok(events)
}

/// Decides a command by the rules of the resources it names, authority aside.
fn decide_unguarded(state: &State, context: &Context, command: Command) -> Result<Vec<Event>, DomainError> {
    match command {
        Command::Bootstrap { user_id, role_id, key_id, key_hash } => {
            bootstrap::bootstrap(state, user_id, role_id, key_id, key_hash)
        }
        Command::CreateRole { role_id, description } => roles::create(state, role_id, description),
        Command::ActivateFunctions { role_id, functions } => roles::activate_functions(state, role_id, functions),
        Command::DeactivateFunctions { role_id, functions } => {
            roles::deactivate_functions(state, context, role_id, functions)
        }
        Command::CreateUser { user_id, name, email } => users::create(state, user_id, name, email),
        Command::DisableUser { user_id } => users::disable(state, context, user_id),
        Command::EnableUser { user_id } => users::enable(state, user_id),
        Command::AssignRole { user_id, role_id } => users::assign_role(state, user_id, role_id),
        Command::UnassignRole { user_id, role_id } => users::unassign_role(state, context, user_id, role_id),
        Command::CreateEventGroup { group_id, name, parent_id } => groups::create(state, group_id, name, parent_id),
        Command::AddEventToGroup { group_id, event_id } => groups::add_event(state, group_id, event_id),
        Command::RemoveEventFromGroup { group_id, event_id } => groups::remove_event(state, group_id, event_id),
        Command::SetUserEventAccess { user_id, access } => users::set_event_access(state, user_id, access),
        Command::GenerateKey { user_id, key_id, key_hash, expires_at, grace_seconds } => {
            keys::generate(state, context, user_id, key_id, key_hash, expires_at, grace_seconds)
        }
        Command::RevokeKey { user_id } => keys::revoke(state, context, user_id),
        Command::ImportKey { user_id, key_id, key_hash, expires_at, grace_seconds } => {
            keys::import(state, context, user_id, key_id, key_hash, expires_at, grace_seconds)
        }
        Command::SetKeyPolicy { policy } => policy::set(state, policy),
        Command::RecordAdminAccessDenied { key_hash, operation, function, target, suppressed } => {
            records::admin_access_denied(state, key_hash, operation, function, target, suppressed)
        }
        Command::RecordKeyUsage { usage } => records::key_usage(state, usage),
        Command::RecordKeyLookup { user_id, key_id } => records::key_lookup(state, user_id, key_id),
        Command::RecoverAdministrator { user_id, role_id, key_id, key_hash, reason } => {
            bootstrap::recover_administrator(state, context, user_id, role_id, key_id, key_hash, reason)
        }
    }
}

fn check_version(state: &State, context: &Context, command: &Command) -> Result<(), DomainError> {
    let Some(expected) = context.expected_version else {
        return Ok(());
    };
    let (resource, actual) = match command {
        Command::Bootstrap { .. }
        | Command::CreateRole { .. }
        | Command::CreateUser { .. }
        | Command::CreateEventGroup { .. } => return Ok(()),
        // Records of what keys did, not changes to a resource: no version to match.
        Command::RecordAdminAccessDenied { .. } | Command::RecordKeyUsage { .. } | Command::RecordKeyLookup { .. } => {
            return Ok(());
        }
        // Creates everything it touches.
        Command::RecoverAdministrator { .. } => return Ok(()),
        // The policy has no version of its own; it is replaced whole.
        Command::SetKeyPolicy { .. } => return Ok(()),
        Command::ActivateFunctions { role_id, .. } | Command::DeactivateFunctions { role_id, .. } => {
            (Resource::Role, find_role(state, role_id)?.version())
        }
        Command::DisableUser { user_id }
        | Command::EnableUser { user_id }
        | Command::AssignRole { user_id, .. }
        | Command::UnassignRole { user_id, .. }
        | Command::SetUserEventAccess { user_id, .. }
        | Command::GenerateKey { user_id, .. }
        | Command::ImportKey { user_id, .. }
        | Command::RevokeKey { user_id } => (Resource::User, find_user(state, user_id)?.version()),
        Command::AddEventToGroup { group_id, .. } | Command::RemoveEventFromGroup { group_id, .. } => {
            (Resource::Group, find_group(state, group_id)?.version())
        }
    };
    if expected == actual { Ok(()) } else { Err(DomainError::VersionMismatch { resource, expected, actual }) }
}

pub(super) fn refuse_self(context: &Context, target: &UserId, action: &'static str) -> Result<(), DomainError> {
    match &context.actor {
        Actor::User(actor) if actor == target => Err(DomainError::SelfLockout { action }),
        _ => Ok(()),
    }
}

/// The refusal of `name` for looking like `existing_name`, the name of the `resource`
/// `existing`.
pub(super) fn lookalike(
    resource: Resource,
    name: &Name,
    existing: &impl std::fmt::Display,
    existing_name: &str,
) -> DomainError {
    DomainError::LookalikeName {
        resource,
        name: name.as_str().to_owned(),
        existing: existing.to_string(),
        existing_name: existing_name.to_owned(),
    }
}

pub(super) fn find_role<'a>(state: &'a State, id: &RoleId) -> Result<&'a super::Role, DomainError> {
    state.role(id).ok_or_else(|| DomainError::NotFound { resource: Resource::Role, id: id.to_string() })
}

pub(super) fn find_user<'a>(state: &'a State, id: &UserId) -> Result<&'a super::User, DomainError> {
    state.user(id).ok_or_else(|| DomainError::NotFound { resource: Resource::User, id: id.to_string() })
}

pub(super) fn find_group<'a>(state: &'a State, id: &GroupId) -> Result<&'a super::Group, DomainError> {
    state.group(id).ok_or_else(|| DomainError::NotFound { resource: Resource::Group, id: id.to_string() })
}
