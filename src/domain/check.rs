//! The key check: may this key do this function (on this event)?
//!
//! A pure function of the permission view and the time. It allocates nothing; against the
//! service's check index it reads one slot of a table (and an event's groups), because
//! apps pay for it on every request they serve.

use super::{FunctionId, FunctionSet, KeyHash, KeyId, State, Timestamp, UserId};

/// What a check reads: a key and its user, by the key's hash, and the groups that hold an
/// event. The running service checks against its [`CheckIndex`](super::CheckIndex), which
/// holds only durable state and answers from one slot of a table; tests, history and the
/// command line check against a [`State`].
pub trait CheckView {
    /// What a check needs of the key with this hash and of its user, the key judged at
    /// `now` ([`State::key_state`], the key policy included); `None` for no such key.
    fn find_key(&self, hash: &KeyHash, now: Timestamp) -> Option<KeyFacts<'_>>;
    /// The sorted slots of every group that holds `event`, directly or through a group
    /// nested below; empty for an event in no group.
    fn reachable_groups(&self, event: &str) -> &[u32];
}

/// What a check needs of a key, from a [`CheckView`].
#[derive(Debug, Clone)]
pub struct KeyFacts<'a> {
    /// The key's user.
    pub user_id: &'a UserId,
    /// The key's public id.
    pub key_id: &'a KeyId,
    /// Why the key's state refuses it at the time asked, or `None` if it passes
    /// ([`KeyState::refusal`](super::KeyState::refusal)).
    pub refusal: Option<Reason>,
    /// What a check needs of the key's user; `None` if the view has no entry for it.
    pub user: Option<UserFacts<'a>>,
}

/// What a check needs of a key's user ([`UserCheck`](super::UserCheck)).
#[derive(Debug, Clone)]
pub struct UserFacts<'a> {
    /// Whether the user's keys may pass checks.
    pub enabled: bool,
    /// The functions of all the user's roles.
    pub functions: FunctionSet,
    /// Whether the user may access every event.
    pub all_events: bool,
    /// The slots of the groups the user was granted, sorted.
    pub groups: GrantedGroups<'a>,
}

/// The sorted slots of the groups a user was granted: one held inline, or a slice.
#[derive(Debug, Clone, Copy)]
pub enum GrantedGroups<'a> {
    /// Exactly one group.
    One(u32),
    /// Any number of groups, sorted.
    Sorted(&'a [u32]),
}

impl GrantedGroups<'_> {
    /// The slots, sorted.
    pub fn as_slice(&self) -> &[u32] {
        match self {
            GrantedGroups::One(group) => std::slice::from_ref(group),
            GrantedGroups::Sorted(groups) => groups,
        }
    }
}

impl CheckView for State {
    fn find_key(&self, hash: &KeyHash, now: Timestamp) -> Option<KeyFacts<'_>> {
        let key = self.key(hash)?;
        let user = self.user_check(key.user_slot()).map(|user| UserFacts {
            enabled: user.is_enabled(),
            functions: user.functions(),
            all_events: user.has_all_events(),
            groups: GrantedGroups::Sorted(user.group_slots()),
        });
        Some(KeyFacts { user_id: key.user_id(), key_id: key.id(), refusal: self.key_state(key, now).refusal(), user })
    }

    fn reachable_groups(&self, event: &str) -> &[u32] {
        State::reachable_groups(self, event)
    }
}

/// Whether two sorted lists of group slots share one: the shorter is looked up in the
/// longer.
#[inline]
pub(crate) fn share_a_group(a: &[u32], b: &[u32]) -> bool {
    let (few, many) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    few.iter().any(|slot| many.binary_search(slot).is_ok())
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
    let Some(key) = state.find_key(&hash, now) else {
        return refuse(Reason::UnknownKey);
    };
    let decided =
        |reason| Decision { reason, user_id: Some(key.user_id), key_id: Some(key.key_id), key_hash: Some(hash) };
    // A replaced key past its grace period is refused as if unknown: nothing of it shows.
    match key.refusal {
        None => {}
        Some(Reason::UnknownKey) => return refuse(Reason::UnknownKey),
        Some(reason) => return decided(reason),
    }
    let Some(user) = &key.user else {
        return refuse(Reason::UnknownKey);
    };
    if !user.enabled {
        return decided(Reason::UserDisabled);
    }
    let Ok(function) = FunctionId::parse(function) else {
        return decided(Reason::UnknownFunction);
    };
    if !user.functions.contains(function) {
        return decided(Reason::FunctionNotGranted);
    }
    match event_id {
        Some(event) if !user.all_events && !share_a_group(user.groups.as_slice(), state.reachable_groups(event)) => {
            decided(Reason::EventNotAccessible)
        }
        None if function.is_event_scoped() && !user.all_events => decided(Reason::EventRequired),
        _ => decided(Reason::Granted),
    }
}
