//! The key check: may this key do this function (on this event)?
//!
//! A pure function of the permission view and the time. It allocates nothing and makes a
//! handful of hash lookups, because apps pay for it on every request they serve.

use super::{CheckIndex, FunctionId, Key, KeyHash, KeyId, KeyState, State, Timestamp, UserCheck, UserId};

/// What a check reads: the keys, the users' check entries and the events' groups. The
/// running service checks against its [`CheckIndex`], which holds only durable state;
/// tests and the command line check against a [`State`].
pub trait CheckView {
    /// A key by the hash of its secret.
    fn key(&self, hash: &KeyHash) -> Option<&Key>;
    /// What a key check needs of the user in `slot`.
    fn user_check(&self, slot: u32) -> Option<&UserCheck>;
    /// Whether `user` may access `event` through the groups they were granted.
    fn may_access_event(&self, user: &UserCheck, event: &str) -> bool;
    /// Where `key` stands at `now`, the key policy included ([`State::key_state`]).
    fn key_state(&self, key: &Key, now: Timestamp) -> KeyState;
}

impl CheckView for State {
    fn key(&self, hash: &KeyHash) -> Option<&Key> {
        State::key(self, hash)
    }
    fn user_check(&self, slot: u32) -> Option<&UserCheck> {
        State::user_check(self, slot)
    }
    fn may_access_event(&self, user: &UserCheck, event: &str) -> bool {
        State::may_access_event(self, user, event)
    }
    fn key_state(&self, key: &Key, now: Timestamp) -> KeyState {
        State::key_state(self, key, now)
    }
}

impl CheckView for CheckIndex {
    fn key(&self, hash: &KeyHash) -> Option<&Key> {
        CheckIndex::key(self, hash)
    }
    fn user_check(&self, slot: u32) -> Option<&UserCheck> {
        CheckIndex::user_check(self, slot)
    }
    fn may_access_event(&self, user: &UserCheck, event: &str) -> bool {
        CheckIndex::may_access_event(self, user, event)
    }
    fn key_state(&self, key: &Key, now: Timestamp) -> KeyState {
        CheckIndex::key_state(self, key, now)
    }
}

/// Why a check was allowed or refused. The names are part of the HTTP contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The key may do the function (on the event).
    Granted,
    /// The string is not a keyledger key: wrong prefix, length, characters or checksum.
    MalformedKey,
    /// No such key, or a key that was replaced (and whose grace period is over).
    UnknownKey,
    /// The key was revoked.
    RevokedKey,
    /// The key is past its expiry time.
    ExpiredKey,
    /// The key's user is disabled.
    UserDisabled,
    /// None of the user's roles has the function active.
    FunctionNotGranted,
    /// The user may not access the event.
    EventNotAccessible,
    /// The function is event-scoped and the check names no event, but the user's event
    /// access is limited to event groups: which event it is decides the answer.
    EventRequired,
    /// The function is not in the catalogue.
    UnknownFunction,
    /// The key is older than the key policy's `max_lifetime_days`: blocked, not revoked,
    /// so raising or clearing the limit lets it through again.
    KeyTooOld,
    /// The key has no recorded use for the key policy's `max_unused_days`: blocked until
    /// it is rotated.
    KeyDormant,
}

impl Reason {
    /// The reason as clients see it, such as `function_not_granted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Granted => "granted",
            Reason::MalformedKey => "malformed_key",
            Reason::UnknownKey => "unknown_key",
            Reason::RevokedKey => "revoked_key",
            Reason::ExpiredKey => "expired_key",
            Reason::UserDisabled => "user_disabled",
            Reason::FunctionNotGranted => "function_not_granted",
            Reason::EventNotAccessible => "event_not_accessible",
            Reason::EventRequired => "event_required",
            Reason::UnknownFunction => "unknown_function",
            Reason::KeyTooOld => "key_too_old",
            Reason::KeyDormant => "key_dormant",
        }
    }

    /// Whether the key itself failed (as opposed to the request it made): a gateway
    /// answers these with 401 and the others with 403.
    pub fn is_authentication_failure(self) -> bool {
        matches!(
            self,
            Reason::MalformedKey
                | Reason::UnknownKey
                | Reason::RevokedKey
                | Reason::ExpiredKey
                | Reason::UserDisabled
                | Reason::KeyTooOld
                | Reason::KeyDormant
        )
    }

    /// Whether a check refused for this reason still counts as a use of the key (its
    /// `last_used_at`, once recorded). Every refusal of a known key does, except
    /// `key_dormant`: a dormant key's refused attempts must not make it look used and let
    /// it through again; it stays blocked until it is rotated.
    pub fn counts_as_use(self) -> bool {
        self != Reason::KeyDormant
    }
}

/// The answer to a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Why.
    pub reason: Reason,
    /// The key's user, when the key is known.
    pub user_id: Option<&'a UserId>,
    /// The key's public id, when the key is known.
    pub key_id: Option<&'a KeyId>,
    /// The hash of the key, when the key is known: what its usage is counted by.
    pub key_hash: Option<KeyHash>,
}

impl Decision<'_> {
    /// Whether the check passed.
    pub fn allowed(&self) -> bool {
        self.reason == Reason::Granted
    }
}

/// A check's question.
#[derive(Debug, Clone, Copy)]
pub struct CheckRequest<'a> {
    /// The key as presented.
    pub key: &'a str,
    /// The function id as presented.
    pub function: &'a str,
    /// The platform event, if the check names one.
    pub event_id: Option<&'a str>,
}

/// Decides a check. The key is judged first (is it a key, is it known, does it work, by
/// [`State::key_state`], which includes the key policy),
/// then the request (is the function granted, is the event accessible).
///
/// A check that names an event tests access to it, whatever the function's scope. A
/// check that names none passes an account-wide function, and an event-scoped one only
/// for a user with access to every event; anyone else is refused as
/// [`Reason::EventRequired`], since access to some events says nothing of the one the
/// app will touch.
pub fn check<'a, V: CheckView + ?Sized>(state: &'a V, request: CheckRequest<'_>, now: Timestamp) -> Decision<'a> {
    let Ok(hash) = KeyHash::of_presented(request.key) else {
        return Decision { reason: Reason::MalformedKey, user_id: None, key_id: None, key_hash: None };
    };
    check_key_hash(state, hash, request.function, request.event_id, now)
}

/// [`check`] of a key already known by its hash: what a long-lived request (the change
/// feed) asks again, later, of the key it was opened with, without keeping the secret.
#[inline]
pub fn check_key_hash<'a, V: CheckView + ?Sized>(
    state: &'a V,
    hash: KeyHash,
    function: &str,
    event_id: Option<&str>,
    now: Timestamp,
) -> Decision<'a> {
    let refuse = |reason| Decision { reason, user_id: None, key_id: None, key_hash: None };
    let Some(key) = state.key(&hash) else {
        return refuse(Reason::UnknownKey);
    };
    let decided =
        |reason| Decision { reason, user_id: Some(key.user_id()), key_id: Some(key.id()), key_hash: Some(hash) };
    // A replaced key past its grace period is refused as if unknown: nothing of it shows.
    match state.key_state(key, now).refusal() {
        None => {}
        Some(Reason::UnknownKey) => return refuse(Reason::UnknownKey),
        Some(reason) => return decided(reason),
    }
    let Some(user) = state.user_check(key.user_slot()) else {
        return refuse(Reason::UnknownKey);
    };
    if !user.is_enabled() {
        return decided(Reason::UserDisabled);
    }
    let Ok(function) = FunctionId::parse(function) else {
        return decided(Reason::UnknownFunction);
    };
    if !user.functions().contains(function) {
        return decided(Reason::FunctionNotGranted);
    }
    match event_id {
        Some(event) if !state.may_access_event(user, event) => decided(Reason::EventNotAccessible),
        None if function.is_event_scoped() && !user.has_all_events() => decided(Reason::EventRequired),
        _ => decided(Reason::Granted),
    }
}
