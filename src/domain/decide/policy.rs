//! Deciding the key policy (`setKeyPolicy`).

use super::super::{DomainError, Event, KeyPolicy, State};

/// Sets the key policy, replacing the previous one whole; setting the policy in force
/// changes nothing.
pub(super) fn set(state: &State, policy: KeyPolicy) -> Result<Vec<Event>, DomainError> {
    if *state.key_policy() == policy {
        return Ok(vec![]);
    }
    Ok(vec![Event::KeyPolicySet {
        max_lifetime_days: policy.max_lifetime_days(),
        require_expiry: policy.require_expiry(),
        max_unused_days: policy.max_unused_days(),
    }])
}
