//! The access review as the console shows it: the access report's findings as a table,
//! each with a severity, and the numbers behind its charts (keys by age, keys by last use,
//! checks allowed and refused per day from the usage records).
//!
//! The rows and flags are `domain::access_report`'s, the same that `accessReport` and
//! `keyledger access-report` give; this module only ranks and counts them.

use super::charts::{self, Bar, DayChecks};
use crate::domain::{AccessReviewRow, Event, KeySummary, Timestamp};
use crate::log::EventLog;
use crate::log::record;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Act now: access exists that nobody should have without a decision.
    High,
    /// Act at this review: rotation and unused keys.
    Medium,
    /// Know about it: a broad but possibly intended permission.
    Low,
}

impl Severity {
    /// The word shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// One flag of one user, as the findings table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// The user's id.
    pub user_id: String,
    /// The user's name.
    pub name: String,
    /// The finding, as the report names its flag.
    pub flag: &'static str,
    /// What it means and what to do, in words.
    pub advice: &'static str,
}

/// A flag as a finding: its severity, the report's name for it, advice, and whether a row
/// raises it.
type Flag = (Severity, &'static str, &'static str, fn(&AccessReviewRow) -> bool);

/// Every flag as a finding.
const FLAGS: [Flag; 5] = [
    (
        Severity::High,
        "disabled_user_with_active_key",
        "The user is disabled but a key of theirs still works: enabling the user would make it work again. Revoke the key.",
        |row| row.flags.disabled_user_with_active_key,
    ),
    (
        Severity::High,
        "recovered_administrator",
        "A full administrator created by keyledger recover-admin: confirm the recovery was expected.",
        |row| row.flags.recovered_administrator,
    ),
    (
        Severity::Medium,
        "key_unused_90_days",
        "The key is older than 90 days and was not used in the last 90: revoke it if nobody needs it.",
        |row| row.flags.key_unused_90_days,
    ),
    (Severity::Medium, "key_older_than_90_days", "The key was generated more than 90 days ago: rotate it.", |row| {
        row.flags.key_older_than_90_days
    }),
    (
        Severity::Low,
        "write_on_api_role",
        "An API role with a write function: the app can change platform data, not only read it.",
        |row| row.flags.write_on_api_role,
    ),
];

/// Every finding of the report, most severe first, then in the report's (creation) order.
pub fn findings(rows: &[AccessReviewRow]) -> Vec<Finding> {
    let mut found: Vec<Finding> = rows
        .iter()
        .flat_map(|row| {
            FLAGS.iter().filter(|(_, _, _, raised)| raised(row)).map(|(severity, flag, advice, _)| Finding {
                severity: *severity,
                user_id: row.user_id.to_string(),
                name: row.name.clone(),
                flag,
                advice,
            })
        })
        .collect();
    // A stable sort keeps the report's order within a severity.
    found.sort_by_key(|finding| finding.severity);
    found
}

/// The current keys that pass checks now: their user is enabled and the key is active
/// (a disabled user's working key is a finding, not a working key).
fn working_keys(rows: &[AccessReviewRow]) -> impl Iterator<Item = &KeySummary> {
    rows.iter().filter(|row| row.enabled).filter_map(|row| row.key.as_ref()).filter(|key| key.state.is_usable())
}

/// The current keys that pass checks, counted by age.
pub fn keys_by_age(rows: &[AccessReviewRow]) -> Vec<Bar> {
    charts::keys_by_age(working_keys(rows).map(|key| key.age_days))
}

/// The current keys that pass checks, counted by their last recorded use at `now`.
pub fn keys_by_last_use(rows: &[AccessReviewRow], now: Timestamp) -> Vec<Bar> {
    charts::keys_by_last_use(now, working_keys(rows).map(|key| key.last_used_at))
}

/// How many days the checks chart covers, ending today.
pub const CHECK_DAYS: usize = 14;

/// How many records one backward read takes.
const CHUNK: usize = 1000;

/// Why the usage records could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// The storage failed.
    #[error("the log could not be read: {0}")]
    Storage(String),
    /// A record does not decode.
    #[error("record {seq} does not decode: {error}")]
    Record {
        /// Its position.
        seq: u64,
        /// What is wrong.
        error: record::RecordError,
    },
}

/// Checks allowed and refused per UTC day over the [`CHECK_DAYS`] days ending today, from
/// the usage records. The log is read backwards from its head and only until the first
/// record before the window (record times never go backwards), so the cost is the records
/// of the window, not of the whole log. Each key's counts in a record fall on the day of
/// its last check in that record.
pub fn checks_per_day(log: &impl EventLog, now: Timestamp) -> Result<Vec<DayChecks>, UsageError> {
    let window_start = charts::checks_per_day(now, CHECK_DAYS, [])
        .first()
        .and_then(|day| Timestamp::parse(&format!("{}T00:00:00Z", day.day)).ok())
        .unwrap_or(now);
    let mut counts: Vec<(Timestamp, u64, u64)> = Vec::new();
    let mut cursor = log.head().map_err(|e| UsageError::Storage(e.to_string()))?;
    'scan: while cursor >= 1 {
        let count = usize::try_from(cursor).unwrap_or(CHUNK).min(CHUNK);
        let start = cursor + 1 - count as u64;
        let chunk = log.read(start, count).map_err(|e| UsageError::Storage(e.to_string()))?;
        for stored in chunk.iter().rev() {
            let decoded =
                record::decode(&stored.bytes).map_err(|error| UsageError::Record { seq: stored.seq, error })?;
            match &decoded.event {
                Event::KeyUsageIntervalRecorded { from, keys, .. } => {
                    counts.extend(keys.iter().map(|used| (used.last_used_at(*from), used.allowed, used.refused)));
                }
                Event::KeyUsageRecorded { allowed, refused, last_used_at, .. } => {
                    counts.push((*last_used_at, *allowed, *refused));
                }
                _ => {}
            }
            if decoded.at < window_start {
                break 'scan;
            }
        }
        cursor = start - 1;
    }
    Ok(charts::checks_per_day(now, CHECK_DAYS, counts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{self, Actor, EventAccess, KeyId, KeyUse, UserId};
    use crate::log::record::Envelope;
    use crate::log::{ChainHash, MemoryLog};

    const DAY: i64 = 24 * 60 * 60 * 1000;

    fn user(n: u8) -> UserId {
        UserId::parse(&format!("usr_00000000000000{n:02x}")).unwrap()
    }

    fn key(n: u8) -> KeyId {
        KeyId::parse(&format!("key_00000000000000{n:02x}")).unwrap()
    }

    fn row(n: u8, flags: domain::ReviewFlags) -> AccessReviewRow {
        AccessReviewRow {
            user_id: user(n),
            name: format!("app {n}"),
            enabled: true,
            roles: vec![],
            functions: domain::FunctionSet::EMPTY,
            event_access: EventAccess::AllEvents,
            key: None,
            flags,
        }
    }

    #[test]
    fn every_raised_flag_is_a_finding_most_severe_first_in_report_order_within_a_severity() {
        let rows = vec![
            row(1, domain::ReviewFlags { write_on_api_role: true, key_older_than_90_days: true, ..Default::default() }),
            row(2, domain::ReviewFlags::default()),
            row(3, domain::ReviewFlags { disabled_user_with_active_key: true, ..Default::default() }),
            row(
                4,
                domain::ReviewFlags { key_older_than_90_days: true, key_unused_90_days: true, ..Default::default() },
            ),
            row(5, domain::ReviewFlags { recovered_administrator: true, ..Default::default() }),
        ];
        let listed: Vec<(Severity, String, &str)> =
            findings(&rows).into_iter().map(|finding| (finding.severity, finding.name, finding.flag)).collect();
        assert_eq!(
            listed,
            [
                (Severity::High, "app 3".to_owned(), "disabled_user_with_active_key"),
                (Severity::High, "app 5".to_owned(), "recovered_administrator"),
                (Severity::Medium, "app 1".to_owned(), "key_older_than_90_days"),
                (Severity::Medium, "app 4".to_owned(), "key_unused_90_days"),
                (Severity::Medium, "app 4".to_owned(), "key_older_than_90_days"),
                (Severity::Low, "app 1".to_owned(), "write_on_api_role"),
            ]
        );
        assert!(findings(&[row(2, domain::ReviewFlags::default())]).is_empty());
    }

    #[test]
    fn the_key_charts_count_current_keys_that_work_by_age_and_last_use() {
        let mut rows = vec![
            row(1, Default::default()),
            row(2, Default::default()),
            row(3, Default::default()),
            row(4, Default::default()),
        ];
        let now = Timestamp::from_unix_millis(400 * DAY);
        let summary = |age_days, state, last_used_at| domain::KeySummary {
            key_id: key(1),
            created_at: Timestamp::from_unix_millis(0),
            age_days,
            expires_at: None,
            state,
            last_used_at,
            policy_block: None,
            legacy: false,
        };
        rows[0].key = Some(summary(10, domain::KeyState::Active, Some(Timestamp::from_unix_millis(399 * DAY))));
        rows[1].key = Some(summary(200, domain::KeyState::Active, None));
        rows[2].key = Some(summary(5, domain::KeyState::Revoked { at: now }, None));
        rows[3].key = Some(summary(5, domain::KeyState::Active, None));
        rows[3].enabled = false;
        let by_age: Vec<u64> = keys_by_age(&rows).iter().map(|bar| bar.value).collect();
        assert_eq!(by_age, [1, 0, 0, 1, 0], "neither the revoked key nor the disabled user's is counted");
        let by_use: Vec<u64> = keys_by_last_use(&rows, now).iter().map(|bar| bar.value).collect();
        assert_eq!(by_use, [1, 0, 1, 0, 0, 0]);
    }

    fn usage_log(records: &[(i64, Event)]) -> MemoryLog {
        let log = MemoryLog::new();
        let mut prev = ChainHash::GENESIS;
        for (seq, (millis, event)) in (1..).zip(records) {
            let envelope =
                Envelope { seq, at: Timestamp::from_unix_millis(*millis), actor: Actor::System, justification: None };
            let (stored, hash) = record::encode(&envelope, event, prev);
            log.append(seq - 1, &[stored]).unwrap();
            prev = hash;
        }
        log
    }

    fn interval(from: i64, uses: &[(u8, u64, u64, u64)]) -> Event {
        Event::KeyUsageIntervalRecorded {
            from: Timestamp::from_unix_millis(from),
            to: Timestamp::from_unix_millis(from + DAY),
            keys: uses
                .iter()
                .map(|(n, allowed, refused, last_after)| KeyUse {
                    user_id: user(*n),
                    key_id: key(*n),
                    allowed: *allowed,
                    refused: *refused,
                    first_after: 0,
                    last_after: *last_after,
                    functions: None,
                })
                .collect(),
        }
    }

    #[test]
    fn checks_per_day_sum_the_usage_records_of_the_window_and_stop_before_it() {
        let now = Timestamp::from_unix_millis(100 * DAY + 1000);
        let log = usage_log(&[
            // Day 80: before the window.
            (80 * DAY, interval(80 * DAY, &[(1, 1000, 1000, 0)])),
            (81 * DAY, Event::UserEnabled { user_id: user(1) }),
            // Day 90, two keys; one's last check the next day.
            (91 * DAY, interval(90 * DAY, &[(1, 5, 1, 10), (2, 7, 0, DAY as u64 + 10)])),
            (
                100 * DAY,
                Event::KeyUsageRecorded {
                    user_id: user(1),
                    key_id: key(1),
                    allowed: 3,
                    refused: 2,
                    first_used_at: Timestamp::from_unix_millis(100 * DAY),
                    last_used_at: Timestamp::from_unix_millis(100 * DAY + 5),
                },
            ),
        ]);
        let days = checks_per_day(&log, now).unwrap();
        assert_eq!(days.len(), CHECK_DAYS);
        let counted: Vec<(usize, u64, u64)> = days
            .iter()
            .enumerate()
            .filter(|(_, day)| day.allowed + day.refused > 0)
            .map(|(index, day)| (index, day.allowed, day.refused))
            .collect();
        // The window is days 87 to 100: day 90 is index 3, day 91 index 4, day 100 index 13.
        assert_eq!(counted, [(3, 5, 1), (4, 7, 0), (13, 3, 2)]);
        assert_eq!(days[13].day, "1970-04-11");
        assert!(checks_per_day(&MemoryLog::new(), now).unwrap().iter().all(|day| day.allowed + day.refused == 0));
    }
}
