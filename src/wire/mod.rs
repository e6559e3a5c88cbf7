//! The JSON (and CSV) shapes keyledger shows people, shared by the HTTP API and the
//! command line: a user's event access and key states, the access report, and the
//! permission view at a point of the log.
//!
//! They derive `ToSchema` so the HTTP API documents them, but they know nothing of
//! requests: the command line prints the same shapes without going through `http`.

pub mod credentials;
pub mod report;
pub mod review;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{self, EventAccess};

/// Which events a user may access.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"all_events": false, "groups": ["grp_1a2b3c4d5e6f7a8b"]}))]
pub struct EventAccessView {
    /// Every event, now and later. When true, `groups` must be empty.
    pub all_events: bool,
    /// Groups whose events, and whose nested groups' events, the user may access.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl<Groups> From<&EventAccess<Groups>> for EventAccessView
where
    for<'a> &'a Groups: IntoIterator<Item = &'a crate::domain::GroupId>,
{
    fn from(access: &EventAccess<Groups>) -> Self {
        match access {
            EventAccess::AllEvents => EventAccessView { all_events: true, groups: vec![] },
            EventAccess::Groups(groups) => {
                EventAccessView { all_events: false, groups: groups.into_iter().map(ToString::to_string).collect() }
            }
        }
    }
}

/// Where a key stands at the time a view is of. getUser, getPermissionsAt and
/// accessReport use these names and judge a key alike, as checkKey does. When several
/// apply, the first in this order wins: revoked, replaced, expired, too_old, dormant,
/// grace, active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// The user's current key: it passes checks.
    Active,
    /// Replaced, but still in its grace period: it passes checks until `valid_until`.
    Grace,
    /// Replaced, and its grace period is over: it passes no check.
    Replaced,
    /// Past its expiry time: it passes no check.
    Expired,
    /// Revoked: it passes no check.
    Revoked,
    /// Blocked by the key policy's `max_lifetime_days`: it passes no check until the limit
    /// is raised or cleared.
    TooOld,
    /// Blocked by the key policy's `max_unused_days`: it passes no check until it is
    /// rotated.
    Dormant,
}

impl KeyState {
    /// The name clients see, in JSON and in the access report's CSV: the domain's
    /// (`domain::KeyState::as_str`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Grace => "grace",
            KeyState::Replaced => "replaced",
            KeyState::Expired => "expired",
            KeyState::Revoked => "revoked",
            KeyState::TooOld => "too_old",
            KeyState::Dormant => "dormant",
        }
    }
}

impl From<domain::KeyState> for KeyState {
    fn from(state: domain::KeyState) -> Self {
        match state {
            domain::KeyState::Active => KeyState::Active,
            domain::KeyState::InGrace { .. } => KeyState::Grace,
            domain::KeyState::Replaced { .. } => KeyState::Replaced,
            domain::KeyState::Expired { .. } => KeyState::Expired,
            domain::KeyState::Revoked { .. } => KeyState::Revoked,
            domain::KeyState::TooOld { .. } => KeyState::TooOld,
            domain::KeyState::Dormant { .. } => KeyState::Dormant,
        }
    }
}

/// Takes up to `limit` items, converted, and the `next` cursor: the cursor of the last
/// item taken, or `None` when nothing follows it.
pub fn paginate<T, D>(
    items: impl Iterator<Item = T>,
    limit: usize,
    cursor: impl Fn(&T) -> u64,
    convert: impl Fn(T) -> D,
) -> (Vec<D>, Option<u64>) {
    let mut items = items.peekable();
    let mut page = Vec::with_capacity(limit.min(1024));
    let mut last = None;
    while page.len() < limit {
        let Some(item) = items.next() else { break };
        last = Some(cursor(&item));
        page.push(convert(item));
    }
    let next = if items.peek().is_some() { last } else { None };
    (page, next)
}
