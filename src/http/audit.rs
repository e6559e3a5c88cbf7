//! The audit trail: the log's records, exactly as stored, and the chain's verification.

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{ApiError, Problem};
use super::{Page, State};
use crate::domain::FunctionId;
use crate::log::EventLog;

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
    /// The role, user or group it is about.
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
#[schema(example = json!({"valid": true, "size": 42, "verified": 42, "head_hash": "0c7e…", "error": null}))]
pub struct AuditVerification {
    /// Whether every record verified: hashes, links, gapless sequence and unique ids.
    pub valid: bool,
    /// How many records the log holds.
    pub size: u64,
    /// How many records verified, from the first, before any failure.
    pub verified: u64,
    /// The hash of the last verified record.
    pub head_hash: String,
    /// What failed, if anything.
    pub error: Option<String>,
}

/// Lists the log's records in order, exactly as stored, paginated by `seq`.
/// Needs `security.audit.read`.
#[utoipa::path(
    operation_id = "listAuditEvents",
    tag = "audit",
    params(Page),
    responses(
        (status = 200, description = "A page of records", body = AuditRecordList),
        (status = 400, description = "Bad paging parameters", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many checks with wrong keys from this address", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 403, description = "The key lacks security.audit.read", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The log could not be read", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/audit/events")]
pub async fn list_audit_events(state: State, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::AUDIT_READ)?;
    let page = Page::of(&request)?;
    let limit = page.limit()?;
    let from = page.after().saturating_add(1);
    let reader = state.clone();
    let records = web::block(move || reader.ledger.log().read(from, limit.saturating_add(1)))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|e| ApiError::StorageUnavailable(e.to_string()))?;
    let more = records.len() > limit;
    let shown = &records[..records.len().min(limit)];
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
    match shown.last().filter(|_| more) {
        Some(last) => body.extend_from_slice(last.seq.to_string().as_bytes()),
        None => body.extend_from_slice(b"null"),
    }
    body.push(b'}');
    Ok(HttpResponse::Ok().content_type("application/json").body(body))
}

/// Recomputes the hash chain over the whole log, from storage: every record's hash, every
/// `prev_hash` link, gapless sequence numbers and unique event ids.
/// Needs `security.audit.read`.
#[utoipa::path(
    operation_id = "verifyAuditLog",
    tag = "audit",
    responses(
        (status = 200, description = "The result; `valid` is false if anything failed", body = AuditVerification),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many checks with wrong keys from this address", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 403, description = "The key lacks security.audit.read", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The log could not be read", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/audit/verify")]
pub async fn verify_audit_log(state: State, request: HttpRequest) -> Result<HttpResponse, ApiError> {
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
        head_hash: verification.head_hash.to_hex(),
        error: verification.error.map(|e| e.to_string()),
    }))
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(list_audit_events).service(verify_audit_log);
}
