//! Deciding the commands on roles: creating them and activating or deactivating their
//! functions.

use std::collections::BTreeSet;

use super::super::{Actor, DomainError, Event, FunctionId, FunctionSet, Name, Resource, RoleId, State, values};
use super::{Context, find_role, lookalike};

/// Creates a role, unless its description looks like an existing role's.
pub(super) fn create(state: &State, role_id: RoleId, description: Name) -> Result<Vec<Event>, DomainError> {
    if let Some(existing) = state.role_by_description(description.as_str()) {
        if values::fold(existing.description()) != description.folded() {
            return Err(lookalike(Resource::Role, &description, existing.id(), existing.description()));
        }
        return Err(DomainError::DuplicateRoleDescription {
            description: description.as_str().to_owned(),
            existing: existing.id().clone(),
        });
    }
    Ok(vec![Event::RoleCreated { role_id, description: description.as_str().to_owned() }])
}

/// Activates the functions not yet active on a role, keeping API and admin functions on
/// separate roles and API roles held alone.
pub(super) fn activate_functions(
    state: &State,
    role_id: RoleId,
    functions: BTreeSet<FunctionId>,
) -> Result<Vec<Event>, DomainError> {
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

/// Deactivates the functions active on a role; an actor may not deactivate admin functions
/// on a role it holds.
pub(super) fn deactivate_functions(
    state: &State,
    context: &Context,
    role_id: RoleId,
    functions: BTreeSet<FunctionId>,
) -> Result<Vec<Event>, DomainError> {
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
