//! Deciding the records of what keys did: refused admin requests and key usage. They change
//! no permission.

use super::super::{DomainError, Event, FunctionId, KeyHash, State};
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
/// no check.
pub(super) fn key_usage(state: &State, usage: Vec<KeyUsage>) -> Result<Vec<Event>, DomainError> {
    Ok(usage
        .into_iter()
        .filter(|usage| usage.allowed > 0 || usage.refused > 0)
        .filter_map(|usage| {
            let key = state.key(&usage.key_hash)?;
            Some(Event::KeyUsageRecorded {
                user_id: key.user_id().clone(),
                key_id: key.id().clone(),
                allowed: usage.allowed,
                refused: usage.refused,
                first_used_at: usage.first_used_at.min(usage.last_used_at),
                last_used_at: usage.last_used_at,
            })
        })
        .collect())
}
