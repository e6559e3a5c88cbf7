//! Who granted what, when and why: for each fact a `whoCan` answer rests on (a function
//! active on a role, a role held by a user, a user enabled, a user's event access, an
//! event in a group, a key), the record that last established it, up to a position of the
//! log.
//!
//! The permission view keeps no history of its facts, so [`Grants::scan`] folds the log's
//! records up to the position once: O(records) read and decoded on the caller's (blocking)
//! thread, as the credential report does, and memory proportional to the facts standing.
//! A fact taken away (a function deactivated, a role unassigned) forgets its record, so
//! the record named is always the one that made the fact as it stands.

use std::collections::HashMap;

use crate::domain::{Event, EventId, FunctionId, GroupId, KeyId, RoleId, UserId};
use crate::history::Cause;
use crate::key_history::ScanError;
use crate::log::{EventLog, record};

/// How many records are read from the log at a time.
const READ_CHUNK: usize = 1000;

/// The record behind every standing fact, up to a position.
#[derive(Debug, Default)]
pub struct Grants {
    activated: HashMap<(RoleId, FunctionId), Cause>,
    /// Roles created with every admin function (`AdministratorRecovered`).
    recovered_roles: HashMap<RoleId, Cause>,
    assigned: HashMap<(UserId, RoleId), Cause>,
    enabled: HashMap<UserId, Cause>,
    event_access: HashMap<UserId, Cause>,
    in_group: HashMap<(GroupId, EventId), Cause>,
    keys: HashMap<KeyId, Cause>,
}

impl Grants {
    /// Folds the records from the first up to `up_to` (inclusive).
    pub fn scan<L: EventLog>(log: &L, up_to: u64) -> Result<Grants, ScanError<L::Error>> {
        let mut grants = Grants::default();
        let mut next = 1;
        while next <= up_to {
            let wanted = usize::try_from(up_to - next + 1).unwrap_or(READ_CHUNK).min(READ_CHUNK);
            let chunk = log.read(next, wanted).map_err(ScanError::Storage)?;
            if chunk.is_empty() {
                break;
            }
            for stored in &chunk {
                let decoded =
                    record::decode(&stored.bytes).map_err(|error| ScanError::Record { seq: stored.seq, error })?;
                grants.apply(decoded);
                next = stored.seq + 1;
            }
        }
        Ok(grants)
    }

    fn apply(&mut self, record: record::Record) {
        let cause = || Cause {
            seq: record.seq,
            kind: record.event.type_name(),
            id: record.id.clone(),
            at: record.at,
            actor: record.actor.clone(),
            justification: record.justification.clone(),
        };
        match &record.event {
            Event::FunctionActivated { role_id, function } => {
                self.activated.insert((role_id.clone(), *function), cause());
            }
            Event::FunctionDeactivated { role_id, function } => {
                self.activated.remove(&(role_id.clone(), *function));
            }
            Event::RoleAssigned { user_id, role_id } => {
                self.assigned.insert((user_id.clone(), role_id.clone()), cause());
            }
            Event::RoleUnassigned { user_id, role_id } => {
                self.assigned.remove(&(user_id.clone(), role_id.clone()));
            }
            Event::UserEnabled { user_id } => {
                self.enabled.insert(user_id.clone(), cause());
            }
            Event::UserDisabled { user_id } => {
                self.enabled.remove(user_id);
            }
            Event::EventAccessSet { user_id, .. } => {
                self.event_access.insert(user_id.clone(), cause());
            }
            Event::EventAddedToGroup { group_id, event_id } => {
                self.in_group.insert((group_id.clone(), event_id.clone()), cause());
            }
            Event::EventRemovedFromGroup { group_id, event_id } => {
                self.in_group.remove(&(group_id.clone(), event_id.clone()));
            }
            Event::KeyGenerated { key_id, .. } => {
                self.keys.insert(key_id.clone(), cause());
            }
            Event::AdministratorRecovered { user_id, role_id, key_id, .. } => {
                self.recovered_roles.insert(role_id.clone(), cause());
                self.assigned.insert((user_id.clone(), role_id.clone()), cause());
                self.keys.insert(key_id.clone(), cause());
            }
            _ => {}
        }
    }

    /// The record that made `function` active on `role`.
    pub fn activation(&self, role: &RoleId, function: FunctionId) -> Option<&Cause> {
        self.activated.get(&(role.clone(), function)).or_else(|| self.recovered_roles.get(role))
    }

    /// The record that gave `role` to `user`.
    pub fn assignment(&self, user: &UserId, role: &RoleId) -> Option<&Cause> {
        self.assigned.get(&(user.clone(), role.clone()))
    }

    /// The record that last enabled `user` again, if it was ever disabled and enabled.
    pub fn enabling(&self, user: &UserId) -> Option<&Cause> {
        self.enabled.get(user)
    }

    /// The record that last set `user`'s event access.
    pub fn event_access(&self, user: &UserId) -> Option<&Cause> {
        self.event_access.get(user)
    }

    /// The record that added `event` to `group`.
    pub fn event_in_group(&self, group: &GroupId, event: &EventId) -> Option<&Cause> {
        self.in_group.get(&(group.clone(), event.clone()))
    }

    /// The record that issued `key`.
    pub fn key(&self, key: &KeyId) -> Option<&Cause> {
        self.keys.get(key)
    }
}

/// "granted by usr_… at T: why" (without the colon and reason when none was given).
pub fn explanation(cause: &Cause) -> String {
    match &cause.justification {
        Some(why) => format!("granted by {} at {}: {why}", cause.actor, cause.at),
        None => format!("granted by {} at {}", cause.actor, cause.at),
    }
}
