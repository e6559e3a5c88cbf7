//! The permission view at a point of the log: what `getPermissionsAt` serves and
//! `keyledger replay` prints.

use serde::Serialize;
use utoipa::ToSchema;

use super::{EventAccessView, KeyState, paginate};
use crate::domain::{self, FunctionId, PermissionView, Timestamp};
use crate::history::Replayed;

/// A role a user holds.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "role_9d8e7f6a5b4c3d2e", "description": "API Access"}))]
pub struct HeldRoleView {
    /// The role's id.
    pub id: String,
    /// The role's description.
    pub description: String,
}

impl From<&domain::HeldRole> for HeldRoleView {
    fn from(role: &domain::HeldRole) -> Self {
        HeldRoleView { id: role.id.to_string(), description: role.description.clone() }
    }
}

/// A key at the time of the answer. Never its secret.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"key_id": "key_0f1e2d3c4b5a6978", "state": "grace", "created_at": "2027-01-31T17:00:00.000Z", "expires_at": null, "valid_until": "2027-01-31T18:00:00.000Z", "revoked_at": null}))]
pub struct KeyAtTimeView {
    /// The key's public id.
    pub key_id: String,
    /// Where the key stood.
    pub state: KeyState,
    /// When the key was generated.
    pub created_at: String,
    /// When the key expires, if it does.
    pub expires_at: Option<String>,
    /// For a replaced key, when its grace period ends.
    pub valid_until: Option<String>,
    /// For a revoked key, when it was revoked.
    pub revoked_at: Option<String>,
}

impl From<&domain::KeyAtTime> for KeyAtTimeView {
    fn from(key: &domain::KeyAtTime) -> Self {
        let revoked_at = match key.state {
            domain::KeyState::Revoked { at } => Some(at),
            _ => None,
        };
        KeyAtTimeView {
            key_id: key.key_id.to_string(),
            state: key.state.into(),
            created_at: key.created_at.to_string(),
            expires_at: key.expires_at.map(|at| at.to_string()),
            valid_until: key.state.valid_until().map(|at| at.to_string()),
            revoked_at: revoked_at.map(|at| at.to_string()),
        }
    }
}

/// What one user could do.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "usr_5f0c2a9e1b7d4c3a",
    "name": "Attendance app",
    "enabled": true,
    "roles": [{"id": "role_9d8e7f6a5b4c3d2e", "description": "API Access"}],
    "functions": ["api.attendees.read", "api.events.read"],
    "event_access": {"all_events": false, "groups": ["grp_1a2b3c4d5e6f7a8b"]},
    "keys": [{"key_id": "key_0f1e2d3c4b5a6978", "state": "active", "created_at": "2027-01-31T17:00:00.000Z", "expires_at": null, "valid_until": null, "revoked_at": null}]
}))]
pub struct UserPermissionsView {
    /// The user's id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// Whether the user's keys could pass checks at all.
    pub enabled: bool,
    /// The roles the user held.
    pub roles: Vec<HeldRoleView>,
    /// The functions of those roles, in catalogue order.
    pub functions: Vec<String>,
    /// The events the user could access.
    pub event_access: EventAccessView,
    /// Every key still known for the user (current, replaced and revoked), oldest first.
    pub keys: Vec<KeyAtTimeView>,
}

/// A role with its functions and holders.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "role_9d8e7f6a5b4c3d2e", "description": "API Access", "functions": ["api.attendees.read"], "holders": ["usr_5f0c2a9e1b7d4c3a"]}))]
pub struct RoleAtTimeView {
    /// The role's id.
    pub id: String,
    /// The role's description.
    pub description: String,
    /// The functions active on it, in catalogue order.
    pub functions: Vec<String>,
    /// The users holding it.
    pub holders: Vec<String>,
}

/// An event group with its parent and events.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "grp_1a2b3c4d5e6f7a8b", "name": "USA", "parent_id": "grp_0a1b2c3d4e5f6a7b", "events": ["summit-nyc"]}))]
pub struct GroupAtTimeView {
    /// The group's id.
    pub id: String,
    /// The group's name.
    pub name: String,
    /// The group it sits inside, if any.
    pub parent_id: Option<String>,
    /// The events directly in it.
    pub events: Vec<String>,
}

/// The whole permission view at a point of the log.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "position": 42,
    "recorded_at": "2027-01-31T17:00:00.000Z",
    "as_of": "2027-01-31T17:00:00.000Z",
    "users": [],
    "roles": [],
    "event_groups": [],
    "next": null
}))]
pub struct PermissionsAt {
    /// The last record the view reflects (0: before the first record).
    pub position: u64,
    /// When that record was written; null at position 0.
    pub recorded_at: Option<String>,
    /// The time key states were judged at.
    pub as_of: String,
    /// Every user, in creation order.
    pub users: Vec<UserPermissionsView>,
    /// Every role, in creation order.
    pub roles: Vec<RoleAtTimeView>,
    /// Every event group, in creation order.
    pub event_groups: Vec<GroupAtTimeView>,
    /// The `after` of the next page (at the same `position`), or null when this page is
    /// the last. A page holds up to `limit` users, roles and groups together, in the
    /// order they were created.
    pub next: Option<u64>,
}

/// A user, role or group of a permission view, in the one order pages follow.
enum ViewItem<'a> {
    User(&'a domain::UserPermissions),
    Role(&'a domain::RoleSummary),
    Group(&'a domain::GroupSummary),
}

fn function_names(functions: &[FunctionId]) -> Vec<String> {
    functions.iter().map(|function| function.as_str().to_owned()).collect()
}

/// Every item as a string.
pub(crate) fn strings<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

impl PermissionsAt {
    /// The whole answer for a replayed state, with key states judged at `as_of`.
    pub fn of(replayed: &Replayed, as_of: Timestamp) -> Self {
        Self::page(replayed, as_of, 0, usize::MAX)
    }

    /// One page of the answer: up to `limit` users, roles and groups together, of those
    /// created after position `after`, in creation order.
    pub fn page(replayed: &Replayed, as_of: Timestamp, after: u64, limit: usize) -> Self {
        let state = &replayed.state;
        let view = PermissionView::of(state, as_of);
        // Every user, role and group was created by a record of its own, so the record's
        // position orders them all and is the cursor.
        let mut items: Vec<(u64, ViewItem<'_>)> =
            view.users
                .iter()
                .map(|user| (state.user(&user.id).map_or(0, |user| user.created().seq), ViewItem::User(user)))
                .chain(
                    view.roles
                        .iter()
                        .map(|role| (state.role(&role.id).map_or(0, |role| role.created().seq), ViewItem::Role(role))),
                )
                .chain(view.groups.iter().map(|group| {
                    (state.group(&group.id).map_or(0, |group| group.created().seq), ViewItem::Group(group))
                }))
                .filter(|(seq, _)| *seq > after)
                .collect();
        items.sort_by_key(|(seq, _)| *seq);
        let (items, next) = paginate(items.into_iter(), limit, |(seq, _)| *seq, |(_, item)| item);
        let (mut users, mut roles, mut groups) = (Vec::new(), Vec::new(), Vec::new());
        for item in items {
            match item {
                ViewItem::User(user) => users.push(user),
                ViewItem::Role(role) => roles.push(role),
                ViewItem::Group(group) => groups.push(group),
            }
        }
        PermissionsAt {
            position: replayed.position,
            recorded_at: replayed.recorded_at.map(|at| at.to_string()),
            as_of: as_of.to_string(),
            users: users
                .into_iter()
                .map(|user| UserPermissionsView {
                    id: user.id.to_string(),
                    name: user.name.clone(),
                    enabled: user.enabled,
                    roles: user.roles.iter().map(HeldRoleView::from).collect(),
                    functions: function_names(&user.functions),
                    event_access: (&user.event_access).into(),
                    keys: user.keys.iter().map(KeyAtTimeView::from).collect(),
                })
                .collect(),
            roles: roles
                .into_iter()
                .map(|role| RoleAtTimeView {
                    id: role.id.to_string(),
                    description: role.description.clone(),
                    functions: function_names(&role.functions),
                    holders: strings(&role.holders),
                })
                .collect(),
            event_groups: groups
                .into_iter()
                .map(|group| GroupAtTimeView {
                    id: group.id.to_string(),
                    name: group.name.clone(),
                    parent_id: group.parent.as_ref().map(ToString::to_string),
                    events: strings(&group.events),
                })
                .collect(),
            next,
        }
    }
}
