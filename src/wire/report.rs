//! The access review, as JSON or CSV (RFC 4180, formula cells neutralised): what
//! `accessReport` serves and `keyledger access-report` prints.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{EventAccessView, KeyState};
use crate::domain::{self, AccessReviewRow, FunctionId, REVIEW_PERIOD_DAYS, Timestamp, UnusedAccess, UnusedDays};

/// The formats the report comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// `application/json`: an [`AccessReport`].
    Json,
    /// `text/csv`: a header row and one row per user.
    Csv,
}

impl ReportFormat {
    /// The media type of the report in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            ReportFormat::Json => "application/json",
            ReportFormat::Csv => "text/csv; charset=utf-8; header=present",
        }
    }
}

/// A role a user holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportRole {
    /// The role's id.
    pub id: String,
    /// The role's description.
    pub description: String,
}

/// What a reviewer should look at. Each flag is defined at its field.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportFlags {
    /// The user holds an API role with at least one write function.
    pub write_on_api_role: bool,
    /// The current key was generated more than 90 days ago.
    pub key_older_than_90_days: bool,
    /// The current key is older than 90 days and was never recorded as used, or last used
    /// more than 90 days ago.
    pub key_unused_90_days: bool,
    /// The user is disabled but a key of theirs (current, or replaced and in its grace
    /// period) is neither revoked nor expired: enabling the user would make it work again.
    pub disabled_user_with_active_key: bool,
    /// The user is a full administrator created by `keyledger recover-admin` (an
    /// `AdministratorRecovered` record, with the operator's reason): confirm it was expected.
    pub recovered_administrator: bool,
    /// The key policy (`getKeyPolicy`) blocks the current key now, or will within
    /// `policy_warning_days` (see `key_blocked_from` and `key_blocked_reason`).
    pub key_blocked_by_policy: bool,
    /// The current key was imported (`importKey`, `legacy`): rotate it with generateKey,
    /// which issues a `kl_` key.
    pub legacy_key_rotate: bool,
}

/// One user in the access review.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessReportRow {
    /// The user's id.
    pub user_id: String,
    /// The user's display name.
    pub name: String,
    /// Whether the user's keys may pass checks.
    pub enabled: bool,
    /// The roles the user holds.
    pub roles: Vec<ReportRole>,
    /// The functions of all the user's roles, in catalogue order.
    pub functions: Vec<&'static str>,
    /// The events the user may access.
    pub event_access: EventAccessView,
    /// The current key's public id; null if the user has no key.
    pub key_id: Option<String>,
    /// Where the current key stands at `generated_at`, as getUser shows it; null if the
    /// user has no key.
    pub key_state: Option<KeyState>,
    /// When the current key was generated.
    pub key_created_at: Option<String>,
    /// Whole days since the current key was generated.
    pub key_age_days: Option<u64>,
    /// When the current key expires; null if it does not (or there is no key).
    pub key_expires_at: Option<String>,
    /// The current key's last recorded use; null if none was recorded.
    pub key_last_used_at: Option<String>,
    /// When the key policy blocks (or blocked) the current key; null if no limit binds it
    /// (no limit set, the key is exempt, or it no longer works anyway).
    pub key_blocked_from: Option<String>,
    /// The check reason from `key_blocked_from`: `key_too_old` or `key_dormant`.
    pub key_blocked_reason: Option<String>,
    /// Whether the current key was imported (`importKey`) rather than issued by keyledger.
    pub key_legacy: bool,
    /// The findings.
    pub flags: ReportFlags,
    /// The functions the user's roles grant that none of its keys passed a check of
    /// within the unused window (see the report's `unused`), in catalogue order.
    pub unused_functions: Vec<&'static str>,
    /// The user's working keys (current, and replaced in its grace period) that passed no
    /// check within the unused window.
    pub unused_keys: Vec<UnusedKey>,
}

/// A working key unused within the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnusedKey {
    /// The key's public id.
    pub key_id: String,
    /// Its last recorded use; null if none was ever recorded.
    pub last_used_at: Option<String>,
}

/// The window behind each row's `unused_functions` and `unused_keys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnusedWindow {
    /// The window's length in days (`unused_days`, 1 to 365, default 90).
    pub days: u32,
    /// When the window starts: a check recorded at or after it is a use.
    pub since: String,
    /// Whether `unused_functions` is exact: usage records count every key's passed checks
    /// per function, but logs written before they did (before issue #14) recorded some
    /// without; a window reaching back before the last of those is not exact.
    pub exact: bool,
    /// From when every passed check is known with its function; null when every one is.
    pub exact_since: Option<String>,
}

/// The access review: every user, at one position of the log.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "generated_at": "2027-05-01T08:00:00.000Z",
    "position": 42,
    "review_period_days": 90,
    "rows": [{
        "user_id": "usr_5f0c2a9e1b7d4c3a",
        "name": "Attendance app",
        "enabled": true,
        "roles": [{"id": "role_9d8e7f6a5b4c3d2e", "description": "API Access"}],
        "functions": ["api.attendees.read", "api.attendees.write"],
        "event_access": {"all_events": false, "groups": ["grp_1a2b3c4d5e6f7a8b"]},
        "key_id": "key_0f1e2d3c4b5a6978",
        "key_state": "active",
        "key_created_at": "2027-01-31T17:00:00.000Z",
        "key_age_days": 89,
        "key_expires_at": null,
        "key_last_used_at": "2027-04-30T22:15:00.000Z",
        "key_blocked_from": null,
        "key_blocked_reason": null,
        "key_legacy": false,
        "flags": {"write_on_api_role": true, "key_older_than_90_days": false, "key_unused_90_days": false, "disabled_user_with_active_key": false, "recovered_administrator": false, "key_blocked_by_policy": false, "legacy_key_rotate": false},
        "unused_functions": ["api.attendees.write"],
        "unused_keys": []
    }],
    "unused": {"days": 90, "since": "2027-01-31T08:00:00.000Z", "exact": true, "exact_since": null},
    "policy_warning_days": 14
}))]
pub struct AccessReport {
    /// When the report was made; key ages and flags are judged at this time.
    pub generated_at: String,
    /// The log position the report reflects: every record up to it, none after.
    pub position: u64,
    /// The period, in days, behind the key age and key use flags.
    pub review_period_days: u64,
    /// One row per user, in the order they were created.
    pub rows: Vec<AccessReportRow>,
    /// The window of the unused access findings.
    pub unused: UnusedWindow,
    /// How many days ahead `key_blocked_by_policy` looks: 14.
    pub policy_warning_days: u32,
}

impl AccessReport {
    /// The report of the view at `now`, unused access over the default 90 days.
    pub fn of(view: &domain::State, now: Timestamp) -> Self {
        Self::with_unused_days(view, now, UnusedDays::DEFAULT)
    }

    /// The report of the view at `now`, unused access over `unused_days`.
    pub fn with_unused_days(view: &domain::State, now: Timestamp, unused_days: UnusedDays) -> Self {
        let window = UnusedAccess::window(view, now, unused_days);
        let rows = domain::access_report(view, now)
            .into_iter()
            .map(|row| {
                let unused = view.user(&row.user_id).map(|user| window.of(view, user, now));
                let mut shown = AccessReportRow::from(row);
                if let Some(unused) = unused {
                    shown.unused_functions = unused.functions.iter().map(FunctionId::as_str).collect();
                    shown.unused_keys = unused
                        .keys
                        .into_iter()
                        .map(|(key_id, last)| UnusedKey {
                            key_id: key_id.to_string(),
                            last_used_at: last.map(|at| at.to_string()),
                        })
                        .collect();
                }
                shown
            })
            .collect();
        AccessReport {
            generated_at: now.to_string(),
            position: view.head(),
            review_period_days: REVIEW_PERIOD_DAYS,
            rows,
            unused: UnusedWindow {
                days: unused_days.days(),
                since: window.since.to_string(),
                exact: window.exact,
                exact_since: window.exact_since.map(|at| at.to_string()),
            },
            policy_warning_days: domain::POLICY_WARNING_DAYS,
        }
    }

    /// The report in a format, as the command line prints it (JSON indented).
    pub fn render(&self, format: ReportFormat) -> Vec<u8> {
        match format {
            ReportFormat::Json => serde_json::to_vec_pretty(self).unwrap_or_default(),
            ReportFormat::Csv => self.to_csv().into_bytes(),
        }
    }

    /// The rows as CSV (see the module's documentation).
    pub fn to_csv(&self) -> String {
        let mut csv = String::new();
        write_csv_row(&mut csv, CSV_COLUMNS.iter().map(|column| (*column).to_owned()));
        for row in &self.rows {
            write_csv_row(&mut csv, row.csv_cells());
        }
        csv
    }
}

impl From<AccessReviewRow> for AccessReportRow {
    fn from(row: AccessReviewRow) -> Self {
        let key = row.key.as_ref();
        AccessReportRow {
            user_id: row.user_id.to_string(),
            name: row.name,
            enabled: row.enabled,
            roles: row
                .roles
                .into_iter()
                .map(|role| ReportRole { id: role.id.to_string(), description: role.description })
                .collect(),
            functions: row.functions.iter().map(FunctionId::as_str).collect(),
            event_access: EventAccessView::from(&row.event_access),
            key_id: key.map(|key| key.key_id.to_string()),
            key_state: key.map(|key| key.state.into()),
            key_created_at: key.map(|key| key.created_at.to_string()),
            key_age_days: key.map(|key| key.age_days),
            key_expires_at: key.and_then(|key| key.expires_at).map(|at| at.to_string()),
            key_last_used_at: key.and_then(|key| key.last_used_at).map(|at| at.to_string()),
            key_blocked_from: key.and_then(|key| key.policy_block).map(|(_, at)| at.to_string()),
            key_blocked_reason: key
                .and_then(|key| key.policy_block)
                .map(|(limit, _)| limit.reason().as_str().to_owned()),
            key_legacy: key.is_some_and(|key| key.legacy),
            flags: ReportFlags {
                write_on_api_role: row.flags.write_on_api_role,
                key_older_than_90_days: row.flags.key_older_than_90_days,
                key_unused_90_days: row.flags.key_unused_90_days,
                disabled_user_with_active_key: row.flags.disabled_user_with_active_key,
                recovered_administrator: row.flags.recovered_administrator,
                key_blocked_by_policy: row.flags.key_blocked_by_policy,
                legacy_key_rotate: row.flags.legacy_key_rotate,
            },
            unused_functions: Vec::new(),
            unused_keys: Vec::new(),
        }
    }
}

/// The CSV header: one column per field, multi-valued ones joined with `;`, one column
/// per flag.
pub const CSV_COLUMNS: [&str; 25] = [
    "user_id",
    "name",
    "enabled",
    "role_ids",
    "role_descriptions",
    "functions",
    "event_access",
    "key_id",
    "key_state",
    "key_created_at",
    "key_age_days",
    "key_expires_at",
    "key_last_used_at",
    "write_on_api_role",
    "key_older_than_90_days",
    "key_unused_90_days",
    "disabled_user_with_active_key",
    "recovered_administrator",
    "unused_functions",
    "unused_key_ids",
    "key_blocked_from",
    "key_blocked_reason",
    "key_legacy",
    "key_blocked_by_policy",
    "legacy_key_rotate",
];

impl AccessReportRow {
    /// The row's cells, in the order of [`CSV_COLUMNS`]. Event access is `all_events` or
    /// the granted group ids.
    fn csv_cells(&self) -> impl Iterator<Item = String> {
        let joined = |values: Vec<&str>| values.join(";");
        let event_access =
            if self.event_access.all_events { "all_events".to_owned() } else { self.event_access.groups.join(";") };
        let optional = |value: &Option<String>| value.clone().unwrap_or_default();
        [
            self.user_id.clone(),
            self.name.clone(),
            self.enabled.to_string(),
            joined(self.roles.iter().map(|role| role.id.as_str()).collect()),
            joined(self.roles.iter().map(|role| role.description.as_str()).collect()),
            self.functions.join(";"),
            event_access,
            optional(&self.key_id),
            self.key_state.map(|state| state.as_str().to_owned()).unwrap_or_default(),
            optional(&self.key_created_at),
            self.key_age_days.map(|days| days.to_string()).unwrap_or_default(),
            optional(&self.key_expires_at),
            optional(&self.key_last_used_at),
            self.flags.write_on_api_role.to_string(),
            self.flags.key_older_than_90_days.to_string(),
            self.flags.key_unused_90_days.to_string(),
            self.flags.disabled_user_with_active_key.to_string(),
            self.flags.recovered_administrator.to_string(),
            self.unused_functions.join(";"),
            joined(self.unused_keys.iter().map(|key| key.key_id.as_str()).collect()),
            optional(&self.key_blocked_from),
            optional(&self.key_blocked_reason),
            self.key_legacy.to_string(),
            self.flags.key_blocked_by_policy.to_string(),
            self.flags.legacy_key_rotate.to_string(),
        ]
        .into_iter()
    }
}

/// Writes one CSV row (RFC 4180, CRLF), each cell neutralised and quoted as it must be;
/// `keyledger replay --format csv` writes its rows with it too.
pub(crate) fn write_csv_row(csv: &mut String, cells: impl Iterator<Item = String>) {
    for (index, cell) in cells.enumerate() {
        if index > 0 {
            csv.push(',');
        }
        write_csv_cell(csv, &cell);
    }
    csv.push_str("\r\n");
}

/// Writes one cell: neutralised against formula injection, then quoted if it must be.
fn write_csv_cell(csv: &mut String, value: &str) {
    let formula = matches!(value.chars().next(), Some('=' | '+' | '-' | '@' | '\t' | '\r'));
    let quoted = value.contains([',', '"', '\n', '\r']);
    if quoted {
        csv.push('"');
    }
    if formula {
        csv.push('\'');
    }
    if quoted {
        csv.push_str(&value.replace('"', "\"\""));
        csv.push('"');
    } else {
        csv.push_str(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(value: &str) -> String {
        let mut csv = String::new();
        write_csv_cell(&mut csv, value);
        csv
    }

    #[test]
    fn plain_cells_are_written_as_they_are() {
        assert_eq!(cell("Attendance app"), "Attendance app");
        assert_eq!(cell("2027-01-31T17:00:00.000Z"), "2027-01-31T17:00:00.000Z");
        assert_eq!(cell(""), "");
    }

    #[test]
    fn cells_with_commas_quotes_or_line_breaks_are_quoted_with_inner_quotes_doubled() {
        assert_eq!(cell("Smith, Jane"), "\"Smith, Jane\"");
        assert_eq!(cell("the \"app\""), "\"the \"\"app\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn cells_a_spreadsheet_would_run_as_formulas_get_a_leading_quote() {
        assert_eq!(cell("=HYPERLINK(\"http://evil\")"), "\"'=HYPERLINK(\"\"http://evil\"\")\"");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("-2+3"), "'-2+3");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("a=b"), "a=b", "only a leading sign is a formula");
    }

    #[test]
    fn every_key_state_has_one_name_in_json_in_csv_and_in_the_domain() {
        let at = Timestamp::from_unix_millis(0);
        let states = [
            domain::KeyState::Active,
            domain::KeyState::InGrace { valid_until: at },
            domain::KeyState::Replaced { valid_until: at },
            domain::KeyState::Expired { at },
            domain::KeyState::Revoked { at },
            domain::KeyState::TooOld { since: at },
            domain::KeyState::Dormant { since: at },
        ];
        for state in states {
            let view = KeyState::from(state);
            assert_eq!(serde_json::to_value(view).ok(), Some(serde_json::Value::from(state.as_str())));
            assert_eq!(view.as_str(), state.as_str());
        }
    }

    #[test]
    fn a_report_of_an_empty_view_is_the_header_alone() {
        let report = AccessReport::of(&domain::State::default(), Timestamp::from_unix_millis(0));
        assert_eq!(report.to_csv(), format!("{}\r\n", CSV_COLUMNS.join(",")));
        assert_eq!(report.position, 0);
    }
}
