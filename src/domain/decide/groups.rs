//! Deciding the commands on event groups: creating them and adding or removing events.

use super::super::{DomainError, Event, EventId, Group, GroupId, Lookalike, Name, Resource, State, values};
use super::{find_group, lookalike};

/// Creates an event group, unless a sibling's name looks like its name or it would nest too
/// deep.
pub(super) fn create(
    state: &State,
    group_id: GroupId,
    name: Name,
    parent_id: Option<GroupId>,
) -> Result<Vec<Event>, DomainError> {
    let siblings: Vec<&GroupId> = match &parent_id {
        Some(parent) => find_group(state, parent)?.children().iter().collect(),
        None => state.groups_after(0).filter(|g| g.parent().is_none()).map(|g| g.id()).collect(),
    };
    let keys = Lookalike::keys_of(name.as_str());
    let looks_alike = |name: &str| Lookalike::keys_of(name).iter().any(|key| keys.contains(key));
    if let Some(existing) = siblings.into_iter().filter_map(|id| state.group(id)).find(|g| looks_alike(g.name())) {
        if values::fold(existing.name()) != name.folded() {
            return Err(lookalike(Resource::Group, &name, existing.id(), existing.name()));
        }
        return Err(DomainError::DuplicateGroupName {
            name: name.as_str().to_owned(),
            existing: existing.id().clone(),
        });
    }
    // The depth limit bounds what any walk up a chain of groups can cost.
    if let Some(parent) = &parent_id
        && state.ancestry(parent).count() >= Group::MAX_DEPTH
    {
        return Err(DomainError::GroupTooDeep { max: Group::MAX_DEPTH });
    }
    Ok(vec![Event::EventGroupCreated { group_id, name: name.as_str().to_owned(), parent_id }])
}

/// Adds an event to a group; nothing if it is there already.
pub(super) fn add_event(state: &State, group_id: GroupId, event_id: EventId) -> Result<Vec<Event>, DomainError> {
    let group = find_group(state, &group_id)?;
    Ok(if group.events().contains(&event_id) { vec![] } else { vec![Event::EventAddedToGroup { group_id, event_id }] })
}

/// Removes an event from a group that holds it.
pub(super) fn remove_event(state: &State, group_id: GroupId, event_id: EventId) -> Result<Vec<Event>, DomainError> {
    let group = find_group(state, &group_id)?;
    if !group.events().contains(&event_id) {
        return Err(DomainError::EventNotInGroup { group_id, event_id });
    }
    Ok(vec![Event::EventRemovedFromGroup { group_id, event_id }])
}
