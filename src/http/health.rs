//! Health: liveness (`/health/live`, and `/health` as before) and readiness
//! (`/health/ready`), for supervisors and load balancers.
//!
//! The server accepts connections only once the log is replayed, so a probe made while it
//! replays waits or is refused: it is not ready. Readiness answers 503 once the log has
//! failed a write that only a restart recovers from (the process then stops).

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::Shared;

/// The service is up.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "log_size": 42}))]
pub struct Health {
    /// `ok` when the service answers (liveness); `ready` or `unavailable` for readiness.
    pub status: &'static str,
    /// How many records the log holds.
    pub log_size: u64,
}

/// Liveness: answers while the service runs. Needs no key. The same as `/health/live`.
#[utoipa::path(
    operation_id = "health",
    tag = "health",
    responses((status = 200, description = "The service is up", body = Health))
)]
#[get("/health")]
pub async fn health(state: Shared) -> HttpResponse {
    live(&state)
}

/// Liveness: answers while the process runs, whatever the state of storage. Needs no key.
#[utoipa::path(
    operation_id = "healthLive",
    tag = "health",
    responses((status = 200, description = "The process is up", body = Health))
)]
#[get("/health/live")]
pub async fn health_live(state: Shared) -> HttpResponse {
    live(&state)
}

fn live(state: &Shared) -> HttpResponse {
    let log_size = state.ledger.view().head();
    HttpResponse::Ok().json(Health { status: "ok", log_size })
}

/// Readiness: 200 while the service can answer checks and accept writes; 503 once storage
/// has failed (a restart follows). Needs no key.
#[utoipa::path(
    operation_id = "healthReady",
    tag = "health",
    responses(
        (status = 200, description = "Ready: the log is replayed and storage works", body = Health),
        (status = 503, description = "Not ready: storage has failed and the process is stopping", body = Health),
    )
)]
#[get("/health/ready")]
pub async fn health_ready(state: Shared) -> HttpResponse {
    let log_size = state.ledger.view().head();
    if state.ledger.has_failed() {
        HttpResponse::ServiceUnavailable().json(Health { status: "unavailable", log_size })
    } else {
        HttpResponse::Ok().json(Health { status: "ready", log_size })
    }
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(health).service(health_live).service(health_ready);
}
