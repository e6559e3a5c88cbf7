//! The permission view: the state every command is decided against and every key check
//! reads. It changes only through [`State::apply`].
//!
//! There is one copy of it in a running ledger. The writer applies a batch to it in place
//! before the batch is durable, under a [`Journal`] ([`State::begin_batch`]) that keeps
//! the value every entity had before the batch first touched it: a failed append puts
//! those back ([`State::rollback_batch`]), a durable one hands the new values of what the
//! batch touched to the check index ([`State::commit_batch`], [`CheckIndex`]), which the
//! check path reads instead of the state.

mod check_index;

pub use check_index::{CheckIndex, CheckUpdate};

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::fingerprint::ChangeLog;
use super::policy::{self, KeyPolicy};
use super::small_set::SmallSet;
use super::{
    Event, EventId, FunctionSet, FunctionUsage, GroupId, KeyHash, KeyId, KeyState, Lookalike, RoleId, Timestamp, UserId,
};

/// Where an event sits in the log and when it was recorded: what `apply` needs besides
/// the event itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The record's sequence number, gapless from 1.
    pub seq: u64,
    /// When the record was written.
    pub at: Timestamp,
}

/// A role and the functions active on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Role {
    id: RoleId,
    description: Box<str>,
    functions: FunctionSet,
    holders: BTreeSet<UserId>,
    created: Position,
    version: u64,
}

impl Role {
    /// The role's id.
    pub fn id(&self) -> &RoleId {
        &self.id
    }
    /// The role's description.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// The functions active on the role.
    pub fn functions(&self) -> FunctionSet {
        self.functions
    }
    /// Whether the role holds any API function, which makes it a standalone API role.
    pub fn is_api_role(&self) -> bool {
        self.functions.has_api()
    }
    /// The users who hold the role.
    pub fn holders(&self) -> &BTreeSet<UserId> {
        &self.holders
    }
    /// Where and when the role was created; its `seq` is the list cursor after it.
    pub fn created(&self) -> Position {
        self.created
    }
    /// The position of the last event that changed this role, its functions or its
    /// holders: its version for `If-Match`.
    pub fn version(&self) -> u64 {
        self.version
    }
}

/// Which platform events a user may access. Commands and views hold the groups in a
/// `BTreeSet`; a [`User`] holds them in a [`SmallSet`] (`EventAccess<SmallSet<GroupId>>`),
/// which is 24 bytes and no allocation for the usual one group. Both serialise alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventAccess<Groups = BTreeSet<GroupId>> {
    /// Every event.
    AllEvents,
    /// The events of these groups and of every group nested below them.
    Groups(Groups),
}

impl<Groups: Default> Default for EventAccess<Groups> {
    fn default() -> Self {
        EventAccess::Groups(Groups::default())
    }
}

impl<Groups> EventAccess<Groups>
where
    for<'a> &'a Groups: IntoIterator<Item = &'a GroupId>,
{
    /// The same access with the groups in another kind of set.
    pub fn to_access<Other: FromIterator<GroupId>>(&self) -> EventAccess<Other> {
        match self {
            EventAccess::AllEvents => EventAccess::AllEvents,
            EventAccess::Groups(groups) => EventAccess::Groups(groups.into_iter().cloned().collect()),
        }
    }

    /// Whether this access and `other` grant the same, whatever sets hold their groups.
    pub fn grants_as<Other>(&self, other: &EventAccess<Other>) -> bool
    where
        for<'a> &'a Other: IntoIterator<Item = &'a GroupId>,
    {
        match (self, other) {
            (EventAccess::AllEvents, EventAccess::AllEvents) => true,
            (EventAccess::Groups(mine), EventAccess::Groups(theirs)) => mine.into_iter().eq(theirs),
            _ => false,
        }
    }
}

/// A user: a person or a standalone API user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    id: UserId,
    slot: u32,
    name: Box<str>,
    email: Option<Box<str>>,
    enabled: bool,
    roles: SmallSet<RoleId>,
    event_access: EventAccess<SmallSet<GroupId>>,
    current_key: Option<KeyHash>,
    grace_key: Option<KeyHash>,
    created: Position,
    version: u64,
    /// Where the user was created by an `AdministratorRecovered`, if it was: boxed, since
    /// it almost never is (8 bytes per user instead of 24).
    recovered: Option<Box<Position>>,
}

impl User {
    /// The user's id.
    pub fn id(&self) -> &UserId {
        &self.id
    }
    /// The user's display name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The user's contact address, if any.
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
    /// Whether the user's keys may pass checks.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }
    /// The roles the user holds.
    pub fn roles(&self) -> &SmallSet<RoleId> {
        &self.roles
    }
    /// The events the user may access.
    pub fn event_access(&self) -> &EventAccess<SmallSet<GroupId>> {
        &self.event_access
    }
    /// The hash of the user's current, unrevoked key.
    pub fn current_key(&self) -> Option<KeyHash> {
        self.current_key
    }
    /// The hash of the key the current one replaced, while it is in its grace period.
    pub fn grace_key(&self) -> Option<KeyHash> {
        self.grace_key
    }
    /// Where and when the user was created; its `seq` is the list cursor after it.
    pub fn created(&self) -> Position {
        self.created
    }
    /// The position of the last event about this user: its version for `If-Match`.
    pub fn version(&self) -> u64 {
        self.version
    }
    /// Where and when the user was created by `keyledger recover-admin`
    /// (`AdministratorRecovered`), if it was.
    pub fn recovered(&self) -> Option<Position> {
        self.recovered.as_deref().copied()
    }
}

/// An event access group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    id: GroupId,
    slot: u32,
    name: Box<str>,
    parent: Option<GroupId>,
    children: SmallSet<GroupId>,
    events: BTreeSet<EventId>,
    created: Position,
    version: u64,
}

impl Group {
    /// The most levels a chain of nested groups may have, the outermost group counted as
    /// level 1: `decide` refuses a group below a parent at this depth.
    pub const MAX_DEPTH: usize = 32;

    /// The group's id.
    pub fn id(&self) -> &GroupId {
        &self.id
    }
    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The group this one sits inside.
    pub fn parent(&self) -> Option<&GroupId> {
        self.parent.as_ref()
    }
    /// The groups directly inside this one.
    pub fn children(&self) -> &SmallSet<GroupId> {
        &self.children
    }
    /// The events in this group (not counting nested groups).
    pub fn events(&self) -> &BTreeSet<EventId> {
        &self.events
    }
    /// Where and when the group was created; its `seq` is the list cursor after it.
    pub fn created(&self) -> Position {
        self.created
    }
    /// The position of the last event that changed this group, its events or its
    /// children: its version for `If-Match`.
    pub fn version(&self) -> u64 {
        self.version
    }
}

/// Whether a key still works, as far as the log says (expiry is judged at check time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyStatus {
    /// The user's current key.
    Active,
    /// Replaced by a newer key, and working until the end of its grace period.
    Replaced {
        /// When the grace period ends.
        valid_until: Timestamp,
    },
    /// Revoked: it passes no check.
    Revoked {
        /// When it was revoked.
        at: Timestamp,
    },
}

/// What keyledger knows of a key: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Key {
    id: KeyId,
    user_id: UserId,
    user_slot: u32,
    created_at: Timestamp,
    expires_at: Option<Timestamp>,
    status: KeyStatus,
    /// The latest check recorded by a `KeyUsageRecorded`; usage not yet recorded is not
    /// included.
    last_used_at: Option<Timestamp>,
    /// Whether the key was imported (`KeyImported`, `importKey`) rather than issued by
    /// keyledger: an existing key of the platform, known by the hash of its SHA-256.
    legacy: bool,
}

impl Key {
    /// The key's public id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }
    /// The user the key authenticates.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }
    /// The dense index of the key's user, for the check path.
    pub fn user_slot(&self) -> u32 {
        self.user_slot
    }
    /// When the key was generated.
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    /// When the key expires, if it does.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }
    /// Whether the key is current, replaced or revoked.
    pub fn status(&self) -> KeyStatus {
        self.status
    }
    /// When the key was last used, as far as the log has recorded (`KeyUsageRecorded`);
    /// `None` if no use was recorded.
    pub fn last_used_at(&self) -> Option<Timestamp> {
        self.last_used_at
    }
    /// Whether the key was imported (`importKey`) rather than issued by keyledger: every
    /// view marks it `legacy`, and the access report recommends rotating it.
    pub fn is_legacy(&self) -> bool {
        self.legacy
    }
}

/// What a key check needs of a user, kept small and in one dense vector so that a check
/// touches as little memory as possible. It is derived from the roles, users and groups
/// by `apply`, never changed any other way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCheck {
    enabled: bool,
    functions: FunctionSet,
    all_events: bool,
    /// The slots of the groups the user was given, sorted: inline when there is one, so
    /// that a check reads no other memory for them.
    groups: SmallSet<u32>,
}

impl UserCheck {
    /// Whether the user's keys may pass checks.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The functions of all the user's roles.
    pub fn functions(&self) -> FunctionSet {
        self.functions
    }

    /// Whether the user may access every event, rather than the events of some groups.
    pub fn has_all_events(&self) -> bool {
        self.all_events
    }

    /// The slots of the groups the user was given, sorted.
    pub fn group_slots(&self) -> &[u32] {
        self.groups.as_slice()
    }
}

/// Hashes a [`KeyHash`] by its first eight bytes: it is already a uniform blake3 output, so
/// hashing it again would only cost time. Lookups are by hashes of presented keys, which an
/// attacker cannot steer.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyHashHasher(u64);

impl std::hash::Hasher for KeyHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type KeyMap = HashMap<KeyHash, Key, std::hash::BuildHasherDefault<KeyHashHasher>>;

/// The groups an event belongs to, as the check index keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct EventGroups {
    /// The slots of the groups that contain the event directly.
    direct: Vec<u32>,
    /// The slots of those groups and of every group they are nested in, sorted: a user
    /// granted any of them may access the event. Groups never move, so this changes only
    /// when the event is added to or removed from a group.
    reachable: Box<[u32]>,
}

impl EventGroups {
    /// Recomputes `reachable` from `direct` by walking each direct group's ancestors,
    /// which the depth limit on groups bounds.
    fn refresh(&mut self, group_parents: &[Option<u32>]) {
        let mut reachable: Vec<u32> = self
            .direct
            .iter()
            .flat_map(|&group| {
                std::iter::successors(Some(group), |&slot| group_parents.get(slot as usize).copied().flatten())
            })
            .collect();
        reachable.sort_unstable();
        reachable.dedup();
        self.reachable = reachable.into_boxed_slice();
    }
}

/// A change of an event's membership of the group in a slot, for the check index.
#[derive(Debug, Clone, Copy)]
enum MembershipChange {
    /// The event was added to the group.
    Added(u32),
    /// The event was removed from the group.
    Removed(u32),
}

/// The whole permission view.
///
/// Its maps are serialised in key order (see `in_key_order`), so that the same state
/// always gives the same snapshot bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    #[serde(serialize_with = "in_key_order")]
    roles: HashMap<RoleId, Role>,
    role_order: Vec<RoleId>,
    /// The role first described by each lookalike key of a description.
    #[serde(serialize_with = "in_key_order")]
    role_lookalikes: HashMap<Lookalike, RoleId>,
    /// Every user, in creation order, which is slot order: a user's slot is its index.
    users: Vec<User>,
    /// Each user's slot, by id.
    #[serde(serialize_with = "in_key_order")]
    user_slots: HashMap<UserId, u32>,
    /// The user first named by each lookalike key of a name.
    #[serde(serialize_with = "in_key_order")]
    user_lookalikes: HashMap<Lookalike, UserId>,
    #[serde(serialize_with = "in_key_order")]
    groups: HashMap<GroupId, Group>,
    group_order: Vec<GroupId>,
    /// The groups that contain each event, directly or through a group nested below.
    #[serde(serialize_with = "in_key_order")]
    groups_of_event: HashMap<EventId, EventGroups>,
    /// Each group's parent, by slot.
    group_parents: Vec<Option<u32>>,
    /// What a check needs of each user, by slot.
    user_checks: Vec<UserCheck>,
    #[serde(serialize_with = "in_key_order")]
    keys: KeyMap,
    /// The key policy (`KeyPolicySet`), which the check judges every key by.
    key_policy: KeyPolicy,
    head: u64,
    /// The last recorded use of each function by each user (issue #14, unused access).
    function_usage: FunctionUsage,
    /// The entities `apply` changed lately, for the fingerprint; not in snapshots.
    #[serde(skip)]
    changes: ChangeLog,
    /// What the batch being decided changed, while there is one; not in snapshots.
    #[serde(skip)]
    journal: Option<Box<Journal>>,
}

/// The values a batch replaced, each kept the first time the batch touched it, and the
/// lengths of the append-only vectors when it began: enough to put the state back exactly
/// as it was ([`State::rollback_batch`]), and to name what the check index must copy once
/// the batch is durable ([`State::commit_batch`]). It holds one entry per entity touched,
/// not per event, so a batch of `MAX_BATCH` commands keeps at most a few thousand.
#[derive(Debug, Clone, Default)]
struct Journal {
    head: u64,
    role_order: usize,
    users: usize,
    group_order: usize,
    group_parents: usize,
    user_checks: usize,
    /// Each touched role as it was; `None` for one the batch created.
    roles: HashMap<RoleId, Option<Role>>,
    /// The lookalike keys the batch added (it never changes or removes one).
    role_lookalikes: Vec<Lookalike>,
    user_lookalikes: Vec<Lookalike>,
    /// Each touched user that existed before the batch, as it was, by slot. Users the
    /// batch created are above `users` and simply cut off.
    users_before: HashMap<u32, User>,
    groups: HashMap<GroupId, Option<Group>>,
    groups_of_event: HashMap<EventId, Option<EventGroups>>,
    /// Each touched check entry that existed before the batch, as it was, by slot.
    user_checks_before: HashMap<u32, UserCheck>,
    keys: HashMap<KeyHash, Option<Key>>,
    /// The key policy before the batch first set it.
    key_policy: Option<KeyPolicy>,
    /// The function usage's `exact_since` before the batch first changed it.
    function_usage_exact_since: Option<Option<Timestamp>>,
    /// Each user's function usage before the batch first changed it.
    function_usage: HashMap<UserId, Option<super::function_usage::UsedFunctions>>,
}

/// Where `key` stands at `now` under `policy`, `functions` (its user's, asked only when
/// the policy could block the key) telling whether it is exempt: [`State::key_state`], and
/// the check index's, which must judge alike.
#[inline]
pub(super) fn key_state_under(
    policy: &KeyPolicy,
    key: &Key,
    now: Timestamp,
    functions: impl FnOnce() -> FunctionSet,
) -> KeyState {
    let own = key.state_at(now);
    if !policy.blocks_keys() || !own.is_usable() {
        return own;
    }
    if policy::is_exempt(key, functions()) {
        return own;
    }
    policy.judge(key, now).unwrap_or(own)
}

/// The user with id `id`, through the slot index.
fn found<'a>(users: &'a [User], slots: &HashMap<UserId, u32>, id: &UserId) -> Option<&'a User> {
    slots.get(id).and_then(|&slot| users.get(slot as usize))
}

/// The user with id `id`, through the slot index, to change.
fn found_mut<'a>(users: &'a mut [User], slots: &HashMap<UserId, u32>, id: &UserId) -> Option<&'a mut User> {
    slots.get(id).and_then(|&slot| users.get_mut(slot as usize))
}

/// Serialises a map as a map, as serde does, but with its entries in key order rather
/// than in the order of its hash table, which differs from run to run. Only the order of
/// the entries changes, not the layout, so snapshots read back as before.
fn in_key_order<K: Ord + Serialize, V: Serialize, H, S: serde::Serializer>(
    map: &HashMap<K, V, H>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut entries: Vec<(&K, &V)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    serializer.collect_map(entries)
}

impl State {
    /// The position of the last event applied; 0 for an empty log.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The last recorded use of each function by each user.
    pub fn function_usage(&self) -> &FunctionUsage {
        &self.function_usage
    }

    /// The key policy in force (`setKeyPolicy`).
    pub fn key_policy(&self) -> &KeyPolicy {
        &self.key_policy
    }

    /// Where `key` stands at `now`: the one judgement of a key's state, which the check,
    /// the authority rules, the views and the reports ask. Its own state
    /// ([`Key::state_at`]), then, for a key that state lets through, the key policy's
    /// limits (too old, dormant), unless the key is exempt (`policy::is_exempt`: a standing
    /// administrator's key). With no limit set it costs one branch more than
    /// `Key::state_at`; with one, one read of the user's check entry and a few
    /// comparisons. Allocates nothing.
    #[inline]
    pub fn key_state(&self, key: &Key, now: Timestamp) -> KeyState {
        key_state_under(&self.key_policy, key, now, || {
            self.user_checks.get(key.user_slot as usize).map_or(FunctionSet::EMPTY, |user| user.functions)
        })
    }

    /// Whether the key policy leaves `key` alone (see `policy::is_exempt`).
    pub fn is_policy_exempt(&self, key: &Key) -> bool {
        let functions = self.user_checks.get(key.user_slot as usize).map_or(FunctionSet::EMPTY, |user| user.functions);
        policy::is_exempt(key, functions)
    }

    /// A role by id.
    pub fn role(&self, id: &RoleId) -> Option<&Role> {
        self.roles.get(id)
    }

    /// The role whose description looks like this one ([`Lookalike`]): equal, equal but
    /// for case, or confusable with it.
    pub fn role_by_description(&self, description: &str) -> Option<&Role> {
        Lookalike::keys_of(description)
            .iter()
            .find_map(|key| self.role_lookalikes.get(key))
            .and_then(|id| self.roles.get(id))
    }

    /// Roles in creation order, after the role created at position `after`.
    pub fn roles_after(&self, after: u64) -> impl Iterator<Item = &Role> {
        let start = self.role_order.partition_point(|id| self.roles[id].created.seq <= after);
        self.role_order[start..].iter().map(|id| &self.roles[id])
    }

    /// A user by id.
    pub fn user(&self, id: &UserId) -> Option<&User> {
        found(&self.users, &self.user_slots, id)
    }

    /// The user whose name looks like this one ([`Lookalike`]): equal, equal but for
    /// case, or confusable with it.
    pub fn user_named_like(&self, name: &str) -> Option<&User> {
        Lookalike::keys_of(name)
            .iter()
            .find_map(|key| self.user_lookalikes.get(key))
            .and_then(|id| found(&self.users, &self.user_slots, id))
    }

    /// Users in creation order, after the user created at position `after`.
    pub fn users_after(&self, after: u64) -> impl Iterator<Item = &User> {
        let start = self.users.partition_point(|user| user.created.seq <= after);
        self.users[start..].iter()
    }

    /// A group by id.
    pub fn group(&self, id: &GroupId) -> Option<&Group> {
        self.groups.get(id)
    }

    /// Groups in creation order, after the group created at position `after`.
    pub fn groups_after(&self, after: u64) -> impl Iterator<Item = &Group> {
        let start = self.group_order.partition_point(|id| self.groups[id].created.seq <= after);
        self.group_order[start..].iter().map(|id| &self.groups[id])
    }

    /// A key by the hash of its secret.
    pub fn key(&self, hash: &KeyHash) -> Option<&Key> {
        self.keys.get(hash)
    }

    /// The union of the functions of every role a user holds.
    pub fn functions_of(&self, user: &User) -> FunctionSet {
        self.user_checks.get(user.slot as usize).map_or(FunctionSet::EMPTY, |check| check.functions)
    }

    /// The chain of groups from `group` up to its outermost ancestor.
    pub fn ancestry<'a>(&'a self, group: &'a GroupId) -> impl Iterator<Item = &'a GroupId> + 'a {
        std::iter::successors(Some(group), move |id| self.groups.get(*id).and_then(|g| g.parent.as_ref()))
    }

    /// What a key check needs of the user in `slot`.
    pub fn user_check(&self, slot: u32) -> Option<&UserCheck> {
        self.user_checks.get(slot as usize)
    }

    /// Whether a check may pass for a platform event, given what the user was granted:
    /// the event is in a granted group or in a group nested below one. Both sides are
    /// sorted slots kept by `apply`, so no chain of groups is walked: the shorter side is
    /// looked up in the longer.
    pub fn may_access_event(&self, user: &UserCheck, event: &str) -> bool {
        user.all_events || super::check::share_a_group(user.groups.as_slice(), self.reachable_groups(event))
    }

    /// The sorted slots of every group that holds `event`, directly or through a group
    /// nested below; empty for an event in no group.
    pub fn reachable_groups(&self, event: &str) -> &[u32] {
        self.groups_of_event.get(event).map_or(&[], |groups| &groups.reachable)
    }

    /// Index upkeep of a new user: its check entry, in the next slot, and its name in the
    /// lookalike index.
    fn index_new_user(&mut self, user_id: &UserId) {
        let Some(user) = found(&self.users, &self.user_slots, user_id) else { return };
        // A log written before names had to look different may hold lookalikes; each key
        // keeps naming the first of them.
        for key in Lookalike::keys_of(&user.name) {
            if let Entry::Vacant(vacant) = self.user_lookalikes.entry(key) {
                vacant.insert(user_id.clone());
                if let Some(journal) = self.journal.as_mut() {
                    journal.user_lookalikes.push(key);
                }
            }
        }
        self.reindex_user(user_id);
    }

    /// Index upkeep of a new role: its description in the lookalike index.
    fn index_new_role(&mut self, role_id: &RoleId) {
        let Some(role) = self.roles.get(role_id) else { return };
        // A log written before descriptions had to look different may hold lookalikes;
        // each key keeps naming the first of them.
        for key in Lookalike::keys_of(&role.description) {
            if let Entry::Vacant(vacant) = self.role_lookalikes.entry(key) {
                vacant.insert(role_id.clone());
                if let Some(journal) = self.journal.as_mut() {
                    journal.role_lookalikes.push(key);
                }
            }
        }
    }

    /// Index upkeep of a new group: its parent's slot, in the group's slot. Groups never
    /// move, so this is set once. A parent is always created before its child, so a
    /// parent that is not in an earlier slot (unknown, or the group itself) is none.
    fn index_new_group(&mut self, group_id: &GroupId) {
        let Some(group) = self.groups.get(group_id) else { return };
        let parent = group.parent.as_ref().and_then(|id| self.groups.get(id));
        self.group_parents.push(parent.map(|parent| parent.slot).filter(|&slot| slot < group.slot));
    }

    /// Index upkeep of a user: recomputes the user's check entry from the user, their
    /// roles and the groups they were given. A new user's entry is added in its slot.
    fn reindex_user(&mut self, user_id: &UserId) {
        let Some(user) = found(&self.users, &self.user_slots, user_id) else { return };
        let functions = user
            .roles
            .iter()
            .filter_map(|id| self.roles.get(id))
            .fold(FunctionSet::EMPTY, |set, role| set.union(role.functions));
        let groups: SmallSet<u32> = match &user.event_access {
            EventAccess::AllEvents => SmallSet::new(),
            EventAccess::Groups(groups) => groups.iter().filter_map(|id| self.groups.get(id)).map(|g| g.slot).collect(),
        };
        let check = UserCheck {
            enabled: user.enabled,
            functions,
            all_events: user.event_access == EventAccess::AllEvents,
            groups,
        };
        match self.user_checks.get_mut(user.slot as usize) {
            Some(entry) => {
                if let Some(journal) = self.journal.as_mut()
                    && (user.slot as usize) < journal.user_checks
                {
                    journal.user_checks_before.entry(user.slot).or_insert_with(|| entry.clone());
                }
                *entry = check;
            }
            None => self.user_checks.push(check),
        }
    }

    /// Index upkeep of a role's functions: every holder's check entry.
    fn reindex_role_holders(&mut self, role_id: &RoleId) {
        let holders: Vec<UserId> =
            self.roles.get(role_id).map(|role| role.holders.iter().cloned().collect()).unwrap_or_default();
        for holder in &holders {
            self.reindex_user(holder);
        }
    }

    /// Index upkeep of an event's groups, after it was added to or removed from the group
    /// in a slot.
    fn reindex_event(&mut self, event_id: &EventId, change: MembershipChange) {
        if let Some(journal) = self.journal.as_mut() {
            journal
                .groups_of_event
                .entry(event_id.clone())
                .or_insert_with(|| self.groups_of_event.get(event_id).cloned());
        }
        match change {
            MembershipChange::Added(slot) => {
                let groups = self.groups_of_event.entry(event_id.clone()).or_default();
                groups.direct.push(slot);
                groups.refresh(&self.group_parents);
            }
            MembershipChange::Removed(slot) => {
                let Some(groups) = self.groups_of_event.get_mut(event_id) else { return };
                groups.direct.retain(|&member| member != slot);
                if groups.direct.is_empty() {
                    self.groups_of_event.remove(event_id);
                } else {
                    groups.refresh(&self.group_parents);
                }
            }
        }
    }

    /// Changes the state by one event. Events come from the log, which only holds events
    /// that `decide` produced, so an event naming something unknown is ignored rather than
    /// trusted: replay never panics on a record.
    ///
    /// Each arm changes the entities, then calls the upkeep of the check index (and name
    /// index) of what it changed: `reindex_user`, `reindex_role_holders`,
    /// `reindex_event`, or the `index_new_*` of a new user, role or group. It is one arm
    /// of a few lines per event type, which makes it longer than 80 lines; split, it would
    /// no longer show in one place what each event changes.
    pub fn apply(&mut self, position: Position, event: &Event) {
        self.head = position.seq;
        match event {
            Event::UserCreated { user_id, name, email } => {
                if !self.user_slots.contains_key(user_id) {
                    self.create_user(position, user_id, name, email.clone());
                    self.index_new_user(user_id);
                }
            }
            Event::UserDisabled { user_id } => {
                self.touch_user(user_id, position, |user| user.enabled = false);
                self.reindex_user(user_id);
            }
            Event::UserEnabled { user_id } => {
                self.touch_user(user_id, position, |user| user.enabled = true);
                self.reindex_user(user_id);
            }
            Event::RoleCreated { role_id, description } => {
                self.create_role(position, role_id, description);
                self.index_new_role(role_id);
            }
            Event::FunctionActivated { role_id, function } => {
                self.touch_role(role_id, position, |role| role.functions.insert(*function));
                self.reindex_role_holders(role_id);
            }
            Event::FunctionDeactivated { role_id, function } => {
                self.touch_role(role_id, position, |role| role.functions.remove(*function));
                self.reindex_role_holders(role_id);
            }
            Event::RoleAssigned { user_id, role_id } => {
                self.touch_user(user_id, position, |user| user.roles.insert(role_id.clone()));
                self.touch_role(role_id, position, |role| role.holders.insert(user_id.clone()));
                self.reindex_user(user_id);
            }
            Event::RoleUnassigned { user_id, role_id } => {
                self.touch_user(user_id, position, |user| user.roles.remove(role_id));
                self.touch_role(role_id, position, |role| role.holders.remove(user_id));
                self.reindex_user(user_id);
            }
            Event::EventGroupCreated { group_id, name, parent_id } => {
                if !self.groups.contains_key(group_id) {
                    self.create_group(position, group_id, name, parent_id.as_ref());
                    self.index_new_group(group_id);
                }
            }
            Event::EventAddedToGroup { group_id, event_id } => {
                let added = self.touch_group(group_id, position, |group| {
                    group.events.insert(event_id.clone()).then_some(group.slot)
                });
                if let Some(slot) = added.flatten() {
                    self.reindex_event(event_id, MembershipChange::Added(slot));
                }
            }
            Event::EventRemovedFromGroup { group_id, event_id } => {
                let removed =
                    self.touch_group(group_id, position, |group| group.events.remove(event_id).then_some(group.slot));
                if let Some(slot) = removed.flatten() {
                    self.reindex_event(event_id, MembershipChange::Removed(slot));
                }
            }
            Event::EventAccessSet { user_id, all_events, groups } => {
                let access = if *all_events {
                    EventAccess::AllEvents
                } else {
                    EventAccess::Groups(groups.iter().cloned().collect())
                };
                self.touch_user(user_id, position, |user| user.event_access = access);
                self.reindex_user(user_id);
            }
            Event::KeyGenerated {
                user_id,
                key_id,
                key_hash,
                expires_at,
                replaced_key_id: _,
                replaced_key_valid_until,
            } => self.apply_key_generated(
                position,
                user_id,
                key_id,
                *key_hash,
                *expires_at,
                *replaced_key_valid_until,
                false,
            ),
            Event::KeyImported {
                user_id,
                key_id,
                key_hash,
                expires_at,
                replaced_key_id: _,
                replaced_key_valid_until,
            } => self.apply_key_generated(
                position,
                user_id,
                key_id,
                *key_hash,
                *expires_at,
                *replaced_key_valid_until,
                true,
            ),
            // The policy changes no entity and no version: the check reads it.
            Event::KeyPolicySet { max_lifetime_days, require_expiry, max_unused_days } => {
                if let Some(journal) = self.journal.as_mut() {
                    journal.key_policy.get_or_insert(self.key_policy);
                }
                self.key_policy = KeyPolicy::recorded(*max_lifetime_days, *require_expiry, *max_unused_days);
            }
            Event::KeyRevoked { user_id, key_id } => self.apply_key_revoked(position, user_id, key_id),
            // A record of a refusal: it changes no permission and no version.
            Event::AdminAccessDenied { .. } => {}
            // A lookup changes nothing: it is on the record only.
            Event::KeyLookedUp { .. } => {}
            Event::KeyUsageRecorded { user_id, key_id, allowed, last_used_at, .. } => {
                self.apply_key_usage(user_id, key_id, *last_used_at);
                if *allowed > 0 {
                    self.note_function_usage(None);
                    self.function_usage.note_uncounted(*last_used_at);
                }
            }
            Event::KeyUsageIntervalRecorded { from, to: _, keys } => {
                for used in keys {
                    self.apply_key_usage(&used.user_id, &used.key_id, used.last_used_at(*from));
                    match &used.functions {
                        Some(functions) => {
                            self.note_function_usage(Some(&used.user_id));
                            self.function_usage.note_used(&used.user_id, *from, functions);
                        }
                        None if used.allowed > 0 => {
                            self.note_function_usage(None);
                            self.function_usage.note_uncounted(used.last_used_at(*from));
                        }
                        None => {}
                    }
                }
            }
            Event::AdministratorRecovered { user_id, name, role_id, role_description, key_id, key_hash, reason: _ } => {
                self.apply_recovery(position, user_id, name, role_id, role_description, key_id, *key_hash);
            }
        }
    }

    fn create_user(&mut self, position: Position, user_id: &UserId, name: &str, email: Option<String>) {
        let user = User {
            id: user_id.clone(),
            slot: u32::try_from(self.user_checks.len()).unwrap_or(u32::MAX),
            name: name.into(),
            email: email.map(String::into_boxed_str),
            enabled: true,
            roles: SmallSet::new(),
            event_access: EventAccess::default(),
            current_key: None,
            grace_key: None,
            created: position,
            version: position.seq,
            recovered: None,
        };
        if !self.user_slots.contains_key(user_id) {
            // The index in `users`, which is also the check entry's slot: both grow by
            // one with each new user.
            self.user_slots.insert(user_id.clone(), u32::try_from(self.users.len()).unwrap_or(u32::MAX));
            self.users.push(user);
        }
        self.changes.user(position.seq);
    }

    /// A role id that exists already is replaced, keeping its place in the order.
    fn create_role(&mut self, position: Position, role_id: &RoleId, description: &str) {
        let role = Role {
            id: role_id.clone(),
            description: description.into(),
            functions: FunctionSet::EMPTY,
            holders: BTreeSet::new(),
            created: position,
            version: position.seq,
        };
        self.note_role(role_id);
        if self.roles.insert(role_id.clone(), role).is_none() {
            self.role_order.push(role_id.clone());
        }
        self.changes.role(position.seq);
    }

    fn create_group(&mut self, position: Position, group_id: &GroupId, name: &str, parent_id: Option<&GroupId>) {
        let group = Group {
            id: group_id.clone(),
            slot: u32::try_from(self.group_parents.len()).unwrap_or(u32::MAX),
            name: name.into(),
            parent: parent_id.cloned(),
            children: SmallSet::new(),
            events: BTreeSet::new(),
            created: position,
            version: position.seq,
        };
        self.note_group(group_id);
        if self.groups.insert(group_id.clone(), group).is_none() {
            self.group_order.push(group_id.clone());
        }
        self.changes.group(position.seq);
        if let Some(parent) = parent_id {
            self.touch_group(parent, position, |parent| parent.children.insert(group_id.clone()));
        }
    }

    fn apply_key_revoked(&mut self, position: Position, user_id: &UserId, key_id: &KeyId) {
        let mut revoked = None;
        self.note_user(user_id);
        if let Some(user) = found_mut(&mut self.users, &self.user_slots, user_id) {
            user.version = position.seq;
            self.changes.user(user.created.seq);
            for slot in [&mut user.current_key, &mut user.grace_key] {
                if let Some(hash) = *slot
                    && self.keys.get(&hash).is_some_and(|key| key.id == *key_id)
                {
                    *slot = None;
                    revoked = Some(hash);
                }
            }
        }
        if let Some(hash) = revoked {
            note_key(&mut self.journal, &self.keys, hash);
        }
        if let Some(key) = revoked.and_then(|hash| self.keys.get_mut(&hash)) {
            key.status = KeyStatus::Revoked { at: position.at };
        }
    }

    /// Applies an `AdministratorRecovered` as the changes it stands for, all at its
    /// position: the user, the role with every admin function, the assignment and the key.
    /// A user or role id that exists already is left as it is (`decide` mints new ones).
    #[allow(clippy::too_many_arguments)]
    fn apply_recovery(
        &mut self,
        position: Position,
        user_id: &UserId,
        name: &str,
        role_id: &RoleId,
        role_description: &str,
        key_id: &KeyId,
        key_hash: KeyHash,
    ) {
        if self.user_slots.contains_key(user_id) || self.roles.contains_key(role_id) {
            return;
        }
        let mut parts = vec![
            Event::UserCreated { user_id: user_id.clone(), name: name.to_owned(), email: None },
            Event::RoleCreated { role_id: role_id.clone(), description: role_description.to_owned() },
        ];
        parts.extend(
            FunctionSet::all_admin()
                .iter()
                .map(|function| Event::FunctionActivated { role_id: role_id.clone(), function }),
        );
        parts.push(Event::RoleAssigned { user_id: user_id.clone(), role_id: role_id.clone() });
        parts.push(Event::KeyGenerated {
            user_id: user_id.clone(),
            key_id: key_id.clone(),
            key_hash,
            expires_at: None,
            replaced_key_id: None,
            replaced_key_valid_until: None,
        });
        for part in &parts {
            self.apply(position, part);
        }
        self.note_user(user_id);
        if let Some(user) = found_mut(&mut self.users, &self.user_slots, user_id) {
            user.recovered = Some(Box::new(position));
        }
    }

    /// Sets a key's last use. Only the user's current key and the key in its grace period
    /// are kept up to date: others no longer show anywhere. The user's version does not
    /// move, since usage is not a change of the user: an admin's `If-Match` never races
    /// with a usage record.
    fn apply_key_usage(&mut self, user_id: &UserId, key_id: &KeyId, last_used_at: Timestamp) {
        let Some(user) = found(&self.users, &self.user_slots, user_id) else { return };
        let hash = [user.current_key, user.grace_key]
            .into_iter()
            .flatten()
            .find(|hash| self.keys.get(hash).is_some_and(|key| key.id == *key_id));
        if let Some(hash) = hash {
            note_key(&mut self.journal, &self.keys, hash);
        }
        if let Some(key) = hash.and_then(|hash| self.keys.get_mut(&hash)) {
            key.last_used_at = key.last_used_at.max(Some(last_used_at));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_key_generated(
        &mut self,
        position: Position,
        user_id: &UserId,
        key_id: &KeyId,
        key_hash: KeyHash,
        expires_at: Option<Timestamp>,
        replaced_key_valid_until: Option<Timestamp>,
        legacy: bool,
    ) {
        self.note_user(user_id);
        let Some(user) = found_mut(&mut self.users, &self.user_slots, user_id) else {
            return;
        };
        user.version = position.seq;
        self.changes.user(user.created.seq);
        for hash in [user.grace_key, user.current_key, Some(key_hash)].into_iter().flatten() {
            note_key(&mut self.journal, &self.keys, hash);
        }
        // Only the most recent replaced key gets a grace period; an older one is gone.
        if let Some(old_grace) = user.grace_key.take() {
            self.keys.remove(&old_grace);
        }
        if let Some(replaced) = user.current_key.take() {
            match replaced_key_valid_until {
                Some(valid_until) => {
                    if let Some(key) = self.keys.get_mut(&replaced) {
                        key.status = KeyStatus::Replaced { valid_until };
                    }
                    user.grace_key = Some(replaced);
                }
                None => {
                    self.keys.remove(&replaced);
                }
            }
        }
        user.current_key = Some(key_hash);
        let key = Key {
            id: key_id.clone(),
            user_id: user_id.clone(),
            user_slot: user.slot,
            created_at: position.at,
            expires_at,
            status: KeyStatus::Active,
            last_used_at: None,
            legacy,
        };
        self.keys.insert(key_hash, key);
    }

    /// Changes a user and sets its version; `None` if there is no such user.
    fn touch_user<R>(&mut self, id: &UserId, position: Position, change: impl FnOnce(&mut User) -> R) -> Option<R> {
        self.note_user(id);
        let user = found_mut(&mut self.users, &self.user_slots, id)?;
        let result = change(user);
        user.version = position.seq;
        self.changes.user(user.created.seq);
        Some(result)
    }

    /// Changes a role and sets its version; `None` if there is no such role.
    fn touch_role<R>(&mut self, id: &RoleId, position: Position, change: impl FnOnce(&mut Role) -> R) -> Option<R> {
        self.note_role(id);
        let role = self.roles.get_mut(id)?;
        let result = change(role);
        role.version = position.seq;
        self.changes.role(role.created.seq);
        Some(result)
    }

    /// Changes a group and sets its version; `None` if there is no such group.
    fn touch_group<R>(&mut self, id: &GroupId, position: Position, change: impl FnOnce(&mut Group) -> R) -> Option<R> {
        self.note_group(id);
        let group = self.groups.get_mut(id)?;
        let result = change(group);
        group.version = position.seq;
        self.changes.group(group.created.seq);
        Some(result)
    }
}

/// Notes a key's value before the batch under way first changes it.
fn note_key(journal: &mut Option<Box<Journal>>, keys: &KeyMap, hash: KeyHash) {
    if let Some(journal) = journal {
        journal.keys.entry(hash).or_insert_with(|| keys.get(&hash).cloned());
    }
}

/// Batches applied before they are durable: the writer's side of the one copy.
impl State {
    /// Starts journaling: from here on, `apply` keeps the value each entity had before it
    /// first changes it, until [`State::commit_batch`] or [`State::rollback_batch`]. A
    /// batch already under way is committed first (nothing is lost, nothing is undone).
    pub fn begin_batch(&mut self) {
        let _ = self.commit_batch();
        self.journal = Some(Box::new(Journal {
            head: self.head,
            role_order: self.role_order.len(),
            users: self.users.len(),
            group_order: self.group_order.len(),
            group_parents: self.group_parents.len(),
            user_checks: self.user_checks.len(),
            ..Journal::default()
        }));
    }

    /// Whether a batch is under way ([`State::begin_batch`]).
    pub fn in_batch(&self) -> bool {
        self.journal.is_some()
    }

    /// Ends the batch under way, keeping what it applied, and returns the new values of
    /// everything the check index copies that it touched ([`CheckIndex::update`]). With no
    /// batch under way, an update that changes nothing but the head.
    pub fn commit_batch(&mut self) -> CheckUpdate {
        let Some(journal) = self.journal.take() else {
            return CheckUpdate { head: self.head, key_policy: self.key_policy, ..CheckUpdate::default() };
        };
        let keys = journal
            .keys
            .into_keys()
            .map(|hash| {
                let key = self
                    .keys
                    .get(&hash)
                    .map(|key| (key.clone(), self.user_checks.get(key.user_slot as usize).cloned()));
                (hash, key)
            })
            .collect();
        let mut user_checks: Vec<(u32, UserCheck)> = journal
            .user_checks_before
            .into_keys()
            .chain((journal.user_checks..self.user_checks.len()).filter_map(|slot| u32::try_from(slot).ok()))
            .filter_map(|slot| self.user_checks.get(slot as usize).map(|check| (slot, check.clone())))
            .collect();
        user_checks.sort_unstable_by_key(|(slot, _)| *slot);
        let events = journal
            .groups_of_event
            .into_keys()
            .map(|event| {
                let groups = self.groups_of_event.get(&event).cloned();
                (event, groups)
            })
            .collect();
        CheckUpdate { head: self.head, keys, user_checks, events, key_policy: self.key_policy }
    }

    /// Forgets the batch under way: puts back every value it replaced and cuts off what it
    /// added, so that the state is exactly what it was at [`State::begin_batch`] (its
    /// snapshot bytes are the same). The change log of the fingerprint keeps the batch's
    /// notes, so a [`FingerprintCache`](super::FingerprintCache) kept across the batch must
    /// be thrown away. With no batch under way, does nothing.
    pub fn rollback_batch(&mut self) {
        let Some(journal) = self.journal.take() else { return };
        let journal = *journal;
        for (hash, key) in journal.keys {
            match key {
                Some(key) => self.keys.insert(hash, key),
                None => self.keys.remove(&hash),
            };
        }
        for (event, groups) in journal.groups_of_event {
            match groups {
                Some(groups) => self.groups_of_event.insert(event, groups),
                None => self.groups_of_event.remove(&event),
            };
        }
        self.user_checks.truncate(journal.user_checks);
        for (slot, check) in journal.user_checks_before {
            if let Some(entry) = self.user_checks.get_mut(slot as usize) {
                *entry = check;
            }
        }
        self.group_parents.truncate(journal.group_parents);
        for (id, group) in journal.groups {
            match group {
                Some(group) => self.groups.insert(id, group),
                None => self.groups.remove(&id),
            };
        }
        self.group_order.truncate(journal.group_order);
        for key in &journal.user_lookalikes {
            self.user_lookalikes.remove(key);
        }
        for key in &journal.role_lookalikes {
            self.role_lookalikes.remove(key);
        }
        for user in self.users.drain(journal.users..) {
            self.user_slots.remove(&user.id);
        }
        for (slot, user) in journal.users_before {
            if let Some(entry) = self.users.get_mut(slot as usize) {
                *entry = user;
            }
        }
        for (id, role) in journal.roles {
            match role {
                Some(role) => self.roles.insert(id, role),
                None => self.roles.remove(&id),
            };
        }
        self.role_order.truncate(journal.role_order);
        if let Some(policy) = journal.key_policy {
            self.key_policy = policy;
        }
        if let Some(exact_since) = journal.function_usage_exact_since {
            self.function_usage.restore_exact_since(exact_since);
        }
        for (user, used) in journal.function_usage {
            self.function_usage.restore(user, used);
        }
        self.head = journal.head;
    }

    /// Notes the function usage before the batch under way first changes it: `user`'s
    /// entry, or, for `None`, when every passed check is known with its function.
    fn note_function_usage(&mut self, user: Option<&UserId>) {
        let Some(journal) = self.journal.as_mut() else { return };
        match user {
            Some(user) => {
                if !journal.function_usage.contains_key(user) {
                    journal.function_usage.insert(user.clone(), self.function_usage.kept(user));
                }
            }
            None => {
                journal.function_usage_exact_since.get_or_insert(self.function_usage.exact_since());
            }
        }
    }

    /// Notes a user's value before the batch under way first changes it. Users the batch
    /// created need no note: rolling back cuts them off.
    fn note_user(&mut self, id: &UserId) {
        let Some(journal) = self.journal.as_mut() else { return };
        let Some(&slot) = self.user_slots.get(id) else { return };
        if (slot as usize) < journal.users
            && let Entry::Vacant(vacant) = journal.users_before.entry(slot)
            && let Some(user) = self.users.get(slot as usize)
        {
            vacant.insert(user.clone());
        }
    }

    /// Notes a role's value (or its absence) before the batch under way first changes it.
    fn note_role(&mut self, id: &RoleId) {
        if let Some(journal) = self.journal.as_mut() {
            journal.roles.entry(id.clone()).or_insert_with(|| self.roles.get(id).cloned());
        }
    }

    /// Notes a group's value (or its absence) before the batch under way first changes it.
    fn note_group(&mut self, id: &GroupId) {
        if let Some(journal) = self.journal.as_mut() {
            journal.groups.entry(id.clone()).or_insert_with(|| self.groups.get(id).cloned());
        }
    }
}

/// Access by creation order, and to what `apply` changed, for `domain::fingerprint`.
impl State {
    /// How many roles, groups and users there are.
    pub(super) fn entity_counts(&self) -> (usize, usize, usize) {
        (self.role_order.len(), self.group_order.len(), self.users.len())
    }
    /// The role created `index`-th.
    pub(super) fn role_at(&self, index: usize) -> Option<&Role> {
        self.role_order.get(index).and_then(|id| self.roles.get(id))
    }
    /// The group created `index`-th.
    pub(super) fn group_at(&self, index: usize) -> Option<&Group> {
        self.group_order.get(index).and_then(|id| self.groups.get(id))
    }
    /// The user created `index`-th.
    pub(super) fn user_at(&self, index: usize) -> Option<&User> {
        self.users.get(index)
    }
    /// The entities `apply` changed lately.
    pub(super) fn changes(&self) -> &ChangeLog {
        &self.changes
    }
}

/// Read-only access for the point-in-time questions of `domain::view`.
impl State {
    /// Every key the view still knows, in no particular order: current keys, keys in (or
    /// past) their grace period and revoked keys. A key replaced without a grace period,
    /// or whose grace period was cut short by a later rotation, is forgotten.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.values()
    }
}
