//! Commands, and the pure function that turns a command into events or a refusal.

use std::collections::BTreeSet;

use super::{
    Actor, DomainError, Email, Event, EventAccess, EventId, FunctionId, FunctionSet, GroupId, KeyHash, KeyId,
    Lookalike, Name, RecoveryReason, Resource, RoleId, State, Timestamp, UserId, authority, values,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

impl KeyUsage {
    /// The usage of one check made at `at`.
    pub fn of_one_check(key_hash: KeyHash, allowed: bool, at: Timestamp) -> Self {
        KeyUsage {
            key_hash,
            allowed: u64::from(allowed),
            refused: u64::from(!allowed),
            first_used_at: at,
            last_used_at: at,
        }
    }

    /// Adds another count of the same key: the sums of the checks and the widest span.
    pub fn merge(&mut self, other: &KeyUsage) {
        self.allowed = self.allowed.saturating_add(other.allowed);
        self.refused = self.refused.saturating_add(other.refused);
        self.first_used_at = self.first_used_at.min(other.first_used_at);
        self.last_used_at = self.last_used_at.max(other.last_used_at);
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
            if state.head() != 0 {
                return Err(DomainError::AlreadyInitialised);
            }
            let mut events = vec![
                Event::UserCreated { user_id: user_id.clone(), name: "Administrator".to_owned(), email: None },
                Event::RoleCreated { role_id: role_id.clone(), description: "Administrator".to_owned() },
            ];
            events.extend(
                FunctionSet::all_admin()
                    .iter()
                    .map(|function| Event::FunctionActivated { role_id: role_id.clone(), function }),
            );
            events.push(Event::RoleAssigned { user_id: user_id.clone(), role_id });
            events.push(Event::KeyGenerated {
                user_id,
                key_id,
                key_hash,
                expires_at: None,
                replaced_key_id: None,
                replaced_key_valid_until: None,
            });
            Ok(events)
        }
        Command::CreateRole { role_id, description } => {
            if let Some(existing) = state.role_by_description(description.as_str()) {
                if values::fold(existing.description()) != description.folded() {
                    return Err(DomainError::LookalikeName {
                        resource: Resource::Role,
                        name: description.as_str().to_owned(),
                        existing: existing.id().to_string(),
                        existing_name: existing.description().to_owned(),
                    });
                }
                return Err(DomainError::DuplicateRoleDescription {
                    description: description.as_str().to_owned(),
                    existing: existing.id().clone(),
                });
            }
            Ok(vec![Event::RoleCreated { role_id, description: description.as_str().to_owned() }])
        }
        Command::ActivateFunctions { role_id, functions } => {
            let role = find_role(state, &role_id)?;
            let added: FunctionSet = functions.iter().copied().filter(|f| !role.functions().contains(*f)).collect();
            let after = role.functions().union(added);
            if after.has_api() && after.has_admin() {
                // Name the first added function of the kind the role cannot also hold.
                let role_has_admin = role.functions().has_admin();
                let offending = added.iter().find(|f| if role_has_admin { f.is_api() } else { f.is_admin() });
                if let Some(function) = offending {
                    return Err(DomainError::MixedRole { role_id, function });
                }
            }
            if after.has_api() && !role.is_api_role() {
                // The role becomes an API role: each holder must hold it alone.
                if let Some(holder) =
                    role.holders().iter().find(|user| state.user(user).is_some_and(|user| user.roles().len() > 1))
                {
                    return Err(DomainError::StandaloneApiRole { user_id: holder.clone(), api_role: role_id });
                }
            }
            Ok(added.iter().map(|function| Event::FunctionActivated { role_id: role_id.clone(), function }).collect())
        }
        Command::DeactivateFunctions { role_id, functions } => {
            let role = find_role(state, &role_id)?;
            let held_by_actor = matches!(&context.actor, Actor::User(actor) if role.holders().contains(actor));
            if held_by_actor && functions.iter().any(|f| f.is_admin() && role.functions().contains(*f)) {
                return Err(DomainError::SelfLockout { action: "deactivate admin functions on a role you hold" });
            }
            Ok(functions
                .into_iter()
                .filter(|f| role.functions().contains(*f))
                .map(|function| Event::FunctionDeactivated { role_id: role_id.clone(), function })
                .collect())
        }
        Command::CreateUser { user_id, name, email } => {
            // User names are unique by look, like role descriptions: the access review
            // names users, and two that read the same cannot be told apart there.
            if let Some(existing) = state.user_named_like(name.as_str()) {
                return Err(DomainError::LookalikeName {
                    resource: Resource::User,
                    name: name.as_str().to_owned(),
                    existing: existing.id().to_string(),
                    existing_name: existing.name().to_owned(),
                });
            }
            Ok(vec![Event::UserCreated {
                user_id,
                name: name.as_str().to_owned(),
                email: email.map(|email| email.as_str().to_owned()),
            }])
        }
        Command::DisableUser { user_id } => {
            refuse_self(context, &user_id, "disable yourself")?;
            let user = find_user(state, &user_id)?;
            Ok(if user.is_enabled() { vec![Event::UserDisabled { user_id }] } else { vec![] })
        }
        Command::EnableUser { user_id } => {
            let user = find_user(state, &user_id)?;
            Ok(if user.is_enabled() { vec![] } else { vec![Event::UserEnabled { user_id }] })
        }
        Command::AssignRole { user_id, role_id } => {
            let user = find_user(state, &user_id)?;
            let role = find_role(state, &role_id)?;
            if user.roles().contains(&role_id) {
                return Ok(vec![]);
            }
            if role.is_api_role() && !user.roles().is_empty() {
                return Err(DomainError::StandaloneApiRole { user_id, api_role: role_id });
            }
            let held_api_role =
                user.roles().iter().find(|held| state.role(held).is_some_and(|held| held.is_api_role()));
            if let Some(api_role) = held_api_role {
                return Err(DomainError::StandaloneApiRole { user_id, api_role: api_role.clone() });
            }
            Ok(vec![Event::RoleAssigned { user_id, role_id }])
        }
        Command::UnassignRole { user_id, role_id } => {
            refuse_self(context, &user_id, "unassign your own roles")?;
            let user = find_user(state, &user_id)?;
            find_role(state, &role_id)?;
            if !user.roles().contains(&role_id) {
                return Err(DomainError::RoleNotAssigned { user_id, role_id });
            }
            Ok(vec![Event::RoleUnassigned { user_id, role_id }])
        }
        Command::CreateEventGroup { group_id, name, parent_id } => {
            let siblings: Vec<&GroupId> = match &parent_id {
                Some(parent) => find_group(state, parent)?.children().iter().collect(),
                None => state.groups_after(0).filter(|g| g.parent().is_none()).map(|g| g.id()).collect(),
            };
            let keys = Lookalike::keys_of(name.as_str());
            let looks_alike = |name: &str| Lookalike::keys_of(name).iter().any(|key| keys.contains(key));
            if let Some(existing) =
                siblings.into_iter().filter_map(|id| state.group(id)).find(|g| looks_alike(g.name()))
            {
                if values::fold(existing.name()) != name.folded() {
                    return Err(DomainError::LookalikeName {
                        resource: Resource::Group,
                        name: name.as_str().to_owned(),
                        existing: existing.id().to_string(),
                        existing_name: existing.name().to_owned(),
                    });
                }
                return Err(DomainError::DuplicateGroupName {
                    name: name.as_str().to_owned(),
                    existing: existing.id().clone(),
                });
            }
            // The depth limit bounds what any walk up a chain of groups can cost.
            if let Some(parent) = &parent_id
                && state.ancestry(parent).count() >= super::Group::MAX_DEPTH
            {
                return Err(DomainError::GroupTooDeep { max: super::Group::MAX_DEPTH });
            }
            Ok(vec![Event::EventGroupCreated { group_id, name: name.as_str().to_owned(), parent_id }])
        }
        Command::AddEventToGroup { group_id, event_id } => {
            let group = find_group(state, &group_id)?;
            Ok(if group.events().contains(&event_id) {
                vec![]
            } else {
                vec![Event::EventAddedToGroup { group_id, event_id }]
            })
        }
        Command::RemoveEventFromGroup { group_id, event_id } => {
            let group = find_group(state, &group_id)?;
            if !group.events().contains(&event_id) {
                return Err(DomainError::EventNotInGroup { group_id, event_id });
            }
            Ok(vec![Event::EventRemovedFromGroup { group_id, event_id }])
        }
        Command::SetUserEventAccess { user_id, access } => {
            let user = find_user(state, &user_id)?;
            if let EventAccess::Groups(groups) = &access {
                for group in groups {
                    find_group(state, group)?;
                }
            }
            if *user.event_access() == access {
                return Ok(vec![]);
            }
            let (all_events, groups) = match access {
                EventAccess::AllEvents => (true, vec![]),
                EventAccess::Groups(groups) => (false, groups.into_iter().collect()),
            };
            Ok(vec![Event::EventAccessSet { user_id, all_events, groups }])
        }
        Command::GenerateKey { user_id, key_id, key_hash, expires_at, grace_seconds } => {
            let user = find_user(state, &user_id)?;
            if expires_at.is_some_and(|expiry| expiry <= context.now) {
                return Err(DomainError::ExpiryInThePast);
            }
            if grace_seconds.is_some_and(|grace| grace > MAX_GRACE_SECONDS) {
                return Err(DomainError::GracePeriodTooLong { max: MAX_GRACE_SECONDS });
            }
            let replaced = user.current_key().and_then(|hash| state.key(&hash));
            let replaced_key_valid_until = match (replaced, grace_seconds) {
                (Some(replaced), Some(grace)) if grace > 0 => {
                    let end_of_grace = context.now.plus_seconds(grace);
                    // Grace never extends a key past its own expiry.
                    Some(replaced.expires_at().map_or(end_of_grace, |expiry| expiry.min(end_of_grace)))
                }
                _ => None,
            };
            Ok(vec![Event::KeyGenerated {
                user_id,
                key_id,
                key_hash,
                expires_at,
                replaced_key_id: replaced.map(|key| key.id().clone()),
                replaced_key_valid_until,
            }])
        }
        Command::RevokeKey { user_id } => {
            refuse_self(context, &user_id, "revoke your own key; generate a new one instead")?;
            let user = find_user(state, &user_id)?;
            let still_working = |hash: KeyHash| state.key(&hash).filter(|key| key.state_at(context.now).is_revocable());
            let events: Vec<Event> = [user.current_key(), user.grace_key()]
                .into_iter()
                .flatten()
                .filter_map(still_working)
                .map(|key| Event::KeyRevoked { user_id: user_id.clone(), key_id: key.id().clone() })
                .collect();
            if events.is_empty() {
                return Err(DomainError::NoKey { user_id });
            }
            Ok(events)
        }
        Command::RecordAdminAccessDenied { key_hash, operation, function, target, suppressed } => {
            Ok(state.key(&key_hash).map_or_else(Vec::new, |key| {
                vec![Event::AdminAccessDenied {
                    user_id: key.user_id().clone(),
                    key_id: key.id().clone(),
                    operation,
                    function,
                    target: target.map(|target| target.chars().take(MAX_DENIAL_TARGET_CHARS).collect()),
                    suppressed,
                }]
            }))
        }
        Command::RecordKeyUsage { usage } => Ok(usage
            .into_iter()
            .filter(|usage| usage.allowed > 0 || usage.refused > 0)
            .filter_map(|usage| {
                let key = state.key(&usage.key_hash)?;
                Some(Event::KeyUsageRecorded {
                    user_id: key.user_id().clone(),
                    key_id: key.id().clone(),
                    allowed: usage.allowed,
                    refused: usage.refused,
                    first_used_at: usage.first_used_at.min(usage.last_used_at),
                    last_used_at: usage.last_used_at,
                })
            })
            .collect()),
        Command::RecoverAdministrator { user_id, role_id, key_id, key_hash, reason } => {
            // Only the system asks: `authority::admit` refused any user already.
            // A new role, never an existing one changed: its description names the time,
            // and the role's id too if another recovery took that description already.
            let description = format!("Administrator (recovered {})", context.now);
            let role_description = if state.role_by_description(&description).is_some() {
                format!("Administrator (recovered {}, {role_id})", context.now)
            } else {
                description
            };
            Ok(vec![Event::AdministratorRecovered {
                user_id,
                name: "Recovered administrator".to_owned(),
                role_id,
                role_description,
                key_id,
                key_hash,
                reason: reason.as_str().to_owned(),
            }])
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
        Command::RecordAdminAccessDenied { .. } | Command::RecordKeyUsage { .. } => return Ok(()),
        // Creates everything it touches.
        Command::RecoverAdministrator { .. } => return Ok(()),
        Command::ActivateFunctions { role_id, .. } | Command::DeactivateFunctions { role_id, .. } => {
            (Resource::Role, find_role(state, role_id)?.version())
        }
        Command::DisableUser { user_id }
        | Command::EnableUser { user_id }
        | Command::AssignRole { user_id, .. }
        | Command::UnassignRole { user_id, .. }
        | Command::SetUserEventAccess { user_id, .. }
        | Command::GenerateKey { user_id, .. }
        | Command::RevokeKey { user_id } => (Resource::User, find_user(state, user_id)?.version()),
        Command::AddEventToGroup { group_id, .. } | Command::RemoveEventFromGroup { group_id, .. } => {
            (Resource::Group, find_group(state, group_id)?.version())
        }
    };
    if expected == actual { Ok(()) } else { Err(DomainError::VersionMismatch { resource, expected, actual }) }
}

fn refuse_self(context: &Context, target: &UserId, action: &'static str) -> Result<(), DomainError> {
    match &context.actor {
        Actor::User(actor) if actor == target => Err(DomainError::SelfLockout { action }),
        _ => Ok(()),
    }
}

fn find_role<'a>(state: &'a State, id: &RoleId) -> Result<&'a super::Role, DomainError> {
    state.role(id).ok_or_else(|| DomainError::NotFound { resource: Resource::Role, id: id.to_string() })
}

fn find_user<'a>(state: &'a State, id: &UserId) -> Result<&'a super::User, DomainError> {
    state.user(id).ok_or_else(|| DomainError::NotFound { resource: Resource::User, id: id.to_string() })
}

fn find_group<'a>(state: &'a State, id: &GroupId) -> Result<&'a super::Group, DomainError> {
    state.group(id).ok_or_else(|| DomainError::NotFound { resource: Resource::Group, id: id.to_string() })
}
