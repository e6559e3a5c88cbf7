//! Read-your-writes and revocation everywhere, for nodes serving one PostgreSQL log
//! (issue #12), as one middleware over every route:
//!
//! * A request that names a minimum position (`Keyledger-Min-Position`, or `min_position`
//!   in `authorizeRequest`'s query; `checkKey` takes it in its body, through
//!   [`wait_for_position`]) waits until this node's view has applied it, for at most
//!   `--max-position-wait-ms`, else 503 `position_not_reached` with `Retry-After`. The
//!   wait is on a watch of the applied position that the writer publishes: no polling.
//!   Only reads and checks wait (`GET`, `HEAD`, `POST /v1/check`); a mutation is decided
//!   by the writer on the newest state anyway.
//! * A node that has not reached the database for longer than `--node-timeout-ms`
//!   answers `checkKey` and `authorizeRequest` with 503 `node_stale` (unless
//!   `--stale-checks serve-stale`): a revocation acknowledged by another node may not have
//!   reached it.
//! * A mutation that removes access (`revokeKey`, `disableUser`, `unassignRole`,
//!   `deactivateFunctions`, `setUserEventAccess`) answers only once every other live node
//!   has applied its position, or after the node timeout with `Keyledger-Nodes-Pending`
//!   naming the nodes that had not.
//!
//! On a single node (fjall) there are no other nodes, so a position is reached when it is
//! acknowledged and nothing else waits.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};

use super::AppState;
use super::mutation::POSITION_HEADER;
use super::problem::ApiError;

/// The header naming the log position a read must see.
pub const MIN_POSITION_HEADER: &str = "Keyledger-Min-Position";
/// The query parameter (and `checkKey` body field) naming it.
pub const MIN_POSITION_PARAMETER: &str = "min_position";
/// The header naming the live nodes that had not applied a removal of access when the
/// answer was given.
pub const NODES_PENDING_HEADER: &str = "Keyledger-Nodes-Pending";
/// The default longest wait for a position: 1 s.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(1);

/// The operations that remove access: acknowledged only once every live node applied them.
pub const REMOVES_ACCESS: &[&str] =
    &["revokeKey", "disableUser", "unassignRole", "deactivateFunctions", "setUserEventAccess"];

/// How long requests wait for a position (`--max-position-wait-ms`).
#[derive(Debug, Clone, Copy)]
pub struct Positions {
    max_wait: Duration,
}

impl Positions {
    /// Waits of at most `max_wait`.
    pub fn new(max_wait: Duration) -> Self {
        Self { max_wait }
    }
}

/// Parses a minimum position as the header or parameter gives it.
fn parse_position(value: &[u8], name: &str) -> Result<u64, ApiError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .ok_or_else(|| ApiError::InvalidHeader(format!("{name} must be a log position (a whole number of 0 or more)")))
}

/// The minimum position a request names, if it names one.
fn min_position(request: &ServiceRequest) -> Result<Option<u64>, ApiError> {
    if let Some(value) = request.headers().get(MIN_POSITION_HEADER) {
        return parse_position(value.as_bytes(), MIN_POSITION_HEADER).map(Some);
    }
    let query = request.query_string();
    if request.path() == "/v1/authorize" && query.contains(MIN_POSITION_PARAMETER) {
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if name == MIN_POSITION_PARAMETER {
                return parse_position(value.as_bytes(), MIN_POSITION_PARAMETER)
                    .map_err(|error| ApiError::InvalidQuery(error.to_string()))
                    .map(Some);
            }
        }
    }
    Ok(None)
}

/// Waits until this node's view has applied `position`, for at most the configured wait.
pub async fn wait_for_position(state: &AppState, max_wait: Duration, position: u64) -> Result<(), ApiError> {
    let mut applied = state.ledger.applied();
    if *applied.borrow_and_update() >= position {
        return Ok(());
    }
    let reached =
        matches!(tokio::time::timeout(max_wait, applied.wait_for(|applied| *applied >= position)).await, Ok(Ok(_)));
    if reached { Ok(()) } else { Err(ApiError::PositionNotReached { wanted: position, applied: *applied.borrow() }) }
}

/// The configured longest wait of a request's app.
pub fn max_wait_of(request: &actix_web::HttpRequest) -> Duration {
    request.app_data::<web::Data<Positions>>().map_or(DEFAULT_MAX_WAIT, |positions| positions.max_wait)
}

fn is_check(request: &ServiceRequest) -> bool {
    matches!(request.path(), "/v1/check" | "/v1/authorize")
}

/// The middleware (see the module's documentation).
pub async fn positions(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = request.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(request).await.map(ServiceResponse::map_into_boxed_body);
    };
    let node = state.ledger.node().cloned();
    let is_read = matches!(*request.method(), Method::GET | Method::HEAD) || is_check(&request);
    if is_read {
        if let Some(node) = &node
            && is_check(&request)
            && node.refuses_checks()
        {
            let error = ApiError::NodeStale(node.since_contact());
            return Ok(request.into_response(error.error_response()));
        }
        let wanted = match min_position(&request) {
            Ok(wanted) => wanted,
            Err(error) => return Ok(request.into_response(error.error_response())),
        };
        if let Some(wanted) = wanted
            && let Err(error) = wait_for_position(&state, max_wait_of(request.request()), wanted).await
        {
            return Ok(request.into_response(error.error_response()));
        }
        return next.call(request).await.map(ServiceResponse::map_into_boxed_body);
    }
    let Some(node) = node else {
        return next.call(request).await.map(ServiceResponse::map_into_boxed_body);
    };
    let operation = state.operations.of(request.request());
    let mut response = next.call(request).await?.map_into_boxed_body();
    if !response.status().is_success() || !REMOVES_ACCESS.contains(&operation.as_str()) {
        return Ok(response);
    }
    let position = response
        .headers()
        .get(POSITION_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if let Some(position) = position {
        let pending = node.wait_for_nodes(position).await;
        if !pending.is_empty() {
            tracing::warn!(position, pending = %pending.join(","), %operation, "answered before every live node applied a removal of access");
            if let Ok(value) = HeaderValue::from_str(&pending.join(",")) {
                response.headers_mut().insert(HeaderName::from_static("keyledger-nodes-pending"), value);
            }
        }
    }
    Ok(response)
}

/// `Retry-After` for a position not reached: a second.
pub(super) fn retry_after() -> (header::HeaderName, HeaderValue) {
    (header::RETRY_AFTER, HeaderValue::from_static("1"))
}

/// Documents the position and node behaviour in the OpenAPI document: the
/// `Keyledger-Min-Position` header (with its 400 and 503) on `checkKey` and every `GET`
/// under `/v1/`, and `Keyledger-Nodes-Pending` on the success of every operation that
/// removes access.
pub struct PositionSpec;

impl utoipa::Modify for PositionSpec {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};

        let position = || {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0))
        };
        let header = ParameterBuilder::new()
            .name(MIN_POSITION_HEADER)
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "A log position (the `Keyledger-Position` of an earlier change) this node must have applied \
                 before it answers: it waits up to `--max-position-wait-ms`, else 503 `position_not_reached`.",
            ))
            .schema(Some(position()))
            .build();
        let problem = |description: &str, retry: bool| {
            let mut response = ResponseBuilder::new().description(description).content(
                "application/problem+json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
            );
            if retry {
                response = response.header(
                    "Retry-After",
                    utoipa::openapi::header::Header::new(ObjectBuilder::new().schema_type(Type::Integer)),
                );
            }
            RefOr::T(response.build())
        };
        let waits = |operation: &mut Operation, is_check: bool| {
            operation.parameters.get_or_insert_with(Vec::new).push(RefOr::T(header.clone()));
            let responses = &mut operation.responses.responses;
            responses.entry("400".to_owned()).or_insert_with(|| problem("Malformed Keyledger-Min-Position", false));
            let unavailable = if is_check {
                "This node had not applied Keyledger-Min-Position within the wait (`position_not_reached`), or it has not reached the database for longer than its node timeout (`node_stale`)"
            } else {
                "This node had not applied Keyledger-Min-Position within the wait (`position_not_reached`)"
            };
            responses.insert("503".to_owned(), problem(unavailable, true));
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let is_check = path == "/v1/check" || path == "/v1/authorize";
            if path.starts_with("/v1/")
                && let Some(get) = item.get.as_mut()
            {
                waits(get, is_check);
            }
            if is_check && let Some(post) = item.post.as_mut() {
                waits(post, true);
            }
            for operation in [item.post.as_mut(), item.put.as_mut(), item.delete.as_mut()].into_iter().flatten() {
                let removes = operation.operation_id.as_deref().is_some_and(|id| REMOVES_ACCESS.contains(&id));
                if !removes {
                    continue;
                }
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                        response.headers.insert(
                            NODES_PENDING_HEADER.to_owned(),
                            utoipa::openapi::header::HeaderBuilder::new()
                                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                                .description(Some(
                                    "On several nodes: the live nodes that had not applied the change when the node \
                                     timeout ran out (comma-separated ids). Absent when every live node had.",
                                ))
                                .build()
                                .into(),
                        );
                    }
                }
            }
        }
    }
}
