//! The check index: what the check path reads, and nothing else, in a copy of its own
//! that only ever holds durable state.
//!
//! The writer changes the one [`State`] in place while it decides a batch, before the
//! batch is durable; checks must not see that. So the keys, the users' check entries and
//! the events' groups, which are all a check reads, are copied here, and copied again for
//! what a batch touched once the batch is durable ([`State::commit_batch`] names it,
//! [`CheckIndex::update`] installs it). A check therefore never sees an event that is not
//! durable, and never waits for the disk: the writer holds the index's lock only to
//! install an update, in memory.

use std::collections::HashMap;

use super::{EventGroups, Key, KeyHash, KeyMap, KeyPolicy, KeyState, State, Timestamp, UserCheck, event_reachable};
use crate::domain::EventId;

/// The part of the permission view a key check reads, as of the last durable batch.
#[derive(Debug, Clone, Default)]
pub struct CheckIndex {
    keys: KeyMap,
    user_checks: Vec<UserCheck>,
    groups_of_event: HashMap<EventId, EventGroups>,
    /// The key policy, which a check judges every key by ([`State::key_state`]).
    key_policy: KeyPolicy,
    head: u64,
}

/// The new values of what a batch touched, for [`CheckIndex::update`]; `None` for an
/// entry the batch removed.
#[derive(Debug, Clone, Default)]
pub struct CheckUpdate {
    pub(super) head: u64,
    pub(super) keys: Vec<(KeyHash, Option<Key>)>,
    /// Sorted by slot; slots past the index's end are new users, in order.
    pub(super) user_checks: Vec<(u32, UserCheck)>,
    pub(super) events: Vec<(EventId, Option<EventGroups>)>,
    /// The key policy after the batch (small: always carried).
    pub(super) key_policy: KeyPolicy,
}

impl CheckUpdate {
    /// Whether the update changes any entry (rather than only the head).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.user_checks.is_empty() && self.events.is_empty()
    }
}

impl CheckIndex {
    /// A copy of what `state`'s checks read, with no batch under way in it.
    pub fn of(state: &State) -> Self {
        Self {
            keys: state.keys.clone(),
            user_checks: state.user_checks.clone(),
            groups_of_event: state.groups_of_event.clone(),
            key_policy: state.key_policy,
            head: state.head,
        }
    }

    /// Installs what a durable batch changed.
    pub fn update(&mut self, update: CheckUpdate) {
        let CheckUpdate { head, keys, user_checks, events, key_policy } = update;
        self.key_policy = key_policy;
        for (hash, key) in keys {
            match key {
                Some(key) => self.keys.insert(hash, key),
                None => self.keys.remove(&hash),
            };
        }
        for (slot, check) in user_checks {
            match self.user_checks.get_mut(slot as usize) {
                Some(entry) => *entry = check,
                None => self.user_checks.push(check),
            }
        }
        for (event, groups) in events {
            match groups {
                Some(groups) => self.groups_of_event.insert(event, groups),
                None => self.groups_of_event.remove(&event),
            };
        }
        self.head = head;
    }

    /// The position of the last durable record the index includes.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// A key by the hash of its secret.
    pub fn key(&self, hash: &KeyHash) -> Option<&Key> {
        self.keys.get(hash)
    }

    /// What a key check needs of the user in `slot`.
    pub fn user_check(&self, slot: u32) -> Option<&UserCheck> {
        self.user_checks.get(slot as usize)
    }

    /// Where `key` stands at `now`, its key policy included, judged as [`State::key_state`].
    pub fn key_state(&self, key: &Key, now: Timestamp) -> KeyState {
        super::key_state_under(&self.key_policy, &self.user_checks, key, now)
    }

    /// Whether a check may pass for a platform event ([`State::may_access_event`]).
    pub fn may_access_event(&self, user: &UserCheck, event: &str) -> bool {
        event_reachable(&self.groups_of_event, user, event)
    }

    /// Whether the index holds exactly what `state`'s checks read: for tests, which keep
    /// the two equal through batches that commit and batches that roll back.
    #[cfg(test)]
    pub(crate) fn matches(&self, state: &State) -> bool {
        let keys_equal = self.keys.len() == state.keys.len()
            && self.keys.iter().all(|(hash, key)| {
                state.keys.get(hash).is_some_and(|other| format!("{key:?}") == format!("{other:?}"))
            });
        keys_equal
            && self.user_checks == state.user_checks
            && self.groups_of_event == state.groups_of_event
            && self.key_policy == state.key_policy
            && self.head == state.head
    }
}
