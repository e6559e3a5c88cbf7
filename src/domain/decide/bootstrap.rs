//! Deciding the bootstrap and the recovery of an administrator: the commands only the
//! system sends.

use super::super::{DomainError, Event, FunctionSet, KeyHash, KeyId, RecoveryReason, RoleId, State, UserId};
use super::Context;

/// Creates the first administrator: a user, a role with every admin function, the
/// assignment and a key. Only on an empty ledger.
pub(super) fn bootstrap(
    state: &State,
    user_id: UserId,
    role_id: RoleId,
    key_id: KeyId,
    key_hash: KeyHash,
) -> Result<Vec<Event>, DomainError> {
    if state.head() != 0 {
        return Err(DomainError::AlreadyInitialised);
    }
    let mut events = vec![
        Event::UserCreated { user_id: user_id.clone(), name: "Administrator".to_owned(), email: None },
        Event::RoleCreated { role_id: role_id.clone(), description: "Administrator".to_owned() },
    ];
    events.extend(
        FunctionSet::all_admin().iter().map(|function| Event::FunctionActivated { role_id: role_id.clone(), function }),
    );
    events.push(Event::RoleAssigned { user_id: user_id.clone(), role_id });
    events.push(Event::KeyGenerated {
        user_id,
        key_id,
        key_hash,
        expires_at: None,
        replaced_key_id: None,
        replaced_key_valid_until: None,
    });
    Ok(events)
}

/// Recovers an administrator at the operator's request: one `AdministratorRecovered`
/// record, with a new role whose description names the time.
pub(super) fn recover_administrator(
    state: &State,
    context: &Context,
    user_id: UserId,
    role_id: RoleId,
    key_id: KeyId,
    key_hash: KeyHash,
    reason: RecoveryReason,
) -> Result<Vec<Event>, DomainError> {
    // Only the system asks: `authority::admit` refused any user already.
    // A new role, never an existing one changed: its description names the time,
    // and the role's id too if another recovery took that description already.
    let description = format!("Administrator (recovered {})", context.now);
    let role_description = if state.role_by_description(&description).is_some() {
        format!("Administrator (recovered {}, {role_id})", context.now)
    } else {
        description
    };
    Ok(vec![Event::AdministratorRecovered {
        user_id,
        name: "Recovered administrator".to_owned(),
        role_id,
        role_description,
        key_id,
        key_hash,
        reason: reason.as_str().to_owned(),
    }])
}
