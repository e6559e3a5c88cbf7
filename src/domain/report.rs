//! The access review report: one row per user, with what a compliance reviewer needs to
//! judge whether the user should keep their access, and flags for what usually should
//! not stay as it is.
//!
//! A pure function of the permission view and the time, so that the same report can be
//! made by the server (`accessReport`) and offline (`keyledger access-report`).

use super::view::HeldRole;
use super::{
    EventAccess, FunctionKind, FunctionSet, KeyHash, KeyId, KeyState, PolicyLimit, State, Timestamp, User, UserId,
};

/// How many days make a key old, and how many days without use make it unused: 90, the
/// rotation period most compliance frameworks ask for.
pub const REVIEW_PERIOD_DAYS: u64 = 90;

/// How many days ahead the report looks for keys the key policy will block: 14.
pub const POLICY_WARNING_DAYS: u32 = 14;

const MILLIS_PER_DAY: i64 = 24 * 60 * 60 * 1000;

/// One user, as the access review shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessReviewRow {
    /// The user's id.
    pub user_id: UserId,
    /// The user's display name.
    pub name: String,
    /// Whether the user's keys may pass checks.
    pub enabled: bool,
    /// The roles the user holds, by id.
    pub roles: Vec<HeldRole>,
    /// The union of the functions of the user's roles.
    pub functions: FunctionSet,
    /// The events the user may access.
    pub event_access: EventAccess,
    /// The user's current key, if they have one.
    pub key: Option<KeySummary>,
    /// What a reviewer should look at.
    pub flags: ReviewFlags,
}

/// A user's current key as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySummary {
    /// The key's public id.
    pub key_id: KeyId,
    /// When it was generated.
    pub created_at: Timestamp,
    /// Whole days since it was generated (0 for a key generated in the last 24 hours).
    pub age_days: u64,
    /// When it expires, if it does.
    pub expires_at: Option<Timestamp>,
    /// Where it stands at the report's time ([`crate::domain::Key::state_at`]).
    pub state: KeyState,
    /// Its last recorded use, if any (see [`crate::domain::Key::last_used_at`]).
    pub last_used_at: Option<Timestamp>,
    /// When the key policy blocks (or blocked) the key, and by which limit, if a limit
    /// binds it (it is not exempt, and not revoked, replaced or expired).
    pub policy_block: Option<(PolicyLimit, Timestamp)>,
    /// Whether the key was imported (`importKey`) rather than issued by keyledger.
    pub legacy: bool,
}

/// The findings a reviewer wants flagged. Each is defined at its field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReviewFlags {
    /// The user holds an API role (a role with API functions) that has at least one
    /// write function: the app can change platform data, not only read it.
    pub write_on_api_role: bool,
    /// The user's current key was generated more than [`REVIEW_PERIOD_DAYS`] days ago.
    pub key_older_than_90_days: bool,
    /// The user's current key is older than [`REVIEW_PERIOD_DAYS`] days and was either
    /// never recorded as used or last used more than [`REVIEW_PERIOD_DAYS`] days ago. A
    /// younger key is never flagged: it has not had the time to be unused that long.
    pub key_unused_90_days: bool,
    /// The user is disabled but a key of theirs (the current one, or the replaced one in
    /// its grace period) is neither revoked, expired nor past its grace period: enabling
    /// the user would make it work again at once.
    pub disabled_user_with_active_key: bool,
    /// The user was created by `keyledger recover-admin` (an `AdministratorRecovered`
    /// record, which holds the operator's reason): a full administrator made outside the
    /// API, which a reviewer should confirm was expected.
    pub recovered_administrator: bool,
    /// The key policy blocks the user's current key now, or will within
    /// [`POLICY_WARNING_DAYS`] days (`KeySummary::policy_block` says when and why).
    pub key_blocked_by_policy: bool,
    /// The user's current key was imported (`importKey`): rotate it, which issues a `kl_`
    /// key (with a grace period for the imported one, if asked).
    pub legacy_key_rotate: bool,
}

/// The report at `now`: one row per user, in the order they were created.
pub fn access_report(state: &State, now: Timestamp) -> Vec<AccessReviewRow> {
    state.users_after(0).map(|user| row(state, user, now)).collect()
}

fn row(state: &State, user: &User, now: Timestamp) -> AccessReviewRow {
    let roles: Vec<_> = user.roles().iter().filter_map(|id| state.role(id)).collect();
    let write_on_api_role = roles
        .iter()
        .any(|role| role.is_api_role() && role.functions().iter().any(|f| f.info().kind == FunctionKind::Write));
    let key = user.current_key().and_then(|hash| state.key(&hash)).map(|key| KeySummary {
        key_id: key.id().clone(),
        created_at: key.created_at(),
        age_days: days_between(key.created_at(), now),
        expires_at: key.expires_at(),
        state: state.key_state(key, now),
        last_used_at: key.last_used_at(),
        policy_block: Some(key)
            .filter(|key| key.state_at(now).is_usable() && !state.is_policy_exempt(key))
            .and_then(|key| state.key_policy().next_block(key)),
        legacy: key.is_legacy(),
    });
    let warning_horizon = now.plus_seconds(u64::from(POLICY_WARNING_DAYS) * 24 * 60 * 60);
    let key_blocked_by_policy =
        key.as_ref().and_then(|key| key.policy_block).is_some_and(|(_, from)| from <= warning_horizon);
    let legacy_key_rotate = key.as_ref().is_some_and(|key| key.legacy);
    let older_than_period = |at: Timestamp| more_than_a_review_period(at, now);
    let key_older_than_90_days = key.as_ref().is_some_and(|key| older_than_period(key.created_at));
    let key_unused_90_days =
        key_older_than_90_days && key.as_ref().is_some_and(|key| key.last_used_at.is_none_or(older_than_period));
    let disabled_user_with_active_key = !user.is_enabled()
        && [user.current_key(), user.grace_key()].into_iter().flatten().any(|hash| works(state, hash, now));
    AccessReviewRow {
        user_id: user.id().clone(),
        name: user.name().to_owned(),
        enabled: user.is_enabled(),
        roles: roles
            .iter()
            .map(|role| HeldRole { id: role.id().clone(), description: role.description().to_owned() })
            .collect(),
        functions: state.functions_of(user),
        event_access: user.event_access().to_access(),
        key,
        flags: ReviewFlags {
            write_on_api_role,
            key_older_than_90_days,
            key_unused_90_days,
            disabled_user_with_active_key,
            recovered_administrator: user.recovered().is_some(),
            key_blocked_by_policy,
            legacy_key_rotate,
        },
    }
}

/// Whether the key would pass a check at `now` if its user were enabled.
fn works(state: &State, hash: KeyHash, now: Timestamp) -> bool {
    state.key(&hash).is_some_and(|key| state.key_state(key, now).is_usable())
}

/// Whole days from `from` to `to`; 0 if `to` is not after `from`.
fn days_between(from: Timestamp, to: Timestamp) -> u64 {
    let millis = to.unix_millis().saturating_sub(from.unix_millis()).max(0);
    u64::try_from(millis / MILLIS_PER_DAY).unwrap_or(0)
}

/// Whether more than [`REVIEW_PERIOD_DAYS`] days of 24 hours, to the millisecond, separate
/// `from` and `to`.
fn more_than_a_review_period(from: Timestamp, to: Timestamp) -> bool {
    let period = i64::try_from(REVIEW_PERIOD_DAYS).unwrap_or(i64::MAX).saturating_mul(MILLIS_PER_DAY);
    to.unix_millis().saturating_sub(from.unix_millis()) > period
}
