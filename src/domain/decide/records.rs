//! Deciding the records of what keys did: refused admin requests and key usage. They change
//! no permission.

use super::super::{
    DomainError, Event, FunctionId, FunctionUse, Key, KeyHash, KeyId, KeyUse, MAX_KEYS_PER_USAGE_RECORD, Resource,
    State, Timestamp, UserId,
};
use super::{KeyUsage, MAX_DENIAL_TARGET_CHARS};

/// Records an admin request refused for a missing function, unless the key is no longer
/// known.
pub(super) fn admin_access_denied(
    state: &State,
    key_hash: KeyHash,
    operation: String,
    function: FunctionId,
    target: Option<String>,
    suppressed: u32,
) -> Result<Vec<Event>, DomainError> {
    Ok(state.key(&key_hash).map_or_else(Vec::new, |key| {
        vec![Event::AdminAccessDenied {
            user_id: key.user_id().clone(),
            key_id: key.id().clone(),
            operation,
            function,
            target: target.map(|target| target.chars().take(MAX_DENIAL_TARGET_CHARS).collect()),
            suppressed,
        }]
    }))
}

/// Records the checks of keys over an interval, skipping keys no longer known and keys with
/// no check: one `KeyUsageIntervalRecorded` per [`MAX_KEYS_PER_USAGE_RECORD`] keys (one for
/// any interval with fewer), each key's entry sorted by user and key id, so that the log
/// grows by a number of records that does not depend on how many keys were used.
pub(super) fn key_usage(state: &State, usage: Vec<KeyUsage>) -> Result<Vec<Event>, DomainError> {
    let mut known: Vec<(&Key, KeyUsage)> = usage
        .into_iter()
        .filter(|usage| usage.allowed > 0 || usage.refused > 0)
        .filter_map(|usage| Some((state.key(&usage.key_hash)?, usage)))
        .collect();
    known.sort_unstable_by(|(a, _), (b, _)| (a.user_id(), a.id()).cmp(&(b.user_id(), b.id())));
    Ok(known.chunks(MAX_KEYS_PER_USAGE_RECORD).map(interval_record).collect())
}

/// One record of the usage of at most [`MAX_KEYS_PER_USAGE_RECORD`] keys.
fn interval_record(keys: &[(&Key, KeyUsage)]) -> Event {
    let span = |usage: &KeyUsage| (usage.first_used_at.min(usage.last_used_at), usage.last_used_at);
    let from = keys.iter().map(|(_, usage)| span(usage).0).min().unwrap_or(Timestamp::from_unix_millis(0));
    let to = keys.iter().map(|(_, usage)| span(usage).1).max().unwrap_or(from);
    let since_from = |at: Timestamp| u64::try_from(at.unix_millis().saturating_sub(from.unix_millis())).unwrap_or(0);
    let keys = keys
        .iter()
        .map(|(key, usage)| {
            let (first, last) = span(usage);
            KeyUse {
                user_id: key.user_id().clone(),
                key_id: key.id().clone(),
                allowed: usage.allowed,
                refused: usage.refused,
                first_after: since_from(first),
                last_after: since_from(last),
                functions: Some(
                    usage
                        .functions
                        .iter()
                        .map(|&(function, passed, last)| FunctionUse(function, passed, since_from(last)))
                        .collect(),
                ),
            }
        })
        .collect();
    Event::KeyUsageIntervalRecorded { from, to, keys }
}

/// Records a lookup of a key of `user_id`. The key may be one the view has forgotten (a
/// key replaced long ago), but its user is never forgotten.
pub(super) fn key_lookup(state: &State, user_id: UserId, key_id: KeyId) -> Result<Vec<Event>, DomainError> {
    if state.user(&user_id).is_none() {
        return Err(DomainError::NotFound { resource: Resource::User, id: user_id.to_string() });
    }
    Ok(vec![Event::KeyLookedUp { user_id, key_id }])
}
