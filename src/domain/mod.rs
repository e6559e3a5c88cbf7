//! The pure core: what admins can do, the rules they must follow, and the key check.
//!
//! Nothing here does I/O or knows of HTTP or storage. Commands are decided by
//! [`decide`] into events; the state changes only through [`State::apply`]; a key check
//! is [`check`]. Point-in-time questions (the whole view, who can do a function, what an
//! event changed) are answered by the functions of `view`. Randomness and the clock are
//! passed in.

mod authority;
mod catalogue;
mod check;
mod decide;
mod error;
mod event;
mod fingerprint;
mod function_usage;
mod ids;
mod justification;
mod key;
mod key_state;
mod policy;
mod report;
mod small_set;
mod state;
mod time;
mod unused;
mod values;
mod view;

#[cfg(test)]
mod tests;

pub use authority::{
    Because, Shortfall, authorise, function_of as function_of_command, has_standing_administrator,
    is_standing_administrator,
};
pub use catalogue::{CATALOGUE, FunctionId, FunctionInfo, FunctionKind, FunctionScope, FunctionSet, UnknownFunction};
pub use check::{CheckRequest, CheckView, Decision, Reason, check, check_key_hash};
pub use decide::{Command, Context, KeyUsage, MAX_DENIAL_TARGET_CHARS, MAX_GRACE_SECONDS, decide};
pub use error::{DomainError, Resource};
pub use event::{Event, FunctionUse, KeyUse, MAX_KEYS_PER_USAGE_RECORD};
pub use fingerprint::FingerprintCache;
pub use function_usage::FunctionUsage;
pub use ids::{Actor, EventId, GroupId, IdText, InvalidEventId, InvalidId, KeyId, RoleId, UserId};
pub use justification::{Justification, required_for as justification_required_for};
pub use key::{InvalidKeyHash, KEY_LEN, KeyHash, KeySecret, MalformedKey};
pub use key_state::KeyState;
pub use policy::{InvalidKeyPolicy, KeyPolicy, MAX_POLICY_DAYS, PolicyLimit, may_skip_expiry};
pub use report::{AccessReviewRow, KeySummary, POLICY_WARNING_DAYS, REVIEW_PERIOD_DAYS, ReviewFlags, access_report};
pub use small_set::SmallSet;
pub use state::{
    CheckIndex, CheckUpdate, EventAccess, Group, Key, KeyHashHasher, KeyStatus, Position, Role, State, User, UserCheck,
};
pub use time::{InvalidTimestamp, Timestamp};
pub use unused::{UnusedAccess, UnusedByUser, UnusedDays, unused_access};
pub use values::{Email, InvalidText, Lookalike, Name, RecoveryReason};
pub use view::{
    Change, ChangeKind, EventAccessReason, Fact, GroupSummary, HeldRole, KeyAtTime, PermissionView, RoleSummary,
    UserPermissions, WhoCanAnswer, accessible_events, affected_users, apply_tracking_changes, changes, compare,
    permission_facts, who_can,
};
