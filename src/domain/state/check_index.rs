//! The check index: what the check path reads, and nothing else, in a copy of its own
//! that only ever holds durable state.
//!
//! The writer changes the one [`State`] in place while it decides a batch, before the
//! batch is durable; checks must not see that. So what a check reads of the keys, of
//! their users and of the events' groups is copied here, and copied again for what a
//! batch touched once the batch is durable ([`State::commit_batch`] names it,
//! [`CheckIndex::update`] installs it). A check therefore never sees an event that is not
//! durable, and never waits for the disk: the writer holds the index's lock only to
//! install an update, in memory.
//!
//! **Layout** (issue #11: one cache miss per check). The keys live in one open-addressed
//! table of 64-byte, cache-line aligned [`Slot`]s, found by linear probing from the
//! position the key hash's first eight bytes give. A slot holds the full 32-byte hash
//! (compared in full: a prefix never passes), the key's and its user's ids (which the
//! decision names), the user's functions, whether the user is enabled and may access
//! every event, its one granted group inline, the key's status, and `fast_until`: the
//! second up to which the key's own state (status, expiry) certainly lets it through.
//! So a granted check without a key policy reads one line of the table (and, for an
//! event, the event's groups, which few events share across all checks and so stay in
//! the cache). Beside the table, at the same position, a [`Cold`] entry holds the key's
//! exact timestamps, its user's slot and the link to the user's next key: a check reads
//! it only to judge a key past `fast_until`, a revoked key, a key under a key policy
//! that blocks keys, or a user with more than one group (whose groups are in
//! `overflow`). The index keeps no copy of `Key`s or of `UserCheck`s.
//!
//! **Upkeep.** Each user's keys are linked through their `Cold` entries from
//! `first_key[user slot]`, so a change of the user (roles, enabled, groups) rewrites the
//! slots of that user's keys. Removed keys leave a tombstone; the table is rebuilt (a
//! pass over it) when live keys and tombstones reach 7/8 of it, at a load of 0.7. The
//! first copy ([`CheckIndex::of`]) is sized at a load of 0.75.

use std::collections::HashMap;

use super::{EventGroups, Key, KeyHash, KeyPolicy, KeyStatus, State, Timestamp, UserCheck, key_state_under};
use crate::domain::check::{CheckView, GrantedGroups, KeyFacts, UserFacts};
use crate::domain::{EventId, FunctionSet, KeyId, Reason, UserId};

/// No position, no slot: the end of a user's chain of keys.
const NONE: u32 = u32::MAX;
/// A `Cold` timestamp that is absent (no expiry, no recorded use).
const NO_TIME: i64 = i64::MIN;

// The bits of `Slot::word`.
/// Whether the slot is empty, holds a key, or held one that was removed.
const OCCUPANCY: u32 = 0b11 << 30;
const EMPTY: u32 = 0;
const FULL: u32 = 0b01 << 30;
const TOMBSTONE: u32 = 0b10 << 30;
/// Whether the key's user has a check entry (always, but for a damaged view).
const HAS_USER: u32 = 1 << 29;
const ENABLED: u32 = 1 << 28;
const ALL_EVENTS: u32 = 1 << 27;
/// The key's status: active, replaced or revoked.
const STATUS: u32 = 0b11 << 25;
const ACTIVE: u32 = 0;
const REPLACED: u32 = 0b01 << 25;
const REVOKED: u32 = 0b10 << 25;
/// The user's one granted group's slot, or one of the two markers below.
const GROUP: u32 = (1 << 25) - 1;
/// The user was granted no group.
const NO_GROUP: u32 = GROUP;
/// The user was granted several groups (or one whose slot does not fit): see `overflow`.
const MANY_GROUPS: u32 = GROUP - 1;

/// The load the first copy is sized for, and the one a rebuild leaves, in percent.
const FIRST_LOAD_PERCENT: usize = 75;
const REBUILT_LOAD_PERCENT: usize = 70;

/// What a check reads of a key and its user: one cache line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(C, align(64))]
struct Slot {
    hash: KeyHash,
    key_id: KeyId,
    user_id: UserId,
    functions: FunctionSet,
    /// Occupancy, the user's flags, the key's status and the user's group (see the
    /// constants above).
    word: u32,
    /// The key's own state lets it through while the time, in whole seconds since the
    /// epoch, is below this; 0 for a revoked key, `u32::MAX` for one with no end.
    fast_until: u32,
}

/// What the check reads of a key only in the rare case, and the upkeep's links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cold {
    created_at: i64,
    expires_at: i64,
    /// When a replaced key's grace period ends, or when a revoked key was revoked.
    status_at: i64,
    last_used_at: i64,
    user_slot: u32,
    /// The position of the user's next key, or `NONE`.
    next_of_user: u32,
}

const _: () = assert!(size_of::<Slot>() == 64 && size_of::<Cold>() == 40);

/// The part of the permission view a key check reads, as of the last durable batch.
#[derive(Debug, Clone, Default)]
pub struct CheckIndex {
    slots: Vec<Slot>,
    cold: Vec<Cold>,
    live: usize,
    tombstones: usize,
    /// The position of each user's first key, by user slot, or `NONE`.
    first_key: Vec<u32>,
    /// The granted groups, sorted, of users whose slots say `MANY_GROUPS`, by user slot.
    overflow: HashMap<u32, Box<[u32]>>,
    groups_of_event: HashMap<EventId, EventGroups>,
    /// The key policy, which a check judges every key by ([`State::key_state`]).
    key_policy: KeyPolicy,
    head: u64,
}

/// A key as a batch left it, with its user's check entry (`None` only in a damaged view).
pub(super) type KeyWithUser = (Key, Option<UserCheck>);

/// The new values of what a batch touched, for [`CheckIndex::update`]; `None` for an
/// entry the batch removed.
#[derive(Debug, Clone, Default)]
pub struct CheckUpdate {
    pub(super) head: u64,
    /// Each touched key with its user's check entry as of the batch's end.
    pub(super) keys: Vec<(KeyHash, Option<KeyWithUser>)>,
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

/// The time in whole seconds since the epoch, as `fast_until` counts it: 0 before the
/// epoch, `u32::MAX` past 2106 (when no key is fast any more).
fn seconds(millis: i64) -> u32 {
    let seconds = millis.div_euclid(1000);
    if seconds < 0 { 0 } else { u32::try_from(seconds).unwrap_or(u32::MAX) }
}

fn time_of(millis: i64) -> Option<Timestamp> {
    (millis != NO_TIME).then(|| Timestamp::from_unix_millis(millis))
}

fn millis_of(time: Option<Timestamp>) -> i64 {
    time.map_or(NO_TIME, Timestamp::unix_millis)
}

/// The `word` bits and functions of a user's check entry, and the groups to keep in
/// `overflow` if they do not fit the slot.
fn user_bits(user: Option<&UserCheck>) -> (u32, FunctionSet, Option<&[u32]>) {
    let Some(user) = user else { return (NO_GROUP, FunctionSet::EMPTY, None) };
    let mut bits = HAS_USER;
    if user.enabled {
        bits |= ENABLED;
    }
    if user.all_events {
        bits |= ALL_EVENTS;
    }
    match user.groups.as_slice() {
        [] => (bits | NO_GROUP, user.functions, None),
        &[group] if group < MANY_GROUPS => (bits | group, user.functions, None),
        groups => (bits | MANY_GROUPS, user.functions, Some(groups)),
    }
}

/// The slot and cold entry of `key` (with no link to a next key).
fn encode(hash: KeyHash, key: &Key, user: Option<&UserCheck>) -> (Slot, Cold) {
    let (user_bits, functions, _) = user_bits(user);
    let (status, status_at, ends) = match key.status {
        KeyStatus::Active => (ACTIVE, NO_TIME, None),
        KeyStatus::Replaced { valid_until } => (REPLACED, valid_until.unix_millis(), Some(valid_until)),
        KeyStatus::Revoked { at } => (REVOKED, at.unix_millis(), None),
    };
    let ends = match (ends, key.expires_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let fast_until = match (status, ends) {
        (REVOKED, _) => 0,
        (_, None) => u32::MAX,
        // Below the end's whole second, the time is below the end.
        (_, Some(end)) => seconds(end.unix_millis()).min(u32::MAX - 1),
    };
    let slot = Slot {
        hash,
        key_id: key.id.clone(),
        user_id: key.user_id.clone(),
        functions,
        word: FULL | user_bits | status,
        fast_until,
    };
    let cold = Cold {
        created_at: key.created_at.unix_millis(),
        expires_at: millis_of(key.expires_at),
        status_at,
        last_used_at: millis_of(key.last_used_at),
        user_slot: key.user_slot,
        next_of_user: NONE,
    };
    (slot, cold)
}

/// Where a probe for `hash` starts in a table of `capacity` slots.
#[inline]
fn home(hash: &KeyHash, capacity: usize) -> usize {
    let bytes = hash.as_bytes();
    let word = u64::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]]);
    // The hash is uniform: its high bits scaled to the capacity (no power of two needed).
    ((u128::from(word) * capacity as u128) >> 64) as usize
}

fn capacity_for(keys: usize, load_percent: usize) -> usize {
    (keys * 100 / load_percent + 1).max(16)
}

fn empty_slot() -> Slot {
    Slot {
        // Never read: the word says the slot is empty.
        hash: KeyHash::example(0),
        key_id: KeyId::example(0),
        user_id: UserId::example(0),
        functions: FunctionSet::EMPTY,
        word: EMPTY,
        fast_until: 0,
    }
}

const EMPTY_COLD: Cold = Cold {
    created_at: 0,
    expires_at: NO_TIME,
    status_at: NO_TIME,
    last_used_at: NO_TIME,
    user_slot: NONE,
    next_of_user: NONE,
};

impl CheckIndex {
    /// A copy of what `state`'s checks read, with no batch under way in it.
    pub fn of(state: &State) -> Self {
        let mut index = Self {
            groups_of_event: state.groups_of_event.clone(),
            key_policy: state.key_policy,
            head: state.head,
            ..Self::default()
        };
        index.rebuild(capacity_for(state.keys.len(), FIRST_LOAD_PERCENT));
        for (slot, user) in state.user_checks.iter().enumerate() {
            if let (_, _, Some(groups)) = user_bits(Some(user)) {
                index.overflow.insert(u32::try_from(slot).unwrap_or(NONE), groups.into());
            }
        }
        for (hash, key) in &state.keys {
            index.insert(*hash, key, state.user_checks.get(key.user_slot as usize));
        }
        index
    }

    /// Installs what a durable batch changed.
    pub fn update(&mut self, update: CheckUpdate) {
        let CheckUpdate { head, keys, user_checks, events, key_policy } = update;
        self.key_policy = key_policy;
        for (slot, check) in &user_checks {
            self.update_user(*slot, check);
        }
        for (hash, key) in keys {
            match key {
                Some((key, user)) => self.insert(hash, &key, user.as_ref()),
                None => self.remove(&hash),
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

    /// The number of keys the index holds.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether the index holds no key.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The position of the key with this hash, compared in full.
    #[inline]
    fn find(&self, hash: &KeyHash) -> Option<usize> {
        let capacity = self.slots.len();
        if capacity == 0 {
            return None;
        }
        let mut position = home(hash, capacity);
        // The table always keeps empty slots (at most 7/8 is used), so the probe ends.
        loop {
            let slot = &self.slots[position];
            match slot.word & OCCUPANCY {
                EMPTY => return None,
                FULL if slot.hash == *hash => return Some(position),
                _ => {}
            }
            position += 1;
            if position == capacity {
                position = 0;
            }
        }
    }

    /// The key at `position`, as [`State::key`] holds it (but for `legacy`, which the
    /// check does not read).
    fn key_at(&self, position: usize) -> Key {
        let slot = &self.slots[position];
        let cold = &self.cold[position];
        let status = match slot.word & STATUS {
            REPLACED => KeyStatus::Replaced { valid_until: Timestamp::from_unix_millis(cold.status_at) },
            REVOKED => KeyStatus::Revoked { at: Timestamp::from_unix_millis(cold.status_at) },
            _ => KeyStatus::Active,
        };
        Key {
            id: slot.key_id.clone(),
            user_id: slot.user_id.clone(),
            user_slot: cold.user_slot,
            created_at: Timestamp::from_unix_millis(cold.created_at),
            expires_at: time_of(cold.expires_at),
            status,
            last_used_at: time_of(cold.last_used_at),
            legacy: false,
        }
    }

    /// Why the key at `position` is refused at `now`, judged as [`State::key_state`]:
    /// from the slot alone while its own state certainly lets it through and no key
    /// policy blocks keys, from its cold entry otherwise.
    #[inline]
    fn refusal(&self, position: usize, now: Timestamp) -> Option<Reason> {
        let slot = &self.slots[position];
        if !self.key_policy.blocks_keys() && seconds(now.unix_millis()) < slot.fast_until {
            return None;
        }
        let key = self.key_at(position);
        key_state_under(&self.key_policy, &key, now, || slot.functions).refusal()
    }

    /// A copy of the index with room for every key `update` may add, if installing it
    /// would rebuild the table; `None` if the table has room. The writer builds it under
    /// the read lock, beside the index checks are reading, and swaps it in under the write
    /// lock before [`update`](Self::update), so checks never wait for a rebuild (at 1M keys,
    /// hundreds of milliseconds). The writer is the only one that changes the index, so
    /// nothing changes it between the copy and the swap.
    pub fn grown_for(&self, update: &CheckUpdate) -> Option<Self> {
        let more = update.keys.iter().filter(|(_, key)| key.is_some()).count();
        if (self.live + self.tombstones + more) * 8 <= self.slots.len() * 7 {
            return None;
        }
        let capacity = capacity_for(self.live + more, REBUILT_LOAD_PERCENT);
        let mut grown = Self {
            slots: vec![empty_slot(); capacity],
            cold: vec![EMPTY_COLD; capacity],
            live: 0,
            tombstones: 0,
            first_key: vec![NONE; self.first_key.len()],
            overflow: self.overflow.clone(),
            groups_of_event: self.groups_of_event.clone(),
            key_policy: self.key_policy,
            head: self.head,
        };
        grown.place_all(self.slots.iter().cloned().zip(self.cold.iter().copied()));
        Some(grown)
    }

    /// Makes room for one more key, rebuilding the table if it would be more than 7/8
    /// used.
    fn reserve_one(&mut self) {
        if (self.live + self.tombstones + 1) * 8 > self.slots.len() * 7 {
            self.rebuild(capacity_for(self.live + 1, REBUILT_LOAD_PERCENT));
        }
    }

    /// Moves every key into a table of `capacity` slots, dropping the tombstones and
    /// linking each user's keys again.
    fn rebuild(&mut self, capacity: usize) {
        let slots = std::mem::replace(&mut self.slots, vec![empty_slot(); capacity]);
        let cold = std::mem::replace(&mut self.cold, vec![EMPTY_COLD; capacity]);
        self.first_key.fill(NONE);
        self.live = 0;
        self.tombstones = 0;
        self.place_all(slots.into_iter().zip(cold));
    }

    /// Places every key of `entries` (slots and their cold entries, of another table) that
    /// is not a tombstone or empty.
    fn place_all(&mut self, entries: impl Iterator<Item = (Slot, Cold)>) {
        for (slot, cold) in entries {
            if slot.word & OCCUPANCY == FULL {
                self.place(slot, cold);
            }
        }
    }

    /// Puts a key that is not in the table into the first free slot of its probe, and
    /// links it first among its user's keys.
    fn place(&mut self, slot: Slot, mut cold: Cold) {
        let capacity = self.slots.len();
        let mut position = home(&slot.hash, capacity);
        while self.slots[position].word & OCCUPANCY == FULL {
            position += 1;
            if position == capacity {
                position = 0;
            }
        }
        if self.slots[position].word & OCCUPANCY == TOMBSTONE {
            self.tombstones -= 1;
        }
        let user = cold.user_slot as usize;
        if self.first_key.len() <= user {
            self.first_key.resize(user + 1, NONE);
        }
        let position_id = u32::try_from(position).unwrap_or(NONE);
        cold.next_of_user = std::mem::replace(&mut self.first_key[user], position_id);
        self.slots[position] = slot;
        self.cold[position] = cold;
        self.live += 1;
    }

    /// Sets the key with this hash, with its user's check entry.
    fn insert(&mut self, hash: KeyHash, key: &Key, user: Option<&UserCheck>) {
        if let (_, _, Some(groups)) = user_bits(user) {
            self.overflow.insert(key.user_slot, groups.into());
        }
        let (slot, cold) = encode(hash, key, user);
        if let Some(position) = self.find(&hash) {
            if self.cold[position].user_slot == key.user_slot {
                let next_of_user = self.cold[position].next_of_user;
                self.slots[position] = slot;
                self.cold[position] = Cold { next_of_user, ..cold };
                return;
            }
            self.remove_at(position);
        }
        self.reserve_one();
        self.place(slot, cold);
    }

    /// Removes the key with this hash, if there is one.
    fn remove(&mut self, hash: &KeyHash) {
        if let Some(position) = self.find(hash) {
            self.remove_at(position);
        }
    }

    fn remove_at(&mut self, position: usize) {
        let Cold { user_slot, next_of_user, .. } = self.cold[position];
        let target = u32::try_from(position).unwrap_or(NONE);
        if let Some(first) = self.first_key.get_mut(user_slot as usize) {
            if *first == target {
                *first = next_of_user;
            } else {
                let mut at = *first;
                while at != NONE {
                    let next = self.cold[at as usize].next_of_user;
                    if next == target {
                        self.cold[at as usize].next_of_user = next_of_user;
                        break;
                    }
                    at = next;
                }
            }
        }
        self.slots[position].word = TOMBSTONE;
        self.live -= 1;
        self.tombstones += 1;
    }

    /// Rewrites what the slots of the user's keys hold of the user.
    fn update_user(&mut self, user_slot: u32, check: &UserCheck) {
        let (bits, functions, groups) = user_bits(Some(check));
        match groups {
            Some(groups) => self.overflow.insert(user_slot, groups.into()),
            None => self.overflow.remove(&user_slot),
        };
        let mut at = self.first_key.get(user_slot as usize).copied().unwrap_or(NONE);
        while at != NONE {
            let slot = &mut self.slots[at as usize];
            slot.word = (slot.word & (OCCUPANCY | STATUS)) | bits;
            slot.functions = functions;
            at = self.cold[at as usize].next_of_user;
        }
    }

    /// What a check reads of the key at `position`.
    #[inline]
    fn facts(&self, position: usize, now: Timestamp) -> KeyFacts<'_> {
        let slot = &self.slots[position];
        let user = (slot.word & HAS_USER != 0).then(|| UserFacts {
            enabled: slot.word & ENABLED != 0,
            functions: slot.functions,
            all_events: slot.word & ALL_EVENTS != 0,
            groups: match slot.word & GROUP {
                NO_GROUP => GrantedGroups::Sorted(&[]),
                MANY_GROUPS => GrantedGroups::Sorted(
                    self.overflow.get(&self.cold[position].user_slot).map_or(&[][..], |groups| &groups[..]),
                ),
                group => GrantedGroups::One(group),
            },
        });
        KeyFacts { user_id: &slot.user_id, key_id: &slot.key_id, refusal: self.refusal(position, now), user }
    }

    /// Whether the index holds exactly what `state`'s checks read: for tests, which keep
    /// the two equal through batches that commit and batches that roll back. Every key's
    /// slot and cold entry, the users' chains of keys, the overflowing groups, the
    /// events' groups, the key policy and the head.
    #[cfg(test)]
    pub(crate) fn matches(&self, state: &State) -> bool {
        let keys_equal = self.live == state.keys.len()
            && state.keys.iter().all(|(hash, key)| {
                let user = state.user_checks.get(key.user_slot as usize);
                let (slot, cold) = encode(*hash, key, user);
                let overflow_equal = match user_bits(user).2 {
                    Some(groups) => self.overflow.get(&key.user_slot).is_some_and(|kept| **kept == *groups),
                    None => true,
                };
                self.find(hash).is_some_and(|position| {
                    self.slots[position] == slot
                        && self.cold[position] == Cold { next_of_user: self.cold[position].next_of_user, ..cold }
                }) && overflow_equal
            });
        let chains_equal = {
            let mut linked = 0;
            let all_linked = self.first_key.iter().enumerate().all(|(user, &first)| {
                let mut at = first;
                while at != NONE {
                    let (slot, cold) = (&self.slots[at as usize], &self.cold[at as usize]);
                    if slot.word & OCCUPANCY != FULL || cold.user_slot as usize != user || linked > self.live {
                        return false;
                    }
                    linked += 1;
                    at = cold.next_of_user;
                }
                true
            });
            all_linked && linked == self.live
        };
        keys_equal
            && chains_equal
            && self.groups_of_event == state.groups_of_event
            && self.key_policy == state.key_policy
            && self.head == state.head
    }
}

impl CheckView for CheckIndex {
    #[inline]
    fn find_key(&self, hash: &KeyHash, now: Timestamp) -> Option<KeyFacts<'_>> {
        self.find(hash).map(|position| self.facts(position, now))
    }

    fn reachable_groups(&self, event: &str) -> &[u32] {
        self.groups_of_event.get(event).map_or(&[], |groups| &groups.reachable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SmallSet;

    fn key(n: u64, user_slot: u32, status: KeyStatus) -> Key {
        Key {
            id: KeyId::example(n),
            user_id: UserId::example(u64::from(user_slot)),
            user_slot,
            created_at: Timestamp::from_unix_millis(1_800_000_000_000),
            expires_at: n.is_multiple_of(3).then(|| Timestamp::from_unix_millis(1_900_000_000_000 + n as i64)),
            status,
            last_used_at: n.is_multiple_of(5).then(|| Timestamp::from_unix_millis(1_850_000_000_000)),
            legacy: false,
        }
    }

    fn user(slot: u32, generation: u32) -> UserCheck {
        UserCheck {
            enabled: !(slot + generation).is_multiple_of(4),
            functions: FunctionSet::EMPTY,
            all_events: slot.is_multiple_of(7),
            groups: (0..(slot + generation) % 3).map(|group| group * 10 + slot).collect::<SmallSet<u32>>(),
        }
    }

    fn hash(n: u64) -> KeyHash {
        KeyHash::try_from(blake3::hash(&n.to_le_bytes()).to_hex().to_string()).expect("a hash")
    }

    /// The table grows, keeps tombstones, rebuilds and relinks users through thousands of
    /// inserts, removals and user changes, and always holds what a plain map says.
    #[test]
    fn the_key_table_holds_what_a_map_of_keys_holds_through_growth_removal_and_user_changes() {
        let mut index = CheckIndex::default();
        let mut model: HashMap<KeyHash, (Key, UserCheck)> = HashMap::new();
        let mut users: Vec<UserCheck> = (0..200).map(|slot| user(slot, 0)).collect();
        for n in 0..6_000u64 {
            let user_slot = (n * 7919 % 200) as u32;
            let status = match n % 4 {
                0 => KeyStatus::Replaced { valid_until: Timestamp::from_unix_millis(1_800_000_123_456) },
                1 => KeyStatus::Revoked { at: Timestamp::from_unix_millis(1_800_000_000_001) },
                _ => KeyStatus::Active,
            };
            let inserted = key(n, user_slot, status);
            index.insert(hash(n), &inserted, Some(&users[user_slot as usize]));
            model.insert(hash(n), (inserted, users[user_slot as usize].clone()));
            if n % 3 == 0 {
                let gone = hash(n / 2);
                index.remove(&gone);
                model.remove(&gone);
            }
            if n % 50 == 0 {
                let slot = (n / 50 % 200) as u32;
                users[slot as usize] = user(slot, (n / 50) as u32);
                index.update_user(slot, &users[slot as usize]);
                for (_, check) in model.values_mut().filter(|(key, _)| key.user_slot == slot) {
                    *check = users[slot as usize].clone();
                }
            }
        }
        assert!(index.slots.len() > index.len() && index.len() > 3_000, "the table grew past its first 16 slots");
        assert_eq!(index.len(), model.len());
        for (hash, (key, check)) in &model {
            let position = index.find(hash).expect("every key of the map is found");
            let (slot, cold) = encode(*hash, key, Some(check));
            assert_eq!(index.slots[position], slot);
            assert_eq!(index.cold[position], Cold { next_of_user: index.cold[position].next_of_user, ..cold });
            assert_eq!(format!("{:?}", index.key_at(position)), format!("{key:?}"));
        }
        let linked: usize = (0..200u32)
            .map(|slot| {
                std::iter::successors(Some(index.first_key[slot as usize]), |&at| {
                    (at != NONE).then(|| index.cold[at as usize].next_of_user)
                })
                .take_while(|&at| at != NONE)
                .inspect(|&at| assert_eq!(index.cold[at as usize].user_slot, slot))
                .count()
            })
            .sum();
        assert_eq!(linked, model.len(), "every key is linked from its user, once");
        assert!(index.find(&hash(u64::MAX)).is_none());
    }

    /// A batch that fills the table installs into a bigger copy built beside the index
    /// (as the writer does, so checks never wait for a rebuild), and the copy then holds
    /// exactly what installing in place holds; a batch with room builds no copy.
    #[test]
    fn a_batch_that_fills_the_table_installs_into_a_grown_copy_equal_to_an_in_place_install() {
        let mut index = CheckIndex::default();
        for n in 0..1_000u64 {
            let user_slot = (n % 100) as u32;
            index.insert(hash(n), &key(n, user_slot, KeyStatus::Active), Some(&user(user_slot, 0)));
        }
        for n in (0..1_000u64).step_by(10) {
            index.remove(&hash(n));
        }
        let batch = |range: std::ops::Range<u64>| CheckUpdate {
            head: range.end,
            keys: range
                .map(|n| {
                    let user_slot = (n % 120) as u32;
                    (hash(n), Some((key(n, user_slot, KeyStatus::Active), Some(user(user_slot, 1)))))
                })
                .chain([(hash(11), None)])
                .collect(),
            ..CheckUpdate::default()
        };
        let small = batch(1_000..1_001);
        assert!(index.grown_for(&small).is_none(), "one more key fits: no copy");

        let big = batch(1_000..3_000);
        let mut grown = index.grown_for(&big).expect("2,000 more keys do not fit: a bigger copy");
        assert!(grown.slots.len() > index.slots.len());
        assert_eq!((grown.len(), grown.tombstones), (index.len(), 0), "the copy holds every key and no tombstone");
        let mut in_place = index.clone();
        in_place.update(big.clone());
        let slots_before = grown.slots.len();
        grown.update(big);
        assert_eq!(grown.slots.len(), slots_before, "the copy had room for the whole batch");
        assert_eq!(grown.len(), in_place.len());
        assert_eq!(grown.head(), 3_000);
        for n in 0..3_000u64 {
            let (a, b) = (grown.find(&hash(n)), in_place.find(&hash(n)));
            assert_eq!(a.is_some(), b.is_some(), "key {n}");
            if let (Some(a), Some(b)) = (a, b) {
                assert_eq!(grown.slots[a], in_place.slots[b], "key {n}");
                assert_eq!(format!("{:?}", grown.key_at(a)), format!("{:?}", in_place.key_at(b)), "key {n}");
            }
        }
        let users_keys = |index: &CheckIndex, slot: usize| {
            let mut keys: Vec<KeyId> = std::iter::successors(Some(index.first_key[slot]), |&at| {
                (at != NONE).then(|| index.cold[at as usize].next_of_user)
            })
            .take_while(|&at| at != NONE)
            .map(|at| index.slots[at as usize].key_id.clone())
            .collect();
            keys.sort();
            keys
        };
        for slot in 0..120 {
            assert_eq!(users_keys(&grown, slot), users_keys(&in_place, slot), "user {slot}'s keys");
        }
    }

    /// A hash that agrees with a stored one on every byte the table positions by, and on
    /// all but the last, is not that key.
    #[test]
    fn a_key_is_found_only_by_its_whole_hash() {
        let mut index = CheckIndex::default();
        let stored = hash(1);
        index.insert(stored, &key(1, 0, KeyStatus::Active), Some(&user(1, 0)));
        let mut bytes = *stored.as_bytes();
        bytes[31] ^= 1;
        let lookalike =
            KeyHash::try_from(bytes.iter().map(|byte| format!("{byte:02x}")).collect::<String>()).expect("a hash");
        assert!(index.find(&stored).is_some());
        assert!(index.find(&lookalike).is_none());
    }
}
