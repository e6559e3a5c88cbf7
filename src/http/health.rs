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
    /// This node and the others, when several serve one PostgreSQL log (`--database-url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeHealth>,
}

/// A node serving a PostgreSQL log beside others.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"node_id": "node-a", "applied_position": 42, "log_head": 42, "lag": 0, "signer": true, "stale": false, "heartbeat_age_ms": 310, "live_nodes": [{"node_id": "node-a", "applied_position": 42}, {"node_id": "node-b", "applied_position": 41}]}))]
pub struct NodeHealth {
    /// This node's id (`--node-id`).
    pub node_id: String,
    /// The log position this node's view has applied (`log_size`).
    pub applied_position: u64,
    /// The log's head as this node last read it from the database.
    pub log_head: u64,
    /// Records appended (by any node) that this node has not applied yet.
    pub lag: u64,
    /// Whether this node signs checkpoints (one node does, holding an advisory lock).
    pub signer: bool,
    /// Whether this node has not reached the database for longer than its node timeout
    /// (its checks then fail closed, unless `--stale-checks serve-stale`).
    pub stale: bool,
    /// Milliseconds since this node last wrote its heartbeat.
    pub heartbeat_age_ms: u64,
    /// The nodes whose heartbeat is within the node timeout, as last read.
    pub live_nodes: Vec<LiveNode>,
}

/// A live node and how far it has applied the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveNode {
    /// The node's id.
    pub node_id: String,
    /// The log position it had applied at its last heartbeat.
    pub applied_position: u64,
}

fn node_health(state: &Shared, applied: u64) -> Option<NodeHealth> {
    let node = state.ledger.node()?;
    let log_head = node.log_head().max(applied);
    Some(NodeHealth {
        node_id: node.node_id().to_owned(),
        applied_position: applied,
        log_head,
        lag: log_head - applied,
        signer: state.ledger.is_signing(),
        stale: node.is_stale(),
        heartbeat_age_ms: u64::try_from(node.heartbeat_age().as_millis()).unwrap_or(u64::MAX),
        live_nodes: node
            .nodes()
            .into_iter()
            .map(|live| LiveNode { node_id: live.node_id, applied_position: live.applied })
            .collect(),
    })
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
    HttpResponse::Ok().json(Health { status: "ok", log_size, node: node_health(state, log_size) })
}

/// Readiness: 200 while the service can answer checks and accept writes; 503 once storage
/// has failed (a restart follows), or while a node of several has not reached the database
/// for longer than its node timeout and refuses checks (fail closed). On a node of several,
/// `node` reports its applied position, the log's head, the lag and the live nodes. Needs
/// no key.
#[utoipa::path(
    operation_id = "healthReady",
    tag = "health",
    responses(
        (status = 200, description = "Ready: the log is replayed and storage works", body = Health),
        (status = 503, description = "Not ready: storage has failed and the process is stopping, or the node is stale and refuses checks", body = Health),
    )
)]
#[get("/health/ready")]
pub async fn health_ready(state: Shared) -> HttpResponse {
    let log_size = state.ledger.view().head();
    let node = node_health(&state, log_size);
    let refuses_checks = state.ledger.node().is_some_and(|node| node.refuses_checks());
    if state.ledger.has_failed() || refuses_checks {
        HttpResponse::ServiceUnavailable().json(Health { status: "unavailable", log_size, node })
    } else {
        HttpResponse::Ok().json(Health { status: "ready", log_size, node })
    }
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(health).service(health_live).service(health_ready);
}
