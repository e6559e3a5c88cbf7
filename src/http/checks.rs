//! Key checks, for apps (`checkKey`) and gateways (`authorizeRequest`).
//!
//! This is the hot path: it reads the in-memory view under a read lock, makes a few hash
//! lookups and writes nothing to the log. A check of a known key is counted as a use of
//! the key (one uncontended lock of a small map); the counts are recorded in the
//! background (see `super::usage`).

use actix_web::http::header::{HeaderName, HeaderValue};
use std::borrow::Cow;

use actix_web::{HttpRequest, HttpResponse, ResponseError, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Shared;
use super::auth::presented_key;
use super::body::RawJson;
use super::problem::{ApiError, Problem};
use super::refusals::RefusedCheck;
use crate::domain::{self, CheckRequest, KeyId, Reason, Timestamp, UserId};
use crate::metrics::CheckEndpoint;

/// Response header naming the key's user, for the upstream.
pub const USER_HEADER: &str = "Keyledger-User-Id";
/// Response header naming the key's id, for the upstream.
pub const KEY_HEADER: &str = "Keyledger-Key-Id";
/// Response header with the check's reason.
pub const REASON_HEADER: &str = "Keyledger-Reason";
const REASON_HEADER_LOWER: &str = "keyledger-reason";

/// Why a check was allowed or refused.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckReason {
    /// Allowed.
    Granted,
    /// Not a keyledger key: wrong prefix, length, characters or checksum.
    MalformedKey,
    /// No such key, or a replaced key past its grace period.
    UnknownKey,
    /// The key was revoked.
    RevokedKey,
    /// The key is past its expiry time.
    ExpiredKey,
    /// The key's user is disabled.
    UserDisabled,
    /// None of the user's roles has the function.
    FunctionNotGranted,
    /// The user may not access the event.
    EventNotAccessible,
    /// The function is event-scoped (see `scope` in `listFunctions`) and the check names
    /// no event, but the user may access only the events of some groups: send `event_id`.
    EventRequired,
    /// The function is not in the catalogue.
    UnknownFunction,
}

impl From<Reason> for CheckReason {
    fn from(reason: Reason) -> Self {
        match reason {
            Reason::Granted => CheckReason::Granted,
            Reason::MalformedKey => CheckReason::MalformedKey,
            Reason::UnknownKey => CheckReason::UnknownKey,
            Reason::RevokedKey => CheckReason::RevokedKey,
            Reason::ExpiredKey => CheckReason::ExpiredKey,
            Reason::UserDisabled => CheckReason::UserDisabled,
            Reason::FunctionNotGranted => CheckReason::FunctionNotGranted,
            Reason::EventNotAccessible => CheckReason::EventNotAccessible,
            Reason::EventRequired => CheckReason::EventRequired,
            Reason::UnknownFunction => CheckReason::UnknownFunction,
        }
    }
}

/// A check: may this key do this function (on this event)?
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"key": "kl_4sQm0bV7xZk2Lr9TtY1cWn8Pd3Hf6Ja5Gu0Me2", "function": "api.attendees.read", "event_id": "summit-2027-nyc"}))]
pub struct CheckKeyRequest<'a> {
    /// The key. May instead be sent in the `Authorization` header.
    #[serde(default, borrow)]
    #[schema(value_type = Option<String>)]
    pub key: Option<Cow<'a, str>>,
    /// The function id, such as `api.attendees.read`.
    #[serde(borrow)]
    #[schema(value_type = String)]
    pub function: Cow<'a, str>,
    /// The platform event the call reads or writes. Needed for an event-scoped function
    /// (`scope: "event"` in `listFunctions`) unless the user may access every event;
    /// for an account-wide function it may be left out, and if given its access is tested.
    #[serde(default, borrow)]
    #[schema(value_type = Option<String>)]
    pub event_id: Option<Cow<'a, str>>,
    /// A log position (`Keyledger-Position` of an earlier change) this node must have
    /// applied before it answers: it waits up to `--max-position-wait-ms`, else 503
    /// `position_not_reached`. Same as the `Keyledger-Min-Position` header.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_i64)]
    pub min_position: Option<u64>,
}

/// The answer to a check.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"allowed": true, "reason": "granted", "user_id": "usr_5f0c2a9e1b7d4c3a", "key_id": "key_0f1e2d3c4b5a6978"}))]
pub struct CheckKeyResponse<'a> {
    /// Whether the key may do it.
    pub allowed: bool,
    /// Why.
    pub reason: CheckReason,
    /// The key's user, when the key is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub user_id: Option<&'a str>,
    /// The key's public id, when the key is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub key_id: Option<&'a str>,
}

/// Checks a key: may it do `function` (on `event_id`)? A refused key is an answer, not
/// an error: 200 with `allowed: false` and the `reason`. A client address that made too
/// many checks with malformed or unknown keys gets 429 until `Retry-After` has passed. The key goes in the body or in
/// the `Authorization` header (Bearer, or Basic with the key as password).
#[utoipa::path(
    operation_id = "checkKey",
    tag = "checks",
    request_body = CheckKeyRequest,
    responses(
        (status = 200, description = "The decision", body = CheckKeyResponse),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many checks with wrong keys from this address", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
#[post("/v1/check")]
pub async fn check_key(state: Shared, request: HttpRequest, body: RawJson) -> Result<HttpResponse, ApiError> {
    if let Err(wait) = state.limiter.admit_request(&request) {
        state.checks.count_throttled(CheckEndpoint::CheckKey);
        return Err(ApiError::TooManyFailedChecks(wait));
    }
    let input: CheckKeyRequest<'_> = body.parse()?;
    if let Some(position) = input.min_position {
        super::position::wait_for_position(&state, super::position::max_wait_of(&request), position).await?;
    }
    let header_key = presented_key(&request);
    let key = input.key.as_deref().or_else(|| header_key.as_ref().map(|presented| presented.key())).unwrap_or("");
    let question = CheckRequest { key, function: &input.function, event_id: input.event_id.as_deref() };
    let now = Timestamp::now();
    let view = state.ledger.view();
    let decision = domain::check(&view, question, now);
    let decision_reason = decision.reason;
    let used_key = decision.key_hash;
    let (user_id, key_id) = (decision.user_id.map(UserId::text), decision.key_id.map(KeyId::text));
    let answer = CheckKeyResponse {
        allowed: decision.allowed(),
        reason: decision.reason.into(),
        user_id: user_id.as_deref(),
        key_id: key_id.as_deref(),
    };
    // Serialised under the read lock, to borrow the ids rather than copy them.
    let json = serde_json::to_vec(&answer).unwrap_or_default();
    if !decision.allowed() {
        keep_refusal(&state, &request, &decision, &input.function, input.event_id.as_deref(), now);
    }
    drop(view);
    if let Some(key_hash) = used_key {
        state.usage.count(key_hash, decision_reason == Reason::Granted, now);
    }
    state.limiter.record_request(&request, decision_reason);
    state.checks.count(CheckEndpoint::CheckKey, decision_reason);
    Ok(HttpResponse::Ok().content_type("application/json").body(json))
}

/// What a gateway asks about the request it is forwarding.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthorizeQuery<'a> {
    /// The function the forwarded request needs, such as `api.attendees.read`.
    #[param(example = "api.attendees.read", value_type = String)]
    pub function: Cow<'a, str>,
    /// The platform event the forwarded request reads or writes. Needed for an event-scoped
    /// function unless the user may access every event (otherwise 403 `event_required`).
    #[param(example = "summit-2027-nyc", value_type = Option<String>)]
    pub event_id: Option<Cow<'a, str>>,
    /// A log position this node must have applied before it answers (as the
    /// `Keyledger-Min-Position` header): it waits up to `--max-position-wait-ms`, else 503
    /// `position_not_reached`.
    #[param(value_type = Option<u64>, minimum = 0)]
    pub min_position: Option<u64>,
}

impl<'a> AuthorizeQuery<'a> {
    /// Parses the query string, borrowing from it unless a value is percent-encoded: this
    /// runs on every gateway request.
    pub fn parse(query: &'a str) -> Result<Self, ApiError> {
        let (mut function, mut event_id) = (None, None);
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                "function" => &mut function,
                "event_id" => &mut event_id,
                // Waited for before the handler (`http::position`).
                super::position::MIN_POSITION_PARAMETER => continue,
                other => return Err(ApiError::InvalidQuery(format!("unknown query parameter `{other}`"))),
            };
            if slot.replace(value).is_some() {
                return Err(ApiError::InvalidQuery(format!("the query parameter `{name}` is given twice")));
            }
        }
        let function =
            function.ok_or_else(|| ApiError::InvalidQuery("missing query parameter `function`".to_owned()))?;
        Ok(AuthorizeQuery { function, event_id, min_position: None })
    }
}

/// For gateways (nginx `auth_request`, Envoy `ext_authz`, Traefik `forwardAuth`): the key
/// comes from the `Authorization` header. 200 with an empty body when allowed, with
/// headers naming the user and key for the upstream; 401 with `WWW-Authenticate` for a
/// missing or bad key; 403 when the key may not do it. `Keyledger-Reason` says why.
/// Malformed and unknown keys count against the client address as on `checkKey` (a request
/// with no key at all does not): past the limit every request from it gets 429 until
/// `Retry-After` has passed, whatever key it sends.
#[utoipa::path(
    operation_id = "authorizeRequest",
    tag = "checks",
    params(AuthorizeQuery),
    responses(
        (status = 200, description = "Allowed; empty body",
            headers(("Keyledger-User-Id" = String, description = "The key's user"), ("Keyledger-Key-Id" = String, description = "The key's id"), ("Keyledger-Reason" = String, description = "granted"))),
        (status = 400, description = "Missing or malformed query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, malformed, unknown, revoked or expired key, or disabled user", body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String), ("Keyledger-Reason" = String, description = "Why"))),
        (status = 403, description = "Function not granted, event not accessible, event required but not named, or unknown function", body = Problem, content_type = "application/problem+json",
            headers(("Keyledger-Reason" = String, description = "Why"))),
        (status = 429, description = "Too many checks with wrong keys from this address", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security((), ("bearer" = []), ("basic" = []))
)]
#[get("/v1/authorize")]
pub async fn authorize_request(state: Shared, request: HttpRequest) -> HttpResponse {
    if let Err(wait) = state.limiter.admit_request(&request) {
        state.checks.count_throttled(CheckEndpoint::AuthorizeRequest);
        return ApiError::TooManyFailedChecks(wait).error_response();
    }
    let query = match AuthorizeQuery::parse(request.query_string()) {
        Ok(query) => query,
        Err(error) => return error.error_response(),
    };
    let presented = presented_key(&request);
    let key = presented.as_ref().map_or("", |presented| presented.key());
    let question = CheckRequest { key, function: &query.function, event_id: query.event_id.as_deref() };
    let now = Timestamp::now();
    let view = state.ledger.view();
    let decision = domain::check(&view, question, now);
    let reason = decision.reason;
    state.checks.count(CheckEndpoint::AuthorizeRequest, reason);
    if let Some(key_hash) = decision.key_hash {
        state.usage.count(key_hash, decision.allowed(), now);
    }
    if decision.allowed() {
        let mut response = HttpResponse::Ok();
        if let Some(user) = decision.user_id.and_then(|id| HeaderValue::from_str(&id.text()).ok()) {
            response.insert_header((USER_HEADER, user));
        }
        if let Some(key_id) = decision.key_id.and_then(|id| HeaderValue::from_str(&id.text()).ok()) {
            response.insert_header((KEY_HEADER, key_id));
        }
        drop(view);
        response.insert_header((REASON_HEADER, HeaderValue::from_static(reason.as_str())));
        return response.finish();
    }
    keep_refusal(&state, &request, &decision, &query.function, query.event_id.as_deref(), now);
    drop(view);
    // A request with no key guessed nothing; a refused key counts as on `checkKey`.
    if presented.is_some() {
        state.limiter.record_request(&request, reason);
    }
    let refusal =
        if reason.is_authentication_failure() { ApiError::KeyRefused(reason) } else { ApiError::NotPermitted(reason) };
    let mut response = refusal.error_response();
    response
        .headers_mut()
        .insert(HeaderName::from_static(REASON_HEADER_LOWER), HeaderValue::from_static(reason.as_str()));
    response
}

/// Keeps a refused check of a known key for `listKeyRefusals` (one short lock); a check
/// of an unknown or malformed key names no user and is left to the limiter.
fn keep_refusal(
    state: &Shared,
    request: &HttpRequest,
    decision: &domain::Decision<'_>,
    function: &str,
    event_id: Option<&str>,
    now: Timestamp,
) {
    let (Some(key_hash), Some(user_id), Some(key_id)) = (decision.key_hash, decision.user_id, decision.key_id) else {
        return;
    };
    let check = RefusedCheck { key_hash, user_id, key_id, reason: decision.reason, function, event_id };
    state.refusals.record(check, state.limiter.client_of(request).address(), now);
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(check_key).service(authorize_request);
}
