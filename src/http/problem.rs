//! Errors as HTTP answers: every error maps to exactly one status and one stable `code`,
//! here and nowhere else, and is sent as an RFC 9457 `application/problem+json` body.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{DomainError, Reason, Resource};
use crate::history::HistoryError;
use crate::ledger::SubmitError;

/// An RFC 9457 problem: what went wrong, for people (`title`, `detail`) and programs
/// (`status`, `code`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:keyledger:problem:standalone_api_role",
    "title": "An API role is standalone",
    "status": 409,
    "detail": "user usr_5f0c2a9e1b7d4c3a would hold API role role_9d8e7f6a5b4c3d2e beside another role, but an API role is held alone: give it and the other roles to different users (createUser makes a new one for the app), or first unassign the roles the user must not keep (unassignRole)",
    "code": "standalone_api_role"
}))]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:keyledger:problem:` followed by `code`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened in this case.
    pub detail: String,
    /// A stable, machine-readable code; clients branch on this.
    pub code: String,
}

/// Every error the HTTP API answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The JSON does not have the shape the operation takes.
    #[error("{0}")]
    InvalidBody(String),
    /// A query parameter is missing or malformed.
    #[error("{0}")]
    InvalidQuery(String),
    /// A header is malformed.
    #[error("{0}")]
    InvalidHeader(String),
    /// No key, or a key that does not work.
    #[error("{0}")]
    Unauthenticated(String),
    /// The presented key does not work.
    #[error("the key was refused: {}", .0.as_str())]
    KeyRefused(Reason),
    /// The key works but may not do what a gateway asked about.
    #[error("the key may not do this: {}", .0.as_str())]
    NotPermitted(Reason),
    /// The key works but lacks the function the operation needs.
    #[error("this operation needs the function {0}, which none of your roles has")]
    Forbidden(&'static str),
    /// An id in the path or body names nothing.
    #[error("no {} with id {id}", resource.as_str())]
    NotFound {
        /// What kind of thing.
        resource: Resource,
        /// The id given.
        id: String,
    },
    /// No key issued by this ledger has the secret or hash given (`lookupKey`). Names
    /// neither: the secret is never echoed.
    #[error("no key with that secret or hash was ever issued")]
    KeyNotIssued,
    /// No route matches.
    #[error("no operation at {0}; GET /openapi.json lists every path, and /docs/ shows them")]
    NoRoute(String),
    /// A log position or tree size that the log does not have (yet).
    #[error("{0}")]
    NotInLog(String),
    /// No checkpoint was written at the size asked for.
    #[error("no checkpoint was written at size {0}; listCheckpoints shows those that were")]
    CheckpointNotFound(u64),
    /// The path is known but not for this method.
    #[error("{path} does not answer {method}; it answers {allowed}")]
    MethodNotAllowed {
        /// The method asked with.
        method: String,
        /// The path asked for.
        path: String,
        /// The methods the path answers, as the `Allow` header lists them.
        allowed: String,
    },
    /// The rules refused the command.
    #[error(transparent)]
    Refused(DomainError),
    /// A field's value is not acceptable.
    #[error("{field} {reason}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Two query parameters that exclude each other were both given.
    #[error("{0}")]
    ConflictingParameters(String),
    /// An event type named in a filter is not one this build knows.
    #[error("`{0}` is not an event type; the types are listed in the audit trail's `type` member")]
    UnknownEventType(String),
    /// A log position asked about is past the last record.
    #[error("position {position} is past the head of the log, {head}")]
    PositionBeyondHead {
        /// The position asked for.
        position: u64,
        /// The last record's position.
        head: u64,
    },
    /// A time asked about is before the first record, when there was no ledger yet.
    #[error("{0}")]
    BeforeFirstRecord(String),
    /// A time asked about is still to come, so the log cannot answer for it.
    #[error("{0} is in the future")]
    TimeInTheFuture(String),
    /// The end of a range is before its start.
    #[error("the end of the range is before its start")]
    ReversedRange,
    /// A function id is not in the catalogue.
    #[error("{0}")]
    UnknownFunction(String),
    /// The Idempotency-Key was used before for a different request.
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    /// A request with the same Idempotency-Key is still being processed.
    #[error("a request with this Idempotency-Key is still in progress; retry shortly")]
    IdempotencyKeyInUse,
    /// The body is too large.
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body did not arrive within the request timeout.
    #[error("the body did not arrive within {} ms", .0.as_millis())]
    RequestTimeout(std::time::Duration),
    /// The body is not `application/json`.
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// The client made too many checks with wrong keys; it may try again after the wait.
    #[error("too many checks with wrong keys from this address; retry after {} s", retry_after_seconds(.0))]
    TooManyFailedChecks(std::time::Duration),
    /// The storage cannot take writes right now; nothing was appended.
    #[error("the change could not be made durable, so it was not made: {0}")]
    StorageUnavailable(String),
    /// The service is shutting down.
    #[error("keyledger is shutting down")]
    ShuttingDown,
    /// This node had not applied the position the request named within the wait
    /// (`Keyledger-Min-Position`); another node, or this one shortly, will have.
    #[error("this node has applied the log up to {applied}, not yet {wanted}; retry, or ask another node")]
    PositionNotReached {
        /// The position the request named.
        wanted: u64,
        /// The position this node had applied.
        applied: u64,
    },
    /// This node has not reached the database for longer than its node timeout, so its
    /// view may miss a revocation acknowledged elsewhere: checks are refused (fail closed).
    #[error("this node has not reached the database for {} ms, longer than its node timeout: its view may miss a revocation, so checks are refused; ask another node", .0.as_millis())]
    NodeStale(std::time::Duration),
    /// Something unexpected; the details are in the server log, not the answer.
    #[error("an unexpected error occurred; the server log has the details")]
    Internal,
}

impl ApiError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::InvalidHeader(_) => "invalid_header",
            ApiError::Unauthenticated(_) | ApiError::KeyRefused(_) => "unauthenticated",
            ApiError::Forbidden(_) | ApiError::NotPermitted(_) => "forbidden",
            ApiError::NotFound { .. } | ApiError::NoRoute(_) | ApiError::KeyNotIssued => "not_found",
            ApiError::NotInLog(_) => "not_in_log",
            ApiError::CheckpointNotFound(_) => "checkpoint_not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Refused(refused) => match refused {
                DomainError::NotFound { .. } => "not_found",
                DomainError::DuplicateRoleDescription { .. } => "duplicate_description",
                DomainError::DuplicateGroupName { .. } => "duplicate_group_name",
                DomainError::MixedRole { .. } => "mixed_role",
                DomainError::StandaloneApiRole { .. } => "standalone_api_role",
                DomainError::RoleNotAssigned { .. } => "role_not_assigned",
                DomainError::EventNotInGroup { .. } => "event_not_in_group",
                DomainError::NoKey { .. } => "no_key",
                DomainError::ExpiryInThePast => "expiry_in_the_past",
                DomainError::GracePeriodTooLong { .. } => "invalid_value",
                DomainError::SelfLockout { .. } => "self_lockout",
                DomainError::VersionMismatch { .. } => "version_mismatch",
                DomainError::AlreadyInitialised => "already_initialised",
                DomainError::InsufficientAuthority { .. } => "insufficient_authority",
                DomainError::LastAdministrator => "last_administrator",
                DomainError::GroupTooDeep { .. } => "group_too_deep",
                DomainError::LookalikeName { .. } => "lookalike_name",
            },
            ApiError::InvalidValue { .. } => "invalid_value",
            ApiError::UnknownFunction(_) => "unknown_function",
            ApiError::ConflictingParameters(_) => "conflicting_parameters",
            ApiError::UnknownEventType(_) => "unknown_event_type",
            ApiError::PositionBeyondHead { .. } => "position_beyond_head",
            ApiError::BeforeFirstRecord(_) => "before_first_record",
            ApiError::TimeInTheFuture(_) => "time_in_the_future",
            ApiError::ReversedRange => "reversed_range",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::IdempotencyKeyInUse => "idempotency_key_in_use",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::TooManyFailedChecks(_) => "too_many_failed_checks",
            ApiError::StorageUnavailable(_) => "storage_unavailable",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::PositionNotReached { .. } => "position_not_reached",
            ApiError::NodeStale(_) => "node_stale",
            ApiError::Internal => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self.status_code() {
            StatusCode::BAD_REQUEST => "The request is malformed",
            StatusCode::UNAUTHORIZED => "A valid API key is required",
            StatusCode::FORBIDDEN => match self.code() {
                "insufficient_authority" => "You may not hand out or act on more than you hold",
                _ => "The key may not do this",
            },
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::METHOD_NOT_ALLOWED => "Method not allowed",
            StatusCode::CONFLICT => match self.code() {
                "standalone_api_role" => "An API role is standalone",
                "mixed_role" => "An API role holds API functions only",
                "self_lockout" => "That would lock you out",
                "idempotency_key_in_use" => "The same request is in progress",
                "group_too_deep" => "Groups nest too deep",
                "lookalike_name" => "The name looks like an existing one",
                "last_administrator" => "Nobody could administer the ledger any more",
                _ => "The change conflicts with the current state",
            },
            StatusCode::PRECONDITION_FAILED => "The resource changed since you read it",
            StatusCode::PAYLOAD_TOO_LARGE => "The body is too large",
            StatusCode::REQUEST_TIMEOUT => "The request took too long to arrive",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported content type",
            StatusCode::UNPROCESSABLE_ENTITY => "A value is not acceptable",
            StatusCode::TOO_MANY_REQUESTS => "Too many checks with wrong keys",
            StatusCode::SERVICE_UNAVAILABLE => "Temporarily unavailable",
            _ => "Internal error",
        }
    }

    /// The problem body for this error.
    pub fn problem(&self) -> Problem {
        let code = self.code();
        Problem {
            kind: format!("urn:keyledger:problem:{code}"),
            title: self.title().to_owned(),
            status: self.status_code().as_u16(),
            detail: self.to_string(),
            code: code.to_owned(),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Refused(refused) => ApiError::Refused(refused),
            SubmitError::Storage(message) => ApiError::StorageUnavailable(message),
            SubmitError::ShuttingDown => ApiError::ShuttingDown,
        }
    }
}

impl From<HistoryError> for ApiError {
    fn from(error: HistoryError) -> Self {
        match error {
            HistoryError::PositionBeyondHead { position, head } => ApiError::PositionBeyondHead { position, head },
            error @ HistoryError::BeforeFirstRecord { .. } => ApiError::BeforeFirstRecord(error.to_string()),
            HistoryError::ReversedRange => ApiError::ReversedRange,
            HistoryError::Storage(storage) => ApiError::StorageUnavailable(storage.to_string()),
            error => {
                tracing::error!(%error, "replaying the log failed");
                ApiError::Internal
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_)
            | ApiError::InvalidBody(_)
            | ApiError::InvalidQuery(_)
            | ApiError::InvalidHeader(_)
            | ApiError::ConflictingParameters(_)
            | ApiError::UnknownEventType(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) | ApiError::KeyRefused(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::NotPermitted(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. }
            | ApiError::KeyNotIssued
            | ApiError::NoRoute(_)
            | ApiError::NotInLog(_)
            | ApiError::CheckpointNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Refused(refused) => match refused {
                DomainError::NotFound { .. }
                | DomainError::RoleNotAssigned { .. }
                | DomainError::EventNotInGroup { .. }
                | DomainError::NoKey { .. } => StatusCode::NOT_FOUND,
                DomainError::ExpiryInThePast | DomainError::GracePeriodTooLong { .. } => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                DomainError::VersionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
                DomainError::InsufficientAuthority { .. } => StatusCode::FORBIDDEN,
                DomainError::LookalikeName { .. } => StatusCode::CONFLICT,
                _ => StatusCode::CONFLICT,
            },
            ApiError::InvalidValue { .. } | ApiError::UnknownFunction(_) | ApiError::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::PositionBeyondHead { .. }
            | ApiError::BeforeFirstRecord(_)
            | ApiError::TimeInTheFuture(_)
            | ApiError::ReversedRange => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::IdempotencyKeyInUse => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyFailedChecks(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::StorageUnavailable(_) | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::PositionNotReached { .. } | ApiError::NodeStale(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json")));
        if self.status_code() == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static(WWW_AUTHENTICATE)));
        }
        if let ApiError::StorageUnavailable(_) | ApiError::ShuttingDown = self {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
        }
        if let ApiError::PositionNotReached { .. } | ApiError::NodeStale(_) = self {
            response.insert_header(super::position::retry_after());
        }
        if let ApiError::MethodNotAllowed { allowed, .. } = self
            && let Ok(allowed) = HeaderValue::from_str(allowed)
        {
            response.insert_header((header::ALLOW, allowed));
        }
        if let ApiError::TooManyFailedChecks(wait) = self {
            response.insert_header((header::RETRY_AFTER, retry_after_seconds(wait).to_string()));
        }
        if let ApiError::Internal = self {
            tracing::error!("answered 500");
        }
        response.body(serde_json::to_vec(&self.problem()).unwrap_or_default())
    }
}

/// Whole seconds to wait, rounded up, at least 1.
fn retry_after_seconds(wait: &std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The challenge sent with every 401: keys go as a Bearer token or as a Basic password.
pub const WWW_AUTHENTICATE: &str = r#"Bearer realm="keyledger", Basic realm="keyledger", charset="UTF-8""#;
