//! Commands, and the pure function that turns a command into events or a refusal.

use std::collections::BTreeSet;

use super::{
    Actor, DomainError, Email, Event, EventAccess, EventId, FunctionId, FunctionSet, GroupId, KeyHash, KeyId,
    KeyStatus, Name, Resource, RoleId, State, Timestamp, UserId, values,
};

/// The longest grace period a rotation may give the replaced key: 30 days.
pub const MAX_GRACE_SECONDS: u64 = 30 * 24 * 60 * 60;

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
}

/// Decides a command against the state: the events to append, or why not.
///
/// A command that would change nothing (activating an active function) yields no events.
pub fn decide(state: &State, context: &Context, command: Command) -> Result<Vec<Event>, DomainError> {
    check_version(state, context, &command)?;
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
        Command::CreateUser { user_id, name, email } => Ok(vec![Event::UserCreated {
            user_id,
            name: name.as_str().to_owned(),
            email: email.map(|email| email.as_str().to_owned()),
        }]),
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
            let folded = name.folded();
            if let Some(existing) =
                siblings.into_iter().find(|id| state.group(id).is_some_and(|g| values::fold(g.name()) == folded))
            {
                return Err(DomainError::DuplicateGroupName {
                    name: name.as_str().to_owned(),
                    existing: existing.clone(),
                });
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
            let still_working = |hash: KeyHash| {
                state.key(&hash).filter(|key| match key.status() {
                    KeyStatus::Active => true,
                    KeyStatus::Replaced { valid_until } => context.now < valid_until,
                    KeyStatus::Revoked { .. } => false,
                })
            };
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
