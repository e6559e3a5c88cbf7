//! Where a key stands at a point in time: the one judgement of a key's state.
//!
//! Every place that asks whether a key works, or shows where it stands, asks
//! [`Key::state_at`]: the check, the authority rules, revocation, the point-in-time views,
//! the access report and the HTTP views. So a key that one of them shows as working is a
//! key the others let through, and all of them use the same names for its state.
//!
//! A key can be in more than one condition at once (replaced and expired, revoked and
//! expired, and its user disabled on top). The judgement names one, by this precedence:
//!
//! 1. **revoked** — an admin stopped it; nothing brings it back;
//! 2. **replaced** — a newer key took its place and its grace period is over;
//! 3. **expired** — its expiry time has come;
//! 4. **too old** — the key policy's `max_lifetime_days` have passed since its creation;
//! 5. **dormant** — the key policy's `max_unused_days` have passed since its last
//!    recorded use (or its creation);
//! 6. **grace** — replaced, but still inside its grace period;
//! 7. **active** — the user's current key.
//!
//! The first five pass no check, the last two do. *Too old* and *dormant* are the key
//! policy's (`policy.rs`), so only [`State::key_state`](super::State::key_state), which
//! knows the policy and the key's user, judges them; [`Key::state_at`] is the key's own
//! state, the policy aside, and every view, report and check asks `State::key_state`. A grace period never outlasts the key's
//! expiry (`decide` ends it at the expiry), so a replaced key that has also expired is
//! *replaced*: the end of its grace period came first. Whether the user is disabled is not
//! part of a key's state: it is the user's, and the check judges it after the key.

use super::{Key, KeyStatus, Reason, Timestamp};

/// Where a key stands at a point in time. See the module's documentation for the
/// precedence when more than one applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// The user's current key, not expired: it passes checks.
    Active,
    /// Replaced by a newer key but still in its grace period: it passes checks until
    /// `valid_until`.
    InGrace {
        /// When the grace period ends.
        valid_until: Timestamp,
    },
    /// Replaced, and its grace period is over: it passes no check.
    Replaced {
        /// When the grace period ended.
        valid_until: Timestamp,
    },
    /// Past its expiry time: it passes no check.
    Expired {
        /// When it expired.
        at: Timestamp,
    },
    /// Revoked: it passes no check.
    Revoked {
        /// When it was revoked.
        at: Timestamp,
    },
    /// Blocked by the key policy's `max_lifetime_days`: it passes no check until the
    /// limit is raised or cleared.
    TooOld {
        /// When the limit was reached.
        since: Timestamp,
    },
    /// Blocked by the key policy's `max_unused_days`: it passes no check until it is
    /// rotated (or the limit is raised or cleared).
    Dormant {
        /// When the limit was reached.
        since: Timestamp,
    },
}

impl Key {
    /// Where the key stands at `now`, the key policy aside (see
    /// [`State::key_state`](super::State::key_state)): revoked, then replaced with its grace period over,
    /// then expired, then in its grace period, else active. Allocates nothing.
    pub fn state_at(&self, now: Timestamp) -> KeyState {
        match self.status() {
            KeyStatus::Revoked { at } => KeyState::Revoked { at },
            KeyStatus::Replaced { valid_until } if now >= valid_until => KeyState::Replaced { valid_until },
            status => match self.expires_at() {
                Some(at) if now >= at => KeyState::Expired { at },
                _ => match status {
                    KeyStatus::Replaced { valid_until } => KeyState::InGrace { valid_until },
                    _ => KeyState::Active,
                },
            },
        }
    }
}

impl KeyState {
    /// Judges a key at `now`, the key policy aside; the same as [`Key::state_at`].
    pub fn of(key: &Key, now: Timestamp) -> KeyState {
        key.state_at(now)
    }

    /// Whether a key in this state passes checks (if its user is enabled).
    pub fn is_usable(self) -> bool {
        matches!(self, KeyState::Active | KeyState::InGrace { .. })
    }

    /// Why a check refuses a key in this state, or `None` if the key passes. A replaced
    /// key past its grace period is refused as unknown, as if it had never existed.
    pub fn refusal(self) -> Option<Reason> {
        match self {
            KeyState::Active | KeyState::InGrace { .. } => None,
            KeyState::Replaced { .. } => Some(Reason::UnknownKey),
            KeyState::Expired { .. } => Some(Reason::ExpiredKey),
            KeyState::Revoked { .. } => Some(Reason::RevokedKey),
            KeyState::TooOld { .. } => Some(Reason::KeyTooOld),
            KeyState::Dormant { .. } => Some(Reason::KeyDormant),
        }
    }

    /// Whether revoking the user's keys would revoke a key in this state: every key not
    /// yet revoked and not past its grace period. An expired key is revoked too, so that
    /// the log says it was.
    pub fn is_revocable(self) -> bool {
        !matches!(self, KeyState::Revoked { .. } | KeyState::Replaced { .. })
    }

    /// The state as clients see it, in every view and report: `active`, `grace`,
    /// `replaced`, `expired`, `revoked`, `too_old` or `dormant`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::InGrace { .. } => "grace",
            KeyState::Replaced { .. } => "replaced",
            KeyState::Expired { .. } => "expired",
            KeyState::Revoked { .. } => "revoked",
            KeyState::TooOld { .. } => "too_old",
            KeyState::Dormant { .. } => "dormant",
        }
    }

    /// For a replaced key (in its grace period or past it), when its grace period ends.
    pub fn valid_until(self) -> Option<Timestamp> {
        match self {
            KeyState::InGrace { valid_until } | KeyState::Replaced { valid_until } => Some(valid_until),
            _ => None,
        }
    }
}
