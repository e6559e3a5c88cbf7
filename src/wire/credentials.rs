//! The credential report (`getCredentialReport`): one row per key ever issued, as JSON or
//! CSV. CSV is written as the access report's is (`super::report`): RFC 4180, `;` between
//! the values of one cell, and formula guarding (a cell starting with `=`, `+`, `-`, `@`,
//! a tab or a carriage return gets a leading `'`); user names, which admins type, are the
//! cells that can start so.

use serde::Serialize;
use utoipa::ToSchema;

use super::report::write_csv_row;
use super::{EventAccessView, KeyState};
use crate::domain::{self, Timestamp};
use crate::key_history::{IssuedKey, KeyHistory};

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 16] = [
    "user_id",
    "name",
    "key_id",
    "state",
    "created_at",
    "expires_at",
    "replaced_at",
    "replaced_by",
    "valid_until",
    "revoked_at",
    "last_used_at",
    "checks_allowed",
    "checks_refused",
    "functions",
    "event_access",
    "legacy",
];

/// One row per key ever issued, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "generated_at": "2027-05-01T09:00:00.000Z",
    "position": 42,
    "rows": [{
        "user_id": "usr_5f0c2a9e1b7d4c3a",
        "name": "Attendance app",
        "key_id": "key_0f1e2d3c4b5a6978",
        "state": "active",
        "created_at": "2027-01-31T17:00:00.000Z",
        "expires_at": null,
        "replaced_at": null,
        "replaced_by": null,
        "valid_until": null,
        "revoked_at": null,
        "last_used_at": "2027-04-30T22:15:00.000Z",
        "checks_allowed": 1204,
        "checks_refused": 3,
        "functions": ["api.attendees.read"],
        "event_access": {"all_events": false, "groups": ["grp_1a2b3c4d5e6f7a8b"]},
        "legacy": false
    }]
}))]
pub struct CredentialReport {
    /// When the report was made; key states are judged at this time.
    pub generated_at: String,
    /// The log position the report reflects: every record up to it.
    pub position: u64,
    /// One row per key ever issued, in the order they were issued.
    pub rows: Vec<CredentialReportRow>,
}

/// One key: its life so far, its recorded use, and what it can do now.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialReportRow {
    /// The key's user.
    pub user_id: String,
    /// The user's display name now.
    pub name: String,
    /// The key's public id.
    pub key_id: String,
    /// Where the key stands now.
    pub state: KeyState,
    /// When the key was generated.
    pub created_at: String,
    /// When the key expires, if it does.
    pub expires_at: Option<String>,
    /// When a newer key replaced it (a rotation), if one did.
    pub replaced_at: Option<String>,
    /// The key that replaced it.
    pub replaced_by: Option<String>,
    /// For a replaced key, when its grace period ended or ends; null if it stopped at once.
    pub valid_until: Option<String>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
    /// Its last recorded use (recorded every `--key-usage-interval-secs`).
    pub last_used_at: Option<String>,
    /// Recorded checks it passed.
    pub checks_allowed: u64,
    /// Recorded checks it failed while it was known.
    pub checks_refused: u64,
    /// The functions a check grants it now: its user's, if the key works and its user is
    /// enabled; otherwise none.
    pub functions: Vec<String>,
    /// The events it may act on now, as its user's event access; null when it works for
    /// nothing.
    pub event_access: Option<EventAccessView>,
    /// Whether the key was imported (`importKey`: an existing platform key, known by its
    /// SHA-256) rather than issued by keyledger. Rotate it: rotation issues a `kl_` key.
    pub legacy: bool,
}

impl CredentialReport {
    /// The report of every key in `history`, judged against the permission view at `now`.
    pub fn of(history: &KeyHistory, view: &domain::State, now: Timestamp) -> Self {
        let rows = history.keys().iter().map(|key| CredentialReportRow::of(key, view, now)).collect();
        CredentialReport { generated_at: now.to_string(), position: history.size(), rows }
    }

    /// The rows as CSV, a header row first.
    pub fn to_csv(&self) -> String {
        let mut csv = String::new();
        write_csv_row(&mut csv, CSV_COLUMNS.iter().map(|column| (*column).to_owned()));
        for row in &self.rows {
            write_csv_row(&mut csv, row.csv_cells());
        }
        csv
    }
}

/// Where a key stands: as the view judges it, or, for a key the view has forgotten (a key
/// replaced without grace or whose grace was cut short), replaced.
pub fn key_state(key: &IssuedKey, view: &domain::State, now: Timestamp) -> domain::KeyState {
    match view.key(&key.key_hash) {
        Some(known) => view.key_state(known, now),
        None => domain::KeyState::Replaced { valid_until: key.grace_until.unwrap_or(key.created_at) },
    }
}

impl CredentialReportRow {
    /// The row of one key, judged against the permission view at `now`.
    pub fn of(key: &IssuedKey, view: &domain::State, now: Timestamp) -> Self {
        let state = key_state(key, view, now);
        let user = view.user(&key.user_id);
        let working = state.is_usable() && user.is_some_and(domain::User::is_enabled);
        let (functions, event_access) = match user.filter(|_| working) {
            Some(user) => (
                view.functions_of(user).iter().map(|function| function.as_str().to_owned()).collect(),
                Some(user.event_access().into()),
            ),
            None => (Vec::new(), None),
        };
        let time = |at: Option<Timestamp>| at.map(|at| at.to_string());
        CredentialReportRow {
            user_id: key.user_id.to_string(),
            name: user.map(|user| user.name().to_owned()).unwrap_or_default(),
            key_id: key.key_id.to_string(),
            state: state.into(),
            created_at: key.created_at.to_string(),
            expires_at: time(key.expires_at),
            replaced_at: time(key.replaced.as_ref().map(|(at, _)| *at)),
            replaced_by: key.replaced.as_ref().map(|(_, by)| by.to_string()),
            valid_until: time(key.grace_until),
            revoked_at: time(key.revoked_at),
            last_used_at: time(key.last_used_at),
            checks_allowed: key.allowed,
            checks_refused: key.refused,
            functions,
            event_access,
            legacy: key.legacy,
        }
    }

    fn csv_cells(&self) -> impl Iterator<Item = String> {
        let or_empty = |value: &Option<String>| value.clone().unwrap_or_default();
        let event_access = match &self.event_access {
            None => String::new(),
            Some(access) if access.all_events => "all_events".to_owned(),
            Some(access) => access.groups.join(";"),
        };
        [
            self.user_id.clone(),
            self.name.clone(),
            self.key_id.clone(),
            self.state.as_str().to_owned(),
            self.created_at.clone(),
            or_empty(&self.expires_at),
            or_empty(&self.replaced_at),
            or_empty(&self.replaced_by),
            or_empty(&self.valid_until),
            or_empty(&self.revoked_at),
            or_empty(&self.last_used_at),
            self.checks_allowed.to_string(),
            self.checks_refused.to_string(),
            self.functions.join(";"),
            event_access,
            self.legacy.to_string(),
        ]
        .into_iter()
    }
}
