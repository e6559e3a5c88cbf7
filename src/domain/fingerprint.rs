//! The fingerprint of the permission view: one hash of everything that decides a key
//! check, for signed checkpoints.
//!
//! A checkpoint signs the view's fingerprint beside the log's Merkle root, so a reviewer
//! who replays the log can check that it yields the view the service claimed. The
//! fingerprint therefore depends only on the view's content and the log's order, never
//! on the order of hash maps or on how the state is laid out in memory: entities are
//! visited in creation order (the log's order, which every replay reproduces) and every
//! field is written length-prefixed, so two different views cannot encode to the same
//! bytes. Usage records and other bookkeeping that grants nothing are
//! left out. Changing what goes in means a new `VERSION`.
//!
//! The value is blake3 over one message: the version label, then for roles, groups and
//! users in turn their count and each one's 32-byte digest. Checkpoints already signed
//! name that value, so it stays; what changed is how the writer and `verify` compute it.
//! A [`FingerprintCache`] keeps the message and blake3's own tree over it (chaining values
//! of 16 KiB leaves and their parents, through `blake3::hazmat`), and `apply` notes which
//! entities it changed in the state's [`ChangeLog`]; a cached fingerprint re-encodes only
//! those, rewrites their 32 bytes in the message and re-hashes the leaves that hold them
//! and O(log n) parents. Entities are never removed and new ones go last, so new users
//! only append. A new role or group is the exception: it shifts every digest after it in
//! the message, and blake3 hashes each 1 KiB chunk with its position, so every leaf from
//! there on is re-hashed (one blake3 pass over 32 bytes per later entity, from the cached
//! message: no walk of the entities). Keeping old checkpoints verifiable without a
//! checkpoint-format version rules out any layout that would avoid that shift.

use std::collections::VecDeque;

use blake3::hazmat::{ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root};

use super::{EventAccess, FunctionSet, Group, GroupId, Key, KeyStatus, Role, State, Timestamp, User};

/// How many users' digests one thread encodes at a time when a fingerprint is rebuilt
/// from every entity ([`FingerprintCache`]'s `rebuild`).
const USERS_PER_RUN: usize = 256;

/// Names the encoding; hashed first.
const VERSION: &[u8] = b"keyledger view fingerprint v1";

/// Feeds length-prefixed fields to blake3, through a buffer: hashing many small fields
/// one update at a time costs several times what hashing the same bytes in large blocks
/// does.
struct Encoder {
    hasher: blake3::Hasher,
    buffer: Vec<u8>,
}

impl Encoder {
    const FLUSH_AT: usize = 64 * 1024;

    fn new() -> Self {
        Self { hasher: blake3::Hasher::new(), buffer: Vec::with_capacity(Self::FLUSH_AT + 4096) }
    }

    fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= Self::FLUSH_AT {
            self.hasher.update(&self.buffer);
            self.buffer.clear();
        }
        self
    }

    fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.raw(&(bytes.len() as u64).to_le_bytes()).raw(bytes)
    }

    fn text(&mut self, text: &str) -> &mut Self {
        self.bytes(text.as_bytes())
    }

    fn number(&mut self, number: u64) -> &mut Self {
        self.raw(&number.to_le_bytes())
    }

    fn finish(mut self) -> [u8; 32] {
        self.take()
    }

    /// The hash of what was fed since the last take, leaving the encoder empty for reuse.
    fn take(&mut self) -> [u8; 32] {
        self.hasher.update(&self.buffer);
        self.buffer.clear();
        let digest = *self.hasher.finalize().as_bytes();
        self.hasher.reset();
        digest
    }

    fn time(&mut self, time: Option<Timestamp>) -> &mut Self {
        match time {
            Some(time) => self.number(1).number(time.unix_millis() as u64),
            None => self.number(0),
        }
    }

    fn functions(&mut self, functions: FunctionSet) -> &mut Self {
        let mut names: Vec<&str> = functions.iter().map(|function| function.as_str()).collect();
        names.sort_unstable();
        self.list(names.iter(), |encoder, name| {
            encoder.text(name);
        })
    }

    fn list<T>(&mut self, items: impl ExactSizeIterator<Item = T>, mut each: impl FnMut(&mut Self, T)) -> &mut Self {
        self.number(items.len() as u64);
        for item in items {
            each(self, item);
        }
        self
    }

    fn key(&mut self, key: Option<&Key>) -> &mut Self {
        let Some(key) = key else { return self.number(0) };
        self.number(1).text(&key.id().text()).time(Some(key.created_at())).time(key.expires_at());
        match key.status() {
            KeyStatus::Active => self.number(0),
            KeyStatus::Replaced { valid_until } => self.number(1).time(Some(valid_until)),
            KeyStatus::Revoked { at } => self.number(2).time(Some(at)),
        }
    }
}

/// Writes a role's canonical encoding.
fn encode_role(encoder: &mut Encoder, role: &Role) {
    encoder.text(&role.id().text()).text(role.description()).functions(role.functions());
}

/// Writes a group's canonical encoding.
fn encode_group(encoder: &mut Encoder, group: &Group) {
    encoder.text(&group.id().text()).text(group.name());
    encoder.text(group.parent().map(GroupId::text).as_deref().unwrap_or(""));
    encoder.list(group.events().iter(), |encoder, event| {
        encoder.text(event.as_str());
    });
}

/// Writes a user's canonical encoding, with its keys as `state` knows them.
fn encode_user(state: &State, encoder: &mut Encoder, user: &User) {
    encoder.text(&user.id().text()).text(user.name()).text(user.email().unwrap_or(""));
    encoder.number(u64::from(user.is_enabled()));
    encoder.list(user.roles().iter(), |encoder, role| {
        encoder.text(&role.text());
    });
    match user.event_access() {
        EventAccess::AllEvents => encoder.number(1),
        EventAccess::Groups(groups) => encoder.number(0).list(groups.iter(), |encoder, group| {
            encoder.text(&group.text());
        }),
    };
    for hash in [user.current_key(), user.grace_key()] {
        match hash {
            Some(hash) => encoder.number(1).raw(hash.as_bytes()),
            None => encoder.number(0),
        };
        encoder.key(hash.and_then(|hash| state.key(&hash)));
    }
}

/// An entity's digest: blake3 of its encoding.
fn digest_of<T>(scratch: &mut Encoder, entity: &T, encode: impl FnOnce(&mut Encoder, &T)) -> [u8; 32] {
    encode(scratch, entity);
    scratch.take()
}

/// Which entity `apply` changed, by kind and the position that created it (which, with the
/// creation order, finds its place in the fingerprint's message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Changed {
    Role(u64),
    Group(u64),
    User(u64),
}

impl Changed {
    fn pack(self) -> u64 {
        match self {
            Changed::Role(seq) => seq << 2,
            Changed::Group(seq) => (seq << 2) | 1,
            Changed::User(seq) => (seq << 2) | 2,
        }
    }

    fn unpack(packed: u64) -> Self {
        match packed & 3 {
            0 => Changed::Role(packed >> 2),
            1 => Changed::Group(packed >> 2),
            _ => Changed::User(packed >> 2),
        }
    }
}

/// The entities `apply` changed most recently, so that a fingerprint re-encodes only them:
/// every change to what an entity's digest covers is noted here (where its version moves).
///
/// It keeps the last [`ChangeLog::CAPACITY`] changes and how many were ever noted; a
/// [`FingerprintCache`] that fell further behind re-reads every entity's version instead.
/// It is not part of the snapshot: a state read from one starts with an empty log, which
/// a cache tells from the count.
#[derive(Debug, Clone, Default)]
pub struct ChangeLog {
    noted: u64,
    recent: VecDeque<u64>,
}

impl ChangeLog {
    /// How many changes are kept: 4 MiB at most, and more than the records between two
    /// checkpoints make at the default cadence (a checkpoint every 100,000 records, each
    /// record changing one to three entities). With 65,536, a sustained stream of writes
    /// overflowed it between two checkpoints and every checkpoint walked every entity
    /// again, pausing admin writes (the p99 of `bench-writes.sh`).
    pub const CAPACITY: usize = 1 << 19;

    fn note(&mut self, changed: Changed) {
        if self.recent.len() == Self::CAPACITY {
            self.recent.pop_front();
        }
        self.recent.push_back(changed.pack());
        self.noted += 1;
    }

    /// Notes a change of the role created at `created`.
    pub(super) fn role(&mut self, created: u64) {
        self.note(Changed::Role(created));
    }

    /// Notes a change of the group created at `created`.
    pub(super) fn group(&mut self, created: u64) {
        self.note(Changed::Group(created));
    }

    /// Notes a change of the user created at `created`.
    pub(super) fn user(&mut self, created: u64) {
        self.note(Changed::User(created));
    }

    /// The changes noted since `seen` were, or `None` if they are no longer all kept (or
    /// `seen` is not of this log).
    fn since(&self, seen: u64) -> Option<impl Iterator<Item = Changed> + '_> {
        let missed = usize::try_from(self.noted.checked_sub(seen)?).ok()?;
        let skip = self.recent.len().checked_sub(missed)?;
        Some(self.recent.iter().skip(skip).map(|&packed| Changed::unpack(packed)))
    }
}

/// Where each part of the fingerprint's message lies, for a number of roles, groups and
/// users: the label, then each section's count (8 bytes) and digests (32 bytes each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    roles: usize,
    groups: usize,
    users: usize,
}

impl Layout {
    /// The length-prefixed version label.
    const LABEL: usize = 8 + VERSION.len();

    fn of(state: &State) -> Self {
        let (roles, groups, users) = state.entity_counts();
        Layout { roles, groups, users }
    }

    fn roles_count(&self) -> usize {
        Self::LABEL
    }
    fn role(&self, index: usize) -> usize {
        self.roles_count() + 8 + 32 * index
    }
    fn groups_count(&self) -> usize {
        self.role(self.roles)
    }
    fn group(&self, index: usize) -> usize {
        self.groups_count() + 8 + 32 * index
    }
    fn users_count(&self) -> usize {
        self.group(self.groups)
    }
    fn user(&self, index: usize) -> usize {
        self.users_count() + 8 + 32 * index
    }
}

/// The index in creation order of the entity created at `created`, among `count` whose
/// creation positions `created_at` gives in order; `None` if there is no such entity or
/// more than one (which no log `decide` wrote holds).
fn index_created_at(count: usize, created: u64, created_at: impl Fn(usize) -> Option<u64>) -> Option<usize> {
    let (mut low, mut high) = (0, count);
    while low < high {
        let middle = low + (high - low) / 2;
        if created_at(middle)? < created {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    let unique = created_at(low)? == created && created_at(low + 1) != Some(created);
    unique.then_some(low)
}

/// A message and blake3's hash of it, kept so that rewriting a few bytes re-hashes only the
/// leaves holding them (runs of `leaf_len` bytes, aligned: blake3 subtrees of their own)
/// and their parents, rather than the whole message.
#[derive(Debug, Clone)]
struct TreeHashedMessage {
    bytes: Vec<u8>,
    /// `levels[0][i]` is the chaining value of leaf `i`, for every complete leaf;
    /// `levels[k][i]` that of the `2^k` leaves from leaf `i * 2^k`, for every complete run.
    levels: Vec<Vec<ChainingValue>>,
    /// Leaves rewritten since `levels` was last brought up to date.
    dirty: Vec<usize>,
    /// Every leaf from the one holding this byte on is dirty (the message grew or moved).
    dirty_from: Option<usize>,
    /// A power of two multiple of blake3's 1 KiB chunk.
    leaf_len: usize,
}

impl Default for TreeHashedMessage {
    fn default() -> Self {
        Self::with_leaf_len(TreeHashedMessage::LEAF_LEN)
    }
}

impl TreeHashedMessage {
    /// 16 KiB: 512 digests, hashed in one pass wide enough for blake3's SIMD, while a
    /// change of one digest costs microseconds.
    const LEAF_LEN: usize = 16 * blake3::CHUNK_LEN;

    fn with_leaf_len(leaf_len: usize) -> Self {
        debug_assert!(leaf_len.is_power_of_two() && leaf_len >= blake3::CHUNK_LEN);
        Self { bytes: Vec::new(), levels: Vec::new(), dirty: Vec::new(), dirty_from: None, leaf_len }
    }

    fn mark_from(&mut self, offset: usize) {
        self.dirty_from = Some(self.dirty_from.map_or(offset, |from| from.min(offset)));
    }

    /// Writes `data` at `offset`, growing the message if it ends past it.
    fn write(&mut self, offset: usize, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len();
        if end > self.bytes.len() {
            self.mark_from(self.bytes.len().min(offset));
            self.bytes.resize(end, 0);
        }
        self.bytes[offset..end].copy_from_slice(data);
        self.dirty.extend(offset / self.leaf_len..=(end - 1) / self.leaf_len);
    }

    /// Replaces everything from `offset` on with `tail`.
    fn replace_from(&mut self, offset: usize, tail: &[u8]) {
        self.bytes.truncate(offset);
        self.bytes.extend_from_slice(tail);
        self.mark_from(offset);
    }

    /// Replaces the whole message, marking dirty only the leaves that differ.
    fn set(&mut self, bytes: Vec<u8>) {
        let common = self.bytes.len().min(bytes.len());
        let leaf_len = self.leaf_len;
        for (leaf, (old, new)) in
            self.bytes[..common].chunks(leaf_len).zip(bytes[..common].chunks(leaf_len)).enumerate()
        {
            if old != new {
                self.dirty.push(leaf);
            }
        }
        if bytes.len() != self.bytes.len() {
            self.mark_from(common);
        }
        self.bytes = bytes;
    }

    /// blake3 of the message.
    fn root(&mut self) -> [u8; 32] {
        self.refresh();
        let len = self.bytes.len();
        if len <= blake3::CHUNK_LEN {
            return *blake3::hash(&self.bytes).as_bytes();
        }
        let left = left_subtree_len(len as u64) as usize;
        *merge_subtrees_root(&self.node(0, left), &self.node(left, len - left), Mode::Hash).as_bytes()
    }

    /// Brings `levels` up to date with the bytes: the dirty complete leaves, then their
    /// parents, level by level.
    fn refresh(&mut self) {
        let complete = self.bytes.len() / self.leaf_len;
        let mut dirty = std::mem::take(&mut self.dirty);
        if let Some(from) = self.dirty_from.take() {
            dirty.extend(from / self.leaf_len..complete);
        }
        dirty.retain(|&leaf| leaf < complete);
        dirty.sort_unstable();
        dirty.dedup();
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].resize(complete, [0; 32]);
        for &leaf in &dirty {
            let start = leaf * self.leaf_len;
            self.levels[0][leaf] = blake3::Hasher::new()
                .set_input_offset(start as u64)
                .update(&self.bytes[start..start + self.leaf_len])
                .finalize_non_root();
        }
        let mut level = 1;
        loop {
            let len = self.levels[level - 1].len() / 2;
            if len == 0 {
                self.levels.truncate(level);
                break;
            }
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].resize(len, [0; 32]);
            for node in &mut dirty {
                *node /= 2;
            }
            dirty.dedup();
            dirty.retain(|&node| node < len);
            let (below, this) = self.levels.split_at_mut(level);
            let (below, this) = (&below[level - 1], &mut this[0]);
            for &node in &dirty {
                this[node] = merge_subtrees_non_root(&below[2 * node], &below[2 * node + 1], Mode::Hash);
            }
            level += 1;
        }
    }

    /// The chaining value of the subtree of `len` bytes from `start`, a node of blake3's
    /// tree over the whole message: from `levels` when it is a run of complete leaves,
    /// hashed otherwise (only along the right edge, below one leaf).
    fn node(&self, start: usize, len: usize) -> ChainingValue {
        let leaves = len / self.leaf_len;
        if len.is_multiple_of(self.leaf_len) && leaves.is_power_of_two() && start.is_multiple_of(len) {
            let level = leaves.trailing_zeros() as usize;
            if let Some(value) = self.levels.get(level).and_then(|nodes| nodes.get(start / len)) {
                return *value;
            }
        }
        if len <= self.leaf_len {
            return blake3::Hasher::new()
                .set_input_offset(start as u64)
                .update(&self.bytes[start..start + len])
                .finalize_non_root();
        }
        let left = left_subtree_len(len as u64) as usize;
        merge_subtrees_non_root(&self.node(start, left), &self.node(start + left, len - left), Mode::Hash)
    }
}

/// The fingerprint's message as of the last fingerprint taken with it, blake3's tree over
/// it, and the version of each entity whose digest the message holds; a fingerprint then
/// costs O(entities changed since), read from the state's [`ChangeLog`].
///
/// A cache belongs to one line of states, each the one before plus events: a state that
/// is thrown away (a batch whose append failed) takes the cache with it, since the
/// positions it used are used again. A cache that finds the state's change log does not
/// go back to its last fingerprint (a state read from a snapshot, or more than
/// [`ChangeLog::CAPACITY`] changes since) compares every entity's version instead, as a
/// cache did before it kept the log.
#[derive(Debug, Clone, Default)]
pub struct FingerprintCache {
    message: TreeHashedMessage,
    roles: Vec<u64>,
    groups: Vec<u64>,
    users: Vec<u64>,
    /// How many changes the state had noted at the last fingerprint.
    noted: Option<u64>,
    /// How many times every entity was re-read: what a test tells the two paths by.
    rebuilds: u64,
}

impl FingerprintCache {
    /// Whether no fingerprint was computed through this cache yet: the next one walks
    /// every entity.
    pub fn is_empty(&self) -> bool {
        self.noted.is_none()
    }

    fn layout(&self) -> Layout {
        Layout { roles: self.roles.len(), groups: self.groups.len(), users: self.users.len() }
    }

    /// Brings the message up to `state` from the changes it noted since the last
    /// fingerprint; false (with nothing changed) when they are not all known.
    fn update(&mut self, state: &State) -> bool {
        let Some(seen) = self.noted else { return false };
        let Some(changes) = state.changes().since(seen) else { return false };
        let (old, new) = (self.layout(), Layout::of(state));
        if new.roles < old.roles || new.groups < old.groups || new.users < old.users {
            return false;
        }
        let mut changed: Vec<Changed> = changes.collect();
        changed.sort_unstable();
        changed.dedup();
        let (mut roles, mut groups, mut users) = (Vec::new(), Vec::new(), Vec::new());
        for change in changed {
            let (found, old_count, list) = match change {
                Changed::Role(created) => (
                    index_created_at(new.roles, created, |i| state.role_at(i).map(|role| role.created().seq)),
                    old.roles,
                    &mut roles,
                ),
                Changed::Group(created) => (
                    index_created_at(new.groups, created, |i| state.group_at(i).map(|group| group.created().seq)),
                    old.groups,
                    &mut groups,
                ),
                Changed::User(created) => (
                    index_created_at(new.users, created, |i| state.user_at(i).map(|user| user.created().seq)),
                    old.users,
                    &mut users,
                ),
            };
            let Some(index) = found else { return false };
            if index < old_count {
                list.push(index);
            }
        }
        if self.apply_changes(state, old, new, &roles, &groups, &users).is_none() {
            // Only an entity missing at an index below the state's own count leads here.
            *self = FingerprintCache::default();
            return false;
        }
        true
    }

    /// Rewrites the digests of the changed entities (indices below the old counts) and
    /// adds the new ones.
    fn apply_changes(
        &mut self,
        state: &State,
        old: Layout,
        new: Layout,
        roles: &[usize],
        groups: &[usize],
        users: &[usize],
    ) -> Option<()> {
        let mut scratch = Encoder::new();
        for &index in roles {
            let role = state.role_at(index)?;
            self.message.write(old.role(index), &digest_of(&mut scratch, role, encode_role));
            self.roles[index] = role.version();
        }
        for &index in groups {
            let group = state.group_at(index)?;
            self.message.write(old.group(index), &digest_of(&mut scratch, group, encode_group));
            self.groups[index] = group.version();
        }
        for &index in users {
            let user = state.user_at(index)?;
            self.message.write(old.user(index), &digest_of(&mut scratch, user, |e, u| encode_user(state, e, u)));
            self.users[index] = user.version();
        }
        if new.roles == old.roles && new.groups == old.groups {
            if new.users > old.users {
                self.message.write(new.users_count(), &(new.users as u64).to_le_bytes());
                for index in old.users..new.users {
                    let user = state.user_at(index)?;
                    self.message
                        .write(new.user(index), &digest_of(&mut scratch, user, |e, u| encode_user(state, e, u)));
                    self.users.push(user.version());
                }
            }
            return Some(());
        }
        // A new role or group moves everything after it: rebuild the message from the first
        // section that grew, copying the digests already there.
        let start = if new.roles != old.roles { old.roles_count() } else { old.groups_count() };
        let bytes = &self.message.bytes;
        let mut tail = Vec::with_capacity(new.user(new.users) - start);
        if new.roles != old.roles {
            tail.extend_from_slice(&(new.roles as u64).to_le_bytes());
            tail.extend_from_slice(&bytes[old.role(0)..old.role(old.roles)]);
            for index in old.roles..new.roles {
                let role = state.role_at(index)?;
                tail.extend_from_slice(&digest_of(&mut scratch, role, encode_role));
                self.roles.push(role.version());
            }
        }
        tail.extend_from_slice(&(new.groups as u64).to_le_bytes());
        tail.extend_from_slice(&bytes[old.group(0)..old.group(old.groups)]);
        for index in old.groups..new.groups {
            let group = state.group_at(index)?;
            tail.extend_from_slice(&digest_of(&mut scratch, group, encode_group));
            self.groups.push(group.version());
        }
        tail.extend_from_slice(&(new.users as u64).to_le_bytes());
        tail.extend_from_slice(&bytes[old.user(0)..old.user(old.users)]);
        for index in old.users..new.users {
            let user = state.user_at(index)?;
            tail.extend_from_slice(&digest_of(&mut scratch, user, |e, u| encode_user(state, e, u)));
            self.users.push(user.version());
        }
        self.message.replace_from(start, &tail);
        Some(())
    }

    /// Rebuilds the message from every entity, re-encoding those whose version is not the
    /// one cached, and re-hashing the leaves that changed.
    fn rebuild(&mut self, state: &State) {
        self.rebuilds += 1;
        let old = self.layout();
        let bytes = &self.message.bytes;
        let mut scratch = Encoder::new();
        let mut message = Vec::with_capacity(Layout::of(state).user(Layout::of(state).users));
        message.extend_from_slice(&(VERSION.len() as u64).to_le_bytes());
        message.extend_from_slice(VERSION);
        let cached = |versions: &[u64], index: usize, version: u64, offset: usize| -> Option<[u8; 32]> {
            (versions.get(index) == Some(&version)).then(|| {
                let mut digest = [0; 32];
                digest.copy_from_slice(&bytes[offset..offset + 32]);
                digest
            })
        };
        let (mut roles, mut groups, mut users) = (Vec::new(), Vec::new(), Vec::new());
        message.extend_from_slice(&(state.entity_counts().0 as u64).to_le_bytes());
        for (index, role) in state.roles_after(0).enumerate() {
            let digest = cached(&self.roles, index, role.version(), old.role(index))
                .unwrap_or_else(|| digest_of(&mut scratch, role, encode_role));
            message.extend_from_slice(&digest);
            roles.push(role.version());
        }
        message.extend_from_slice(&(state.entity_counts().1 as u64).to_le_bytes());
        for (index, group) in state.groups_after(0).enumerate() {
            let digest = cached(&self.groups, index, group.version(), old.group(index))
                .unwrap_or_else(|| digest_of(&mut scratch, group, encode_group));
            message.extend_from_slice(&digest);
            groups.push(group.version());
        }
        message.extend_from_slice(&(state.entity_counts().2 as u64).to_le_bytes());
        // Users are most of the work (seconds at 1M users, from nothing after a snapshot
        // start): their digests are independent, so runs of them are encoded on every
        // core the process may use, and laid out in creation order.
        let all: Vec<&User> = state.users_after(0).collect();
        let runs: Vec<std::ops::Range<usize>> =
            (0..all.len()).step_by(USERS_PER_RUN).map(|start| start..all.len().min(start + USERS_PER_RUN)).collect();
        let digests = crate::log::record::map_on_all_cores(&runs, |run| {
            let mut scratch = Encoder::new();
            run.clone()
                .map(|index| {
                    let user = all[index];
                    cached(&self.users, index, user.version(), old.user(index))
                        .unwrap_or_else(|| digest_of(&mut scratch, user, |e, u| encode_user(state, e, u)))
                })
                .collect::<Vec<[u8; 32]>>()
        });
        for digest in digests.iter().flatten() {
            message.extend_from_slice(digest);
        }
        users.extend(all.iter().map(|user| user.version()));
        (self.roles, self.groups, self.users) = (roles, groups, users);
        self.message.set(message);
    }
}

impl State {
    /// The fingerprint of the permission view: roles and their functions, users with
    /// their state, roles, event access and keys (ids, hashes, times, status), and event
    /// groups with their nesting and events. It is blake3 over the version label and, for
    /// roles, groups and users in turn, their count and each one's digest (blake3 of its
    /// encoding) in creation order.
    ///
    /// Computed from scratch: the reference [`State::fingerprint_cached`] is tested against.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut encoder = Encoder::new();
        let mut scratch = Encoder::new();
        let (roles, groups, users) = self.entity_counts();
        encoder.bytes(VERSION).number(roles as u64);
        for role in self.roles_after(0) {
            encoder.raw(&digest_of(&mut scratch, role, encode_role));
        }
        encoder.number(groups as u64);
        for group in self.groups_after(0) {
            encoder.raw(&digest_of(&mut scratch, group, encode_group));
        }
        encoder.number(users as u64);
        for user in self.users_after(0) {
            encoder.raw(&digest_of(&mut scratch, user, |e, u| encode_user(self, e, u)));
        }
        encoder.finish()
    }

    /// [`State::fingerprint`], re-encoding and re-hashing only what changed since `cache`
    /// last saw this line of states (see [`FingerprintCache`]), and updating it.
    pub fn fingerprint_cached(&self, cache: &mut FingerprintCache) -> [u8; 32] {
        if !cache.update(self) {
            cache.rebuild(self);
        }
        cache.noted = Some(self.changes().noted);
        cache.message.root()
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::super::{Event, EventId, FunctionId, GroupId, KeyId, KeySecret, Position, RoleId, UserId};
    use super::*;

    fn replay(events: &[Event]) -> State {
        let mut state = State::default();
        for (seq, event) in (1..).zip(events) {
            state.apply(Position { seq, at: Timestamp::from_unix_millis(1_800_000_000_000 + seq as i64) }, event);
        }
        state
    }

    fn history() -> Vec<Event> {
        let user = UserId::parse("usr_00000000000000a1").unwrap();
        let role = RoleId::parse("role_00000000000000b1").unwrap();
        let group = GroupId::parse("grp_00000000000000c1").unwrap();
        let mut events = vec![Event::RoleCreated { role_id: role.clone(), description: "API Access".into() }];
        for name in ["api.attendees.read", "api.invoices.read", "api.invoices.write"] {
            events.push(Event::FunctionActivated { role_id: role.clone(), function: FunctionId::parse(name).unwrap() });
        }
        // Many users, so that hash map order differs between two states built alike.
        for n in 0..50 {
            let id = UserId::parse(&format!("usr_{n:016x}")).unwrap();
            events.push(Event::UserCreated { user_id: id.clone(), name: format!("User {n}"), email: None });
            events.push(Event::RoleAssigned { user_id: id, role_id: role.clone() });
        }
        events.extend([
            Event::UserCreated { user_id: user.clone(), name: "Booking app".into(), email: None },
            Event::EventGroupCreated { group_id: group.clone(), name: "EMEA".into(), parent_id: None },
            Event::EventAddedToGroup { group_id: group.clone(), event_id: EventId::parse("ev-1").unwrap() },
            Event::EventAccessSet { user_id: user.clone(), all_events: false, groups: vec![group] },
            Event::KeyGenerated {
                user_id: user,
                key_id: KeyId::parse("key_00000000000000d1").unwrap(),
                key_hash: KeySecret::generate(&mut rand::rng()).hash(),
                expires_at: None,
                replaced_key_id: None,
                replaced_key_valid_until: None,
            },
        ]);
        events
    }

    #[test]
    fn the_same_history_gives_the_same_fingerprint_whatever_the_memory_layout() {
        let events = history();
        let first = replay(&events);
        let second = replay(&events);
        assert_eq!(first.fingerprint(), second.fingerprint());
        let restored: State = postcard::from_bytes(&postcard::to_stdvec(&first).unwrap()).unwrap();
        assert_eq!(restored.fingerprint(), first.fingerprint());
    }

    #[test]
    fn every_change_to_a_permission_changes_the_fingerprint() {
        let events = history();
        let base = replay(&events).fingerprint();
        let user = UserId::parse("usr_0000000000000001").unwrap();
        let role = RoleId::parse("role_00000000000000b1").unwrap();
        let group = GroupId::parse("grp_00000000000000c1").unwrap();
        let changes = [
            Event::UserDisabled { user_id: user.clone() },
            Event::RoleUnassigned { user_id: user.clone(), role_id: role.clone() },
            Event::FunctionDeactivated { role_id: role, function: FunctionId::parse("api.invoices.write").unwrap() },
            Event::EventAccessSet { user_id: user, all_events: true, groups: vec![] },
            Event::EventAddedToGroup { group_id: group, event_id: EventId::parse("ev-2").unwrap() },
        ];
        let mut seen = vec![base];
        for change in changes {
            let mut changed = events.clone();
            changed.push(change.clone());
            let fingerprint = replay(&changed).fingerprint();
            assert!(!seen.contains(&fingerprint), "{change:?} left the fingerprint unchanged");
            seen.push(fingerprint);
        }
    }

    /// blake3 of the message however it was edited, for leaves of one, two and sixteen
    /// chunks, across sizes that make one chunk, a partial leaf, and many leaves.
    #[test]
    fn the_tree_hashed_message_hashes_like_blake3_after_any_edits() {
        let mut rng = StdRng::seed_from_u64(11);
        for leaf_len in [blake3::CHUNK_LEN, 2 * blake3::CHUNK_LEN, TreeHashedMessage::LEAF_LEN] {
            for _ in 0..40 {
                let mut message = TreeHashedMessage::with_leaf_len(leaf_len);
                for _ in 0..12 {
                    let len = message.bytes.len();
                    match rng.random_range(0..4) {
                        0 => {
                            let bytes: Vec<u8> = (0..rng.random_range(0..70_000)).map(|_| rng.random()).collect();
                            message.set(bytes);
                        }
                        1 => {
                            let at = rng.random_range(0..=len);
                            let tail: Vec<u8> = (0..rng.random_range(0..40_000)).map(|_| rng.random()).collect();
                            message.replace_from(at, &tail);
                        }
                        _ => {
                            for _ in 0..rng.random_range(1..6) {
                                let at = rng.random_range(0..=len);
                                let data: Vec<u8> = (0..rng.random_range(1..3000)).map(|_| rng.random()).collect();
                                message.write(at, &data);
                            }
                        }
                    }
                    let expected = *blake3::hash(&message.bytes).as_bytes();
                    assert_eq!(message.root(), expected, "{} bytes, leaves of {leaf_len}", message.bytes.len());
                }
            }
        }
    }

    /// Random events over pools large enough that the message spans many leaves.
    fn random_event(rng: &mut StdRng, state: &State) -> Event {
        let (roles, groups, users) = state.entity_counts();
        let user =
            |rng: &mut StdRng| UserId::parse(&format!("usr_{:016x}", rng.random_range(0..users.max(1)))).unwrap();
        let role =
            |rng: &mut StdRng| RoleId::parse(&format!("role_{:016x}", rng.random_range(0..roles.max(1)))).unwrap();
        let group =
            |rng: &mut StdRng| GroupId::parse(&format!("grp_{:016x}", rng.random_range(0..groups.max(1)))).unwrap();
        let event_id = |rng: &mut StdRng| EventId::parse(&format!("ev-{}", rng.random_range(0..20))).unwrap();
        let key = |rng: &mut StdRng| KeyId::parse(&format!("key_{:016x}", rng.random_range(0..1u64 << 40))).unwrap();
        let at = Timestamp::from_unix_millis(1_800_000_000_000);
        match rng.random_range(0..100) {
            0..30 => Event::UserCreated {
                user_id: UserId::parse(&format!("usr_{users:016x}")).unwrap(),
                name: format!("User {users}"),
                email: None,
            },
            30..33 => Event::RoleCreated {
                role_id: RoleId::parse(&format!("role_{roles:016x}")).unwrap(),
                description: format!("Role {roles}"),
            },
            33..35 => Event::EventGroupCreated {
                group_id: GroupId::parse(&format!("grp_{groups:016x}")).unwrap(),
                name: format!("Group {groups}"),
                parent_id: (groups > 0 && rng.random_bool(0.5)).then(|| group(rng)),
            },
            35..40 => {
                Event::FunctionActivated { role_id: role(rng), function: FunctionId::parse("api.events.read").unwrap() }
            }
            40..43 => Event::FunctionDeactivated {
                role_id: role(rng),
                function: FunctionId::parse("api.events.read").unwrap(),
            },
            43..55 => Event::RoleAssigned { user_id: user(rng), role_id: role(rng) },
            55..58 => Event::RoleUnassigned { user_id: user(rng), role_id: role(rng) },
            58..62 => Event::UserDisabled { user_id: user(rng) },
            62..65 => Event::UserEnabled { user_id: user(rng) },
            65..69 => {
                Event::EventAccessSet { user_id: user(rng), all_events: rng.random_bool(0.3), groups: vec![group(rng)] }
            }
            69..73 => Event::EventAddedToGroup { group_id: group(rng), event_id: event_id(rng) },
            73..75 => Event::EventRemovedFromGroup { group_id: group(rng), event_id: event_id(rng) },
            75..90 => Event::KeyGenerated {
                user_id: user(rng),
                key_id: key(rng),
                key_hash: KeySecret::generate(rng).hash(),
                expires_at: rng.random_bool(0.3).then(|| at.plus_seconds(86_400)),
                replaced_key_id: None,
                replaced_key_valid_until: rng.random_bool(0.5).then(|| at.plus_seconds(600)),
            },
            90..95 => {
                let user_id = user(rng);
                let key_id = state
                    .user(&user_id)
                    .and_then(|user| user.current_key())
                    .and_then(|hash| state.key(&hash))
                    .map_or_else(|| key(rng), |key| key.id().clone());
                Event::KeyRevoked { user_id, key_id }
            }
            95..98 => Event::KeyUsageIntervalRecorded { from: at, to: at, keys: vec![] },
            _ => Event::AdministratorRecovered {
                user_id: UserId::parse(&format!("usr_{users:016x}")).unwrap(),
                name: format!("Recovered {users}"),
                role_id: RoleId::parse(&format!("role_{roles:016x}")).unwrap(),
                role_description: format!("Recovery {roles}"),
                key_id: key(rng),
                key_hash: KeySecret::generate(rng).hash(),
                reason: "Lost".into(),
            },
        }
    }

    /// Issue #11 (start-up): a fingerprint rebuilt from every entity encodes the users in
    /// runs on every core the process may use (two threads or more from 128 runs of
    /// `USERS_PER_RUN` users, given two cores), and lays their digests out in creation
    /// order: from nothing, and from a cache whose digests are reused for the users whose
    /// version did not move, it equals the fingerprint from scratch.
    #[test]
    fn a_fingerprint_rebuilt_on_several_cores_equals_the_one_from_scratch() {
        let users = 130 * USERS_PER_RUN + 7;
        let role = RoleId::parse("role_00000000000000b1").unwrap();
        let mut events = vec![Event::RoleCreated { role_id: role.clone(), description: "API Access".into() }];
        events.push(Event::FunctionActivated {
            role_id: role.clone(),
            function: FunctionId::parse("api.attendees.read").unwrap(),
        });
        let mut rng = StdRng::seed_from_u64(11);
        for n in 0..users as u64 {
            let id = UserId::parse(&format!("usr_{n:016x}")).unwrap();
            events.push(Event::UserCreated { user_id: id.clone(), name: format!("User {n}"), email: None });
            if n % 3 == 0 {
                events.push(Event::RoleAssigned { user_id: id.clone(), role_id: role.clone() });
                events.push(Event::KeyGenerated {
                    user_id: id,
                    key_id: KeyId::parse(&format!("key_{n:016x}")).unwrap(),
                    key_hash: KeySecret::generate(&mut rng).hash(),
                    expires_at: None,
                    replaced_key_id: None,
                    replaced_key_valid_until: None,
                });
            }
        }
        let mut state = replay(&events);
        let mut cache = FingerprintCache::default();
        assert_eq!(state.fingerprint_cached(&mut cache), state.fingerprint(), "from nothing");
        // Users changed at both ends and in the middle; a state read back from a snapshot
        // has no change log, so the cache is rebuilt, reusing the digests of the others.
        for (seq, n) in (events.len() as u64 + 1..).zip([0, 1, users as u64 / 2, users as u64 - 1]) {
            let user_id = UserId::parse(&format!("usr_{n:016x}")).unwrap();
            state.apply(
                Position { seq, at: Timestamp::from_unix_millis(1_900_000_000_000) },
                &Event::UserDisabled { user_id },
            );
        }
        let state: State = postcard::from_bytes(&postcard::to_stdvec(&state).unwrap()).unwrap();
        let rebuilds = cache.rebuilds;
        assert_eq!(state.fingerprint_cached(&mut cache), state.fingerprint(), "from a cache");
        assert_eq!(cache.rebuilds, rebuilds + 1, "the restored state was rebuilt");
    }

    /// Issue #11: the cached fingerprint, updated from what `apply` noted, equals the one
    /// computed from scratch over random histories: changes of every kind, new users (which
    /// append), new roles and groups (which move what follows), a state restored from a
    /// snapshot (whose change log starts empty) and more changes than the log keeps.
    #[test]
    fn the_cached_fingerprint_equals_the_fingerprint_from_scratch_over_random_histories() {
        for seed in 0..6 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut state = State::default();
            let mut cache = FingerprintCache::default();
            let mut seq = 0;
            let mut apply = |state: &mut State, event: &Event| {
                seq += 1;
                state.apply(Position { seq, at: Timestamp::from_unix_millis(1_800_000_000_000 + seq as i64) }, event);
            };
            for step in 0..60 {
                let changes = if step == 0 { 6_000 } else { rng.random_range(0..40) };
                for _ in 0..changes {
                    let event = random_event(&mut rng, &state);
                    apply(&mut state, &event);
                }
                if step == 30 {
                    state = postcard::from_bytes(&postcard::to_stdvec(&state).unwrap()).unwrap();
                }
                if step == 45 {
                    let user = UserId::parse("usr_0000000000000001").unwrap();
                    for _ in 0..ChangeLog::CAPACITY / 2 + 1 {
                        apply(&mut state, &Event::UserDisabled { user_id: user.clone() });
                        apply(&mut state, &Event::UserEnabled { user_id: user.clone() });
                    }
                }
                let rebuilds = cache.rebuilds;
                assert_eq!(state.fingerprint_cached(&mut cache), state.fingerprint(), "seed {seed}, step {step}");
                let expected_rebuilds = rebuilds + u64::from(matches!(step, 0 | 30 | 45));
                assert_eq!(
                    cache.rebuilds, expected_rebuilds,
                    "only a new cache, a restored state or an overflow re-reads every entity (step {step})"
                );
            }
            let (roles, groups, users) = state.entity_counts();
            assert!(roles > 100 && groups > 50 && users > 1_500, "{roles} roles, {groups} groups, {users} users");
            assert!(cache.message.bytes.len() > 3 * TreeHashedMessage::LEAF_LEN, "the message spans several leaves");
        }
    }
}
