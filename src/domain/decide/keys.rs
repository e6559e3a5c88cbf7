//! Deciding the commands on keys: generating (and rotating), importing and revoking them.

use super::super::{DomainError, Event, KeyHash, KeyId, State, Timestamp, UserId, may_skip_expiry};
use super::{Context, MAX_GRACE_SECONDS, find_user, refuse_self};

/// Generates a user's key, replacing the current one, which keeps working for the grace
/// period asked for (never past its own expiry).
pub(super) fn generate(
    state: &State,
    context: &Context,
    user_id: UserId,
    key_id: KeyId,
    key_hash: KeyHash,
    expires_at: Option<Timestamp>,
    grace_seconds: Option<u64>,
) -> Result<Vec<Event>, DomainError> {
    let user = find_user(state, &user_id)?;
    if expires_at.is_some_and(|expiry| expiry <= context.now) {
        return Err(DomainError::ExpiryInThePast);
    }
    // The key policy's `require_expiry`, save for administrators (see `domain::policy`).
    if expires_at.is_none() && state.key_policy().require_expiry() && !may_skip_expiry(state.functions_of(user)) {
        return Err(DomainError::ExpiryRequired);
    }
    if grace_seconds.is_some_and(|grace| grace > MAX_GRACE_SECONDS) {
        return Err(DomainError::GracePeriodTooLong { max: MAX_GRACE_SECONDS });
    }
    let replaced = user.current_key().and_then(|hash| state.key(&hash));
    let replaced_key_valid_until = match (replaced, grace_seconds) {
        (Some(replaced), Some(grace)) if grace > 0 => {
            let end_of_grace = context.now.plus_seconds(grace);
            // Grace never extends a key past its own expiry.
            Some(replaced.expires_at().map_or(end_of_grace, |expiry| expiry.min(end_of_grace)))
        }
        _ => None,
    };
    Ok(vec![Event::KeyGenerated {
        user_id,
        key_id,
        key_hash,
        expires_at,
        replaced_key_id: replaced.map(|key| key.id().clone()),
        replaced_key_valid_until,
    }])
}

/// Imports a legacy key for a user, replacing the current one exactly as [`generate`]
/// does (grace period, expiry, the key policy's `require_expiry`); only the event differs,
/// `KeyImported`, which marks the key legacy.
pub(super) fn import(
    state: &State,
    context: &Context,
    user_id: UserId,
    key_id: KeyId,
    key_hash: KeyHash,
    expires_at: Option<Timestamp>,
    grace_seconds: Option<u64>,
) -> Result<Vec<Event>, DomainError> {
    if state.key(&key_hash).is_some() {
        return Err(DomainError::KeyAlreadyKnown);
    }
    let generated = generate(state, context, user_id, key_id, key_hash, expires_at, grace_seconds)?;
    Ok(generated
        .into_iter()
        .map(|event| match event {
            Event::KeyGenerated {
                user_id,
                key_id,
                key_hash,
                expires_at,
                replaced_key_id,
                replaced_key_valid_until,
            } => {
                Event::KeyImported { user_id, key_id, key_hash, expires_at, replaced_key_id, replaced_key_valid_until }
            }
            other => other,
        })
        .collect())
}

/// Revokes a user's keys (not one's own): the current key and the one in its grace period,
/// each unless already revoked or past its grace period (`KeyState::is_revocable`).
pub(super) fn revoke(state: &State, context: &Context, user_id: UserId) -> Result<Vec<Event>, DomainError> {
    refuse_self(context, &user_id, "revoke your own key; generate a new one instead")?;
    let user = find_user(state, &user_id)?;
    let still_working = |hash: KeyHash| state.key(&hash).filter(|key| state.key_state(key, context.now).is_revocable());
    let events: Vec<Event> = [user.current_key(), user.grace_key()]
        .into_iter()
        .flatten()
        .filter_map(still_working)
        .map(|key| Event::KeyRevoked { user_id: user_id.clone(), key_id: key.id().clone() })
        .collect();
    if events.is_empty() {
        return Err(DomainError::NoKey { user_id });
    }
    Ok(events)
}
