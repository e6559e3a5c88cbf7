//! Point-in-time questions about one state of the permission view: what everybody may do
//! ([`PermissionView`]), who may do a function ([`who_can`]), and what one event changed
//! ([`apply_tracking_changes`], [`changes`]).
//!
//! Everything here is pure. The time keys are judged at is passed in, and keys are judged
//! by [`Key::state_at`], as [`check`](super::check) judges them, so that a key
//! [`who_can`] lists is a key `check` lets through, and no other.

use std::collections::{BTreeMap, BTreeSet};

use super::{Event, EventAccess, EventId, FunctionId, GroupId, Key, KeyId, KeyState, Position, RoleId, State};
use super::{Timestamp, User, UserId};

/// A role as a user holds it: its id and description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRole {
    /// The role's id.
    pub id: RoleId,
    /// The role's description.
    pub description: String,
}

/// A key of a user, by its public id, as it stands at the view's time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAtTime {
    /// The key's public id.
    pub key_id: KeyId,
    /// When the key was generated.
    pub created_at: Timestamp,
    /// When the key expires, if it does.
    pub expires_at: Option<Timestamp>,
    /// Where the key stands at the view's time.
    pub state: KeyState,
}

/// What one user may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPermissions {
    /// The user's id.
    pub id: UserId,
    /// The user's display name.
    pub name: String,
    /// Whether the user's keys may pass checks at all.
    pub enabled: bool,
    /// The roles the user holds, by role id.
    pub roles: Vec<HeldRole>,
    /// The union of the functions of those roles, in catalogue order.
    pub functions: Vec<FunctionId>,
    /// The events the user may access.
    pub event_access: EventAccess,
    /// Every key the state still knows for the user (current, replaced and revoked), oldest
    /// first. Keys replaced without a grace period are forgotten by the state, so absent.
    pub keys: Vec<KeyAtTime>,
}

/// A role with its functions and holders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSummary {
    /// The role's id.
    pub id: RoleId,
    /// The role's description.
    pub description: String,
    /// The functions active on the role, in catalogue order.
    pub functions: Vec<FunctionId>,
    /// The users holding the role, by user id.
    pub holders: Vec<UserId>,
}

/// An event group with its parent and events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    /// The group's id.
    pub id: GroupId,
    /// The group's name.
    pub name: String,
    /// The group it sits inside, if any.
    pub parent: Option<GroupId>,
    /// The events directly in the group, sorted.
    pub events: Vec<EventId>,
}

/// The whole permission view at one point in time: users, roles and event groups, each
/// in creation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionView {
    /// Every user, in creation order.
    pub users: Vec<UserPermissions>,
    /// Every role, in creation order.
    pub roles: Vec<RoleSummary>,
    /// Every event group, in creation order.
    pub groups: Vec<GroupSummary>,
}

impl PermissionView {
    /// The view of `state`, with key states judged at `as_of`.
    pub fn of(state: &State, as_of: Timestamp) -> PermissionView {
        let mut keys_of: BTreeMap<&UserId, Vec<&Key>> = BTreeMap::new();
        for key in state.keys() {
            keys_of.entry(key.user_id()).or_default().push(key);
        }
        let users = state
            .users_after(0)
            .map(|user| {
                let mut keys = keys_of.remove(user.id()).unwrap_or_default();
                keys.sort_by(|a, b| (a.created_at(), a.id()).cmp(&(b.created_at(), b.id())));
                UserPermissions {
                    id: user.id().clone(),
                    name: user.name().to_owned(),
                    enabled: user.is_enabled(),
                    roles: user
                        .roles()
                        .iter()
                        .map(|id| HeldRole {
                            id: id.clone(),
                            description: state.role(id).map(|role| role.description().to_owned()).unwrap_or_default(),
                        })
                        .collect(),
                    functions: functions_of(state, user).collect(),
                    event_access: user.event_access().to_access(),
                    keys: keys
                        .into_iter()
                        .map(|key| KeyAtTime {
                            key_id: key.id().clone(),
                            created_at: key.created_at(),
                            expires_at: key.expires_at(),
                            state: state.key_state(key, as_of),
                        })
                        .collect(),
                }
            })
            .collect();
        let roles = state
            .roles_after(0)
            .map(|role| RoleSummary {
                id: role.id().clone(),
                description: role.description().to_owned(),
                functions: role.functions().iter().collect(),
                holders: role.holders().iter().cloned().collect(),
            })
            .collect();
        let groups = state
            .groups_after(0)
            .map(|group| GroupSummary {
                id: group.id().clone(),
                name: group.name().to_owned(),
                parent: group.parent().cloned(),
                events: group.events().iter().cloned().collect(),
            })
            .collect();
        PermissionView { users, roles, groups }
    }
}

/// The union of the functions of a user's roles, in catalogue order.
fn functions_of<'a>(state: &'a State, user: &'a User) -> impl Iterator<Item = FunctionId> + 'a {
    FunctionId::all().filter(|&function| {
        user.roles().iter().filter_map(|id| state.role(id)).any(|role| role.functions().contains(function))
    })
}

/// The keys of a user that pass checks at `now`, with the time each stops passing them
/// (the earlier of its expiry and the end of its grace period), if it does. Only the
/// current key and the key in its grace period can pass.
fn usable_keys<'a>(state: &'a State, user: &User, now: Timestamp) -> Vec<(&'a Key, Option<Timestamp>)> {
    [user.current_key(), user.grace_key()]
        .into_iter()
        .flatten()
        .filter_map(|hash| state.key(&hash))
        .filter_map(|key| {
            let grace_end = match state.key_state(key, now) {
                KeyState::Active => None,
                KeyState::InGrace { valid_until } => Some(valid_until),
                _ => return None,
            };
            let until = match (grace_end, key.expires_at()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            Some((key, until))
        })
        .collect()
}

/// How a user reaches an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventAccessReason {
    /// The user may access every event.
    AllEvents,
    /// The user was granted groups that hold the event. Each chain runs from a group that
    /// holds the event directly, through its ancestors, up to the nearest group the user
    /// was granted; there is one chain per group holding the event that is reached.
    Groups(Vec<Vec<GroupId>>),
}

/// A user whose keys may do a function (on an event), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoCanAnswer {
    /// The user.
    pub user_id: UserId,
    /// The user's display name.
    pub name: String,
    /// The user's keys that pass checks at the time asked about: the current key and the
    /// key in its grace period, unless expired.
    pub key_ids: Vec<KeyId>,
    /// The roles of the user that have the function active.
    pub via_roles: Vec<HeldRole>,
    /// How the user reaches the event; `None` when no event was asked about.
    pub event_access: Option<EventAccessReason>,
}

/// Which users' keys would pass a check of `function` (on `event`, if given) at `now`, in
/// the users' creation order: enabled users holding a role with the function, with access
/// to the event (without an event, of an event-scoped function: with access to every
/// event), and with at least one key that works at `now`. A key is listed exactly when
/// `check` would let it through.
pub fn who_can(state: &State, function: FunctionId, event: Option<&str>, now: Timestamp) -> Vec<WhoCanAnswer> {
    state
        .users_after(0)
        .filter(|user| user.is_enabled())
        .filter_map(|user| {
            let via_roles: Vec<HeldRole> = user
                .roles()
                .iter()
                .filter_map(|id| state.role(id))
                .filter(|role| role.functions().contains(function))
                .map(|role| HeldRole { id: role.id().clone(), description: role.description().to_owned() })
                .collect();
            if via_roles.is_empty() {
                return None;
            }
            let event_access = match event {
                Some(event) => Some(event_access_reason(state, user, event)?),
                // As in `check`: an event-scoped function without an event passes only
                // for a user with access to every event.
                None if function.is_event_scoped() && !matches!(user.event_access(), EventAccess::AllEvents) => {
                    return None;
                }
                None => None,
            };
            let key_ids: Vec<KeyId> =
                usable_keys(state, user, now).into_iter().map(|(key, _)| key.id().clone()).collect();
            if key_ids.is_empty() {
                return None;
            }
            Some(WhoCanAnswer {
                user_id: user.id().clone(),
                name: user.name().to_owned(),
                key_ids,
                via_roles,
                event_access,
            })
        })
        .collect()
}

/// How `user` reaches `event`, or `None` if they do not.
fn event_access_reason(state: &State, user: &User, event: &str) -> Option<EventAccessReason> {
    let granted = match user.event_access() {
        EventAccess::AllEvents => return Some(EventAccessReason::AllEvents),
        EventAccess::Groups(granted) => granted,
    };
    let mut chains = Vec::new();
    for holder in state.groups_after(0).filter(|group| group.events().contains(event)) {
        let mut chain = Vec::new();
        let mut current = Some(holder);
        while let Some(group) = current {
            chain.push(group.id().clone());
            if granted.contains(group.id()) {
                chains.push(chain);
                break;
            }
            current = group.parent().and_then(|parent| state.group(parent));
        }
    }
    (!chains.is_empty()).then_some(EventAccessReason::Groups(chains))
}

/// One thing a user may do, as the permission diff compares it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fact {
    /// The user is enabled: their keys may pass checks at all.
    Enabled,
    /// One of the user's roles has the function active.
    Function(FunctionId),
    /// The user may access every event.
    AllEvents,
    /// The user was granted this event group (and so the groups nested in it).
    EventGroup(GroupId),
    /// The user reaches this event through the groups they were granted. Not listed for a
    /// user with access to every event.
    Event(EventId),
    /// The key passes checks.
    Key(KeyId),
}

/// The facts that hold for a user at time `at`, each with the time it stops holding by
/// itself (a key's expiry or the end of its grace period), if it does. An unknown user
/// has none.
pub fn permission_facts(state: &State, user_id: &UserId, at: Timestamp) -> BTreeMap<Fact, Option<Timestamp>> {
    let mut facts = BTreeMap::new();
    let Some(user) = state.user(user_id) else {
        return facts;
    };
    if user.is_enabled() {
        facts.insert(Fact::Enabled, None);
    }
    facts.extend(functions_of(state, user).map(|function| (Fact::Function(function), None)));
    match user.event_access() {
        EventAccess::AllEvents => {
            facts.insert(Fact::AllEvents, None);
        }
        EventAccess::Groups(granted) => {
            let granted: BTreeSet<&GroupId> = granted.iter().filter(|id| state.group(id).is_some()).collect();
            facts.extend(granted.iter().map(|&id| (Fact::EventGroup(id.clone()), None)));
            facts.extend(reachable_events(state, granted).into_iter().map(|event| (Fact::Event(event), None)));
        }
    }
    facts.extend(usable_keys(state, user, at).into_iter().map(|(key, until)| (Fact::Key(key.id().clone()), until)));
    facts
}

/// The platform events a user may access through their event groups (those granted and
/// every group nested below them), sorted; `None` for a user with access to every event.
pub fn accessible_events(state: &State, user: &User) -> Option<BTreeSet<EventId>> {
    match user.event_access() {
        EventAccess::AllEvents => None,
        EventAccess::Groups(granted) => Some(reachable_events(state, granted.iter().collect())),
    }
}

/// The events of the granted groups and of every group nested below them.
fn reachable_events(state: &State, granted: BTreeSet<&GroupId>) -> BTreeSet<EventId> {
    let mut events = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut pending: Vec<&GroupId> = granted.into_iter().collect();
    while let Some(id) = pending.pop() {
        if !seen.insert(id) {
            continue;
        }
        if let Some(group) = state.group(id) {
            events.extend(group.events().iter().cloned());
            pending.extend(group.children());
        }
    }
    events
}

/// Whether a permission was given or taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// The user gained the fact.
    Grant,
    /// The user lost the fact, at once or (for a key) at `until`.
    Revoke,
}

/// One permission one event gave or took away from one user.
///
/// A key rotation reads as a grant of the new key and a revocation of the old one; when
/// the old key keeps a grace period, its revocation carries `until`, the end of the grace
/// period, as it keeps working until then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Grant or revocation.
    pub kind: ChangeKind,
    /// The user whose permissions changed.
    pub user_id: UserId,
    /// What changed.
    pub fact: Fact,
    /// For a grant, when the fact stops holding by itself (a key's expiry), if it does.
    /// For a revocation, when it takes effect if not at once (the end of a replaced key's
    /// grace period).
    pub until: Option<Timestamp>,
}

/// The users whose permissions `event` may change, judged on the state before it: the
/// user it names; the holders of a role whose functions change; the users granted a
/// group (or an ancestor of it) whose events change.
pub fn affected_users(state: &State, event: &Event) -> BTreeSet<UserId> {
    match event {
        Event::UserCreated { user_id, .. }
        | Event::UserDisabled { user_id }
        | Event::UserEnabled { user_id }
        | Event::RoleAssigned { user_id, .. }
        | Event::RoleUnassigned { user_id, .. }
        | Event::EventAccessSet { user_id, .. }
        | Event::KeyGenerated { user_id, .. }
        | Event::KeyRevoked { user_id, .. }
        | Event::KeyImported { user_id, .. }
        | Event::AdministratorRecovered { user_id, .. } => BTreeSet::from([user_id.clone()]),
        // The policy may block or let through any user's key.
        Event::KeyPolicySet { .. } => state.users_after(0).map(|user| user.id().clone()).collect(),
        Event::FunctionActivated { role_id, .. } | Event::FunctionDeactivated { role_id, .. } => {
            state.role(role_id).map(|role| role.holders().clone()).unwrap_or_default()
        }
        Event::EventAddedToGroup { group_id, .. } | Event::EventRemovedFromGroup { group_id, .. } => {
            users_reaching(state, group_id)
        }
        // A new group holds no event yet, so it changes nobody's events; its parent's users
        // are named in case it ever does.
        Event::EventGroupCreated { parent_id, .. } => {
            parent_id.as_ref().map(|parent| users_reaching(state, parent)).unwrap_or_default()
        }
        // Events that change nobody's permissions. New events of that kind go here.
        Event::RoleCreated { .. }
        | Event::AdminAccessDenied { .. }
        | Event::KeyLookedUp { .. }
        | Event::KeyUsageRecorded { .. }
        | Event::KeyUsageIntervalRecorded { .. } => BTreeSet::new(),
    }
}

/// The users granted `group` or one of its ancestors.
fn users_reaching(state: &State, group: &GroupId) -> BTreeSet<UserId> {
    let ancestry: BTreeSet<&GroupId> = state.ancestry(group).collect();
    state
        .users_after(0)
        .filter(|user| match user.event_access() {
            EventAccess::AllEvents => false,
            EventAccess::Groups(granted) => granted.iter().any(|id| ancestry.contains(id)),
        })
        .map(|user| user.id().clone())
        .collect()
}

/// Applies `event` to `state` and returns the permissions it gave and took away, by user
/// id, then fact. Facts are judged at the event's time on both sides, so a key that
/// expires between two events is not a change either of them caused.
pub fn apply_tracking_changes(state: &mut State, position: Position, event: &Event) -> Vec<Change> {
    let users = affected_users(state, event);
    let before: Vec<_> = users.iter().map(|user| permission_facts(state, user, position.at)).collect();
    state.apply(position, event);
    users
        .into_iter()
        .zip(before)
        .flat_map(|(user, before)| {
            let after = permission_facts(state, &user, position.at);
            compare(&user, &before, &after)
        })
        .collect()
}

/// The permissions `event` gave and took away, given the states before and after it and
/// the time it was recorded: what [`apply_tracking_changes`] returns, for callers that
/// hold both states.
pub fn changes(before: &State, after: &State, event: &Event, at: Timestamp) -> Vec<Change> {
    affected_users(before, event)
        .into_iter()
        .flat_map(|user| compare(&user, &permission_facts(before, &user, at), &permission_facts(after, &user, at)))
        .collect()
}

/// The changes from one user's facts to the next, in fact order. Reaching an event is
/// not a change for a user who had, or now has, access to every event.
pub fn compare(
    user: &UserId,
    before: &BTreeMap<Fact, Option<Timestamp>>,
    after: &BTreeMap<Fact, Option<Timestamp>>,
) -> Vec<Change> {
    let change = |kind, fact: &Fact, until| Change { kind, user_id: user.clone(), fact: fact.clone(), until };
    // `None` means "holds until further notice", which is later than any time.
    let end = |until: Option<Timestamp>| until.map_or(i64::MAX, Timestamp::unix_millis);
    let mut changes = Vec::new();
    let facts: BTreeSet<&Fact> = before.keys().chain(after.keys()).collect();
    for fact in facts {
        let subsumed = match fact {
            Fact::Event(_) => before.contains_key(&Fact::AllEvents) || after.contains_key(&Fact::AllEvents),
            _ => false,
        };
        match (before.get(fact), after.get(fact)) {
            (None, Some(&until)) if !subsumed => changes.push(change(ChangeKind::Grant, fact, until)),
            (Some(_), None) if !subsumed => changes.push(change(ChangeKind::Revoke, fact, None)),
            (Some(&was), Some(&now)) if end(now) < end(was) => changes.push(change(ChangeKind::Revoke, fact, now)),
            (Some(&was), Some(&now)) if end(now) > end(was) => changes.push(change(ChangeKind::Grant, fact, now)),
            _ => {}
        }
    }
    changes
}
