//! Liveness.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::Shared;

/// The service is up.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "log_size": 42}))]
pub struct Health {
    /// Always `ok` when the service answers.
    pub status: &'static str,
    /// How many records the log holds.
    pub log_size: u64,
}

/// Liveness: answers while the service runs. Needs no key.
#[utoipa::path(
    operation_id = "health",
    tag = "health",
    responses((status = 200, description = "The service is up", body = Health))
)]
#[get("/health")]
pub async fn health(state: Shared) -> HttpResponse {
    let log_size = state.ledger.view().head();
    HttpResponse::Ok().json(Health { status: "ok", log_size })
}

/// Registers the route.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(health);
}
