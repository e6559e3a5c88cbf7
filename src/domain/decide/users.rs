//! Deciding the commands on users: creating, disabling and enabling them, their roles and
//! their event access.

use super::super::{DomainError, Email, Event, EventAccess, Name, Resource, RoleId, State, UserId};
use super::{Context, find_group, find_role, find_user, lookalike, refuse_self};

/// Creates a user, unless its name looks like an existing user's.
pub(super) fn create(
    state: &State,
    user_id: UserId,
    name: Name,
    email: Option<Email>,
) -> Result<Vec<Event>, DomainError> {
    // User names are unique by look, like role descriptions: the access review
    // names users, and two that read the same cannot be told apart there.
    if let Some(existing) = state.user_named_like(name.as_str()) {
        return Err(lookalike(Resource::User, &name, existing.id(), existing.name()));
    }
    Ok(vec![Event::UserCreated {
        user_id,
        name: name.as_str().to_owned(),
        email: email.map(|email| email.as_str().to_owned()),
    }])
}

/// Disables a user (not oneself); nothing if already disabled.
pub(super) fn disable(state: &State, context: &Context, user_id: UserId) -> Result<Vec<Event>, DomainError> {
    refuse_self(context, &user_id, "disable yourself")?;
    let user = find_user(state, &user_id)?;
    Ok(if user.is_enabled() { vec![Event::UserDisabled { user_id }] } else { vec![] })
}

/// Enables a user; nothing if already enabled.
pub(super) fn enable(state: &State, user_id: UserId) -> Result<Vec<Event>, DomainError> {
    let user = find_user(state, &user_id)?;
    Ok(if user.is_enabled() { vec![] } else { vec![Event::UserEnabled { user_id }] })
}

/// Assigns a role to a user; an API role is held alone.
pub(super) fn assign_role(state: &State, user_id: UserId, role_id: RoleId) -> Result<Vec<Event>, DomainError> {
    let user = find_user(state, &user_id)?;
    let role = find_role(state, &role_id)?;
    if user.roles().contains(&role_id) {
        return Ok(vec![]);
    }
    if role.is_api_role() && !user.roles().is_empty() {
        return Err(DomainError::StandaloneApiRole { user_id, api_role: role_id });
    }
    let held_api_role = user.roles().iter().find(|held| state.role(held).is_some_and(|held| held.is_api_role()));
    if let Some(api_role) = held_api_role {
        return Err(DomainError::StandaloneApiRole { user_id, api_role: api_role.clone() });
    }
    Ok(vec![Event::RoleAssigned { user_id, role_id }])
}

/// Takes a role from a user (not from oneself).
pub(super) fn unassign_role(
    state: &State,
    context: &Context,
    user_id: UserId,
    role_id: RoleId,
) -> Result<Vec<Event>, DomainError> {
    refuse_self(context, &user_id, "unassign your own roles")?;
    let user = find_user(state, &user_id)?;
    find_role(state, &role_id)?;
    if !user.roles().contains(&role_id) {
        return Err(DomainError::RoleNotAssigned { user_id, role_id });
    }
    Ok(vec![Event::RoleUnassigned { user_id, role_id }])
}

/// Sets the events a user may access; nothing if unchanged.
pub(super) fn set_event_access(state: &State, user_id: UserId, access: EventAccess) -> Result<Vec<Event>, DomainError> {
    let user = find_user(state, &user_id)?;
    if let EventAccess::Groups(groups) = &access {
        for group in groups {
            find_group(state, group)?;
        }
    }
    if user.event_access().grants_as(&access) {
        return Ok(vec![]);
    }
    let (all_events, groups) = match access {
        EventAccess::AllEvents => (true, vec![]),
        EventAccess::Groups(groups) => (false, groups.into_iter().collect()),
    };
    Ok(vec![Event::EventAccessSet { user_id, all_events, groups }])
}
