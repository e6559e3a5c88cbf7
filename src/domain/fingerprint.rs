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

use super::{EventAccess, FunctionSet, Key, KeyStatus, State, Timestamp};

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
        self.number(1).text(key.id().as_str()).time(Some(key.created_at())).time(key.expires_at());
        match key.status() {
            KeyStatus::Active => self.number(0),
            KeyStatus::Replaced { valid_until } => self.number(1).time(Some(valid_until)),
            KeyStatus::Revoked { at } => self.number(2).time(Some(at)),
        }
    }
}

/// Each entity's digest as of its version, by creation order, so that a fingerprint
/// re-encodes only the entities changed since the last one: every change to what an
/// entity's digest covers moves the entity's `version` (a key's revocation or rotation
/// moves its user's).
///
/// A cache belongs to one line of states, each the one before plus events: a state that
/// is thrown away (a batch whose append failed) takes the cache with it, since the
/// positions it used are used again.
#[derive(Debug, Clone, Default)]
pub struct FingerprintCache {
    roles: Vec<Cached>,
    groups: Vec<Cached>,
    users: Vec<Cached>,
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    version: u64,
    digest: [u8; 32],
}

/// Writes the count, then each entity's digest, from `cache` when its version is the
/// cached one and freshly encoded otherwise.
fn digests<'a, T: 'a>(
    out: &mut Encoder,
    scratch: &mut Encoder,
    cache: &mut Vec<Cached>,
    entities: Vec<&'a T>,
    version: impl Fn(&T) -> u64,
    encode: impl Fn(&mut Encoder, &T),
) {
    out.number(entities.len() as u64);
    for (index, entity) in entities.into_iter().enumerate() {
        let version = version(entity);
        let digest = match cache.get(index) {
            Some(cached) if cached.version == version => cached.digest,
            _ => {
                encode(scratch, entity);
                let fresh = Cached { version, digest: scratch.take() };
                match cache.get_mut(index) {
                    Some(slot) => *slot = fresh,
                    None => cache.push(fresh),
                }
                fresh.digest
            }
        };
        out.raw(&digest);
    }
}

impl State {
    /// The fingerprint of the permission view: roles and their functions, users with
    /// their state, roles, event access and keys (ids, hashes, times, status), and event
    /// groups with their nesting and events. It is blake3 over the version label and, for
    /// roles, groups and users in turn, their count and each one's digest (blake3 of its
    /// encoding) in creation order.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint_cached(&mut FingerprintCache::default())
    }

    /// [`State::fingerprint`], re-encoding only the entities whose version is not the one
    /// `cache` holds, and updating it.
    pub fn fingerprint_cached(&self, cache: &mut FingerprintCache) -> [u8; 32] {
        let mut encoder = Encoder::new();
        let mut scratch = Encoder::new();
        encoder.bytes(VERSION);
        digests(
            &mut encoder,
            &mut scratch,
            &mut cache.roles,
            self.roles_after(0).collect(),
            |role| role.version(),
            |encoder, role| {
                encoder.text(role.id().as_str()).text(role.description()).functions(role.functions());
            },
        );
        digests(
            &mut encoder,
            &mut scratch,
            &mut cache.groups,
            self.groups_after(0).collect(),
            |group| group.version(),
            |encoder, group| {
                encoder.text(group.id().as_str()).text(group.name());
                encoder.text(group.parent().map_or("", |parent| parent.as_str()));
                encoder.list(group.events().iter(), |encoder, event| {
                    encoder.text(event.as_str());
                });
            },
        );
        digests(
            &mut encoder,
            &mut scratch,
            &mut cache.users,
            self.users_after(0).collect(),
            |user| user.version(),
            |encoder, user| {
                encoder.text(user.id().as_str()).text(user.name()).text(user.email().unwrap_or(""));
                encoder.number(u64::from(user.is_enabled()));
                encoder.list(user.roles().iter(), |encoder, role| {
                    encoder.text(role.as_str());
                });
                match user.event_access() {
                    EventAccess::AllEvents => encoder.number(1),
                    EventAccess::Groups(groups) => encoder.number(0).list(groups.iter(), |encoder, group| {
                        encoder.text(group.as_str());
                    }),
                };
                for hash in [user.current_key(), user.grace_key()] {
                    match hash {
                        Some(hash) => encoder.number(1).raw(hash.as_bytes()),
                        None => encoder.number(0),
                    };
                    encoder.key(hash.and_then(|hash| self.key(&hash)));
                }
            },
        );
        encoder.finish()
    }
}

#[cfg(test)]
mod tests {
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
}
