//! The fixed catalogue of functions a role can activate.
//!
//! API functions (`api.*`) are what apps are checked against; admin functions
//! (`security.*`) guard keyledger's own admin API. A function is a small index into
//! [`CATALOGUE`], so a set of functions is a bit mask and a check is one AND.
//!
//! Each function also has a [`FunctionScope`]: an event-scoped function acts on the data
//! of one platform event, so a check of it must name the event unless the user may access
//! every event; an account-wide function acts on the account as a whole. The scopes
//! follow the platform's own split of its data:
//!
//! * Attendees, sessions and invoices exist only inside an event: an attendee is a
//!   person's registration for one event, a session is part of one event's programme and
//!   an invoice bills one event's registration. Their functions are event-scoped.
//! * Events are the unit event access is granted in, not something inside one: an app
//!   reads the list of events to learn which events it may pull data from, and the
//!   platform filters that list by the user's event access. `api.events.read` is
//!   account-wide; a check that names an event still tests access to it.
//! * People are the account's contact records, shared by every event a person attends
//!   (their attendee records point to them). `api.people.read` and `api.people.write`
//!   are account-wide.
//! * Admin functions (`security.*`) administer keyledger itself and are account-wide.

use serde::{Deserialize, Serialize};

/// What a function lets its holder do, so that clients can follow least privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FunctionKind {
    /// Reads data through the platform API.
    Read,
    /// Changes data through the platform API.
    Write,
    /// Administers keyledger itself.
    Admin,
}

impl FunctionKind {
    /// The kind as clients see it: `read`, `write` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionKind::Read => "read",
            FunctionKind::Write => "write",
            FunctionKind::Admin => "admin",
        }
    }
}

/// Whether a function acts on the data of one platform event or on the whole account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FunctionScope {
    /// Acts on one event's data (attendees, sessions, invoices). A check of it by a user
    /// whose event access is limited to event groups must name the event, or it is
    /// refused as `event_required`.
    Event,
    /// Acts on the whole account (events, people, keyledger's administration). A check
    /// of it needs no event; one that names an event still tests access to it.
    Account,
}

impl FunctionScope {
    /// The scope as clients see it: `event` or `account`.
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionScope::Event => "event",
            FunctionScope::Account => "account",
        }
    }
}

/// One entry of the catalogue.
#[derive(Debug)]
pub struct FunctionInfo {
    /// The stable id clients use, such as `api.attendees.read`.
    pub id: &'static str,
    /// The display name, such as "API Resource: Attendees - Read".
    pub name: &'static str,
    /// Whether the function reads, writes or administers.
    pub kind: FunctionKind,
    /// Whether the function acts on one event's data or on the whole account.
    pub scope: FunctionScope,
}

const fn entry(id: &'static str, name: &'static str, kind: FunctionKind, scope: FunctionScope) -> FunctionInfo {
    FunctionInfo { id, name, kind, scope }
}

/// Every function keyledger knows, in the order they are listed.
///
/// Append only: a function's position is its bit in [`FunctionSet`], which is held in
/// memory only, but reordering would make listings jump for clients.
pub static CATALOGUE: [FunctionInfo; 17] = [
    entry("api.attendees.read", "API Resource: Attendees - Read", FunctionKind::Read, FunctionScope::Event),
    entry("api.events.read", "API Resource: Events - Read", FunctionKind::Read, FunctionScope::Account),
    entry("api.invoices.read", "API Resource: Invoices - Read", FunctionKind::Read, FunctionScope::Event),
    entry("api.people.read", "API Resource: People - Read", FunctionKind::Read, FunctionScope::Account),
    entry("api.sessions.read", "API Resource: Sessions - Read", FunctionKind::Read, FunctionScope::Event),
    entry("api.attendees.write", "API Resource: Attendees - Write", FunctionKind::Write, FunctionScope::Event),
    entry("api.invoices.write", "API Resource: Invoices - Write", FunctionKind::Write, FunctionScope::Event),
    entry("api.people.write", "API Resource: People - Write", FunctionKind::Write, FunctionScope::Account),
    entry("security.functions.read", "Security: Functions - Read", FunctionKind::Admin, FunctionScope::Account),
    entry("security.roles.read", "Security: Roles - Read", FunctionKind::Admin, FunctionScope::Account),
    entry("security.roles.manage", "Security: Roles - Manage", FunctionKind::Admin, FunctionScope::Account),
    entry("security.users.read", "Security: Users - Read", FunctionKind::Admin, FunctionScope::Account),
    entry("security.users.manage", "Security: Users - Manage", FunctionKind::Admin, FunctionScope::Account),
    entry("security.keys.manage", "Security: API Keys - Manage", FunctionKind::Admin, FunctionScope::Account),
    entry("security.event_access.read", "Security: Event Access - Read", FunctionKind::Admin, FunctionScope::Account),
    entry(
        "security.event_access.manage",
        "Security: Event Access - Manage",
        FunctionKind::Admin,
        FunctionScope::Account,
    ),
    entry("security.audit.read", "Security: Audit Trail - Read", FunctionKind::Admin, FunctionScope::Account),
];

/// The reason a string names no function of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a function in the catalogue")]
pub struct UnknownFunction(pub String);

/// A function of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FunctionId(u8);

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Finds a function at compile time; naming a function that is not in the catalogue
/// fails the build.
const fn known(id: &str) -> FunctionId {
    let mut index = 0;
    while index < CATALOGUE.len() {
        if same(CATALOGUE[index].id, id) {
            return FunctionId(index as u8);
        }
        index += 1;
    }
    panic!("not in the catalogue")
}

impl FunctionId {
    /// Lists the function catalogue.
    pub const FUNCTIONS_READ: FunctionId = known("security.functions.read");
    /// Reads roles.
    pub const ROLES_READ: FunctionId = known("security.roles.read");
    /// Creates roles and activates or deactivates their functions.
    pub const ROLES_MANAGE: FunctionId = known("security.roles.manage");
    /// Reads users.
    pub const USERS_READ: FunctionId = known("security.users.read");
    /// Creates, disables and enables users, and assigns and unassigns their roles.
    pub const USERS_MANAGE: FunctionId = known("security.users.manage");
    /// Generates and revokes keys.
    pub const KEYS_MANAGE: FunctionId = known("security.keys.manage");
    /// Reads event access groups.
    pub const EVENT_ACCESS_READ: FunctionId = known("security.event_access.read");
    /// Manages event access groups and users' event access.
    pub const EVENT_ACCESS_MANAGE: FunctionId = known("security.event_access.manage");
    /// Reads and verifies the audit trail.
    pub const AUDIT_READ: FunctionId = known("security.audit.read");

    /// Looks a function up by its id.
    pub fn parse(id: &str) -> Result<Self, UnknownFunction> {
        CATALOGUE
            .iter()
            .position(|info| info.id == id)
            .and_then(|index| u8::try_from(index).ok())
            .map(Self)
            .ok_or_else(|| UnknownFunction(id.to_owned()))
    }

    /// Every function, in catalogue order.
    pub fn all() -> impl Iterator<Item = FunctionId> {
        (0..CATALOGUE.len()).filter_map(|index| u8::try_from(index).ok().map(FunctionId))
    }

    /// The catalogue entry describing this function.
    pub fn info(self) -> &'static FunctionInfo {
        &CATALOGUE[usize::from(self.0)]
    }

    /// The function's id, such as `api.attendees.read`.
    pub fn as_str(self) -> &'static str {
        self.info().id
    }

    /// Whether this is an API function (`api.*`), the kind an API role holds.
    pub fn is_api(self) -> bool {
        !self.is_admin()
    }

    /// Whether this is an admin function (`security.*`).
    pub fn is_admin(self) -> bool {
        self.info().kind == FunctionKind::Admin
    }

    /// Whether the function acts on one event's data or on the whole account.
    pub fn scope(self) -> FunctionScope {
        self.info().scope
    }

    /// Whether the function acts on one event's data: one bit test, for the key check.
    pub fn is_event_scoped(self) -> bool {
        FunctionSet::EVENT_SCOPED.contains(self)
    }

    fn bit(self) -> u64 {
        1 << self.0
    }
}

super::ids::text_form!(FunctionId, UnknownFunction);

/// A set of functions, as a bit mask over the catalogue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FunctionSet(u64);

impl FunctionSet {
    /// The empty set.
    pub const EMPTY: FunctionSet = FunctionSet(0);

    /// Every event-scoped function, gathered from the catalogue when the crate is built.
    pub const EVENT_SCOPED: FunctionSet = FunctionSet(event_scoped_mask());

    /// Every admin function, gathered from the catalogue when the crate is built: the same
    /// set as [`FunctionSet::all_admin`], for the check path.
    pub const ALL_ADMIN: FunctionSet = FunctionSet(admin_mask());

    /// Every admin function: what the bootstrap Administrator role holds.
    pub fn all_admin() -> Self {
        FunctionId::all().filter(|f| f.is_admin()).collect()
    }

    /// Whether the set holds the function.
    pub fn contains(self, function: FunctionId) -> bool {
        self.0 & function.bit() != 0
    }

    /// Whether the set holds every function of `other`.
    #[inline]
    pub fn contains_all(self, other: FunctionSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Adds a function.
    pub fn insert(&mut self, function: FunctionId) {
        self.0 |= function.bit();
    }

    /// Removes a function.
    pub fn remove(&mut self, function: FunctionId) {
        self.0 &= !function.bit();
    }

    /// The union of two sets.
    pub fn union(self, other: FunctionSet) -> FunctionSet {
        FunctionSet(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether any function in the set is an API function.
    pub fn has_api(self) -> bool {
        self.iter().any(FunctionId::is_api)
    }

    /// Whether any function in the set is an admin function.
    pub fn has_admin(self) -> bool {
        self.iter().any(FunctionId::is_admin)
    }

    /// The functions in the set, in catalogue order.
    pub fn iter(self) -> impl Iterator<Item = FunctionId> {
        FunctionId::all().filter(move |f| self.contains(*f))
    }
}

/// The bits of the catalogue's event-scoped functions.
const fn event_scoped_mask() -> u64 {
    let mut mask = 0;
    let mut index = 0;
    while index < CATALOGUE.len() {
        if matches!(CATALOGUE[index].scope, FunctionScope::Event) {
            mask |= 1 << index;
        }
        index += 1;
    }
    mask
}

const fn admin_mask() -> u64 {
    let mut mask = 0;
    let mut index = 0;
    while index < CATALOGUE.len() {
        if matches!(CATALOGUE[index].kind, FunctionKind::Admin) {
            mask |= 1 << index;
        }
        index += 1;
    }
    mask
}

impl FromIterator<FunctionId> for FunctionSet {
    fn from_iter<I: IntoIterator<Item = FunctionId>>(iter: I) -> Self {
        let mut set = FunctionSet::EMPTY;
        for function in iter {
            set.insert(function);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_has_the_platform_api_functions_and_no_events_or_sessions_write() {
        let read: Vec<_> =
            FunctionId::all().filter(|f| f.info().kind == FunctionKind::Read).map(FunctionId::as_str).collect();
        assert_eq!(
            read,
            ["api.attendees.read", "api.events.read", "api.invoices.read", "api.people.read", "api.sessions.read"]
        );
        assert!(FunctionId::parse("api.events.write").is_err());
        assert!(FunctionId::parse("api.sessions.write").is_err());
        assert_eq!(
            FunctionId::parse("api.invoices.write").map(|f| f.info().name),
            Ok("API Resource: Invoices - Write")
        );
    }

    #[test]
    fn ids_are_unique_and_fit_in_the_bit_mask() {
        let mut ids: Vec<_> = CATALOGUE.iter().map(|info| info.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CATALOGUE.len());
        assert!(CATALOGUE.len() <= 64);
    }

    #[test]
    fn attendees_sessions_and_invoices_are_event_scoped_and_the_rest_account_wide() {
        let event_scoped: Vec<_> = FunctionId::all().filter(|f| f.is_event_scoped()).map(FunctionId::as_str).collect();
        assert_eq!(
            event_scoped,
            [
                "api.attendees.read",
                "api.invoices.read",
                "api.sessions.read",
                "api.attendees.write",
                "api.invoices.write"
            ]
        );
        for function in FunctionId::all() {
            assert_eq!(function.is_event_scoped(), function.scope() == FunctionScope::Event, "{function}");
        }
        assert!(FunctionSet::all_admin().iter().all(|f| f.scope() == FunctionScope::Account));
    }

    #[test]
    fn admin_functions_are_exactly_the_security_ones() {
        for function in FunctionId::all() {
            assert_eq!(function.is_admin(), function.as_str().starts_with("security."), "{function}");
            assert_eq!(function.is_api(), function.as_str().starts_with("api."), "{function}");
        }
    }
}
