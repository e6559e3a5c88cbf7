//! The audit trail as the console shows it: newest first, filtered by type, actor, subject
//! and time, paged backwards from the head, each record with its stored JSON; and the
//! download of the whole filtered set, oldest first, as JSON (the records exactly as
//! stored) or CSV (RFC 4180, formula cells neutralised by the access report's writer).
//!
//! The filters are those of `listAuditEvents` (the same names and meanings: `from`
//! inclusive, `to` exclusive), read from a form, so each error names the field it is about.

use std::borrow::Cow;
use std::io::Write;

use serde::Deserialize;

use crate::domain::{Actor, Event, Timestamp};
use crate::log::{EventLog, StoredRecord};
use crate::wire::report::write_csv_row;

/// The most records one page examines, as for `listAuditEvents`: a page that reaches it
/// ends there, with a cursor to carry on from.
pub const MAX_SCANNED_PER_PAGE: usize = 10_000;

/// How many records a page shows.
pub const PAGE_SIZE: usize = 50;

/// How many records one read of the log takes.
const CHUNK: usize = 1000;

/// The trail's form, as typed: every field optional, an empty field means no filter.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct TrailForm {
    /// Event types, comma-separated (a `<select>` sends one).
    #[serde(rename = "type")]
    pub kind: String,
    /// A user id or `system`.
    pub actor: String,
    /// A role, user or group id, or `system`.
    pub subject: String,
    /// From this time, inclusive (RFC 3339, or a browser's `YYYY-MM-DDTHH:MM`, read as UTC).
    pub from: String,
    /// Before this time, exclusive.
    pub to: String,
    /// Show records before this sequence number (the paging cursor).
    pub before: String,
}

/// A form field's problem, in words, shown next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name in the form.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// The filters a record must all pass to be listed.
#[derive(Debug, Clone, Default)]
pub struct TrailFilter {
    types: Option<Vec<&'static str>>,
    actor: Option<String>,
    subject: Option<String>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    before: Option<u64>,
}

/// Reads a time typed in a form: RFC 3339, or what `<input type="datetime-local">` sends
/// (`YYYY-MM-DDTHH:MM`, with or without seconds), read as UTC.
pub fn parse_time(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    Timestamp::parse(text)
        .or_else(|error| {
            let local = text.len() == 16 || text.len() == 19;
            let widened = if text.len() == 16 { format!("{text}:00Z") } else { format!("{text}Z") };
            if local { Timestamp::parse(&widened).map_err(|_| error) } else { Err(error) }
        })
        .map_err(|_| format!("“{text}” is not a time: write it as 2027-01-31T17:00 (UTC) or in RFC 3339"))
}

fn given(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|text| !text.is_empty())
}

impl TrailFilter {
    /// The filter a form asks for, or every field's problem.
    pub fn parse(form: &TrailForm) -> Result<TrailFilter, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut error = |field, message| errors.push(FieldError { field, message });
        let types = given(&form.kind).map(|names| {
            names
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .filter_map(|name| {
                    let known = Event::TYPE_NAMES.iter().copied().find(|known| *known == name);
                    if known.is_none() {
                        error("type", format!("there is no event type “{name}”"));
                    }
                    known
                })
                .collect::<Vec<_>>()
        });
        let mut id = |field, text: &str| {
            given(text).and_then(|text| match Actor::parse(text) {
                Ok(_) => Some(text.to_owned()),
                Err(_) if field == "subject" && is_subject_id(text) => Some(text.to_owned()),
                Err(_) => {
                    let what = if field == "actor" { "a user id" } else { "a role, user or group id" };
                    error(field, format!("“{text}” is not {what} or “system”"));
                    None
                }
            })
        };
        let actor = id("actor", &form.actor);
        let subject = id("subject", &form.subject);
        let mut time =
            |field, text: &str| given(text).and_then(|text| parse_time(text).map_err(|m| error(field, m)).ok());
        let from = time("from", &form.from);
        let to = time("to", &form.to);
        if from.zip(to).is_some_and(|(from, to)| to < from) {
            error("to", "“to” is before “from”".to_owned());
        }
        let before = given(&form.before).and_then(|text| {
            text.parse::<u64>().map_err(|_| error("before", format!("“{text}” is not a record number"))).ok()
        });
        if errors.is_empty() { Ok(TrailFilter { types, actor, subject, from, to, before }) } else { Err(errors) }
    }

    /// The filter with every record passing.
    pub fn everything() -> TrailFilter {
        TrailFilter::default()
    }

    /// Whether a record, by its envelope, passes every filter but the time range.
    fn admits(&self, envelope: &Envelope<'_>) -> bool {
        self.types.as_ref().is_none_or(|types| types.contains(&envelope.kind.as_ref()))
            && self.actor.as_deref().is_none_or(|actor| actor == envelope.actor)
            && self.subject.as_deref().is_none_or(|subject| subject == envelope.subject)
    }
}

/// Whether `text` is a role, group or key id (prefix and 16 lowercase hex digits).
fn is_subject_id(text: &str) -> bool {
    ["role_", "grp_", "key_"].iter().any(|prefix| {
        text.strip_prefix(prefix)
            .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    })
}

/// The members of a record the filters and the listing read.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    at: Timestamp,
    #[serde(borrow)]
    actor: Cow<'a, str>,
    #[serde(borrow)]
    subject: Cow<'a, str>,
}

/// Why the trail could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrailError {
    /// The storage failed.
    #[error("the log could not be read: {0}")]
    Storage(String),
    /// A stored record has no readable envelope.
    #[error("record {0} could not be read")]
    Unreadable(u64),
    /// Writing the download failed (the client went away).
    #[error("the download could not be written: {0}")]
    Write(#[from] std::io::Error),
}

fn envelope(record: &StoredRecord) -> Result<Envelope<'_>, TrailError> {
    serde_json::from_slice(&record.bytes).map_err(|_| TrailError::Unreadable(record.seq))
}

/// One record as the trail lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailEntry {
    /// Its position.
    pub seq: u64,
    /// When it was written.
    pub at: Timestamp,
    /// The event type.
    pub kind: String,
    /// Who made it: a user id or `system`.
    pub actor: String,
    /// What it is about.
    pub subject: String,
    /// The record as stored, indented for reading ([`indent`]).
    pub json: String,
}

/// A page of the trail, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailPage {
    /// The records, newest first.
    pub entries: Vec<TrailEntry>,
    /// The `before` cursor of the next (older) page; `None` when nothing older passes.
    pub older: Option<u64>,
    /// How many records were examined.
    pub scanned: usize,
}

/// Indents compact JSON for reading, two spaces a level, changing nothing but whitespace
/// outside strings: the members keep their stored order and every value its stored text,
/// so what a reviewer reads is the record that was hashed, laid out.
pub fn indent(compact: &str) -> String {
    let mut out = String::with_capacity(compact.len() * 2);
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    let mut characters = compact.chars().peekable();
    while let Some(character) = characters.next() {
        if in_string {
            out.push(character);
            match (escaped, character) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match character {
            '"' => {
                in_string = true;
                out.push(character);
            }
            '{' | '[' => {
                out.push(character);
                let closes = if character == '{' { '}' } else { ']' };
                if characters.peek() == Some(&closes) {
                    // An empty object or array stays on its line.
                    out.push(closes);
                    characters.next();
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(character);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            whitespace if whitespace.is_whitespace() => {}
            other => out.push(other),
        }
    }
    out
}

fn entry(record: &StoredRecord, envelope: &Envelope<'_>) -> TrailEntry {
    let json = indent(&String::from_utf8_lossy(&record.bytes));
    TrailEntry {
        seq: record.seq,
        at: envelope.at,
        kind: envelope.kind.clone().into_owned(),
        actor: envelope.actor.clone().into_owned(),
        subject: envelope.subject.clone().into_owned(),
        json,
    }
}

/// Reads one page, newest first: up to `limit` records before the filter's `before` (or
/// from the head) that pass it, examining at most [`MAX_SCANNED_PER_PAGE`] records. Record
/// times never go backwards, so the scan skips records at or after `to` and stops at the
/// first before `from`.
pub fn newest_first(log: &impl EventLog, filter: &TrailFilter, limit: usize) -> Result<TrailPage, TrailError> {
    let head = log.head().map_err(|e| TrailError::Storage(e.to_string()))?;
    // The highest position still to examine.
    let mut cursor = filter.before.map_or(head, |before| before.saturating_sub(1).min(head));
    let mut entries: Vec<TrailEntry> = Vec::new();
    let mut scanned = 0;
    while cursor >= 1 && scanned < MAX_SCANNED_PER_PAGE {
        let count = (MAX_SCANNED_PER_PAGE - scanned).min(CHUNK).min(usize::try_from(cursor).unwrap_or(CHUNK));
        let start = cursor + 1 - count as u64;
        let chunk = log.read(start, count).map_err(|e| TrailError::Storage(e.to_string()))?;
        if chunk.is_empty() {
            break;
        }
        let highest = cursor;
        for record in chunk.iter().rev().filter(|record| record.seq <= highest) {
            scanned += 1;
            cursor = record.seq - 1;
            let envelope = envelope(record)?;
            if filter.to.is_some_and(|to| envelope.at >= to) {
                continue;
            }
            if filter.from.is_some_and(|from| envelope.at < from) {
                return Ok(TrailPage { entries, older: None, scanned });
            }
            if filter.admits(&envelope) {
                if entries.len() == limit {
                    let older = entries.last().map(|last| last.seq);
                    return Ok(TrailPage { entries, older, scanned });
                }
                entries.push(entry(record, &envelope));
            }
        }
        cursor = cursor.min(start - 1);
    }
    let older = (cursor >= 1).then_some(cursor + 1);
    Ok(TrailPage { entries, older, scanned })
}

/// The formats the filtered set downloads in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadFormat {
    /// A JSON array of the records, each exactly as stored (so each can be re-hashed).
    Json,
    /// CSV: one row per record, the event's data as compact JSON in one cell.
    Csv,
}

impl DownloadFormat {
    /// The media type.
    pub fn content_type(self) -> &'static str {
        match self {
            DownloadFormat::Json => "application/json",
            DownloadFormat::Csv => "text/csv; charset=utf-8; header=present",
        }
    }

    /// The file name offered.
    pub fn file_name(self) -> &'static str {
        match self {
            DownloadFormat::Json => "audit-trail.json",
            DownloadFormat::Csv => "audit-trail.csv",
        }
    }
}

/// The CSV header of the download.
pub const CSV_COLUMNS: [&str; 9] = ["seq", "at", "type", "actor", "subject", "id", "data", "prev_hash", "hash"];

/// The members of a record the CSV writes.
#[derive(Deserialize)]
struct Full<'a> {
    seq: u64,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    at: Cow<'a, str>,
    #[serde(borrow)]
    actor: Cow<'a, str>,
    #[serde(borrow)]
    subject: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    prev_hash: Cow<'a, str>,
    #[serde(borrow)]
    hash: Cow<'a, str>,
}

/// Writes every record that passes the filter (its `before` aside), oldest first, in a
/// format, reading the log in chunks; the count written.
pub fn download(
    log: &impl EventLog,
    filter: &TrailFilter,
    format: DownloadFormat,
    sink: &mut impl Write,
) -> Result<u64, TrailError> {
    let head = log.head().map_err(|e| TrailError::Storage(e.to_string()))?;
    let mut written = 0u64;
    match format {
        DownloadFormat::Json => sink.write_all(b"[")?,
        DownloadFormat::Csv => {
            let mut header = String::new();
            write_csv_row(&mut header, CSV_COLUMNS.iter().map(|column| (*column).to_owned()));
            sink.write_all(header.as_bytes())?;
        }
    }
    let mut next = 1;
    'scan: while next <= head {
        let wanted = usize::try_from(head - next + 1).unwrap_or(CHUNK).min(CHUNK);
        let chunk = log.read(next, wanted).map_err(|e| TrailError::Storage(e.to_string()))?;
        if chunk.is_empty() {
            break;
        }
        for record in &chunk {
            next = record.seq + 1;
            let envelope = envelope(record)?;
            if filter.to.is_some_and(|to| envelope.at >= to) {
                break 'scan;
            }
            if filter.from.is_some_and(|from| envelope.at < from) || !filter.admits(&envelope) {
                continue;
            }
            match format {
                DownloadFormat::Json => {
                    sink.write_all(if written == 0 { b"\n" } else { b",\n" })?;
                    sink.write_all(&record.bytes)?;
                }
                DownloadFormat::Csv => {
                    let full: Full<'_> =
                        serde_json::from_slice(&record.bytes).map_err(|_| TrailError::Unreadable(record.seq))?;
                    let mut row = String::new();
                    write_csv_row(
                        &mut row,
                        [
                            full.seq.to_string(),
                            full.at.into_owned(),
                            full.kind.into_owned(),
                            full.actor.into_owned(),
                            full.subject.into_owned(),
                            full.id.into_owned(),
                            full.data.get().to_owned(),
                            full.prev_hash.into_owned(),
                            full.hash.into_owned(),
                        ]
                        .into_iter(),
                    );
                    sink.write_all(row.as_bytes())?;
                }
            }
            written += 1;
        }
    }
    if format == DownloadFormat::Json {
        sink.write_all(b"\n]\n")?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{GroupId, RoleId, UserId};
    use crate::log::record::{self, Envelope as RecordEnvelope};
    use crate::log::{ChainHash, MemoryLog};

    fn at(minute: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_800_000_000_000 + minute * 60_000)
    }

    fn user(n: u8) -> UserId {
        UserId::parse(&format!("usr_00000000000000{n:02x}")).unwrap()
    }

    /// A log of `n` users created one a minute, by user 1 (the first by the system), each
    /// named so a spreadsheet would run it: `=1+n`.
    fn log(n: u8) -> MemoryLog {
        let log = MemoryLog::new();
        let mut prev = ChainHash::GENESIS;
        for (seq, index) in (1..).zip(1..=n) {
            let event = Event::UserCreated { user_id: user(index), name: format!("=1+{index}"), email: None };
            let actor = if index == 1 { Actor::System } else { Actor::User(user(1)) };
            let envelope = RecordEnvelope { seq, at: at(i64::from(index)), actor, justification: None };
            let (stored, hash) = record::encode(&envelope, &event, prev);
            log.append(seq - 1, &[stored]).unwrap();
            prev = hash;
        }
        log
    }

    fn form(fields: &[(&str, &str)]) -> TrailForm {
        let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        serde_json::from_value(serde_json::Value::Object(
            form_urlencoded::parse(query.as_bytes())
                .map(|(key, value)| (key.into_owned(), serde_json::Value::String(value.into_owned())))
                .collect(),
        ))
        .unwrap()
    }

    fn filter(fields: &[(&str, &str)]) -> TrailFilter {
        TrailFilter::parse(&form(fields)).unwrap()
    }

    fn seqs(page: &TrailPage) -> Vec<u64> {
        page.entries.iter().map(|entry| entry.seq).collect()
    }

    #[test]
    fn the_trail_lists_newest_first_and_pages_back_to_the_first_record() {
        let log = log(5);
        let first = newest_first(&log, &TrailFilter::everything(), 2).unwrap();
        assert_eq!((seqs(&first), first.older), (vec![5, 4], Some(4)));
        let second = newest_first(&log, &filter(&[("before", "4")]), 2).unwrap();
        assert_eq!((seqs(&second), second.older), (vec![3, 2], Some(2)));
        let last = newest_first(&log, &filter(&[("before", "2")]), 2).unwrap();
        assert_eq!((seqs(&last), last.older), (vec![1], None));
        let empty = newest_first(&MemoryLog::new(), &TrailFilter::everything(), 2).unwrap();
        assert_eq!((seqs(&empty), empty.older), (vec![], None));
        // A cursor past the head starts at the head.
        assert_eq!(seqs(&newest_first(&log, &filter(&[("before", "99")]), 9).unwrap()), [5, 4, 3, 2, 1]);
    }

    #[test]
    fn each_entry_carries_its_envelope_and_its_stored_json() {
        let log = log(2);
        let page = newest_first(&log, &TrailFilter::everything(), 1).unwrap();
        let entry = &page.entries[0];
        assert_eq!((entry.kind.as_str(), entry.actor.as_str()), ("UserCreated", user(1).to_string().as_str()));
        assert_eq!(entry.subject, user(2).to_string());
        assert_eq!(entry.at, at(2));
        let stored = String::from_utf8(log.read(2, 1).unwrap()[0].bytes.clone()).unwrap();
        assert_eq!(entry.json, indent(&stored));
        assert!(entry.json.contains('\n'), "indented for reading");
    }

    #[test]
    fn filters_by_type_actor_subject_and_time_select_the_same_records_as_their_definitions() {
        let log = log(6);
        let by_subject = newest_first(&log, &filter(&[("subject", &user(3).to_string())]), 10).unwrap();
        assert_eq!(seqs(&by_subject), [3]);
        let by_actor = newest_first(&log, &filter(&[("actor", "system")]), 10).unwrap();
        assert_eq!(seqs(&by_actor), [1]);
        let by_type = newest_first(&log, &filter(&[("type", "RoleCreated,KeyRevoked")]), 10).unwrap();
        assert_eq!(seqs(&by_type), Vec::<u64>::new());
        let by_type = newest_first(&log, &filter(&[("type", "UserCreated")]), 10).unwrap();
        assert_eq!(by_type.entries.len(), 6);
        // `from` inclusive, `to` exclusive, as listAuditEvents.
        let from = at(2).to_string();
        let to = at(5).to_string();
        let window = newest_first(&log, &filter(&[("from", &from), ("to", &to)]), 10).unwrap();
        assert_eq!((seqs(&window), window.older), (vec![4, 3, 2], None));
    }

    #[test]
    fn indenting_changes_only_whitespace_outside_strings_and_keeps_the_stored_order() {
        let compact =
            r#"{"seq":1,"type":"X","data":{"name":"a, b: {c} [d] \"e\" \\","list":[],"empty":{},"n":[1,2]},"z":null}"#;
        let indented = indent(compact);
        assert_eq!(
            indented,
            "{\n  \"seq\": 1,\n  \"type\": \"X\",\n  \"data\": {\n    \"name\": \"a, b: {c} [d] \\\"e\\\" \\\\\",\n    \
             \"list\": [],\n    \"empty\": {},\n    \"n\": [\n      1,\n      2\n    ]\n  },\n  \"z\": null\n}"
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&indented).unwrap(),
            serde_json::from_str::<serde_json::Value>(compact).unwrap()
        );
        // Every stored record survives the round trip: the same bytes once the added
        // whitespace (outside strings) is taken away.
        for stored in log(3).read(1, 3).unwrap() {
            let text = String::from_utf8(stored.bytes.clone()).unwrap();
            let shown = indent(&text);
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&shown).unwrap(),
                serde_json::from_str::<serde_json::Value>(&text).unwrap()
            );
            let keys = |json: &str| {
                json.match_indices("\":")
                    .map(|(at, _)| json[..at].rsplit('"').next().unwrap().to_owned())
                    .collect::<Vec<_>>()
            };
            assert_eq!(keys(&shown), keys(&text), "members in their stored order");
        }
    }

    #[test]
    fn a_browser_s_local_time_is_read_as_utc() {
        assert_eq!(parse_time("2027-01-31T17:00").unwrap(), Timestamp::parse("2027-01-31T17:00:00Z").unwrap());
        assert_eq!(parse_time("2027-01-31T17:00:05").unwrap(), Timestamp::parse("2027-01-31T17:00:05Z").unwrap());
        assert!(parse_time("yesterday").unwrap_err().contains("“yesterday” is not a time"));
    }

    #[test]
    fn every_malformed_field_is_named_with_its_problem() {
        let errors = TrailFilter::parse(&form(&[
            ("type", "UserCreated,Nope"),
            ("actor", "grp_0000000000000001"),
            ("subject", "robert'); drop"),
            ("from", "2027-02-01T00:00:00Z"),
            ("to", "2027-01-01T00:00:00Z"),
            ("before", "-1"),
        ]))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|error| error.field).collect();
        assert_eq!(fields, ["type", "actor", "subject", "to", "before"]);
        assert!(errors[0].message.contains("“Nope”"));
        let bad_time = TrailFilter::parse(&form(&[("from", "soon")])).unwrap_err();
        assert_eq!(bad_time[0].field, "from");
        // Role, group and key ids are subjects; empty fields are no filter.
        let group = GroupId::parse("grp_00000000000000a1").unwrap().to_string();
        let role = RoleId::parse("role_00000000000000a1").unwrap().to_string();
        assert!(TrailFilter::parse(&form(&[("subject", &group)])).is_ok());
        assert!(TrailFilter::parse(&form(&[("subject", &role), ("actor", " "), ("type", "")])).is_ok());
    }

    #[test]
    fn a_filtered_page_examines_a_bounded_number_of_records_and_says_where_to_carry_on() {
        // More records than one page examines, none passing: the page is empty with a cursor.
        let log = MemoryLog::new();
        let mut prev = ChainHash::GENESIS;
        let total = MAX_SCANNED_PER_PAGE as u64 + 5;
        let records: Vec<_> = (1..=total)
            .map(|seq| {
                let event = Event::UserEnabled { user_id: user(1) };
                let (stored, hash) = record::encode(
                    &RecordEnvelope { seq, at: at(0), actor: Actor::System, justification: None },
                    &event,
                    prev,
                );
                prev = hash;
                stored
            })
            .collect();
        log.append(0, &records).unwrap();
        let page = newest_first(&log, &filter(&[("type", "RoleCreated")]), 10).unwrap();
        assert_eq!((page.entries.len(), page.scanned), (0, MAX_SCANNED_PER_PAGE));
        assert_eq!(page.older, Some(6));
        let rest = newest_first(&log, &filter(&[("type", "RoleCreated"), ("before", "6")]), 10).unwrap();
        assert_eq!((rest.scanned, rest.older), (5, None));
    }

    #[test]
    fn the_json_download_is_the_filtered_records_exactly_as_stored_oldest_first() {
        let log = log(4);
        let mut json = Vec::new();
        let count =
            download(&log, &filter(&[("actor", &user(1).to_string())]), DownloadFormat::Json, &mut json).unwrap();
        assert_eq!(count, 3);
        let parsed: Vec<serde_json::Value> = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed.iter().map(|record| record["seq"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 3, 4]);
        for stored in log.read(2, 3).unwrap() {
            assert!(json.windows(stored.bytes.len()).any(|window| window == stored.bytes.as_slice()));
        }
        let mut none = Vec::new();
        download(&log, &filter(&[("type", "KeyRevoked")]), DownloadFormat::Json, &mut none).unwrap();
        assert_eq!(serde_json::from_slice::<Vec<serde_json::Value>>(&none).unwrap().len(), 0);
    }

    #[test]
    fn the_csv_download_has_a_row_per_record_with_the_data_as_one_quoted_json_cell() {
        let log = log(2);
        let mut csv = Vec::new();
        download(&log, &TrailFilter::everything(), DownloadFormat::Csv, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(lines.len(), 4, "header, two rows, and the last line end");
        assert!(lines[1].starts_with(&format!("1,{},UserCreated,system,{}", at(1), user(1))));
        // The data cell holds commas and quotes: quoted, inner quotes doubled, and it reads
        // back as the record's data.
        let start = lines[2].find(",\"{").unwrap() + 2;
        let end = lines[2].find("}\",").unwrap() + 1;
        let cell = &lines[2][start..end];
        let data: serde_json::Value = serde_json::from_str(&cell.replace("\"\"", "\"")).unwrap();
        assert_eq!(data["name"], "=1+2");
        assert_eq!(data["user_id"], user(2).to_string());
    }
}
