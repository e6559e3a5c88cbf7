//! How the command line shows results to people: the `--format` choices, the default
//! (readable tables on a terminal, JSON when piped, so scripts keep what they read), and
//! the text tables and CSV of the access review and the permission view.

use std::fmt::Write as _;
use std::io::IsTerminal;

use crate::wire::EventAccessView;
use crate::wire::report::{AccessReport, AccessReportRow, write_csv_row};
use crate::wire::review::{KeyAtTimeView, PermissionsAt};

/// The formats of a command that prints a view: `access-report` and `replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ViewFormat {
    /// Readable tables.
    Text,
    /// JSON, indented, as the API answers.
    Json,
    /// CSV (RFC 4180, formula cells neutralised): a header row, then one row per user.
    Csv,
}

impl ViewFormat {
    /// The format asked for, or by default text when standard output is a terminal and
    /// JSON when it is not, so a script reading the output gets what it always got.
    pub fn or_default(format: Option<ViewFormat>) -> ViewFormat {
        format.unwrap_or(if std::io::stdout().is_terminal() { ViewFormat::Text } else { ViewFormat::Json })
    }
}

/// The formats of a command that prints a verdict: `verify` and `verify-log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum VerdictFormat {
    /// Sentences, one fact a line (the default, terminal or not).
    #[default]
    Text,
    /// One JSON object.
    Json,
}

/// A table of text: headings over left-aligned columns two spaces apart.
struct Table {
    headings: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headings: &[&'static str]) -> Self {
        Table { headings: headings.to_vec(), rows: Vec::new() }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table, each line ending in a newline; columns are as wide as their widest cell
    /// in characters (trailing spaces trimmed).
    fn render(&self, out: &mut String) {
        let mut widths: Vec<usize> = self.headings.iter().map(|heading| heading.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut text = String::new();
            for (index, (cell, width)) in cells.zip(&widths).enumerate() {
                if index > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', width.saturating_sub(cell.chars().count())));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&mut self.headings.iter().copied());
        for row in &self.rows {
            line(&mut row.iter().map(String::as_str));
        }
    }
}

/// A list of values for a table cell: joined with commas, `-` when empty.
fn list<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let joined = values.into_iter().collect::<Vec<_>>().join(", ");
    if joined.is_empty() { "-".to_owned() } else { joined }
}

fn optional(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

fn yes_no(value: bool) -> String {
    (if value { "yes" } else { "no" }).to_owned()
}

fn event_access(access: &EventAccessView) -> String {
    if access.all_events { "all events".to_owned() } else { list(access.groups.iter().map(String::as_str)) }
}

/// The review flags a row raises, by their JSON names.
fn flags(row: &AccessReportRow) -> String {
    let flags = &row.flags;
    let raised = [
        (flags.write_on_api_role, "write_on_api_role"),
        (flags.key_older_than_90_days, "key_older_than_90_days"),
        (flags.key_unused_90_days, "key_unused_90_days"),
        (flags.disabled_user_with_active_key, "disabled_user_with_active_key"),
        (flags.recovered_administrator, "recovered_administrator"),
        (flags.key_blocked_by_policy, "key_blocked_by_policy"),
        (flags.legacy_key_rotate, "legacy_key_rotate"),
    ];
    list(raised.into_iter().filter(|(raised, _)| *raised).map(|(_, name)| name))
}

/// The access review as text: a title line and one table row per user.
pub fn access_report_text(report: &AccessReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Access review at {} (log position {}, review period {} days): {} users",
        report.generated_at,
        report.position,
        report.review_period_days,
        report.rows.len()
    );
    out.push('\n');
    let mut table = Table::new(&[
        "USER",
        "NAME",
        "ENABLED",
        "ROLES",
        "EVENT ACCESS",
        "KEY",
        "KEY STATE",
        "KEY AGE",
        "LAST USED",
        "FLAGS",
    ]);
    for row in &report.rows {
        table.row(vec![
            row.user_id.clone(),
            row.name.clone(),
            yes_no(row.enabled),
            list(row.roles.iter().map(|role| role.description.as_str())),
            event_access(&row.event_access),
            optional(row.key_id.as_deref()),
            optional(row.key_state.map(|state| state.as_str())),
            row.key_age_days.map_or_else(|| "-".to_owned(), |days| format!("{days} d")),
            optional(row.key_last_used_at.as_deref()),
            flags(row),
        ]);
    }
    table.render(&mut out);
    out.push_str("\nFunctions per user: --format json or --format csv.\n");
    out
}

/// A key at a point in time, for a table cell: `key_… (state)`.
fn key_cell(key: &KeyAtTimeView) -> String {
    format!("{} ({})", key.key_id, key.state.as_str())
}

/// The permission view as text: where it stands, then users, roles and event groups.
pub fn permissions_text(view: &PermissionsAt) -> String {
    let mut out = String::new();
    let recorded = view.recorded_at.as_deref().map_or_else(String::new, |at| format!(", recorded {at}"));
    let _ =
        writeln!(out, "Permission view at log position {}{recorded}; key states as of {}", view.position, view.as_of);

    let _ = writeln!(out, "\nUsers ({})", view.users.len());
    // Functions are the union of the roles', listed once in the roles' table.
    let mut users = Table::new(&["USER", "NAME", "ENABLED", "ROLES", "EVENT ACCESS", "KEYS"]);
    for user in &view.users {
        users.row(vec![
            user.id.clone(),
            user.name.clone(),
            yes_no(user.enabled),
            list(user.roles.iter().map(|role| role.description.as_str())),
            event_access(&user.event_access),
            if user.keys.is_empty() {
                "-".to_owned()
            } else {
                user.keys.iter().map(key_cell).collect::<Vec<_>>().join(", ")
            },
        ]);
    }
    users.render(&mut out);

    let _ = writeln!(out, "\nRoles ({})", view.roles.len());
    let mut roles = Table::new(&["ROLE", "DESCRIPTION", "FUNCTIONS", "HOLDERS"]);
    for role in &view.roles {
        roles.row(vec![
            role.id.clone(),
            role.description.clone(),
            list(role.functions.iter().map(String::as_str)),
            list(role.holders.iter().map(String::as_str)),
        ]);
    }
    roles.render(&mut out);

    let _ = writeln!(out, "\nEvent groups ({})", view.event_groups.len());
    let mut groups = Table::new(&["GROUP", "NAME", "PARENT", "EVENTS"]);
    for group in &view.event_groups {
        groups.row(vec![
            group.id.clone(),
            group.name.clone(),
            optional(group.parent_id.as_deref()),
            list(group.events.iter().map(String::as_str)),
        ]);
    }
    groups.render(&mut out);
    out
}

/// The CSV header of the permission view: one row per user, multi-valued cells joined
/// with `;` as in the access review's CSV.
pub const PERMISSIONS_CSV_COLUMNS: [&str; 8] =
    ["user_id", "name", "enabled", "role_ids", "role_descriptions", "functions", "event_access", "keys"];

/// The permission view's users as CSV: event access is `all_events` or the group ids, and
/// each key is `key_id:state`.
pub fn permissions_csv(view: &PermissionsAt) -> String {
    let mut csv = String::new();
    write_csv_row(&mut csv, PERMISSIONS_CSV_COLUMNS.iter().map(|column| (*column).to_owned()));
    for user in &view.users {
        let access =
            if user.event_access.all_events { "all_events".to_owned() } else { user.event_access.groups.join(";") };
        write_csv_row(
            &mut csv,
            [
                user.id.clone(),
                user.name.clone(),
                user.enabled.to_string(),
                user.roles.iter().map(|role| role.id.as_str()).collect::<Vec<_>>().join(";"),
                user.roles.iter().map(|role| role.description.as_str()).collect::<Vec<_>>().join(";"),
                user.functions.join(";"),
                access,
                user.keys
                    .iter()
                    .map(|key| format!("{}:{}", key.key_id, key.state.as_str()))
                    .collect::<Vec<_>>()
                    .join(";"),
            ]
            .into_iter(),
        );
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_aligns_its_columns_under_the_headings() {
        let mut table = Table::new(&["ID", "NAME", "STATE"]);
        table.row(vec!["usr_1".to_owned(), "Attendance app".to_owned(), "active".to_owned()]);
        table.row(vec!["usr_22".to_owned(), "Ré".to_owned(), "-".to_owned()]);
        let mut out = String::new();
        table.render(&mut out);
        assert_eq!(
            out,
            "ID      NAME            STATE\n\
             usr_1   Attendance app  active\n\
             usr_22  Ré              -\n"
        );
    }

    #[test]
    fn an_empty_list_shows_as_a_dash() {
        assert_eq!(list(Vec::<&str>::new()), "-");
        assert_eq!(list(["a", "b"]), "a, b");
    }
}
