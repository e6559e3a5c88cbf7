//! Why a command was refused.

use super::{Actor, EventId, FunctionId, GroupId, RoleId, Shortfall, UserId};

/// What kind of thing an id failed to name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A role.
    Role,
    /// A user.
    User,
    /// An event access group.
    Group,
}

impl Resource {
    /// The resource as named in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Role => "role",
            Resource::User => "user",
            Resource::Group => "event group",
        }
    }
}

/// A command refused by the rules. Refusing appends nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// The command names a role, user or group that does not exist.
    #[error("no {} with id {id}", resource.as_str())]
    NotFound {
        /// What kind of thing.
        resource: Resource,
        /// The id that named nothing.
        id: String,
    },
    /// Another role already has this description (compared case-insensitively).
    #[error("a role described as \"{description}\" already exists ({existing})")]
    DuplicateRoleDescription {
        /// The description asked for.
        description: String,
        /// The role that has it.
        existing: RoleId,
    },
    /// A sibling group already has this name.
    #[error("the group already has a subgroup named \"{name}\" ({existing})")]
    DuplicateGroupName {
        /// The name asked for.
        name: String,
        /// The group that has it.
        existing: GroupId,
    },
    /// The role would hold both API and admin functions.
    #[error(
        "role {role_id} would hold both API functions and admin functions ({function}); an API role holds API functions only"
    )]
    MixedRole {
        /// The role.
        role_id: RoleId,
        /// The function that would mix them.
        function: FunctionId,
    },
    /// The change would leave a user holding an API role beside another role.
    #[error(
        "user {user_id} would hold API role {api_role} beside another role, but an API role is held alone: \
         give it and the other roles to different users (createUser makes a new one for the app), \
         or first unassign the roles the user must not keep (unassignRole)"
    )]
    StandaloneApiRole {
        /// The user.
        user_id: UserId,
        /// The API role involved.
        api_role: RoleId,
    },
    /// The user does not hold the role.
    #[error("user {user_id} does not hold role {role_id}")]
    RoleNotAssigned {
        /// The user.
        user_id: UserId,
        /// The role.
        role_id: RoleId,
    },
    /// The event is not in the group.
    #[error("event {event_id} is not in group {group_id}")]
    EventNotInGroup {
        /// The group.
        group_id: GroupId,
        /// The event.
        event_id: EventId,
    },
    /// The user has no key that works.
    #[error("user {user_id} has no key to revoke")]
    NoKey {
        /// The user.
        user_id: UserId,
    },
    /// The requested expiry time has already passed.
    #[error("expires_at must be in the future")]
    ExpiryInThePast,
    /// The key policy requires an expiry (`require_expiry`) and none was given.
    #[error("the key policy requires expires_at for this user's keys (require_expiry)")]
    ExpiryRequired,
    /// An imported key is already known: another user's, or this user's, key. The message
    /// never names the key.
    #[error("this key is already known to keyledger; import a key only once")]
    KeyAlreadyKnown,
    /// The grace period asked for is longer than allowed.
    #[error("grace_seconds must be at most {max} (30 days)")]
    GracePeriodTooLong {
        /// The longest grace period allowed, in seconds.
        max: u64,
    },
    /// The actor would lock themselves out.
    #[error("you cannot {action}; ask another administrator")]
    SelfLockout {
        /// What they tried, such as "disable yourself".
        action: &'static str,
    },
    /// The resource changed since the version the client read (`If-Match`).
    #[error("the {} is at version {actual}, not {expected}", resource.as_str())]
    VersionMismatch {
        /// What kind of thing.
        resource: Resource,
        /// The version the client expected.
        expected: u64,
        /// The version it is at.
        actual: u64,
    },
    /// The data directory has already been initialised.
    #[error("the ledger is already initialised")]
    AlreadyInitialised,
    /// The actor lacks the authority the change demands at the moment it is applied.
    #[error("{actor} may not make this change: {shortfall}")]
    InsufficientAuthority {
        /// Who asked.
        actor: Actor,
        /// What it lacks.
        shortfall: Shortfall,
    },
    /// The change would leave no standing administrator: no enabled user holding every
    /// admin function with a key that is neither revoked nor set to expire.
    #[error(
        "this change would leave no enabled administrator holding every admin function with a key that does not expire; make another user a full administrator (or give one a key without expiry) first"
    )]
    LastAdministrator,
    /// The new group would sit deeper than groups may nest.
    #[error("event groups nest at most {max} levels deep; the parent is already at the deepest level")]
    GroupTooDeep {
        /// The most levels a chain of nested groups may have, the outermost counted as 1.
        max: usize,
    },
    /// The name looks like that of an existing role, user or group: equal but for case or
    /// normalisation, or confusable with it (UTS #39 skeletons, see
    /// [`Lookalike`](super::Lookalike)), so people could not tell the two apart.
    #[error("\"{name}\" looks like {} {existing}, \"{existing_name}\"; names must differ at a glance", resource.as_str())]
    LookalikeName {
        /// What kind of thing is named.
        resource: Resource,
        /// The name asked for.
        name: String,
        /// The id of the role, user or group it looks like.
        existing: String,
        /// That one's name, as stored.
        existing_name: String,
    },
}
