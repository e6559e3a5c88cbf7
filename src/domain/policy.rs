//! The key policy (issue #14, point 2): limits every key is held to, set by
//! `setKeyPolicy` (`KeyPolicySet`) and judged from numbers already in the key's slot.
//!
//! * `max_lifetime_days` — a key that many days after its creation is blocked as
//!   *too old* (`key_too_old`). It is blocked, not revoked: raising or clearing the limit
//!   lets it through again.
//! * `max_unused_days` — a key with no recorded use for that many days (counted from its
//!   last recorded use, or from its creation if none was recorded) is blocked as
//!   *dormant* (`key_dormant`) until it is rotated. Use is what the ledger already
//!   records (`Key::last_used_at`, set by the usage records every
//!   `--key-usage-interval-secs`); the refused checks of a dormant key are not counted
//!   as use, so trying it does not wake it.
//! * `require_expiry` — `generateKey` and `importKey` without `expires_at` are refused
//!   (`expiry_required`, 422).
//!
//! **Exempt:** the current, non-expiring key of a user holding every admin function, the
//! key that makes a *standing administrator* (see `authority`). The bootstrap and
//! recovered administrators' keys are such keys. The lockout rule counts only
//! administrators whose key never expires, so requiring an expiry of them would refuse
//! every rotation of the last administrator's key, and blocking their keys for age or
//! idleness would let time alone lock everybody out, which the lockout rule exists to
//! prevent. An administrator's key given an expiry, or in its grace period, is not
//! exempt.

use serde::{Deserialize, Serialize};

use super::{FunctionSet, Key, KeyState, KeyStatus, Reason, Timestamp};

/// The longest limit a policy may set, in days (about ten years).
pub const MAX_POLICY_DAYS: u32 = 3650;

const MILLIS_PER_DAY: i64 = 24 * 60 * 60 * 1000;

/// The limits every key is held to. The default limits nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPolicy {
    max_lifetime_days: Option<u32>,
    require_expiry: bool,
    max_unused_days: Option<u32>,
}

/// Why a policy cannot be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be from 1 to {MAX_POLICY_DAYS} days, or null for no limit")]
pub struct InvalidKeyPolicy {
    /// The field out of range.
    pub field: &'static str,
}

/// A limit of the policy that blocks keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyLimit {
    /// `max_lifetime_days`: the key is too old.
    MaxLifetime,
    /// `max_unused_days`: the key is dormant.
    MaxUnused,
}

impl PolicyLimit {
    /// The reason a check gives for a key this limit blocks.
    pub fn reason(self) -> Reason {
        match self {
            PolicyLimit::MaxLifetime => Reason::KeyTooOld,
            PolicyLimit::MaxUnused => Reason::KeyDormant,
        }
    }
}

impl KeyPolicy {
    /// A policy, each number of days from 1 to [`MAX_POLICY_DAYS`] or `None` for no limit.
    pub fn new(
        max_lifetime_days: Option<u32>,
        require_expiry: bool,
        max_unused_days: Option<u32>,
    ) -> Result<Self, InvalidKeyPolicy> {
        let in_range = |days: Option<u32>| days.is_none_or(|days| (1..=MAX_POLICY_DAYS).contains(&days));
        if !in_range(max_lifetime_days) {
            return Err(InvalidKeyPolicy { field: "max_lifetime_days" });
        }
        if !in_range(max_unused_days) {
            return Err(InvalidKeyPolicy { field: "max_unused_days" });
        }
        Ok(KeyPolicy { max_lifetime_days, require_expiry, max_unused_days })
    }

    /// The policy as a `KeyPolicySet` recorded it. Replay never refuses a record, so the
    /// numbers are taken as written.
    pub fn recorded(max_lifetime_days: Option<u32>, require_expiry: bool, max_unused_days: Option<u32>) -> Self {
        KeyPolicy { max_lifetime_days, require_expiry, max_unused_days }
    }

    /// The most days after its creation a key passes checks, if limited.
    pub fn max_lifetime_days(&self) -> Option<u32> {
        self.max_lifetime_days
    }

    /// Whether new keys must have an expiry.
    pub fn require_expiry(&self) -> bool {
        self.require_expiry
    }

    /// The most days a key may go unused and still pass checks, if limited.
    pub fn max_unused_days(&self) -> Option<u32> {
        self.max_unused_days
    }

    /// Whether the policy blocks any key: the check's one extra branch when it does not.
    #[inline]
    pub fn blocks_keys(&self) -> bool {
        self.max_lifetime_days.is_some() || self.max_unused_days.is_some()
    }

    /// When `key` becomes too old under this policy, if the policy limits lifetime.
    pub fn too_old_from(&self, key: &Key) -> Option<Timestamp> {
        self.max_lifetime_days.map(|days| after_days(key.created_at(), days))
    }

    /// When `key` becomes dormant under this policy, if it limits idleness: that many days
    /// after its last recorded use, or after its creation if none was recorded.
    pub fn dormant_from(&self, key: &Key) -> Option<Timestamp> {
        let since = key.last_used_at().map_or(key.created_at(), |used| used.max(key.created_at()));
        self.max_unused_days.map(|days| after_days(since, days))
    }

    /// The first limit that blocks `key`, and from when: what `whoAmI` and the access
    /// report show before it comes. Too old wins a tie.
    pub fn next_block(&self, key: &Key) -> Option<(PolicyLimit, Timestamp)> {
        let too_old = self.too_old_from(key).map(|at| (PolicyLimit::MaxLifetime, at));
        let dormant = self.dormant_from(key).map(|at| (PolicyLimit::MaxUnused, at));
        match (too_old, dormant) {
            (Some(old), Some(idle)) => Some(if idle.1 < old.1 { idle } else { old }),
            (one, other) => one.or(other),
        }
    }

    /// The state the policy gives a key that is otherwise usable at `now`: too old, then
    /// dormant, or `None` if neither limit has been reached. Allocates nothing.
    #[inline]
    pub fn judge(&self, key: &Key, now: Timestamp) -> Option<KeyState> {
        if let Some(since) = self.too_old_from(key).filter(|&since| now >= since) {
            return Some(KeyState::TooOld { since });
        }
        self.dormant_from(key).filter(|&since| now >= since).map(|since| KeyState::Dormant { since })
    }
}

/// Whether the policy leaves `key` alone because it is what makes its user a standing
/// administrator: the current key, set never to expire, of a user holding every admin
/// function (`functions`, its user's). See the module's documentation.
#[inline]
pub fn is_exempt(key: &Key, functions: FunctionSet) -> bool {
    key.status() == KeyStatus::Active && key.expires_at().is_none() && functions.contains_all(FunctionSet::ALL_ADMIN)
}

/// Whether `require_expiry` lets a key without expiry be issued to a user holding
/// `functions`: only to one holding every admin function (see the module's documentation).
pub fn may_skip_expiry(functions: FunctionSet) -> bool {
    functions.contains_all(FunctionSet::ALL_ADMIN)
}

fn after_days(from: Timestamp, days: u32) -> Timestamp {
    Timestamp::from_unix_millis(from.unix_millis().saturating_add(i64::from(days).saturating_mul(MILLIS_PER_DAY)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_one_day_to_ten_years_or_none() {
        assert!(KeyPolicy::new(Some(1), true, Some(MAX_POLICY_DAYS)).is_ok());
        assert!(KeyPolicy::new(None, false, None).is_ok());
        assert_eq!(KeyPolicy::new(Some(0), false, None), Err(InvalidKeyPolicy { field: "max_lifetime_days" }));
        assert_eq!(
            KeyPolicy::new(None, false, Some(MAX_POLICY_DAYS + 1)),
            Err(InvalidKeyPolicy { field: "max_unused_days" })
        );
    }

    #[test]
    fn the_admin_mask_built_at_compile_time_is_every_admin_function() {
        assert_eq!(FunctionSet::ALL_ADMIN, FunctionSet::all_admin());
    }

    #[test]
    fn the_default_policy_blocks_nothing() {
        assert!(!KeyPolicy::default().blocks_keys());
        assert!(!KeyPolicy::default().require_expiry());
    }
}
