//! The fixed catalogue of functions a role can activate.
//!
//! API functions (`api.*`) are what apps are checked against; admin functions
//! (`security.*`) guard keyledger's own admin API. A function is a small index into
//! [`CATALOGUE`], so a set of functions is a bit mask and a check is one AND.

use std::fmt;

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

/// One entry of the catalogue.
#[derive(Debug)]
pub struct FunctionInfo {
    /// The stable id clients use, such as `api.attendees.read`.
    pub id: &'static str,
    /// The display name, such as "API Resource: Attendees - Read".
    pub name: &'static str,
    /// Whether the function reads, writes or administers.
    pub kind: FunctionKind,
}

const fn entry(id: &'static str, name: &'static str, kind: FunctionKind) -> FunctionInfo {
    FunctionInfo { id, name, kind }
}

/// Every function keyledger knows, in the order they are listed.
///
/// Append only: a function's position is its bit in [`FunctionSet`], which is held in
/// memory only, but reordering would make listings jump for clients.
pub static CATALOGUE: [FunctionInfo; 17] = [
    entry("api.attendees.read", "API Resource: Attendees - Read", FunctionKind::Read),
    entry("api.events.read", "API Resource: Events - Read", FunctionKind::Read),
    entry("api.invoices.read", "API Resource: Invoices - Read", FunctionKind::Read),
    entry("api.people.read", "API Resource: People - Read", FunctionKind::Read),
    entry("api.sessions.read", "API Resource: Sessions - Read", FunctionKind::Read),
    entry("api.attendees.write", "API Resource: Attendees - Write", FunctionKind::Write),
    entry("api.invoices.write", "API Resource: Invoices - Write", FunctionKind::Write),
    entry("api.people.write", "API Resource: People - Write", FunctionKind::Write),
    entry("security.functions.read", "Security: Functions - Read", FunctionKind::Admin),
    entry("security.roles.read", "Security: Roles - Read", FunctionKind::Admin),
    entry("security.roles.manage", "Security: Roles - Manage", FunctionKind::Admin),
    entry("security.users.read", "Security: Users - Read", FunctionKind::Admin),
    entry("security.users.manage", "Security: Users - Manage", FunctionKind::Admin),
    entry("security.keys.manage", "Security: API Keys - Manage", FunctionKind::Admin),
    entry("security.event_access.read", "Security: Event Access - Read", FunctionKind::Admin),
    entry("security.event_access.manage", "Security: Event Access - Manage", FunctionKind::Admin),
    entry("security.audit.read", "Security: Audit Trail - Read", FunctionKind::Admin),
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

    fn bit(self) -> u64 {
        1 << self.0
    }
}

impl TryFrom<String> for FunctionId {
    type Error = UnknownFunction;
    fn try_from(value: String) -> Result<Self, UnknownFunction> {
        Self::parse(&value)
    }
}

impl From<FunctionId> for String {
    fn from(id: FunctionId) -> String {
        id.as_str().to_owned()
    }
}

impl fmt::Display for FunctionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of functions, as a bit mask over the catalogue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FunctionSet(u64);

impl FunctionSet {
    /// The empty set.
    pub const EMPTY: FunctionSet = FunctionSet(0);

    /// Every admin function: what the bootstrap Administrator role holds.
    pub fn all_admin() -> Self {
        FunctionId::all().filter(|f| f.is_admin()).collect()
    }

    /// Whether the set holds the function.
    pub fn contains(self, function: FunctionId) -> bool {
        self.0 & function.bit() != 0
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
    fn admin_functions_are_exactly_the_security_ones() {
        for function in FunctionId::all() {
            assert_eq!(function.is_admin(), function.as_str().starts_with("security."), "{function}");
            assert_eq!(function.is_api(), function.as_str().starts_with("api."), "{function}");
        }
    }
}
