//! Unused access (issue #14, point 3): per user, the functions its roles grant that none of
//! its keys passed a check of within a window, and its working keys that passed no check
//! within it. A pure function of the permission view and the time, like the access review
//! it is part of (`accessReport`, `keyledger access-report`).
//!
//! Exact, not guessed: usage records count every key's passed checks per function
//! ([`super::FunctionUsage`]). Only usage recorded before functions were counted (logs
//! written before issue #14) leaves a gap, which [`UnusedAccess::exact`] states.

use super::{FunctionSet, KeyId, State, Timestamp, User, UserId};

/// The window of the unused access report: 1 to 365 whole days ending now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnusedDays(u32);

impl UnusedDays {
    /// The window when none is asked for: 90 days, the review period.
    pub const DEFAULT: UnusedDays = UnusedDays(90);
    /// The longest window.
    pub const MAX: u32 = 365;

    /// A window of `days`, 1 to 365; `None` otherwise.
    pub fn new(days: u32) -> Option<Self> {
        (1..=Self::MAX).contains(&days).then_some(UnusedDays(days))
    }

    /// The number of days.
    pub fn days(self) -> u32 {
        self.0
    }

    /// When a window of this length ending at `now` starts.
    pub fn start(self, now: Timestamp) -> Timestamp {
        Timestamp::from_unix_millis(now.unix_millis().saturating_sub(i64::from(self.0) * 24 * 60 * 60 * 1000))
    }
}

/// What of one user's access went unused within the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedByUser {
    /// The functions the user's roles grant that none of its keys passed a check of
    /// within the window (admin functions included: the admin guard is a check of one).
    pub functions: FunctionSet,
    /// The user's keys that work now (the current one, and the replaced one in its grace
    /// period) and passed no check within the window, with their last recorded use.
    pub keys: Vec<(KeyId, Option<Timestamp>)>,
}

/// The unused access of every user at `now`, over a window of `days`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedAccess {
    /// The window's length.
    pub days: UnusedDays,
    /// When the window starts: a use at or after it counts.
    pub since: Timestamp,
    /// From when the log knows the function of every passed check; `None` when it knows
    /// it of every one.
    pub exact_since: Option<Timestamp>,
    /// Whether the function findings are exact: the window starts at or after
    /// `exact_since`. When not, a function listed may have been used by a check recorded
    /// before functions were counted.
    pub exact: bool,
}

impl UnusedAccess {
    /// The window of `days` ending at `now`, judged against `state`'s usage records.
    pub fn window(state: &State, now: Timestamp, days: UnusedDays) -> Self {
        let since = days.start(now);
        let exact_since = state.function_usage().exact_since();
        UnusedAccess { days, since, exact_since, exact: exact_since.is_none_or(|exact| exact <= since) }
    }

    /// What of `user`'s access went unused within the window, at `now`.
    pub fn of(&self, state: &State, user: &User, now: Timestamp) -> UnusedByUser {
        let usage = state.function_usage();
        let used_since = |last: Option<Timestamp>| last.is_some_and(|last| last >= self.since);
        let functions = state
            .functions_of(user)
            .iter()
            .filter(|&function| !used_since(usage.last_used(user.id(), function)))
            .collect();
        let keys = [user.current_key(), user.grace_key()]
            .into_iter()
            .flatten()
            .filter_map(|hash| state.key(&hash))
            .filter(|key| key.state_at(now).is_usable() && !used_since(key.last_used_at()))
            .map(|key| (key.id().clone(), key.last_used_at()))
            .collect();
        UnusedByUser { functions, keys }
    }
}

/// Every user with something unused, in creation order.
pub fn unused_access(state: &State, now: Timestamp, days: UnusedDays) -> (UnusedAccess, Vec<(UserId, UnusedByUser)>) {
    let window = UnusedAccess::window(state, now, days);
    let users = state
        .users_after(0)
        .map(|user| (user.id().clone(), window.of(state, user, now)))
        .filter(|(_, unused)| !unused.functions.is_empty() || !unused.keys.is_empty())
        .collect();
    (window, users)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Event, FunctionId, FunctionUse, KeyHash, KeyUse, Position, RoleId};

    const DAY: u64 = 24 * 60 * 60;

    /// A user holding one role with users.read and users.manage, and a key, from day 0.
    fn history() -> (State, UserId, KeyId) {
        let (user, role, key) = (UserId::example(1), RoleId::example(1), KeyId::example(1));
        let mut state = State::default();
        let events = [
            Event::UserCreated { user_id: user.clone(), name: "App".into(), email: None },
            Event::RoleCreated { role_id: role.clone(), description: "Admins".into() },
            Event::FunctionActivated { role_id: role.clone(), function: FunctionId::USERS_READ },
            Event::FunctionActivated { role_id: role.clone(), function: FunctionId::USERS_MANAGE },
            Event::RoleAssigned { user_id: user.clone(), role_id: role },
            Event::KeyGenerated {
                user_id: user.clone(),
                key_id: key.clone(),
                key_hash: KeyHash::example(1),
                expires_at: None,
                replaced_key_id: None,
                replaced_key_valid_until: None,
            },
        ];
        for (event, seq) in events.iter().zip(1..) {
            state.apply(Position { seq, at: day(0) }, event);
        }
        (state, user, key)
    }

    fn day(days: u64) -> Timestamp {
        Timestamp::from_unix_millis(1_800_000_000_000).plus_seconds(days * DAY)
    }

    fn used(state: &mut State, user: &UserId, key: &KeyId, at: Timestamp, functions: Option<Vec<FunctionUse>>) {
        let event = Event::KeyUsageIntervalRecorded {
            from: at,
            to: at,
            keys: vec![KeyUse {
                user_id: user.clone(),
                key_id: key.clone(),
                allowed: 1,
                refused: 0,
                first_after: 0,
                last_after: 0,
                functions,
            }],
        };
        state.apply(Position { seq: state.head() + 1, at }, &event);
    }

    #[test]
    fn functions_and_keys_unused_within_the_window_are_exactly_those_no_recorded_check_used() {
        let (mut state, user, key) = history();
        let days = UnusedDays::new(30).unwrap();
        let (window, unused) = unused_access(&state, day(10), days);
        assert!(window.exact);
        let all: FunctionSet = [FunctionId::USERS_READ, FunctionId::USERS_MANAGE].into_iter().collect();
        assert_eq!(unused, vec![(user.clone(), UnusedByUser { functions: all, keys: vec![(key.clone(), None)] })]);

        used(&mut state, &user, &key, day(20), Some(vec![FunctionUse(FunctionId::USERS_READ, 4, 0)]));
        let (_, unused) = unused_access(&state, day(40), days);
        let manage: FunctionSet = [FunctionId::USERS_MANAGE].into_iter().collect();
        assert_eq!(unused, vec![(user.clone(), UnusedByUser { functions: manage, keys: vec![] })]);
        // Thirty days and a day later the use is outside the window.
        let (_, unused) = unused_access(&state, day(51), days);
        assert_eq!(unused[0].1.functions, all);
        assert_eq!(unused[0].1.keys, vec![(key, Some(day(20)))]);
    }

    #[test]
    fn usage_recorded_without_functions_makes_a_window_that_reaches_back_before_it_inexact() {
        let (mut state, user, key) = history();
        used(&mut state, &user, &key, day(5), None);
        let days = UnusedDays::new(30).unwrap();
        let (window, unused) = unused_access(&state, day(20), days);
        assert!(!window.exact);
        assert_eq!(window.exact_since, Some(Timestamp::from_unix_millis(day(5).unix_millis() + 1)));
        // The key's use is known; which function it was of is not.
        assert!(unused[0].1.keys.is_empty());
        assert_eq!(unused[0].1.functions.iter().count(), 2);
        assert!(unused_access(&state, day(36), days).0.exact);
    }

    #[test]
    fn the_window_is_one_to_365_days() {
        assert_eq!(UnusedDays::new(0), None);
        assert_eq!(UnusedDays::new(366), None);
        assert_eq!(UnusedDays::new(365).map(UnusedDays::days), Some(365));
        assert_eq!(UnusedDays::DEFAULT.days(), 90);
    }
}
