//! The audit trail: the log's records, exactly as stored (filtered by type, actor, subject
//! and time if asked), and the chain's verification.

use std::borrow::Cow;

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::{ApiError, Problem};
use super::responses::{AuditRead, Guarded};
use super::{Page, Shared};
use crate::domain::{Actor, Event, FunctionId, Timestamp};
use crate::log::{EventLog, StoredRecord};

/// One record of the log, exactly as stored: hashing its compact JSON without the `hash`
/// member gives `hash`, and `prev_hash` is the previous record's `hash`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "seq": 5,
    "type": "RoleAssigned",
    "v": 1,
    "id": "5b3c3f0e-8a57-4b7b-9d43-2f0f8cbd4a61",
    "at": "2027-01-31T17:00:00.000Z",
    "actor": "usr_00aa11bb22cc33dd",
    "justification": "OPS-1234",
    "subject": "usr_5f0c2a9e1b7d4c3a",
    "data": {"user_id": "usr_5f0c2a9e1b7d4c3a", "role_id": "role_9d8e7f6a5b4c3d2e"},
    "prev_hash": "9b1f…",
    "hash": "0c7e…"
}))]
pub struct AuditRecord {
    /// The position in the log, gapless from 1.
    pub seq: u64,
    /// The event type, such as `RoleAssigned`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event's schema version.
    pub v: u32,
    /// A unique id for the event.
    pub id: String,
    /// When it was recorded (RFC 3339, UTC).
    pub at: String,
    /// The user whose key made the change, or `system` for bootstrap.
    pub actor: String,
    /// Why, as the admin said in `Keyledger-Justification` (every record of the change
    /// carries it). Absent when it did not, and in records written before it existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// The role, user or group it is about; `system` for records about many (key usage).
    pub subject: String,
    /// The event's fields.
    pub data: serde_json::Value,
    /// The previous record's hash (64 zeros for the first record).
    pub prev_hash: String,
    /// blake3 of this record without its `hash` member.
    pub hash: String,
}

/// A page of records.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecordList {
    /// The records, in log order.
    pub items: Vec<AuditRecord>,
    /// The `after` value for the next page (the last `seq` returned); absent on the last page.
    pub next: Option<u64>,
}

/// The result of recomputing the hash chain.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"valid": true, "size": 42, "verified": 42, "checkpoints": 3, "head_hash": "0c7e…", "error": null}))]
pub struct AuditVerification {
    /// Whether every record verified: hashes, links, gapless sequence and unique ids.
    pub valid: bool,
    /// How many records the log holds.
    pub size: u64,
    /// How many records verified, from the first, before any failure.
    pub verified: u64,
    /// How many signed checkpoints the records were found to match (root and signature).
    pub checkpoints: u64,
    /// The hash of the last verified record.
    pub head_hash: String,
    /// What failed, if anything.
    pub error: Option<String>,
}

/// The listing's query: paging, and filters that a record must all pass to be listed.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// How many records to return, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000, example = 100)]
    pub limit: Option<u32>,
    /// The `next` value of the previous page; omit for the first page.
    #[param(minimum = 0, maximum = 9223372036854775807_i64, example = 0)]
    pub after: Option<u64>,
    /// Only records of these event types, comma-separated, such as
    /// `KeyGenerated,KeyRevoked`.
    #[serde(rename = "type")]
    #[param(rename = "type", example = "KeyGenerated,KeyRevoked")]
    pub kind: Option<String>,
    /// Only records made by this actor: a user id, or `system`.
    #[param(example = "usr_00aa11bb22cc33dd", pattern = "^(system|usr_[0-9a-f]{16})$")]
    pub actor: Option<String>,
    /// Only records about this role, user or group id (or `system`).
    #[param(example = "usr_5f0c2a9e1b7d4c3a")]
    pub subject: Option<String>,
    /// Only records written at or after this time (RFC 3339; inclusive).
    #[param(example = "2027-01-31T00:00:00Z", format = DateTime)]
    pub from: Option<String>,
    /// Only records written before this time (RFC 3339; exclusive).
    #[param(example = "2027-02-01T00:00:00Z", format = DateTime)]
    pub to: Option<String>,
}

/// The most records one filtered page examines. A page that reaches it before it is full
/// ends there, with `next` set to the last record examined, so that the client carries on.
pub const MAX_SCANNED_PER_PAGE: usize = 10_000;

/// What a record must be to be listed; `None` lets every record through.
#[derive(Debug, Default)]
pub(super) struct AuditFilter {
    types: Option<Vec<&'static str>>,
    actor: Option<String>,
    subject: Option<String>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
}

/// The members of a record the filters read; the rest is skipped unparsed.
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

/// Whether to list a record, and whether any later record could be listed.
pub(super) enum Verdict {
    List,
    Skip,
    /// The record, and every later one, is written at or after `to`.
    End,
}

impl AuditFilter {
    fn of(query: &AuditQuery) -> Result<AuditFilter, ApiError> {
        let filter = AuditFilter::matching(query.kind.as_deref(), query.actor.as_deref(), query.subject.as_deref())?;
        let time = |name: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(Timestamp::parse)
                .transpose()
                .map_err(|error| ApiError::InvalidQuery(format!("{name}: {error}")))
        };
        let (from, to) = (time("from", &query.from)?, time("to", &query.to)?);
        if from.zip(to).is_some_and(|(from, to)| to < from) {
            return Err(ApiError::ReversedRange);
        }
        Ok(AuditFilter { from, to, ..filter })
    }

    /// The filters by event type (comma-separated names), actor and subject, checked as the
    /// listing checks them; `listAuditEvents` and `watchAuditEvents` share them.
    pub(super) fn matching(
        kind: Option<&str>,
        actor: Option<&str>,
        subject: Option<&str>,
    ) -> Result<AuditFilter, ApiError> {
        let types = kind
            .map(|names| {
                names
                    .split(',')
                    .map(|name| {
                        let name = name.trim();
                        Event::TYPE_NAMES
                            .iter()
                            .copied()
                            .find(|known| *known == name)
                            .ok_or_else(|| ApiError::UnknownEventType(name.to_owned()))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        if let Some(actor) = actor {
            Actor::try_from(actor.to_owned())
                .map_err(|_| ApiError::InvalidQuery("actor must be `system` or a user id".to_owned()))?;
        }
        Ok(AuditFilter {
            types,
            actor: actor.map(str::to_owned),
            subject: subject.map(str::to_owned),
            from: None,
            to: None,
        })
    }

    /// Whether every record passes.
    pub(super) fn is_empty(&self) -> bool {
        self.types.is_none()
            && self.actor.is_none()
            && self.subject.is_none()
            && self.from.is_none()
            && self.to.is_none()
    }

    /// Whether `record` passes the filter; an unreadable record is an internal error.
    pub(super) fn judge(&self, record: &StoredRecord) -> Result<Verdict, ApiError> {
        let envelope: Envelope<'_> = serde_json::from_slice(&record.bytes).map_err(|error| {
            tracing::error!(seq = record.seq, %error, "a stored record has no readable envelope");
            ApiError::Internal
        })?;
        // Record times never go backwards, so nothing after this one is before `to`.
        if self.to.is_some_and(|to| envelope.at >= to) {
            return Ok(Verdict::End);
        }
        let listed = self.from.is_none_or(|from| envelope.at >= from)
            && self.types.as_ref().is_none_or(|types| types.contains(&envelope.kind.as_ref()))
            && self.actor.as_deref().is_none_or(|actor| actor == envelope.actor)
            && self.subject.as_deref().is_none_or(|subject| subject == envelope.subject);
        Ok(if listed { Verdict::List } else { Verdict::Skip })
    }
}

/// Reads the page: up to `limit` records after `after` that pass the filter, and the
/// `next` cursor. Unfiltered, that is the next `limit` records. Filtered, at most
/// [`MAX_SCANNED_PER_PAGE`] records are examined; `next` is the last record listed when a
/// later one passes the filter, the last record examined when the scan stopped at its
/// bound, and `None` when the log (or the time range) ended.
fn read_page(
    log: &impl EventLog,
    filter: &AuditFilter,
    after: u64,
    limit: usize,
) -> Result<(Vec<StoredRecord>, Option<u64>), ApiError> {
    let storage = |error: &dyn std::error::Error| ApiError::StorageUnavailable(error.to_string());
    if filter.is_empty() {
        let mut records = log.read(after.saturating_add(1), limit.saturating_add(1)).map_err(|e| storage(&e))?;
        let more = records.len() > limit;
        records.truncate(limit);
        let next = records.last().filter(|_| more).map(|last| last.seq);
        return Ok((records, next));
    }
    let mut listed: Vec<StoredRecord> = Vec::new();
    let (mut scanned, mut cursor) = (0, after);
    while scanned < MAX_SCANNED_PER_PAGE {
        let wanted = (MAX_SCANNED_PER_PAGE - scanned).min(Page::MAX_LIMIT as usize);
        let chunk = log.read(cursor.saturating_add(1), wanted).map_err(|e| storage(&e))?;
        if chunk.is_empty() {
            return Ok((listed, None));
        }
        for record in chunk {
            scanned += 1;
            cursor = record.seq;
            match filter.judge(&record)? {
                Verdict::End => return Ok((listed, None)),
                Verdict::Skip => {}
                Verdict::List if listed.len() == limit => {
                    let next = listed.last().map(|last| last.seq);
                    return Ok((listed, next));
                }
                Verdict::List => listed.push(record),
            }
        }
    }
    Ok((listed, Some(cursor)))
}

/// Lists the log's records in order, exactly as stored, paginated by `seq`, optionally
/// filtered by event type, actor, subject and time range (all filters must pass). The
/// cursor is a `seq`, so pages are stable while records are appended. A filtered page
/// examines at most 10000 records: it may then hold fewer than `limit` records (even none)
/// and still have a `next`, from which the listing carries on.
/// Needs `security.audit.read`.
#[utoipa::path(
    operation_id = "listAuditEvents",
    tag = "audit",
    params(AuditQuery),
    responses(
        Guarded<AuditRead>,
        (status = 200, description = "A page of records", body = AuditRecordList),
        (status = 400, description = "Bad paging or filter parameters; an unknown event type is `unknown_event_type`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`to` is before `from` (`reversed_range`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The log could not be read", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/audit/events")]
pub async fn list_audit_events(state: Shared, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::AUDIT_READ)?;
    let query: AuditQuery = super::query(&request)?;
    let page = Page::new(query.limit, query.after)?;
    let limit = page.limit()?;
    let filter = AuditFilter::of(&query)?;
    let after = page.after();
    let reader = state.clone();
    let (shown, next) = web::block(move || read_page(reader.ledger.log(), &filter, after, limit))
        .await
        .map_err(|_| ApiError::Internal)??;
    // The records are spliced in as stored, so clients can re-hash the exact bytes.
    let mut body = Vec::with_capacity(shown.iter().map(|r| r.bytes.len() + 1).sum::<usize>() + 32);
    body.extend_from_slice(b"{\"items\":[");
    for (index, record) in shown.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&record.bytes);
    }
    body.extend_from_slice(b"],\"next\":");
    match next {
        Some(next) => body.extend_from_slice(next.to_string().as_bytes()),
        None => body.extend_from_slice(b"null"),
    }
    body.push(b'}');
    Ok(HttpResponse::Ok().content_type("application/json").body(body))
}

/// Recomputes the hash chain over the whole log, from storage: every record's hash, every
/// `prev_hash` link, gapless sequence numbers and unique event ids; the Merkle tree of the
/// records against the one stored; and every signed checkpoint against the records.
/// Needs `security.audit.read`.
#[utoipa::path(
    operation_id = "verifyAuditLog",
    tag = "audit",
    responses(
        Guarded<AuditRead>,
        (status = 200, description = "The result; `valid` is false if anything failed", body = AuditVerification),
        (status = 503, description = "The log could not be read", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/audit/verify")]
pub async fn verify_audit_log(state: Shared, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::AUDIT_READ)?;
    let reader = state.clone();
    let verification = web::block(move || reader.ledger.verify())
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|e| ApiError::StorageUnavailable(e.to_string()))?;
    Ok(HttpResponse::Ok().json(AuditVerification {
        valid: verification.is_valid(),
        size: verification.size,
        verified: verification.verified,
        checkpoints: verification.checkpoints,
        head_hash: verification.head_hash.to_hex(),
        error: verification.error.map(|e| e.to_string()),
    }))
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(list_audit_events).service(verify_audit_log);
}
